"""The facts of a range of time, read from the calls' own tables (SQLAlchemy Core, one
statement per kind, the same on SQLite and PostgreSQL): queue entries, inbound calls,
callback requests, identified callers' calls (and their neighbours 7 days either side),
survey scores and follow-ups. ``ivr.reports.rollup.aggregate`` turns them into counters.

Surveys and follow-ups are other features' tables; they are read by name from the
registered metadata, so a deployment without them (or before they land) reads nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, and_, func, literal, or_, select

from callbacks.models import callback_requests
from callbacks.stats import _verdict
from crm_sync.models import interactions
from ivr.agents.models import queue_entries
from ivr.calls.models import Call
from ivr.core.db import Base
from ivr.reports.model import local_day
from ivr.reports.rollup import (
    NO_QUEUE,
    REPEAT_WINDOW,
    CallbackFact,
    CallFact,
    ContactFact,
    FollowUpFact,
    QueueFact,
    Rollup,
    ScoreFact,
    aggregate,
)

calls = Call.__table__


def queue_facts(conn: Connection, start: datetime, end: datetime) -> list[QueueFact]:
    q = queue_entries.c
    rows = conn.execute(select(q.entered_at, q.queue, q.status, q.connected_at, q.agent_id)
                        .where(q.entered_at >= start, q.entered_at < end))
    return [QueueFact(r.entered_at, r.queue, r.status, r.connected_at, r.agent_id)
            for r in rows]


def call_facts(conn: Connection, start: datetime, end: datetime) -> list[CallFact]:
    """Inbound calls; abandoned in the menu: ended, never in a queue, and the menu's last
    answer was asking the caller something (a ``<Gather>``)."""
    c = calls.c
    in_queue = select(queue_entries.c.id).where(queue_entries.c.call_sid == c.call_sid)
    abandoned = and_(c.ended.is_(True), c.last_response.like("%<Gather%"),
                     ~in_queue.exists())
    rows = conn.execute(
        select(c.created_at, abandoned.label("abandoned"))
        .where(c.created_at >= start, c.created_at < end,
               or_(c.direction.is_(None), c.direction.like("inbound%"))))
    return [CallFact(r.created_at, bool(r.abandoned)) for r in rows]


def callback_facts(conn: Connection, start: datetime, end: datetime,
                   now: datetime) -> list[CallbackFact]:
    b = callback_requests.c
    rows = conn.execute(select(b.requested_at, b.queue, b.agent_id, b.status, b.completed_at,
                               b.deadline_at)
                        .where(b.requested_at >= start, b.requested_at < end))
    return [CallbackFact(r.requested_at, r.queue, r.agent_id, _verdict(r, now)) for r in rows]


def _contacts(conn: Connection, *where: Any) -> list[ContactFact]:
    i = interactions.c
    answered = queue_entries.alias("answered")
    rows = conn.execute(
        select(i.started_at, i.customer_id, i.topic, i.resolved,
               func.coalesce(i.queue, answered.c.queue, literal(NO_QUEUE)).label("queue"),
               answered.c.agent_id, i.outcome)
        .select_from(interactions.outerjoin(answered, and_(
            answered.c.call_sid == i.call_sid, answered.c.connected_at.is_not(None))))
        .where(i.channel == "call", i.direction == "in", *where))
    return [ContactFact(r.started_at, r.customer_id, r.topic, r.resolved, r.queue,
                        r.agent_id, r.outcome is not None) for r in rows]


def contact_facts(conn: Connection, start: datetime, end: datetime,
                  ) -> tuple[list[ContactFact], list[ContactFact]]:
    """Identified inbound calls of the range, and the same customers' inbound calls from
    7 days before to 7 days after it (one indexed read by customer)."""
    i = interactions.c
    contacts = _contacts(conn, i.started_at >= start, i.started_at < end)
    who = select(interactions.c.customer_id).where(
        i.started_at >= start, i.started_at < end, i.channel == "call", i.direction == "in")
    neighbours = _contacts(conn, i.customer_id.in_(who),
                           i.started_at >= start - REPEAT_WINDOW,
                           i.started_at < end + REPEAT_WINDOW,
                           or_(i.started_at < start, i.started_at >= end))
    return contacts, neighbours


def _table(name: str) -> Table | None:
    return Base.metadata.tables.get(name)


def score_facts(conn: Connection, start: datetime, end: datetime) -> list[ScoreFact]:
    """Answered surveys (``survey_responses.score``, the headline rating)."""
    t = _table("survey_responses")
    if t is None:
        return []
    s = t.c
    rows = conn.execute(select(s.started_at, s.queue, s.agent_id, s.score)
                        .where(s.started_at >= start, s.started_at < end,
                               s.score.is_not(None)))
    return [ScoreFact(r.started_at, r.queue or NO_QUEUE, r.agent_id, int(r.score))
            for r in rows]


def followup_facts(conn: Connection, start: datetime, end: datetime,
                   now: datetime) -> list[FollowUpFact]:
    """Follow-ups due in the range: on time when done by their due time."""
    t = _table("followups")
    if t is None or not {"due_at", "queue", "agent_id", "done_at"} <= set(t.c.keys()):
        return []
    f = t.c
    rows = conn.execute(select(f.due_at, f.queue, f.agent_id, f.done_at)
                        .where(f.due_at >= start, f.due_at < end))
    return [FollowUpFact(r.due_at, r.queue or NO_QUEUE, r.agent_id,
                         r.done_at is not None and r.done_at <= r.due_at)
            for r in rows if r.done_at is not None or r.due_at <= now]


def rollup_between(conn: Connection, start: datetime, end: datetime, zone: ZoneInfo,
                   now: datetime) -> Rollup:
    """The counters of every day of ``zone`` in [start, end) (midnights of that zone)."""
    contacts, neighbours = contact_facts(conn, start, end)
    days = (local_day(start, zone), local_day(end, zone) - timedelta(days=1))
    return aggregate(zone, days, queue=queue_facts(conn, start, end),
                     calls=call_facts(conn, start, end),
                     callbacks=callback_facts(conn, start, end, now),
                     contacts=contacts, neighbours=neighbours,
                     scores=score_facts(conn, start, end),
                     followups=followup_facts(conn, start, end, now))
