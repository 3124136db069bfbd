"""Tables of post-call surveys: one response per call that answered a survey, and its
answers (one per question, kept as they come: a caller who hangs up mid-survey leaves the
answers given so far)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ivr.core.db import Base, UTCDateTime


class SurveyResponse(Base):
    """A survey asked on one call: who and what it rates, and the headline rating."""

    __tablename__ = "survey_responses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)  # the call answering
    about_call_sid: Mapped[str | None] = mapped_column(String(64))  # the call rated
    kind: Mapped[str] = mapped_column(String(16))  # agent (after the agent) / followup
    survey: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[int | None] = mapped_column(Integer)
    offer_id: Mapped[int | None] = mapped_column(Integer)  # agent_calls.id of the rated talk
    queue: Mapped[str | None] = mapped_column(String(64))
    topic: Mapped[str | None] = mapped_column(String(128))  # the wrap-up's, once known
    customer_id: Mapped[int | None] = mapped_column(Integer)
    followup_id: Mapped[int | None] = mapped_column(Integer)
    # asked (under way, or the caller hung up) / completed (every question answered) /
    # ended (the caller stopped answering)
    status: Mapped[str] = mapped_column(String(16), default="asked")
    score: Mapped[int | None] = mapped_column(Integer)  # the first question's answer, 1..5
    low: Mapped[bool] = mapped_column(Boolean, default=False)  # an answer <= threshold
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_survey_responses_started", "started_at"),
        Index("ix_survey_responses_customer_started", "customer_id", "started_at"),
        Index("ix_survey_responses_followup", "followup_id"),
    )


class SurveyAnswer(Base):
    """One question's answer: the score, by key or by voice (the words heard kept)."""

    __tablename__ = "survey_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    response_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("survey_responses.id", ondelete="CASCADE"))
    question: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    score: Mapped[int] = mapped_column(Integer)
    via: Mapped[str] = mapped_column(String(8))  # dtmf / speech
    speech: Mapped[str | None] = mapped_column(String(200))
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("response_id", "question"),)


survey_responses: Table = SurveyResponse.__table__  # type: ignore[assignment]
survey_answers: Table = SurveyAnswer.__table__  # type: ignore[assignment]
