"""With Twilio credentials, a routed caller is dequeued through the Queue Members REST API
(the real twilio client, against a stand-in of Twilio's API)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, select
from starlette.testclient import TestClient

from ivr.agents.models import agent_calls
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from tests.agent_fixtures import DANA, available, login
from tests.agent_flow import QUEUE_SID, TwilioDriver
from tests.conftest import TOKEN
from tests.twilio_standin import TwilioStandIn, rest_gateway


@pytest.fixture
def standin() -> TwilioStandIn:
    return TwilioStandIn()


@pytest.fixture
def rest_client(settings: Settings, clock: FrozenClock,
                standin: TwilioStandIn) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"route_every_seconds": 0,
                                             "public_url": "http://testserver"})
    with TestClient(create_app(configured, clock, rest_gateway(standin))) as c:
        yield c


def test_routed_caller_is_dequeued_by_rest_and_connected(
        rest_client: TestClient, standin: TwilioStandIn, people: dict[str, int]) -> None:
    twilio = TwilioDriver(rest_client, "http://testserver", TOKEN)
    noa = login(rest_client, "dana.agent")
    sid = twilio.start(DANA, ["2"])
    assert standin.dequeued == []
    available(rest_client, noa)
    assert len(standin.dequeued) == 1
    asked = standin.dequeued[0]
    assert (asked["queue_sid"], asked["call_sid"], asked["Method"]) == (QUEUE_SID, sid, "POST")
    assert asked["Url"].startswith("http://testserver/twilio/connect?a=")
    # The wait loop does not release the caller itself in this mode.
    assert ET.fromstring(twilio.wait(sid, 5)).find("Leave") is None
    xml = twilio.redirected(sid, asked["Url"])
    # The caller joins the call's conference and Noa is rung into it.
    assert ET.fromstring(xml).findtext("Dial/Conference") == f"call-{sid}"
    assert [(op[1], op[3]["to"]) for op in twilio.conferences.ops if op[0] == "add"] == [
        (f"call-{sid}", "client:dana.agent")]
    pop = rest_client.get(f"/agent/calls/{sid}/context", headers=noa).json()
    assert pop["customer"]["name"] == "דנה כהן"


def test_a_failed_dequeue_puts_caller_and_agent_back_and_is_tried_again(
        rest_client: TestClient, standin: TwilioStandIn, people: dict[str, int],
        database_url: str) -> None:
    twilio = TwilioDriver(rest_client, "http://testserver", TOKEN)
    sid = twilio.start(DANA, ["2"])
    standin.fail_next = 1  # Twilio answers 404 once (e.g. a moment of inconsistency)
    noa = login(rest_client, "dana.agent")
    available(rest_client, noa)
    engine = create_engine(database_url)
    with engine.connect() as conn:
        offers = [tuple(r) for r in conn.execute(
            select(agent_calls.c.call_sid, agent_calls.c.outcome).order_by(agent_calls.c.id))]
    engine.dispose()
    # The failed offer was taken back (caller waiting, agent available) and made again.
    assert offers == [(sid, "failed"), (sid, None)]
    assert len(standin.dequeued) == 1
    assert rest_client.get("/agent/me", headers=noa).json()["current_call_sid"] == sid
