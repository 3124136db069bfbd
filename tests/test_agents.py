"""Agents through the signed webhooks: sign-in, availability, calls routed to agents, the
screen-pop, an agent leg that fails, the wrap-up, and who may read what."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, insert, select
from starlette.testclient import TestClient

from crm_sync.models import Customer, CustomerPhone, Incident, customers, incidents
from crm_sync.models import interactions as interactions_t
from ivr.agents import repository as repo
from ivr.agents.models import agent_state_events, agents, queue_entries
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from tests.agent_flow import TwilioDriver
from tests.conftest import TOKEN

DANA = "+972501234567"   # דנה כהן: an open fault opened at the Haifa branch an hour ago
YOSSI = "+972527654321"  # no history


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    e = create_engine(database_url)
    yield e
    e.dispose()


@pytest.fixture
def app_client(settings: Settings, clock: FrozenClock) -> Iterator[TestClient]:
    quiet = settings.model_copy(update={"route_every_seconds": 0})
    with TestClient(create_app(quiet, clock)) as c:
        yield c


@pytest.fixture
def people(engine: Engine, clock: FrozenClock) -> dict[str, int]:
    now = clock.now()
    with engine.begin() as conn:
        conn.execute(insert(Customer), [
            {"id": 1, "account_number": "1001", "name": "דנה כהן", "tier": "premium",
             "status": "active", "preferred_language": "he-IL", "lineage": {},
             "created_at": now, "updated_at": now},
            {"id": 2, "account_number": "1002", "name": "Yossi Levi", "tier": "standard",
             "status": "active", "preferred_language": "en-US", "lineage": {},
             "created_at": now, "updated_at": now}])
        conn.execute(insert(CustomerPhone), [{"customer_id": 1, "e164": DANA},
                                             {"customer_id": 2, "e164": YOSSI}])
        conn.execute(insert(Incident), {
            "customer_id": 1, "source": "branch-haifa", "external_id": "H-77",
            "status": "open", "category": "internet", "branch": "Haifa",
            "summary": "האינטרנט מתנתק כל כמה דקות", "opened_at": now - timedelta(hours=1),
            "last_update_at": now - timedelta(hours=1)})
        ids = {}
        for username, name, queues, role in (
                ("dana.agent", "Noa Mizrahi", ["support-open-incidents", "operator"], "agent"),
                ("avi", "Avi Ben-David", ["support-open-incidents", "billing"], "agent"),
                ("boss", "Rivka Supervisor", [], "admin")):
            ids[username] = repo.create_agent(
                conn, username=username, name=name, password=f"{username}-pw", role=role,
                queues=queues, reach_kind="client", reach_target=username, now=now)
    return ids


def login(client: TestClient, username: str) -> dict[str, str]:
    r = client.post("/agent/login", json={"username": username, "password": f"{username}-pw"})
    assert r.status_code == 200, r.text
    client.cookies.clear()  # each test agent uses its bearer token, not the shared jar
    return {"Authorization": f"Bearer {r.json()['token']}"}


def available(client: TestClient, auth: dict[str, str]) -> dict[str, Any]:
    r = client.post("/agent/state", json={"state": "available"}, headers=auth)
    assert r.status_code == 200, r.text
    return dict(r.json())


def dial_target(xml: str) -> tuple[str, str]:
    dial = ET.fromstring(xml).find("Dial")
    assert dial is not None
    noun = next(iter(dial))
    return noun.tag, (noun.text or "").strip()


def test_known_caller_reaches_an_available_agent_with_the_incident_on_screen(
        app_client: TestClient, people: dict[str, int], clock: FrozenClock) -> None:
    noa = login(app_client, "dana.agent")
    assert available(app_client, noa)["state"] == "available"
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    sid = twilio.start("050-123-4567", ["2"])  # known, Hebrew, open fault: support -> team
    assert twilio.calls[sid].queue == "support-open-incidents"
    me = app_client.get("/agent/me", headers=noa).json()
    assert (me["state"], me["current_call_sid"]) == ("reserved", sid)

    clock.advance(seconds=5)
    xml = twilio.connect(sid)
    assert dial_target(xml) == ("Client", "dana.agent")
    context = app_client.get(f"/agent/calls/{sid}/context", headers=noa).json()
    assert context["customer"]["name"] == "דנה כהן"
    assert context["caller"]["outcome"] == "known"
    incident = context["open_incidents"][0]
    assert (incident["branch"], incident["source"]) == ("Haifa", "branch-haifa")
    assert incident["summary"] == "האינטרנט מתנתק כל כמה דקות"
    assert context["waited_seconds"] == 5
    assert [p["kind"] for p in context["ivr_path"]][-1] == "queue"

    twilio.agent_answers(sid)
    assert app_client.get("/agent/me", headers=noa).json()["state"] == "on_call"
    clock.advance(minutes=4)
    assert ET.fromstring(twilio.hang_up(sid)).find("Hangup") is not None
    assert app_client.get("/agent/me", headers=noa).json()["state"] == "wrap_up"

    r = app_client.post(f"/agent/calls/{sid}/wrapup", headers=noa, json={
        "topic": "internet fault", "outcome": "technician booked", "resolved": False,
        "promised_action": "technician visit", "notes": "מגיע טכנאי מחר",
        "promised_due_at": (clock.now() + timedelta(days=1)).isoformat()})
    assert r.status_code == 201, r.text
    assert r.json()["agent"]["state"] == "available"
    again = app_client.post(f"/agent/calls/{sid}/wrapup", headers=noa, json={
        "topic": "x", "outcome": "y", "resolved": True})
    assert again.status_code == 409

    # The same customer calls again 55 minutes after the first call: the pop shows the
    # wrap-up.
    clock.advance(minutes=51)
    sid2 = twilio.start(DANA, ["2"])
    twilio.connect(sid2)
    second = app_client.get(f"/agent/calls/{sid2}/context", headers=noa).json()
    last = second["interactions"][0]
    assert (last["topic"], last["outcome"], last["agent"]) == (
        "internet fault", "technician booked", "Noa Mizrahi")
    assert second["repeat"]["is_repeat"] is True
    assert second["repeat"]["text"] == "called 55 minutes ago about internet fault"
    assert second["promises"][0]["action"] == "technician visit"
    assert second["promises"][0]["overdue"] is False
