"""Tables of follow-ups (issue 17.2): satisfaction calls after a closed incident and calls
after a low survey score, the promises agents make, and the SMS that confirm their times.

As with callbacks, every timer is a row with a due time (``followups.due_at``,
``followups.lease_until``, ``promises.warn_at`` / ``due_at``, ``sms_messages``), so any
worker picks up where a killed one stopped. A follow-up handed to an agent becomes a
``callback_requests`` row (``callback_request_id``): the callback machinery dials it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Table, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from crm_sync.models import Incident, Interaction
from ivr.core.db import Base, UTCDateTime

#: Statuses of a follow-up still to be made.
OPEN = ("pending", "dialing", "connected", "queued")


class FollowUp(Base):
    """A call we owe a customer: a satisfaction call after a closed incident, or a call
    after a low survey score; dialled by us with the survey (mode ``survey``) or handed to
    an agent through the callback queue (mode ``agent``)."""

    __tablename__ = "followups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # satisfaction / low_csat
    # "incident:<id>" / "survey:<response id>": one follow-up per cause (a database fact).
    source_key: Mapped[str] = mapped_column(String(64), unique=True)
    incident_id: Mapped[int | None] = mapped_column(Integer, index=True)
    customer_id: Mapped[int | None] = mapped_column(Integer)
    phone: Mapped[str | None] = mapped_column(String(32))  # E.164; None: nobody to call
    language: Mapped[str] = mapped_column(String(16), default="he-IL")
    mode: Mapped[str] = mapped_column(String(16))  # survey / agent
    queue: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)  # what the agent's pop says
    about_call_sid: Mapped[str | None] = mapped_column(String(64))
    # The customer calling us after this instant makes the follow-up needless.
    since_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())  # next dial (or hand-over)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())  # end of its first window
    # pending / dialing (claimed, leased) / connected (answered by a person) / queued
    # (handed to the callback queue) / completed / failed / skipped / canceled
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # dials that did not reach
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    callback_request_id: Mapped[int | None] = mapped_column(Integer, index=True)
    last_outcome: Mapped[str | None] = mapped_column(String(32))
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_followups_pending_due", "due_at",
              postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
        Index("ix_followups_lease", "lease_until",
              postgresql_where=text("status = 'dialing'"),
              sqlite_where=text("status = 'dialing'")),
        Index("ix_followups_customer_due", "customer_id", "due_at"),
    )


class FollowUpAttempt(Base):
    """One dial of a survey follow-up: the Twilio call and how it ended."""

    __tablename__ = "followup_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    followup_id: Mapped[int] = mapped_column(
        ForeignKey("followups.id", ondelete="CASCADE"), index=True)
    attempt_no: Mapped[int] = mapped_column(Integer)
    call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    claimed_by: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    dialed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_by: Mapped[str | None] = mapped_column(String(32))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # completed / busy / no-answer / failed / canceled / machine / dial-error / lost
    outcome: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(String(500))


class Promise(Base):
    """A promised action with a due time, from an interaction (an agent's wrap-up or a
    source CRM): its owner, the warning before due, broken (escalated) or kept."""

    __tablename__ = "promises"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    interaction_id: Mapped[int] = mapped_column(Integer, unique=True)
    customer_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(Text)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    warn_at: Mapped[datetime] = mapped_column(UTCDateTime())
    owner_agent_id: Mapped[int | None] = mapped_column(Integer)  # the agent, else ...
    owner_queue: Mapped[str | None] = mapped_column(String(64))  # ... the queue
    status: Mapped[str] = mapped_column(String(16), default="open")  # open / kept / broken
    warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    broken_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    kept_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    kept_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_promises_open_warn", "warn_at",
              postgresql_where=text("status = 'open'"), sqlite_where=text("status = 'open'")),
        Index("ix_promises_open_due", "due_at",
              postgresql_where=text("status = 'open'"), sqlite_where=text("status = 'open'")),
        Index("ix_promises_customer_broken", "customer_id", "broken_at"),
    )


class FollowUpEvent(Base):
    """What happened to a follow-up or a promise: scheduled, skipped, attempt, completed,
    failed, warning, broken, kept. The supervisor view, ``ivr followups stats`` and the
    escalation webhook read these (``notified_at`` once the webhook took it)."""

    __tablename__ = "followup_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    followup_id: Mapped[int | None] = mapped_column(
        ForeignKey("followups.id", ondelete="CASCADE"), index=True)
    promise_id: Mapped[int | None] = mapped_column(
        ForeignKey("promises.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_followup_events_unnotified", "id",
              postgresql_where=text("notified_at IS NULL AND kind IN "
                                    "('warning', 'broken', 'failed')"),
              sqlite_where=text("notified_at IS NULL AND kind IN "
                                "('warning', 'broken', 'failed')")),
        Index("ix_followup_events_kind_at", "kind", "at"),
    )


class SmsMessage(Base):
    """An SMS confirming a time (of a callback, a follow-up or a promise): one per purpose
    and row (unique), sent at most once (``sending`` is written before Twilio is asked)."""

    __tablename__ = "sms_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    purpose: Mapped[str] = mapped_column(String(16))  # callback / followup / promise
    ref_id: Mapped[int] = mapped_column(Integer)
    phone: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    # pending / sending / sent / failed / unknown (the process died while sending)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    sid: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("uq_sms_messages_purpose_ref", "purpose", "ref_id", unique=True),
        Index("ix_sms_messages_pending", "id",
              postgresql_where=text("status IN ('pending', 'sending')"),
              sqlite_where=text("status IN ('pending', 'sending')")),
    )


# The scans that find new work in the customer store (closed incidents; promised actions).
Index("ix_incidents_closed_at", Incident.closed_at,
      postgresql_where=text("status = 'closed'"), sqlite_where=text("status = 'closed'"))
Index("ix_interactions_promised_due", Interaction.promised_due_at,
      postgresql_where=text("promised_action IS NOT NULL"),
      sqlite_where=text("promised_action IS NOT NULL"))

followups: Table = FollowUp.__table__  # type: ignore[assignment]
followup_attempts: Table = FollowUpAttempt.__table__  # type: ignore[assignment]
promises: Table = Promise.__table__  # type: ignore[assignment]
followup_events: Table = FollowUpEvent.__table__  # type: ignore[assignment]
sms_messages: Table = SmsMessage.__table__  # type: ignore[assignment]
