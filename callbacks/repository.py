"""Queries on the callback tables. Every state change is conditional on the state it was
read in (``WHERE status = …``), so two processes cannot both act on one request; a claim
finds and takes its row in one statement, skipping rows another process holds (``FOR UPDATE
SKIP LOCKED`` on PostgreSQL; SQLite has one writer at a time)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from callbacks.models import OPEN, callback_attempts, callback_events, callback_requests

R = callback_requests
A = callback_attempts
E = callback_events


def open_key(queue: str, customer_id: int | None, phone: str) -> str:
    """One open callback per customer (or, for an unknown caller, per number) per queue."""
    who = f"customer:{customer_id}" if customer_id is not None else f"phone:{phone}"
    return f"{queue}|{who}"[:128]


def _skip_locked(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


# ------------------------------------------------------------------ requests


def get(conn: Connection, request_id: int) -> Row[Any] | None:
    return conn.execute(select(R).where(R.c.id == request_id)).first()


def find_open(conn: Connection, key: str) -> Row[Any] | None:
    return conn.execute(select(R).where(R.c.open_key == key)).first()


def requests_since(conn: Connection, number: str, since: datetime) -> int:
    """Requests made from this caller ID or for this number since ``since``."""
    return int(conn.execute(select(func.count()).select_from(R).where(
        R.c.requested_at >= since,
        or_(R.c.caller_number == number, R.c.phone == number))).scalar_one())


def other_number_requests_since(conn: Connection, caller: str, since: datetime) -> int:
    """Requests from this caller ID to call some other number, since ``since``."""
    return int(conn.execute(select(func.count()).select_from(R).where(
        R.c.requested_at >= since, R.c.caller_number == caller,
        R.c.phone != caller)).scalar_one())


def create(conn: Connection, values: dict[str, Any]) -> int | None:
    """Insert a request; None when another one with the same ``open_key`` won the race."""
    try:
        with conn.begin_nested():
            return int(conn.execute(insert(R).values(**values).returning(R.c.id)).scalar_one())
    except IntegrityError:
        return None


def update_request(conn: Connection, request_id: int, *, only_status: Sequence[str] = (),
                   **values: Any) -> bool:
    stmt = update(R).where(R.c.id == request_id)
    if only_status:
        stmt = stmt.where(R.c.status.in_(only_status))
    return bool(conn.execute(stmt.values(**values)).rowcount)


def close(conn: Connection, request_id: int, status: str, now: datetime, **values: Any,
          ) -> bool:
    """The request is over (completed / failed / canceled): no longer open."""
    return update_request(conn, request_id, only_status=OPEN, status=status, open_key=None,
                          closed_at=now, lease_owner=None, lease_until=None, updated_at=now,
                          **values)


def add_event(conn: Connection, request_id: int, kind: str, at: datetime,
              detail: dict[str, Any] | None = None) -> int:
    return int(conn.execute(insert(E).values(request_id=request_id, kind=kind, at=at,
                                             detail=detail or {}).returning(E.c.id))
               .scalar_one())


# The dispatcher's statements, built once (the claim once per dialect): building a Core
# statement and its cache key on every call cost more than PostgreSQL's execution of it
# (bench/results.md, "Callbacks").
_DUE: dict[bool, Select[Any]] = {}
_CLAIM_NEXT: dict[str, Any] = {}
#: What a claim returns of its row: what the dispatcher dials and pops with (the whole row
#: cost a tenth of a millisecond more per claim through the driver: bench/results.md).
CLAIMED = (R.c.id, R.c.queue, R.c.timezone, R.c.phone, R.c.call_sid)


def _dispatch_order(stmt: Select[Any]) -> Select[Any]:
    """Due pending requests in dispatch order: what ``ix_callback_requests_claim`` holds."""
    return (stmt.where(R.c.status == "pending",
                       R.c.due_at <= bindparam("b_now", type_=R.c.due_at.type))
            .order_by(R.c.priority.desc(), R.c.deadline_at, R.c.entered_at, R.c.id))


def _due_statement(filtered: bool) -> Select[Any]:
    stmt = _DUE.get(filtered)
    if stmt is None:
        stmt = _dispatch_order(select(R)).limit(bindparam("b_limit", type_=Integer))
        if filtered:
            stmt = stmt.where(R.c.queue.in_(bindparam("b_queues", expanding=True)))
        _DUE[filtered] = stmt
    return stmt


def due(conn: Connection, now: datetime, queues: Iterable[str] | None, limit: int,
        ) -> list[Row[Any]]:
    """Pending requests that may be dialled now, in dispatch order (priority, then
    deadline, then the time the caller first joined the queue); of the given queues, or of
    all with None. A read, no lock: what the router weighs against the waiting callers.
    Taking one is ``claim_next``'s."""
    if limit <= 0:
        return []
    params: dict[str, Any] = {"b_now": now, "b_limit": limit}
    if queues is not None:
        params["b_queues"] = sorted(set(queues))
        if not params["b_queues"]:
            return []
    return list(conn.execute(_due_statement(queues is not None), params))


#: Whether any pending request may be dialled at ``b_now``, as an SQL expression (an index
#: probe on ``ix_callback_requests_pending_due``) the router asks with its own probes.
DUE_PROBE: ColumnElement[bool] = exists(select(R.c.id).where(
    R.c.status == "pending", R.c.due_at <= bindparam("b_now", type_=R.c.due_at.type)))


def _claim_next_statement(conn: Connection) -> Any:
    stmt = _CLAIM_NEXT.get(conn.dialect.name)
    if stmt is None:
        head = _dispatch_order(select(R.c.id).where(R.c.queue == bindparam("b_queue"))
                               ).limit(1)
        if _skip_locked(conn):
            head = head.with_for_update(skip_locked=True)
        stmt = (update(R).where(R.c.id == head.scalar_subquery(), R.c.status == "pending")
                .values(status="dialing", lease_owner=bindparam("b_owner"),
                        lease_until=bindparam("b_lease", type_=R.c.lease_until.type),
                        agent_id=bindparam("b_agent"),
                        updated_at=bindparam("b_now", type_=R.c.updated_at.type))
                .returning(*CLAIMED))
        _CLAIM_NEXT[conn.dialect.name] = stmt
    return stmt


def claim_next(conn: Connection, queue: str, now: datetime, owner: str,
               lease_until: datetime, agent_id: int) -> Row[Any] | None:
    """The queue's next due request (dispatch order), pending → dialing with the lease, in
    one statement: the head is found on the claim index and taken where it stands, rows
    another process is claiming are skipped. Its ``CLAIMED`` columns; None when nothing of
    the queue is due (or all of it is being claimed elsewhere)."""
    return conn.execute(_claim_next_statement(conn), {
        "b_queue": queue, "b_now": now, "b_owner": owner, "b_lease": lease_until,
        "b_agent": agent_id}).first()


def release(conn: Connection, request_id: int, now: datetime, *, due_at: datetime,
            outcome: str, failed_attempt: bool) -> bool:
    """Back to pending after an attempt (retry at ``due_at``)."""
    values: dict[str, Any] = {"status": "pending", "lease_owner": None, "lease_until": None,
                              "agent_id": None, "due_at": due_at, "last_outcome": outcome,
                              "updated_at": now}
    if failed_attempt:
        values["attempts"] = R.c.attempts + 1
    return update_request(conn, request_id, only_status=("dialing", "connected"), **values)


def expired_leases(conn: Connection, now: datetime, limit: int = 100, *,
                   lock: bool = True) -> list[Row[Any]]:
    stmt = (select(R).where(R.c.status == "dialing", R.c.lease_until < now)
            .order_by(R.c.lease_until).limit(limit))
    if lock and _skip_locked(conn):
        stmt = stmt.with_for_update(skip_locked=True, of=R)
    return list(conn.execute(stmt))


def warnings_due(conn: Connection, now: datetime, limit: int = 500) -> list[Row[Any]]:
    stmt = (select(R).where(R.c.closed_at.is_(None), R.c.warn_at <= now,
                            R.c.warned_at.is_(None)).order_by(R.c.warn_at).limit(limit))
    if _skip_locked(conn):
        stmt = stmt.with_for_update(skip_locked=True, of=R)
    return list(conn.execute(stmt))


def breaches_due(conn: Connection, now: datetime, limit: int = 500) -> list[Row[Any]]:
    stmt = (select(R).where(R.c.closed_at.is_(None), R.c.deadline_at <= now,
                            R.c.breached_at.is_(None)).order_by(R.c.deadline_at).limit(limit))
    if _skip_locked(conn):
        stmt = stmt.with_for_update(skip_locked=True, of=R)
    return list(conn.execute(stmt))


def ahead_in_queue(conn: Connection, queue: str, priority: int, deadline: datetime) -> int:
    """Pending callbacks of ``queue`` that go before a call of this priority and deadline."""
    return int(conn.execute(select(func.count()).select_from(R).where(
        R.c.status == "pending", R.c.queue == queue,
        or_(R.c.priority > priority,
            and_(R.c.priority == priority, R.c.deadline_at < deadline)))).scalar_one())


def open_for_customer(conn: Connection, customer_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(select(R.c.id, R.c.queue, R.c.status, R.c.kind, R.c.requested_at,
                               R.c.scheduled_for, R.c.deadline_at, R.c.attempts)
                        .where(R.c.customer_id == customer_id, R.c.closed_at.is_(None))
                        .order_by(R.c.deadline_at))
    return [dict(r._mapping) for r in rows]


def open_requests(conn: Connection, limit: int = 200) -> list[Row[Any]]:
    return list(conn.execute(select(R).where(R.c.closed_at.is_(None))
                             .order_by(R.c.deadline_at, R.c.id).limit(limit)))


def list_requests(conn: Connection, *, status: str | None = None, queue: str | None = None,
                  limit: int = 50) -> list[Row[Any]]:
    stmt = select(R)
    if status == "open":
        stmt = stmt.where(R.c.closed_at.is_(None))
    elif status:
        stmt = stmt.where(R.c.status == status)
    if queue:
        stmt = stmt.where(R.c.queue == queue)
    return list(conn.execute(stmt.order_by(R.c.deadline_at, R.c.id).limit(limit)))


def requested_between(conn: Connection, since: datetime, until: datetime) -> list[Row[Any]]:
    """Requests whose deadline fell in ``[since, until)`` or that were requested then: what
    the day's SLA attainment is computed over."""
    return list(conn.execute(select(
        R.c.id, R.c.queue, R.c.status, R.c.requested_at, R.c.deadline_at, R.c.completed_at,
        R.c.closed_at, R.c.attempts, R.c.kind, R.c.scheduled_for).where(
        or_(and_(R.c.requested_at >= since, R.c.requested_at < until),
            and_(R.c.deadline_at >= since, R.c.deadline_at < until)))))


def counts_by_status(conn: Connection) -> dict[tuple[str, str], int]:
    rows = conn.execute(select(R.c.queue, R.c.status, func.count()).where(
        R.c.closed_at.is_(None)).group_by(R.c.queue, R.c.status))
    return {(q, s): int(n) for q, s, n in rows}


def overdue_by_queue(conn: Connection, now: datetime) -> dict[str, int]:
    rows = conn.execute(select(R.c.queue, func.count()).where(
        R.c.closed_at.is_(None), R.c.deadline_at <= now).group_by(R.c.queue))
    return {q: int(n) for q, n in rows}


# ------------------------------------------------------------------ attempts


def new_attempt(conn: Connection, values: dict[str, Any]) -> int:
    return int(conn.execute(insert(A).values(**values).returning(A.c.id)).scalar_one())


def get_attempt(conn: Connection, attempt_id: int) -> Row[Any] | None:
    return conn.execute(select(A).where(A.c.id == attempt_id)).first()


def attempt_by_key(conn: Connection, agent_key: str) -> Row[Any] | None:
    return conn.execute(select(A).where(A.c.agent_key == agent_key)).first()


def update_attempt(conn: Connection, attempt_id: int, *, only_open: bool = False,
                   **values: Any) -> bool:
    stmt = update(A).where(A.c.id == attempt_id)
    if only_open:
        stmt = stmt.where(A.c.ended_at.is_(None))
    return bool(conn.execute(stmt.values(**values)).rowcount)


def attempt_count(conn: Connection, request_id: int) -> int:
    return int(conn.execute(select(func.count()).select_from(A).where(
        A.c.request_id == request_id)).scalar_one())


def current_attempt(conn: Connection, request_id: int) -> Row[Any] | None:
    return conn.execute(select(A).where(A.c.request_id == request_id, A.c.ended_at.is_(None))
                        .order_by(A.c.id.desc()).limit(1)).first()


def attempts_of(conn: Connection, request_id: int) -> list[Row[Any]]:
    return list(conn.execute(select(A).where(A.c.request_id == request_id).order_by(A.c.id)))


# ------------------------------------------------------------------ events


def events_of(conn: Connection, request_id: int) -> list[Row[Any]]:
    return list(conn.execute(select(E).where(E.c.request_id == request_id).order_by(E.c.id)))


def unnotified(conn: Connection, limit: int = 100) -> list[Row[Any]]:
    stmt = (select(E).where(E.c.notified_at.is_(None),
                            E.c.kind.in_(("warning", "breach", "failed")))
            .order_by(E.c.id).limit(limit))
    if _skip_locked(conn):
        stmt = stmt.with_for_update(skip_locked=True, of=E)
    return list(conn.execute(stmt))


def mark_notified(conn: Connection, event_id: int, now: datetime) -> None:
    conn.execute(update(E).where(E.c.id == event_id).values(notified_at=now))


def event_counts_since(conn: Connection, since: datetime) -> dict[str, int]:
    rows = conn.execute(select(E.c.kind, func.count()).where(E.c.at >= since)
                        .group_by(E.c.kind))
    return {k: int(n) for k, n in rows}
