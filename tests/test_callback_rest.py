"""With Twilio credentials, callbacks are placed through the Calls API (the real twilio
client, against the stand-in of Twilio's REST API), and a lapsed claim asks Twilio for the
call's status before anyone dials again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from callbacks.models import callback_attempts, callback_requests
from ivr.agents.ports import Outcome
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from tests.agent_fixtures import DANA, available, login
from tests.agent_flow import TwilioDriver
from tests.callback_flow import CallbackDriver, Placed
from tests.conftest import TOKEN
from tests.twilio_standin import TwilioStandIn, rest_gateway

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def standin() -> TwilioStandIn:
    return TwilioStandIn()


@pytest.fixture
def rest_client(settings: Settings, clock: FrozenClock,
                standin: TwilioStandIn) -> Iterator[TestClient]:
    configured = settings.model_copy(update={
        "route_every_seconds": 0, "public_url": "http://testserver",
        "callbacks_file": ROOT / "callbacks.yaml", "callback_caller_id": "+97235550100"})
    with TestClient(create_app(configured, clock, rest_gateway(standin))) as c:
        yield c


def _request_callback(client: TestClient) -> CallbackDriver:
    twilio = TwilioDriver(client, "http://testserver", TOKEN)
    cb = CallbackDriver(twilio)
    sid = twilio.start(DANA, ["2"])
    cb.accept_offer(sid)
    cb.press(sid, "1")
    return cb


def _placed(created: dict[str, str]) -> Placed:
    return Placed(created["sid"], created["To"], created["From"], created["Url"],
                  created["StatusCallback"], created.get("MachineDetection") == "Enable")


def test_the_callback_is_placed_through_the_calls_api(
        rest_client: TestClient, standin: TwilioStandIn, people: dict[str, int],
        engine: Engine) -> None:
    cb = _request_callback(rest_client)
    noa = login(rest_client, "dana.agent")
    available(rest_client, noa)
    [created] = standin.created
    assert (created["To"], created["From"]) == (DANA, "+97235550100")
    assert created["Url"] == "http://testserver/twilio/callback-answer?c=1"
    assert created["StatusCallback"] == "http://testserver/twilio/callback-status?c=1"
    assert created["MachineDetection"] == "Enable"
    assert created["Method"] == created["StatusCallbackMethod"] == "POST"
    call = _placed(created)
    cb.answer(call)
    cb.agent_answers(call)
    cb.dial_ends(call)
    cb.status(call, "completed")
    with engine.connect() as conn:
        req = conn.execute(select(callback_requests)).one()
        attempt = conn.execute(select(callback_attempts)).one()
    assert req.status == "completed"
    assert (attempt.call_sid, attempt.outcome) == (created["sid"], "completed")


def test_a_refused_create_is_retried_and_a_lapsed_claim_checks_twilio_first(
        rest_client: TestClient, standin: TwilioStandIn, people: dict[str, int],
        engine: Engine, clock: FrozenClock) -> None:
    _request_callback(rest_client)
    standin.fail_calls = 1
    noa = login(rest_client, "dana.agent")
    available(rest_client, noa)
    # The first create was refused (400): that attempt ended, the next went through.
    with engine.connect() as conn:
        outcomes = [a.outcome for a in conn.execute(
            select(callback_attempts).order_by(callback_attempts.c.id))]
    assert outcomes == ["dial-error", None] and len(standin.created) == 1
    # No status callback arrives; the lease runs out, but Twilio says the call is live:
    # nobody dials again, the claim is extended.
    service = rest_client.app.state.web.agents  # type: ignore[attr-defined]
    standin.call_status[standin.created[0]["sid"]] = "in-progress"
    clock.advance(seconds=61)
    service.callbacks.sweep(Outcome())
    with engine.connect() as conn:
        assert conn.execute(select(callback_requests.c.status)).scalar() == "dialing"
    # Later Twilio reports it over (no answer): the attempt ends and is retried.
    standin.call_status[standin.created[0]["sid"]] = "no-answer"
    clock.advance(seconds=61)
    service.callbacks.sweep(Outcome())
    with engine.connect() as conn:
        req = conn.execute(select(callback_requests)).one()
    assert (req.status, req.attempts, req.last_outcome) == ("pending", 1, "no-answer")
    assert len(standin.created) == 1


def test_a_create_whose_answer_was_lost_is_adopted_not_dialled_again(
        rest_client: TestClient, standin: TwilioStandIn, people: dict[str, int],
        engine: Engine, clock: FrozenClock) -> None:
    from starlette.responses import JSONResponse

    # Twilio creates the call but its answer never arrives (a 503 from a proxy, say):
    # the claim stays, and when the lease runs out Twilio is asked for calls to the number.
    standin.after_create = lambda _call: JSONResponse({"message": "upstream"}, 503)
    _request_callback(rest_client)
    noa = login(rest_client, "dana.agent")
    available(rest_client, noa)
    assert len(standin.created) == 1
    with engine.connect() as conn:
        attempt = conn.execute(select(callback_attempts)).one()
    assert (attempt.call_sid, attempt.outcome) == (None, None)
    standin.after_create = None
    standin.call_status[standin.created[0]["sid"]] = "ringing"
    service = rest_client.app.state.web.agents  # type: ignore[attr-defined]
    clock.advance(seconds=61)
    service.callbacks.sweep(Outcome())
    assert standin.listed and standin.listed[-1]["To"] == DANA
    with engine.connect() as conn:
        req = conn.execute(select(callback_requests)).one()
        attempt = conn.execute(select(callback_attempts)).one()
    assert req.status == "dialing" and attempt.call_sid == standin.created[0]["sid"]
    assert len(standin.created) == 1  # adopted, not dialled again


def test_a_create_answered_after_a_takeover_is_ended(
        rest_client: TestClient, standin: TwilioStandIn, people: dict[str, int],
        engine: Engine, clock: FrozenClock) -> None:
    _request_callback(rest_client)
    service = rest_client.app.state.web.agents  # type: ignore[attr-defined]
    noa = login(rest_client, "dana.agent")
    # The router claims, but the create is slow: meanwhile the lease lapses and another
    # process takes the claim over (Twilio knew of no call then).
    def slow_create(_form: dict[str, str]) -> None:
        clock.advance(seconds=61)
        service.callbacks.sweep(Outcome())

    standin.before_create = slow_create
    available(rest_client, noa)
    standin.before_create = None
    with engine.connect() as conn:
        outcomes = [a.outcome for a in conn.execute(
            select(callback_attempts).order_by(callback_attempts.c.id))]
    assert outcomes[0] == "lost"
    first = standin.created[0]["sid"]
    assert first in standin.ended_by_us  # the late call was ended at once
