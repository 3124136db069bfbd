"""With Twilio credentials, follow-up calls go through the Calls API and SMS through the
Messaging API (the real twilio client, against the stand-in of Twilio's REST API); a lapsed
claim asks Twilio for the call's status before anyone dials again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select, update
from starlette.testclient import TestClient

from callbacks.followups.models import followup_attempts, followups
from callbacks.followups.service import FollowUpService
from crm_sync.models import incidents
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from tests.agent_fixtures import DANA
from tests.agent_flow import TwilioDriver
from tests.conftest import TOKEN
from tests.twilio_standin import TwilioStandIn, rest_gateway

ROOT = Path(__file__).resolve().parents[1]
ZONE = ZoneInfo("Asia/Jerusalem")


@pytest.fixture
def standin() -> TwilioStandIn:
    return TwilioStandIn()


@pytest.fixture
def rest_client(settings: Settings, clock: FrozenClock,
                standin: TwilioStandIn) -> Iterator[TestClient]:
    configured = settings.model_copy(update={
        "route_every_seconds": 0, "public_url": "http://testserver",
        "callbacks_file": ROOT / "callbacks.yaml", "followups_file": ROOT / "followups.yaml",
        "callback_caller_id": "+97235550100"})
    with TestClient(create_app(configured, clock, rest_gateway(standin))) as c:
        yield c


def _due(client: TestClient, engine: Engine, clock: FrozenClock) -> FollowUpService:
    service = client.app.state.web.services.followups  # type: ignore[attr-defined]
    assert isinstance(service, FollowUpService)
    with engine.begin() as conn:
        conn.execute(update(incidents).values(status="closed", closed_at=clock.now()))
    service.run_once()
    clock.set(datetime(2026, 11, 24, 10, 0, tzinfo=ZONE))
    return service


def _rows(engine: Engine, table: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c.id)))


def test_the_follow_up_and_its_sms_go_through_twilio_s_apis(
        rest_client: TestClient, standin: TwilioStandIn, people: dict[str, int],
        engine: Engine, clock: FrozenClock) -> None:
    service = _due(rest_client, engine, clock)
    [sms] = standin.messages
    assert (sms["To"], sms["From"]) == (DANA, "+97235550100") and "10:00" in sms["Body"]
    service.run_once()
    [created] = standin.created
    assert (created["To"], created["From"]) == (DANA, "+97235550100")
    assert created["Url"] == "http://testserver/twilio/followup-answer?a=1"
    assert created["StatusCallback"] == "http://testserver/twilio/followup-status?a=1"
    assert created["MachineDetection"] == "Enable"
    assert created["Method"] == created["StatusCallbackMethod"] == "POST"
    twilio = TwilioDriver(rest_client, "http://testserver", TOKEN)
    base = {"CallSid": created["sid"], "AccountSid": "AC" + "0" * 32, "From": created["From"],
            "To": created["To"], "Direction": "outbound-api"}
    twilio.post(created["Url"], {**base, "CallStatus": "in-progress", "AnsweredBy": "human"})
    twilio.post(created["StatusCallback"], {**base, "CallStatus": "completed"})
    [f] = _rows(engine, followups)
    [attempt] = _rows(engine, followup_attempts)
    assert f.status == "completed"
    assert (attempt.call_sid, attempt.outcome) == (created["sid"], "completed")
    assert len(standin.messages) == 1


def test_a_lapsed_claim_asks_twilio_and_a_ringing_call_is_not_dialled_again(
        rest_client: TestClient, standin: TwilioStandIn, people: dict[str, int],
        engine: Engine, clock: FrozenClock) -> None:
    service = _due(rest_client, engine, clock)
    service.run_once()
    [created] = standin.created
    standin.call_status[created["sid"]] = "ringing"
    clock.advance(seconds=91)  # no status callback came: the lease runs out
    service.run_once()
    assert standin.fetched == [created["sid"]]
    assert len(standin.created) == 1
    assert _rows(engine, followups)[0].status == "dialing"
    standin.call_status[created["sid"]] = "no-answer"
    clock.advance(seconds=91)
    service.run_once()
    f = _rows(engine, followups)[0]
    assert (f.status, f.attempts, f.last_outcome) == ("pending", 1, "no-answer")
    assert len(standin.created) == 1
