"""Transfers through the signed webhooks and the participants stand-in: the call on a
conference, hold and resume, cold and warm transfers to a queue, an agent and an outside
number, and every failure path bringing the caller back to a person."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient
from twilio.base.exceptions import TwilioRestException

from crm_sync.models import interactions
from ivr.agents.dispatch import Dispatcher
from ivr.agents.models import agent_events, agents, queue_entries
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from ivr.simulator.caller import PhoneCall
from ivr.transfers.gateway import LocalConferences
from ivr.transfers.models import transfers
from ivr.transfers.service import TransferService
from tests.agent_fixtures import DANA, available, login
from tests.agent_flow import TwilioDriver
from tests.conftest import TOKEN

PARTNER = "+97235550999"


class RestConferences(LocalConferences):
    """The stand-in answering as Twilio's REST API does: callers are moved by
    ``calls(…).update(url=…)``, not through their wait URL."""

    redirects_by_rest = True


@pytest.fixture
def tx_client(settings: Settings, clock: FrozenClock) -> Iterator[TestClient]:
    on = settings.model_copy(update={"route_every_seconds": 0, "conference_calls": True,
                                     "public_url": "http://testserver",
                                     "transfer_numbers": {"Partner bank": PARTNER}})
    with TestClient(create_app(on, clock)) as c:
        yield c


def service(client: TestClient) -> TransferService:
    s = client.app.state.web.services.transfers  # type: ignore[attr-defined]
    assert isinstance(s, TransferService)
    return s


def stand_in(client: TestClient) -> LocalConferences:
    g = service(client).gateway
    assert isinstance(g, LocalConferences)
    return g


def state_of(engine: Engine, agent_id: int) -> tuple[str, str | None]:
    with engine.connect() as conn:
        row = conn.execute(select(agents.c.state, agents.c.current_call_sid)
                           .where(agents.c.id == agent_id)).one()
    return row.state, row.current_call_sid


def entry_of(engine: Engine, sid: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(queue_entries).where(queue_entries.c.call_sid == sid)).one()


def transfer_row(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(transfers).order_by(transfers.c.id.desc())).first()


def events(engine: Engine, agent_id: int, kind: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(agent_events.c.payload).where(
            agent_events.c.agent_id == agent_id, agent_events.c.kind == kind)
            .order_by(agent_events.c.id)).scalars()]


def leg_params(twilio: TwilioDriver, sid: str, leg: str, status: str) -> dict[str, str]:
    return twilio.params(twilio.calls[sid], CallSid=leg, CallStatus=status,
                         Direction="outbound-api")


class Call:
    """Noa on a call with Dana, on the call's conference."""

    def __init__(self, client: TestClient, people: dict[str, int], clock: FrozenClock,
                 ) -> None:
        self.client = client
        self.clock = clock
        self.twilio = TwilioDriver(client, "http://testserver", TOKEN)
        self.noa = login(client, "dana.agent")
        available(client, self.noa)
        self.sid = self.twilio.start(DANA, ["2"])  # support-open-incidents
        clock.advance(seconds=5)
        self.connect_xml = self.twilio.connect(self.sid)
        ops = stand_in(client).ops
        add = [op for op in ops if op[0] == "add"][-1]
        self.noa_leg = add[2]
        self.noa_callback = add[3]["status_callback"]
        self.twilio.post(f"/twilio/conference-events?c={self.sid}", self.twilio.params(
            self.twilio.calls[self.sid], ConferenceSid=stand_in(client).sid_of(
                f"call-{self.sid}"), StatusCallbackEvent="participant-join"))
        self.leg(self.noa_callback, self.noa_leg, "in-progress")
        clock.advance(minutes=4)

    def leg(self, url: str, leg: str, status: str) -> None:
        self.twilio.post(url, leg_params(self.twilio, self.sid, leg, status))

    def wait_url(self) -> str:
        """The caller's conference wait/hold URL (the stand-in caller polls it)."""
        return self.twilio.post(f"/twilio/conference-wait?c={self.sid}",
                                self.twilio.params(self.twilio.calls[self.sid]))

    def follow_redirect(self) -> ET.Element:
        root = ET.fromstring(self.wait_url())
        redirect = root.find("Redirect")
        assert redirect is not None, ET.tostring(root)
        return ET.fromstring(self.twilio.post(redirect.text or "", self.twilio.params(
            self.twilio.calls[self.sid])))

    def transfer(self, **body: Any) -> Any:
        return self.client.post(f"/agent/calls/{self.sid}/transfer", headers=self.noa,
                                json=body)

    def new_leg(self) -> tuple[str, str]:
        add = [op for op in stand_in(self.client).ops if op[0] == "add"][-1]
        return add[2], add[3]["status_callback"]


def test_the_call_is_on_a_conference_and_the_agent_a_participant(
        tx_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    call = Call(tx_client, people, clock)
    conf = ET.fromstring(call.connect_xml).find("Dial/Conference")
    assert conf is not None and conf.text == f"call-{call.sid}"
    # The caller never starts the conference (hears the wait URL until an agent joins) and
    # ends it when they hang up.
    assert (conf.get("startConferenceOnEnter"), conf.get("endConferenceOnExit"),
            conf.get("beep")) == ("false", "true", "false")
    add = next(op for op in stand_in(tx_client).ops if op[0] == "add")
    assert add[1] == f"call-{call.sid}"
    assert add[3]["to"] == "client:dana.agent"
    assert add[3]["end_conference_on_exit"] is True
    assert state_of(engine, people["dana.agent"]) == ("on_call", call.sid)
    hang = call.twilio.hang_up(call.sid)
    assert ET.fromstring(hang).find("Hangup") is not None
    assert state_of(engine, people["dana.agent"]) == ("wrap_up", call.sid)


def test_an_unanswered_agent_leg_brings_the_caller_back_to_the_head_hearing_why(
        tx_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    twilio = TwilioDriver(tx_client, "http://testserver", TOKEN)
    noa = login(tx_client, "dana.agent")
    available(tx_client, noa)
    sid = twilio.start(DANA, ["2"])
    entered = entry_of(engine, sid).entered_at
    twilio.connect(sid)
    add = next(op for op in stand_in(tx_client).ops if op[0] == "add")
    twilio.post(add[3]["status_callback"], leg_params(twilio, sid, add[2], "no-answer"))
    assert state_of(engine, people["dana.agent"]) == ("offline", None)
    back = ET.fromstring(twilio.post(f"/twilio/conference-wait?c={sid}",
                                     twilio.params(twilio.calls[sid])))
    url = back.findtext("Redirect") or ""
    assert url.startswith("/twilio/transfer-back")
    root = ET.fromstring(twilio.post(url, twilio.params(twilio.calls[sid])))
    assert "אתם הבאים בתור" in (root.findtext("Say") or "")
    assert root.findtext("Enqueue") == "support-open-incidents"
    entry = entry_of(engine, sid)
    assert (entry.status, entry.entered_at) == ("waiting", entered)


@pytest.mark.parametrize("status_first", [True, False])
def test_a_caller_who_hangs_up_while_the_agent_rings_frees_the_agent_and_stops_the_ring(
        tx_client: TestClient, people: dict[str, int], engine: Engine,
        status_first: bool) -> None:
    """Twilio ends a <Dial>ed leg with its caller, not a participant's call: the server
    removes the agent's ringing participant. The agent missed nothing (available, not
    offline), and the caller is not put back in the queue — whichever of the caller's
    final status callback and their conference's <Dial action> comes first."""
    twilio = TwilioDriver(tx_client, "http://testserver", TOKEN)
    noa = login(tx_client, "dana.agent")
    available(tx_client, noa)
    sid = twilio.start(DANA, ["2"])
    twilio.connect(sid)
    leg, callback = twilio.agent_participant(sid) or ("", "")
    call = twilio.calls[sid]
    if status_first:
        twilio.caller_hangs_up(sid)
    end = ET.fromstring(twilio.post(call.dial_action or "", twilio.params(
        call, CallStatus="completed", DialCallStatus="completed", DialCallDuration="0")))
    if not status_first:
        twilio.caller_hangs_up(sid)
    assert end.find("Hangup") is not None and end.find("Enqueue") is None
    assert state_of(engine, people["dana.agent"]) == ("available", None)
    assert entry_of(engine, sid).status == "abandoned"
    assert [e["status"] for e in events(engine, people["dana.agent"], "call")] == ["ended"]
    removed = [op for op in stand_in(tx_client).ops if op[0] == "remove"]
    assert removed == [("remove", f"call-{sid}", leg, {})]
    # The removed leg's own status callback comes last: nothing changes.
    twilio.post(callback, leg_params(twilio, sid, leg, "canceled"))
    assert state_of(engine, people["dana.agent"]) == ("available", None)
    assert entry_of(engine, sid).status == "abandoned"


def test_a_caller_who_hangs_up_while_twilio_creates_the_agent_s_leg_has_it_removed(
        settings: Settings, clock: FrozenClock, people: dict[str, int],
        engine: Engine) -> None:
    """The caller's final status callback comes while ``participants.create`` is on its
    way: the server did not know the leg yet when the caller left; it removes it as soon
    as Twilio answers with it."""
    class HangsUpMeanwhile(LocalConferences):
        def add_participant(self, conference: str, **kw: Any) -> str:
            twilio.caller_hangs_up(sid)
            return super().add_participant(conference, **kw)

    gateway = HangsUpMeanwhile()
    on = settings.model_copy(update={"route_every_seconds": 0, "conference_calls": True})
    with TestClient(create_app(on, clock)) as client:
        service(client).gateway = gateway
        twilio = TwilioDriver(client, "http://testserver", TOKEN)
        available(client, login(client, "dana.agent"))
        sid = twilio.start(DANA, ["2"])
        twilio.connect(sid)
    add, remove = gateway.ops
    assert (add[0], remove) == ("add", ("remove", f"call-{sid}", add[2], {}))
    assert state_of(engine, people["dana.agent"]) == ("available", None)
    assert entry_of(engine, sid).status == "abandoned"


def test_hold_and_resume(tx_client: TestClient, people: dict[str, int], engine: Engine,
                         clock: FrozenClock) -> None:
    call = Call(tx_client, people, clock)
    r = tx_client.post(f"/agent/calls/{call.sid}/hold", headers=call.noa)
    assert r.status_code == 200, r.text
    assert r.json()["held"] is True
    update = stand_in(tx_client).ops[-1]
    assert update[0] == "update" and update[2] == call.sid
    assert update[3]["hold"] is True
    assert update[3]["hold_url"] == f"http://testserver/twilio/conference-wait?c={call.sid}"
    # The caller hears the hold message in their language (Hebrew) while held.
    assert "נציג" in (ET.fromstring(call.wait_url()).findtext("Say") or "")
    assert tx_client.post(f"/agent/calls/{call.sid}/hold",
                          headers=call.noa).status_code == 409
    # A call on hold is still the agent's.
    assert state_of(engine, people["dana.agent"]) == ("on_call", call.sid)
    avi = login(tx_client, "avi")
    assert tx_client.post(f"/agent/calls/{call.sid}/resume",
                          headers=avi).status_code == 404
    r = tx_client.post(f"/agent/calls/{call.sid}/resume", headers=call.noa)
    assert r.json()["held"] is False
    assert stand_in(tx_client).ops[-1][3] == {"hold": False}
    assert [e["held"] for e in events(engine, people["dana.agent"], "hold")] == [True, False]
    # Twilio refusing: nothing changes, the console hears why.
    stand_in(tx_client).fail["update"] = TwilioRestException(400, "x", msg="refused")
    r = tx_client.post(f"/agent/calls/{call.sid}/hold", headers=call.noa)
    assert r.status_code == 502
    assert tx_client.post(f"/agent/calls/{call.sid}/resume",
                          headers=call.noa).status_code == 409  # not held


def test_cold_transfer_to_a_queue_keeps_the_first_place_and_pops_the_note(
        tx_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    call = Call(tx_client, people, clock)
    entered = entry_of(engine, call.sid).entered_at
    r = call.transfer(kind="queue", target="billing", note="wants a refund")
    assert r.status_code == 202, r.text
    assert r.json()["transfer"]["state"] == "ringing"
    root = call.follow_redirect()  # the stand-in moves the caller to the target queue
    assert root.findtext("Enqueue") == "billing"
    entry = entry_of(engine, call.sid)
    assert (entry.queue, entry.status, entry.entered_at) == ("billing", "waiting", entered)
    assert state_of(engine, people["dana.agent"]) == ("wrap_up", None)
    assert transfer_row(engine).state == "completed"
    # Avi (billing) takes the caller: the pop says who transferred it, from where, after
    # how long, and the note.
    avi = login(tx_client, "avi")
    available(tx_client, avi)
    assert state_of(engine, people["avi"]) == ("reserved", call.sid)
    call.twilio.calls[call.sid].wait_url = root.find("Enqueue").get("waitUrl")  # type: ignore[union-attr]
    call.twilio.calls[call.sid].enqueue_action = root.find("Enqueue").get("action")  # type: ignore[union-attr]
    call.twilio.connect(call.sid)
    pop = events(engine, people["avi"], "screenpop")[-1]
    assert pop["transfer"]["text"] == ("transferred by Noa Mizrahi from "
                                       "support-open-incidents after 4 min: wants a refund")
    # Noa wraps up her leg of the call.
    r = tx_client.post(f"/agent/calls/{call.sid}/wrapup", headers=call.noa, json={
        "topic": "billing", "outcome": "transferred", "resolved": False})
    assert r.status_code == 201, r.text


def test_warm_transfer_to_an_agent_consult_join_and_hand_over(
        tx_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    call = Call(tx_client, people, clock)
    avi = login(tx_client, "avi")
    available(tx_client, avi)
    targets = tx_client.get("/agent/transfer-targets", headers=call.noa).json()
    assert targets["agents"][0] == {"id": people["avi"], "name": "Avi Ben-David",
                                    "state": "available",
                                    "queues": ["support-open-incidents", "billing"],
                                    "available": True}
    assert targets["external"] == [{"name": "Partner bank", "number": PARTNER}]
    r = call.transfer(kind="agent", target=str(people["avi"]), mode="warm",
                      note="router keeps dropping")
    assert r.status_code == 202, r.text
    t = r.json()["transfer"]
    ops = stand_in(tx_client).ops
    hold = next(op for op in ops if op[0] == "update" and op[2] == call.sid)
    assert hold[3]["hold"] is True
    assert ("update", stand_in(tx_client).sid_of(f"call-{call.sid}"), call.noa_leg,
            {"end_conference_on_exit": False}) in ops
    leg, callback = call.new_leg()
    assert ops[-1][3]["to"] == "client:avi"
    assert state_of(engine, people["avi"]) == ("reserved", None)
    pop = events(engine, people["avi"], "screenpop")[-1]
    assert pop["call_sid"] == call.sid
    assert pop["transfer"]["text"] == ("transferred by Noa Mizrahi from "
                                       "support-open-incidents after 4 min: router keeps "
                                       "dropping")
    assert tx_client.get(f"/agent/calls/{call.sid}/context", headers=avi).status_code == 200
    assert tx_client.post(f"/agent/transfers/{t['id']}/join",
                          headers=call.noa).status_code == 409  # not answered yet
    call.leg(callback, leg, "in-progress")
    assert transfer_row(engine).state == "consulting"
    assert state_of(engine, people["avi"]) == ("on_call", None)
    assert events(engine, people["avi"], "call")[-1] == {"call_sid": call.sid,
                                                         "status": "answered"}
    # A console that reloads finds the hold and the open transfer in the context.
    ctx = tx_client.get(f"/agent/calls/{call.sid}/context", headers=call.noa).json()
    assert ctx["held"] is True and ctx["open_transfer"]["state"] == "consulting"
    board = tx_client.get("/agent/supervisor", headers=login(tx_client, "boss")).json()
    noa_row = next(a for a in board["agents"] if a["id"] == people["dana.agent"])
    assert noa_row["call"]["held"] is True
    assert noa_row["call"]["transfer"]["state"] == "consulting"
    r = tx_client.post(f"/agent/transfers/{t['id']}/join", headers=call.noa)
    assert r.json()["transfer"]["state"] == "joined"
    r = tx_client.post(f"/agent/transfers/{t['id']}/handover", headers=call.noa)
    assert r.json()["transfer"]["state"] == "completed", r.text
    assert ("remove", stand_in(tx_client).sid_of(f"call-{call.sid}"), call.noa_leg,
            {}) in stand_in(tx_client).ops
    assert state_of(engine, people["dana.agent"]) == ("wrap_up", None)
    assert state_of(engine, people["avi"]) == ("on_call", call.sid)
    assert events(engine, people["dana.agent"], "call")[-1]["status"] == "transferred"
    # Avi hangs up: the conference ends, the caller's Dial action ends the call.
    clock.advance(minutes=6)
    assert ET.fromstring(call.twilio.hang_up(call.sid)).find("Hangup") is not None
    assert state_of(engine, people["avi"]) == ("wrap_up", call.sid)
    for who in (call.noa, avi):
        r = tx_client.post(f"/agent/calls/{call.sid}/wrapup", headers=who, json={
            "topic": "internet fault", "outcome": "fixed", "resolved": True})
        assert r.status_code == 201, r.text
    # One call in Dana's history, with both legs and the transfer.
    with engine.connect() as conn:
        rows = conn.execute(select(interactions.c.agent).where(
            interactions.c.call_sid == call.sid)).scalars().all()
    assert rows == ["Noa Mizrahi 4 min → Avi Ben-David 6 min (warm transfer)"]


def test_a_busy_or_offline_agent_is_refused_up_front(
        tx_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    call = Call(tx_client, people, clock)
    before = list(stand_in(tx_client).ops)
    r = call.transfer(kind="agent", target=str(people["avi"]), mode="cold")
    assert (r.status_code, r.json()["detail"]) == (409, "Avi Ben-David is offline")
    assert transfer_row(engine) is None and stand_in(tx_client).ops == before
    assert call.transfer(kind="external", target="+15550001111").status_code == 404
    assert call.transfer(kind="queue", target="nowhere").status_code == 404


@pytest.mark.parametrize(("status", "reason", "avi_after"), [
    ("no-answer", "no-answer", "offline"),
    ("busy", "declined", "available"),
    ("hung-up", "hung-up", "available"),
])
def test_a_warm_transfer_that_fails_brings_the_caller_back_to_the_first_agent(
        tx_client: TestClient, people: dict[str, int], engine: Engine, clock: FrozenClock,
        status: str, reason: str, avi_after: str) -> None:
    call = Call(tx_client, people, clock)
    avi = login(tx_client, "avi")
    available(tx_client, avi)
    call.transfer(kind="agent", target=str(people["avi"]), mode="warm")
    leg, callback = call.new_leg()
    if status == "hung-up":  # answered, then hangs up during the consult
        call.leg(callback, leg, "in-progress")
        call.leg(callback, leg, "completed")
    else:
        call.leg(callback, leg, status)
    t = transfer_row(engine)
    assert (t.state, t.reason, t.caller_back_to) == ("failed", reason, "first-agent")
    assert state_of(engine, people["dana.agent"]) == ("on_call", call.sid)
    assert state_of(engine, people["avi"])[0] == avi_after
    conf = stand_in(tx_client).sid_of(f"call-{call.sid}")
    assert ("update", conf, call.sid, {"hold": False}) in stand_in(tx_client).ops
    assert ("update", conf, call.noa_leg,
            {"end_conference_on_exit": True}) in stand_in(tx_client).ops
    assert events(engine, people["dana.agent"], "transfer")[-1]["transfer"]["reason"] == reason
    assert events(engine, people["dana.agent"], "hold")[-1]["held"] is False


def test_a_cold_transfer_that_fails_brings_the_caller_to_the_head_of_the_queue(
        tx_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    call = Call(tx_client, people, clock)
    entered = entry_of(engine, call.sid).entered_at
    avi = login(tx_client, "avi")
    available(tx_client, avi)
    call.transfer(kind="agent", target=str(people["avi"]), mode="cold")
    conf = stand_in(tx_client).sid_of(f"call-{call.sid}")
    assert ("remove", conf, call.noa_leg, {}) in stand_in(tx_client).ops  # Noa left at once
    assert state_of(engine, people["dana.agent"]) == ("wrap_up", None)
    leg, callback = call.new_leg()
    call.leg(callback, leg, "no-answer")
    t = transfer_row(engine)
    assert (t.state, t.caller_back_to) == ("failed", "queue")
    root = call.follow_redirect()
    assert root.findtext("Say") == "הנציג אינו זמין כרגע. אתם הבאים בתור."
    assert root.findtext("Enqueue") == "support-open-incidents"
    entry = entry_of(engine, call.sid)
    assert (entry.status, entry.entered_at) == ("waiting", entered)


def test_an_outside_number_that_is_busy_returns_the_caller(
        tx_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    call = Call(tx_client, people, clock)
    r = call.transfer(kind="external", target="Partner bank", mode="warm")
    assert r.status_code == 202, r.text
    leg, callback = call.new_leg()
    assert stand_in(tx_client).ops[-1][3]["to"] == PARTNER
    call.leg(callback, leg, "busy")
    t = transfer_row(engine)
    assert (t.state, t.reason, t.caller_back_to) == ("failed", "busy", "first-agent")
    assert state_of(engine, people["dana.agent"]) == ("on_call", call.sid)


def test_twilio_refusing_the_transfer_leaves_the_caller_with_the_first_agent(
        tx_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    call = Call(tx_client, people, clock)
    avi = login(tx_client, "avi")
    available(tx_client, avi)
    stand_in(tx_client).fail["add"] = TwilioRestException(500, "x", msg="timeout")
    r = call.transfer(kind="agent", target=str(people["avi"]), mode="warm")
    assert r.status_code == 502
    assert "back with you" in r.json()["detail"]
    t = transfer_row(engine)
    assert (t.state, t.reason, t.caller_back_to) == ("failed", "rest-failed", "first-agent")
    assert state_of(engine, people["avi"]) == ("available", None)
    conf = stand_in(tx_client).sid_of(f"call-{call.sid}")
    assert ("update", conf, call.sid, {"hold": False}) in stand_in(tx_client).ops


def test_the_first_agent_leaving_during_the_consult_hands_the_caller_over(
        tx_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    call = Call(tx_client, people, clock)
    avi = login(tx_client, "avi")
    available(tx_client, avi)
    call.transfer(kind="agent", target=str(people["avi"]), mode="warm")
    leg, callback = call.new_leg()
    call.leg(callback, leg, "in-progress")
    call.leg(call.noa_callback, call.noa_leg, "completed")  # Noa's browser closed
    assert transfer_row(engine).state == "completed"
    assert state_of(engine, people["avi"]) == ("on_call", call.sid)
    assert state_of(engine, people["dana.agent"]) == ("wrap_up", None)
    conf = stand_in(tx_client).sid_of(f"call-{call.sid}")
    assert ("update", conf, call.sid, {"hold": False}) in stand_in(tx_client).ops


def test_a_transfer_never_confirmed_is_rolled_back_by_the_sweep(
        tx_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> None:
    call = Call(tx_client, people, clock)
    avi = login(tx_client, "avi")
    available(tx_client, avi)
    svc = service(tx_client)

    class Died(BaseException):
        pass

    def dies(*_args: Any) -> None:  # the process is gone before Twilio answers
        stand_in(tx_client).add_participant(
            f"call-{call.sid}", to="client:avi", from_="+97235550100",
            status_callback=f"http://testserver/twilio/transfer-leg?t={1 + 0}",
            timeout=20, end_conference_on_exit=False, label="x")
        raise Died

    monkeypatch.setattr(svc, "_ask_twilio", dies)
    with pytest.raises(Died):
        svc.transfer({"id": people["dana.agent"]}, call.sid, "agent", str(people["avi"]),
                     "warm", None)
    assert transfer_row(engine).state == "pending"
    assert state_of(engine, people["avi"])[0] == "reserved"
    clock.advance(seconds=31)
    dispatcher = Dispatcher(svc.agents, timers=False)
    asyncio.run(dispatcher.sweep())
    t = transfer_row(engine)
    assert (t.state, t.reason, t.caller_back_to) == ("failed", "interrupted", "first-agent")
    assert state_of(engine, people["avi"]) == ("available", None)
    conf = stand_in(tx_client).sid_of(f"call-{call.sid}")
    assert ("update", conf, call.sid, {"hold": False}) in stand_in(tx_client).ops
    # The leg Twilio did create answers later: it is removed, not joined.
    leg, _ = call.new_leg()
    call.leg(f"/twilio/transfer-leg?t={t.id}", leg, "in-progress")
    assert ("remove", conf, leg, {}) in stand_in(tx_client).ops
    assert transfer_row(engine).state == "failed"


def test_with_the_rest_api_the_caller_is_moved_by_calls_update(
        tx_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    rest = RestConferences()
    service(tx_client).gateway = rest
    call = Call(tx_client, people, clock)
    r = call.transfer(kind="queue", target="billing")
    assert r.status_code == 202, r.text
    t = r.json()["transfer"]
    assert rest.ops[-1] == ("redirect", "", call.sid,
                            {"url": f"http://testserver/twilio/transfer-enter?t={t['id']}"})
    # Nothing pending for the wait URL: Twilio runs the redirect itself.
    assert ET.fromstring(call.wait_url()).find("Redirect") is None
    root = ET.fromstring(call.twilio.post(f"/twilio/transfer-enter?t={t['id']}",
                                          call.twilio.params(call.twilio.calls[call.sid])))
    assert root.findtext("Enqueue") == "billing"


def test_a_transfer_to_a_closed_queue_offers_a_callback(
        tx_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> None:
    call = Call(tx_client, people, clock)
    svc = service(tx_client)
    monkeypatch.setattr(svc, "_queue_open", lambda queue, now: queue != "billing")
    targets = tx_client.get("/agent/transfer-targets", headers=call.noa).json()
    assert {q["name"]: q["open"] for q in targets["queues"]}["billing"] is False
    assert call.transfer(kind="queue", target="billing").status_code == 202
    root = call.follow_redirect()
    enqueue = root.find("Enqueue")
    assert enqueue is not None and enqueue.text == "billing"
    assert entry_of(engine, call.sid).status == "choosing"
    leg = call.twilio.calls[call.sid]
    leg.wait_url, leg.enqueue_action = enqueue.get("waitUrl"), enqueue.get("action")
    # The first wait round lets the caller go to the callback offer, not a closed message.
    assert ET.fromstring(call.twilio.wait(call.sid)).find("Leave") is not None
    offer = ET.fromstring(call.twilio.post(leg.enqueue_action or "", call.twilio.params(
        leg, QueueResult="leave", QueueSid="QU" + "1" * 32)))
    assert offer.find("Gather") is not None, ET.tostring(offer)
    assert transfer_row(engine).reason == "closed"


def test_supervisors_monitor_and_barge_as_conference_participants(
        tx_client: TestClient, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    call = Call(tx_client, people, clock)
    boss = login(tx_client, "boss")
    assert tx_client.post(f"/supervisor/calls/{call.sid}/monitor",
                          headers=call.noa).status_code == 403
    r = tx_client.post(f"/supervisor/calls/{call.sid}/monitor", headers=boss)
    assert r.status_code == 200, r.text
    add = stand_in(tx_client).ops[-1]
    assert (add[0], add[1], add[3]["to"], add[3]["muted"]) == (
        "add", f"call-{call.sid}", "client:boss", True)
    assert add[3]["end_conference_on_exit"] is False  # leaving never ends the call
    r = tx_client.post(f"/supervisor/calls/{call.sid}/barge", headers=boss)
    assert (r.json()["mode"], stand_in(tx_client).ops[-1][3]["muted"]) == ("barge", False)
    assert tx_client.post("/supervisor/calls/CAnope/monitor",
                          headers=boss).status_code == 404


def test_the_simulator_plays_a_call_on_a_conference(
        tx_client: TestClient, people: dict[str, int], engine: Engine) -> None:
    noa = login(tx_client, "dana.agent")
    available(tx_client, noa)
    call = PhoneCall(tx_client, "http://testserver", TOKEN, inputs=iter(["2"]),
                     agent_wait=30, dial_status="completed", talk_seconds=60,
                     sleep=lambda _s: None)
    transcript = call.run()
    # The agent's participant joining the conference (Twilio's participant-join of the
    # participant labelled "agent") is their answer; the conference's end hangs up.
    assert "answered" in transcript.kinds()
    assert transcript.kinds()[-1] == "hangup"
    assert state_of(engine, people["dana.agent"]) == ("wrap_up", call.call_sid)
