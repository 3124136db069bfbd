"""Twilio voice webhooks: parse, verify, call the service, answer TwiML.

Whatever fails inside, the caller hears valid TwiML (an apology and the safe queue),
never an HTTP 500 that would make the phone play Twilio's "application error".
A request with a bad or missing signature gets 403.

These are plain Starlette routes, not FastAPI ones: they take no JSON and need no OpenAPI
schema, and FastAPI's dependency machinery cost more than the whole database step
(measured with cProfile). Every one is wrapped by ``twilio_endpoint``, which verifies the
signature before the handler runs; ``ROUTES`` lists them all.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from ivr.agents.callbacks import CallbackService
from ivr.agents.endpoints import after_commit
from ivr.agents.service import AgentService, Outcome
from ivr.calls import twiml
from ivr.calls.service import FINAL_STATUSES, CallService, UnknownCallError, fingerprint
from ivr.core.db import Database
from ivr.core.logging import call_sid as call_sid_context
from ivr.core.settings import Settings
from ivr.menu.engine import DialEnded, Event, Gathered, QueueEnded
from ivr.signatures import SignatureChecker

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
TWIML = "text/xml"


@dataclass(frozen=True)
class TwilioRequest:
    params: dict[str, str]
    query: dict[str, str]
    fingerprint: str

    @property
    def call_sid(self) -> str:
        return self.params.get("CallSid", "")[:64]


class Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


async def twilio_request(request: Request) -> TwilioRequest:
    """The form of a Twilio request, verified against its signature."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise Refused(413, "request body too large")
    try:
        params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise Refused(400, "form body is not UTF-8") from None
    checker: SignatureChecker = request.app.state.signatures
    scope = request.scope
    query = scope.get("query_string", b"").decode("latin-1")
    host = request.headers.get("host", "")
    url = checker.url(f"{scope['scheme']}://{host}", scope["path"], query)
    if not checker.verify(url, params, request.headers):
        log.warning("refused webhook with a bad or missing signature path=%s", scope["path"])
        raise Refused(403, "invalid Twilio signature")
    qs = dict(parse_qsl(query))
    fp = fingerprint(scope["path"], query, params)
    # Verified as sent; from here on without NULs, which no column (PostgreSQL text) holds
    # and no Twilio value contains.
    if any("\0" in v for v in params.values()) or any("\0" in v for v in qs.values()):
        params = {k: v.replace("\0", "") for k, v in params.items()}
        qs = {k: v.replace("\0", "") for k, v in qs.items()}
    return TwilioRequest(params, qs, fp)


Handler = Callable[[Request, TwilioRequest], Awaitable[Response]]


def twilio_endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: nothing runs before the signature is verified. The request's CallSid
    is in the logging context while the handler runs (every log line of the call carries
    it), and its latency goes to ``ivr_webhook_seconds``."""

    async def endpoint(request: Request) -> Response:
        started = perf_counter()
        try:
            tw = await twilio_request(request)
        except Refused as exc:
            return PlainTextResponse(exc.detail, status_code=exc.status)
        token = call_sid_context.set(tw.call_sid or None)
        try:
            return await handler(request, tw)
        finally:
            call_sid_context.reset(token)
            request.app.state.metrics.observe_webhook(request.scope["path"],
                                                      perf_counter() - started)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def _xml(body: str) -> Response:
    return Response(content=body, media_type=TWIML)


def _failed(request: Request) -> None:
    """Count a webhook that failed inside (``ivr_webhook_failures_total``)."""
    request.app.state.metrics.webhook_failed(request.scope["path"])


def _safe_route(request: Request) -> Response:
    """A failure inside: the caller hears the apology and goes to the safe queue."""
    _failed(request)
    return _xml(twiml.safe_route(request.app.state.settings.safe_queue))


def _number(raw: str, digits: int) -> int | None:
    """A query id we wrote (ASCII digits: "²" is a digit to ``str.isdigit``), else None."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < digits else None


def _step(tw: TwilioRequest) -> int | None:
    return _number(tw.query.get("s", ""), 9)


async def _answer(request: Request, tw: TwilioRequest, event: Event | None) -> Response:
    db: Database = request.app.state.db
    service: CallService = request.app.state.calls
    sid = tw.call_sid
    try:
        if not sid:
            log.warning("webhook without CallSid path=%s", request.url.path)
            return _safe_route(request)
        if event is None:
            answer = await db.run(service.start_call, tw.params, tw.fingerprint)
            if answer.caller_outcome is not None:
                request.app.state.metrics.identified(answer.caller_outcome)
        else:
            at = _step(tw)
            if at is None:
                log.warning("webhook without a valid step call=%s", sid)
                return _safe_route(request)
            pool = request.app.state.step_pool
            if pool is not None:
                answer = await service.continue_call_async(pool, sid, at, event,
                                                           tw.fingerprint)
            else:
                answer = await db.run(service.continue_call, sid, at, event, tw.fingerprint)
        return _xml(answer.twiml)
    except UnknownCallError:
        log.warning("webhook for an unknown call; sending to the safe queue call=%s", sid)
    except Exception:
        log.exception("webhook failed; sending the caller to the safe queue call=%s", sid)
    return _safe_route(request)


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
            agents: AgentService = request.app.state.agents
            out = await request.app.state.db.run(agents.queue_left, tw.call_sid, result)
            if out is not None:
                await after_commit(request.app, out)
                return _xml(out.twiml or twiml.empty())
        except Exception:
            log.exception("connecting a dequeued caller failed call=%s", tw.call_sid)
            return _safe_route(request)
    return await _answer(request, tw, QueueEnded(result))


async def wait(request: Request, tw: TwilioRequest) -> Response:
    """The wait experience of a queue (Twilio's waitUrl, played in a loop). The first round
    puts the caller in the routing queue; once an agent is reserved it lets them go."""
    settings: Settings = request.app.state.settings
    lang = tw.query.get("lang", "he-IL")
    name = tw.query.get("q", "")[:64]
    if tw.call_sid and name:
        try:
            agents: AgentService = request.app.state.agents
            out = await request.app.state.db.run(agents.waiting, tw.call_sid, name,
                                                 tw.params)
            await after_commit(request.app, out)
            if out.twiml is not None:
                return _xml(out.twiml)
        except Exception:
            log.exception("queue bookkeeping failed; the caller keeps holding call=%s",
                          tw.call_sid)
            _failed(request)
    return _xml(twiml.hold(lang, tw.params.get("QueuePosition"), settings.hold_music_url))


def _offer_id(tw: TwilioRequest) -> int | None:
    return _number(tw.query.get("a", ""), 12)


async def connect(request: Request, tw: TwilioRequest) -> Response:
    """Twilio runs this for a caller dequeued by the REST API: dial the reserved agent."""
    agents: AgentService = request.app.state.agents
    try:
        out = await request.app.state.db.run(agents.connect, tw.call_sid, _offer_id(tw))
        await after_commit(request.app, out)
        return _xml(out.twiml or twiml.empty())
    except Exception:
        log.exception("connect failed call=%s", tw.call_sid)
        return _safe_route(request)


async def agent_dial(request: Request, tw: TwilioRequest) -> Response:
    """The ``<Dial>`` to an agent ended: hang up after a conversation, else back to the
    queue (the caller keeps their place; the agent who did not answer goes offline)."""
    agents: AgentService = request.app.state.agents
    offer = _offer_id(tw)
    if offer is None:
        log.warning("agent dial result without an offer id call=%s", tw.call_sid)
        return _safe_route(request)
    try:
        out = await request.app.state.db.run(agents.agent_dial_ended, offer, tw.call_sid,
                                             tw.params.get("DialCallStatus", "failed"))
        await after_commit(request.app, out)
        return _xml(out.twiml or twiml.empty())
    except Exception:
        log.exception("agent dial result failed call=%s", tw.call_sid)
        return _safe_route(request)


async def agent_leg(request: Request, tw: TwilioRequest) -> Response:
    """Status callbacks of the agent's leg (answered, completed)."""
    agents: AgentService = request.app.state.agents
    offer = _offer_id(tw)
    if offer is not None:
        try:
            out = await request.app.state.db.run(agents.agent_leg, offer, tw.params)
            await after_commit(request.app, out)
        except Exception:
            log.exception("agent leg status not recorded offer=%s", offer)
            _failed(request)
            return PlainTextResponse("status not recorded; retry", status_code=503)
    return _xml(twiml.empty())


async def status(request: Request, tw: TwilioRequest) -> Response:
    """Call status callbacks (ringing, in-progress, completed, busy, ...)."""
    db: Database = request.app.state.db
    service: CallService = request.app.state.calls
    if tw.call_sid:
        try:
            ended = await db.run(service.record_status, tw.params)
            if ended is not None:
                request.app.state.metrics.call_ended(*ended)
            if tw.params.get("CallStatus") in FINAL_STATUSES:
                agents: AgentService = request.app.state.agents
                await after_commit(request.app, await db.run(agents.call_ended, tw.call_sid))
        except Exception:
            log.exception("status callback not recorded call=%s", tw.call_sid)
            _failed(request)
            return PlainTextResponse("status not recorded; retry", status_code=503)
    return _xml(twiml.empty())


async def fallback(request: Request, tw: TwilioRequest) -> Response:
    """The number's Fallback URL: Twilio could not use the primary URL's answer."""
    log.error("Twilio used the fallback URL call=%s error_code=%s error_url=%s",
              tw.call_sid, tw.params.get("ErrorCode"), tw.params.get("ErrorUrl"))
    return _safe_route(request)


# ------------------------------------------------------------------ callbacks


def _callbacks(request: Request) -> CallbackService:
    service: CallbackService | None = request.app.state.agents.callbacks
    if service is None:
        raise LookupError("callbacks are not configured (IVR_CALLBACKS_FILE)")
    return service


def _attempt_id(tw: TwilioRequest) -> int | None:
    return _number(tw.query.get("c", ""), 12)


async def callback_offer(request: Request, tw: TwilioRequest) -> Response:
    """A key pressed at the wait loop's callback offer (still in Twilio's queue): 1 leaves
    the queue for the callback dialog, with the caller's place kept."""
    lang = tw.query.get("lang", "he-IL")[:16]
    name = tw.query.get("q", "")[:64]
    try:
        agents: AgentService = request.app.state.agents
        xml = await request.app.state.db.run(
            _callbacks(request).choose, tw.call_sid, name, lang,
            (tw.params.get("Digits") or "")[:8], agents.gateway.holds_callers)
        return _xml(xml)
    except Exception:
        log.exception("callback offer failed; the caller keeps waiting call=%s", tw.call_sid)
        _failed(request)
        return _xml(twiml.hold(lang, None, request.app.state.settings.hold_music_url))


async def callback(request: Request, tw: TwilioRequest) -> Response:
    """A step of the callback dialog (confirm the number, type another, choose a time)."""
    try:
        xml, reroute = await request.app.state.db.run(
            _callbacks(request).dialog, tw.call_sid, tw.query,
            (tw.params.get("Digits") or "")[:32])
        if reroute:
            await after_commit(request.app, Outcome(reroute=True))
        return _xml(xml)
    except LookupError:
        log.warning("callback dialog of a call not in a callback dialog; the safe queue "
                    "call=%s", tw.call_sid)
        return _safe_route(request)
    except Exception:
        log.exception("callback dialog failed call=%s", tw.call_sid)
        return _safe_route(request)


async def callback_answer(request: Request, tw: TwilioRequest) -> Response:
    """The customer answered our callback (``calls.create`` url): the agent is dialled."""
    out = Outcome()
    attempt = _attempt_id(tw)
    if attempt is None:
        log.warning("callback answer without an attempt id call=%s", tw.call_sid)
        return _xml(twiml.safe_route(request.app.state.settings.safe_queue))
    try:
        xml = await request.app.state.db.run(_callbacks(request).answered, attempt,
                                             tw.params, out)
        await after_commit(request.app, out)
        return _xml(xml)
    except Exception:
        log.exception("callback answer failed call=%s", tw.call_sid)
        _failed(request)
        return _xml(twiml.safe_route(request.app.state.settings.safe_queue))


async def callback_dial(request: Request, tw: TwilioRequest) -> Response:
    """The callback's ``<Dial>`` to the agent ended."""
    out = Outcome()
    attempt = _attempt_id(tw)
    if attempt is None:
        log.warning("callback dial result without an attempt id call=%s", tw.call_sid)
        return _safe_route(request)
    try:
        xml = await request.app.state.db.run(_callbacks(request).dial_ended, attempt,
                                             tw.params, out)
        await after_commit(request.app, out)
        return _xml(xml)
    except Exception:
        log.exception("callback dial result failed call=%s", tw.call_sid)
        return _safe_route(request)


async def callback_status(request: Request, tw: TwilioRequest) -> Response:
    """Status callbacks of a callback's customer leg (initiated … completed, busy, …)."""
    out = Outcome()
    attempt = _attempt_id(tw)
    if attempt is None:  # no retry could make it right: acknowledged, nothing recorded
        log.warning("callback status without an attempt id call=%s", tw.call_sid)
        return _xml(twiml.empty())
    try:
        await request.app.state.db.run(_callbacks(request).leg_status, attempt,
                                       tw.params, out)
        await after_commit(request.app, out)
    except Exception:
        log.exception("callback status not recorded call=%s", tw.call_sid)
        _failed(request)
        return PlainTextResponse("status not recorded; retry", status_code=503)
    return _xml(twiml.empty())


ROUTES = [
    Route(f"/twilio/{handler.__name__.replace('_', '-')}", twilio_endpoint(handler),
          methods=["POST"])
    for handler in (voice, gather, dial, queue, wait, status, fallback, connect, agent_dial,
                    agent_leg, callback_offer, callback, callback_answer, callback_dial,
                    callback_status)
]


class TwilioFastPath:
    """ASGI middleware that sends ``/twilio/*`` straight to the Twilio routes, past FastAPI's
    exception and exit-stack layers (the handlers answer TwiML for every failure themselves).
    The routes stay registered on the app too, so route listings are complete."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.router = Router(routes=ROUTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/twilio/"):
            await self.router(scope, receive, send)
        else:
            await self.app(scope, receive, send)
