"""What the agent sees before saying hello: the customer's side of the screen-pop.

Story 4's questions for one customer, from the shared store (every branch and source):
who they are, the recent interactions (when, channel, topic, who, outcome, resolved), the
open incidents, promised actions outstanding and overdue, when they last called us and we
them, whether this is a repeat call, and leaving-risk signals. The call's own side (IVR
path, wait) is added by the agents feature. Every query is by customer id on an index.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, case, func, select

from crm_sync.models import customer_phones as phones
from crm_sync.models import customers, incidents, interactions

RECENT = 5
LEAVING_STATUSES = ("leaving", "left")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _as_dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _not_this_call(call_sid: str | None) -> Any:
    return (interactions.c.call_sid.is_(None) | (interactions.c.call_sid != call_sid)
            if call_sid else interactions.c.id.is_not(None))


def customer_context(conn: Connection, customer_id: int, now: datetime, *,
                     call_sid: str | None = None, repeat_window_minutes: int = 120,
                     ) -> dict[str, Any]:
    """The customer's part of the screen-pop (``call_sid``: the call being answered, left out
    of "previous" contacts)."""
    row = conn.execute(select(customers.c.id, customers.c.name, customers.c.account_number,
                              customers.c.tier, customers.c.segment, customers.c.status,
                              customers.c.preferred_language)
                       .where(customers.c.id == customer_id)).first()
    if row is None:
        return empty_context()
    customer = dict(row._mapping)
    customer["phones"] = list(conn.execute(select(phones.c.e164).where(
        phones.c.customer_id == customer_id).order_by(phones.c.e164)).scalars())
    others = _not_this_call(call_sid)
    recent = [{
        "id": r.id, "started_at": _iso(r.started_at), "channel": r.channel,
        "direction": r.direction, "topic": r.topic, "agent": r.agent, "outcome": r.outcome,
        "resolved": r.resolved, "queue": r.queue, "source": r.source, "notes": r.notes,
        "leaving_reason": r.leaving_reason,
    } for r in conn.execute(
        select(interactions).where(interactions.c.customer_id == customer_id, others)
        .order_by(interactions.c.started_at.desc(), interactions.c.id.desc()).limit(RECENT))]
    open_incidents = [{
        "id": r.id, "opened_at": _iso(r.opened_at), "source": r.source, "branch": r.branch,
        "category": r.category, "summary": r.summary, "last_update_at": _iso(r.last_update_at),
    } for r in conn.execute(
        select(incidents).where(incidents.c.customer_id == customer_id,
                                incidents.c.status == "open")
        .order_by(incidents.c.opened_at.desc()).limit(20))]
    promises = []
    for r in conn.execute(
            select(interactions.c.id, interactions.c.promised_action,
                   interactions.c.promised_due_at, interactions.c.agent)
            .where(interactions.c.customer_id == customer_id,
                   interactions.c.promised_action.is_not(None),
                   interactions.c.promise_kept_at.is_(None))
            .order_by(interactions.c.promised_due_at).limit(20)):
        due = r.promised_due_at
        promises.append({"interaction_id": r.id, "action": r.promised_action,
                         "due_at": _iso(due), "overdue": bool(due is not None and due < now),
                         "agent": r.agent})
    last = conn.execute(select(
        func.max(case((interactions.c.direction == "in", interactions.c.started_at))),
        func.max(case((interactions.c.direction == "out", interactions.c.started_at))))
        .where(interactions.c.customer_id == customer_id, others)).one()
    last_in, last_out = _as_dt(last[0]), _as_dt(last[1])
    # What the last call in was about: its own topic, or none (never an older call's).
    last_topic = conn.execute(
        select(interactions.c.topic)
        .where(interactions.c.customer_id == customer_id, interactions.c.direction == "in",
               others)
        .order_by(interactions.c.started_at.desc(), interactions.c.id.desc()).limit(1)
    ).scalar() if last_in is not None else None
    reasons = []
    if customer["status"] in LEAVING_STATUSES:
        reasons.append(f"customer status: {customer['status']}")
    reasons += [f"said they may leave: {i['leaving_reason']} ({i['started_at'][:10]})"
                for i in recent if i.get("leaving_reason")]
    return {
        "customer": customer,
        "interactions": recent,
        "open_incidents": open_incidents,
        "promises": promises,
        "last_inbound_at": _iso(last_in),
        "last_outbound_at": _iso(last_out),
        "repeat": repeat_of(last_in, last_topic, now, repeat_window_minutes),
        "leaving_risk": {"flag": bool(reasons), "reasons": reasons},
    }


def repeat_of(last_in: datetime | None, topic: str | None, now: datetime,
              window_minutes: int) -> dict[str, Any]:
    """"Called 55 minutes ago about the internet fault": the previous inbound contact within
    the window, and what that contact was about (``topic``: its own; none is named when it
    had none, never an earlier or outbound contact's)."""
    if last_in is None:
        return {"is_repeat": False, "minutes_since_last_call": None, "last_topic": None,
                "text": None}
    minutes = int((now - last_in).total_seconds() // 60)
    topic = topic or None
    is_repeat = 0 <= minutes <= window_minutes
    text = None
    if is_repeat:
        text = f"called {minutes} minutes ago" + (f" about {topic}" if topic else "")
    return {"is_repeat": is_repeat, "minutes_since_last_call": minutes, "last_topic": topic,
            "text": text}


def empty_context() -> dict[str, Any]:
    return {"customer": None, "interactions": [], "open_incidents": [], "promises": [],
            "last_inbound_at": None, "last_outbound_at": None,
            "repeat": {"is_repeat": False, "minutes_since_last_call": None,
                       "last_topic": None, "text": None},
            "leaving_risk": {"flag": False, "reasons": []}}
