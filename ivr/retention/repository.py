"""Queries of the retention feature: exit interviews written and read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from crm_sync.models import customers
from ivr.retention.models import exit_interviews


def record_interview(conn: Connection, *, customer_id: int, call_sid: str | None,
                     interaction_id: int | None, source: str, queue: str | None,
                     agent: str | None, reason: str, reason_text: str | None,
                     stayed: bool | None, branch: str | None, now: datetime) -> int:
    """One exit interview, with the customer's tier, segment and "customer since" as they
    are now. A call's wrap-up is recorded once (unique on call and source)."""
    profile = conn.execute(select(customers.c.tier, customers.c.segment,
                                  customers.c.created_at)
                           .where(customers.c.id == customer_id)).first()
    result = conn.execute(insert(exit_interviews).values(
        customer_id=customer_id, call_sid=call_sid, interaction_id=interaction_id,
        source=source, queue=queue, agent=agent, reason=reason, reason_text=reason_text,
        stayed=stayed, tier=profile.tier if profile else None,
        segment=profile.segment if profile else None, branch=branch,
        customer_since=profile.created_at if profile else None, recorded_at=now))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def interviews_between(conn: Connection, since: datetime,
                       until: datetime) -> list[dict[str, Any]]:
    """Every exit interview recorded in [since, until), oldest first."""
    ex = exit_interviews.c
    return [dict(r._mapping) for r in conn.execute(
        select(exit_interviews).where(ex.recorded_at >= since, ex.recorded_at < until)
        .order_by(ex.recorded_at, ex.id))]
