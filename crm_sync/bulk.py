"""Bulk imports, the writing half: prepared batches (``crm_sync.bulk_read``) applied one
transaction each, with exactly the answer of ``importer.apply_rows`` and
``store.Store.resolve_batch`` — the same customers and ids, merges, rejections, counts.

``apply_prepared`` keeps ``apply_rows``'s bookkeeping (unchanged records, duplicate ids, the
order rejections are found in) on the prepared values. ``BulkStore.resolve_prepared`` is
``resolve_batch`` with one shortcut: a new record that shares no key (account number, e-mail,
phone, as ``identity.cluster`` compares them) with any other record of the batch or with the
stored records of the customers the batch's keys find would be a cluster of its own, so it
skips ``cluster`` and ``golden`` and becomes a customer from the row its worker prepared; every
other record goes through ``cluster``, ``_groups`` and ``_plan_group`` as before. New
customers get their ids in the order ``resolve_batch`` gives them (groups by their smallest
record key), and every table's rows are written in the same order, so even serial ids match.
The rows go in as one ``COPY`` per table on PostgreSQL (text the worker made) and one
``executemany`` of plain tuples on SQLite.

``prepared_batches`` runs the preparation: in this process, or in a pool of worker processes
(forkserver) a few batches ahead of the writes, in file order. A file that stops being
readable fails after the complete batches before that point, as ``import_file`` always did.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, select

from crm_sync.bulk_read import (
    CUSTOMER_COLUMNS,
    HEADER,
    Batch,
    Mapped,
    Record,
    Setup,
    copy_field,
    copy_text,
    init_worker,
    prepare,
    prepare_here,
    processors,
    source_form,
    sqlite_value,
)
from crm_sync.identity import Golden, Rules, SourceRecord, blocking_keys, cluster
from crm_sync.mapping import Rejection, SourceMapping, map_record
from crm_sync.models import customer_emails, customer_phones, customers, source_records
from crm_sync.store import (
    Counts,
    Store,
    _allocate_ids,
    _Plan,
    customer_values,
    from_json,
    known,
)

PARALLEL_FROM_BYTES = 4 << 20  # files from this size are prepared in worker processes
MAX_WORKERS = 4
WAL_PAGES = 10_000  # SQLite: pages of WAL between checkpoints during a bulk import (40 MiB)
Bad = tuple[int, str | None, str]  # (line, external id, reason)
NULL = "\\N"  # COPY text's NULL
_CUSTOMER_NAMES = ("id", *CUSTOMER_COLUMNS, "updated_at", "created_at")
_RECORD_NAMES = ("source", "external_id", "customer_id", "raw", "mapped", "content_hash",
                 "first_seen_at", "last_seen_at")


class Item(NamedTuple):
    """A record of the batch that will be stored (new or changed)."""

    line: int
    key: str
    digest: str
    raw_json: str
    mapped_json: str  # with its seen_at
    account_number: str | None
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    keys: tuple[str, ...]  # identity.blocking_keys
    customer: Any  # its customer row, should it be a customer of its own
    golden_phones: tuple[str, ...]
    golden_emails: tuple[str, ...]


def _item(line: int, key: str, digest: str, raw_json: str, mapped: Mapped, now: datetime,
          dialect: str) -> Item:
    text, clocked = mapped[0], mapped[1]
    if clocked:  # to_json puts seen_at first; the rest is never empty
        sep = ('{"seen_at":"%s",' if dialect == "postgresql" else '{"seen_at": "%s", ')
        text = sep % now.isoformat() + text[1:]
    return Item(line, key, digest, raw_json, text, *mapped[2:])


def apply_prepared(conn: Connection, batch: Batch, mapping: SourceMapping, rules: Rules,
                   region: str, now: datetime, actor: str) -> tuple[Counts, list[Bad]]:
    """``importer.apply_rows`` for a prepared batch, in the caller's transaction (which holds
    the import lock)."""
    store = BulkStore(conn, rules, now, actor)
    dialect = conn.dialect.name
    bad: list[Bad] = list(batch.bad)
    existing = store.known(mapping.source, [row[1] for row in batch.rows])
    unchanged: dict[str, int] = {}
    seen: dict[str, Item] = {}
    for line, key, reject_id, digest, raw_json, prepared in batch.rows:
        prior = existing.get(key)
        if prior is not None and prior.content_hash == digest:
            unchanged[prior.external_id] = prior.id
            seen.pop(prior.external_id, None)
            continue
        outcome = prepared
        if outcome is None:  # map_record raised in the worker: here it raises again
            mapped = map_record(json.loads(raw_json), mapping, region, now)
            outcome = (mapped.reason if isinstance(mapped, Rejection)
                       else source_form(mapped, dialect))
        if isinstance(outcome, str):
            bad.append((line, reject_id, outcome))
            continue
        earlier = seen.get(key)
        if earlier is not None:
            bad.append((earlier.line, key, f"duplicate id: superseded by line {line}"))
        unchanged.pop(key, None)
        seen[key] = _item(line, key, digest, raw_json, outcome, now, dialect)
    store.touch(list(unchanged.values()))
    counts = store.resolve_prepared(mapping.source, list(seen.values()), existing)
    counts.unchanged += len(unchanged)
    counts.rejected = len(bad)
    return counts, sorted(bad, key=lambda b: b[0])


class BulkStore(Store):
    """``Store.resolve_batch`` on prepared records, written as text."""

    def resolve_prepared(self, source: str, todo: Sequence[Item],
                         existing: dict[str, Any]) -> Counts:
        counts = Counts()
        if not todo:
            return counts
        todo_ids = {item.key for item in todo}
        owners = {existing[x].customer_id for x in todo_ids
                  if x in existing and existing[x].customer_id}
        candidates = self.ids_with_keys(
            sorted({i.account_number for i in todo if i.account_number}),
            sorted({e for i in todo for e in i.emails}),
            sorted({p for i in todo for p in i.phones})) | owners
        stored = [s for s in self._records_of(candidates)
                  if not (s.record.source == source and s.record.external_id in todo_ids)]
        owner_of: dict[tuple[str, str], int | None] = {s.record.key: s.customer_id
                                                       for s in stored}
        for item in todo:
            prior = existing.get(item.key)
            owner_of[(source, item.key)] = prior.customer_id if prior is not None else None
        separated = self._separated(candidates)

        # Who shares a key with anybody: only they need clustering.
        counted = Counter(k for s in stored for k in blocking_keys(s.record))
        counted.update(k for item in todo for k in item.keys)
        shared = {k for k, n in counted.items() if n > 1}
        alone = [item for item in todo
                 if item.key not in existing and shared.isdisjoint(item.keys)]
        lonely = {item.key for item in alone}
        records = {item.key: self._record(source, item) for item in todo
                   if item.key not in lonely}
        groups = self._groups(cluster([*records.values(), *(s.record for s in stored)],
                                      self.rules), owner_of) if records or stored else []
        ordered: list[tuple[tuple[str, str], Item | list[SourceRecord]]] = [
            *((g[0].key, g) for g in groups), *(((source, i.key), i) for i in alone)]
        ordered.sort(key=lambda entry: entry[0])

        plan = _Plan()
        new: list[Item | tuple[Golden, list[SourceRecord]]] = []
        for _key, entry in ordered:
            if isinstance(entry, Item):
                counts.created += 1
                new.append(entry)
                continue
            before = len(plan.new_customers)
            self._plan_group(entry, owner_of, separated, plan, counts, source, existing,
                             todo_ids)
            if len(plan.new_customers) > before:
                new.append(plan.new_customers[-1])
        self._write_prepared(source, todo, existing, plan, new)
        return counts

    @staticmethod
    def _record(source: str, item: Item) -> SourceRecord:
        return from_json(source, item.key, json.loads(item.mapped_json))

    def _write_prepared(self, source: str, todo: Sequence[Item], existing: dict[str, Any],
                        plan: _Plan, new: list[Item | tuple[Golden, list[SourceRecord]]],
                        ) -> None:
        """``Store._write``: new customers, settled ones, then the source records."""
        conn, now = self.conn, self.now
        writer = _Writer(conn, now)
        owner: dict[tuple[str, str], int] = {}
        if new:
            ids = _allocate_ids(conn, len(new))
            phone_rows: list[Any] = []
            mail_rows: list[Any] = []
            customer_rows = []
            numbers: Sequence[str]
            mails: Sequence[str]
            key = writer.key
            for cid, entry in zip(ids, new, strict=True):
                if isinstance(entry, Item):
                    owner[(source, entry.key)] = cid
                    customer_rows.append(writer.alone(cid, entry.customer))
                    numbers, mails = entry.golden_phones, entry.golden_emails
                else:
                    g, members = entry
                    for r in members:
                        owner[r.key] = cid
                    customer_rows.append(writer.row(
                        customers, _CUSTOMER_NAMES,
                        {"id": cid, **customer_values(g, now), "created_at": now}))
                    numbers = writer.texts(g.fields["phones"])
                    mails = writer.texts(g.fields["emails"])
                if numbers:
                    phone_rows += [key(cid, p) for p in numbers]
                if mails:
                    mail_rows += [key(cid, e) for e in mails]
            writer.insert(customers, _CUSTOMER_NAMES, customer_rows)
            writer.insert(customer_phones, ("customer_id", "e164"), phone_rows)
            writer.insert(customer_emails, ("customer_id", "email"), mail_rows)
        owner.update(self._settle(plan))

        writer.insert(source_records, _RECORD_NAMES, [
            writer.record(source, item, owner.get((source, item.key)))
            for item in todo if item.key not in existing])
        self._update_records([{
            "rid": existing[item.key].id,
            "customer_id": owner.get((source, item.key), existing[item.key].customer_id),
            "raw": json.loads(item.raw_json), "mapped": json.loads(item.mapped_json),
            "content_hash": item.digest, "last_seen_at": now}
            for item in todo if item.key in existing])


def _pg_key(cid: int, value: str) -> str:
    return f"{cid}\t{value}\n"


def _sqlite_key(cid: int, value: str) -> tuple[int, str]:
    return (cid, value)


class _Writer:
    """Rows in the form the connection's fastest insert takes: COPY text lines on
    PostgreSQL, tuples of bind-processed values on SQLite."""

    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"
        stamp = processors(customers, ("updated_at",))[0]
        self.now = copy_field(now) if self.pg else sqlite_value(stamp(now))
        self._processors: dict[str, list[Any]] = {}

    def row(self, table: Any, names: Sequence[str], values: dict[str, Any]) -> Any:
        if self.pg:
            return "\t".join(copy_field(values[n]) for n in names) + "\n"
        found = self._processors.get(table.name)
        if found is None:
            found = self._processors[table.name] = processors(table, names)
        return tuple(sqlite_value(p(values[n]) if p else values[n])
                     for n, p in zip(names, found, strict=True))

    def alone(self, cid: int, customer: Any) -> Any:
        if self.pg:
            return f"{cid}\t{customer}\t{self.now}\t{self.now}\n"
        return (cid, *customer, self.now, self.now)

    def texts(self, values: Sequence[str]) -> Sequence[str]:
        return [copy_text(v) for v in values] if self.pg else values

    @property
    def key(self) -> Callable[[int, str], Any]:
        """A phone's or e-mail's row: (customer id, value)."""
        return _pg_key if self.pg else _sqlite_key

    def record(self, source: str, item: Item, cid: int | None) -> Any:
        if self.pg:
            owner = NULL if cid is None else cid
            return (f"{copy_text(source)}\t{copy_text(item.key)}\t{owner}\t"
                    f"{copy_text(item.raw_json)}\t{copy_text(item.mapped_json)}\t"
                    f"{item.digest}\t{self.now}\t{self.now}\n")
        return (source, item.key, cid, item.raw_json, item.mapped_json, item.digest,
                self.now, self.now)

    def insert(self, table: Any, names: Sequence[str], rows: list[Any]) -> None:
        if not rows:
            return
        columns = ", ".join(table.c[n].name for n in names)  # the table's own names only
        if self.pg:
            driver = self.conn.connection.driver_connection
            assert driver is not None
            with driver.cursor() as cur, cur.copy(
                    f"COPY {table.name} ({columns}) FROM STDIN") as copy:
                copy.write("".join(rows))
            return
        self.conn.exec_driver_sql(
            f"INSERT INTO {table.name} ({columns}) "  # noqa: S608
            f"VALUES ({', '.join('?' for _ in names)})", rows)


@contextmanager
def fewer_checkpoints(conn: Connection, bulk: bool = True) -> Iterator[None]:
    """SQLite, a bulk batch: the WAL is copied back into the database at most every
    ``WAL_PAGES`` pages rather than every 1,000 (the default), for the commit of the block
    (``import_file``'s batch transaction); then the connection's own setting again. Fewer
    checkpoints write the pages every batch touches (index roots, the newest leaves) back
    fewer times: 10-14% of an import's CPU. A connection that does not checkpoint by
    itself (the server's: a background thread does) is left alone."""
    driver = conn.connection.driver_connection if bulk and conn.dialect.name == "sqlite" \
        else None
    before = driver.execute("PRAGMA wal_autocheckpoint").fetchone()[0] if driver else 0
    if driver is None or not 0 < before < WAL_PAGES:
        yield
        return
    driver.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
    try:
        yield
    finally:
        driver.execute(f"PRAGMA wal_autocheckpoint={int(before)}")


# --- preparing, ahead of the writes -------------------------------------------------------------

def workers_for(path: Path, workers: int | None, dialect: str) -> int:
    """Worker processes for a file: as asked, else none for a small file (starting them
    costs more than they save) and for a large one, at most ``MAX_WORKERS``, a core each
    but one on PostgreSQL, where this process and the server take turns on the last (the
    server writes while this process waits): one worker more made the three share two cores
    and ran 28% slower (bench/results.md). (Preparing a batch here whenever the workers
    were behind did not help either: this process and the server are the longer queue.)

    Workers start as multiprocessing's forkserver starts them: each imports the program's
    main module, so a script importing at its top level needs the usual ``if __name__ ==
    "__main__":`` guard (``ivr`` and the benchmarks have it). A main module that is no
    file (``python -``, a notebook) gets no workers unless asked."""
    if workers is not None:
        return max(0, workers)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else (os.cpu_count() or 1)
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    if cores < 2 or path.stat().st_size < PARALLEL_FROM_BYTES \
            or (main is not None and not Path(main).is_file()):
        return 0
    return min(cores - 1 if dialect == "postgresql" else cores, MAX_WORKERS)


def _tasks(records: Iterator[Record], size: int, skip: int
           ) -> Iterator[tuple[list[Record], list[str] | None]]:
    """The records after the first ``skip``, in batches of ``size`` with the CSV header."""
    fieldnames: list[str] | None = None
    batch: list[Record] = []
    index = 0
    for record in records:
        if record[1] == HEADER:
            fieldnames = record[2]
            continue
        index += 1
        if index <= skip:
            continue
        batch.append(record)
        if len(batch) >= size:
            yield batch, fieldnames
            batch = []
    if batch:
        yield batch, fieldnames


def _context() -> Any:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["crm_sync.bulk_read"])
        return context
    return multiprocessing.get_context("spawn")


def prepared_batches(engine: Engine, records: Iterator[Record], mapping: SourceMapping,
                     region: str, size: int, skip: int, workers: int) -> Iterator[Batch]:
    """A file's batches (``records``: ``bulk_read.split``) after the first ``skip``
    records, prepared, in order. When the store holds records of the source, the preparing
    looks up their content hashes (a re-import maps only what changed)."""
    with engine.connect() as conn:
        known_source = conn.execute(
            select(source_records.c.id).where(source_records.c.source == mapping.source)
            .limit(1)).first() is not None
    setup = Setup(mapping, region, engine.dialect.name,
                  engine.url.render_as_string(hide_password=False) if known_source else None)
    tasks = _tasks(records, size, skip)

    def look_up(keys: list[str]) -> dict[str, str]:
        with engine.connect() as conn:
            return {x: r.content_hash for x, r in known(conn, mapping.source, keys).items()}

    stored = look_up if known_source else None
    if workers <= 0:
        for chunk, fieldnames in tasks:
            yield prepare(chunk, fieldnames, setup, stored)
        return
    pool = ProcessPoolExecutor(workers, mp_context=_context(), initializer=init_worker,
                               initargs=(setup,))
    window: deque[Future[Batch]] = deque()
    failure: Exception | None = None
    more = True
    try:
        while True:
            while more and failure is None and len(window) < 2 * workers + 1:
                try:
                    chunk, fieldnames = next(tasks)
                except StopIteration:
                    more = False
                except Exception as exc:  # raised after the batches before it
                    failure = exc
                else:
                    window.append(pool.submit(prepare_here, chunk, fieldnames))
            if not window:
                break
            yield window.popleft().result()
        if failure is not None:
            raise failure
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
