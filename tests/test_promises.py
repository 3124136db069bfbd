"""Promises (issue 17.2) on SQLite and PostgreSQL, with a FrozenClock: a promised action
from a wrap-up gets an owner (the agent, else the queue), a warning before due (the owner's
console and the supervisors'), broken when due passes unkept (supervisors, the escalation
webhook, ``broken_promises`` for the leaving-risk signal), kept by the agent's button, an
integration's API call or a later wrap-up; the confirmation SMS once.

Clock: Monday 2026-11-23 10:00 in Jerusalem; followups.yaml warns 2 hours before due."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from callbacks.followups.models import promises
from callbacks.followups.promises import broken_promises
from callbacks.followups.service import FollowUpService
from callbacks.followups.sms import LocalSms
from crm_sync.models import interactions
from crm_sync.wrapup import CallFacts, WrapUp, record_wrap_up
from ivr.agents.models import agent_events
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from tests.agent_fixtures import DANA, login
from tests.callback_flow import RecordingDialer
from tests.conftest import ADMIN

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def client(settings: Settings, clock: FrozenClock) -> Iterator[TestClient]:
    configured = settings.model_copy(update={
        "route_every_seconds": 0, "callbacks_file": ROOT / "callbacks.yaml",
        "followups_file": ROOT / "followups.yaml", "callback_caller_id": "+97235550100",
        "callback_escalation_url": "http://hooks.test/x",
        "callback_escalation_secret": SecretStr("k")})
    with TestClient(create_app(configured, clock, dialer=RecordingDialer())) as c:
        yield c


@pytest.fixture
def fu(client: TestClient) -> FollowUpService:
    service = client.app.state.web.services.followups  # type: ignore[attr-defined]
    assert isinstance(service, FollowUpService)
    return service


def promise(engine: Engine, clock: FrozenClock, agent: str, due_in: timedelta,
            call_sid: str = "CApromise") -> int:
    """Noa's wrap-up: "a technician will call you by ..."."""
    now = clock.now()
    with engine.begin() as conn:
        written = record_wrap_up(conn, CallFacts(call_sid, 1, agent, "support", now, now, 5,
                                                 60),
                                 WrapUp("internet", "technician", False,
                                        promised_action="a technician will call you",
                                        promised_due_at=now + due_in), now)
    return written.interaction_id


def the_promise(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(promises)).one()


def consoles(engine: Engine, agent_id: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r.payload) for r in conn.execute(select(agent_events).where(
            agent_events.c.agent_id == agent_id, agent_events.c.kind == "followup")
            .order_by(agent_events.c.id))]


def test_a_promise_is_owned_warned_broken_and_escalated(
        fu: FollowUpService, engine: Engine, clock: FrozenClock,
        people: dict[str, int]) -> None:
    interaction = promise(engine, clock, "Noa Mizrahi", timedelta(hours=26))
    posted: list[dict[str, Any]] = []

    def take(r: httpx.Request) -> httpx.Response:
        posted.append(json.loads(r.content))
        return httpx.Response(200)
    hook = httpx.Client(transport=httpx.MockTransport(take))
    fu.run_once(hook)
    p = the_promise(engine)
    assert (p.interaction_id, p.owner_agent_id, p.owner_queue, p.status) == (
        interaction, people["dana.agent"], "support", "open")
    assert p.warn_at == p.due_at - timedelta(hours=2)
    assert isinstance(fu.sms, LocalSms)
    [sms] = fu.sms.sent  # the time confirmed, once
    assert sms["to"] == DANA and "a technician will call you" in sms["body"]
    clock.advance(hours=23, minutes=59)
    fu.run_once(hook)
    assert the_promise(engine).warned_at is None and posted == []
    clock.advance(minutes=1)  # two hours before due
    fu.run_once(hook)
    fu.run_once(hook)
    assert [e["kind"] for e in consoles(engine, people["dana.agent"])] == ["promise_warning"]
    assert [e["kind"] for e in consoles(engine, people["boss"])] == ["promise_warning"]
    assert [e["kind"] for e in posted] == ["promise.warning"]
    clock.advance(hours=2)
    fu.run_once(hook)
    fu.run_once(hook)
    p = the_promise(engine)
    assert (p.status, p.broken_at) == ("broken", clock.now())
    assert [e["kind"] for e in consoles(engine, people["boss"])] == [
        "promise_warning", "promise_broken"]
    assert [e["kind"] for e in posted] == ["promise.warning", "promise.broken"]
    assert posted[1]["promise_id"] == p.id and posted[1]["customer_id"] == 1
    with engine.connect() as conn:
        [broken] = broken_promises(conn, 1, clock.now() - timedelta(days=30))
        assert broken["id"] == p.id and broken["kept_at"] is None
        assert broken_promises(conn, 1, clock.now() + timedelta(seconds=1)) == []
        assert broken_promises(conn, 2, clock.now() - timedelta(days=30)) == []
    assert len(fu.sms.sent) == 1


def test_without_a_known_agent_the_queue_owns_it(
        fu: FollowUpService, engine: Engine, clock: FrozenClock,
        people: dict[str, int]) -> None:
    promise(engine, clock, "someone in the branch", timedelta(hours=5))
    fu.run_once()
    p = the_promise(engine)
    assert (p.owner_agent_id, p.owner_queue) == (None, "support")


def test_the_agent_marks_it_kept_and_it_never_breaks(
        client: TestClient, fu: FollowUpService, engine: Engine, clock: FrozenClock,
        people: dict[str, int]) -> None:
    interaction = promise(engine, clock, "Noa Mizrahi", timedelta(hours=5))
    fu.run_once()
    p = the_promise(engine)
    noa = login(client, "dana.agent")
    r = client.post(f"/agent/promises/{p.id}/kept", headers=noa)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["kept_by"]) == ("kept", "agent:dana.agent")
    with engine.connect() as conn:
        kept_at = conn.execute(select(interactions.c.promise_kept_at).where(
            interactions.c.id == interaction)).scalar_one()
    assert kept_at == clock.now()  # the store knows it too (the pop's overdue list)
    clock.advance(hours=6)
    fu.run_once()
    p = the_promise(engine)
    assert (p.status, p.broken_at) == ("kept", None)
    assert client.post("/agent/promises/999/kept", headers=noa).status_code == 404
    assert client.post(f"/agent/promises/{p.id}/kept").status_code == 401


def test_an_integration_marks_it_kept_after_it_broke(
        client: TestClient, fu: FollowUpService, engine: Engine, clock: FrozenClock,
        people: dict[str, int]) -> None:
    promise(engine, clock, "Noa Mizrahi", timedelta(hours=1))
    fu.run_once()
    clock.advance(hours=1)
    fu.run_once()
    p = the_promise(engine)
    assert p.status == "broken"
    r = client.post(f"/api/promises/{p.id}/kept", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    clock.advance(hours=1)
    r = client.post(f"/api/promises/{p.id}/kept", headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200, r.text  # the admin token is good for integrations too
    p = the_promise(engine)
    assert (p.status, p.kept_by, p.kept_at) == ("broken", "api", clock.now())  # kept late


def test_a_later_wrap_up_s_kept_promises_mark_it_kept(
        fu: FollowUpService, engine: Engine, clock: FrozenClock,
        people: dict[str, int]) -> None:
    interaction = promise(engine, clock, "Noa Mizrahi", timedelta(hours=5))
    fu.run_once()
    clock.advance(hours=1)
    now = clock.now()
    with engine.begin() as conn:
        record_wrap_up(conn, CallFacts("CAlater", 1, "Noa Mizrahi", "support", now, now, 5,
                                       60), WrapUp("internet", "fixed", True,
                                                   kept_promises=(interaction,)), now)
    fu.run_once()
    p = the_promise(engine)
    assert (p.status, p.kept_at, p.kept_by) == ("kept", now, "wrap-up")
    clock.advance(hours=5)
    fu.run_once()
    assert the_promise(engine).status == "kept"


def test_the_supervisor_view_lists_promises_and_follow_ups(
        client: TestClient, fu: FollowUpService, engine: Engine, clock: FrozenClock,
        people: dict[str, int]) -> None:
    promise(engine, clock, "Noa Mizrahi", timedelta(hours=1))
    fu.run_once()
    boss, noa = login(client, "boss"), login(client, "dana.agent")
    assert client.get("/agent/followups", headers=noa).status_code == 403
    board = client.get("/agent/followups", headers=boss).json()
    assert [p["status"] for p in board["promises"]["open"]] == ["open"]
    assert [p["warned"] for p in board["promises"]["at_risk"]] == [True]
    assert board["followups"] == []
