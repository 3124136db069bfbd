"""What a request sets off runs once its answer is sent (issue 18 item 1): a request that
asks for a routing pass is answered first, routed after (Twilio's status callbacks, the
queue's wait loop and the consoles' requests do not wait for a pass, nor for the pass
another request started before theirs), and the caller's connect is answered before the
agent is rung into their conference through Twilio's REST API, whose answer is recorded on
the event loop, not in the REST thread. Outside a request (the worker, a sweep) a pass
runs at once, as before."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ivr.agents.dispatch import Dispatcher
from ivr.agents.models import agent_events, queue_entries
from ivr.agents.ports import Outcome
from ivr.agents.service import AgentService
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from ivr.services import WebState
from ivr.transfers.gateway import LocalConferences
from ivr.transfers.models import call_conferences
from ivr.transfers.service import TransferService
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
        #: Called with the path as each answer's last byte is sent.
        self.on_answer: Callable[[str], None] = lambda _path: None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.log.append(("answered", scope["path"]))
                self.on_answer(scope["path"])

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
                  **more: Any) -> Iterator[tuple[TestClient, Recorder]]:
    """The app (no routing sweep; ``more`` settings) behind a ``Recorder`` that watches its
    routing passes."""
    app = create_app(settings.model_copy(update={"route_every_seconds": 0, **more}), clock)
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


class RecordedConferences(LocalConferences):
    """The participants stand-in noting, in the recorder's list, when an agent is rung."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def add_participant(self, conference: str, **kw: Any) -> str:
        self.recorder.log.append(("ring", conference))
        return super().add_participant(conference, **kw)


@contextlib.contextmanager
def _conference_app(settings: Settings, clock: FrozenClock,
                    ) -> Iterator[tuple[TestClient, Recorder, TransferService]]:
    """Calls on conferences; the agent rung into them through the recording stand-in."""
    with _recorded_app(settings, clock, conference_calls=True,
                       public_url="http://testserver") as (client, recorder):
        assert recorder.state is not None
        transfers = recorder.state.services.transfers
        assert isinstance(transfers, TransferService)
        transfers.gateway = RecordedConferences(recorder)
        yield client, recorder, transfers


def _pops(engine: Engine, agent_id: int) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(agent_events.c.payload).where(
            agent_events.c.agent_id == agent_id,
            agent_events.c.kind == "screenpop")).scalars())


def _agent_leg(engine: Engine, sid: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(call_conferences.c.agent_leg_sid)
                            .where(call_conferences.c.call_sid == sid)).scalar_one()


def test_the_connect_is_answered_before_the_agent_is_rung_and_the_leg_noted_on_the_loop(
        settings: Settings, clock: FrozenClock, people: dict[str, int], engine: Engine,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with _conference_app(settings, clock) as (client, recorder, transfers):
        noted = transfers._rung
        where: list[str] = []

        def rung(*args: Any) -> Outcome:
            try:  # on the event loop's thread (Database.run), not in the REST call's
                asyncio.get_running_loop()
                where.append("loop")
            except RuntimeError:
                where.append("thread")
            return noted(*args)

        monkeypatch.setattr(transfers, "_rung", rung)
        available(client, login(client, "dana.agent"))
        twilio = TwilioDriver(client, "http://testserver", TOKEN)
        sid = twilio.start(DANA, ["2"])
        pops_at_answer: list[int] = []
        recorder.on_answer = lambda path: pops_at_answer.extend(
            [len(_pops(engine, people["dana.agent"]))] if path == "/twilio/queue" else [])
        recorder.log.clear()
        dial = twilio.connect(sid)
    assert f">call-{sid}</Conference>" in dial
    # The caller hears the conference before Twilio is asked to ring the agent into it;
    # the screen-pop was written with the connect, before its answer.
    rang = recorder.log.index(("ring", f"call-{sid}"))
    assert recorder.log[rang - 1] == ("answered", "/twilio/queue")  # the <Enqueue action>
    assert where == ["loop"]
    assert _agent_leg(engine, sid) is not None
    # The pop was committed before the answer: a console reads its events by id, and a
    # pop written later could commit after a later event of the agent had been read.
    assert pops_at_answer == [1]
    pops = _pops(engine, people["dana.agent"])
    assert [(p["call_sid"], p["status"]) for p in pops] == [(sid, "ringing")]


def test_a_follow_up_that_fails_after_the_answer_is_logged_and_the_answer_stands(
        settings: Settings, clock: FrozenClock, people: dict[str, int], engine: Engine,
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    with _conference_app(settings, clock) as (client, recorder, transfers):
        def broken(*_args: Any) -> Outcome:
            raise RuntimeError("the database went away")

        monkeypatch.setattr(transfers, "_rung", broken)
        available(client, login(client, "dana.agent"))
        twilio = TwilioDriver(client, "http://testserver", TOKEN)
        sid = twilio.start(DANA, ["2"])
        with caplog.at_level(logging.ERROR, logger="ivr.services"):
            dial = twilio.connect(sid)
    assert f">call-{sid}</Conference>" in dial
    assert ("ring", f"call-{sid}") in recorder.log
    assert any("work after an answer failed" in r.getMessage() for r in caplog.records)
    assert _agent_leg(engine, sid) is None  # the offer's timeout takes it back (the sweep)


def test_the_worker_follows_an_outcome_as_a_request_does() -> None:
    """The worker's sweep follows up what its use cases return in the same order as
    ``AfterAnswer``: an outcome's use cases (on the database), then its requests to Twilio
    (in a thread), each result followed up in turn (here: a removal after a ring)."""
    ran: list[tuple[str, str]] = []

    async def run_db(fn: Callable[[], Outcome]) -> Outcome:
        ran.append(("database", fn.__name__))
        return fn()

    async def run_io(fn: Callable[[], Outcome]) -> Outcome:
        ran.append(("twilio", fn.__name__))
        return fn()

    def pop() -> Outcome:
        return Outcome(published=[(1, 10)])

    def remove() -> Outcome:
        return Outcome(published=[(1, 12)])

    def record() -> Outcome:
        return Outcome(published=[(1, 11)], after=[remove])

    def ring() -> Outcome:
        return Outcome(then=[record])

    published: list[tuple[int, int]] = []
    dispatcher = Dispatcher(cast(AgentService, None), run_db=run_db, run_io=run_io,
                            publish=published.extend)
    asyncio.run(dispatcher._follow(Outcome(then=[pop], after=[ring])))
    assert ran == [("database", "pop"), ("twilio", "ring"), ("database", "record"),
                   ("twilio", "remove")]
    assert published == [(1, 10), (1, 11), (1, 12)]
