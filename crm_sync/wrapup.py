"""An agent's wrap-up becomes part of the customer's history: the interaction (topic,
outcome, resolved, promise with a due date, leaving reason, notes, the IVR path and the
durations), incidents opened, updated or closed, and earlier promises marked kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from crm_sync.models import customers, incidents, interactions
from crm_sync.outbox import emit_many

SOURCE = "agent"


@dataclass(frozen=True)
class WrapUp:
    topic: str
    outcome: str
    resolved: bool
    promised_action: str | None = None
    promised_due_at: datetime | None = None
    leaving_reason: str | None = None
    notes: str | None = None
    # The exit interview (ivr.retention): the customer's words for an "other" reason, and
    # whether they stayed (True: saved, their status is not set to leaving).
    leaving_text: str | None = None
    stayed: bool | None = None
    close_incidents: tuple[int, ...] = ()
    kept_promises: tuple[int, ...] = ()


@dataclass(frozen=True)
class CallFacts:
    call_sid: str
    customer_id: int
    agent: str
    queue: str | None
    started_at: datetime
    ended_at: datetime
    wait_seconds: int | None
    talk_seconds: int | None
    ivr_path: list[dict[str, Any]] = field(default_factory=list)
    branch: str | None = None
    direction: str = "in"  # out: a callback we placed


@dataclass(frozen=True)
class Written:
    interaction_id: int
    created: bool
    incidents_opened: tuple[int, ...]
    incidents_closed: tuple[int, ...]
    incidents_updated: tuple[int, ...]


def record_wrap_up(conn: Connection, facts: CallFacts, wrap: WrapUp, now: datetime) -> Written:
    values = {
        "agent": facts.agent, "queue": facts.queue, "ended_at": facts.ended_at,
        "topic": wrap.topic, "outcome": wrap.outcome, "resolved": wrap.resolved,
        "promised_action": wrap.promised_action, "promised_due_at": wrap.promised_due_at,
        "leaving_reason": wrap.leaving_reason, "notes": wrap.notes,
        "wait_seconds": facts.wait_seconds, "talk_seconds": facts.talk_seconds,
        "ivr_path": facts.ivr_path,
    }
    # The IVR wrote this call into the history when it started (an identified caller):
    # the wrap-up completes that row rather than adding a second one for the same call.
    existing = conn.execute(select(interactions.c.id).where(
        interactions.c.call_sid == facts.call_sid,
        interactions.c.customer_id == facts.customer_id).order_by(interactions.c.id)
        .limit(1)).scalar()
    if existing is not None:
        conn.execute(update(interactions).where(interactions.c.id == existing).values(values))
        interaction_id, created = int(existing), False
    else:
        result = conn.execute(insert(interactions).values(
            customer_id=facts.customer_id, source=SOURCE, external_id=facts.call_sid,
            channel="call", direction=facts.direction, started_at=facts.started_at,
            call_sid=facts.call_sid, **values))
        interaction_id, created = int(result.inserted_primary_key[0]), True  # type: ignore[index]
    if wrap.kept_promises:
        conn.execute(update(interactions).where(
            interactions.c.id.in_(list(wrap.kept_promises)),
            interactions.c.customer_id == facts.customer_id,
            interactions.c.promise_kept_at.is_(None)).values(promise_kept_at=now))
    open_ids = list(conn.execute(select(incidents.c.id).where(
        incidents.c.customer_id == facts.customer_id, incidents.c.status == "open")).scalars())
    closing = [i for i in wrap.close_incidents if i in open_ids]
    if closing:
        conn.execute(update(incidents).where(incidents.c.id.in_(closing)).values(
            status="closed", closed_at=now, last_update_at=now))
    still_open = [i for i in open_ids if i not in closing]
    opened: list[int] = []
    if not wrap.resolved and not still_open:
        # An unresolved problem nobody has on record yet: open an incident every branch sees.
        result = conn.execute(insert(incidents).values(
            customer_id=facts.customer_id, source=SOURCE, external_id=facts.call_sid,
            category=wrap.topic[:64], status="open",
            summary=wrap.notes or wrap.outcome, branch=facts.branch, opened_at=now,
            last_update_at=now))
        opened.append(int(result.inserted_primary_key[0]))  # type: ignore[index]
    elif still_open:
        conn.execute(update(incidents).where(incidents.c.id.in_(still_open))
                     .values(last_update_at=now))
    # Subscribed systems hear of it (same transaction: no event for a wrap-up that failed).
    events: list[tuple[int, str, dict[str, Any]]] = [(
        facts.customer_id, "interaction.created" if created else "interaction.updated",
        {"interaction_id": interaction_id, "call_sid": facts.call_sid, "channel": "call",
         "direction": facts.direction, "started_at": facts.started_at, **values})]
    events += [(facts.customer_id, "incident.created",
                {"incident_id": i, "status": "open", "category": wrap.topic[:64],
                 "summary": wrap.notes or wrap.outcome, "branch": facts.branch,
                 "opened_at": now}) for i in opened]
    events += [(facts.customer_id, "incident.updated",
                {"incident_id": i, "status": "closed", "closed_at": now}) for i in closing]
    emit_many(conn, events, now)
    if wrap.leaving_reason and wrap.stayed is not True:
        conn.execute(update(customers).where(customers.c.id == facts.customer_id,
                                             customers.c.status == "active")
                     .values(status="leaving", updated_at=now))
    elif wrap.leaving_reason:  # kept: a customer who was leaving is active again
        conn.execute(update(customers).where(customers.c.id == facts.customer_id,
                                             customers.c.status == "leaving")
                     .values(status="active", updated_at=now))
    return Written(interaction_id, created, tuple(opened), tuple(closing), tuple(still_open))
