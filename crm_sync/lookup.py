"""Who is calling: the caller ID (any format) or a typed account number -> customer attributes
that menu conditions branch on and the agent's screen will show."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Table, func, select

from crm_sync.models import Customer, CustomerPhone, Incident, Interaction
from crm_sync.phones import is_withheld, normalize

customers: Table = Customer.__table__  # type: ignore[assignment]
phones: Table = CustomerPhone.__table__  # type: ignore[assignment]
incidents: Table = Incident.__table__  # type: ignore[assignment]
interactions: Table = Interaction.__table__  # type: ignore[assignment]

Outcome = Literal["known", "ambiguous", "unknown", "withheld"]


@dataclass(frozen=True)
class CallerMatch:
    outcome: Outcome
    customer_ids: tuple[int, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)


def _customers_with_phone(conn: Connection, e164: str) -> list[int]:
    rows = conn.execute(
        select(phones.c.customer_id).where(phones.c.e164 == e164)
        .order_by(phones.c.customer_id).limit(10))
    return [r[0] for r in rows]


def attributes_of(conn: Connection, customer_id: int, now: datetime) -> dict[str, Any]:
    """What menus branch on: tier, language, status, open incidents, last call."""
    row = conn.execute(select(customers.c.tier, customers.c.segment, customers.c.status,
                              customers.c.preferred_language)
                       .where(customers.c.id == customer_id)).one_or_none()
    if row is None:
        return {"identified": False}
    open_incidents = conn.execute(
        select(func.count()).select_from(incidents)
        .where(incidents.c.customer_id == customer_id, incidents.c.status == "open")).scalar()
    last_call = conn.execute(
        select(func.max(interactions.c.started_at))
        .where(interactions.c.customer_id == customer_id, interactions.c.channel == "call",
               interactions.c.direction == "in")).scalar()
    hours = None
    if last_call is not None:
        if isinstance(last_call, str):  # SQLite returns max() of a timestamp as text
            last_call = datetime.fromisoformat(last_call)
        if last_call.tzinfo is None:
            last_call = last_call.replace(tzinfo=now.tzinfo)
        hours = round((now - last_call).total_seconds() / 3600, 2)
    return {
        "identified": True,
        "customer_id": customer_id,
        "tier": row.tier,
        "segment": row.segment,
        "status": row.status,
        "preferred_language": row.preferred_language,
        "open_incidents": int(open_incidents or 0),
        "has_open_incident": bool(open_incidents),
        "hours_since_last_call": hours,
    }


def identify_caller(conn: Connection, caller_id: str | None, region: str,
                    now: datetime) -> CallerMatch:
    """Look the calling number up in the shared store."""
    if is_withheld(caller_id):
        return CallerMatch("withheld", attributes={"identified": False,
                                                   "caller_outcome": "withheld"})
    assert caller_id is not None
    phone = normalize(caller_id, region)
    if phone.e164 is None:
        return CallerMatch("unknown", attributes={"identified": False,
                                                  "caller_outcome": "unknown"})
    ids = _customers_with_phone(conn, phone.e164)
    if not ids:
        return CallerMatch("unknown", attributes={"identified": False,
                                                  "caller_outcome": "unknown"})
    if len(ids) > 1:  # a shared family line: ask for the account number
        return CallerMatch("ambiguous", tuple(ids), {"identified": False,
                                                     "caller_outcome": "ambiguous",
                                                     "candidates": len(ids)})
    attrs = attributes_of(conn, ids[0], now)
    attrs["caller_outcome"] = "known"
    return CallerMatch("known", (ids[0],), attrs)


def identify_by_account(conn: Connection, account_number: str,
                        now: datetime) -> dict[str, Any] | None:
    """The attributes of the customer with this account number, or None."""
    customer_id = conn.execute(select(customers.c.id).where(
        customers.c.account_number == account_number.strip())).scalar()
    if customer_id is None:
        return None
    attrs = attributes_of(conn, int(customer_id), now)
    attrs["caller_outcome"] = "account"
    return attrs
