"""Tables for agents and routing. Routing state lives here, so several server processes
share it: which calls wait in which queue (and since when), which agent a call was offered
to, and the events pushed to each agent's console."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Table, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from ivr.core.db import Base, UTCDateTime


class Agent(Base):
    """A person who answers calls (role ``agent``) or supervises them (role ``admin``)."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="agent")  # agent / admin
    password_hash: Mapped[str] = mapped_column(String(255))
    queues: Mapped[list[str]] = mapped_column(JSON, default=list)
    team: Mapped[str | None] = mapped_column(String(64))
    # How Twilio reaches the agent: a Twilio Client identity, a phone number, a SIP URI.
    reach_kind: Mapped[str] = mapped_column(String(8), default="client")
    reach_target: Mapped[str] = mapped_column(String(256))
    # offline / available / reserved (a call is being connected) / on_call / wrap_up
    state: Mapped[str] = mapped_column(String(16), default="offline")
    state_since: Mapped[datetime] = mapped_column(UTCDateTime())
    # Unique: one call can never be offered to two agents, whatever the processes do.
    current_call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(default=True)
    # The console's language ("he", "en"; issue 17.5); None: the centre's
    # (IVR_INTERFACE_LANGUAGE).
    language: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_agents_state_since", "state", "state_since"),)


class AgentSession(Base):
    """A signed-in console. Only the SHA-256 of the token is stored."""

    __tablename__ = "agent_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"),
                                          index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LoginFailure(Base):
    """A failed sign-in (wrong password, unknown user), or one being checked: the sign-in
    throttle counts these in a sliding window per account and per client address. In the
    database, so every process of a deployment shares the count; rows older than the window
    are deleted as new ones come."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_login_failures_username_at", "username", "at"),
                      Index("ix_login_failures_address_at", "address", "at"),
                      Index("ix_login_failures_at", "at"))


class AgentStateEvent(Base):
    """Every state an agent went through, with when and why."""

    __tablename__ = "agent_state_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"),
                                          index=True)
    state: Mapped[str] = mapped_column(String(16))
    call_sid: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class QueueEntry(Base):
    """A call waiting in (or served from) a queue. ``entered_at`` is when the caller first
    joined; a caller put back after a failed agent leg keeps it, so they return to the head."""

    __tablename__ = "queue_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    queue: Mapped[str] = mapped_column(String(64))
    twilio_queue_sid: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The SLA deadline of the caller's tier counted from ``entered_at`` (callbacks.sla):
    # live calls and callbacks are served in one order, by priority then this deadline.
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # waiting / offered (an agent is reserved, the caller is being dequeued) / connected /
    # done / abandoned (hung up while waiting) / choosing (in the callback dialog: not
    # routed, place kept) / callback (left with a callback request: ``callback_id``)
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    preferred_agent_id: Mapped[int | None] = mapped_column(Integer)
    customer_id: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    callback_id: Mapped[int | None] = mapped_column(Integer)
    offered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the call last proved it is alive: each wait round (Twilio's waitUrl), the connect,
    # the agent's answer, or Twilio's REST API saying the call is in progress. An entry
    # silent for IVR_QUEUE_SILENT_ROUNDS is checked and closed if its call is over.
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_queue_entries_status_priority_entered", "status", "priority", "entered_at"),
        # Callers who prefer an agent (repeat callers): found when that agent is free.
        Index("ix_queue_entries_preferred_agent_id", "preferred_agent_id"),
    )


# A queue's callers in routing order (``routing.order_key``): a routing pass reads the first
# few of a queue and a wait round counts those ahead through it, whatever the queue's length
# (issue 18; bench/routing_scale.py).
Index("ix_queue_entries_routing", QueueEntry.queue, QueueEntry.status,
      QueueEntry.priority.desc(), func.coalesce(QueueEntry.deadline_at, QueueEntry.entered_at),
      QueueEntry.entered_at, QueueEntry.id)


class AgentCall(Base):
    """One offer of a call to an agent, and what came of it. An agent may read a call's
    context only if the call was offered to them."""

    __tablename__ = "agent_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), index=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"),
                                          index=True)
    queue: Mapped[str] = mapped_column(String(64))
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # answered / completed / no-answer / busy / failed / canceled / expired
    outcome: Mapped[str | None] = mapped_column(String(16))
    wrapped_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    interaction_id: Mapped[int | None] = mapped_column(Integer)


class AgentEvent(Base):
    """What was pushed to an agent's console (screen-pops, call changes, state). Kept, so a
    console that reconnects gets what it missed (SSE ``Last-Event-ID``), and any process
    can serve it: PostgreSQL NOTIFY carries only the id."""

    __tablename__ = "agent_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agent_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    call_sid: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_agent_events_agent_id_id", "agent_id", "id"),)


agents: Table = Agent.__table__  # type: ignore[assignment]
agent_sessions: Table = AgentSession.__table__  # type: ignore[assignment]
agent_state_events: Table = AgentStateEvent.__table__  # type: ignore[assignment]
login_failures: Table = LoginFailure.__table__  # type: ignore[assignment]
queue_entries: Table = QueueEntry.__table__  # type: ignore[assignment]
agent_calls: Table = AgentCall.__table__  # type: ignore[assignment]
agent_events: Table = AgentEvent.__table__  # type: ignore[assignment]
