"""Queries for agents, sessions, queue entries, offers and console events (SQLAlchemy Core).

Functions take a Connection inside the caller's transaction; they never commit.

Its size (~520 lines): every query of the queue and the agents, each a conditional state
change or an indexed read; split by table when it grows.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from crm_sync.models import customers
from ivr.agents.auth import hash_password, new_token, token_hash
from ivr.agents.models import (
    agent_calls,
    agent_events,
    agent_sessions,
    agent_state_events,
    agents,
    login_failures,
    queue_entries,
)
from ivr.agents.routing import Free, Waiting
from ivr.calls.repository import insert_ignoring_conflicts

NOTIFY_CHANNEL = "ivr_agent_events"
ROLES = ("agent", "admin")
REACH_KINDS = ("client", "number", "sip")
ME_COLUMNS = (agents.c.id, agents.c.username, agents.c.name, agents.c.role, agents.c.queues,
              agents.c.team, agents.c.state, agents.c.state_since, agents.c.current_call_sid,
              agents.c.reach_kind, agents.c.reach_target, agents.c.language)


def _plain(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for k, v in out.items():
        if isinstance(v, datetime):
            out[k] = v.isoformat()
    return out


# ---------------------------------------------------------------- agents and sessions


def create_agent(conn: Connection, *, username: str, name: str, password: str,
                 role: str = "agent", queues: Sequence[str] = (), reach_kind: str = "client",
                 reach_target: str | None = None, team: str | None = None,
                 language: str | None = None, now: datetime) -> int:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if reach_kind not in REACH_KINDS:
        raise ValueError(f"reach kind must be one of {', '.join(REACH_KINDS)}")
    result = conn.execute(insert(agents).values(
        username=username, name=name, role=role, password_hash=hash_password(password),
        queues=list(queues), team=team, reach_kind=reach_kind,
        reach_target=reach_target or username, state="offline", state_since=now,
        current_call_sid=None, active=True, language=language, created_at=now,
        updated_at=now))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def set_password(conn: Connection, username: str, password: str, now: datetime) -> bool:
    return bool(conn.execute(update(agents).where(agents.c.username == username).values(
        password_hash=hash_password(password), updated_at=now)).rowcount)


def set_language(conn: Connection, agent_id: int, language: str | None,
                 now: datetime) -> None:
    """The agent's console language (None: the centre's)."""
    conn.execute(update(agents).where(agents.c.id == agent_id).values(
        language=language, updated_at=now))


def credentials(conn: Connection, username: str) -> Any:
    return conn.execute(select(agents.c.id, agents.c.password_hash, agents.c.active)
                        .where(agents.c.username == username)).first()


def me(conn: Connection, agent_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(*ME_COLUMNS).where(agents.c.id == agent_id)).first()
    return _plain(row) if row is not None else None


def list_agents(conn: Connection) -> list[dict[str, Any]]:
    return [_plain(r) for r in conn.execute(
        select(*ME_COLUMNS).where(agents.c.active.is_(True)).order_by(agents.c.name))]


def create_session(conn: Connection, agent_id: int, now: datetime, ttl: timedelta) -> str:
    token = new_token()
    conn.execute(insert(agent_sessions).values(agent_id=agent_id, token_hash=token_hash(token),
                                               created_at=now, expires_at=now + ttl))
    return token



def session_agent(conn: Connection, token: str, now: datetime) -> dict[str, Any] | None:
    row = conn.execute(
        select(*ME_COLUMNS)
        .select_from(agent_sessions.join(agents, agents.c.id == agent_sessions.c.agent_id))
        .where(agent_sessions.c.token_hash == token_hash(token),
               agent_sessions.c.revoked_at.is_(None), agent_sessions.c.expires_at > now,
               agents.c.active.is_(True))).first()
    return _plain(row) if row is not None else None


def revoke_session(conn: Connection, token: str, now: datetime) -> None:
    conn.execute(update(agent_sessions).where(agent_sessions.c.token_hash == token_hash(token))
                 .values(revoked_at=now))


# ---------------------------------------------------------------- sign-in throttle


def throttled_for(conn: Connection, now: datetime, window: timedelta,
                  limits: Sequence[tuple[str, str, int]]) -> float | None:
    """Seconds until a sign-in may be tried again, or None. ``limits``: (column, value,
    failures allowed in the window) — a sliding window: with ``limit`` failures of that value
    since ``now - window``, the next try is allowed once the oldest of the newest ``limit``
    leaves the window."""
    waits = []
    for column, value, limit in limits:
        col = login_failures.c[column]
        nth = conn.execute(select(login_failures.c.at)
                           .where(col == value, login_failures.c.at > now - window)
                           .order_by(login_failures.c.at.desc()).offset(limit - 1).limit(1)
                           ).scalar()
        if nth is not None:
            waits.append((nth + window - now).total_seconds())
    return max(waits) if waits else None


def add_login_failure(conn: Connection, username: str, address: str, now: datetime,
                      window: timedelta) -> None:
    """Count a sign-in as failed (until it succeeds: ``clear_login_failures``); rows that
    left the window go."""
    conn.execute(delete(login_failures).where(login_failures.c.at <= now - window))
    conn.execute(insert(login_failures).values(username=username, address=address, at=now))


def clear_login_failures(conn: Connection, username: str) -> None:
    """A right password: the account's count starts again (the address's does not)."""
    conn.execute(delete(login_failures).where(login_failures.c.username == username))


# ---------------------------------------------------------------- states


def set_state(conn: Connection, agent_id: int, state: str, now: datetime, *,
              call_sid: str | None = None, reason: str | None = None,
              only_from: Sequence[str] | None = None, only_call: str | None = None) -> bool:
    """Move an agent to ``state`` (optionally only from some states, or only while on a
    given call); records the change. False when the condition did not hold."""
    cond = [agents.c.id == agent_id]
    if only_from is not None:
        cond.append(agents.c.state.in_(list(only_from)))
    if only_call is not None:
        cond.append(agents.c.current_call_sid == only_call)
    keeps_call = state in ("reserved", "on_call", "wrap_up")
    values: dict[str, Any] = {"state": state, "state_since": now, "updated_at": now}
    if not keeps_call:
        values["current_call_sid"] = None
    elif call_sid is not None:
        values["current_call_sid"] = call_sid
    if not conn.execute(update(agents).where(and_(*cond)).values(values)).rowcount:
        return False
    conn.execute(insert(agent_state_events).values(agent_id=agent_id, state=state,
                                                   call_sid=call_sid or only_call,
                                                   reason=reason, at=now))
    return True


# ---------------------------------------------------------------- console events


# A console event's row, and on PostgreSQL the row and its NOTIFY in one statement
# (``INSERT … RETURNING`` in a CTE, ``pg_notify`` of the new id): built once, as building
# them cost more per event than PostgreSQL's execution of them.
_EVENT = insert(agent_events).values(
    agent_id=bindparam("b_agent"), kind=bindparam("b_kind"), call_sid=bindparam("b_call"),
    payload=bindparam("b_payload", type_=agent_events.c.payload.type),
    created_at=bindparam("b_now", type_=agent_events.c.created_at.type),
).returning(agent_events.c.id, agent_events.c.agent_id)
_NEW_EVENT = _EVENT.cte("new_event")
_EVENT_NOTIFIED = select(_NEW_EVENT.c.id, func.pg_notify(
    NOTIFY_CHANNEL, func.concat(_NEW_EVENT.c.agent_id, ":", _NEW_EVENT.c.id)))


def add_event(conn: Connection, agent_id: int, kind: str, payload: dict[str, Any],
              now: datetime, call_sid: str | None = None) -> int:
    """Store an event for an agent's console, in one statement. On PostgreSQL a NOTIFY in
    the same transaction tells every server process (delivered at commit, never for a
    rolled-back change)."""
    stmt = _EVENT_NOTIFIED if conn.dialect.name == "postgresql" else _EVENT
    return int(conn.execute(stmt, {"b_agent": agent_id, "b_kind": kind, "b_call": call_sid,
                                   "b_payload": payload, "b_now": now}).scalar_one())


def events_after(conn: Connection, agent_id: int, after: int, limit: int = 100,
                 ) -> list[tuple[int, str, str]]:
    """(id, kind, JSON data) of an agent's events after ``after``, oldest first."""
    rows = conn.execute(select(agent_events.c.id, agent_events.c.kind, agent_events.c.payload)
                        .where(agent_events.c.agent_id == agent_id, agent_events.c.id > after)
                        .order_by(agent_events.c.id).limit(limit))
    return [(int(r.id), r.kind, json.dumps(r.payload, ensure_ascii=False)) for r in rows]


def last_event_id(conn: Connection, agent_id: int) -> int:
    value = conn.execute(select(func.max(agent_events.c.id))
                         .where(agent_events.c.agent_id == agent_id)).scalar()
    return int(value or 0)


# ---------------------------------------------------------------- queue entries


def get_entry(conn: Connection, call_sid: str) -> Any:
    return conn.execute(select(queue_entries).where(queue_entries.c.call_sid == call_sid)).first()


def join_queue(conn: Connection, *, call_sid: str, queue: str, queue_sid: str | None,
               priority: int, customer_id: int | None, preferred_agent_id: int | None,
               now: datetime, deadline_at: datetime | None = None,
               seen: Any = None) -> bool:
    """The caller is waiting in ``queue`` (first time, or again in another queue). ``seen``:
    the entry as the caller read it (None: there was none). Idempotent by construction, so
    requests racing for one call (Twilio retries a slow first wait) make one entry: the first
    time is ``INSERT … ON CONFLICT DO NOTHING``, a return changes the row only from the state
    that was read. True when this call made the change (the others read the winner's row)."""
    values = {"queue": queue, "twilio_queue_sid": queue_sid, "priority": priority,
              "entered_at": now, "deadline_at": deadline_at, "status": "waiting",
              "agent_id": None, "callback_id": None,
              "preferred_agent_id": preferred_agent_id, "customer_id": customer_id,
              "offered_at": None, "connected_at": None, "ended_at": None, "updated_at": now,
              "last_seen_at": now}
    if seen is None:
        stmt = insert_ignoring_conflicts(conn, queue_entries, ["call_sid"])
        return bool(conn.execute(stmt, {"call_sid": call_sid, "attempts": 0, **values})
                    .rowcount)
    q = queue_entries.c
    return bool(conn.execute(update(queue_entries).where(
        q.call_sid == call_sid, q.status == seen.status, q.queue == seen.queue)
        .values(values)).rowcount)


def note_queue_sid(conn: Connection, call_sid: str, queue_sid: str, now: datetime) -> None:
    conn.execute(update(queue_entries).where(queue_entries.c.call_sid == call_sid,
                                             queue_entries.c.twilio_queue_sid.is_(None))
                 .values(twilio_queue_sid=queue_sid, updated_at=now))


#: Entries whose call is still ours to finish: routed, being connected, or talking.
LIVE_ENTRIES = ("waiting", "offered", "connected")


def heard_from(conn: Connection, call_sid: str, now: datetime, queue_sid: str | None = None,
               ) -> None:
    """The call proved it is alive (a wait round, ...); a wait round also brings the Twilio
    QueueSid, kept the first time (one statement for both)."""
    q = queue_entries.c
    values: dict[str, Any] = {"last_seen_at": now}
    if queue_sid:
        values["twilio_queue_sid"] = func.coalesce(q.twilio_queue_sid, queue_sid)
    conn.execute(update(queue_entries).where(q.call_sid == call_sid).values(values))


def silent_entries(conn: Connection, before: datetime,
                   statuses: Sequence[str] = LIVE_ENTRIES, limit: int = 50) -> list[Any]:
    """Entries in ``statuses`` not heard of since ``before`` (the longest silent first)."""
    q = queue_entries.c
    heard = func.coalesce(q.last_seen_at, q.updated_at)
    return list(conn.execute(
        select(q.call_sid, q.status, q.connected_at, heard.label("heard_at"))
        .where(q.status.in_(list(statuses)), heard < before).order_by(heard).limit(limit)))


def close_entry(conn: Connection, call_sid: str, status: str, now: datetime, *,
                silent_since: datetime | None = None, seen_status: str | None = None,
                ) -> bool:
    """End an entry (``abandoned`` / ``done``). With ``silent_since``: only if it is still
    in ``seen_status`` and still not heard of since then (a wait round that came in since
    the sweep looked keeps it)."""
    q = queue_entries.c
    cond = [q.call_sid == call_sid]
    if silent_since is not None:
        cond += [q.status == seen_status,
                 func.coalesce(q.last_seen_at, q.updated_at) < silent_since]
    return bool(conn.execute(update(queue_entries).where(*cond).values(
        status=status, ended_at=now, updated_at=now)).rowcount)


def keep_alive(conn: Connection, call_sid: str, at: datetime, silent_since: datetime,
               ) -> None:
    """A silent call is alive as of ``at`` (Twilio says it is in progress: asked again after
    another silence), unless it was heard of since the sweep looked."""
    q = queue_entries.c
    conn.execute(update(queue_entries).where(
        q.call_sid == call_sid, func.coalesce(q.last_seen_at, q.updated_at) < silent_since)
        .values(last_seen_at=at))


def expired_offers(conn: Connection, call_sid: str) -> int:
    """How many offers of this call ended because its caller never came to the connect."""
    return int(conn.execute(select(func.count()).select_from(agent_calls).where(
        agent_calls.c.call_sid == call_sid, agent_calls.c.outcome == "expired")).scalar_one())


def reservations(conn: Connection) -> list[Any]:
    """Agents reserved or on a call, with what backs it: their open offer of that call and
    the call's queue entry (status, agent). Live calls and callbacks alike."""
    a, o, e = agents.c, agent_calls.c, queue_entries.c
    return list(conn.execute(
        select(a.id.label("agent_id"), a.state, a.current_call_sid,
               o.id.label("offer_id"), o.answered_at, e.status.label("entry_status"),
               e.agent_id.label("entry_agent_id"))
        .select_from(agents.outerjoin(agent_calls, and_(o.call_sid == a.current_call_sid,
                                                        o.agent_id == a.id,
                                                        o.ended_at.is_(None)))
                     .outerjoin(queue_entries, e.call_sid == a.current_call_sid))
        .where(a.state.in_(("reserved", "on_call")), a.current_call_sid.is_not(None))))


def skips_locked(conn: Connection) -> bool:
    """Whether a routing pass's locked reads skip rows another transaction holds
    (PostgreSQL); SQLite has one writer at a time and skips nothing."""
    return conn.dialect.name == "postgresql"


def _locking(conn: Connection, query: Any, lock: bool = True) -> Any:
    # PostgreSQL: rows another router is deciding on are skipped, not waited for.
    return query.with_for_update(skip_locked=True) if lock and skips_locked(conn) else query


_QE = queue_entries.c
#: ``routing.order_key`` in SQL (the order of ``ix_queue_entries_routing``).
ROUTING_ORDER = (_QE.priority.desc(), func.coalesce(_QE.deadline_at, _QE.entered_at),
                 _QE.entered_at, _QE.id)


def probe_statement(due: ColumnElement[bool]) -> Select[Any]:
    """A routing pass's first question as one statement (built once per service): whether
    any caller waits for an agent (an index probe), whether ``due`` (the callbacks' probe,
    at ``b_now``) holds, and how many agents are free (nothing is locked)."""
    waiting = exists(select(_QE.id).where(_QE.status == "waiting"))
    free = select(func.count()).select_from(agents).where(_is_free()).scalar_subquery()
    return select(waiting, due, free)


def probe(conn: Connection, statement: Select[Any], now: datetime) -> tuple[bool, bool, int]:
    """(anyone waiting, any callback due, agents free): ``probe_statement``'s answer."""
    row = conn.execute(statement, {"b_now": now}).one()
    return bool(row[0]), bool(row[1]), int(row[2])


def waiting_heads(conn: Connection, per_queue: Mapping[str, int],
                  free_agents: int, *, lock: bool = True) -> list[Waiting]:
    """The callers the free agents can take now: the first ``n`` (routing order) of each
    queue that has ``n`` free agents, and the first ``free_agents`` callers who prefer an
    agent who is free. Read through ``ix_queue_entries_routing``: a pass costs what the
    free agents can take, not the queues' length. ``lock=False``: read, lock nothing and
    skip nothing (what a pass would have found, had nobody held a row)."""
    columns = (_QE.id, _QE.call_sid, _QE.queue, _QE.priority, _QE.entered_at,
               _QE.preferred_agent_id, _QE.deadline_at)
    queries = [select(*columns).where(_QE.queue == queue, _QE.status == "waiting")
               .order_by(*ROUTING_ORDER).limit(n)
               for queue, n in sorted(per_queue.items()) if n > 0]
    if free_agents:
        queries.append(select(*columns).where(_QE.status == "waiting",
                                              _QE.preferred_agent_id.in_(_free_ids()))
                       .order_by(*ROUTING_ORDER).limit(free_agents))
    found: dict[int, Waiting] = {}
    for q in queries:
        for r in conn.execute(_locking(conn, q, lock)):
            found[r.id] = Waiting(r.id, r.call_sid, r.queue, r.priority, r.entered_at,
                                  r.preferred_agent_id, r.deadline_at)
    return list(found.values())


def _is_free() -> ColumnElement[bool]:
    return and_(agents.c.state == "available", agents.c.active.is_(True))


def _free_ids() -> Any:
    return select(agents.c.id).where(_is_free()).scalar_subquery()


def free_per_queue(conn: Connection) -> dict[str, int]:
    """How many free agents serve each queue: counted in SQL (a row per queue, however many
    agents; nothing is locked)."""
    if conn.dialect.name == "postgresql":
        each = func.jsonb_array_elements_text(cast(agents.c.queues, JSONB)).table_valued(
            "value")
    else:
        each = func.json_each(agents.c.queues).table_valued("value")
    rows = conn.execute(select(each.c.value, func.count()).select_from(agents)
                        .join(each, true()).where(_is_free()).group_by(each.c.value))
    return {str(queue): int(n) for queue, n in rows}


def free_candidates(conn: Connection, queues: Collection[str], preferred: Collection[int],
                    each: int, *, lock: bool = True) -> list[Free]:
    """The free agents a routing pass can offer ``each`` calls of ``queues`` to: the
    ``each`` longest idle of every queue, and those of ``preferred`` who are free — all
    ``routing.plan`` would choose among every free agent (a call takes its preferred agent,
    or the longest idle one of its queue not taken by the calls before it: one of the first
    ``each``). Locked as they are read (PostgreSQL: rows another router holds are skipped),
    so a pass holds the few agents it may offer to, not every free agent (with 1,000 free
    agents it held them all, and every other agent change waited for the pass)."""
    a = agents.c
    base = select(a.id, a.queues, a.state_since).where(_is_free())
    queries = [base.where(_serves(conn, queue)).order_by(a.state_since, a.id).limit(each)
               for queue in sorted(queues)]
    if preferred:
        queries.append(base.where(a.id.in_(sorted(preferred))))
    found: dict[int, Free] = {}
    for q in queries:
        for r in conn.execute(_locking(conn, q, lock)):
            found[r.id] = Free(r.id, frozenset(r.queues or ()), r.state_since)
    return list(found.values())


def offer(conn: Connection, call: Waiting, agent_id: int, now: datetime) -> int | None:
    """Reserve the agent for the call, both or neither (a savepoint): the agent id of a
    call and the call of an agent change only from the states the router saw."""
    with conn.begin_nested() as sp:
        got_call = conn.execute(
            update(queue_entries).where(queue_entries.c.id == call.entry_id,
                                        queue_entries.c.status == "waiting")
            .values(status="offered", agent_id=agent_id, offered_at=now,
                    attempts=queue_entries.c.attempts + 1, updated_at=now)).rowcount
        if not got_call or not set_state(conn, agent_id, "reserved", now,
                                         call_sid=call.call_sid, reason="offered",
                                         only_from=("available",)):
            sp.rollback()
            return None
        result = conn.execute(insert(agent_calls).values(
            call_sid=call.call_sid, agent_id=agent_id, queue=call.queue, offered_at=now))
        return int(result.inserted_primary_key[0])  # type: ignore[index]


def get_offer(conn: Connection, offer_id: int) -> Any:
    return conn.execute(select(agent_calls).where(agent_calls.c.id == offer_id)).first()


def open_offer(conn: Connection, call_sid: str) -> Any:
    """The call's offer that has not ended yet (at most one, by construction)."""
    return conn.execute(select(agent_calls).where(agent_calls.c.call_sid == call_sid,
                                                  agent_calls.c.ended_at.is_(None))
                        .order_by(agent_calls.c.id.desc()).limit(1)).first()


def update_offer(conn: Connection, offer_id: int, **values: Any) -> None:
    conn.execute(update(agent_calls).where(agent_calls.c.id == offer_id).values(values))


def update_entry(conn: Connection, call_sid: str, **values: Any) -> None:
    conn.execute(update(queue_entries).where(queue_entries.c.call_sid == call_sid)
                 .values(values))


def offered_to(conn: Connection, agent_id: int, call_sid: str) -> bool:
    return conn.execute(select(agent_calls.c.id).where(
        agent_calls.c.agent_id == agent_id, agent_calls.c.call_sid == call_sid).limit(1)
        ).first() is not None


def stale_offers(conn: Connection, before: datetime) -> list[Any]:
    """Offers made before ``before`` whose caller never reached the connect webhook."""
    return list(conn.execute(_locking(conn, select(agent_calls).where(
        agent_calls.c.ended_at.is_(None), agent_calls.c.connected_at.is_(None),
        agent_calls.c.offered_at < before))))


def last_agent_of(conn: Connection, customer_id: int) -> int | None:
    """The agent who last finished a call with this customer (for repeat callers)."""
    value = conn.execute(
        select(agent_calls.c.agent_id)
        .select_from(agent_calls.join(queue_entries,
                                      queue_entries.c.call_sid == agent_calls.c.call_sid))
        .where(queue_entries.c.customer_id == customer_id,
               agent_calls.c.outcome == "completed")
        .order_by(agent_calls.c.ended_at.desc()).limit(1)).scalar()
    return int(value) if value is not None else None


def queue_board(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    """Calls waiting or being connected, per queue (the supervisor's view)."""
    rows = conn.execute(
        select(queue_entries.c.call_sid, queue_entries.c.queue, queue_entries.c.priority,
               queue_entries.c.entered_at, queue_entries.c.status, customers.c.name)
        .select_from(queue_entries.outerjoin(customers,
                                             customers.c.id == queue_entries.c.customer_id))
        .where(queue_entries.c.status.in_(("waiting", "offered")))
        .order_by(queue_entries.c.queue, queue_entries.c.priority.desc(),
                  queue_entries.c.entered_at))
    board: dict[str, dict[str, Any]] = {}
    for r in rows:
        q = board.setdefault(r.queue, {"queue": r.queue, "waiting": 0,
                                       "longest_wait_seconds": 0, "calls": []})
        waited = max(0, int((now - r.entered_at).total_seconds()))
        q["waiting"] += 1
        q["longest_wait_seconds"] = max(q["longest_wait_seconds"], waited)
        q["calls"].append({"call_sid": r.call_sid, "priority": r.priority,
                           "entered_at": r.entered_at.isoformat(), "waited_seconds": waited,
                           "customer_name": r.name, "status": r.status})
    return list(board.values())


def replay_from(conn: Connection, agent_id: int, call_sid: str | None) -> int:
    """Where a console that connects without Last-Event-ID starts: just before the current
    call's screen-pop (so it shows at once), else after the newest event."""
    if call_sid:
        first = conn.execute(select(func.min(agent_events.c.id)).where(
            agent_events.c.agent_id == agent_id, agent_events.c.call_sid == call_sid,
            agent_events.c.kind == "screenpop")).scalar()
        if first is not None:
            return int(first) - 1
    return last_event_id(conn, agent_id)


def staffed(conn: Connection, queue: str) -> int:
    """Agents of ``queue`` signed in (any state but offline): the servers of its wait.
    Counted in SQL (``staffing``): every wait round asks, and it read every signed-in
    agent's queues into Python."""
    return sum(staffing(conn, queue))


def _serves(conn: Connection, queue: str) -> ColumnElement[bool]:
    """The agent serves ``queue`` (its JSON list of queues holds it), tested in SQL."""
    if conn.dialect.name == "postgresql":
        return cast(agents.c.queues, JSONB).contains([queue])
    each = func.json_each(agents.c.queues).table_valued("value")
    return exists().select_from(each).where(each.c.value == queue)


def staffing(conn: Connection, queue: str) -> tuple[int, int]:
    """The agents of ``queue`` signed in: how many are free (available) and how many busy
    (reserved, on a call, wrapping up). One row, however many agents (issue 18 item 2)."""
    a = agents.c
    row = conn.execute(select(func.count().filter(a.state == "available"),
                              func.count().filter(a.state != "available"))
                       .where(a.active.is_(True), a.state != "offline",
                              _serves(conn, queue))).one()
    return int(row[0]), int(row[1])


def handled_for(conn: Connection, queue: str, rank: int, now: datetime) -> timedelta:
    """How long the call of ``queue``'s busy agent at ``rank`` (0-based) has been handled,
    from its answer (zero while still being connected), in the order of the longest
    handled first: the one busy agent ``sla.expected_wait_ranked`` asks about."""
    a, c = agents.c, agent_calls.c
    # An agent's current call may have been offered to them twice: the latest answer.
    answered = func.max(c.answered_at).label("answered_at")
    per_agent = (select(a.id, answered)
                 .select_from(agents.outerjoin(agent_calls, (c.agent_id == a.id)
                                               & (c.call_sid == a.current_call_sid)))
                 .where(a.active.is_(True), a.state.not_in(("offline", "available")),
                        _serves(conn, queue))
                 .group_by(a.id).subquery())
    at = conn.execute(select(per_agent.c.answered_at)
                      .order_by(per_agent.c.answered_at.asc().nulls_last(), per_agent.c.id)
                      .offset(max(rank, 0)).limit(1)).scalar()
    return now - at if at is not None else timedelta(0)


def recent_handle_times(conn: Connection, queue: str, limit: int = 20) -> list[timedelta]:
    """Talk plus wrap-up of the queue's last handled calls, newest first."""
    rows = conn.execute(
        select(agent_calls.c.answered_at, agent_calls.c.ended_at, agent_calls.c.wrapped_up_at)
        .where(agent_calls.c.queue == queue, agent_calls.c.answered_at.is_not(None),
               agent_calls.c.ended_at.is_not(None))
        .order_by(agent_calls.c.ended_at.desc()).limit(limit))
    return [(r.wrapped_up_at or r.ended_at) - r.answered_at for r in rows]


def position(conn: Connection, queue: str, priority: int, deadline: datetime,
             entered_at: datetime, entry_id: int) -> int:
    """1 + the live callers of ``queue`` served before this entry (``routing.order_key``)."""
    q = queue_entries.c
    key = func.coalesce(q.deadline_at, q.entered_at)
    same_time = (q.entered_at < entered_at) | ((q.entered_at == entered_at)
                                               & (q.id < entry_id))
    ahead = conn.execute(select(func.count()).select_from(queue_entries).where(
        q.queue == queue, q.status == "waiting", q.id != entry_id,
        (q.priority > priority)
        | ((q.priority == priority)
           & ((key < deadline) | ((key == deadline) & same_time))))).scalar_one()
    return int(ahead) + 1


def offer_callback_key(conn: Connection, offer_id: int) -> str | None:
    row = conn.execute(select(agent_calls.c.call_sid).where(agent_calls.c.id == offer_id)
                       ).first()
    return row.call_sid if row is not None else None


def offer_agent(conn: Connection, agent_id: int, key: str, queue: str, now: datetime,
                ) -> int | None:
    """Reserve a free agent for a callback (agent key ``key``): the agent moves only from
    available, and gets an offer row like a live call's; None if another router took them."""
    with conn.begin_nested() as sp:
        if not set_state(conn, agent_id, "reserved", now, call_sid=key, reason="callback",
                         only_from=("available",)):
            sp.rollback()
            return None
        # connected_at: the agent's side is set up at once (the customer is dialled next),
        # so the live calls' offer expiry (an offer never connected) leaves it alone.
        result = conn.execute(insert(agent_calls).values(
            call_sid=key, agent_id=agent_id, queue=queue, offered_at=now, connected_at=now))
        return int(result.inserted_primary_key[0])  # type: ignore[index]


def supervisor_ids(conn: Connection) -> list[int]:
    return [r.id for r in conn.execute(select(agents.c.id).where(
        agents.c.role == "admin", agents.c.active.is_(True)))]


def offer_count(conn: Connection, call_sid: str) -> int:
    return int(conn.execute(select(func.count()).select_from(agent_calls).where(
        agent_calls.c.call_sid == call_sid)).scalar_one())
