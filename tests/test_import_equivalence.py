"""Imports give exactly what they gave before the bulk path: one scenario, its answer recorded.

``scenario`` loads a few hundred customers from four overlapping sources (``crm_sync.demo``:
the same person's phone written differently per source, typos in names, family landlines,
spoiled rows) plus hand-written rows for the hard cases — a record that links two customers
(a merge), account numbers that veto a shared phone, duplicate ids in one batch, a NUL, an
unreadable CSV record, a row with too many fields, a multi-line quoted field, a foreign
layout whose rows carry no timestamp (seen_at from the clock) —, in small batches so merges
cross batch boundaries; an import that fails, then is interrupted, then resumes; a changed
file and the same file again; an operator's unmerge followed by an import that would join
the two again; a pushed batch; incidents and interactions with a subscriber registered
(outbox events). The clock moves one second at every reading, so a path that read it at
other moments would show.

The answer — every report, and every row of the customer store's tables (JSON columns as
stored text, outbox bodies with their random event ids blanked) — was recorded from the
importer as it was before the bulk path (git 28be84d) in
``tests/snapshots/import_equivalence.json``, per database. The test compares the importer of
today with it, three ways: the serial path (``bulk=False``: every batch through
``apply_rows``), the bulk path prepared in this process, and the bulk path with two worker
processes. ``IVR_WRITE_IMPORT_SNAPSHOT=1`` records it again from the serial path (only ever
from a version whose answer is known to be right).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Table, Text, cast, select

from crm_sync import demo
from crm_sync.bulk_read import HEADER, _FlatJson, _parse, alone, mapped_json
from crm_sync.identity import Rules, blocking_keys, golden
from crm_sync.importer import (
    Interrupted,
    Report,
    UnreadableFile,
    import_batch,
    import_file,
    read_rows,
    split_file,
)
from crm_sync.mapping import (
    FieldSpec,
    Mapping,
    Rejection,
    SourceMapping,
    default_mapping,
    map_record,
)
from crm_sync.models import (
    customer_emails,
    customer_phones,
    customers,
    import_rejections,
    import_runs,
    incidents,
    interactions,
    merge_events,
    source_records,
)
from crm_sync.outbox import register
from crm_sync.sources import Subscriber
from crm_sync.store import Store, canonical, customer_values, to_json
from crm_sync.sync_models import outbox, outbox_customers, outbox_subscribers
from ivr.core.db import make_engine

SNAPSHOT = Path(__file__).parent / "snapshots" / "import_equivalence.json"
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
BATCH = 16  # small: merges and duplicates cross batch boundaries
HISTORY = 25  # incidents or interactions per source file
TABLES: tuple[Table, ...] = (
    customers, customer_phones, customer_emails, source_records, merge_events, import_runs,
    import_rejections, incidents, interactions, outbox_subscribers, outbox, outbox_customers)


class Ticking:
    """A clock that moves one second at each reading."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def __call__(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    e = make_engine(database_url, 2)
    yield e
    e.dispose()


# --- the data -----------------------------------------------------------------------------------

def _row(id_: str, name: str = "", phone: str = "", *, mobile: str = "", email: str = "",
         account: str = "", tier: str = "", updated: str = "2026-11-01T10:00:00+00:00",
         ) -> dict[str, str]:
    return {"id": id_, "name": name, "phone": phone, "mobile": mobile, "email": email,
            "account_number": account, "language": "", "tier": tier, "segment": "",
            "status": "", "date_of_birth": "", "updated_at": updated}


def _csv(path: Path, rows: list[dict[str, str]], tail: bytes = b"") -> Path:
    demo.write_csv(path, rows, demo.CUSTOMER_COLUMNS)
    if tail:
        with path.open("ab") as fh:
            fh.write(tail)
    return path


# Hand-written hard cases, imported as billing after the demo's sources (``_links``).
FIRST = [
    # Two customers: one known by a phone, one by an e-mail ...
    _row("X-A", "Rivka Shaked", "054-600-0001"),
    _row("X-B", "Rivka Shaked", email="rivka.shaked@example.com"),
    # One landline, two account numbers: never one person; the same account: one.
    _row("X-FAM1", "Yossi Dahan", "03-600-0002", account="555003"),
    _row("X-FAM2", "Yossi Dahan", "036000002", account="555004"),
    _row("X-FAM3", "Yosi Dahan", "+972-3-600-0002", account="555-004"),
    # The same id twice in one batch: the later line wins, the earlier is rejected.
    _row("X-DUP", "Ora Tal", "052-600-0003"),
    _row("X-DUP", "Ora Tal", "052-600-0004"),
    _row("X-NUL", "Nul\x00Name", "052-600-0005"),
    _row("X-BADMAIL", "No At", email="noat.example.com"),
    _row("X-NOKEY", "Nobody"),
    _row("X-BADDATE", "Bad Date", "052-600-0006", updated="yesterday"),
    _row("X-WITHHELD", "Hidden", "anonymous"),
    _row("X-MULTI", "Line\nBreak Cohen", "052-600-0007"),
]
LATER = [
    # ... and a record with both, names agreeing: the two customers are merged.
    _row("X-LINK", "Shaked Rivka", "+972 54 600 0001", email="Rivka.Shaked@example.com"),
    _row("X-TYPO", "Rivka Shaaked", "054-600-0001"),
]


def _links(data: demo.DemoData) -> list[dict[str, str]]:
    billing = [r for r in data.customers["billing"] if r["id"] and r["account_number"]]
    p, q = billing[0], billing[1]
    # P's e-mail and Q's phone, no name, no account: P and Q have different account
    # numbers, so the record joins one of them and never merges the two.
    veto = _row("X-VETO", "", q["mobile"] or q["phone"], email=p["email"] or "p@example.com")
    return [*FIRST, *data.customers["billing"][:12], *LATER, veto]


LINKS_TAIL = (b"X-WIDE,Too Wide,052-600-0008,,,,,,,,,,extra\n"
              b"X-HUGE," + b"x" * 200_000 + b",052-600-0009,,,,,,,,,\n"
              b"X-LAST,Last Row,052-600-0010,,,,,,,,,\n")
FOREIGN = SourceMapping(
    source="crm-x", id="ref", name=FieldSpec(field=["first", "last"]),
    phones=["tel", "cell"], emails=["mail"],
    account_number="acct", tier=FieldSpec(field="level", map={"gold": "premium"}),
    date_of_birth=FieldSpec(field="dob", format="%d/%m/%Y"))  # no seen_at: the clock's


def _foreign_rows(data: demo.DemoData) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, r in enumerate(data.customers["billing"][:40]):
        first, _, last = r["name"].partition(" ")
        out.append({"ref": f"CX{i:03d}", "first": first, "last": last,
                    "tel": r["mobile"] or r["phone"], "cell": "", "mail": r["email"],
                    "acct": r["account_number"] if i % 3 else "",
                    "level": "gold" if i % 4 == 0 else "silver",
                    "dob": "31/12/1980" if i % 5 else "1980-12-31"})
    return out


def _changed(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Billing a month later: some tiers, names and phones changed, a spoiled row mended."""
    out = []
    for i, before in enumerate(rows):
        r = dict(before)
        if i % 7 == 0:
            r["tier"] = "business" if r["tier"] != "business" else "standard"
            r["updated_at"] = "2026-11-20T09:00:00+00:00"
        if i % 11 == 0 and r["mobile"]:
            r["phone"] = f"077-700-{i:04d}"
        if i % 13 == 0:
            r["name"] = r["name"].upper()
        if not r["id"]:
            r["id"] = f"B-FIXED-{i}"
        out.append(r)
    return out


# --- the scenario -------------------------------------------------------------------------------

def _report(report: Report) -> dict[str, Any]:
    return {**report.as_dict(), "records": report.records}


def scenario(engine: Engine, tmp: Path,
             run: Callable[..., Report] = import_file) -> dict[str, Any]:
    """Every step's report, then every table."""
    clock = Ticking(NOW)
    rules = Rules()
    data = demo.generate(90, seed=5, now=NOW)
    steps: list[Any] = []

    def load(path: Path, mapping: Mapping, **kw: Any) -> None:
        kw.setdefault("batch_size", BATCH)
        try:
            steps.append(_report(run(engine, path, mapping, rules, "IL", clock, **kw)))
        except Interrupted as stop:
            steps.append({"interrupted": _report(stop.report)})
        except RuntimeError as exc:
            steps.append({"failed": str(exc)})

    with engine.begin() as conn:
        register(conn, [
            Subscriber(name="helpdesk", url="https://helpdesk.example/hook", secret_env="X",
                       source="tickets"),
            Subscriber(name="warehouse", url="https://warehouse.example/hook",
                       secret_env="Y")], clock())

    load(_csv(tmp / "tlv.csv", data.customers["branch-tlv"]), default_mapping("branch-tlv"))
    haifa = tmp / "haifa.jsonl"
    demo.write_jsonl(haifa, data.customers["branch-haifa"])
    with haifa.open("a", encoding="utf-8") as fh:
        fh.write('{not json\n["a", "list"]\n\n')
        fh.write(json.dumps({"id": "HFA-LIST", "name": "Lior Azulay",
                             "phones": ["050-777-8888", "03-777-8888"]}) + "\n")
    load(haifa, default_mapping("branch-haifa"))
    load(_csv(tmp / "billing.csv", data.customers["billing"]), default_mapping("billing"),
         batch_size=None)  # the database's own batch size

    # Tickets: fails after its first batch, is interrupted after two more, then resumes.
    tickets = _csv(tmp / "tickets.csv", data.customers["tickets"])

    def fail(done: int) -> None:
        raise RuntimeError(f"disk full after {done}")

    calls: list[int] = []

    def interrupt(done: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    load(tickets, default_mapping("tickets"), batch_size=8, on_progress=fail)
    load(tickets, default_mapping("tickets"), batch_size=8, on_progress=interrupt)
    load(tickets, default_mapping("tickets"), batch_size=8)

    load(_csv(tmp / "links.csv", _links(data), LINKS_TAIL), default_mapping("billing"))
    foreign = _foreign_rows(data)
    demo.write_csv(tmp / "foreign.csv", foreign, list(foreign[0]))
    load(tmp / "foreign.csv", FOREIGN)

    changed = _csv(tmp / "billing-2.csv", _changed(data.customers["billing"]))
    load(changed, default_mapping("billing"))
    load(changed, default_mapping("billing"))  # again: everything unchanged
    load(changed, default_mapping("billing"), resume=False, batch_size=7)

    # An operator splits the latest merge; an import that would join them again does not.
    with engine.begin() as conn:
        last = conn.execute(select(merge_events.c.customer_id)
                            .where(merge_events.c.kind == "merge")
                            .order_by(merge_events.c.id.desc()).limit(1)).scalar()
        if last is not None:
            steps.append({"unmerge": Store(conn, rules, clock(), "operator").unmerge(last)})
    again = [{**r, "id": r["id"] + "-AGAIN"} for r in (*FIRST[:2], *LATER)]
    load(_csv(tmp / "links-2.csv", again), default_mapping("billing"))

    pushed = import_batch(engine, [*data.customers["tickets"][:10], "not a record",
                                   {"id": "P-NEW", "name": "Pushed Person",
                                    "phone": "058-600-0011"}],
                          default_mapping("tickets"), rules, "IL", clock())
    steps.append(_report(pushed))

    for kind, per_source, columns in (
            ("incidents", data.incidents, demo.INCIDENT_COLUMNS),
            ("interactions", data.interactions, demo.INTERACTION_COLUMNS)):
        for source, history in per_source.items():
            if history:
                path = tmp / f"{source}.{kind}.csv"
                demo.write_csv(path, history[:HISTORY], columns)
                load(path, default_mapping(source, kind))
    return {"steps": _plain(steps, tmp), "tables": dump(engine, tmp)}


# --- reading it back ----------------------------------------------------------------------------

def _plain(value: Any, tmp: Path) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return value.replace(str(tmp), "<tmp>")
    if isinstance(value, dict):
        return {k: _plain(v, tmp) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, tmp) for v in value]
    return value


def dump(engine: Engine, tmp: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of the store's tables in primary-key order; JSON columns as the text stored."""
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for table in TABLES:
            cols = [cast(c, Text).label(c.name) if c.type.__class__.__name__ == "JSON" else c
                    for c in table.c]
            order = list(table.primary_key.columns)
            rows = [dict(r._mapping) for r in conn.execute(select(*cols).order_by(*order))]
            if table is outbox:
                for r in rows:
                    r["body"] = r["body"].replace(r["event_id"], "<event>")
                    r["event_id"] = "<event>"
            out[table.name] = _plain(rows, tmp)
    return out


def _lines(recorded: dict[str, Any]) -> str:
    """JSON with one step or table row a line (readable diffs, a small file)."""
    def items(values: list[Any]) -> str:
        return "[\n" + ",\n".join(json.dumps(v, ensure_ascii=False, sort_keys=True)
                                   for v in values) + "]"

    return "{" + ",\n".join(
        f'{json.dumps(dialect)}: {{"steps": {items(got["steps"])},\n"tables": {{'
        + ",\n".join(f"{json.dumps(name)}: {items(rows)}"
                      for name, rows in sorted(got["tables"].items())) + "}}"
        for dialect, got in sorted(recorded.items())) + "}\n"


def _recorded() -> dict[str, Any]:
    if not SNAPSHOT.exists():
        return {}
    loaded: dict[str, Any] = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    return loaded


PATHS = {
    "serial": partial(import_file, bulk=False),  # every batch through apply_rows, in-process
    "bulk": partial(import_file, workers=0),  # prepared in this process, written as COPY
    "workers": partial(import_file, workers=2),  # prepared in two worker processes
}


@pytest.mark.parametrize("path", list(PATHS))
def test_imports_give_the_recorded_answer(engine: Engine, tmp_path: Path, path: str) -> None:
    got = scenario(engine, tmp_path, PATHS[path])
    dialect = engine.dialect.name
    if os.environ.get("IVR_WRITE_IMPORT_SNAPSHOT") == "1" and path == "serial":
        recorded = _recorded()
        recorded[dialect] = got
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(_lines(recorded), encoding="utf-8")
    expected = _recorded().get(dialect)
    assert expected is not None, f"no recorded answer for {dialect} in {SNAPSHOT}"
    assert got["steps"] == expected["steps"]
    for name, rows in expected["tables"].items():
        assert len(got["tables"][name]) == len(rows), name
        for have, want in zip(got["tables"][name], rows, strict=True):
            assert have == want, name


# --- the pieces, against what they stand for -----------------------------------------------------

TRICKY_CSV = (
    '\ufeffid,name,phone,name,mobile\n'  # a BOM, a column named twice
    'C1,"Cohen, Dana",050-121-2121,x,\n'
    '\n'  # a blank line: the next record keeps this line's number
    'C2,"Line\nbreak ""quoted""",050-131-3131,,\r\n'
    'C3,ab"c,050-141-4141,,\r'  # a quote inside a field, a lone CR
    'C4,short\n'  # fewer fields: the rest are None
    '\r\n\r\n'
    'C5,"too",many,fields,here,and,more\n'
    'C6,"' + "x" * 140_000 + '\n",050-151-5151\n'  # over the csv field limit, two lines
    'C7,Nul\x00,050-161-6161,,\n'
    'C8,"open quote at the end,050-171-7171\n'
    'C9,never read'
)
TRICKY_JSONL = (
    '{"id": "J1", "phones": ["050-777-8888", "03-777-8888"], "n": 1.5, "ok": true}\n'
    '   \n'
    '{not json\n'
    '["a", "list"]\n'
    '"a string"\n'
    '{"id": "J2", "name": "T\u00e9mar \u05d3\u05e0\u05d4", "nested": {"a": [1, null]}}\n'
    '{"id": "J3"}'
)


@pytest.mark.parametrize(("name", "text"), [("tricky.csv", TRICKY_CSV),
                                             ("tricky.jsonl", TRICKY_JSONL),
                                             ("empty.csv", ""), ("blank.csv", "\n\nid\n"),
                                             ("header.csv", "id,name\n")])
def test_splitting_reads_every_record_as_read_rows_does(tmp_path: Path, name: str,
                                                        text: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    expected = _read_all(lambda: list(read_rows(path)))
    records = _read_all(lambda: list(split_file(path)))
    if isinstance(expected, str) or isinstance(records, str):
        assert records == expected
        return
    fieldnames = next((r[2] for r in records if r[1] == HEADER), None)
    assert list(_parse([r for r in records if r[1] != HEADER], fieldnames)) == expected


def test_a_file_undecodable_midway_stops_where_read_rows_stops(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"id,name,phone\n" + b"".join(
        f"B{i},Name {i},050-1{i:06d}\n".encode() for i in range(3000))
        + b"B-X,Ren\xe9e,050-9999999\nB-Y,After,050-9999998\n")
    expected = _read_all(lambda: list(read_rows(path)))
    records = _read_all(lambda: list(split_file(path)))
    assert isinstance(expected, str) and expected == records


def _read_all(read: Callable[[], list[Any]]) -> list[Any] | str:
    try:
        return read()
    except (UnreadableFile, csv.Error) as exc:
        return f"{type(exc).__name__}: {exc}"


def test_flat_json_is_what_json_dumps_writes() -> None:
    values = ["", "plain", 'quote " and \\ backslash', "tab\tnew\nline\rcr", "\x00\x1f\x7f",
              "\u05d3\u05e0\u05d4 \u00e9\u2028\u2029", "\ud83d\ude00 \U0001f600", None, "9" * 50]
    keys = ["z", "a", "\u05e9\u05dd", 'k"ey', "id", "m", "b", "dup", "x"]
    for ascii_raw in (False, True):
        flat = _FlatJson(keys, ascii_raw)
        for shift in range(len(values)):
            row = dict(zip(keys, values[shift:] + values[:shift], strict=True))
            texts = flat.texts(row)
            assert texts is not None
            assert texts[0] == canonical(row)
            assert texts[1] == (json.dumps(row) if ascii_raw else json.dumps(
                row, ensure_ascii=False, separators=(",", ":")))
    assert _FlatJson(keys, False).texts({"z": ["a list"]}) is None


def test_mapped_json_is_what_json_dumps_writes() -> None:
    data = demo.generate(60, seed=11, now=NOW)
    mapping = default_mapping("billing")
    assert isinstance(mapping, SourceMapping)
    rows = [*data.customers["billing"], *data.customers["tickets"],
            {"id": "U1", "name": 'Ren\u00e9e "Q" \\ \u05d3\u05e0\u05d4\t\u2028',
             "email": "\u00fc@x.il", "phone": "050-121-2121", "account_number": "12",
             "date_of_birth": "1980-01-02", "updated_at": "2026-01-01T10:00:00+02:00"}]
    for row in rows:
        record = map_record(row, mapping, "IL", NOW)
        if isinstance(record, Rejection):
            continue
        doc = to_json(record)
        assert mapped_json(record, ascii=True) == json.dumps(doc)
        assert mapped_json(record, ascii=False) == json.dumps(
            doc, ensure_ascii=False, separators=(",", ":"))
        del doc["seen_at"]
        assert mapped_json(record, ascii=True, clocked=True) == json.dumps(doc)


def test_a_customer_of_one_record_is_its_golden_record() -> None:
    data = demo.generate(60, seed=11, now=NOW)
    mapping = default_mapping("billing")
    assert isinstance(mapping, SourceMapping)
    for row in data.customers["billing"] + data.customers["tickets"]:
        record = map_record(row, mapping, "IL", NOW)
        if isinstance(record, Rejection):
            continue
        g = golden([record], Rules())
        values, phones, emails = alone(record, blocking_keys(record))
        assert values == {k: v for k, v in customer_values(g, NOW).items()
                          if k != "updated_at"}
        assert (phones, emails) == (g.fields["phones"], g.fields["emails"])


def _empty(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(TABLES):
            conn.execute(table.delete())
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence(t, 'id'), 1, false) FROM unnest("
                "ARRAY['customers', 'customer_phones', 'customer_emails', 'source_records', "
                "'merge_events', 'import_runs', 'import_rejections', 'outbox']) AS t")


def test_paths_agree_on_awkward_files(engine: Engine, tmp_path: Path) -> None:
    """What the recorded scenario has no room for, serial path against bulk path: quoting,
    blank lines and line ends of every kind, a file undecodable after two batches (those stay),
    and a source whose records change between a worker's look-up and the write."""
    people = list(demo.iter_customer_rows(60, now=NOW, source="billing"))
    tricky = tmp_path / "tricky.csv"
    # (A NUL in an id fails the rejection's insert on PostgreSQL, on every path alike.)
    tricky.write_text(TRICKY_CSV.replace("id,name,phone,name,mobile", "id,name,phone,email,"
                                         "mobile").replace("Nul\x00", "Nul"),
                      encoding="utf-8", newline="")
    broken = tmp_path / "broken.csv"
    demo.write_csv(broken, people[:40], demo.CUSTOMER_COLUMNS)
    with broken.open("ab") as fh:
        fh.write(b"B-X,Ren\xe9e,050-9999999,,,,,,,,,\n")
    jsonl = tmp_path / "tricky.jsonl"
    jsonl.write_text(TRICKY_JSONL, encoding="utf-8")
    quoted = tmp_path / "quoted.csv"
    with quoted.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(demo.CUSTOMER_COLUMNS),
                                quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows([*people[:30], *({**p, "tier": "gold"} for p in people[:10])])
    answers = []
    for run in PATHS.values():
        _empty(engine)
        clock = Ticking(NOW)
        steps: list[Any] = []
        for path, source, size in ((tricky, "crm", 3), (jsonl, "crm", 2), (broken, "billing", 16),
                                   (broken, "billing", 16), (quoted, "billing", 8)):
            try:
                steps.append(_report(run(engine, path, default_mapping(source), Rules(), "IL",
                                         clock, batch_size=size)))
            except UnreadableFile as exc:
                steps.append(str(exc).replace(str(tmp_path), "<tmp>"))
        answers.append({"steps": _plain(steps, tmp_path), "tables": dump(engine, tmp_path)})
    assert answers[1] == answers[0]
    assert answers[2] == answers[0]
