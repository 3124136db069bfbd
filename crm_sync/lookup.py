"""Who is calling: the caller ID (any format) or a typed account number -> customer attributes
that menu conditions branch on and the agent's screen will show."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Select, bindparam, func, select

from crm_sync.models import customer_phones as phones
from crm_sync.models import customers, incidents, interactions
from crm_sync.phones import is_withheld, normalize

CallerKind = Literal["known", "ambiguous", "unknown", "withheld"]


@dataclass(frozen=True)
class CallerMatch:
    outcome: CallerKind
    customer_ids: tuple[int, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)


def _with_attributes(query: Select[Any]) -> Select[Any]:
    """Add what menus branch on to a query over ``customers``: one round trip."""
    open_incidents = (select(func.count()).select_from(incidents)
                      .where(incidents.c.customer_id == customers.c.id,
                             incidents.c.status == "open").scalar_subquery())
    newest_open = (select(func.max(incidents.c.opened_at))
                   .where(incidents.c.customer_id == customers.c.id,
                          incidents.c.status == "open").scalar_subquery())
    last_call = (select(func.max(interactions.c.started_at))
                 .where(interactions.c.customer_id == customers.c.id,
                        interactions.c.channel == "call", interactions.c.direction == "in")
                 .scalar_subquery())
    return query.add_columns(customers.c.id, customers.c.tier, customers.c.segment,
                             customers.c.status, customers.c.preferred_language,
                             customers.c.date_of_birth,
                             open_incidents.label("open_incidents"),
                             newest_open.label("newest_open"),
                             last_call.label("last_call"))


REPEAT_WINDOW_MINUTES = 120


def _stamp(value: Any, now: datetime) -> datetime | None:
    if value is None:
        return None
    stamp = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(stamp, datetime):  # SQLite returns max() of a timestamp as text
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=now.tzinfo)


def _attributes(row: Any, now: datetime,
                window_minutes: int = REPEAT_WINDOW_MINUTES) -> dict[str, Any]:
    opened = _stamp(row.newest_open, now)
    last_call = row.last_call
    hours = minutes = None
    if last_call is not None:
        if isinstance(last_call, str):  # SQLite returns max() of a timestamp as text
            last_call = datetime.fromisoformat(last_call)
        if last_call.tzinfo is None:
            last_call = last_call.replace(tzinfo=now.tzinfo)
        seconds = (now - last_call).total_seconds()
        hours = round(seconds / 3600, 2)
        minutes = int(seconds // 60)
    return {
        # Called us within the window (the menu can branch on it; with an open incident the
        # router prefers the agent who last handled the customer).
        "repeat_caller": minutes is not None and 0 <= minutes <= window_minutes,
        "minutes_since_last_call": minutes,
        "identified": True,
        "customer_id": row.id,
        "tier": row.tier,
        "segment": row.segment,
        "status": row.status,
        "preferred_language": row.preferred_language,
        "open_incidents": int(row.open_incidents or 0),
        "has_open_incident": bool(row.open_incidents),
        # When the newest open incident was opened (prompts say "the fault you reported
        # at {open_incident_opened_at:time}").
        "open_incident_opened_at": opened.isoformat() if opened is not None else None,
        "hours_since_last_call": hours,
        # For the call's recognition facts (a birthday today); the IVR keeps the fact, not
        # the date (``ivr.calls.service``).
        "date_of_birth": row.date_of_birth.isoformat() if row.date_of_birth else None,
    }


# Built once: every call start runs one of these (SQLAlchemy caches their compiled form).
_BY_ACCOUNT = _with_attributes(select().select_from(customers)).where(
    customers.c.account_number == bindparam("account"))
_BY_PHONE = (_with_attributes(select().select_from(
    phones.join(customers, customers.c.id == phones.c.customer_id)))
    .where(phones.c.e164 == bindparam("e164")).order_by(customers.c.id).limit(10))


def identify_caller(conn: Connection, caller_id: str | None, region: str,
                    now: datetime, window_minutes: int = REPEAT_WINDOW_MINUTES) -> CallerMatch:
    """Look the calling number up in the shared store."""
    if is_withheld(caller_id):
        return CallerMatch("withheld", attributes={"identified": False,
                                                   "caller_outcome": "withheld"})
    assert caller_id is not None
    phone = normalize(caller_id, region)
    if phone.e164 is None:
        return CallerMatch("unknown", attributes={"identified": False,
                                                  "caller_outcome": "unknown"})
    # The number's customers with their attributes, in one statement (the common case of
    # one customer needs nothing else).
    rows = conn.execute(_BY_PHONE, {"e164": phone.e164}).all()
    if not rows:
        return CallerMatch("unknown", attributes={"identified": False,
                                                  "caller_outcome": "unknown"})
    if len(rows) > 1:  # a shared family line: ask for the account number
        ids = tuple(r.id for r in rows)
        return CallerMatch("ambiguous", ids, {"identified": False,
                                              "caller_outcome": "ambiguous",
                                              "candidates": len(ids)})
    attrs = _attributes(rows[0], now, window_minutes)
    attrs["caller_outcome"] = "known"
    return CallerMatch("known", (rows[0].id,), attrs)


def identify_by_account(conn: Connection, account_number: str, now: datetime,
                        window_minutes: int = REPEAT_WINDOW_MINUTES) -> dict[str, Any] | None:
    """The attributes of the customer with this account number, or None."""
    key = account_number.strip().replace(" ", "").replace("-", "")
    row = conn.execute(_BY_ACCOUNT, {"account": key}).one_or_none()
    if row is None:
        return None
    attrs = _attributes(row, now, window_minutes)
    attrs["caller_outcome"] = "account"
    return attrs
