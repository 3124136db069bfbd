"""A queue entry proves it is alive (issue 15, item 1). A caller whose final status callback
was lost (a restart, a network cut) kept the earliest join time and was offered to the free
agent every 30 s for ever, while the live callers behind were never served. Now a silent
entry is closed by the sweep — Twilio is asked first when there is an account — and so is a
call whose offers expired too often; an agent nothing backs any more is freed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from starlette.testclient import TestClient

from ivr.agents.dispatch import RoutingLoop
from ivr.agents.models import agent_calls, queue_entries
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from tests.agent_fixtures import DANA, YOSSI, available, login
from tests.agent_flow import TwilioDriver
from tests.conftest import TOKEN
from tests.test_agents import entry_of, state_of
from tests.twilio_standin import TwilioStandIn, rest_gateway

ROUND = 5 + 15  # the hold loop's pause (IVR_HOLD_POLL_SECONDS) and what a round may speak
SILENCE = 6 * ROUND  # IVR_QUEUE_SILENT_ROUNDS rounds


def sweep(client: TestClient) -> None:
    """One routing sweep of the server, as its loop runs it every second."""
    routing: RoutingLoop = client.app.state.web.routing  # type: ignore[attr-defined]
    assert client.portal is not None
    client.portal.call(routing.sweep)


#: Settings a test changes (``@pytest.mark.parametrize("overrides", [{...}])``).
NONE: dict[str, Any] = {}


@pytest.fixture
def overrides() -> dict[str, Any]:
    return NONE


@pytest.fixture
def hold_client(settings: Settings, clock: FrozenClock,
                overrides: dict[str, Any]) -> Iterator[TestClient]:
    """No account SID (the wait loop releases callers), no background sweep."""
    quiet = settings.model_copy(update={"route_every_seconds": 0, **overrides})
    with TestClient(create_app(quiet, clock)) as c:
        yield c


@pytest.fixture
def standin() -> TwilioStandIn:
    return TwilioStandIn()


@pytest.fixture
def rest_client(settings: Settings, clock: FrozenClock, standin: TwilioStandIn,
                overrides: dict[str, Any]) -> Iterator[TestClient]:
    """An account SID: routed callers are dequeued, and Twilio asked, through the REST API
    (the stand-in)."""
    configured = settings.model_copy(update={"route_every_seconds": 0,
                                             "public_url": "http://testserver", **overrides})
    with TestClient(create_app(configured, clock, rest_gateway(standin))) as c:
        yield c


def twilio_knows(standin: TwilioStandIn, sid: str, status: str) -> None:
    """The stand-in's Calls resource answers for an inbound call with this status."""
    if sid not in standin.call_status:
        standin.created.append({"sid": sid, "To": "+97235550100", "From": YOSSI})
    standin.call_status[sid] = status


# The silence alone, not the expiries.
@pytest.mark.parametrize("overrides", [{"queue_max_expired_offers": 99}])
def test_a_caller_lost_while_the_server_was_down_is_closed_and_the_next_is_served(
        hold_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    twilio = TwilioDriver(hold_client, "http://testserver", TOKEN)
    ghost = twilio.start(YOSSI, ["0"])  # operator; hangs up, its status callback is lost
    clock.advance(seconds=10)
    live = twilio.start(YOSSI, ["0"])
    available(hold_client, login(hold_client, "dana.agent"))
    noa = people["dana.agent"]
    assert state_of(engine, noa) == ("reserved", ghost)  # the head of the queue

    served_at = None
    for second in range(ROUND, 3 * SILENCE, 5):  # the live caller's wait loop; a sweep
        clock.advance(seconds=5)
        twilio.wait(live, 5)
        sweep(hold_client)
        if second < SILENCE - 10:  # a live caller is never closed early
            assert entry_of(engine, ghost).status in ("waiting", "offered"), second
        if state_of(engine, noa) == ("reserved", live):
            served_at = second
            break
    ghost_entry = entry_of(engine, ghost)
    assert ghost_entry.status == "abandoned", (ghost_entry.status, state_of(engine, noa))
    assert served_at is not None and served_at <= SILENCE + ROUND
    assert entry_of(engine, live).status == "offered"
    twilio.connect(live)  # and the live caller reaches the agent
    assert state_of(engine, noa) == ("reserved", live)


@pytest.mark.parametrize("overrides", [{"queue_max_expired_offers": 99}])
def test_with_an_account_twilio_is_asked_and_only_a_call_that_is_over_is_closed(
        rest_client: TestClient, standin: TwilioStandIn, people: dict[str, int],
        engine: Engine, clock: FrozenClock) -> None:
    twilio = TwilioDriver(rest_client, "http://testserver", TOKEN)
    ghost = twilio.start(YOSSI, ["0"])
    unknown = twilio.start(YOSSI, ["0"])  # Twilio answers 404 for it
    quiet = twilio.start(YOSSI, ["0"])  # its wait rounds are lost too, but it is live
    twilio_knows(standin, ghost, "in-progress")
    twilio_knows(standin, quiet, "in-progress")
    rest_round = 20 + 15
    clock.advance(seconds=6 * rest_round - 1)
    sweep(rest_client)
    assert standin.fetched == []  # not silent long enough yet
    clock.advance(seconds=2)
    sweep(rest_client)
    assert sorted(standin.fetched) == sorted([ghost, unknown, quiet])
    assert entry_of(engine, unknown).status == "abandoned"  # Twilio does not know it
    assert entry_of(engine, ghost).status == "waiting"  # in progress: kept
    standin.fetched.clear()
    sweep(rest_client)
    assert standin.fetched == []  # heard of now: asked again after another silence only

    standin.call_status[ghost] = "completed"  # the caller hung up; the callback was lost
    clock.advance(seconds=6 * rest_round + 1)
    sweep(rest_client)
    assert entry_of(engine, ghost).status == "abandoned"
    assert entry_of(engine, quiet).status == "waiting"
    available(rest_client, login(rest_client, "dana.agent"))
    assert state_of(engine, people["dana.agent"]) == ("reserved", quiet)
    assert standin.dequeued[-1]["call_sid"] == quiet


@pytest.mark.parametrize("overrides", [{"queue_max_expired_offers": 99}])
def test_twilio_not_answering_keeps_the_entry_and_asks_again_a_round_later(
        rest_client: TestClient, standin: TwilioStandIn, people: dict[str, int],
        engine: Engine, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> None:
    twilio = TwilioDriver(rest_client, "http://testserver", TOKEN)
    sid = twilio.start(YOSSI, ["0"])
    gateway = rest_client.app.state.web.agents.gateway  # type: ignore[attr-defined]

    def down(call_sid: str) -> str:
        raise TimeoutError("Twilio did not answer")

    monkeypatch.setattr(gateway, "call_status", down)
    clock.advance(seconds=6 * 35 + 1)
    sweep(rest_client)
    assert entry_of(engine, sid).status == "waiting"
    asked: list[str] = []

    def over(call_sid: str) -> str:
        asked.append(call_sid)
        return "completed"

    monkeypatch.setattr(gateway, "call_status", over)
    sweep(rest_client)
    assert asked == []  # not on every sweep while Twilio is away
    clock.advance(seconds=36)
    sweep(rest_client)
    assert asked == [sid]
    assert entry_of(engine, sid).status == "abandoned"


@pytest.mark.parametrize("overrides", [{"queue_silent_rounds": 100}])  # the expiries alone
def test_a_call_whose_offer_expired_n_times_is_closed(
        hold_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    twilio = TwilioDriver(hold_client, "http://testserver", TOKEN)
    ghost = twilio.start(YOSSI, ["0"])
    clock.advance(seconds=1)
    live = twilio.start(YOSSI, ["0"])
    available(hold_client, login(hold_client, "dana.agent"))
    noa = people["dana.agent"]
    offered = []
    for _ in range(3):
        assert state_of(engine, noa) == ("reserved", ghost)
        offered.append(ghost)
        clock.advance(seconds=31)  # IVR_OFFER_TIMEOUT_SECONDS: the caller never came
        twilio.wait(live, 31)
        sweep(hold_client)
    assert entry_of(engine, ghost).status == "abandoned"
    with engine.connect() as conn:
        outcomes = list(conn.execute(select(agent_calls.c.outcome).where(
            agent_calls.c.call_sid == ghost).order_by(agent_calls.c.id)).scalars())
    assert outcomes == ["expired", "expired", "expired"]
    assert state_of(engine, noa) == ("reserved", live)


def test_a_conversation_whose_end_never_came_is_closed_when_twilio_says_so(
        rest_client: TestClient, standin: TwilioStandIn, people: dict[str, int],
        engine: Engine, clock: FrozenClock) -> None:
    """The agent answered; the Dial action and the caller's final status callback were
    lost. Twilio is asked after a silence: still talking keeps it, over ends it (the agent
    wraps up, instead of being on a call for ever)."""
    twilio = TwilioDriver(rest_client, "http://testserver", TOKEN)
    noa = login(rest_client, "dana.agent")
    sid = twilio.start(DANA, ["2"])
    available(rest_client, noa)
    twilio.redirected(sid, standin.dequeued[-1]["Url"])
    twilio.agent_answers(sid)
    assert state_of(engine, people["dana.agent"]) == ("on_call", sid)
    twilio_knows(standin, sid, "in-progress")
    clock.advance(seconds=6 * 35 + 1)
    sweep(rest_client)
    assert state_of(engine, people["dana.agent"]) == ("on_call", sid)  # still talking
    standin.call_status[sid] = "completed"
    clock.advance(seconds=6 * 35 + 1)
    sweep(rest_client)
    assert entry_of(engine, sid).status == "done"
    assert state_of(engine, people["dana.agent"]) == ("wrap_up", sid)
    r = rest_client.post(f"/agent/calls/{sid}/wrapup", headers=noa, json={
        "topic": "internet", "outcome": "fixed", "resolved": True})
    assert r.status_code == 201, r.text
    assert state_of(engine, people["dana.agent"]) == ("available", None)


def test_without_an_account_a_ringing_agent_whose_dial_result_was_lost_is_freed(
        hold_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    """Connected to the agent's leg, then nothing (the Dial action and the caller's status
    lost): after the silence the caller is presumed gone, the agent available. A call the
    agent answered is left alone without an account: a conversation has no rhythm whose
    silence would tell (Twilio's REST API does)."""
    twilio = TwilioDriver(hold_client, "http://testserver", TOKEN)
    available(hold_client, login(hold_client, "dana.agent"))
    ringing = twilio.start(DANA, ["2"])
    twilio.connect(ringing)
    available(hold_client, login(hold_client, "avi"))
    talking = twilio.start(DANA, ["2"])
    twilio.connect(talking)
    twilio.agent_answers(talking)
    assert state_of(engine, people["avi"]) == ("on_call", talking)
    clock.advance(seconds=SILENCE + 1)
    sweep(hold_client)
    assert entry_of(engine, ringing).status == "abandoned"
    assert state_of(engine, people["dana.agent"]) == ("available", None)
    assert entry_of(engine, talking).status == "connected"
    assert state_of(engine, people["avi"]) == ("on_call", talking)


@pytest.mark.parametrize("answered", [False, True])
def test_an_agent_held_for_a_call_that_is_over_is_freed_by_the_sweep(
        hold_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock, answered: bool) -> None:
    """Whatever closed the entry without freeing the agent (here: a row changed behind the
    service's back), the sweep puts the agent back: reserved → available, on a call →
    wrap-up, and ends the offer."""
    twilio = TwilioDriver(hold_client, "http://testserver", TOKEN)
    available(hold_client, login(hold_client, "dana.agent"))
    sid = twilio.start(DANA, ["2"])
    if answered:
        twilio.connect(sid)
        twilio.agent_answers(sid)
    noa = people["dana.agent"]
    assert state_of(engine, noa) == ("on_call" if answered else "reserved", sid)
    sweep(hold_client)  # backed by its offer and entry: left alone
    assert state_of(engine, noa)[1] == sid
    with engine.begin() as conn:
        conn.execute(update(queue_entries).where(queue_entries.c.call_sid == sid)
                     .values(status="done" if answered else "abandoned",
                             ended_at=clock.now()))
    clock.advance(seconds=1)
    sweep(hold_client)
    assert state_of(engine, noa) == (("wrap_up", sid) if answered else ("available", None))
    with engine.connect() as conn:
        offer = conn.execute(select(agent_calls).where(agent_calls.c.call_sid == sid)).one()
    assert offer.ended_at is not None
    assert offer.outcome == ("completed" if answered else "canceled")


def test_a_wait_round_is_what_keeps_an_entry_alive(
        hold_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    twilio = TwilioDriver(hold_client, "http://testserver", TOKEN)
    sid = twilio.start(YOSSI, ["0"])
    joined = entry_of(engine, sid).last_seen_at
    assert joined == clock.now()
    for _ in range(3 * SILENCE // ROUND):
        clock.advance(seconds=ROUND)
        twilio.wait(sid, ROUND)
        sweep(hold_client)
    entry = entry_of(engine, sid)
    assert entry.status == "waiting"
    assert entry.last_seen_at == clock.now()
    assert entry.entered_at == joined  # its place is kept
    assert clock.now() - joined > timedelta(seconds=3 * SILENCE - ROUND)
