"""Tables of CRM sync over HTTP: each source's incremental cursor and resumable run, and the
outbound change feed (the outbox, its subscribers, the per-customer ordering lock)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, Table, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from ivr.core.db import Base, UTCDateTime


class SyncCursor(Base):
    """One pull endpoint of one source (source, kind): the committed "updated since" cursor,
    and the run in progress (its start cursor, the next page, the highest value seen), so a
    run that failed midway resumes at the page after its last committed one."""

    __tablename__ = "sync_cursors"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(Text)  # sent as the since parameter next run
    run_id: Mapped[int | None] = mapped_column(Integer)  # import_runs.id of the unfinished run
    run_since: Mapped[str | None] = mapped_column(Text)  # the cursor that run started from
    position: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # its next page
    high_water: Mapped[str | None] = mapped_column(Text)  # highest cursor value it committed
    last_run_id: Mapped[int | None] = mapped_column(Integer)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OutboxSubscriber(Base):
    """A system that receives our changes (from ``crm/subscribers.yaml``; secrets stay in the
    environment). ``emit`` fans an event out to the active ones in the writer's transaction."""

    __tablename__ = "outbox_subscribers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The source name the system's own records come in as: its rows are never echoed to it.
    source: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OutboxEvent(Base):
    """One event for one subscriber. Written in the transaction of the change it describes;
    delivered in ``id`` order per (subscriber, customer_id)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36))  # the idempotency key (same per event)
    subscriber: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    origin: Mapped[str | None] = mapped_column(String(64))  # source of an imported row
    body: Mapped[str] = mapped_column(Text)  # the exact JSON posted (retries send the same)
    status: Mapped[str] = mapped_column(String(16))  # pending / sending / delivered / dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        # The claim walks the undelivered rows in id order (delivered ones pile up in front).
        Index("ix_outbox_undelivered", "id",
              postgresql_where=text("status IN ('pending', 'sending')"),
              sqlite_where=text("status IN ('pending', 'sending')")),
        Index("ix_outbox_status_due", "status", "due_at"),
    )


class OutboxCustomer(Base):
    """A row per customer with events: PostgreSQL's emit locks it (upsert) before the event
    gets its id, so a customer's event ids increase in commit order (no later id visible
    before an earlier one), which per-customer delivery order relies on."""

    __tablename__ = "outbox_customers"

    customer_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    events: Mapped[int] = mapped_column(Integer, default=0)


sync_cursors: Table = SyncCursor.__table__  # type: ignore[assignment]
outbox_subscribers: Table = OutboxSubscriber.__table__  # type: ignore[assignment]
outbox: Table = OutboxEvent.__table__  # type: ignore[assignment]
outbox_customers: Table = OutboxCustomer.__table__  # type: ignore[assignment]
