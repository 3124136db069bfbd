"""Queries of post-call surveys (SQLAlchemy Core; the caller holds the transaction)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from crm_sync.models import customers, interactions
from ivr.agents.models import agent_calls, agents, queue_entries
from ivr.calls.repository import calls
from ivr.surveys.models import survey_answers, survey_responses

R = survey_responses


def call_language(conn: Connection, call_sid: str) -> str | None:
    value = conn.execute(select(calls.c.language).where(calls.c.call_sid == call_sid)).scalar()
    return str(value) if value else None


def get_response(conn: Connection, call_sid: str) -> Any:
    return conn.execute(select(R).where(R.c.call_sid == call_sid)).first()


def create_response(conn: Connection, values: dict[str, Any]) -> Any:
    """The response of ``values['call_sid']``: inserted, or the one a racing request (a
    retry of the same webhook) inserted first."""
    try:
        with conn.begin_nested():
            conn.execute(insert(R).values(**values))
    except IntegrityError:
        pass
    return get_response(conn, values["call_sid"])


def update_response(conn: Connection, response_id: int, **values: Any) -> None:
    conn.execute(update(R).where(R.c.id == response_id).values(**values))


def add_answer(conn: Connection, response_id: int, question: str, position: int, score: int,
               via: str, speech: str | None, now: datetime) -> bool:
    """Store an answer once; False when the question was answered already (a retry)."""
    try:
        with conn.begin_nested():
            conn.execute(insert(survey_answers).values(
                response_id=response_id, question=question, position=position, score=score,
                via=via, speech=speech, answered_at=now))
    except IntegrityError:
        return False
    return True


def answers(conn: Connection, response_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(select(survey_answers).where(
        survey_answers.c.response_id == response_id).order_by(survey_answers.c.position))
    return [dict(r._mapping) for r in rows]


def offer_facts(conn: Connection, offer_id: int) -> Any:
    """The rated conversation: its call, agent, queue and the wrap-up's interaction."""
    return conn.execute(select(agent_calls.c.call_sid, agent_calls.c.agent_id,
                               agent_calls.c.queue, agent_calls.c.interaction_id)
                        .where(agent_calls.c.id == offer_id)).first()


def last_talk(conn: Connection, call_sid: str) -> Any:
    """The last answered offer of a call (a satisfaction call's ``about``)."""
    return conn.execute(select(agent_calls.c.id, agent_calls.c.agent_id, agent_calls.c.queue,
                               agent_calls.c.interaction_id)
                        .where(agent_calls.c.call_sid == call_sid,
                               agent_calls.c.answered_at.is_not(None))
                        .order_by(agent_calls.c.id.desc()).limit(1)).first()


def customer_of_call(conn: Connection, call_sid: str) -> int | None:
    """The identified customer of a call: its queue entry's, else the call's attributes."""
    value = conn.execute(select(queue_entries.c.customer_id)
                         .where(queue_entries.c.call_sid == call_sid)).scalar()
    if value is not None:
        return int(value)
    attrs = conn.execute(select(calls.c.attributes).where(calls.c.call_sid == call_sid)
                         ).scalar()
    if isinstance(attrs, dict) and attrs.get("identified") and attrs.get("customer_id"):
        return int(attrs["customer_id"])
    return None


def customer_language(conn: Connection, customer_id: int) -> str | None:
    value = conn.execute(select(customers.c.preferred_language)
                         .where(customers.c.id == customer_id)).scalar()
    return str(value) if value else None


def topic_of(conn: Connection, interaction_id: int | None) -> str | None:
    if interaction_id is None:
        return None
    value = conn.execute(select(interactions.c.topic)
                         .where(interactions.c.id == interaction_id)).scalar()
    return str(value) if value else None


def offer_topic(conn: Connection, offer_id: int | None) -> str | None:
    """The wrap-up's topic of a conversation, once the agent has written it."""
    if offer_id is None:
        return None
    return conn.execute(select(interactions.c.topic).select_from(
        agent_calls.join(interactions, interactions.c.id == agent_calls.c.interaction_id))
        .where(agent_calls.c.id == offer_id)).scalar()


def names(conn: Connection, agent_id: int | None, customer_id: int | None,
          ) -> tuple[str | None, str | None]:
    """The agent's and the customer's names, for people."""
    agent = conn.execute(select(agents.c.name).where(agents.c.id == agent_id)).scalar() \
        if agent_id is not None else None
    customer = conn.execute(select(customers.c.name).where(customers.c.id == customer_id)
                            ).scalar() if customer_id is not None else None
    return agent, customer


def last_rating(conn: Connection, customer_id: int) -> dict[str, Any] | None:
    """The customer's latest rated call: score, when, agent, queue, low."""
    row = conn.execute(
        select(R.c.score, R.c.started_at, R.c.queue, R.c.low, R.c.call_sid, R.c.about_call_sid,
               agents.c.name.label("agent"))
        .select_from(R.outerjoin(agents, agents.c.id == R.c.agent_id))
        .where(R.c.customer_id == customer_id, R.c.score.is_not(None))
        .order_by(R.c.started_at.desc(), R.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    return {"score": int(row.score), "at": row.started_at.isoformat(), "queue": row.queue,
            "agent": row.agent, "low": bool(row.low),
            "call_sid": row.about_call_sid or row.call_sid}


def response_for_followup(conn: Connection, followup_id: int) -> dict[str, Any] | None:
    """A satisfaction call's survey (the follow-ups feature's id), with its answers."""
    row = conn.execute(select(R).where(R.c.followup_id == followup_id)
                       .order_by(R.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    out = dict(row._mapping)
    out["answers"] = answers(conn, int(row.id))
    return out


def csat_rows(conn: Connection, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Rated responses started in [since, until): who, where, about what, the score. The
    topic is the response's, else the rated conversation's wrap-up (written later)."""
    later = interactions.alias("later")
    rows = conn.execute(
        select(R.c.id, R.c.started_at, R.c.agent_id, R.c.queue, R.c.customer_id, R.c.score,
               R.c.low, R.c.kind, R.c.topic, later.c.topic.label("wrapped_topic"))
        .select_from(R.outerjoin(agent_calls, agent_calls.c.id == R.c.offer_id)
                     .outerjoin(later, later.c.id == agent_calls.c.interaction_id))
        .where(R.c.started_at >= since, R.c.started_at < until, R.c.score.is_not(None))
        .order_by(R.c.started_at, R.c.id))
    return [{"id": r.id, "started_at": r.started_at, "agent_id": r.agent_id,
             "queue": r.queue, "customer_id": r.customer_id, "score": r.score,
             "low": bool(r.low), "kind": r.kind, "topic": r.topic or r.wrapped_topic}
            for r in rows]
