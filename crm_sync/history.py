"""The IVR's own calls in the customer's history: an identified caller's call becomes an
interaction (source ``ivr``, external id = CallSid), so the next call — from any branch's
number, through any process — knows "called 55 minutes ago" and the path taken.

Both writes queue an outbox event (``interaction.created`` once, when the row is new;
``interaction.updated`` when the call ends) in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Insert, insert, update
from sqlalchemy.dialects import postgresql, sqlite

from crm_sync.models import interactions
from crm_sync.outbox import emit

SOURCE = "ivr"


_INDEX = ["source", "external_id"]
# Built once per dialect: a call start should not pay for building a statement.
# RETURNING says whether the row is new (rowcount is -1 on psycopg here): only then an event.
_INSERT_ONCE: dict[str, Insert] = {
    "postgresql": postgresql.insert(interactions).on_conflict_do_nothing(index_elements=_INDEX)
    .returning(interactions.c.id),
    "sqlite": sqlite.insert(interactions).on_conflict_do_nothing(index_elements=_INDEX)
    .returning(interactions.c.id),
}


def _insert_once(conn: Connection) -> Insert:
    stmt = _INSERT_ONCE.get(conn.dialect.name)
    return stmt if stmt is not None else insert(interactions).returning(interactions.c.id)


def record_inbound_call(conn: Connection, customer_id: int, call_sid: str, called: str | None,
                        started_at: datetime) -> None:
    """Once per call (a retried webhook or a second identification changes nothing)."""
    values = {
        "customer_id": customer_id, "source": SOURCE, "external_id": call_sid,
        "channel": "call", "direction": "in", "queue": None, "started_at": started_at,
        "call_sid": call_sid, "notes": f"to {called}" if called else None}
    if conn.execute(_insert_once(conn), values).first() is not None:
        emit(conn, customer_id=customer_id, kind="interaction.created",
             payload={k: v for k, v in values.items() if k != "customer_id"},
             now=started_at)


def close_inbound_call(conn: Connection, call_sid: str, ended_at: datetime,
                       path: list[dict[str, Any]] | None) -> None:
    """The call ended: when, and the IVR path it took (nodes, keys, timings)."""
    queues = [p.get("queue") for p in path or () if p.get("queue")]
    changes: dict[str, Any] = {"ended_at": ended_at, "ivr_path": path,
                               **({"queue": str(queues[-1])[:64]} if queues else {})}
    closed = conn.execute(
        update(interactions)
        .where(interactions.c.source == SOURCE, interactions.c.external_id == call_sid)
        .values(**changes).returning(interactions.c.customer_id)).first()
    if closed is not None:
        emit(conn, customer_id=closed.customer_id, kind="interaction.updated",
             payload={"source": SOURCE, "external_id": call_sid, "call_sid": call_sid,
                      **changes}, now=ended_at)
