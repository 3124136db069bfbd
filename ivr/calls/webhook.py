"""The Twilio webhook edge every feature's routes share: read the form, verify the signature
(nothing runs before it), keep the CallSid in the log context, time the request, and answer
TwiML. Whatever fails inside a handler, the caller hears valid TwiML (``safe_route``: an
apology and the safe queue), never an HTTP 500 that would make the phone play Twilio's
"application error". A request with a bad or missing signature gets 403.

These are plain Starlette routes, not FastAPI ones: they take no JSON and need no OpenAPI
schema, and FastAPI's dependency machinery cost more than the whole database step
(measured with cProfile). ``ivr.app.IvrApp`` sends ``/twilio/*`` to them
(``TwilioRoutes``) before FastAPI's layers. The routes themselves live with their features:
``ivr.calls.endpoints`` (the menu), ``ivr.agents.webhooks`` (the queue and the agent leg),
``callbacks.endpoints``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from urllib.parse import unquote_plus

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from ivr.calls import twiml
from ivr.calls.service import fingerprint
from ivr.core.logging import call_sid as call_sid_context
from ivr.core.signatures import SignatureChecker
from ivr.services import web

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


def form_fields(text: str, *, keep_blank_values: bool = False) -> dict[str, str]:
    """``dict(urllib.parse.parse_qsl(text, keep_blank_values=...))``, the same answer for
    every text (tests/test_webhook_form.py checks it against ``parse_qsl``), at half its
    cost: a name or value with nothing escaped (most of Twilio's: SIDs, statuses, digits)
    is taken as it is, and only one with ``%`` or ``+`` goes through ``unquote_plus``,
    which is what ``parse_qsl`` does to each. On the menu step, ``parse_qsl`` was 14% of
    the time the server held the GIL (bench/results.md)."""
    fields: dict[str, str] = {}
    for pair in text.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if not value and not keep_blank_values:  # "a=" and "a" alike
            continue
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        fields[name] = value
    return fields


def _without_nul(fields: dict[str, str], text: str) -> dict[str, str]:
    """``fields`` without NUL characters; only a text that holds one (as itself or ``%00``)
    can give one, so the others are returned as they are, unscanned."""
    if "\0" not in text and "%00" not in text:
        return fields
    return {k: v.replace("\0", "") for k, v in fields.items()}


async def twilio_request(request: Request) -> TwilioRequest:
    """The form of a Twilio request, verified against its signature."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise Refused(413, "request body too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "form body is not UTF-8") from None
    params = form_fields(text, keep_blank_values=True)
    checker: SignatureChecker = web(request).signatures
    scope = request.scope
    query = scope.get("query_string", b"").decode("latin-1")
    host = request.headers.get("host", "")
    url = checker.url(f"{scope['scheme']}://{host}", scope["path"], query)
    if not checker.verify(url, params, request.headers):
        log.warning("refused webhook with a bad or missing signature path=%s", scope["path"])
        raise Refused(403, "invalid Twilio signature")
    qs = form_fields(query)
    fp = fingerprint(scope["path"], query, params)
    # Verified as sent; from here on without NULs, which no column (PostgreSQL text) holds
    # and no Twilio value contains.
    return TwilioRequest(_without_nul(params, text), _without_nul(qs, query), fp)


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
            web(request).metrics.observe_webhook(request.scope["path"],
                                                      perf_counter() - started)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def xml(body: str) -> Response:
    return Response(content=body, media_type=TWIML)


def failed(request: Request) -> None:
    """Count a webhook that failed inside (``ivr_webhook_failures_total``)."""
    web(request).metrics.webhook_failed(request.scope["path"])


def safe_route(request: Request) -> Response:
    """A failure inside: the caller hears the apology and goes to the safe queue."""
    failed(request)
    return xml(twiml.safe_route(web(request).settings.safe_queue))


def number(raw: str, digits: int) -> int | None:
    """A query id we wrote (ASCII digits: "²" is a digit to ``str.isdigit``), else None."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < digits else None




def routes(*handlers: Handler) -> list[Route]:
    """``/twilio/<handler-name>`` for each handler, POST only, behind ``twilio_endpoint``."""
    return [Route(f"/twilio/{h.__name__.replace('_', '-')}", twilio_endpoint(h),
                  methods=["POST"]) for h in handlers]


def is_twilio(scope: Scope) -> bool:
    """A request for one of Twilio's webhooks (``/twilio/*``)."""
    return bool(scope["type"] == "http" and scope["path"].startswith("/twilio/"))


class TwilioRoutes:
    """The Twilio routes as an ASGI app of their own, which ``ivr.app.IvrApp`` calls for
    ``/twilio/*`` before FastAPI's layers (its error, telemetry, body-limit, exception and
    exit-stack middlewares: the handlers answer TwiML for every failure themselves, and the
    product's own body limit and proxy handling wrap this app as they wrap FastAPI). A path
    is found by a dict look-up, not by trying each route's pattern in turn. The routes stay
    registered on the app too, so route listings are complete."""

    def __init__(self, routes: list[Route]) -> None:
        self.router = Router(routes=routes)
        # Routes without path parameters, by path: what the router would find, as it would
        # leave it in the scope.
        self.by_path = {route.path: route for route in routes if not route.param_convertors}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.by_path.get(scope["path"]) if not scope.get("root_path") else None
        if route is not None and route.methods and scope["method"] in route.methods:
            scope["router"] = self.router
            scope["route"] = route
            scope["endpoint"] = route.endpoint
            scope["path_params"] = {}
            await route.handle(scope, receive, send)
            return
        try:
            await self.router(scope, receive, send)
        except HTTPException as exc:
            # The router's own answers, 404 (no such route) and 405 (with Allow), which it
            # raises for FastAPI's exception layer, not called here: answered as they are,
            # not left to become a 500 with a traceback. Handlers never raise it.
            await PlainTextResponse(exc.detail, exc.status_code,
                                    headers=exc.headers)(scope, receive, send)
