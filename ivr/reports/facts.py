"""The counters of one day, read from the calls' own tables: a handful of aggregate
statements per day (SQLAlchemy Core; two small dialect helpers for time arithmetic), each
bounded by the day's first and last instant in UTC — the day cut in the centre's zone is
done here, in Python, so SQL compares UTC timestamps only. ``rollup_between`` runs them for
every day of a range; ``ivr.reports.repository.refresh`` stores what it returns, and the
reports use it directly for days not rolled up (today).

Surveys, follow-ups and promises are other features' tables; their models modules are
imported (which registers them) and the tables are read by name from the metadata, so a
feature whose tables are not there yet reads as nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Table,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
)

from callbacks.followups import models as _followup_models
from callbacks.models import OPEN, callback_requests
from crm_sync.models import interactions
from ivr.agents.models import queue_entries
from ivr.calls.models import Call
from ivr.core.db import Base
from ivr.reports.model import local_midnight
from ivr.reports.rollup import NO_AGENT, NO_QUEUE, REPEAT_WINDOW, Rollup
from ivr.surveys import models as _survey_models

REGISTERED = (_followup_models, _survey_models)  # their tables, on Base.metadata

calls: Table = Call.__table__  # type: ignore[assignment]


def seconds_between(conn: Connection, start: Any, end: Any) -> ColumnElement[Any]:
    """Whole seconds from ``start`` to ``end`` (truncated; never below 0)."""
    if conn.dialect.name == "postgresql":
        raw: ColumnElement[Any] = cast(func.floor(func.extract("epoch", end - start)), Integer)
    else:  # text timestamps: julianday, rounded to the millisecond before truncating
        raw = cast(func.round((func.julianday(end) - func.julianday(start)) * 86400.0, 3),
                   Integer)
    return case((raw < 0, 0), else_=raw)


def shifted(conn: Connection, column: Any, delta: timedelta) -> ColumnElement[Any]:
    """``column`` + ``delta`` (whole days) in SQL, comparable with the column."""
    days = int(delta.total_seconds() // 86400)
    if conn.dialect.name == "postgresql":
        return column + literal_column(f"interval '{days} days'")  # type: ignore[no-any-return]
    # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff': the same text, moved.
    return func.strftime("%Y-%m-%d %H:%M:%f000", column, f"{days:+d} days")


def bucket(seconds: ColumnElement[Any]) -> ColumnElement[Any]:
    """``rollup.wait_bucket`` in SQL."""
    return case((seconds < 60, seconds), (seconds < 300, seconds - seconds % 5),
                (seconds < 1800, seconds - seconds % 30),
                (seconds < 7200, seconds - seconds % 300), else_=7200)


def _table(name: str) -> Table | None:
    return Base.metadata.tables.get(name)


def _n(condition: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def day_counts(conn: Connection, day: date, start: datetime, end: datetime, now: datetime,
               out: Rollup) -> None:
    """Add the counters of ``day`` ([start, end) in UTC) to ``out``."""
    # One pass over the day's queue entries: per queue, agent and wait bucket (-1: not
    # answered), the entries, the abandoned and callback ones, the waits' sum.
    q = queue_entries.c
    answered = q.connected_at.is_not(None)
    agent = case((answered, func.coalesce(q.agent_id, NO_AGENT)), else_=NO_AGENT)
    entries = select(q.queue.label("queue"), agent.label("agent"), q.status.label("status"),
                     case((answered, seconds_between(conn, q.entered_at, q.connected_at)),
                          else_=None).label("w")) \
        .where(q.entered_at >= start, q.entered_at < end).subquery()
    e = entries.c
    b = case((e.w.is_(None), -1), else_=bucket(e.w))
    for r in conn.execute(select(
            e.queue, e.agent, b.label("b"), func.count().label("n"),
            func.coalesce(func.sum(e.w), 0).label("wait_sum"),
            _n(and_(e.w.is_(None), e.status == "abandoned")).label("abandoned_queue"),
            _n(and_(e.w.is_(None), e.status == "callback")).label("callback_left"))
            .group_by(e.queue, e.agent, b)):
        k = (day, r.queue, int(r.agent))
        out.add(k, "offered", int(r.n))
        if int(r.b) >= 0:
            out.add(k, "answered", int(r.n))
            out.add(k, "wait_sum", int(r.wait_sum))
            out.waits[k][int(r.b)] += int(r.n)
        out.add(k, "abandoned_queue", int(r.abandoned_queue))
        out.add(k, "callback_left", int(r.callback_left))

    # Inbound calls; abandoned in the menu: ended, never in a queue, and the menu's last
    # answer was asking the caller something (a <Gather>).
    c = calls.c
    in_queue = select(q.id).where(q.call_sid == c.call_sid).exists()
    row = conn.execute(select(
        func.count().label("inbound"),
        _n(and_(c.ended.is_(True), c.last_response.like("%<Gather%"), ~in_queue))
        .label("abandoned_menu"))
        .where(c.created_at >= start, c.created_at < end,
               or_(c.direction.is_(None), c.direction.like("inbound%")))).one()
    if row.inbound:
        out.add((day, NO_QUEUE, NO_AGENT), "inbound", int(row.inbound))
        out.add((day, NO_QUEUE, NO_AGENT), "abandoned_menu", int(row.abandoned_menu))

    # Callbacks asked that day: callbacks.stats' verdicts (met: completed by the deadline;
    # missed: completed late, failed, or open past the deadline).
    b_ = callback_requests.c
    met = and_(b_.status == "completed", b_.completed_at.is_not(None),
               b_.completed_at <= b_.deadline_at)
    missed = or_(and_(b_.status == "completed", b_.completed_at > b_.deadline_at),
                 b_.status == "failed", and_(b_.status.in_(OPEN), b_.deadline_at <= now))
    cb_agent = func.coalesce(b_.agent_id, NO_AGENT)
    for r in conn.execute(select(b_.queue, cb_agent.label("agent"), _n(met).label("met"),
                                 _n(missed).label("missed"))
                          .where(b_.requested_at >= start, b_.requested_at < end)
                          .group_by(b_.queue, cb_agent)):
        out.add((day, r.queue, int(r.agent)), "cb_met", int(r.met))
        out.add((day, r.queue, int(r.agent)), "cb_missed", int(r.missed))

    _contacts(conn, day, start, end, out)
    _scores(conn, day, start, end, out)
    _followups(conn, day, start, end, now, out)
    _promises(conn, day, start, end, now, out)


def _contacts(conn: Connection, day: date, start: datetime, end: datetime,
              out: Rollup) -> None:
    """Identified inbound calls: repeats (the customer called in the 7 days before) and
    first-contact resolution (resolved, and no call about the same topic in 7 days)."""
    i = interactions.alias("i")
    other = interactions.alias("o")
    inbound_other = and_(other.c.customer_id == i.c.customer_id, other.c.channel == "call",
                         other.c.direction == "in")
    before = exists().where(inbound_other,
                            other.c.started_at >= shifted(conn, i.c.started_at, -REPEAT_WINDOW),
                            other.c.started_at < i.c.started_at)
    topic = func.lower(func.trim(i.c.topic))
    wrapped = and_(i.c.outcome.is_not(None), func.coalesce(topic, "") != "")
    again = exists().where(inbound_other, other.c.started_at > i.c.started_at,
                           other.c.started_at <= shifted(conn, i.c.started_at, REPEAT_WINDOW),
                           func.lower(func.trim(other.c.topic)) == topic)
    a = queue_entries.alias("a")
    queue = func.coalesce(i.c.queue, a.c.queue, literal(NO_QUEUE))
    agent = func.coalesce(a.c.agent_id, NO_AGENT)
    for r in conn.execute(
            select(queue.label("queue"), agent.label("agent"),
                   func.count().label("identified"), _n(before).label("repeats"),
                   _n(wrapped).label("fcr_calls"),
                   _n(and_(wrapped, i.c.resolved.is_(True), ~again)).label("fcr_ok"))
            # The call's answered queue entry; joined within a day either side of the day
            # (an index range, not the whole table: PostgreSQL hashed every entry).
            .select_from(i.outerjoin(a, and_(
                a.c.call_sid == i.c.call_sid, a.c.connected_at.is_not(None),
                a.c.entered_at >= start - timedelta(days=1),
                a.c.entered_at < end + timedelta(days=1))))
            .where(i.c.channel == "call", i.c.direction == "in", i.c.started_at >= start,
                   i.c.started_at < end)
            .group_by(queue, agent)):
        k = (day, r.queue, int(r.agent))
        for name in ("identified", "repeats", "fcr_calls", "fcr_ok"):
            out.add(k, name, int(r._mapping[name]))


def _scores(conn: Connection, day: date, start: datetime, end: datetime,
            out: Rollup) -> None:
    """Answered surveys (``survey_responses.score``, the headline rating)."""
    t = _table("survey_responses")
    if t is None:
        return
    s = t.c
    queue, agent = func.coalesce(s.queue, NO_QUEUE), func.coalesce(s.agent_id, NO_AGENT)
    for r in conn.execute(select(queue.label("queue"), agent.label("agent"),
                                 func.count().label("n"), func.sum(s.score).label("total"))
                          .where(s.started_at >= start, s.started_at < end,
                                 s.score.is_not(None))
                          .group_by(queue, agent)):
        out.add((day, r.queue, int(r.agent)), "csat_n", int(r.n))
        out.add((day, r.queue, int(r.agent)), "csat_sum", int(r.total))


def _followups(conn: Connection, day: date, start: datetime, end: datetime, now: datetime,
               out: Rollup) -> None:
    """Satisfaction follow-ups (``followups``) whose first window ends that day: on time
    when completed by then; counted once decided (completed, failed, skipped, canceled,
    or still open past the window)."""
    t = _table("followups")
    if t is None:
        return
    f = t.c
    queue = func.coalesce(f.queue, NO_QUEUE)
    closed = f.status.in_(("completed", "failed", "skipped", "canceled"))
    on_time = and_(f.status == "completed", f.completed_at.is_not(None),
                   f.completed_at <= f.deadline_at)
    for r in conn.execute(select(queue.label("queue"), func.count().label("due"),
                                 _n(on_time).label("on_time"))
                          .where(f.deadline_at >= start, f.deadline_at < end,
                                 or_(closed, f.deadline_at <= now))
                          .group_by(queue)):
        out.add((day, r.queue, NO_AGENT), "fu_due", int(r.due))
        out.add((day, r.queue, NO_AGENT), "fu_on_time", int(r.on_time))


def _promises(conn: Connection, day: date, start: datetime, end: datetime, now: datetime,
              out: Rollup) -> None:
    """Promises agents made (``promises``) due that day, by their owner (agent, queue):
    kept when kept by the due time; counted once decided (kept, broken, or open past due)."""
    t = _table("promises")
    if t is None:
        return
    p = t.c
    queue = func.coalesce(p.owner_queue, NO_QUEUE)
    agent = func.coalesce(p.owner_agent_id, NO_AGENT)
    kept = and_(p.kept_at.is_not(None), p.kept_at <= p.due_at)
    for r in conn.execute(select(queue.label("queue"), agent.label("agent"),
                                 func.count().label("due"), _n(kept).label("kept"))
                          .where(p.due_at >= start, p.due_at < end,
                                 or_(p.status.in_(("kept", "broken")), p.due_at <= now))
                          .group_by(queue, agent)):
        out.add((day, r.queue, int(r.agent)), "pr_due", int(r.due))
        out.add((day, r.queue, int(r.agent)), "pr_kept", int(r.kept))


def days_of(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def rollup_days(conn: Connection, first: date, last: date, zone: ZoneInfo,
                now: datetime) -> Rollup:
    """The counters of every day ``first``..``last`` of ``zone``."""
    if conn.dialect.name == "postgresql":
        # A day's statements are cheap index ranges whose estimated cost still crosses
        # jit_above_cost: compiling them took longer (120 ms) than running them.
        conn.exec_driver_sql("SET LOCAL jit = off")
    out = Rollup()
    for day in days_of(first, last):
        day_counts(conn, day, local_midnight(day, zone),
                   local_midnight(day + timedelta(days=1), zone), now, out)
    return out
