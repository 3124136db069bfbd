"""Request body limits, for every route, before anything reads the body.

``BodyLimit`` is the outermost middleware of the app. A request whose ``Content-Length``
is over its path's limit is answered 413 without a byte of the body being read; a body
without one (``Transfer-Encoding: chunked``) is counted as the app pulls it, and the
request is cut off with 413 as soon as it passes the limit: at most the limit plus one
chunk of the server's is ever held. The limits come from the settings
(``IVR_MAX_BODY_BYTES`` for every route, ``IVR_MAX_PUSH_BODY_BYTES`` for the CRM push,
whose batches are large) and Twilio's forms, which are a few kB, get at most 64 kB.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from ivr.core.settings import Settings

# Plain ASGI (ivr.core imports no web framework); the same shapes as starlette.types.
Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Twilio's webhook forms are a few kB; the webhook kit refuses more than this too.
TWILIO_BODY_BYTES = 64 * 1024
#: The CRM push (``POST /crm/sources/{source}/records``): batches of up to 10,000 records.
PUSH_PREFIX = "/crm/sources/"


class BodyTooLarge(Exception):
    """Raised to the app from ``receive`` once the body passed the limit (413 is sent)."""


def limits_for(settings: Settings) -> list[tuple[str, int]]:
    """Per path prefix (first match wins), then ``""`` for every other path."""
    return [("/twilio/", min(TWILIO_BODY_BYTES, settings.max_body_bytes)),
            (PUSH_PREFIX, settings.max_push_body_bytes),
            ("", settings.max_body_bytes)]


def _refusal(limit: int) -> tuple[Message, Message]:
    body = f"request body too large (limit {limit} bytes)\n".encode()
    return ({"type": "http.response.start", "status": 413,
             "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                         (b"content-length", str(len(body)).encode()),
                         (b"connection", b"close")]},
            {"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: 413 for a body over its path's limit, by header or while streaming."""

    def __init__(self, app: ASGIApp, limits: Sequence[tuple[str, int]]) -> None:
        self.app = app
        self.limits = list(limits)

    def limit(self, path: str) -> int:
        for prefix, limit in self.limits:
            if path.startswith(prefix):
                return limit
        return self.limits[-1][1] if self.limits else 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope["path"])
        declared = [v for k, v in scope["headers"] if k.lower() == b"content-length"]
        if declared:
            # The server (h11, httptools) has already refused a malformed or repeated one.
            try:
                length = int(declared[0])
            except ValueError:
                length = -1
            if length > limit:
                for message in _refusal(limit):
                    await send(message)
                return
        await self._streamed(scope, receive, send, limit)

    async def _streamed(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        started = refused = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        for answer in _refusal(limit):
                            await send(answer)
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is the answer; whatever the app makes of the cut is not
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not refused:
                raise
