"""A request that asks for a routing pass is answered first, routed after (issue 18 item 1):
Twilio's status callbacks, the queue's wait loop and the consoles' requests do not wait for
a pass (nor for the pass another request started before theirs). Outside a request (the
worker, a sweep) a pass runs at once, as before."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ivr.agents.models import queue_entries
from ivr.agents.ports import Outcome
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from ivr.services import WebState
from tests.agent_fixtures import DANA, available, login
from tests.agent_flow import TwilioDriver
from tests.conftest import TOKEN


class Recorder:
    """Wraps the app: notes when each answer's last byte is sent, in one list with the
    routing passes (``watch``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log: list[tuple[str, str]] = []
        self.state: WebState | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.log.append(("answered", scope["path"]))

        await self.app(scope, receive, sending)

    def watch(self, state: WebState, fail: bool = False) -> None:
        self.state = state
        routing = state.routing
        original = routing.route_now

        async def route_now() -> None:
            self.log.append(("routing", ""))
            if fail:
                raise RuntimeError("the database went away")
            await original()

        routing.route_now = route_now  # type: ignore[method-assign]


@contextlib.contextmanager
def _recorded_app(settings: Settings, clock: FrozenClock, *, fail: bool = False,
                  ) -> Iterator[tuple[TestClient, Recorder]]:
    """The app (no routing sweep) behind a ``Recorder`` that watches its routing passes."""
    app = create_app(settings.model_copy(update={"route_every_seconds": 0}), clock)
    recorder = Recorder(app)
    with TestClient(recorder) as c:
        recorder.watch(app.state.web, fail)
        yield c, recorder


@pytest.fixture
def recorded(settings: Settings, clock: FrozenClock) -> Iterator[tuple[TestClient, Recorder]]:
    with _recorded_app(settings, clock) as r:
        yield r


def _caller_waiting(client: TestClient) -> tuple[dict[str, str], str]:
    """Avi signed in (not available yet) and Dana's call waiting in the support queue."""
    auth = login(client, "avi")
    return auth, TwilioDriver(client, "http://testserver", TOKEN).start(DANA, ["2"])


def _status(engine: Engine, sid: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(queue_entries.c.status)
                            .where(queue_entries.c.call_sid == sid)).scalar_one()


def test_a_console_request_is_answered_before_the_pass_it_asks_for(
        recorded: tuple[TestClient, Recorder], people: dict[str, int],
        engine: Engine) -> None:
    client, recorder = recorded
    auth, sid = _caller_waiting(client)
    assert _status(engine, sid) == "waiting"  # nobody free yet
    recorder.log.clear()
    me = available(client, auth)
    # The answer says what the request did (available); the offer came after it was sent.
    assert me["state"] == "available"
    assert recorder.log == [("answered", "/agent/state"), ("routing", "")]
    assert _status(engine, sid) == "offered"


def test_the_wait_loop_answers_before_the_pass_its_caller_asks_for(
        recorded: tuple[TestClient, Recorder], people: dict[str, int],
        engine: Engine) -> None:
    client, recorder = recorded
    available(client, login(client, "avi"))
    recorder.log.clear()
    twilio = TwilioDriver(client, "http://testserver", TOKEN)
    sid = twilio.start(DANA, ["2"])
    # The caller's first wait round joins the routing queue: answered (hold), then routed.
    assert recorder.log[-2:] == [("answered", "/twilio/wait"), ("routing", "")]
    assert ("routing", "") not in recorder.log[:-2]
    assert _status(engine, sid) == "offered"
    assert "<Dial" in twilio.connect(sid)  # the next round releases the caller


def test_a_failed_pass_after_the_answer_is_logged_and_the_answer_stands(
        settings: Settings, clock: FrozenClock, people: dict[str, int], engine: Engine,
        caplog: pytest.LogCaptureFixture) -> None:
    with _recorded_app(settings, clock, fail=True) as (client, recorder):
        auth, sid = _caller_waiting(client)
        with caplog.at_level(logging.ERROR, logger="ivr.services"):
            me = available(client, auth)
        assert me["state"] == "available"
        assert any("routing after an answer failed" in r.getMessage() for r in caplog.records)
        assert _status(engine, sid) == "waiting"
        # The next pass (here the sweep's) offers the call.
        assert recorder.state is not None and client.portal is not None
        client.portal.call(recorder.state.routing.dispatcher.route)
        assert _status(engine, sid) == "offered"


def test_outside_a_request_the_pass_runs_at_once(
        recorded: tuple[TestClient, Recorder], people: dict[str, int],
        engine: Engine) -> None:
    client, recorder = recorded
    auth, sid = _caller_waiting(client)
    available(client, auth)  # routes after its answer: offered
    assert _status(engine, sid) == "offered"
    recorder.log.clear()
    assert recorder.state is not None and client.portal is not None
    client.portal.call(recorder.state.after_commit, Outcome(reroute=True))
    assert recorder.log == [("routing", "")]
