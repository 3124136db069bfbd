"""What a low survey score asks of the features above the surveys.

``ivr.surveys`` sits below ``callbacks`` (and its follow-ups) in the layer order, so it
never imports them: the composition root (``ivr.services``) injects an ``OpenFollowUp``
callable, which the follow-ups feature provides. The contract, for whoever plugs in:

* it is called once per survey response, with the first answer at or below the survey's
  threshold, inside the transaction that stores that answer (``conn``): write rows with
  it, never commit, never do network work; an exception rolls the answer back too (and
  Twilio's retry of the webhook runs it again);
* ``followup_id`` is set when the survey ran on a satisfaction call the follow-ups feature
  placed (``/twilio/survey/start?followup=ID``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection


@dataclass(frozen=True)
class LowScore:
    response_id: int            # survey_responses.id
    call_sid: str               # the call that answered the survey
    about_call_sid: str | None  # the call rated (the same call after an agent)
    customer_id: int | None
    agent_id: int | None
    queue: str | None
    topic: str | None           # the wrap-up's topic, when known at that moment
    question: str               # the question (its id in surveys.yaml) answered low
    score: int                  # 1..5
    threshold: int              # the survey's low score: score <= threshold
    language: str
    at: datetime
    followup_id: int | None = None


OpenFollowUp = Callable[[Connection, LowScore], None]


def no_follow_up(conn: Connection, low: LowScore) -> None:
    """No follow-ups configured: the supervisors' alert is all a low score does."""


NO_FOLLOW_UP: OpenFollowUp = no_follow_up
