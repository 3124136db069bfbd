"""Twilio's requests of a survey: the entry of a satisfaction call (``survey-start``) and
each question's ``<Gather>`` result (``survey-answer``). The survey after an agent call
starts in the agent ``<Dial action>`` (``ivr.agents.webhooks.agent_dial``)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from ivr.calls.webhook import TwilioRequest, failed, routes, xml
from ivr.services import web
from ivr.surveys import twiml

log = logging.getLogger("ivr.webhooks")


async def survey_start(request: Request, tw: TwilioRequest) -> Response:
    """A satisfaction call answered: the intro and the first question."""
    try:
        return xml(await web(request).db.run(web(request).surveys.start, tw.call_sid,
                                             tw.query, tw.params))
    except Exception:
        log.exception("survey start failed call=%s", tw.call_sid)
        failed(request)
        return xml(twiml.goodbye(tw.query.get("lang") or "he-IL"))


async def survey_answer(request: Request, tw: TwilioRequest) -> Response:
    """A question answered (a key, words, or nothing): the next question or the thanks."""
    try:
        out = await web(request).db.run(web(request).surveys.answer, tw.call_sid, tw.query,
                                        tw.params.get("Digits"), tw.params.get("SpeechResult"))
        await web(request).after_commit(out)
        return xml(out.twiml or twiml.hangup())
    except Exception:
        # The survey is a courtesy: a failure ends it politely (what was stored stays).
        log.exception("survey answer failed call=%s", tw.call_sid)
        failed(request)
        return xml(twiml.goodbye(tw.query.get("l") or "he-IL"))


ROUTES = routes(survey_start, survey_answer)
