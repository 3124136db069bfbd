"""The write side of the shared customer store: source records in, golden customers out.

``resolve_batch`` takes mapped source records of one source and, in the caller's transaction:

1. upserts them on (source, external_id): an identical raw record is *unchanged* (only its
   ``last_seen_at`` moves), a different one is *updated*;
2. finds the customers already holding any of the batch's account numbers, e-mails or phones,
   loads their source records, and clusters everything with ``identity.cluster``;
3. writes the outcome: a cluster with no customer yet creates one (*created*), a new record
   joining an existing customer is *merged*, and a cluster spanning several customers merges
   them into the oldest (a ``merge_events`` row keeps what moved, so ``unmerge`` can undo it);
4. recomputes the golden record (fields, lineage, phones, e-mails) of every customer touched.

Customers are never split automatically: a customer's records stay together until an operator
runs ``unmerge``; two customers an operator separated are never merged again automatically.
``merge``/``unmerge`` are the operator's corrections.

Its size (~570 lines) is on purpose: a batch's clustering, merges and golden-record rewrite
share one transaction's working set.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from crm_sync.identity import Golden, Rules, SourceRecord, cluster, golden
from crm_sync.models import customer_emails as emails
from crm_sync.models import customer_phones as phones
from crm_sync.models import customers, incidents, interactions
from crm_sync.models import merge_events as merges
from crm_sync.models import source_records as records

CHUNK = 2000  # values per IN (...) list: well under SQLite's and PostgreSQL's limits
JSON_EACH_FROM = (3, 38, 0)  # SQLite has json_each built in from this version


class StoreError(ValueError):
    """An operator's request the store cannot carry out (unknown customer, nothing to undo)."""


@dataclass
class Counts:
    created: int = 0  # a new customer, from a new source record
    updated: int = 0  # a known source record that changed
    merged: int = 0  # a new source record that joined a customer (existing or new)
    unchanged: int = 0  # a known source record sent again as it was
    rejected: int = 0
    customers_merged: int = 0  # customers folded into another one by identity resolution

    def add(self, other: Counts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Incoming:
    record: SourceRecord
    raw: dict[str, Any]
    content_hash: str


def canonical(raw: dict[str, Any]) -> str:
    """A raw record as JSON text, key order aside (control characters escaped)."""
    return json.dumps(raw, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)


def content_hash(raw: dict[str, Any], text: str | None = None) -> str:
    """Identity of a raw record as the source sent it (key order aside)."""
    return hashlib.sha256((text if text is not None else canonical(raw)).encode()).hexdigest()


def to_json(record: SourceRecord) -> dict[str, Any]:
    """The mapped record as stored in ``source_records.mapped``."""
    out: dict[str, Any] = {"seen_at": record.seen_at.isoformat()}
    for name in ("name", "account_number", "preferred_language", "tier", "segment", "status"):
        value = getattr(record, name)
        if value is not None:
            out[name] = value
    if record.phones:
        out["phones"] = list(record.phones)
    if record.emails:
        out["emails"] = list(record.emails)
    if record.date_of_birth is not None:
        out["date_of_birth"] = record.date_of_birth.isoformat()
    return out


def from_json(source: str, external_id: str, data: dict[str, Any]) -> SourceRecord:
    dob = data.get("date_of_birth")
    return SourceRecord(
        source=source, external_id=external_id,
        seen_at=datetime.fromisoformat(data["seen_at"]),
        name=data.get("name"), phones=tuple(data.get("phones", ())),
        emails=tuple(data.get("emails", ())), account_number=data.get("account_number"),
        preferred_language=data.get("preferred_language"), tier=data.get("tier"),
        segment=data.get("segment"), status=data.get("status"),
        date_of_birth=date.fromisoformat(dob) if dob else None,
    )


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def where_in(conn: Connection, column: ColumnElement[Any],
             values: Sequence[Any]) -> Iterator[ColumnElement[bool]]:
    """``column IN values`` as few statements as the driver allows: one ``= ANY(array)`` on
    PostgreSQL (one parameter, however many values), chunks of ``IN (...)`` on SQLite."""
    if not values:
        return
    if conn.dialect.name == "postgresql":
        yield column == any_(_pg_array(column, values))
        return
    if conn.dialect.name == "sqlite" and sqlite3.sqlite_version_info >= JSON_EACH_FROM:
        # One JSON array parameter: a list of thousands of bound values costs more to
        # compile and bind than the look-ups.
        yield column.in_(select(literal_column("value")).select_from(func.json_each(
            bindparam(None, json.dumps(list(values)), type_=Text))))
        return
    for chunk in _chunks(values):
        yield column.in_(chunk)


def _pg_array(column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[Any]:
    """The values as one array parameter. Text or integers go as one string the server
    splits (``string_to_array``): the driver adapts a list item by item in Python, which
    cost more than the look-up itself with batches of thousands of keys."""
    if all(type(v) is int for v in values):
        joined = ",".join(map(str, values))
        return cast(func.string_to_array(bindparam(None, joined, type_=Text), ","),
                    ARRAY(Integer))
    if all(type(v) is str for v in values):
        joined = "\n".join(values)
        # Unambiguous unless a value holds the separator ('' alone splits to no element).
        if joined and joined.count("\n") == len(values) - 1:
            return func.string_to_array(bindparam(None, joined, type_=Text), "\n")
    return bindparam(None, list(values), type_=ARRAY(column.type))


def known(conn: Connection, source: str, external_ids: Iterable[str]) -> dict[str, Any]:
    """The stored (id, external_id, content_hash, customer_id) of these records."""
    existing: dict[str, Any] = {}
    for clause in where_in(conn, records.c.external_id, sorted(set(external_ids))):
        for row in conn.execute(
                select(records.c.id, records.c.external_id, records.c.content_hash,
                       records.c.customer_id)
                .where(records.c.source == source, clause)):
            existing[row.external_id] = row
    return existing


def _allocate_ids(conn: Connection, n: int) -> list[int]:
    """``n`` fresh customer ids. PostgreSQL: from the column's sequence (never reused), in
    the order ``nextval`` handed them out. SQLite: after the highest id; the importer holds
    the write lock (``importer._lock``)."""
    if conn.dialect.name == "postgresql":
        # The sequence's name once (an InitPlan): pg_get_serial_sequence per row cost
        # 5 us, eight times nextval itself.
        listed = conn.execute(text(
            "SELECT string_agg(nextval((SELECT pg_get_serial_sequence('customers', 'id'))"
            "::regclass)::text, ',') FROM generate_series(1, :n)"), {"n": n}).scalar_one()
        return [int(v) for v in listed.split(",")]
    # Never an id a merge folded away (merge_events and redirects still name it): SQLite
    # would otherwise reuse the highest id once that customer is gone.
    top = conn.exec_driver_sql(
        "SELECT max(coalesce((SELECT max(id) FROM customers), 0), "
        "coalesce((SELECT max(other_customer_id) FROM merge_events), 0))").scalar_one()
    return list(range(int(top) + 1, int(top) + 1 + n))


def _copy_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return value


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows with the same keys the fastest way each driver has: PostgreSQL's
    COPY, SQLite's executemany of plain tuples (values through the columns' own bind
    processors, so they read back exactly as ORM-written ones)."""
    if not rows:
        return
    names = list(rows[0])
    # Only the table's own column names reach the SQL text (KeyError for anything else).
    columns = [table.c[n] for n in names]
    if conn.dialect.name == "postgresql":
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cur, cur.copy(
                f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([_copy_value(row[n]) for n in names])
        return
    processors = [c.type.bind_processor(conn.dialect) for c in columns]
    conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({', '.join(names)}) "  # noqa: S608
        f"VALUES ({', '.join('?' for _ in names)})",
        [tuple(p(row[n]) if p else row[n] for n, p in zip(names, processors, strict=True))
         for row in rows])


def _lineage(g: Golden) -> dict[str, Any]:
    """Every candidate value of each field that more than one source record gave (a field
    only one record gives is traced by that record alone, in ``source_records``)."""
    out: dict[str, Any] = {}
    for name, candidates in g.lineage.items():
        if len(candidates) > 1:
            out[name] = [{"value": c.value.isoformat() if isinstance(c.value, date) else c.value,
                          "source": c.source, "external_id": c.external_id,
                          "seen_at": c.seen_at.isoformat(), "chosen": c.chosen}
                         for c in candidates]
    return out


def customer_values(g: Golden, now: datetime) -> dict[str, Any]:
    f = g.fields
    return {"name": f["name"], "account_number": f["account_number"],
            "preferred_language": f["preferred_language"], "tier": f["tier"],
            "segment": f["segment"], "status": f["status"] or "active",
            "date_of_birth": f["date_of_birth"], "lineage": _lineage(g), "updated_at": now}


@dataclass
class _Stored:
    id: int
    customer_id: int | None
    record: SourceRecord


@dataclass
class _Plan:
    """What one batch will write."""

    new_customers: list[tuple[Golden, list[SourceRecord]]] = field(default_factory=list)
    changed_customers: dict[int, tuple[Golden, list[SourceRecord]]] = field(default_factory=dict)
    folded: dict[int, int] = field(default_factory=dict)  # loser -> survivor


class Store:
    """Identity resolution persisted; one instance per batch or operator command."""

    def __init__(self, conn: Connection, rules: Rules, now: datetime,
                 actor: str = "import") -> None:
        self.conn = conn
        self.rules = rules
        self.now = now
        self.actor = actor

    # --- reading --------------------------------------------------------------------------

    def _ids_with_keys(self, batch: Sequence[SourceRecord]) -> set[int]:
        return self.ids_with_keys(sorted({r.account_number for r in batch if r.account_number}),
                                  sorted({e for r in batch for e in r.emails}),
                                  sorted({p for r in batch for p in r.phones}))

    def ids_with_keys(self, accounts: Sequence[str], mails: Sequence[str],
                      numbers: Sequence[str]) -> set[int]:
        """The customers holding any of these account numbers, e-mails or phones."""
        conn = self.conn
        found: set[int] = set()
        for clause in where_in(conn, customers.c.account_number, accounts):
            found.update(conn.execute(select(customers.c.id).where(clause)).scalars())
        for clause in where_in(conn, emails.c.email, mails):
            found.update(conn.execute(select(emails.c.customer_id).where(clause)).scalars())
        for clause in where_in(conn, phones.c.e164, numbers):
            found.update(conn.execute(select(phones.c.customer_id).where(clause)).scalars())
        return found

    def _records_of(self, customer_ids: Iterable[int]) -> list[_Stored]:
        out: list[_Stored] = []
        for clause in where_in(self.conn, records.c.customer_id, sorted(set(customer_ids))):
            rows = self.conn.execute(
                select(records.c.id, records.c.customer_id, records.c.source,
                       records.c.external_id, records.c.mapped).where(clause))
            out.extend(_Stored(r.id, r.customer_id, from_json(r.source, r.external_id, r.mapped))
                       for r in rows)
        return out

    def _separated(self, customer_ids: set[int]) -> set[frozenset[int]]:
        """Pairs of customers an operator split apart: never merged again automatically."""
        if not customer_ids:
            return set()
        out: set[frozenset[int]] = set()
        for chunk in _chunks(sorted(customer_ids)):
            rows = self.conn.execute(
                select(merges.c.customer_id, merges.c.other_customer_id)
                .where(merges.c.kind == "unmerge",
                       or_(merges.c.customer_id.in_(chunk),
                           merges.c.other_customer_id.in_(chunk))))
            out.update(frozenset((a, b)) for a, b in rows if b is not None)
        return out

    # --- the batch ------------------------------------------------------------------------

    def known(self, source: str, external_ids: Iterable[str]) -> dict[str, Any]:
        """The stored (id, external_id, content_hash, customer_id) of these records."""
        return known(self.conn, source, external_ids)

    def touch(self, record_ids: Sequence[int]) -> None:
        """Records sent again unchanged: only ``last_seen_at`` moves."""
        for clause in where_in(self.conn, records.c.id, record_ids):
            self.conn.execute(update(records).where(clause).values(last_seen_at=self.now))

    def resolve_batch(self, source: str, batch: Sequence[Incoming],
                      existing: dict[str, Any] | None = None) -> Counts:
        """Upsert one source's records and settle who is who. All in the caller's transaction.

        ``existing`` is ``known(source, ids)`` when the caller already looked it up."""
        counts = Counts()
        by_id = {item.record.external_id: item for item in batch}  # callers dedupe; last wins
        if existing is None:
            existing = self.known(source, by_id)
        same = [existing[x].id for x, item in by_id.items()
                if x in existing and existing[x].content_hash == item.content_hash]
        counts.unchanged = len(same)
        self.touch(same)
        todo = [item for x, item in by_id.items()
                if x not in existing or existing[x].content_hash != item.content_hash]
        if not todo:
            return counts

        # Everyone the batch could be: holders of its keys, and current owners of its records.
        incoming = [item.record for item in todo]
        owners = {existing[r.external_id].customer_id for r in incoming
                  if r.external_id in existing and existing[r.external_id].customer_id}
        candidates = self._ids_with_keys(incoming) | owners
        todo_ids = {item.record.external_id for item in todo}
        stored = [s for s in self._records_of(candidates)
                  if not (s.record.source == source and s.record.external_id in todo_ids)]
        owner_of: dict[tuple[str, str], int | None] = {s.record.key: s.customer_id
                                                       for s in stored}
        for r in incoming:
            prior = existing.get(r.external_id)
            owner_of[r.key] = prior.customer_id if prior is not None else None
        separated = self._separated(candidates)

        plan = _Plan()
        for group in self._groups(cluster([*incoming, *(s.record for s in stored)],
                                          self.rules), owner_of):
            self._plan_group(group, owner_of, separated, plan, counts, source, existing,
                             todo_ids)
        self._write(source, todo, existing, plan)
        return counts

    @staticmethod
    def _groups(clusters: list[list[SourceRecord]],
                owner_of: dict[tuple[str, str], int | None]) -> list[list[SourceRecord]]:
        """Clusters joined wherever they share a customer: no automatic splits."""
        parent = list(range(len(clusters)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        first: dict[int, int] = {}
        for i, members in enumerate(clusters):
            for r in members:
                cid = owner_of.get(r.key)
                if cid is not None:
                    j = first.setdefault(cid, i)
                    parent[find(i)] = find(j)
        out: dict[int, list[SourceRecord]] = {}
        for i, members in enumerate(clusters):
            out.setdefault(find(i), []).extend(members)
        return list(out.values())

    def _plan_group(self, group: list[SourceRecord], owner_of: dict[tuple[str, str], int | None],
                    separated: set[frozenset[int]], plan: _Plan,
                    counts: Counts, source: str, existing: dict[str, Any],
                    todo_ids: set[str]) -> None:
        owners = sorted({cid for r in group if (cid := owner_of.get(r.key)) is not None})
        fresh = [r for r in group if r.source == source and r.external_id in todo_ids
                 and r.external_id not in existing]
        counts.updated += sum(1 for r in group if r.source == source
                              and r.external_id in todo_ids and r.external_id in existing)
        if not owners:
            # The first new record makes the customer; the others join it.
            counts.created += min(1, len(fresh))
            counts.merged += max(0, len(fresh) - 1)
            plan.new_customers.append((golden(group, self.rules), group))
            return
        survivor = owners[0]
        counts.merged += len(fresh)
        blocked = any(frozenset((a, b)) in separated for a in owners for b in owners if a < b)
        if blocked:
            # Customers an operator separated stay apart; the new records join the oldest.
            members = [r for r in group
                       if owner_of.get(r.key) in (None, survivor)]
        else:
            members = group
            for loser in owners[1:]:
                plan.folded[loser] = survivor
            counts.customers_merged += len(owners) - 1
        for r in members:
            owner_of[r.key] = survivor
        plan.changed_customers[survivor] = (golden(members, self.rules), members)

    def _write(self, source: str, todo: list[Incoming], existing: dict[str, Any],
               plan: _Plan) -> None:
        conn, now = self.conn, self.now
        # New customers, then who owns what.
        owner: dict[tuple[str, str], int] = {}
        if plan.new_customers:
            ids = _allocate_ids(conn, len(plan.new_customers))
            bulk_insert(conn, customers, [
                {"id": cid, **customer_values(g, now), "created_at": now}
                for cid, (g, _m) in zip(ids, plan.new_customers, strict=True)])
            for cid, (_g, members) in zip(ids, plan.new_customers, strict=True):
                for r in members:
                    owner[r.key] = cid
            self._add_keys([(cid, g) for cid, (g, _m) in zip(ids, plan.new_customers,
                                                              strict=True)])
        owner.update(self._settle(plan))

        # The source records themselves.
        new_rows = [{"source": source, "external_id": item.record.external_id,
                     "customer_id": owner.get(item.record.key), "raw": item.raw,
                     "mapped": to_json(item.record), "content_hash": item.content_hash,
                     "first_seen_at": now, "last_seen_at": now}
                    for item in todo if item.record.external_id not in existing]
        bulk_insert(conn, records, new_rows)
        self._update_records([{
            "rid": existing[item.record.external_id].id,
            "customer_id": owner.get(item.record.key,
                                     existing[item.record.external_id].customer_id),
            "raw": item.raw, "mapped": to_json(item.record),
            "content_hash": item.content_hash, "last_seen_at": now}
            for item in todo if item.record.external_id in existing])

    def _settle(self, plan: _Plan) -> dict[tuple[str, str], int]:
        """Customers that already existed: merges folded, golden records, phones and e-mails
        rewritten; returns who owns their records now."""
        conn, now = self.conn, self.now
        owner: dict[tuple[str, str], int] = {}
        for cid, (_g, members) in plan.changed_customers.items():
            for r in members:
                owner[r.key] = cid

        # Fold merged customers into their survivors.
        for loser, survivor in sorted(plan.folded.items()):
            self._fold(loser, survivor, "identity resolution")

        # Survivors and attached customers: the golden record again.
        if plan.changed_customers:
            conn.execute(
                update(customers).where(customers.c.id == bindparam("cid"))
                .values({k: bindparam(k) for k in (
                    "name", "account_number", "preferred_language", "tier", "segment",
                    "status", "date_of_birth", "lineage", "updated_at")}),
                [{**customer_values(g, now), "cid": cid}
                 for cid, (g, _m) in plan.changed_customers.items()])
            changed_ids = sorted(plan.changed_customers)
            for clause in where_in(conn, phones.c.customer_id, changed_ids):
                conn.execute(delete(phones).where(clause))
            for clause in where_in(conn, emails.c.customer_id, changed_ids):
                conn.execute(delete(emails).where(clause))
            self._add_keys([(cid, g) for cid, (g, _m) in plan.changed_customers.items()])
        return owner

    def _update_records(self, rows: list[dict[str, Any]]) -> None:
        """Known source records sent changed: their new content and owner."""
        if rows:
            self.conn.execute(
                update(records).where(records.c.id == bindparam("rid"))
                .values({k: bindparam(k) for k in (
                    "customer_id", "raw", "mapped", "content_hash", "last_seen_at")}),
                rows)

    def _add_keys(self, golden_of: list[tuple[int, Golden]]) -> None:
        phone_rows = [{"customer_id": cid, "e164": p} for cid, g in golden_of
                      for p in g.fields["phones"]]
        mail_rows = [{"customer_id": cid, "email": e} for cid, g in golden_of
                     for e in g.fields["emails"]]
        bulk_insert(self.conn, phones, phone_rows)
        bulk_insert(self.conn, emails, mail_rows)

    # --- operator corrections -------------------------------------------------------------

    def _require(self, customer_id: int) -> None:
        if self.conn.execute(select(customers.c.id).where(customers.c.id == customer_id)
                             ).scalar() is None:
            raise StoreError(f"no customer {customer_id}")

    def refresh(self, customer_id: int) -> None:
        """Recompute one customer's golden record from the source records it holds."""
        members = [s.record for s in self._records_of([customer_id])]
        if not members:
            return
        g = golden(members, self.rules)
        self.conn.execute(update(customers).where(customers.c.id == customer_id)
                          .values(customer_values(g, self.now)))
        self.conn.execute(delete(phones).where(phones.c.customer_id == customer_id))
        self.conn.execute(delete(emails).where(emails.c.customer_id == customer_id))
        self._add_keys([(customer_id, g)])

    def _fold(self, loser: int, survivor: int, reason: str | None) -> int:
        """Move ``loser``'s source records, incidents and interactions to ``survivor``, record
        the merge (with the records moved, for unmerge) and delete ``loser``."""
        conn = self.conn
        moved = list(conn.execute(select(records.c.id).where(records.c.customer_id == loser))
                     .scalars())
        for table in (records, incidents, interactions):
            conn.execute(update(table).where(table.c.customer_id == loser)
                         .values(customer_id=survivor))
        event_id = conn.execute(insert(merges).values(
            kind="merge", customer_id=survivor, other_customer_id=loser,
            source_record_ids=moved, actor=self.actor, reason=reason, at=self.now)
            .returning(merges.c.id)).scalar_one()
        conn.execute(delete(customers).where(customers.c.id == loser))
        return int(event_id)

    def merge(self, survivor: int, other: int, reason: str | None = None) -> int:
        """Fold ``other`` into ``survivor`` (records, incidents, interactions); returns the
        merge event id."""
        if survivor == other:
            raise StoreError("cannot merge a customer with itself")
        self._require(survivor)
        self._require(other)
        conn = self.conn
        # An earlier separation of the two no longer holds.
        conn.execute(delete(merges).where(
            merges.c.kind == "unmerge",
            or_((merges.c.customer_id == survivor) & (merges.c.other_customer_id == other),
                (merges.c.customer_id == other) & (merges.c.other_customer_id == survivor))))
        account = conn.execute(select(customers.c.account_number)
                               .where(customers.c.id == other)).scalar()
        event_id = self._fold(other, survivor, reason)
        self.refresh(survivor)
        if account is not None:
            # The folded customer's account number still finds this person.
            current = conn.execute(select(customers.c.account_number)
                                   .where(customers.c.id == survivor)).scalar()
            if current is None:
                conn.execute(update(customers).where(customers.c.id == survivor)
                             .values(account_number=account))
        return int(event_id)

    def unmerge(self, customer_id: int, record_keys: Sequence[tuple[str, str]] = (),
                reason: str | None = None) -> int:
        """Split source records off ``customer_id`` into a new customer and keep the two apart.

        Without ``record_keys`` the latest merge into ``customer_id`` is undone (the records it
        moved leave again). Incidents and interactions follow the source record they came
        with. Returns the new customer's id.
        """
        self._require(customer_id)
        conn = self.conn
        holding = {(s.record.source, s.record.external_id): s
                   for s in self._records_of([customer_id])}
        if record_keys:
            missing = [f"{s}:{x}" for s, x in record_keys if (s, x) not in holding]
            if missing:
                raise StoreError(f"customer {customer_id} holds no source record "
                                 f"{', '.join(missing)}")
            moving = [holding[k].id for k in record_keys]
        else:
            last = conn.execute(
                select(merges.c.source_record_ids)
                .where(merges.c.kind == "merge", merges.c.customer_id == customer_id)
                .order_by(merges.c.id.desc()).limit(1)).scalar()
            if last is None:
                raise StoreError(f"customer {customer_id} has no merge to undo; name the "
                                 "records to split off (--record SOURCE:ID)")
            moving = [rid for rid in last if any(s.id == rid for s in holding.values())]
            if not moving:
                raise StoreError(f"the records of customer {customer_id}'s last merge have "
                                 "moved since; name the records to split off")
        if len(moving) == len(holding):
            raise StoreError("cannot split off every record of a customer")
        staying = [s.record for s in holding.values() if s.id not in moving]
        leaving = [s.record for s in holding.values() if s.id in moving]
        kept = golden(staying, self.rules)
        split = golden(leaving, self.rules)
        if (split.fields["account_number"] is not None
                and split.fields["account_number"] == kept.fields["account_number"]):
            raise StoreError(f"the records share account number {kept.fields['account_number']}"
                             " with the ones that stay: that is one customer")
        # The staying customer lets go of the account number first (unique constraint).
        conn.execute(update(customers).where(customers.c.id == customer_id)
                     .values(account_number=None))
        new_id = _allocate_ids(conn, 1)[0]
        conn.execute(insert(customers).values(
            {**customer_values(split, self.now), "id": new_id, "created_at": self.now}))
        for chunk in _chunks(moving):
            conn.execute(update(records).where(records.c.id.in_(chunk))
                         .values(customer_id=new_id))
            for table in (incidents, interactions):
                conn.execute(update(table).where(table.c.source_record_id.in_(chunk))
                             .values(customer_id=new_id))
        self._add_keys([(new_id, split)])
        self.refresh(customer_id)
        conn.execute(insert(merges).values(
            kind="unmerge", customer_id=customer_id, other_customer_id=new_id,
            source_record_ids=moving, actor=self.actor, reason=reason, at=self.now))
        return int(new_id)
