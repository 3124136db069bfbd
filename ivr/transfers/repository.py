"""Queries of the transfers feature: the call's conference and its transfers, and the few
writes to the agents' rows a transfer makes (an agent reserved without taking the call's
key, the call's key moved from the first agent to the second)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ivr.agents.models import agent_calls, agent_state_events, agents
from ivr.calls.repository import calls
from ivr.transfers.models import call_conferences, transfers

OPEN = ("pending", "ringing", "consulting", "joined")


def conference(conn: Connection, call_sid: str) -> Any:
    return conn.execute(select(call_conferences).where(
        call_conferences.c.call_sid == call_sid)).first()


def put_conference(conn: Connection, call_sid: str, name: str, now: datetime) -> None:
    """The call's conference row (kept as it is when the call is connected again)."""
    if conference(conn, call_sid) is None:
        conn.execute(insert(call_conferences).values(call_sid=call_sid, name=name,
                                                     created_at=now, updated_at=now))


def update_conference(conn: Connection, call_sid: str, now: datetime, **values: Any) -> None:
    conn.execute(update(call_conferences).where(call_conferences.c.call_sid == call_sid)
                 .values(updated_at=now, **values))


def take_redirect(conn: Connection, call_sid: str, now: datetime) -> str | None:
    """The stand-in's pending redirect of the caller, cleared as it is delivered."""
    row = conference(conn, call_sid)
    if row is None or not row.pending_redirect:
        return None
    if not conn.execute(update(call_conferences).where(
            call_conferences.c.id == row.id,
            call_conferences.c.pending_redirect == row.pending_redirect)
            .values(pending_redirect=None, updated_at=now)).rowcount:
        return None
    return str(row.pending_redirect)


def add_transfer(conn: Connection, **values: Any) -> int:
    result = conn.execute(insert(transfers).values(**values))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def get_transfer(conn: Connection, transfer_id: int) -> Any:
    return conn.execute(select(transfers).where(transfers.c.id == transfer_id)).first()


def open_transfer(conn: Connection, call_sid: str) -> Any:
    return conn.execute(select(transfers).where(
        transfers.c.call_sid == call_sid, transfers.c.state.in_(OPEN))
        .order_by(transfers.c.id.desc()).limit(1)).first()


def last_transfer(conn: Connection, call_sid: str) -> Any:
    return conn.execute(select(transfers).where(transfers.c.call_sid == call_sid)
                        .order_by(transfers.c.id.desc()).limit(1)).first()


def call_transfers(conn: Connection, call_sid: str) -> list[Any]:
    return list(conn.execute(select(transfers).where(transfers.c.call_sid == call_sid)
                             .order_by(transfers.c.id)))


def move_transfer(conn: Connection, transfer_id: int, now: datetime, *,
                  only_from: tuple[str, ...] | None = None, **values: Any) -> bool:
    """Change a transfer (only from the states given): False when it was not in them."""
    cond = [transfers.c.id == transfer_id]
    if only_from is not None:
        cond.append(transfers.c.state.in_(list(only_from)))
    return bool(conn.execute(update(transfers).where(*cond)
                             .values(updated_at=now, **values)).rowcount)


def stale_pending(conn: Connection, before: datetime) -> list[Any]:
    return list(conn.execute(select(transfers).where(transfers.c.state == "pending",
                                                     transfers.c.updated_at < before)))


def open_by_agent(conn: Connection, agent_ids: list[int]) -> dict[int, Any]:
    """Each agent's open transfer (as the first agent), for the supervisor's board."""
    if not agent_ids:
        return {}
    rows = conn.execute(select(transfers).where(transfers.c.from_agent_id.in_(agent_ids),
                                                transfers.c.state.in_(OPEN)))
    return {int(r.from_agent_id): r for r in rows}


def held_calls(conn: Connection, call_sids: list[str]) -> set[str]:
    if not call_sids:
        return set()
    return set(conn.execute(select(call_conferences.c.call_sid).where(
        call_conferences.c.call_sid.in_(call_sids),
        call_conferences.c.held_at.is_not(None))).scalars())


# ---------------------------------------------------------------- the agents' rows


def reserve_agent(conn: Connection, agent_id: int, call_sid: str, queue: str,
                  now: datetime) -> int | None:
    """Reserve an available agent for a transfer: the agent is ``reserved`` but does not
    take the call's key yet (the first agent holds it until they leave); an offer row lets
    them read the pop and later wrap the call up. None: not available any more."""
    if not conn.execute(update(agents).where(agents.c.id == agent_id,
                                             agents.c.state == "available")
                        .values(state="reserved", state_since=now, updated_at=now)).rowcount:
        return None
    conn.execute(insert(agent_state_events).values(agent_id=agent_id, state="reserved",
                                                   call_sid=call_sid, reason="transfer",
                                                   at=now))
    result = conn.execute(insert(agent_calls).values(
        call_sid=call_sid, agent_id=agent_id, queue=queue, offered_at=now, connected_at=now))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def set_agent(conn: Connection, agent_id: int, state: str, now: datetime, reason: str,
              call_sid: str | None, *, key: str | None, only_from: tuple[str, ...],
              ) -> bool:
    """Move an agent with the call's key given explicitly (``key``: what
    ``current_call_sid`` becomes)."""
    if not conn.execute(update(agents).where(agents.c.id == agent_id,
                                             agents.c.state.in_(list(only_from)))
                        .values(state=state, state_since=now, updated_at=now,
                                current_call_sid=key)).rowcount:
        return False
    conn.execute(insert(agent_state_events).values(agent_id=agent_id, state=state,
                                                   call_sid=call_sid, reason=reason, at=now))
    return True


def agent_row(conn: Connection, agent_id: int) -> Any:
    return conn.execute(select(agents).where(agents.c.id == agent_id)).first()


def end_offer(conn: Connection, offer_id: int | None, now: datetime, outcome: str) -> None:
    if offer_id is not None:
        conn.execute(update(agent_calls).where(agent_calls.c.id == offer_id,
                                               agent_calls.c.ended_at.is_(None))
                     .values(ended_at=now, outcome=outcome))


def open_offers(conn: Connection, call_sid: str) -> list[Any]:
    return list(conn.execute(select(agent_calls).where(
        agent_calls.c.call_sid == call_sid, agent_calls.c.ended_at.is_(None))
        .order_by(agent_calls.c.id)))


def caller_id(conn: Connection, call_sid: str) -> str:
    """The number a participant's leg is placed from: the centre's number the caller
    dialled (else the caller's own)."""
    row = conn.execute(select(calls.c.to_number, calls.c.from_number).where(
        calls.c.call_sid == call_sid)).first()
    if row is None:
        return ""
    return str(row.to_number or row.from_number or "")


def answered_legs(conn: Connection, call_sid: str) -> list[Any]:
    """The call's answered offers, in order, with the agents' names: its legs."""
    return list(conn.execute(
        select(agents.c.name, agent_calls.c.answered_at, agent_calls.c.ended_at)
        .select_from(agent_calls.join(agents, agents.c.id == agent_calls.c.agent_id))
        .where(agent_calls.c.call_sid == call_sid, agent_calls.c.answered_at.is_not(None))
        .order_by(agent_calls.c.id)))
