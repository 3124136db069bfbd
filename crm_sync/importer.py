"""Imports: CSV / JSON Lines files and pushed batches through one code path.

Every batch is one transaction: its records, its rejections and the run's progress
(``import_runs.records_done``) commit together. An interrupted run (Ctrl-C, a crash, a kill)
therefore resumes after its last committed record when the same file is imported again, and
because upserts key on (source, external_id) nothing is ever doubled either way.

Its size (~500 lines): reading, batching, resume and the bulk path's hand-off to worker
processes (crm_sync.bulk).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, bindparam, insert, select, update

from crm_sync.bulk import apply_prepared, fewer_checkpoints, prepared_batches, workers_for
from crm_sync.bulk_read import HEADER, NUL_REASON, Record, split
from crm_sync.identity import Rules
from crm_sync.mapping import (
    HistoryMapping,
    HistoryRow,
    Mapping,
    Rejection,
    SourceMapping,
    map_history,
    map_record,
)
from crm_sync.models import import_rejections as rejections
from crm_sync.models import import_runs as runs
from crm_sync.models import incidents, interactions
from crm_sync.models import source_records as records
from crm_sync.outbox import emit_many
from crm_sync.store import Counts, Incoming, Store, canonical, content_hash, where_in

HISTORY_TABLES: dict[str, Table] = {"incidents": incidents, "interactions": interactions}
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
BATCH = 5000
# SQLite has one writer: a batch holds the write lock while it resolves (~0.3 s for 1,000
# records), and a webhook waits for it (IVR_SQLITE_BUSY_TIMEOUT_MS, 2 s by default).
SQLITE_BATCH = 1000


def default_batch(engine: Engine) -> int:
    return SQLITE_BATCH if engine.dialect.name == "sqlite" else BATCH
ANALYZE_AFTER = 50_000  # records imported in a run after which PostgreSQL gets ANALYZE
_ADVISORY_LOCK = 0x1F5_C0DE  # serialises identity resolution across processes (PostgreSQL)

_NUL = "\\u0000"  # how JSON text spells a NUL character
Row = tuple[int, dict[str, Any] | str]  # (line or index, the record or why it is unreadable)
Progress = Callable[[int], None]  # records done so far in this run
T = TypeVar("T")


class UnreadableFile(ValueError):
    """A file that cannot be imported at all (unknown format, unreadable header)."""


@dataclass(frozen=True)
class Rejected:
    line: int | None
    external_id: str | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "record"
        who = f" (id {self.external_id})" if self.external_id else ""
        return f"{where}{who}: {self.reason}"


@dataclass
class Report:
    source: str
    kind: str
    counts: Counts = field(default_factory=Counts)
    rejected: list[Rejected] = field(default_factory=list)
    run_id: int | None = None
    resumed_after: int = 0  # records a previous, interrupted run had already committed
    records: int = 0  # records read in this run (not counting resumed ones)
    status: str = "running"

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind, "run_id": self.run_id,
                "status": self.status, "resumed_after": self.resumed_after,
                **self.counts.as_dict(),
                "rejections": [{"line": r.line, "external_id": r.external_id,
                                "reason": r.reason} for r in self.rejected]}


class Interrupted(Exception):
    def __init__(self, report: Report) -> None:
        super().__init__(f"interrupted after {report.resumed_after + report.records} records")
        self.report = report


# --- reading ------------------------------------------------------------------------------------

def file_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UnreadableFile(f"{path}: unknown format {path.suffix!r}; use .csv or .jsonl")
    return fmt


def read_rows(path: Path, encoding: str = "utf-8-sig") -> Iterator[Row]:
    """(line, row) for every record; a record that cannot be read gives (line, reason) and
    reading goes on. Text that is not in ``encoding`` stops the file (UnreadableFile)."""
    yield from _readable(_read_rows(path, encoding), path, encoding)


def split_file(path: Path, encoding: str = "utf-8-sig") -> Iterator[Record]:
    """``read_rows`` unparsed (``bulk_read.split``): the same records, lines and errors."""
    for record in _readable(split(path, file_format(path), encoding), path, encoding):
        if record[1] == HEADER and not record[2]:
            raise UnreadableFile(f"{path}:1: empty file, expected a header line")
        yield record


def _readable(records: Iterator[T], path: Path, encoding: str) -> Iterator[T]:
    try:
        yield from records
    except UnicodeDecodeError as exc:
        raise UnreadableFile(
            f"{path}: not {encoding} text ({exc.reason} at byte {exc.start} of a read "
            "block); export the file as UTF-8 or name its encoding, e.g. --encoding cp1255"
        ) from None
    except LookupError:
        raise UnreadableFile(f"unknown text encoding {encoding!r}") from None


def _read_rows(path: Path, encoding: str) -> Iterator[Row]:
    if file_format(path) == "csv":
        with path.open(newline="", encoding=encoding) as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames:
                raise UnreadableFile(f"{path}:1: empty file, expected a header line")
            width = len(reader.fieldnames)
            start = reader.line_num + 1
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:  # e.g. a NUL byte: this record only
                    yield start, f"unreadable CSV: {exc}"
                else:
                    if None in row:
                        extra = row[None]
                        yield start, (f"{width + len(extra) if isinstance(extra, list) else '?'}"
                                      f" fields, the header has {width}")
                    else:
                        yield start, row
                start = reader.line_num + 1
    with path.open(encoding=encoding) as fh:
        for number, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, f"not JSON: {exc.msg} at column {exc.colno}"
                continue
            if isinstance(value, dict):
                yield number, value
            else:
                yield number, f"expected a JSON object, got {type(value).__name__}"


def fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def estimate_records(path: Path) -> int:
    """Lines in the file (minus the CSV header): the progress bar's total."""
    lines = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            lines += chunk.count(b"\n")
    return max(0, lines - (1 if file_format(path) == "csv" else 0))


# --- one batch ----------------------------------------------------------------------------------

def _lock(conn: Connection) -> None:
    """One batch resolves identities at a time, whichever process runs it."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK})")
    else:
        # A write statement (that changes nothing) takes SQLite's write lock now, before
        # the batch reads: no other writer can slip in between its reads and its writes.
        conn.exec_driver_sql("UPDATE import_runs SET id = id WHERE 0")


def apply_rows(conn: Connection, rows: Sequence[Row], mapping: Mapping, rules: Rules,
               region: str, now: datetime, actor: str) -> tuple[Counts, list[Rejected]]:
    """Map, check and store one batch in the caller's transaction."""
    _lock(conn)
    if isinstance(mapping, HistoryMapping):
        return _apply_history(conn, rows, mapping, now)
    bad: list[Rejected] = []
    store = Store(conn, rules, now, actor)
    # Records sent again exactly as stored are not even mapped: re-imports stay cheap.
    hashed = []
    for line, row in rows:
        if isinstance(row, dict):
            text = canonical(row)
            if _NUL in text:
                bad.append(Rejected(line, str(row.get(mapping.id) or "") or None, NUL_REASON))
            else:
                hashed.append((line, row, content_hash(row, text)))
    existing = store.known(mapping.source, [
        str(row.get(mapping.id) or "").strip() for _line, row, _h in hashed])
    unchanged: dict[str, int] = {}
    seen: dict[str, tuple[int, Incoming]] = {}
    for line, row in rows:
        if isinstance(row, str):
            bad.append(Rejected(line, None, row))
    for line, row, digest in hashed:
        prior = existing.get(str(row.get(mapping.id) or "").strip())
        if prior is not None and prior.content_hash == digest:
            unchanged[prior.external_id] = prior.id
            seen.pop(prior.external_id, None)
            continue
        mapped = map_record(row, mapping, region, now)
        if isinstance(mapped, Rejection):
            bad.append(Rejected(line, str(row.get(mapping.id) or "") or None, mapped.reason))
            continue
        earlier = seen.get(mapped.external_id)
        if earlier is not None:
            bad.append(Rejected(earlier[0], mapped.external_id,
                                f"duplicate id: superseded by line {line}"))
        unchanged.pop(mapped.external_id, None)
        seen[mapped.external_id] = (line, Incoming(mapped, row, digest))
    store.touch(list(unchanged.values()))
    counts = store.resolve_batch(mapping.source, [item for _line, item in seen.values()],
                                 existing)
    counts.unchanged += len(unchanged)
    counts.rejected = len(bad)
    return counts, sorted(bad, key=_by_line)


def _apply_history(conn: Connection, rows: Sequence[Row], mapping: HistoryMapping,
                   now: datetime) -> tuple[Counts, list[Rejected]]:
    table = HISTORY_TABLES[mapping.kind]
    bad: list[Rejected] = []
    good: dict[str, tuple[int, HistoryRow]] = {}
    for line, row in rows:
        if isinstance(row, str):
            bad.append(Rejected(line, None, row))
            continue
        if _NUL in canonical(row):
            bad.append(Rejected(line, str(row.get(mapping.id) or "") or None, NUL_REASON))
            continue
        mapped = map_history(row, mapping)
        if isinstance(mapped, Rejection):
            bad.append(Rejected(line, str(row.get(mapping.id) or "") or None, mapped.reason))
            continue
        if mapped.external_id in good:
            bad.append(Rejected(good[mapped.external_id][0], mapped.external_id,
                                f"duplicate id: superseded by line {line}"))
        good[mapped.external_id] = (line, mapped)

    owners: dict[str, tuple[int, int | None]] = {}  # customer's external id -> (record, owner)
    wanted = sorted({h.customer_external_id for _l, h in good.values()})
    for clause in where_in(conn, records.c.external_id, wanted):
        for rid, ext, cid in conn.execute(
                select(records.c.id, records.c.external_id, records.c.customer_id)
                .where(records.c.source == mapping.customers_from, clause)):
            owners[ext] = (rid, cid)
    existing: dict[str, Any] = {}
    ids = sorted(good)
    columns = [table.c[name] for name in sorted({k for _l, h in good.values() for k in h.values})]
    for clause in where_in(conn, table.c.external_id, ids):
        for found in conn.execute(
                select(table.c.id, table.c.external_id, table.c.customer_id,
                       table.c.source_record_id, *columns)
                .where(table.c.source == mapping.source, clause)):
            existing[found.external_id] = found
    counts = Counts()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    # Outbox events for other systems (never back to this source: crm_sync.outbox).
    events: list[tuple[int, str, dict[str, Any]]] = []
    singular = mapping.kind[:-1]  # incident / interaction
    for ext, (line, h) in good.items():
        owner = owners.get(h.customer_external_id)
        if owner is None or owner[1] is None:
            bad.append(Rejected(line, ext, f"no customer {h.customer_external_id!r} in source "
                                           f"{h.customer_source!r} (import its customers first)"))
            continue
        values = {**h.values, "customer_id": owner[1], "source_record_id": owner[0]}
        prior = existing.get(ext)
        if prior is None:
            inserts.append({**values, "source": mapping.source, "external_id": ext})
            counts.created += 1
            events.append((owner[1], f"{singular}.created",
                           {"source": mapping.source, "external_id": ext, **h.values}))
        elif all(_same(getattr(prior, k), v) for k, v in values.items()):
            counts.unchanged += 1
        else:
            updates.append({**values, "row_id": prior.id})
            counts.updated += 1
            events.append((owner[1], f"{singular}.updated",
                           {"source": mapping.source, "external_id": ext, **h.values}))
    if inserts:
        for group in _by_keys(inserts).values():
            conn.execute(insert(table), group)
    if updates:
        for keys, group in _by_keys(updates).items():
            conn.execute(update(table).where(table.c.id == bindparam("row_id"))
                         .values({k: bindparam(k) for k in keys if k != "row_id"}), group)
    emit_many(conn, events, now, origin=mapping.source)
    counts.rejected = len(bad)
    return counts, sorted(bad, key=_by_line)


def _by_line(r: Rejected) -> int:
    return -1 if r.line is None else r.line


def _same(stored: Any, new: Any) -> bool:
    if isinstance(stored, datetime) and isinstance(new, datetime):
        return stored.timestamp() == new.timestamp()
    return bool(stored == new)


def _by_keys(rows: list[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """executemany needs the same keys in every row: group rows by their key set."""
    out: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(tuple(sorted(row)), []).append(row)
    return out


# --- runs ---------------------------------------------------------------------------------------

def _save_batch(conn: Connection, run_id: int, counts: Counts, bad: list[Rejected],
                done: int) -> None:
    if bad:
        conn.execute(insert(rejections), [
            {"run_id": run_id, "line": r.line, "external_id": r.external_id,
             "reason": r.reason} for r in bad])
    values = {name: getattr(runs.c, name) + value
              for name, value in counts.as_dict().items()}
    conn.execute(update(runs).where(runs.c.id == run_id)
                 .values(records_done=runs.c.records_done + done, **values))


def _resumable(conn: Connection, source: str, kind: str, print_: str) -> Any:
    return conn.execute(
        select(runs).where(runs.c.source == source, runs.c.kind == kind,
                           runs.c.fingerprint == print_,
                           runs.c.status.in_(("running", "interrupted", "failed")))
        .order_by(runs.c.id.desc()).limit(1)).one_or_none()


def import_file(engine: Engine, path: Path, mapping: Mapping, rules: Rules, region: str,
                now: Callable[[], datetime], *, batch_size: int | None = None,
                on_progress: Progress | None = None, resume: bool = True,
                encoding: str = "utf-8-sig", workers: int | None = None,
                bulk: bool = True) -> Report:
    """Import one file; resumes an interrupted run of the same file unless ``resume=False``.

    Customers go through the bulk path (``crm_sync.bulk``: prepared in ``workers`` processes,
    by default the cores for a large file, written with COPY); ``bulk=False`` runs every
    batch through ``apply_rows`` in this process, as pushes and pulls do — the same answer."""
    file_format(path)
    batch_size = batch_size or default_batch(engine)
    kind = mapping.kind
    report = Report(mapping.source, kind)
    digest = fingerprint(path)
    with engine.begin() as conn:
        prior = _resumable(conn, mapping.source, kind, digest) if resume else None
        if prior is not None:
            run_id = prior.id
            report.resumed_after = prior.records_done
            conn.execute(update(runs).where(runs.c.id == run_id).values(status="running"))
        else:
            run_id = conn.execute(insert(runs).values(
                source=mapping.source, kind=kind, origin=str(path), fingerprint=digest,
                status="running", records_done=0, created=0, updated=0, merged=0,
                unchanged=0, rejected=0, customers_merged=0, started_at=now())
                .returning(runs.c.id)).scalar_one()
    report.run_id = run_id
    actor = f"import:{mapping.source}"

    size = batch_size

    def apply(conn: Connection, batch: Any, at: datetime) -> tuple[Counts, list[Rejected], int]:
        if isinstance(batch, list):
            return (*apply_rows(conn, batch, mapping, rules, region, at, actor), len(batch))
        assert isinstance(mapping, SourceMapping)
        _lock(conn)
        counts, bad = apply_prepared(conn, batch, mapping, rules, region, at, actor)
        return counts, [Rejected(*b) for b in bad], batch.size

    def flush(batch: Any) -> None:
        with engine.connect() as conn, fewer_checkpoints(conn, not isinstance(batch, list)), \
                conn.begin():
            counts, bad, records = apply(conn, batch, now())
            _save_batch(conn, run_id, counts, bad, records)
        report.counts.add(counts)
        report.rejected.extend(bad)
        report.records += records
        if on_progress:
            on_progress(report.resumed_after + report.records)

    batches: Iterator[Any] = (
        prepared_batches(engine, split_file(path, encoding), mapping, region, size,
                         report.resumed_after, workers_for(path, workers, engine.dialect.name))
        if bulk and isinstance(mapping, SourceMapping)
        else _batches(read_rows(path, encoding), size, report.resumed_after))
    try:
        with closing(batches):  # type: ignore[type-var]
            for batch in batches:
                flush(batch)
    except KeyboardInterrupt:
        _finish(engine, run_id, "interrupted", None)
        report.status = "interrupted"
        raise Interrupted(report) from None
    except BaseException:
        _finish(engine, run_id, "failed", None)
        raise
    _finish(engine, run_id, "done", now())
    report.status = "done"
    if engine.dialect.name == "postgresql" and report.records >= ANALYZE_AFTER:
        # Fresh statistics now rather than when autovacuum gets round to it: the look-ups
        # of the next batch, import and call are planned with them.
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE customers, customer_phones, customer_emails, "
                                 "source_records")
    if report.resumed_after:
        # The earlier part's counts and rejections, so the report covers the whole file.
        _merge_earlier(engine, report)
    return report


def _batches(rows: Iterator[Row], size: int, skip: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for index, row in enumerate(rows):
        if index < skip:
            continue
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _finish(engine: Engine, run_id: int, status: str, at: datetime | None) -> None:
    with engine.begin() as conn:
        conn.execute(update(runs).where(runs.c.id == run_id)
                     .values(status=status, finished_at=at))


def _merge_earlier(engine: Engine, report: Report) -> None:
    with engine.connect() as conn:
        row = conn.execute(select(runs).where(runs.c.id == report.run_id)).one()
        report.counts = Counts(**{name: getattr(row, name) for name in Counts().as_dict()})
        report.rejected = [Rejected(r.line, r.external_id, r.reason) for r in conn.execute(
            select(rejections).where(rejections.c.run_id == report.run_id)
            .order_by(rejections.c.id))]


def import_batch(engine: Engine, records_: Sequence[Any], mapping: Mapping,
                 rules: Rules, region: str, now: datetime) -> Report:
    """A pushed batch (HTTP), rejections numbered by position (0-based). One transaction on
    PostgreSQL; on SQLite one per ``SQLITE_BATCH`` records, so webhooks are never kept
    waiting on the write lock for long (upserts make a retried push harmless)."""
    report = Report(mapping.source, mapping.kind)
    with engine.begin() as conn:
        run_id = conn.execute(insert(runs).values(
            source=mapping.source, kind=mapping.kind, origin="http", fingerprint=None,
            status="running", records_done=0, created=0, updated=0, merged=0, unchanged=0,
            rejected=0, customers_merged=0, started_at=now)
            .returning(runs.c.id)).scalar_one()
    rows: list[Row] = [(i, r if isinstance(r, dict) else
                        f"expected a JSON object, got {type(r).__name__}")
                       for i, r in enumerate(records_)]
    step = SQLITE_BATCH if engine.dialect.name == "sqlite" else max(1, len(rows))
    for start in range(0, len(rows), step):
        chunk = rows[start:start + step]
        with engine.begin() as conn:
            counts, bad = apply_rows(conn, chunk, mapping, rules, region, now,
                                     f"push:{mapping.source}")
            _save_batch(conn, run_id, counts, bad, len(chunk))
        report.counts.add(counts)
        report.rejected.extend(bad)
        report.records += len(chunk)
    _finish(engine, run_id, "done", now)
    report.run_id = run_id
    report.status = "done"
    return report
