"""Tables of callbacks: the promises made to callers, each attempt to keep them, and what
happened to them (warnings, breaches, escalations).

Every timer is a row with a due time (``due_at``: the next dial; ``warn_at``;
``deadline_at``), so restarting or killing any process loses nothing: the next sweep of any
worker reads the same rows. A claimed request carries a lease (``lease_owner``,
``lease_until``); a claim whose process died is taken over when the lease runs out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Table, text
from sqlalchemy.orm import Mapped, mapped_column

from ivr.core.db import Base, UTCDateTime

#: Statuses of a request that is still a promise to keep.
OPEN = ("pending", "dialing", "connected")


class CallbackRequest(Base):
    """A caller's request to be called back, and the promise we made them."""

    __tablename__ = "callback_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(32))  # E.164: the number we call
    caller_number: Mapped[str | None] = mapped_column(String(32))  # the request's caller ID
    call_sid: Mapped[str | None] = mapped_column(String(64))  # the call it was asked in
    customer_id: Mapped[int | None] = mapped_column(Integer)
    tier: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(16), default="he-IL")
    timezone: Mapped[str | None] = mapped_column(String(64))  # the customer's, if known
    priority: Mapped[int] = mapped_column(Integer, default=0)
    # When the caller first joined the queue: the place the callback keeps.
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(16), default="asap")  # asap / scheduled
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())
    warn_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The earliest the next dial may be placed (a callable instant: open, not quiet hours).
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # pending (waiting for an agent) / dialing (claimed: agent reserved, customer being
    # called) / connected (customer answered, with the agent) / completed / failed
    # (attempts exhausted: escalated) / canceled
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # "queue|customer:ID" or "queue|phone:+972…" while open, NULL once closed: the unique
    # index makes "one open callback per customer (or number) per queue" a database fact.
    open_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # dials that did not reach them
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    agent_id: Mapped[int | None] = mapped_column(Integer)
    last_outcome: Mapped[str | None] = mapped_column(String(32))
    warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        # Timers: leases that ran out, warnings and breaches due.
        Index("ix_callback_requests_lease", "lease_until",
              postgresql_where=text("status = 'dialing'"),
              sqlite_where=text("status = 'dialing'")),
        Index("ix_callback_requests_open_deadline", "deadline_at",
              postgresql_where=text("closed_at IS NULL"),
              sqlite_where=text("closed_at IS NULL")),
        Index("ix_callback_requests_caller_requested", "caller_number", "requested_at"),
        Index("ix_callback_requests_phone_requested", "phone", "requested_at"),
        Index("ix_callback_requests_customer", "customer_id"),
    )


# The dispatcher's read and claim (repository.due, one read per queue with a free agent;
# repository.claim_next, the queue's head): a queue's pending rows in dispatch order,
# ``priority`` descending. With ``priority`` ascending
# PostgreSQL cannot walk the index for ``ORDER BY priority DESC, deadline_at`` (a backward
# scan gives ``deadline_at DESC`` too), and under ``FOR UPDATE SKIP LOCKED`` it sorted every
# due row per claim (6.2 s at 1,000,000 pending rows); in this order the claim reads the head
# of its queue's part of the index (bench/results.md). ``queue`` leads, so a queue swamped
# with due callbacks and no free agent never stands in front of another queue's. ``due_at``
# comes last: it changes no order (``id`` is unique before it), but ``due_at <= now`` is
# then checked on the index entry, so the requests not yet due that rank before the due
# ones (a scheduled callback's deadline is 30 minutes after its time) are passed over in
# the index. Read from the table, they were 979 rows and 1,084 buffers a claim after the
# benchmark's 8,400 claims among 1,000,000 (0.5-1.8 ms; now none, 118 buffers, 0.17-0.45 ms).
Index("ix_callback_requests_claim", CallbackRequest.queue, CallbackRequest.priority.desc(),
      CallbackRequest.deadline_at, CallbackRequest.entered_at, CallbackRequest.id,
      CallbackRequest.due_at,
      postgresql_where=text("status = 'pending'"), sqlite_where=text("status = 'pending'"))
# "Is any callback due?" (repository.due_probe): part of the router's first, cheap question.
Index("ix_callback_requests_pending_due", CallbackRequest.due_at,
      postgresql_where=text("status = 'pending'"), sqlite_where=text("status = 'pending'"))


class CallbackAttempt(Base):
    """One dial of a request: who was reserved, the Twilio call, and how it ended."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("callback_requests.id", ondelete="CASCADE"), index=True)
    attempt_no: Mapped[int] = mapped_column(Integer)
    agent_id: Mapped[int | None] = mapped_column(Integer)
    offer_id: Mapped[int | None] = mapped_column(Integer)  # the agent_calls row
    # The key the agent side uses for this attempt (agents.current_call_sid, agent_calls,
    # the console): "CB<attempt id>"; the customer leg's Twilio CallSid is ``call_sid``.
    agent_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    claimed_by: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    dialed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_by: Mapped[str | None] = mapped_column(String(32))  # human / machine_* / fax
    bridged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # agent answered
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # completed / busy / no-answer / failed / canceled / machine / hung-up / agent-missed /
    # dial-error / lost (the claiming process died before Twilio knew of the call)
    outcome: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(String(500))


class CallbackEvent(Base):
    """What happened to a request, in order: requested, updated, warning, breach, attempt,
    completed, failed (escalated), canceled. The supervisor view, ``ivr callbacks stats``
    and the escalation webhook read these; ``notified_at`` is set once the webhook took it."""

    __tablename__ = "callback_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("callback_requests.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_callback_events_unnotified", "id",
              postgresql_where=text("notified_at IS NULL AND kind IN "
                                    "('warning', 'breach', 'failed')"),
              sqlite_where=text("notified_at IS NULL AND kind IN "
                                "('warning', 'breach', 'failed')")),
        Index("ix_callback_events_kind_at", "kind", "at"),
    )


callback_requests: Table = CallbackRequest.__table__  # type: ignore[assignment]
callback_attempts: Table = CallbackAttempt.__table__  # type: ignore[assignment]
callback_events: Table = CallbackEvent.__table__  # type: ignore[assignment]
