"""Twilio's requests for the menu: a call starts (``voice``), keys or speech
(``gather``), a transfer leg ended (``dial``), the caller left a queue (``queue``), call
status callbacks (``status``) and the number's Fallback URL (``fallback``)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ivr.calls import twiml
from ivr.calls.service import FINAL_STATUSES, UnknownCallError
from ivr.calls.webhook import TwilioRequest, failed, number, routes, safe_route, xml
from ivr.menu.engine import DialEnded, Event, Gathered, QueueEnded
from ivr.services import web

log = logging.getLogger("ivr.webhooks")


def _step(tw: TwilioRequest) -> int | None:
    return number(tw.query.get("s", ""), 9)


async def _answer(request: Request, tw: TwilioRequest, event: Event | None) -> Response:
    db = web(request).db
    service = web(request).calls
    sid = tw.call_sid
    try:
        if not sid:
            log.warning("webhook without CallSid path=%s", request.url.path)
            return safe_route(request)
        if event is None:
            answer = await db.run(service.start_call, tw.params, tw.fingerprint)
            if answer.caller_outcome is not None:
                web(request).metrics.identified(answer.caller_outcome)
        else:
            at = _step(tw)
            if at is None:
                log.warning("webhook without a valid step call=%s", sid)
                return safe_route(request)
            pool = web(request).step_pool
            if pool is not None:
                answer = await service.continue_call_async(pool, sid, at, event,
                                                           tw.fingerprint)
            else:
                answer = await db.run(service.continue_call, sid, at, event, tw.fingerprint)
        return xml(answer.twiml)
    except UnknownCallError:
        log.warning("webhook for an unknown call; sending to the safe queue call=%s", sid)
    except Exception:
        log.exception("webhook failed; sending the caller to the safe queue call=%s", sid)
    return safe_route(request)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


async def voice(request: Request, tw: TwilioRequest) -> Response:
    """A call starts: the Voice URL of the number."""
    return await _answer(request, tw, None)


async def gather(request: Request, tw: TwilioRequest) -> Response:
    """The caller pressed keys, spoke, or stayed silent at a menu."""
    p = tw.params
    event = Gathered(digits=p.get("Digits") or None, speech=p.get("SpeechResult") or None,
                     confidence=_float(p.get("Confidence")))
    return await _answer(request, tw, event)


async def dial(request: Request, tw: TwilioRequest) -> Response:
    """A transfer leg ended (answered and done, busy, no answer, failed)."""
    return await _answer(request, tw, DialEnded(tw.params.get("DialCallStatus", "failed")))


async def queue(request: Request, tw: TwilioRequest) -> Response:
    """The caller left a queue (bridged to an agent, hung up, queue full, error). A caller
    released for an agent (``leave``/``redirected``) is connected; the rest is the menu's."""
    result = tw.params.get("QueueResult", "error")
    if tw.call_sid and result in ("leave", "redirected"):
        try:
            agents = web(request).agents
            out = await web(request).db.run(agents.queue_left, tw.call_sid, result)
            if out is not None:
                await web(request).after_commit(out)
                return xml(out.twiml or twiml.empty())
        except Exception:
            log.exception("connecting a dequeued caller failed call=%s", tw.call_sid)
            return safe_route(request)
    return await _answer(request, tw, QueueEnded(result))


async def status(request: Request, tw: TwilioRequest) -> Response:
    """Call status callbacks (ringing, in-progress, completed, busy, ...)."""
    db = web(request).db
    service = web(request).calls
    if tw.call_sid:
        try:
            ended = await db.run(service.record_status, tw.params)
            if ended is not None:
                web(request).metrics.call_ended(*ended)
            if tw.params.get("CallStatus") in FINAL_STATUSES:
                agents = web(request).agents
                await web(request).after_commit(await db.run(agents.call_ended, tw.call_sid))
        except Exception:
            log.exception("status callback not recorded call=%s", tw.call_sid)
            failed(request)
            return PlainTextResponse("status not recorded; retry", status_code=503)
    return xml(twiml.empty())


async def fallback(request: Request, tw: TwilioRequest) -> Response:
    """The number's Fallback URL: Twilio could not use the primary URL's answer."""
    log.error("Twilio used the fallback URL call=%s error_code=%s error_url=%s",
              tw.call_sid, tw.params.get("ErrorCode"), tw.params.get("ErrorUrl"))
    return safe_route(request)


ROUTES = routes(voice, gather, dial, queue, status, fallback)
