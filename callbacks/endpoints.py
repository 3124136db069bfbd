"""Twilio's requests for callbacks: a key at the wait loop's offer (``callback-offer``),
the steps of the dialog (``callback``), and our outbound call to the customer: answered
(``callback-answer``), its ``<Dial>`` to the agent ended (``callback-dial``) and its status
callbacks (``callback-status``)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ivr.agents.ports import Outcome
from ivr.calls import twiml
from ivr.calls.webhook import TwilioRequest, failed, number, routes, safe_route, xml
from ivr.services import web

log = logging.getLogger("ivr.webhooks")


def _attempt_id(tw: TwilioRequest) -> int | None:
    return number(tw.query.get("c", ""), 12)


async def callback_offer(request: Request, tw: TwilioRequest) -> Response:
    """A key pressed at the wait loop's callback offer (still in Twilio's queue): 1 leaves
    the queue for the callback dialog, with the caller's place kept."""
    lang = tw.query.get("lang", "he-IL")[:16]
    name = tw.query.get("q", "")[:64]
    try:
        agents = web(request).agents
        answer = await web(request).db.run(
            web(request).callbacks.choose, tw.call_sid, name, lang,
            (tw.params.get("Digits") or "")[:8], agents.gateway.holds_callers)
        return xml(answer)
    except Exception:
        log.exception("callback offer failed; the caller keeps waiting call=%s", tw.call_sid)
        failed(request)
        return xml(twiml.hold(lang, None, web(request).settings.hold_music_url))


async def callback(request: Request, tw: TwilioRequest) -> Response:
    """A step of the callback dialog (confirm the number, type another, choose a time)."""
    try:
        answer, reroute = await web(request).db.run(
            web(request).callbacks.dialog, tw.call_sid, tw.query,
            (tw.params.get("Digits") or "")[:32])
        if reroute:
            await web(request).after_commit(Outcome(reroute=True))
        return xml(answer)
    except LookupError:
        log.warning("callback dialog of a call not in a callback dialog; the safe queue "
                    "call=%s", tw.call_sid)
        return safe_route(request)
    except Exception:
        log.exception("callback dialog failed call=%s", tw.call_sid)
        return safe_route(request)


async def callback_answer(request: Request, tw: TwilioRequest) -> Response:
    """The customer answered our callback (``calls.create`` url): the agent is dialled."""
    out = Outcome()
    attempt = _attempt_id(tw)
    if attempt is None:
        log.warning("callback answer without an attempt id call=%s", tw.call_sid)
        return xml(twiml.safe_route(web(request).settings.safe_queue))
    try:
        answer = await web(request).db.run(web(request).callbacks.answered, attempt,
                                             tw.params, out)
        await web(request).after_commit(out)
        return xml(answer)
    except Exception:
        log.exception("callback answer failed call=%s", tw.call_sid)
        failed(request)
        return xml(twiml.safe_route(web(request).settings.safe_queue))


async def callback_dial(request: Request, tw: TwilioRequest) -> Response:
    """The callback's ``<Dial>`` to the agent ended."""
    out = Outcome()
    attempt = _attempt_id(tw)
    if attempt is None:
        log.warning("callback dial result without an attempt id call=%s", tw.call_sid)
        return safe_route(request)
    try:
        answer = await web(request).db.run(web(request).callbacks.dial_ended, attempt,
                                             tw.params, out)
        await web(request).after_commit(out)
        return xml(answer)
    except Exception:
        log.exception("callback dial result failed call=%s", tw.call_sid)
        return safe_route(request)


async def callback_status(request: Request, tw: TwilioRequest) -> Response:
    """Status callbacks of a callback's customer leg (initiated … completed, busy, …)."""
    out = Outcome()
    attempt = _attempt_id(tw)
    if attempt is None:  # no retry could make it right: acknowledged, nothing recorded
        log.warning("callback status without an attempt id call=%s", tw.call_sid)
        return xml(twiml.empty())
    try:
        await web(request).db.run(web(request).callbacks.leg_status, attempt,
                                       tw.params, out)
        await web(request).after_commit(out)
    except Exception:
        log.exception("callback status not recorded call=%s", tw.call_sid)
        failed(request)
        return PlainTextResponse("status not recorded; retry", status_code=503)
    return xml(twiml.empty())


ROUTES = routes(callback_offer, callback, callback_answer, callback_dial, callback_status)
