"""Tables of the transfers feature: the conference each connected call is on (and whether
the caller is held), and every transfer of a call with what came of it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from ivr.core.db import Base, UTCDateTime


class CallConference(Base):
    """The conference a connected call is on (one per call, named after it), with the
    caller's hold state. Written at connect; the caller's and agents' participants are
    Twilio's (or the local stand-in's)."""

    __tablename__ = "call_conferences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    # Twilio's ConferenceSid, once a status callback told it.
    conference_sid: Mapped[str | None] = mapped_column(String(64))
    # The agent leg (participant CallSid) of the agent who has the call now.
    agent_leg_sid: Mapped[str | None] = mapped_column(String(64))
    held_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A redirect of the caller for the local stand-in to deliver (no account SID): the
    # next request of the caller's conference wait/hold URL answers <Redirect> to it.
    pending_redirect: Mapped[str | None] = mapped_column(String(256))


class Transfer(Base):
    """One transfer of a call. Written (state ``pending``) before any request to Twilio, so
    a process killed in between leaves a row the sweep finishes or rolls back."""

    __tablename__ = "transfers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # queue / agent / external
    mode: Mapped[str] = mapped_column(String(8))  # cold / warm
    target: Mapped[str] = mapped_column(String(256))
    target_name: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    from_agent_id: Mapped[int] = mapped_column(Integer)
    from_queue: Mapped[str | None] = mapped_column(String(64))
    to_agent_id: Mapped[int | None] = mapped_column(Integer)
    # The second agent's offer (agent_calls), for an agent transfer.
    to_offer_id: Mapped[int | None] = mapped_column(Integer)
    # The new party's leg (participant CallSid), once Twilio created it.
    leg_sid: Mapped[str | None] = mapped_column(String(64))
    # pending / ringing / consulting / joined / completed / failed / canceled
    state: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(String(32))
    caller_back_to: Mapped[str | None] = mapped_column(String(16))
    # How long the first agent had the call when the transfer was asked (the pop says it).
    after_seconds: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_transfers_call_sid", "call_sid"),
                      Index("ix_transfers_state_updated_at", "state", "updated_at"))


call_conferences: Table = CallConference.__table__  # type: ignore[assignment]
transfers: Table = Transfer.__table__  # type: ignore[assignment]
