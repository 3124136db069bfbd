"""Agents through the signed webhooks: sign-in, availability, calls routed to agents, the
screen-pop, an agent leg that fails, the wrap-up, and who may read what."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from crm_sync.models import customers, incidents
from crm_sync.models import interactions as interactions_t
from ivr.agents.models import agent_calls, agent_events, agent_state_events, agents, queue_entries
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from tests.agent_fixtures import DANA, YOSSI, available, login
from tests.agent_flow import CallLeg, TwilioDriver
from tests.conftest import TOKEN
from tests.twilio import new_sid


def dial_target(xml: str) -> tuple[str, str]:
    dial = ET.fromstring(xml).find("Dial")
    assert dial is not None
    noun = next(iter(dial))
    return noun.tag, (noun.text or "").strip()


def agents_rung(twilio: TwilioDriver, sid: str) -> list[str]:
    """Whom the server rang into the call's conference as its agent (the participants
    stand-in's ``participants.create``: the ``To`` of each), in order."""
    return [op[3]["to"] for op in twilio.conferences.ops
            if op[0] == "add" and op[1] == f"call-{sid}" and op[3]["label"] == "agent"]


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
    # The caller joins the call's conference; Noa's browser is rung into it.
    assert dial_target(xml) == ("Conference", f"call-{sid}")
    assert agents_rung(twilio, sid) == ["client:dana.agent"]
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
    # Waited from joining the queue to the agent's answer (the participant joining), talked
    # from it to the conference's end.
    with app_client.app.state.web.agents.engine.connect() as conn:  # type: ignore[attr-defined]
        row = conn.execute(select(interactions_t.c.wait_seconds, interactions_t.c.talk_seconds)
                           .where(interactions_t.c.call_sid == sid)).one()
    assert tuple(row) == (5, 240)
    again = app_client.post(f"/agent/calls/{sid}/wrapup", headers=noa, json={
        "topic": "x", "outcome": "y", "resolved": True})
    assert again.status_code == 409

    # The same customer calls again 55 minutes after the first call: the pop shows the
    # wrap-up.
    clock.advance(minutes=51)
    sid2 = twilio.start(DANA, ["2", "1"])  # "calling about the fault you reported at …?"
    twilio.connect(sid2)
    second = app_client.get(f"/agent/calls/{sid2}/context", headers=noa).json()
    last = second["interactions"][0]
    assert (last["topic"], last["outcome"], last["agent"]) == (
        "internet fault", "technician booked", "Noa Mizrahi")
    assert second["repeat"]["is_repeat"] is True
    assert second["repeat"]["text"] == "called 55 minutes ago about internet fault"
    assert second["promises"][0]["action"] == "technician visit"
    assert second["promises"][0]["overdue"] is False


def talk(twilio: TwilioDriver, sid: str) -> None:
    """The routed call is connected, the agent answers, they talk, the caller hangs up."""
    twilio.connect(sid)
    twilio.agent_answers(sid)
    twilio.hang_up(sid)


def state_of(engine: Engine, agent_id: int) -> tuple[str, str | None]:
    with engine.connect() as conn:
        row = conn.execute(select(agents.c.state, agents.c.current_call_sid)
                           .where(agents.c.id == agent_id)).one()
    return row.state, row.current_call_sid


def entry_of(engine: Engine, sid: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(queue_entries).where(queue_entries.c.call_sid == sid)).one()


@pytest.fixture
def dial_client(settings: Settings, clock: FrozenClock) -> Iterator[TestClient]:
    """The plain ``<Dial><Client>`` to the agent (``IVR_CONFERENCE_CALLS=false``), still
    supported: pinned here because it is these tests' subject."""
    plain = settings.model_copy(update={"route_every_seconds": 0, "conference_calls": False})
    with TestClient(create_app(plain, clock)) as c:
        yield c


def call_events(engine: Engine, agent_id: int) -> list[str]:
    with engine.connect() as conn:
        return [p["status"] for p in conn.execute(select(agent_events.c.payload).where(
            agent_events.c.agent_id == agent_id, agent_events.c.kind == "call")
            .order_by(agent_events.c.id)).scalars()]


def test_on_a_plain_dial_the_agent_s_client_is_dialled_answers_and_hangs_up(
        dial_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    noa = login(dial_client, "dana.agent")
    available(dial_client, noa)
    twilio = TwilioDriver(dial_client, "http://testserver", TOKEN)
    sid = twilio.start(DANA, ["2"])
    xml = twilio.connect(sid)
    assert dial_target(xml) == ("Client", "dana.agent")
    leg = twilio.calls[sid]
    assert leg.conference is None and twilio.conferences.ops == []  # no participant
    assert (leg.dial_action or "").startswith("/twilio/agent-dial?a=")
    assert (leg.leg_callback or "").startswith("/twilio/agent-leg?a=")
    twilio.agent_answers(sid)
    assert state_of(engine, people["dana.agent"]) == ("on_call", sid)
    clock.advance(minutes=3)
    assert ET.fromstring(twilio.hang_up(sid)).find("Hangup") is not None
    assert state_of(engine, people["dana.agent"]) == ("wrap_up", sid)
    assert entry_of(engine, sid).status == "done"
    assert dial_client.post(f"/agent/calls/{sid}/wrapup", headers=noa, json={
        "topic": "internet fault", "outcome": "fixed", "resolved": True}).status_code == 201
    # A leg that is not answered: offline, and the caller back at the head of the queue.
    again = twilio.start(YOSSI, ["0"])
    twilio.connect(again)
    xml = twilio.agent_does_not_answer(again, "busy")
    assert ET.fromstring(xml).findtext("Enqueue") == "operator"
    assert state_of(engine, people["dana.agent"]) == ("offline", None)
    assert call_events(engine, people["dana.agent"])[-1] == "missed"


@pytest.mark.parametrize("status_first", [True, False])
def test_on_a_plain_dial_a_caller_who_hangs_up_while_the_agent_rings_is_not_requeued(
        dial_client: TestClient, people: dict[str, int], engine: Engine,
        status_first: bool) -> None:
    """The caller hangs up while their <Dial> rings the agent: Twilio ends the agent's leg
    and requests the Dial action with the caller's CallStatus ``completed`` (the leg's
    DialCallStatus is not the agent's doing). The agent is available again, not offline
    for a missed call; the caller's entry stays closed — never back in the queue to be
    offered to the next agent — whichever of the action and the caller's final status
    callback comes first."""
    noa = login(dial_client, "dana.agent")
    available(dial_client, noa)
    twilio = TwilioDriver(dial_client, "http://testserver", TOKEN)
    sid = twilio.start(DANA, ["2"])
    twilio.connect(sid)
    leg = twilio.calls[sid]
    if status_first:
        twilio.caller_hangs_up(sid)
    xml = twilio.post(leg.dial_action or "", twilio.params(
        leg, CallStatus="completed", DialCallStatus="no-answer",
        DialCallSid=leg.agent_leg_sid))
    if not status_first:
        twilio.caller_hangs_up(sid)
    root = ET.fromstring(xml)
    assert root.find("Hangup") is not None and root.find("Enqueue") is None
    assert state_of(engine, people["dana.agent"]) == ("available", None)
    assert entry_of(engine, sid).status == "abandoned"
    assert call_events(engine, people["dana.agent"]) == ["ended"]
    with engine.connect() as conn:
        assert list(conn.execute(select(agent_calls.c.outcome)).scalars()) == ["canceled"]


def test_priority_then_longest_wait_decides_who_is_served_first(
        app_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    """Yossi (standard, no incident) waits longest in the operator queue; Dana (premium,
    open fault) is in support-open-incidents with priority 10. One agent serving both
    queues goes available: Dana first; then the next agent gets Yossi."""
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    yossi = twilio.start(YOSSI, ["0"])          # English main menu: 0 = operator
    clock.advance(seconds=30)
    dana = twilio.start(DANA, ["2"])
    assert entry_of(engine, dana).priority == 10
    assert entry_of(engine, yossi).priority == 0
    noa = login(app_client, "dana.agent")  # serves support-open-incidents and operator
    available(app_client, noa)
    assert state_of(engine, people["dana.agent"]) == ("reserved", dana)
    assert entry_of(engine, yossi).status == "waiting"


def test_longest_waiting_first_at_equal_priority(
        app_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    first = twilio.start(YOSSI, ["0"])
    clock.advance(seconds=10)
    second = twilio.start("+972541112233", ["1", "0"])  # unknown: Hebrew, then operator
    assert entry_of(engine, second).queue == "operator"
    available(app_client, login(app_client, "dana.agent"))
    assert state_of(engine, people["dana.agent"]) == ("reserved", first)


def test_agent_who_does_not_answer_goes_offline_and_the_caller_back_to_the_head(
        app_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    dana = twilio.start(DANA, ["2"])
    clock.advance(seconds=60)
    later = twilio.start("+972541112233", ["1", "0"])  # joins a minute after Dana
    assert entry_of(engine, later).queue == "operator"
    noa = login(app_client, "dana.agent")
    available(app_client, noa)
    entered = entry_of(engine, dana).entered_at
    twilio.connect(dana)
    clock.advance(seconds=20)
    xml = twilio.agent_does_not_answer(dana)
    enqueue = ET.fromstring(xml).find("Enqueue")
    assert enqueue is not None and (enqueue.text or "") == "support-open-incidents"
    assert state_of(engine, people["dana.agent"]) == ("offline", None)
    entry = entry_of(engine, dana)
    assert (entry.status, entry.entered_at, entry.attempts) == ("waiting", entered, 1)
    with engine.connect() as conn:
        reasons = list(conn.execute(select(agent_state_events.c.reason).where(
            agent_state_events.c.agent_id == people["dana.agent"])
            .order_by(agent_state_events.c.id)).scalars())
    assert reasons[-1] == "no-answer"
    # Noa's console heard it was missed; the next free agent takes Dana before the caller
    # who joined after her, although Dana's leg just failed.
    avi = login(app_client, "avi")  # serves support-open-incidents
    app_client.post("/agent/state", json={"state": "available"}, headers=noa)
    available(app_client, avi)
    reserved = {state_of(engine, people[u])[1] for u in ("dana.agent", "avi")}
    assert dana in reserved
    # Twilio's next wait round releases her again, to whichever agent has her now: back on
    # the call's conference, where that agent is rung in.
    assert dial_target(twilio.connect(dana)) == ("Conference", f"call-{dana}")
    now = next(u for u in ("dana.agent", "avi") if state_of(engine, people[u])[1] == dana)
    assert agents_rung(twilio, dana) == ["client:dana.agent", f"client:{now}"]


def test_busy_and_failed_legs_also_requeue(app_client: TestClient, people: dict[str, int],
                                           engine: Engine) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    available(app_client, login(app_client, "avi"))
    sid = twilio.start(DANA, ["2"])
    twilio.connect(sid)
    twilio.agent_does_not_answer(sid, "busy")
    assert state_of(engine, people["avi"]) == ("offline", None)
    available(app_client, login(app_client, "avi"))
    twilio.connect(sid)
    twilio.agent_does_not_answer(sid, "failed")
    assert entry_of(engine, sid).attempts == 2
    assert entry_of(engine, sid).status == "waiting"


def test_caller_hanging_up_while_waiting_or_ringing(
        app_client: TestClient, people: dict[str, int], engine: Engine) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    waiting = twilio.start(YOSSI, ["0"])
    twilio.caller_hangs_up(waiting)
    assert entry_of(engine, waiting).status == "abandoned"
    noa = login(app_client, "dana.agent")
    available(app_client, noa)  # nobody to serve: the abandoned call is not offered
    assert state_of(engine, people["dana.agent"]) == ("available", None)
    ringing = twilio.start(DANA, ["2"])
    twilio.connect(ringing)
    twilio.caller_hangs_up(ringing)
    assert state_of(engine, people["dana.agent"]) == ("available", None)
    assert entry_of(engine, ringing).status == "abandoned"


def test_an_offer_never_connected_expires(app_client: TestClient, people: dict[str, int],
                                          engine: Engine, clock: FrozenClock) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    sid = twilio.start(DANA, ["2"])
    available(app_client, login(app_client, "avi"))
    assert state_of(engine, people["avi"]) == ("reserved", sid)
    service = app_client.app.state.web.agents  # type: ignore[attr-defined]
    clock.advance(seconds=29)
    assert service.expire_offers().published == []
    clock.advance(seconds=2)
    out = service.expire_offers()
    assert out.reroute
    assert state_of(engine, people["avi"]) == ("available", None)
    assert entry_of(engine, sid).status == "waiting"
    # The caller's next wait round is just holding again (nobody reserved for them).
    assert ET.fromstring(twilio.wait(sid, 5)).find("Leave") is None


def test_connect_without_a_live_offer_requeues(app_client: TestClient,
                                               people: dict[str, int]) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    sid = twilio.start(DANA, ["2"])
    leg = twilio.calls[sid]
    xml = twilio.post("/twilio/connect?a=999", twilio.params(leg))
    enqueue = ET.fromstring(xml).find("Enqueue")
    assert enqueue is not None and (enqueue.text or "") == "support-open-incidents"


def test_repeat_caller_with_an_open_fault_goes_to_the_agent_who_had_them(
        app_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    avi = login(app_client, "avi")
    available(app_client, avi)
    sid = twilio.start(DANA, ["2"])
    talk(twilio, sid)
    assert app_client.post(f"/agent/calls/{sid}/wrapup", headers=avi, json={
        "topic": "internet fault", "outcome": "reset the router", "resolved": False}
        ).status_code == 201
    app_client.post("/agent/state", json={"state": "offline"}, headers=avi)
    # Noa has been idle longer, but Dana calls back 40 minutes later: Avi, who had her,
    # gets the call as soon as he is available.
    noa = login(app_client, "dana.agent")
    clock.advance(minutes=40)
    available(app_client, avi)
    clock.advance(minutes=1)
    available(app_client, noa)
    again = twilio.start(DANA, ["2", "1"])  # yes, about the fault reported earlier
    entry = entry_of(engine, again)
    assert (entry.preferred_agent_id, entry.priority) == (people["avi"], 10)
    assert state_of(engine, people["avi"]) == ("reserved", again)


def test_wrap_up_opens_and_closes_incidents_and_marks_promises(
        app_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    noa = login(app_client, "dana.agent")
    available(app_client, noa)
    sid = twilio.start(DANA, ["2"])
    talk(twilio, sid)
    context = app_client.get(f"/agent/calls/{sid}/context", headers=noa).json()
    incident_id = context["open_incidents"][0]["id"]
    r = app_client.post(f"/agent/calls/{sid}/wrapup", headers=noa, json={
        "topic": "internet fault", "outcome": "fixed on the line", "resolved": True,
        "close_incidents": [incident_id], "leaving_reason": "price",
        "promised_action": "call back to check", "promised_due_at":
        (clock.now() - timedelta(hours=1)).isoformat()})
    assert r.status_code == 201, r.text
    with engine.connect() as conn:
        assert conn.execute(select(incidents.c.status).where(
            incidents.c.id == incident_id)).scalar() == "closed"
        assert conn.execute(select(customers.c.status).where(
            customers.c.id == 1)).scalar() == "leaving"
        row = conn.execute(select(interactions_t).where(
            interactions_t.c.call_sid == sid)).one()
    assert (row.agent, row.resolved, row.leaving_reason) == ("Noa Mizrahi", True, "price")
    assert row.ivr_path and row.ivr_path[-1]["event"] == "queue"
    assert (row.wait_seconds, row.talk_seconds) == (0, 0)  # the frozen clock did not move
    # The next call (no open fault now: 0 for an agent): the overdue promise and the
    # leaving risk are on the pop.
    sid2 = twilio.start(DANA, ["0"])
    twilio.connect(sid2)
    pop = app_client.get(f"/agent/calls/{sid2}/context", headers=noa).json()
    assert pop["open_incidents"] == []
    assert pop["promises"][0]["overdue"] is True
    assert pop["leaving_risk"]["flag"] is True
    assert "customer status: leaving" in pop["leaving_risk"]["reasons"]
    twilio.agent_answers(sid2)
    twilio.hang_up(sid2)
    r = app_client.post(f"/agent/calls/{sid2}/wrapup", headers=noa, json={
        "topic": "follow-up", "outcome": "checked", "resolved": False,
        "kept_promises": [pop["promises"][0]["interaction_id"]]})
    assert r.status_code == 201
    with engine.connect() as conn:
        opened = conn.execute(select(incidents.c.source, incidents.c.status).where(
            incidents.c.customer_id == 1, incidents.c.source == "agent")).all()
    assert [tuple(o) for o in opened] == [("agent", "open")]  # unresolved, nothing open


def test_choosing_cancel_is_a_leaving_risk_on_the_pop(
        app_client: TestClient, people: dict[str, int]) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    sid = twilio.start(YOSSI, ["3"])  # nobody serves retention: the pop is built directly
    assert twilio.calls[sid].queue == "retention"
    service = app_client.app.state.web.agents  # type: ignore[attr-defined]
    with service.engine.connect() as conn:
        pop = service.build_context(conn, sid, service.clock.now())
    assert pop["leaving_risk"]["flag"] is True
    assert pop["leaving_risk"]["reasons"][0].startswith("chose 'retention' in the IVR")


def test_unknown_caller_pop_and_wrap_up(app_client: TestClient, people: dict[str, int],
                                        engine: Engine) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    noa = login(app_client, "dana.agent")
    available(app_client, noa)
    sid = twilio.start("+972541112233", ["1", "0"])
    twilio.connect(sid)
    pop = app_client.get(f"/agent/calls/{sid}/context", headers=noa).json()
    assert pop["customer"] is None
    assert pop["caller"] == {"number": "+972541112233", "outcome": "unknown",
                             "typed_account": None, "candidates": []}
    twilio.agent_answers(sid)
    twilio.hang_up(sid)
    r = app_client.post(f"/agent/calls/{sid}/wrapup", headers=noa, json={
        "topic": "general", "outcome": "answered a question", "resolved": True})
    assert r.status_code == 201
    assert r.json()["interaction_id"] is None and "not identified" in r.json()["warning"]
    assert state_of(engine, people["dana.agent"]) == ("available", None)


def test_a_wrap_up_is_published_to_subscribers(app_client: TestClient, people: dict[str, int],
                                               engine: Engine, clock: FrozenClock) -> None:
    from crm_sync.outbox import register
    from crm_sync.sources import Subscriber
    from crm_sync.sync_models import outbox

    with engine.begin() as conn:
        register(conn, [Subscriber(name="helpdesk", url="http://helpdesk.test/hook",
                                   secret_env="HOOK_SECRET")], clock.now())
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    noa = login(app_client, "dana.agent")
    available(app_client, noa)
    sid = twilio.start(DANA, ["2"])
    talk(twilio, sid)
    incident = app_client.get(f"/agent/calls/{sid}/context",
                              headers=noa).json()["open_incidents"][0]["id"]
    assert app_client.post(f"/agent/calls/{sid}/wrapup", headers=noa, json={
        "topic": "internet fault", "outcome": "fixed", "resolved": True,
        "close_incidents": [incident]}).status_code == 201
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.kind, outbox.c.customer_id, outbox.c.body)
                            .order_by(outbox.c.id)).all()
    kinds = [r.kind for r in rows]
    # The IVR wrote the call into the history at its start, the wrap-up completed it.
    assert kinds[-2:] == ["interaction.updated", "incident.updated"]
    assert all(r.customer_id == 1 for r in rows)
    body = json.loads(rows[-2].body)
    assert (body["type"], body["data"]["topic"], body["data"]["agent"]) == (
        "interaction.updated", "internet fault", "Noa Mizrahi")
    assert json.loads(rows[-1].body)["data"] == {
        "incident_id": incident, "status": "closed", "closed_at": "2026-11-23T08:00:00Z"}


def test_a_repeat_caller_is_asked_about_the_fault_by_its_time(
        app_client: TestClient, people: dict[str, int], clock: FrozenClock) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    first = twilio.start(DANA, ["2"])  # the first call: straight to the team
    assert twilio.calls[first].queue == "support-open-incidents"
    twilio.caller_hangs_up(first)
    clock.advance(minutes=30)
    leg = CallLeg(new_sid(), DANA)
    twilio.calls[leg.sid] = leg
    twilio.post("/twilio/voice", twilio.params(leg, CallStatus="ringing"))
    xml = twilio.post("/twilio/gather?s=1", twilio.params(leg, Digits="2"))
    say = ET.fromstring(xml).find("Gather/Say")
    assert say is not None
    # The fault was opened at the Haifa branch at 07:00 UTC: 09:00 in Jerusalem.
    assert say.text == ("אם אתם מתקשרים בעניין התקלה שדיווחתם עליה בשעה 09:00, הקישו 1. "
                        "לנושא אחר הקישו 2.")
    xml = twilio.post("/twilio/gather?s=2", twilio.params(leg, Digits="2"))
    assert "לתקלה באינטרנט הקישו 2" in xml  # "something else": the support menu
