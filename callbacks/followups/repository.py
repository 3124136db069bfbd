"""Queries on the follow-up, promise and SMS tables, and the scans of the customer store
that find new work (closed incidents, promised actions). Every state change is conditional
on the state it was read in (``WHERE status = …``), so two processes cannot both act on one
row; claims read with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from callbacks.followups.models import (
    OPEN,
    followup_attempts,
    followup_events,
    followups,
    promises,
    sms_messages,
)
from callbacks.models import callback_requests as R
from crm_sync.models import customer_phones, customers, incidents, interactions

F = followups
A = followup_attempts
P = promises
E = followup_events
S = sms_messages


def _locking(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


# ------------------------------------------------------------------ the customer store


def closed_incidents_without_followup(conn: Connection, since: datetime, limit: int = 200,
                                      ) -> list[Row[Any]]:
    """Incidents closed at or after ``since`` that no follow-up was made for yet."""
    return list(conn.execute(
        select(incidents.c.id, incidents.c.customer_id, incidents.c.category,
               incidents.c.summary, incidents.c.closed_at)
        .where(incidents.c.status == "closed", incidents.c.closed_at >= since,
               ~exists().where(F.c.incident_id == incidents.c.id))
        .order_by(incidents.c.closed_at, incidents.c.id).limit(limit)))


def customer_contact(conn: Connection, customer_id: int) -> tuple[str | None, str | None]:
    """A customer's first phone (E.164) and preferred language."""
    phone = conn.execute(select(customer_phones.c.e164).where(
        customer_phones.c.customer_id == customer_id).order_by(customer_phones.c.id)
        .limit(1)).scalar()
    lang = conn.execute(select(customers.c.preferred_language).where(
        customers.c.id == customer_id)).scalar()
    return phone, lang


def last_call_before(conn: Connection, customer_id: int, at: datetime) -> str | None:
    """The CallSid of the customer's last call up to ``at`` (the call a survey rates)."""
    return conn.execute(select(interactions.c.call_sid).where(
        interactions.c.customer_id == customer_id, interactions.c.call_sid.is_not(None),
        interactions.c.started_at <= at).order_by(interactions.c.started_at.desc())
        .limit(1)).scalar()


def called_since(conn: Connection, customer_id: int, since: datetime) -> bool:
    """Whether the customer called us (an incoming interaction) after ``since``."""
    return conn.execute(select(interactions.c.id).where(
        interactions.c.customer_id == customer_id, interactions.c.direction == "in",
        interactions.c.started_at > since).limit(1)).first() is not None


def promised_without_promise(conn: Connection, since: datetime, limit: int = 200,
                             ) -> list[Row[Any]]:
    """Interactions with a promised action due at or after ``since``, not yet tracked."""
    return list(conn.execute(
        select(interactions.c.id, interactions.c.customer_id,
               interactions.c.promised_action, interactions.c.promised_due_at,
               interactions.c.agent, interactions.c.queue, interactions.c.promise_kept_at,
               interactions.c.started_at)
        .where(interactions.c.promised_action.is_not(None),
               interactions.c.promised_due_at >= since,
               ~exists().where(P.c.interaction_id == interactions.c.id))
        .order_by(interactions.c.promised_due_at).limit(limit)))


# ------------------------------------------------------------------ follow-ups


def get(conn: Connection, followup_id: int) -> Row[Any] | None:
    return conn.execute(select(F).where(F.c.id == followup_id)).first()


def create(conn: Connection, values: dict[str, Any]) -> int | None:
    """Insert a follow-up; None when one for the same cause (``source_key``) exists."""
    try:
        with conn.begin_nested():
            return int(conn.execute(insert(F).values(**values).returning(F.c.id))
                       .scalar_one())
    except IntegrityError:
        return None


def taken_on(conn: Connection, customer_id: int, start: datetime, end: datetime) -> int:
    """Follow-ups of a customer due in ``[start, end)`` that were not skipped or canceled:
    what the daily cap counts."""
    return int(conn.execute(select(func.count()).select_from(F).where(
        F.c.customer_id == customer_id, F.c.due_at >= start, F.c.due_at < end,
        F.c.status.not_in(("skipped", "canceled")))).scalar_one())


def update_followup(conn: Connection, followup_id: int, *, only_status: Sequence[str] = (),
                    **values: Any) -> bool:
    stmt = update(F).where(F.c.id == followup_id)
    if only_status:
        stmt = stmt.where(F.c.status.in_(only_status))
    return bool(conn.execute(stmt.values(**values)).rowcount)


def close(conn: Connection, followup_id: int, status: str, now: datetime, **values: Any,
          ) -> bool:
    return update_followup(conn, followup_id, only_status=OPEN, status=status, closed_at=now,
                           lease_owner=None, lease_until=None, updated_at=now, **values)


def due(conn: Connection, now: datetime, limit: int = 50) -> list[Row[Any]]:
    stmt = (select(F).where(F.c.status == "pending", F.c.due_at <= now)
            .order_by(F.c.due_at, F.c.id).limit(limit))
    if _locking(conn):
        stmt = stmt.with_for_update(skip_locked=True, of=F)
    return list(conn.execute(stmt))


def claim(conn: Connection, followup_id: int, owner: str, lease_until: datetime,
          now: datetime) -> bool:
    """pending → dialing, with the lease; False if another process took it first."""
    return update_followup(conn, followup_id, only_status=("pending",), status="dialing",
                           lease_owner=owner, lease_until=lease_until, updated_at=now)


def release(conn: Connection, followup_id: int, now: datetime, *, due_at: datetime,
            outcome: str, failed_attempt: bool) -> bool:
    values: dict[str, Any] = {"status": "pending", "lease_owner": None, "lease_until": None,
                              "due_at": due_at, "last_outcome": outcome, "updated_at": now}
    if failed_attempt:
        values["attempts"] = F.c.attempts + 1
    return update_followup(conn, followup_id, only_status=("dialing", "connected"), **values)


def expired_leases(conn: Connection, now: datetime, limit: int = 100, *,
                   lock: bool = True) -> list[Row[Any]]:
    stmt = (select(F).where(F.c.status == "dialing", F.c.lease_until < now)
            .order_by(F.c.lease_until).limit(limit))
    if lock and _locking(conn):
        stmt = stmt.with_for_update(skip_locked=True, of=F)
    return list(conn.execute(stmt))


def queued_closed(conn: Connection, limit: int = 200) -> list[Row[Any]]:
    """Follow-ups handed to the callback queue whose callback request is over."""
    return list(conn.execute(
        select(F.c.id, R.c.status, R.c.completed_at, R.c.last_outcome)
        .join(R, R.c.id == F.c.callback_request_id)
        .where(F.c.status == "queued", R.c.closed_at.is_not(None)).limit(limit)))


def list_followups(conn: Connection, *, status: str | None = None, limit: int = 50,
                   ) -> list[Row[Any]]:
    stmt = select(F)
    if status == "open":
        stmt = stmt.where(F.c.status.in_(OPEN))
    elif status:
        stmt = stmt.where(F.c.status == status)
    return list(conn.execute(stmt.order_by(F.c.due_at, F.c.id).limit(limit)))


def created_between(conn: Connection, since: datetime, until: datetime) -> list[Row[Any]]:
    return list(conn.execute(select(F).where(
        or_(and_(F.c.created_at >= since, F.c.created_at < until),
            and_(F.c.due_at >= since, F.c.due_at < until)))))


# ------------------------------------------------------------------ attempts


def new_attempt(conn: Connection, values: dict[str, Any]) -> int:
    return int(conn.execute(insert(A).values(**values).returning(A.c.id)).scalar_one())


def get_attempt(conn: Connection, attempt_id: int) -> Row[Any] | None:
    return conn.execute(select(A).where(A.c.id == attempt_id)).first()


def update_attempt(conn: Connection, attempt_id: int, *, only_open: bool = False,
                   **values: Any) -> bool:
    stmt = update(A).where(A.c.id == attempt_id)
    if only_open:
        stmt = stmt.where(A.c.ended_at.is_(None))
    return bool(conn.execute(stmt.values(**values)).rowcount)


def attempt_count(conn: Connection, followup_id: int) -> int:
    return int(conn.execute(select(func.count()).select_from(A).where(
        A.c.followup_id == followup_id)).scalar_one())


def current_attempt(conn: Connection, followup_id: int) -> Row[Any] | None:
    return conn.execute(select(A).where(A.c.followup_id == followup_id,
                                        A.c.ended_at.is_(None))
                        .order_by(A.c.id.desc()).limit(1)).first()


def attempts_of(conn: Connection, followup_id: int) -> list[Row[Any]]:
    return list(conn.execute(select(A).where(A.c.followup_id == followup_id)
                             .order_by(A.c.id)))


# ------------------------------------------------------------------ promises


def create_promise(conn: Connection, values: dict[str, Any]) -> int | None:
    try:
        with conn.begin_nested():
            return int(conn.execute(insert(P).values(**values).returning(P.c.id))
                       .scalar_one())
    except IntegrityError:
        return None


def get_promise(conn: Connection, promise_id: int) -> Row[Any] | None:
    return conn.execute(select(P).where(P.c.id == promise_id)).first()


def update_promise(conn: Connection, promise_id: int, *, only_status: Sequence[str] = (),
                   **values: Any) -> bool:
    stmt = update(P).where(P.c.id == promise_id)
    if only_status:
        stmt = stmt.where(P.c.status.in_(only_status))
    return bool(conn.execute(stmt.values(**values)).rowcount)


def _locked(conn: Connection, stmt: Any) -> list[Row[Any]]:
    if _locking(conn):
        stmt = stmt.with_for_update(skip_locked=True, of=P)
    return list(conn.execute(stmt))


def promise_warnings_due(conn: Connection, now: datetime, limit: int = 200) -> list[Row[Any]]:
    return _locked(conn, select(P).where(P.c.status == "open", P.c.warn_at <= now,
                                         P.c.warned_at.is_(None), P.c.due_at > now)
                   .order_by(P.c.warn_at).limit(limit))


def promises_overdue(conn: Connection, now: datetime, limit: int = 200) -> list[Row[Any]]:
    return _locked(conn, select(P).where(P.c.status == "open", P.c.due_at <= now)
                   .order_by(P.c.due_at).limit(limit))


def promises_kept_in_store(conn: Connection, limit: int = 200) -> list[Row[Any]]:
    """Tracked promises not yet kept whose interaction was marked kept (a wrap-up's
    ``kept_promises``, or a source CRM)."""
    return list(conn.execute(
        select(P.c.id, P.c.status, interactions.c.promise_kept_at)
        .join(interactions, interactions.c.id == P.c.interaction_id)
        .where(P.c.kept_at.is_(None), interactions.c.promise_kept_at.is_not(None))
        .limit(limit)))


def list_promises(conn: Connection, *, status: str | None = None, limit: int = 50,
                  ) -> list[Row[Any]]:
    stmt = select(P)
    if status:
        stmt = stmt.where(P.c.status == status)
    return list(conn.execute(stmt.order_by(P.c.due_at, P.c.id).limit(limit)))


def broken_promises(conn: Connection, customer_id: int, since: datetime,
                    ) -> list[dict[str, Any]]:
    """A customer's promises broken (due passed, not kept by then) at or after ``since``,
    newest first: ``id, interaction_id, action, due_at, broken_at, kept_at`` (kept late:
    ``kept_at`` set)."""
    rows = conn.execute(select(P.c.id, P.c.interaction_id, P.c.action, P.c.due_at,
                               P.c.broken_at, P.c.kept_at)
                        .where(P.c.customer_id == customer_id, P.c.broken_at >= since)
                        .order_by(P.c.broken_at.desc()))
    return [dict(r._mapping) for r in rows]


# ------------------------------------------------------------------ events


def add_event(conn: Connection, kind: str, at: datetime, detail: dict[str, Any], *,
              followup_id: int | None = None, promise_id: int | None = None) -> int:
    return int(conn.execute(insert(E).values(
        followup_id=followup_id, promise_id=promise_id, kind=kind, at=at, detail=detail)
        .returning(E.c.id)).scalar_one())


def events_of(conn: Connection, *, followup_id: int | None = None,
              promise_id: int | None = None) -> list[Row[Any]]:
    stmt = select(E).order_by(E.c.id)
    stmt = stmt.where(E.c.followup_id == followup_id) if followup_id is not None \
        else stmt.where(E.c.promise_id == promise_id)
    return list(conn.execute(stmt))


def unnotified(conn: Connection, limit: int = 50) -> list[Row[Any]]:
    stmt = (select(E).where(E.c.notified_at.is_(None),
                            E.c.kind.in_(("warning", "broken", "failed")))
            .order_by(E.c.id).limit(limit))
    if _locking(conn):
        stmt = stmt.with_for_update(skip_locked=True, of=E)
    return list(conn.execute(stmt))


def mark_notified(conn: Connection, event_id: int, now: datetime) -> None:
    conn.execute(update(E).where(E.c.id == event_id).values(notified_at=now))


def event_counts_since(conn: Connection, since: datetime) -> dict[str, int]:
    rows = conn.execute(select(E.c.kind, func.count()).where(E.c.at >= since)
                        .group_by(E.c.kind))
    return {k: int(n) for k, n in rows}


# ------------------------------------------------------------------ SMS


def queue_sms(conn: Connection, purpose: str, ref_id: int, phone: str, body: str,
              now: datetime) -> int | None:
    """One SMS per (purpose, row): None when it was queued already."""
    try:
        with conn.begin_nested():
            return int(conn.execute(insert(S).values(
                purpose=purpose, ref_id=ref_id, phone=phone, body=body, status="pending",
                created_at=now).returning(S.c.id)).scalar_one())
    except IntegrityError:
        return None


def sms_pending(conn: Connection, limit: int = 50) -> list[Row[Any]]:
    stmt = select(S).where(S.c.status == "pending").order_by(S.c.id).limit(limit)
    if _locking(conn):
        stmt = stmt.with_for_update(skip_locked=True, of=S)
    return list(conn.execute(stmt))


def sms_stale(conn: Connection, now: datetime) -> int:
    """``sending`` rows whose sender died: marked ``unknown`` (never sent twice)."""
    return int(conn.execute(update(S).where(S.c.status == "sending", S.c.lease_until < now)
                            .values(status="unknown")).rowcount)


def update_sms(conn: Connection, sms_id: int, *, only_status: str | None = None,
               **values: Any) -> bool:
    stmt = update(S).where(S.c.id == sms_id)
    if only_status:
        stmt = stmt.where(S.c.status == only_status)
    return bool(conn.execute(stmt.values(**values)).rowcount)


def callbacks_without_sms(conn: Connection, since: datetime, limit: int = 100,
                          ) -> list[Row[Any]]:
    """Open callback requests made since ``since`` with no confirmation SMS yet."""
    return list(conn.execute(
        select(R.c.id, R.c.phone, R.c.language, R.c.kind, R.c.scheduled_for,
               R.c.deadline_at, R.c.queue)
        .where(R.c.requested_at >= since, R.c.closed_at.is_(None), R.c.kind != "followup",
               ~exists().where(S.c.purpose == "callback", S.c.ref_id == R.c.id))
        .order_by(R.c.id).limit(limit)))
