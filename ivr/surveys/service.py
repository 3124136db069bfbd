"""Post-call survey use cases.

* ``after_agent`` (the queue's ``AfterCall`` port, called by the agent ``<Dial action>``
  when a conversation ended with the caller still on the line): the queue's survey, if it
  has one, as a ``<Redirect>`` to ``/twilio/survey-start`` — no read, no write in that
  webhook's transaction (bench/survey_cost.py). The survey's context (which survey,
  language, the rated conversation) travels in the signed URLs from there on.
* ``start``: the intro and first question, after an agent (the redirect) or as the entry
  of an automated satisfaction call (``/twilio/survey-start?about=…&followup=…``).
* ``answer``: each question's ``<Gather>`` result. The first answer stores the response
  (agent, queue, topic, customer from the rated conversation); every answer is stored as it
  comes, so a caller who hangs up mid-survey leaves what they answered. The first answer at
  or below the survey's threshold marks the response low, calls the injected
  ``OpenFollowUp`` and writes a ``survey`` console event for every supervisor — in the
  answer's transaction.
* ``pop_fields``: the customer's last rating on the screen-pop ("last call rated 2/5").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from ivr.agents import repository as agents_repo
from ivr.agents.ports import Outcome
from ivr.core.clock import Clock
from ivr.surveys import repository as repo
from ivr.surveys import twiml
from ivr.surveys.policy import SCALE, LiveSurveys, Survey, Surveys
from ivr.surveys.ports import NO_FOLLOW_UP, LowScore, OpenFollowUp
from ivr.surveys.scoring import Heard, is_low, next_step, understand

log = logging.getLogger(__name__)

#: The caller's call is over: nobody to survey (Twilio's CallStatus on the Dial action).
CALL_OVER = {"completed", "busy", "failed", "no-answer", "canceled"}
#: Twilio's AnsweredBy of a call no person answered.
NOT_A_PERSON = ("machine", "fax")


def _int(raw: str | None) -> int | None:
    """An id we wrote in a URL (ASCII digits only), else None."""
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 12 else None


class SurveyService:
    def __init__(self, engine: Engine, clock: Clock, live: LiveSurveys, *,
                 open_follow_up: OpenFollowUp = NO_FOLLOW_UP) -> None:
        self.engine = engine
        self.clock = clock
        self.live = live
        #: The follow-ups feature's port (``ivr.surveys.ports``), injected by ivr.services.
        self.open_follow_up = open_follow_up

    # ------------------------------------------------------------ the queue's port

    def after_agent(self, conn: Connection, offer: Any, call_status: str,
                    now: datetime) -> str | None:
        if call_status in CALL_OVER:  # the caller hung up: the survey simply does not run
            return None
        surveys = self.live.current()
        found = surveys.for_queue(offer.queue)
        if found is None:
            return None
        # The survey's own request reads what it needs: this webhook's transaction (the
        # agent's and the queue's rows) stays as short as without a survey.
        return twiml.start_redirect([("k", "agent"), ("s", found[0]), ("a", str(offer.id))])

    def pop_fields(self, conn: Connection, customer_id: int | None,
                   now: datetime) -> dict[str, Any]:
        if customer_id is None:
            return {"last_survey": None}
        last = repo.last_rating(conn, int(customer_id))
        if last is not None:
            last["of"] = SCALE
        return {"last_survey": last}

    # ------------------------------------------------------------ a satisfaction call

    def start(self, call_sid: str, query: Mapping[str, str], params: Mapping[str, str],
              ) -> str:
        """The survey's intro and first question: after an agent (``k=agent``: the agent
        ``<Dial action>`` redirected here) or on a satisfaction call placed with
        ``/twilio/survey-start`` (``about``, ``followup``, ...)."""
        if params.get("AnsweredBy", "").startswith(NOT_A_PERSON):
            return twiml.hangup()
        surveys = self.live.current()
        if query.get("k") == "agent":
            return self._start_after_agent(call_sid, query, surveys)
        about = (query.get("about") or "")[:64] or None
        customer = _int(query.get("customer"))
        queue = (query.get("queue") or "")[:64] or None
        with self.engine.connect() as conn:
            talk = repo.last_talk(conn, about) if about else None
            if queue is None and talk is not None:
                queue = talk.queue
            if customer is None and about:
                customer = repo.customer_of_call(conn, about)
            found = surveys.named(query.get("survey"), queue) if surveys.surveys else None
            wanted = query.get("lang") or (repo.call_language(conn, about) if about else None)
            if not wanted and customer is not None:
                wanted = repo.customer_language(conn, customer)
        if found is None:
            log.warning("satisfaction call with no survey to run (survey=%r) call=%s",
                        query.get("survey"), call_sid)
            return twiml.goodbye(wanted if wanted in twiml.GOODBYE else "he-IL")
        name, survey = found
        language = survey.language_for(wanted)
        context = [("k", "followup"), ("s", name), ("l", language)]
        for key, value in (("about", about), ("f", _str(_int(query.get("followup")))),
                           ("c", _str(customer)), ("qu", queue)):
            if value:
                context.append((key, value))
        return twiml.question(survey, language, 0, context, intro=True, cache=surveys.cache)

    def _start_after_agent(self, call_sid: str, query: Mapping[str, str],
                           surveys: Surveys) -> str:
        name = query.get("s", "")
        survey = surveys.surveys.get(name)
        with self.engine.connect() as conn:
            language = repo.call_language(conn, call_sid)
        if survey is None:  # removed from the file since the agent's call ended
            return twiml.goodbye(language if language in twiml.GOODBYE else "he-IL")
        language = survey.language_for(language)
        context = [("k", "agent"), ("s", name), ("l", language), ("a", query.get("a", ""))]
        return twiml.question(survey, language, 0, context, intro=True, cache=surveys.cache)

    # ------------------------------------------------------------ answers

    def answer(self, call_sid: str, query: Mapping[str, str], digits: str | None,
               speech: str | None) -> Outcome:
        """A question's ``<Gather>`` result: store a score, ask again, ask the next
        question or thank and hang up."""
        surveys = self.live.current()
        name = query.get("s", "")
        survey = surveys.surveys.get(name)
        index, tries = _int(query.get("q")) or 0, _int(query.get("t")) or 0
        if survey is None or index >= len(survey.questions):
            # The survey was removed from the file since the question was asked.
            return Outcome(twiml.goodbye(query.get("l", "he-IL")
                                         if query.get("l") in twiml.GOODBYE else "he-IL"))
        language = survey.language_for(query.get("l"))
        heard = understand(digits, speech, language, speech_on=survey.speech)
        step = next_step(index, tries, heard, len(survey.questions))
        out = Outcome()
        now = self.clock.now()
        if heard.kind == "score" or step.kind == "end":
            with self.engine.begin() as conn:
                self._record(conn, call_sid, query, name, survey, surveys, language, index,
                             heard, step.kind == "end", step.completed, now, out)
        if step.kind == "end":
            out.twiml = twiml.thanks(survey, language)
        else:
            context = [(k, v) for k, v in query.items() if k not in ("q", "t")]
            out.twiml = twiml.question(survey, language, step.index, context,
                                       retry=step.retry, tries=step.tries,
                                       cache=surveys.cache)
        return out

    def _record(self, conn: Connection, call_sid: str, query: Mapping[str, str], name: str,
                survey: Survey, surveys: Surveys, language: str, index: int, heard: Heard,
                end: bool, completed: bool, now: datetime, out: Outcome) -> None:
        response = repo.get_response(conn, call_sid)
        if response is None:
            if heard.kind != "score":
                return  # nothing answered: nothing to keep
            response = repo.create_response(conn, self._new_response(
                conn, call_sid, query, name, language, now))
        changes: dict[str, Any] = {"updated_at": now}
        if response.topic is None and response.offer_id is not None:
            topic = repo.offer_topic(conn, response.offer_id)
            if topic:
                changes["topic"] = topic
        if heard.kind == "score" and heard.score is not None and heard.via is not None:
            question = survey.questions[index]
            stored = repo.add_answer(conn, response.id, question.id, index, heard.score,
                                     heard.via, heard.speech, now)
            if stored and index == 0:
                changes["score"] = heard.score
            threshold = surveys.threshold(survey)
            if stored and not response.low and is_low(heard.score, threshold):
                changes["low"] = True
                self._low(conn, response, question.id, heard.score, threshold,
                          changes.get("topic", response.topic), now, out)
        if end and response.completed_at is None:
            changes.update(status="completed" if completed else "ended", completed_at=now)
        repo.update_response(conn, response.id, **changes)

    def _new_response(self, conn: Connection, call_sid: str, query: Mapping[str, str],
                      name: str, language: str, now: datetime) -> dict[str, Any]:
        kind = "followup" if query.get("k") == "followup" else "agent"
        values: dict[str, Any] = {
            "call_sid": call_sid, "kind": kind, "survey": name, "language": language,
            "status": "asked", "low": False, "started_at": now, "updated_at": now,
            "about_call_sid": call_sid, "agent_id": None, "offer_id": None, "queue": None,
            "topic": None, "customer_id": None, "followup_id": None}
        offer_id = _int(query.get("a"))
        if kind == "agent" and offer_id is not None:
            facts = repo.offer_facts(conn, offer_id)
            if facts is not None and facts.call_sid == call_sid:
                values.update(agent_id=facts.agent_id, offer_id=offer_id, queue=facts.queue,
                              topic=repo.topic_of(conn, facts.interaction_id),
                              customer_id=repo.customer_of_call(conn, call_sid))
            return values
        about = query.get("about") or None
        values.update(about_call_sid=about, queue=query.get("qu") or None,
                      customer_id=_int(query.get("c")), followup_id=_int(query.get("f")))
        if about:
            talk = repo.last_talk(conn, about)
            if talk is not None:
                values.update(agent_id=talk.agent_id, offer_id=talk.id,
                              queue=values["queue"] or talk.queue,
                              topic=repo.topic_of(conn, talk.interaction_id))
            if values["customer_id"] is None:
                values["customer_id"] = repo.customer_of_call(conn, about)
        return values

    def _low(self, conn: Connection, response: Any, question: str, score: int,
             threshold: int, topic: str | None, now: datetime, out: Outcome) -> None:
        """A low answer: the follow-up (the injected port) and the supervisors' alert."""
        low = LowScore(
            response_id=int(response.id), call_sid=response.call_sid,
            about_call_sid=response.about_call_sid, customer_id=response.customer_id,
            agent_id=response.agent_id, queue=response.queue, topic=topic,
            question=question, score=score, threshold=threshold,
            language=response.language, at=now, followup_id=response.followup_id)
        self.open_follow_up(conn, low)
        agent, customer = repo.names(conn, response.agent_id, response.customer_id)
        payload = {"kind": "low", "response_id": low.response_id,
                   "call_sid": low.about_call_sid or low.call_sid, "score": score, "of": SCALE,
                   "question": question, "agent": agent, "agent_id": low.agent_id,
                   "queue": low.queue, "topic": topic, "customer": customer,
                   "customer_id": low.customer_id, "followup": low.followup_id is not None,
                   "at": now.isoformat()}
        for supervisor in agents_repo.supervisor_ids(conn):
            out.published.append((supervisor, agents_repo.add_event(
                conn, supervisor, "survey", payload, now)))
        log.warning("low survey score %d/%d (question %s) call=%s agent=%s queue=%s", score,
                    SCALE, question, low.call_sid, low.agent_id, low.queue)


def _str(value: int | None) -> str | None:
    return str(value) if value is not None else None
