"""``ivr crm ...``: import, show, merge, unmerge, demo-data; sync, sources, outbox.

Its size (~500 lines): every ``ivr crm`` sub-command with its progress and tables (rich).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import Engine, func, select

from crm_sync import demo
from crm_sync.config import Mappings, load_rules
from crm_sync.display import console, print_customer
from crm_sync.identity import Rules
from crm_sync.importer import Interrupted, Report, UnreadableFile, estimate_records
from crm_sync.importer import import_file as run_import
from crm_sync.mapping import Mapping, MappingError, default_mapping, load_mapping
from crm_sync.models import Customer, CustomerPhone, Incident
from crm_sync.outbox import depth, failed, register, replay
from crm_sync.profile import customer_document, find, merged_into
from crm_sync.sources import SourceConfig, load_sources, load_subscribers
from crm_sync.store import Store, StoreError
from crm_sync.sync import SyncError, pull, source_status
from ivr.core.clock import Clock, SystemClock
from ivr.core.db import settings_engine
from ivr.core.migrate import upgrade
from ivr.core.settings import Settings

EXIT_OK, EXIT_USER = 0, 1
SHOWN_REJECTIONS = 50


class CrmUserError(Exception):
    pass


def add_parser(sub: Any) -> None:
    crm = sub.add_parser("crm", help="the shared customer store").add_subparsers(
        dest="crm_cmd", required=True)
    imp = crm.add_parser("import", help="import customers, incidents or interactions "
                         "from a CSV or JSON Lines file")
    imp.add_argument("file", type=Path)
    imp.add_argument("--source", required=True, help="source system name, e.g. branch-tlv")
    imp.add_argument("--mapping", type=Path, help="the source's field mapping (YAML); "
                     "default: crm/mappings/ for this source, else our own column names")
    imp.add_argument("--kind", choices=["customers", "incidents", "interactions"],
                     default=None, help="what the file holds when no mapping says so")
    imp.add_argument("--encoding", default="utf-8-sig",
                     help="the file's text encoding (default UTF-8, with or without BOM; "
                     "e.g. cp1255 for older Hebrew Windows exports)")
    imp.add_argument("--batch-size", type=int, default=None,
                     help="records per transaction (default 5,000; 1,000 on SQLite)")
    imp.add_argument("--restart", action="store_true",
                     help="do not resume an interrupted run of this file; start over")
    imp.add_argument("--json", action="store_true", help="print the report as JSON")

    show = crm.add_parser("show", help="a customer by phone (any format), account number "
                          "or #id: golden record, sources, recent history")
    show.add_argument("ref")
    show.add_argument("--json", action="store_true")

    merge = crm.add_parser("merge", help="fold customer OTHER into customer INTO")
    merge.add_argument("into", type=int)
    merge.add_argument("other", type=int)
    merge.add_argument("--reason")

    unmerge = crm.add_parser("unmerge", help="split source records off a customer (default: "
                             "undo its latest merge); the two are never merged again "
                             "automatically")
    unmerge.add_argument("customer", type=int)
    unmerge.add_argument("--record", action="append", default=[], metavar="SOURCE:ID",
                         help="a source record to split off (repeatable)")
    unmerge.add_argument("--reason")

    demo = crm.add_parser("demo-data", help="generate and import synthetic customers "
                          "(several overlapping sources, incidents, interactions)")
    demo.add_argument("--customers", type=int, default=200)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--out", type=Path, help="also keep the generated files here")
    demo.add_argument("--if-empty", action="store_true",
                      help="do nothing when the store already has customers (./run.sh)")

    sync = crm.add_parser("sync", help="pull a source CRM (crm/sources/SOURCE.yaml) once: "
                          "only changes since its cursor; a failed run resumes")
    sync.add_argument("source")
    sync.add_argument("--kind", choices=["customers", "incidents", "interactions"],
                      help="only this endpoint of the source")
    sync.add_argument("--restart", action="store_true",
                      help="do not resume an unfinished run; list from the cursor again")
    sync.add_argument("--json", action="store_true")

    sources = crm.add_parser("sources", help="each source's last sync, cursor, counts, "
                             "lag and last error")
    sources.add_argument("--json", action="store_true")

    box = crm.add_parser("outbox", help="the outbound change feed: depth per subscriber, "
                         "failed deliveries, replay")
    box.add_argument("--failed", action="store_true",
                     help="list dead letters and events being retried")
    box.add_argument("--replay", type=int, metavar="ID", help="send dead letter ID again")
    box.add_argument("--replay-dead", action="store_true", help="send every dead letter again")
    box.add_argument("--json", action="store_true")


def _engine(settings: Settings) -> Engine:
    upgrade(settings.database_url)
    return settings_engine(settings, 2)


def _rules(settings: Settings) -> Rules:
    try:
        return load_rules(settings.crm_dir / "rules.yaml")
    except MappingError as exc:
        raise CrmUserError(str(exc)) from None


def _mapping(settings: Settings, args: argparse.Namespace) -> Mapping:
    try:
        if args.mapping:
            mapping = load_mapping(args.mapping)
            if mapping.source != args.source:
                raise CrmUserError(f"{args.mapping}: maps source {mapping.source!r}, "
                                   f"not {args.source!r}")
            if args.kind and mapping.kind != args.kind:
                raise CrmUserError(f"{args.mapping}: is a {mapping.kind} mapping, "
                                   f"not {args.kind}")
            return mapping
        kind = args.kind or "customers"
        configured = Mappings(settings.crm_dir / "mappings")
        return configured.get(args.source, kind)
    except MappingError as exc:
        raise CrmUserError(str(exc)) from None


def print_report(report: Report, path: Path | str, out: Any = None) -> None:
    out = out or sys.stdout
    c = report.counts
    resumed = (f" (resumed after {report.resumed_after} records committed earlier)"
               if report.resumed_after else "")
    print(f"{path}: {report.kind} from {report.source}: {report.status}{resumed}", file=out)
    print(f"  created {c.created}, updated {c.updated}, merged {c.merged}, "
          f"unchanged {c.unchanged}, rejected {c.rejected}"
          + (f"; {c.customers_merged} customer(s) folded into others"
             if c.customers_merged else ""), file=out)
    for r in report.rejected[:SHOWN_REJECTIONS]:
        print(f"  rejected {path}:{r.line}: " + (f"id {r.external_id}: " if r.external_id
                                                  else "") + r.reason, file=out)
    if len(report.rejected) > SHOWN_REJECTIONS:
        print(f"  … and {len(report.rejected) - SHOWN_REJECTIONS} more rejection(s); "
              f"all are in import_rejections (run {report.run_id}) and in --json", file=out)


def _import_with_progress(engine: Engine, path: Path, mapping: Mapping, rules: Rules,
                          settings: Settings, clock: Clock, batch_size: int | None,
                          resume: bool, encoding: str = "utf-8-sig") -> Report:
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    total = estimate_records(path)
    from rich.console import Console  # noqa: PLC0415

    # The bar goes to stderr (a terminal only); the report and --json go to stdout.
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                  TimeRemainingColumn(), transient=False, disable=not sys.stderr.isatty(),
                  console=Console(stderr=True)) as progress:
        task = progress.add_task(f"{mapping.source} {mapping.kind}", total=total, rate="")
        started = clock.now()

        def advance(done: int) -> None:
            elapsed = (clock.now() - started).total_seconds()
            rate = f"{done / elapsed:,.0f} rec/s" if elapsed > 0 else ""
            progress.update(task, completed=min(done, total), rate=rate)

        return run_import(engine, path, mapping, rules, settings.default_region, clock.now,
                          batch_size=batch_size, on_progress=advance, resume=resume,
                          encoding=encoding)


def _show(engine: Engine, settings: Settings, ref: str, as_json: bool) -> int:
    with engine.connect() as conn:
        found = find(conn, ref, settings.default_region)
        if not found and ref.lstrip("#").isdigit():
            moved = merged_into(conn, int(ref.lstrip("#")))
            if moved is not None:
                found = find(conn, f"#{moved}")
        if not found:
            raise CrmUserError(f"no customer with phone, account number or id {ref!r}")
        docs = [customer_document(conn, int(c["id"])) for c in found]
    if as_json:
        print(json.dumps(docs, ensure_ascii=False, indent=2, default=str))
        return EXIT_OK
    if len(docs) > 1:
        print(f"{len(docs)} customers share {ref} (a shared line: the IVR asks for the "
              "account number)")
    for doc in docs:
        if doc is not None:
            print_customer(doc, ZoneInfo(settings.timezone))
    return EXIT_OK


def _demo_data(engine: Engine, settings: Settings, rules: Rules, clock: Clock,
               args: argparse.Namespace) -> int:
    if args.if_empty:
        with engine.connect() as conn:
            if conn.execute(select(func.count()).select_from(Customer)).scalar_one():
                return EXIT_OK
    data = demo.generate(args.customers, seed=args.seed, now=clock.now())

    def write_all(folder: Path) -> int:
        for kind, per_source, columns in (
                ("customers", data.customers, demo.CUSTOMER_COLUMNS),
                ("incidents", data.incidents, demo.INCIDENT_COLUMNS),
                ("interactions", data.interactions, demo.INTERACTION_COLUMNS)):
            for source, rows in per_source.items():
                if rows:
                    path = folder / f"{source}.{kind}.csv"
                    demo.write_csv(path, rows, columns)
                    mapping = default_mapping(source, kind)
                    report = _import_with_progress(engine, path, mapping, rules, settings,
                                                   clock, None, resume=False)
                    c = report.counts
                    print(f"{source} {kind}: created {c.created}, updated {c.updated}, "
                          f"merged {c.merged}, unchanged {c.unchanged}, rejected "
                          f"{c.rejected}")
        _callers_to_try(engine)
        return EXIT_OK

    print(f"demo data: {data.people} people across {len(data.customers)} sources")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        return write_all(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        return write_all(Path(tmp))


def _callers_to_try(engine: Engine) -> None:
    """A few demo callers for ``ivr simulate --from``, with the keys that show them (the
    README's examples): each the lowest customer id of its kind, on a number of their own."""
    own = (select(CustomerPhone.e164).group_by(CustomerPhone.e164)
           .having(func.count() == 1))
    person = (select(CustomerPhone.e164, Customer.name)
              .join(Customer, Customer.id == CustomerPhone.customer_id)
              .where(CustomerPhone.e164.in_(own)).order_by(Customer.id, CustomerPhone.e164)
              .limit(1))
    with engine.connect() as conn:
        shared = conn.execute(
            select(CustomerPhone.e164).group_by(CustomerPhone.e164)
            .having(func.count() > 1).order_by(CustomerPhone.e164).limit(1)).scalar()
        fault = conn.execute(person.where(
            Customer.preferred_language == "en-US",
            Customer.id.in_(select(Incident.customer_id).where(Incident.status == "open")))
        ).first()
        premium = conn.execute(person.where(Customer.tier == "premium")).first()
    print("callers to try with `ivr simulate --from NUMBER`:")
    if fault:
        print(f"  {fault[0]}  {fault[1]}: has an open incident (--press 2,1: technical "
              "support, the team that has it)")
    if premium:
        print(f"  {premium[0]}  {premium[1]}: premium tier")
    if shared:
        print(f"  {shared}  a shared family line: asked for the account number")


def run(settings: Settings, args: argparse.Namespace,
        clock: Clock | None = None) -> int:
    clock = clock or SystemClock()
    try:
        engine = _engine(settings)
        try:
            return _dispatch(engine, settings, args, clock)
        finally:
            engine.dispose()
    except (CrmUserError, UnreadableFile, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER


def _dispatch(engine: Engine, settings: Settings, args: argparse.Namespace,
              clock: Clock) -> int:
    rules = _rules(settings)
    cmd = args.crm_cmd
    if cmd == "import":
        if not args.file.exists():
            raise CrmUserError(f"{args.file}: no such file")
        mapping = _mapping(settings, args)
        try:
            report = _import_with_progress(engine, args.file, mapping, rules, settings, clock,
                                           args.batch_size, resume=not args.restart,
                                           encoding=args.encoding)
        except Interrupted as stop:
            print_report(stop.report, args.file, sys.stderr)
            print(f"interrupted: run the same command again to resume after record "
                  f"{stop.report.resumed_after + stop.report.records}", file=sys.stderr)
            return 130
        if args.json:
            print(json.dumps({"file": str(args.file), **report.as_dict()},
                             ensure_ascii=False, indent=2))
        else:
            print_report(report, args.file)
        return EXIT_OK
    if cmd == "show":
        return _show(engine, settings, args.ref, args.json)
    if cmd in ("merge", "unmerge"):
        return _correct(engine, rules, clock, args)
    if cmd == "sync":
        return _sync(engine, settings, rules, clock, args)
    if cmd == "sources":
        return _sources(engine, settings, clock, args.json)
    if cmd == "outbox":
        return _outbox(engine, settings, clock, args)
    return _demo_data(engine, settings, rules, clock, args)


# --- CRM sync over HTTP ---------------------------------------------------------------------

def http_client() -> httpx.Client:
    """The HTTP client of ``ivr crm sync`` (tests hand in a stand-in CRM's transport)."""
    return httpx.Client()


def _source_configs(settings: Settings) -> dict[str, SourceConfig]:
    try:
        return load_sources(settings.crm_dir / "sources")
    except MappingError as exc:
        raise CrmUserError(str(exc)) from None


def _sync(engine: Engine, settings: Settings, rules: Rules, clock: Clock,
          args: argparse.Namespace) -> int:
    configs = _source_configs(settings)
    config = configs.get(args.source)
    if config is None:
        known = ", ".join(sorted(configs)) or "none"
        raise CrmUserError(f"no source {args.source!r} in {settings.crm_dir / 'sources'} "
                           f"(configured: {known})")
    if args.kind and all(e.kind != args.kind for e in config.endpoints):
        raise CrmUserError(f"source {args.source!r} has no {args.kind} endpoint")
    try:
        with http_client() as client:
            reports = pull(engine, config, settings.crm_dir, rules, settings.default_region,
                           client, now=clock.now, kind=args.kind, restart=args.restart)
    except MappingError as exc:
        raise CrmUserError(str(exc)) from None
    except SyncError as exc:
        print(f"error: sync {args.source} failed: {exc}", file=sys.stderr)
        print("the pages committed so far are kept; run the same command again to resume",
              file=sys.stderr)
        return EXIT_USER
    if args.json:
        print(json.dumps([r.as_dict() for r in reports], ensure_ascii=False, indent=2,
                         default=str))
        return EXIT_OK
    for r in reports:
        print_report(r.report, f"{config.base_url}{config.endpoint(r.kind).path}")
        waited = (f", {r.http.retries} retried" if r.http.retries else "")
        print(f"  {r.pages} page(s), {r.http.requests} request(s){waited}; "
              f"{'resumed; ' if r.resumed else ''}cursor {r.since or '-'} -> "
              f"{r.cursor or '-'}")
    return EXIT_OK


def _sources(engine: Engine, settings: Settings, clock: Clock, as_json: bool) -> int:
    configs = _source_configs(settings)
    with engine.connect() as conn:
        rows = source_status(conn, clock.now(), configs)
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return EXIT_OK
    if not rows:
        print(f"no sources: add crm/sources/NAME.yaml ({settings.crm_dir / 'sources'})")
        return EXIT_OK
    from rich.table import Table  # noqa: PLC0415

    table = Table("source", "kind", "last sync", "lag", "cursor", "last run", "error")
    for r in rows:
        last = r["last_run"]
        counts = (f"{last['records_done']} rec: +{last['created']} ~{last['updated']} "
                  f"={last['unchanged']} !{last['rejected']}" if last else "-")
        if r["unfinished_run"]:
            counts += f" (unfinished: {r['unfinished_run']['records_done']} done)"
        lag = f"{r['lag_seconds']:,.0f} s" if r["lag_seconds"] is not None else "-"
        error = (f"{str(r['last_error_at'])[:16]} {r['last_error']}" if r["last_error"]
                 else "")
        table.add_row(r["source"] + ("" if r["configured"] else " (not configured)"),
                      r["kind"], str(r["last_success_at"] or "never")[:19], lag,
                      r["cursor"] or "-", counts, error)
    console().print(table)
    return EXIT_OK


def _outbox(engine: Engine, settings: Settings, clock: Clock,
            args: argparse.Namespace) -> int:
    try:
        subscribers = load_subscribers(settings.crm_dir / "subscribers.yaml")
    except MappingError as exc:
        raise CrmUserError(str(exc)) from None
    now = clock.now()
    with engine.begin() as conn:
        register(conn, subscribers, now)
        if args.replay is not None:
            if not replay(conn, now, args.replay):
                raise CrmUserError(f"outbox event {args.replay} is not a dead letter")
            print(f"outbox event {args.replay}: queued again")
            return EXIT_OK
        if args.replay_dead:
            print(f"{replay(conn, now)} dead letter(s) queued again")
            return EXIT_OK
        report = depth(conn, now)
        bad = failed(conn) if args.failed else []
    if args.json:
        print(json.dumps({**report, **({"failed": bad} if args.failed else {})},
                         ensure_ascii=False, indent=2, default=str))
        return EXIT_OK
    if not report["subscribers"]:
        print("no subscribers: add crm/subscribers.yaml")
    for name, d in sorted(report["subscribers"].items()):
        oldest = d["oldest_undelivered_seconds"]
        print(f"{name}{'' if d['active'] else ' (inactive)'}: {d['pending']} pending "
              f"({d['due']} due), {d['sending']} sending, {d['dead']} dead, "
              f"{d['delivered']} delivered"
              + (f"; oldest undelivered {oldest:,.0f} s" if oldest is not None else ""))
    for f in bad:
        print(f"  #{f['id']} {f['status']} {f['kind']} customer {f['customer_id']} to "
              f"{f['subscriber']}: {f['attempts']} attempt(s), {f['last_error'] or '-'}")
    return EXIT_OK


def _correct(engine: Engine, rules: Rules, clock: Clock, args: argparse.Namespace) -> int:
    keys: list[tuple[str, str]] = []
    for item in getattr(args, "record", []):
        source, sep, external_id = item.partition(":")
        if not sep or not source or not external_id:
            raise CrmUserError(f"--record {item!r}: expected SOURCE:ID, e.g. branch-tlv:T-17")
        keys.append((source, external_id))
    with engine.begin() as conn:
        store = Store(conn, rules, clock.now(), actor="operator")
        if args.crm_cmd == "merge":
            store.merge(args.into, args.other, args.reason)
            print(f"merged customer #{args.other} into #{args.into}")
        else:
            new_id = store.unmerge(args.customer, keys, args.reason)
            print(f"split customer #{new_id} off #{args.customer}; the two will not be "
                  "merged again automatically")
    return EXIT_OK

