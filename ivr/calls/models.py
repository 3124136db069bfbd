"""Tables for call state. Any process can answer a call's next webhook from these rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ivr.core.db import Base, UTCDateTime


class Call(Base):
    __tablename__ = "calls"

    call_sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_sid: Mapped[str | None] = mapped_column(String(64))
    from_number: Mapped[str | None] = mapped_column(String(64))
    to_number: Mapped[str | None] = mapped_column(String(64))
    direction: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32), default="in-progress")
    # Where the caller is in the menu tree, pinned to the bundle version the call started on.
    menu_version: Mapped[str] = mapped_column(String(64))
    menu: Mapped[str] = mapped_column(String(64))
    node: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(16))
    no_input_count: Mapped[int] = mapped_column(Integer, default=0)
    invalid_count: Mapped[int] = mapped_column(Integer, default=0)
    ended: Mapped[bool] = mapped_column(default=False)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Every node visited, every key pressed and phrase heard, with timestamps.
    path: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Idempotency: the step counter is in every action URL we hand Twilio. A retried
    # request (same step, same fingerprint) gets the stored answer again, no double effect.
    step: Mapped[int] = mapped_column(Integer, default=0)
    last_fingerprint: Mapped[str | None] = mapped_column(String(64))
    last_response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_seconds: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (Index("ix_calls_created_at", "created_at"),)


class CallStatusEvent(Base):
    """Every status callback Twilio sent, once (Twilio may retry a callback)."""

    __tablename__ = "call_status_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32))
    sequence_number: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (
        UniqueConstraint("call_sid", "status", "sequence_number",
                         name="uq_call_status_events_call_sid_status_seq"),
    )


class MenuVersion(Base):
    """The exact menu sources of every bundle version that went live."""

    __tablename__ = "menu_versions"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    sources: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
