"""Twilio's webhooks are answered before FastAPI's layers (``ivr.app.IvrApp``), through the
product's own (after-answer work, body limit, proxy headers), and found by their path
(``ivr.calls.webhook.TwilioRoutes``); every other request goes through FastAPI as before."""

from __future__ import annotations

from typing import Any, ClassVar

from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from ivr.app import TWILIO_ROUTES, IvrApp, create_app
from ivr.calls.webhook import TwilioRoutes
from tests.twilio import call_params, new_sid, signed_post


class Seen:
    """A middleware inside FastAPI's stack: the paths that reached it, and the handler's
    scope entries the router sets."""

    paths: ClassVar[list[str]] = []

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            Seen.paths.append(scope["path"])
        await self.app(scope, receive, send)


def test_twilio_webhooks_skip_fastapis_layers_and_the_rest_do_not(settings: Any,
                                                                  clock: Any) -> None:
    app = create_app(settings, clock)
    assert isinstance(app, IvrApp)
    app.add_middleware(Seen)
    Seen.paths = []
    sid = new_sid()
    with TestClient(app) as client:
        first = signed_post(client, "/twilio/voice", call_params(sid, "ringing"))
        second = signed_post(client, "/twilio/gather?s=1", call_params(sid, Digits="2"))
        health = client.get("/healthz")
        forged = client.post("/twilio/gather?s=2", data=call_params(sid, Digits="1"),
                             headers={"X-Twilio-Signature": "forged"})
    assert first.status_code == second.status_code == 200
    assert "<Gather" in first.text and "For billing and payments, press 1." in second.text
    assert health.json() == {"status": "ok"}
    assert forged.status_code == 403
    assert Seen.paths == ["/healthz"]


def test_every_twilio_route_is_found_by_its_path() -> None:
    front = TwilioRoutes(TWILIO_ROUTES)
    assert TWILIO_ROUTES and all(not r.param_convertors for r in TWILIO_ROUTES)
    assert set(front.by_path) == {r.path for r in TWILIO_ROUTES}


def test_the_handler_sees_the_scope_the_router_would_give(settings: Any,
                                                         clock: Any) -> None:
    """``request.app`` is the app (the handlers' state hangs on it), and the route, the
    endpoint and the (empty) path parameters are in the scope, as Starlette's router puts
    them there."""
    seen: dict[str, Any] = {}
    app = create_app(settings, clock)
    route = next(r for r in TWILIO_ROUTES if r.path == "/twilio/voice")
    original = route.app

    async def spy(scope: Scope, receive: Receive, send: Send) -> None:
        seen.update(app=scope.get("app"), route=scope.get("route"),
                    endpoint=scope.get("endpoint"), path_params=scope.get("path_params"))
        await original(scope, receive, send)

    route.app = spy
    try:
        with TestClient(app) as client:
            r = signed_post(client, "/twilio/voice", call_params(new_sid(), "ringing"))
    finally:
        route.app = original
    assert r.status_code == 200
    assert seen == {"app": app, "route": route, "endpoint": route.endpoint, "path_params": {}}
