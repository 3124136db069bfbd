"""Bulk imports, the reading half: a customer file's records are *split* in the importing
process and *prepared* in worker processes (or in-process for small files).

Splitting is what ``importer.read_rows`` does without parsing: the importing process reads the
file line by line through the same text decoder, so an undecodable byte stops the file at the
same record, and hands each record on with its line number. A CSV line without a double quote
is one record by itself (the csv module can only continue a record across lines inside a
quoted field) and goes on as text, for a worker's csv reader; a line with a quote may open a
multi-line record, so the csv module reads that record here, from the same file iterator, as
``read_rows`` would. Blank lines are skipped and keep the next record's line number where
``csv.DictReader`` leaves it. JSON Lines are one record a non-blank line.

Preparing (``prepare``) is the pure per-record work of ``importer.apply_rows``: parse, the
canonical JSON and its hash, the NUL check, ``mapping.map_record``, and everything the
database will be given for a new record — the raw and mapped JSON as the driver would write
them, and, for a record that turns out to be a customer of its own, the golden record's row,
phones and e-mails. What depends on the batch's clock reading is left for the importing
process: a record whose source gave no ``seen_at`` is mapped with a stand-in moment and
flagged, so its ``seen_at`` becomes the batch's ``now`` there, exactly as before.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from json.encoder import encode_basestring, encode_basestring_ascii
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Engine, NullPool, Table, create_engine
from sqlalchemy.dialects import sqlite

from crm_sync.identity import SourceRecord, blocking_keys
from crm_sync.mapping import Rejection, SourceMapping, map_record
from crm_sync.models import customers, source_records
from crm_sync.store import canonical, known, to_json

HEADER, CSV_LINE, CSV_ROW, JSON_LINE, BROKEN = range(5)  # kinds of a split record
Record = tuple[int, int, Any]  # (line, kind, payload)
CUSTOMER_COLUMNS = ("name", "account_number", "preferred_language", "tier", "segment",
                    "status", "date_of_birth", "lineage")
NUL = "\\u0000"  # how JSON text spells a NUL character
NUL_REASON = "contains a NUL (0x00) character, which the database cannot store"
_BLANK = frozenset({"\n", "\r\n", "\r"})  # lines csv.reader reads as [] (DictReader skips)
_STAND_IN = datetime(1, 1, 1, tzinfo=UTC)  # map_record's received_at; flagged by identity


# --- splitting (the importing process) ----------------------------------------------------------

def split(path: Path, fmt: str, encoding: str) -> Iterator[Record]:
    """Every record of the file, in order; for CSV the header first, as ``HEADER``."""
    if fmt == "csv":
        yield from _split_csv(path, encoding)
        return
    with path.open(encoding=encoding) as fh:
        for number, text in enumerate(fh, start=1):
            if text.strip():
                yield number, JSON_LINE, text


def _split_csv(path: Path, encoding: str) -> Iterator[Record]:
    """``read_rows``'s CSV records and line numbers. ``read_rows`` numbers a record
    ``csv.DictReader.line_num + 1`` as it was after the record before: the line after it on
    success (a blank line the reader then skipped included), but after an unreadable record
    ``line_num`` has not moved past the last good one (or past the first blank line read
    before the failure), and neither do the numbers here."""
    limit = csv.field_size_limit()
    with path.open(newline="", encoding=encoding) as fh:
        header = csv.reader(fh)
        fieldnames = next(header, None)
        if not fieldnames:
            yield 1, HEADER, None
            return
        yield 1, HEADER, fieldnames
        done = line_num = header.line_num  # lines read; DictReader.line_num
        blank = 0  # the first blank line read since the last record, if any
        for text in fh:
            done += 1
            if '"' not in text and len(text) <= limit:  # one line, and the csv module
                if text in _BLANK:  # cannot fail on it (no quote, no field too long)
                    blank = blank or done
                    continue
                yield line_num + 1, CSV_LINE, text
                line_num, blank = done, 0
                continue
            more: list[str] = []

            def lines(first: str = text, more: list[str] = more) -> Iterator[str]:
                yield first
                for following in fh:
                    more.append(following)
                    yield following

            try:
                row = next(csv.reader(lines()))
            except csv.Error as exc:
                yield line_num + 1, BROKEN, f"unreadable CSV: {exc}"
                line_num = blank or line_num
            else:
                yield line_num + 1, CSV_ROW, row
                line_num = done + len(more)
            done += len(more)
            blank = 0


# --- preparing (a worker) -----------------------------------------------------------------------

@dataclass(frozen=True)
class Setup:
    """What every worker of one import needs, sent once."""

    mapping: SourceMapping
    region: str
    dialect: str  # "postgresql" or "sqlite": the form of the database values
    url: str | None = None  # the store, to skip mapping records stored unchanged


# What a worker hands back, as plain tuples (a NamedTuple costs three times as much to pickle
# and unpickle, and the importing process unpickles every record):
#
# a hashed record: (line, key, reject_id, digest, raw_json, outcome) — key the external id,
#   stripped; reject_id the id a rejection names; raw_json the raw record as the driver writes
#   it; outcome a Mapped, a rejection's reason, or None when map_record raised (the importing
#   process maps it again, and so raises where apply_rows would);
# Mapped: (mapped_json, clocked, account_number, emails, phones, keys, customer,
#   golden_phones, golden_emails) — to_json(record) as the driver writes it (without seen_at
#   when clocked: the source gave none, it is the batch's now); the values the store looks
#   up; identity.blocking_keys; the customer row (no id or timestamps), its phones and
#   e-mails should the record be a customer of its own.
Prepared = tuple[int, str, "str | None", str, str, Any]
Mapped = tuple[str, bool, "str | None", tuple[str, ...], tuple[str, ...], tuple[str, ...], Any,
               tuple[str, ...], tuple[str, ...]]


class Batch(NamedTuple):
    size: int  # records, unreadable ones included
    bad: list[tuple[int, str | None, str]]  # unreadable, or holding a NUL
    rows: list[Prepared]


_setup: Setup | None = None
_engine: Engine | None = None


def init_worker(setup: Setup) -> None:
    """A worker's initializer: the import's setup; Ctrl-C is the importing process's."""
    import signal  # noqa: PLC0415

    global _setup, _engine  # noqa: PLW0603
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _setup = setup
    if setup.url is not None:
        # A connection per batch, closed after it: none is left for the server to see
        # dropped when the worker exits.
        _engine = create_engine(setup.url, poolclass=NullPool)


def prepare_here(records: Sequence[Record], fieldnames: list[str] | None) -> Batch:
    """``prepare`` in a worker, with the setup ``init_worker`` left there."""
    assert _setup is not None
    return prepare(records, fieldnames, _setup, _stored if _engine is not None else None)


def _stored(keys: list[str]) -> dict[str, str]:
    assert _setup is not None and _engine is not None
    with _engine.connect() as conn:
        return {x: row.content_hash
                for x, row in known(conn, _setup.mapping.source, keys).items()}


def _parse(records: Sequence[Record], fieldnames: list[str] | None
           ) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, record or why it is unreadable), as ``importer.read_rows`` gives them."""
    texts = [payload for _line, kind, payload in records if kind == CSV_LINE]
    reader = csv.reader(texts)
    width = len(fieldnames or ())
    for line, kind, payload in records:
        if kind == BROKEN:
            yield line, payload
            continue
        if kind == JSON_LINE:
            try:
                value = json.loads(payload)
            except json.JSONDecodeError as exc:
                yield line, f"not JSON: {exc.msg} at column {exc.colno}"
                continue
            yield line, (value if isinstance(value, dict)
                         else f"expected a JSON object, got {type(value).__name__}")
            continue
        if kind == CSV_LINE:
            try:
                row = next(reader)
            except csv.Error as exc:
                yield line, f"unreadable CSV: {exc}"
                continue
        else:
            row = payload
        assert fieldnames is not None
        if len(row) > width:  # csv.DictReader would put the rest under None
            yield line, f"{len(row)} fields, the header has {width}"
            continue
        record: dict[str, Any] = dict(zip(fieldnames, row, strict=False))
        for name in fieldnames[len(row):]:
            record[name] = None
        yield line, record


def prepare(records: Sequence[Record], fieldnames: list[str] | None, setup: Setup,
            stored: Callable[[list[str]], dict[str, str]] | None = None) -> Batch:
    """The per-record work of a batch that needs no database. ``stored`` gives the content
    hashes the store holds for external ids: a record stored exactly so is not mapped (as
    in ``apply_rows``; should it have changed since, the importing process maps it)."""
    mapping, region = setup.mapping, setup.region
    form: _Form = _pg_form if setup.dialect == "postgresql" else _sqlite_form
    bad: list[tuple[int, str | None, str]] = []
    hashed: list[tuple[int, str, str | None, str, str, dict[str, Any]]] = []
    flat = _FlatJson(fieldnames or [], ascii_raw=setup.dialect != "postgresql")
    for line, row in _parse(records, fieldnames):
        if isinstance(row, str):
            bad.append((line, None, row))
            continue
        texts = flat.texts(row)
        text = texts[0] if texts else canonical(row)
        ident = row.get(mapping.id)
        reject_id = str(ident or "") or None
        if NUL in text:
            bad.append((line, reject_id, NUL_REASON))
            continue
        hashed.append((line, str(ident or "").strip(), reject_id,
                       hashlib.sha256(text.encode()).hexdigest(),
                       texts[1] if texts else form.dumps(row), row))
    same = stored([h[1] for h in hashed]) if stored is not None and hashed else {}
    rows: list[Prepared] = []
    for line, key, reject_id, digest, raw_json, row in hashed:
        outcome: Mapped | str | None = None
        if same.get(key) != digest:
            try:
                mapped = map_record(row, mapping, region, _STAND_IN)
            except Exception:  # noqa: S110 (raised again where the old path raises it)
                pass
            else:
                outcome = (mapped.reason if isinstance(mapped, Rejection)
                           else _mapped(mapped, form, mapped.seen_at is _STAND_IN))
        rows.append((line, key, reject_id, digest, raw_json, outcome))
    return Batch(len(records), bad, rows)


def _mapped(record: SourceRecord, form: _Form, clocked: bool) -> Mapped:
    keys = tuple(blocking_keys(record))
    values, phones, emails = alone(record, keys)
    return (mapped_json(record, form.ascii, clocked), clocked, record.account_number,
            record.emails, record.phones, keys, form.customer(values), form.texts(phones),
            form.texts(emails))


_TEXT_FIELDS = ("name", "account_number", "preferred_language", "tier", "segment", "status")


def mapped_json(record: SourceRecord, ascii: bool, clocked: bool = False) -> str:
    """``store.to_json(record)`` as ``json.dumps`` writes it for the driver (compact with
    non-ASCII as is for COPY, the default for SQLite's JSON type), without ``seen_at``
    when ``clocked``; put together from each value's encoding."""
    enc, sep, colon = ((encode_basestring_ascii, ", ", ": ") if ascii
                       else (encode_basestring, ",", ":"))
    parts = [] if clocked else [f'"seen_at"{colon}"{record.seen_at.isoformat()}"']
    try:
        for name in _TEXT_FIELDS:
            value = getattr(record, name)
            if value is not None:
                parts.append(f'"{name}"{colon}{enc(value)}')
        if record.phones:
            parts.append(f'"phones"{colon}[{sep.join([enc(p) for p in record.phones])}]')
        if record.emails:
            parts.append(f'"emails"{colon}[{sep.join([enc(e) for e in record.emails])}]')
    except TypeError:  # a value that is no string: json.dumps itself
        doc = to_json(record)
        if clocked:
            del doc["seen_at"]
        return json.dumps(doc) if ascii else _PgForm.dumps(doc)
    if record.date_of_birth is not None:
        parts.append(f'"date_of_birth"{colon}"{record.date_of_birth.isoformat()}"')
    return "{" + sep.join(parts) + "}"


def alone(record: SourceRecord, keys: Sequence[str]) -> tuple[dict[str, Any], tuple[str, ...],
                                                              tuple[str, ...]]:
    """``store.customer_values(identity.golden([record]))`` (without updated_at), its phones
    and e-mails: a customer of one record has its values, no lineage (no field has two
    candidates), and the phones and e-mails it is blocked on (``keys``: blocking_keys).
    tests/test_import_equivalence.py holds this to the two functions."""
    values: dict[str, Any] = {
        "name": record.name, "account_number": record.account_number,
        "preferred_language": record.preferred_language, "tier": record.tier,
        "segment": record.segment, "status": record.status or "active",
        "date_of_birth": record.date_of_birth, "lineage": {}}
    return (values, tuple([k[2:] for k in keys if k[0] == "p"]),
            tuple([k[2:] for k in keys if k[0] == "e"]))


def source_form(record: SourceRecord, dialect: str) -> Mapped:
    """``prepare``'s answer for a record mapped in the importing process."""
    return _mapped(record, _pg_form if dialect == "postgresql" else _sqlite_form,
                   clocked=False)


# --- the database's forms of the values ---------------------------------------------------------

class _FlatJson:
    """``store.canonical`` and the driver's raw JSON of a CSV row (strings and None in the
    file's column order), from one encoding of each value by the functions ``json.dumps``
    itself uses; None for any other row (``json.dumps`` then)."""

    def __init__(self, fieldnames: list[str], ascii_raw: bool) -> None:
        keys = list(dict.fromkeys(fieldnames))  # a CSV row's keys, in its order
        self.keys = keys
        self.parts = [encode_basestring(k) + ":" for k in keys]
        self.order = sorted(range(len(keys)), key=keys.__getitem__)
        self.ascii = [encode_basestring_ascii(k) + ": " for k in keys] if ascii_raw else None

    def texts(self, row: dict[str, Any]) -> tuple[str, str] | None:
        if len(row) != len(self.keys) or not self.keys:
            return None
        values = list(row.values())
        try:
            parts = [k + ("null" if v is None else encode_basestring(v))
                     for k, v in zip(self.parts, values, strict=True)]
            raw = ("{" + ",".join(parts) + "}" if self.ascii is None else
                   "{" + ", ".join([k + ("null" if v is None else encode_basestring_ascii(v))
                                    for k, v in zip(self.ascii, values, strict=True)]) + "}")
        except TypeError:  # a value that is not a string
            return None
        return "{" + ",".join([parts[i] for i in self.order]) + "}", raw


def copy_text(value: str) -> str:
    """A value as a field of PostgreSQL's COPY text format."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
                .replace("\r", "\\r"))
    return value


def copy_field(value: Any) -> str:
    """Any value of the customer store's columns in COPY text format (NULL is ``\\N``)."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return copy_text(value)
    if isinstance(value, dict | list):
        if not value:  # a customer of one record has no lineage
            return "{}" if isinstance(value, dict) else "[]"
        # What store.bulk_insert writes: compact JSON, non-ASCII as is.
        return copy_text(json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                                    default=str))
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    return copy_text(value.isoformat())  # date, datetime


class _Form(Protocol):
    ascii: bool  # JSON with non-ASCII escaped

    def dumps(self, value: Any) -> str: ...
    def customer(self, values: dict[str, Any]) -> Any: ...
    def texts(self, values: tuple[str, ...]) -> tuple[str, ...]: ...


class _PgForm:
    """PostgreSQL: COPY text (JSON compact with non-ASCII as is, as ``bulk_insert``)."""

    ascii = False

    @staticmethod
    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)

    @staticmethod
    def customer(values: dict[str, Any]) -> str:
        return "\t".join([copy_field(values[name]) for name in CUSTOMER_COLUMNS])

    @staticmethod
    def texts(values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple([copy_text(v) for v in values]) if values else values


def sqlite_value(value: Any) -> Any:
    """What the sqlite3 module's default adapters make of a date or datetime (the text it
    stores), once here rather than for every row it is bound to."""
    if type(value) is datetime:
        return value.isoformat(" ")
    if type(value) is date:
        return value.isoformat()
    return value


def processors(table: Table, names: Sequence[str]) -> list[Any]:
    """SQLite: each column's bind processor (None when a value goes as it is)."""
    dialect = sqlite.dialect()
    return [table.c[n].type.bind_processor(dialect) for n in names]


class _SqliteForm:
    """SQLite: the values the columns' bind processors make (what ``bulk_insert`` sends)."""

    ascii = True

    raw = processors(source_records, ("raw",))[0]
    columns = processors(customers, CUSTOMER_COLUMNS)

    @classmethod
    def dumps(cls, value: Any) -> str:
        return str(cls.raw(value))

    @classmethod
    def customer(cls, values: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(sqlite_value(p(values[n]) if p else values[n])
                     for n, p in zip(CUSTOMER_COLUMNS, cls.columns, strict=True))

    @staticmethod
    def texts(values: tuple[str, ...]) -> tuple[str, ...]:
        return values


_pg_form = _PgForm()
_sqlite_form = _SqliteForm()
