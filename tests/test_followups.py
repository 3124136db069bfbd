"""Follow-ups (issue 17.2) on SQLite and PostgreSQL: a closed incident schedules a
satisfaction call in the policy's window (next business day 10:00-18:00, never on a holiday,
a daily cap per customer, not if the customer called since), dialled once with machine
detection, a person redirected to the survey, retried with back-off, failed and escalated;
a lapsed claim taken over; the agent mode through the callback queue with its pop; a low
survey score opens one; the confirmation SMS is sent once.

Clock: Monday 2026-11-23 10:00 in Jerusalem (``OPEN_TIME``); followups.yaml's window is
10:00-18:00 Sunday to Thursday. Dana (customer 1, Hebrew) has the open incident H-77."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, insert, select, update
from starlette.testclient import TestClient

from callbacks.followups import cli as followups_cli
from callbacks.followups.models import followup_attempts, followup_events, followups, sms_messages
from callbacks.followups.policy import first_slot, load_policy
from callbacks.followups.service import FollowUpService
from callbacks.followups.sms import LocalSms
from callbacks.models import callback_requests
from crm_sync.models import incidents, interactions
from ivr.agents.models import agent_events, agents
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from ivr.surveys.ports import LowScore
from tests.agent_fixtures import DANA, YOSSI, available, login
from tests.agent_flow import TwilioDriver
from tests.callback_flow import CallbackDriver, Placed, RecordingDialer
from tests.conftest import TOKEN

ROOT = Path(__file__).resolve().parents[1]
ZONE = ZoneInfo("Asia/Jerusalem")
HOOK = "http://hooks.test/escalate"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A local time in November 2026 (Jerusalem)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=ZONE)


@pytest.fixture
def dialer() -> RecordingDialer:
    return RecordingDialer()


@pytest.fixture
def fu_file() -> Path:
    return ROOT / "followups.yaml"


@pytest.fixture
def fu_settings(settings: Settings, fu_file: Path) -> Settings:
    return settings.model_copy(update={
        "route_every_seconds": 0, "callbacks_file": ROOT / "callbacks.yaml",
        "followups_file": fu_file, "callback_caller_id": "+97235550100",
        "callback_escalation_url": HOOK,
        "callback_escalation_secret": SecretStr("s3cret")})


@pytest.fixture
def client(fu_settings: Settings, clock: FrozenClock,
           dialer: RecordingDialer) -> Iterator[TestClient]:
    with TestClient(create_app(fu_settings, clock, dialer=dialer)) as c:
        yield c


@pytest.fixture
def fu(client: TestClient) -> FollowUpService:
    service = client.app.state.web.services.followups  # type: ignore[attr-defined]
    assert isinstance(service, FollowUpService)
    return service


@pytest.fixture
def twilio(client: TestClient) -> TwilioDriver:
    return TwilioDriver(client, "http://testserver", TOKEN)


def close_incident(engine: Engine, when: datetime, customer_id: int = 1) -> int:
    """The CRM sync's way: the incident row says closed (the wrap-up's is tested below)."""
    with engine.begin() as conn:
        iid = conn.execute(select(incidents.c.id).where(
            incidents.c.customer_id == customer_id)).scalar_one()
        conn.execute(update(incidents).where(incidents.c.id == iid).values(
            status="closed", closed_at=when, last_update_at=when))
    return int(iid)


def rows(engine: Engine, table: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c.id)))


def answer(twilio: TwilioDriver, call: Placed, answered_by: str = "human") -> str:
    return twilio.post(call.url, {"CallSid": call.sid, "AccountSid": "AC" + "0" * 32,
                                  "CallStatus": "in-progress", "AnsweredBy": answered_by,
                                  "From": call.from_, "To": call.to,
                                  "Direction": "outbound-api"})


def status(twilio: TwilioDriver, call: Placed, value: str) -> str:
    return twilio.post(call.status_callback, {
        "CallSid": call.sid, "AccountSid": "AC" + "0" * 32, "CallStatus": value,
        "From": call.from_, "To": call.to, "Direction": "outbound-api"})


def scheduled(fu: FollowUpService, engine: Engine, clock: FrozenClock) -> Any:
    close_incident(engine, clock.now())
    fu.run_once()
    [f] = rows(engine, followups)
    return f


# ------------------------------------------------------------------ the window (pure)


POLICY = load_policy(ROOT / "followups.yaml")


def _slot(closed: datetime, taken: dict[date, int] | None = None,
          now: datetime | None = None) -> datetime:
    due, _ = first_slot(POLICY, closed, now or closed, lambda d: (taken or {}).get(d, 0))
    return due.astimezone(ZONE)


def test_the_next_business_day_at_the_window_s_opening() -> None:
    assert _slot(at(23, 15)) == at(24, 10)  # Monday afternoon -> Tuesday 10:00
    assert _slot(at(26, 12)) == at(29, 10)  # Thursday -> Sunday (no hours Fri/Sat)
    assert _slot(at(23, 23, 30)) == at(24, 10)  # late evening: still the next day


def test_never_on_a_holiday() -> None:
    il = holidays.country_holidays("IL", years=[2026, 2027])
    business = (6, 0, 1, 2, 3)  # Sunday .. Thursday
    day = next(d for d in sorted(il) if d.year >= 2026 and d.weekday() in business
               and (d - timedelta(days=1)).weekday() in business
               and (d - timedelta(days=1)) not in il)
    before = datetime(day.year, day.month, day.day, 12, tzinfo=ZONE) - timedelta(days=1)
    due = _slot(before)
    assert due.date() > day, (day, due)
    assert due.date() not in il


def test_the_daily_cap_moves_it_to_the_next_day_with_room() -> None:
    assert _slot(at(23, 15), {date(2026, 11, 24): 1}) == at(25, 10)
    assert _slot(at(23, 15), {date(2026, 11, 24): 1, date(2026, 11, 25): 1}) == at(26, 10)


def test_a_late_scan_is_due_now_inside_the_window() -> None:
    assert _slot(at(23, 15), now=at(24, 12, 30)) == at(24, 12, 30)


def test_a_policy_mistake_is_refused_at_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "followups.yaml"
    bad.write_text("window:\n  weekly: {sun: ['10:00-18:00']}\nsatisfaction:\n"
                   "  mode: robot\n", encoding="utf-8")
    from callbacks.policy import PolicyError
    with pytest.raises(PolicyError) as err:
        load_policy(bad)
    assert str(err.value).startswith(f"{bad}:4:3: satisfaction.mode: ")


# ------------------------------------------------------------------ scheduling


def test_a_closed_incident_is_scheduled_for_the_next_business_day_with_one_sms(
        fu: FollowUpService, engine: Engine, clock: FrozenClock,
        people: dict[str, int], dialer: RecordingDialer) -> None:
    f = scheduled(fu, engine, clock)
    assert (f.kind, f.mode, f.status, f.phone, f.language) == (
        "satisfaction", "survey", "pending", DANA, "he-IL")
    assert f.due_at == at(24, 10) and f.deadline_at == at(24, 18)
    assert dialer.placed == []  # not before its window
    fu.run_once()
    assert len(rows(engine, followups)) == 1  # one per incident
    assert isinstance(fu.sms, LocalSms)
    [sms] = fu.sms.sent
    assert sms["to"] == DANA and "10:00" in sms["body"] and "שלישי" in sms["body"]
    [row] = rows(engine, sms_messages)
    assert (row.purpose, row.ref_id, row.status) == ("followup", f.id, "sent")


def test_a_wrap_up_that_closes_the_incident_schedules_it(
        fu: FollowUpService, engine: Engine, clock: FrozenClock,
        people: dict[str, int]) -> None:
    from crm_sync.wrapup import CallFacts, WrapUp, record_wrap_up
    now = clock.now()
    with engine.begin() as conn:
        iid = conn.execute(select(incidents.c.id)).scalar_one()
        record_wrap_up(conn, CallFacts("CAwrap", 1, "Noa Mizrahi", "support", now, now, 5,
                                       60), WrapUp("internet", "fixed", True,
                                                   close_incidents=(iid,)), now)
    fu.run_once()
    [f] = rows(engine, followups)
    assert (f.incident_id, f.about_call_sid, f.due_at) == (iid, "CAwrap", at(24, 10))


def test_the_daily_cap_counts_the_customer_s_other_follow_ups(
        fu: FollowUpService, engine: Engine, clock: FrozenClock,
        people: dict[str, int]) -> None:
    now = clock.now()
    with engine.begin() as conn:
        conn.execute(insert(incidents), [{
            "customer_id": 1, "source": "crm", "external_id": f"X-{i}", "status": "closed",
            "category": "tv", "opened_at": now, "closed_at": now, "last_update_at": now}
            for i in range(2)])
    fu.run_once()
    assert [f.due_at for f in rows(engine, followups)] == [at(24, 10), at(25, 10)]


def test_not_if_the_customer_called_since(
        fu: FollowUpService, engine: Engine, clock: FrozenClock,
        people: dict[str, int], dialer: RecordingDialer) -> None:
    scheduled(fu, engine, clock)
    with engine.begin() as conn:
        conn.execute(insert(interactions).values(
            customer_id=1, source="ivr", external_id="CAin", channel="call",
            direction="in", started_at=clock.now() + timedelta(hours=2)))
    clock.set(at(24, 10))
    fu.run_once()
    [f] = rows(engine, followups)
    assert (f.status, f.last_outcome) == ("skipped", "called_since")
    assert dialer.placed == []


# ------------------------------------------------------------------ the survey call


def test_dialled_once_with_machine_detection_and_a_person_goes_to_the_survey(
        fu: FollowUpService, engine: Engine, clock: FrozenClock, twilio: TwilioDriver,
        people: dict[str, int], dialer: RecordingDialer) -> None:
    f = scheduled(fu, engine, clock)
    clock.set(at(24, 10))
    fu.run_once()
    fu.run_once()  # claimed once: never dialled twice
    [call] = dialer.placed
    assert (call.to, call.from_, call.machine_detection) == (DANA, "+97235550100", True)
    assert call.url == "/twilio/followup-answer?a=1"
    status(twilio, call, "ringing")
    xml = answer(twilio, call)
    redirect = ET.fromstring(xml).find("Redirect")
    assert redirect is not None and redirect.get("method") == "POST"
    assert redirect.text == (f"/twilio/survey-start?followup={f.id}&lang=he-IL&customer=1"
                             "&queue=support")
    assert rows(engine, followups)[0].status == "connected"
    status(twilio, call, "completed")
    done = rows(engine, followups)[0]
    assert (done.status, done.completed_at) == ("completed", at(24, 10))
    [attempt] = rows(engine, followup_attempts)
    assert (attempt.call_sid, attempt.answered_by, attempt.outcome) == (
        call.sid, "human", "completed")


def test_a_machine_hears_a_short_message_and_it_is_tried_again(
        fu: FollowUpService, engine: Engine, clock: FrozenClock, twilio: TwilioDriver,
        people: dict[str, int], dialer: RecordingDialer) -> None:
    scheduled(fu, engine, clock)
    clock.set(at(24, 10))
    fu.run_once()
    [call] = dialer.placed
    root = ET.fromstring(answer(twilio, call, "machine_end_beep"))
    assert [el.tag for el in root] == ["Say", "Hangup"]
    assert "Dana" not in ET.tostring(root, encoding="unicode")  # no personal data
    f = rows(engine, followups)[0]
    assert (f.status, f.attempts, f.last_outcome) == ("pending", 1, "machine")
    assert f.due_at == at(24, 10, 30)  # the first back-off: 30 minutes
    status(twilio, call, "completed")  # the machine's hang-up changes nothing
    assert rows(engine, followups)[0].status == "pending"


def test_not_reached_retries_with_back_off_then_fails_and_escalates(
        fu: FollowUpService, engine: Engine, clock: FrozenClock, twilio: TwilioDriver,
        people: dict[str, int], dialer: RecordingDialer) -> None:
    scheduled(fu, engine, clock)
    clock.set(at(24, 10))
    posted: list[httpx.Request] = []

    def take(r: httpx.Request) -> httpx.Response:
        posted.append(r)
        return httpx.Response(200)
    hook = httpx.Client(transport=httpx.MockTransport(take))
    fu.run_once(hook)
    status(twilio, dialer.placed[-1], "busy")
    assert rows(engine, followups)[0].due_at == at(24, 10, 30)
    clock.set(at(24, 10, 29))
    fu.run_once(hook)
    assert len(dialer.placed) == 1  # not before the back-off
    clock.set(at(24, 10, 30))
    fu.run_once(hook)
    status(twilio, dialer.placed[-1], "no-answer")
    assert rows(engine, followups)[0].due_at == at(24, 12, 30)  # then 2 hours
    clock.set(at(24, 12, 30))
    fu.run_once(hook)
    assert posted == []
    status(twilio, dialer.placed[-1], "failed")
    f = rows(engine, followups)[0]
    assert (f.status, f.attempts, len(dialer.placed)) == ("failed", 3, 3)
    assert [a.outcome for a in rows(engine, followup_attempts)] == [
        "busy", "no-answer", "failed"]
    with engine.connect() as conn:
        boss = conn.execute(select(agents.c.id).where(agents.c.role == "admin")).scalar_one()
        events = [e.payload for e in conn.execute(select(agent_events).where(
            agent_events.c.agent_id == boss, agent_events.c.kind == "followup"))]
    assert [e["kind"] for e in events] == ["failed"]
    fu.run_once(hook)
    fu.run_once(hook)
    [req] = posted  # once
    body = req.content
    assert json.loads(body)["kind"] == "followup.failed"
    assert req.headers["X-IVR-Signature"] == hmac.new(b"s3cret", body,
                                                      hashlib.sha256).hexdigest()
    assert req.headers["Idempotency-Key"].startswith("followup-event-")


def test_outside_the_window_a_due_follow_up_waits_for_the_next_opening(
        fu: FollowUpService, engine: Engine, clock: FrozenClock,
        people: dict[str, int], dialer: RecordingDialer) -> None:
    scheduled(fu, engine, clock)
    with engine.begin() as conn:  # due at 17:59, a retry that fell after the window
        conn.execute(update(followups).values(due_at=at(24, 17, 59)))
    clock.set(at(24, 18, 30))
    fu.run_once()
    assert dialer.placed == []
    assert rows(engine, followups)[0].due_at == at(25, 10)


# ------------------------------------------------------------------ leases


def test_a_claim_whose_process_died_is_taken_over_and_dialled_once(
        fu: FollowUpService, engine: Engine, clock: FrozenClock,
        people: dict[str, int], dialer: RecordingDialer) -> None:
    scheduled(fu, engine, clock)
    clock.set(at(24, 10))
    swept = fu.sweep()  # claimed, then the process "dies" before dialling
    assert len(swept.dials) == 1 and dialer.placed == []
    clock.advance(seconds=60)
    fu.run_once()
    assert rows(engine, followups)[0].status == "dialing"  # the lease (90 s) still runs
    clock.advance(seconds=31)
    fu.run_once()  # Twilio has no call to her: the claim is lost, made again, dialled
    assert [a.outcome for a in rows(engine, followup_attempts)] == ["lost", None]
    assert len(dialer.placed) == 1
    fu.run_once()
    assert len(dialer.placed) == 1
    f = rows(engine, followups)[0]
    assert (f.status, f.attempts) == ("dialing", 0)


def test_a_lapsed_claim_whose_call_twilio_has_is_not_dialled_again(
        fu: FollowUpService, engine: Engine, clock: FrozenClock,
        people: dict[str, int], dialer: RecordingDialer) -> None:
    scheduled(fu, engine, clock)
    clock.set(at(24, 10))
    swept = fu.sweep()
    # Twilio got the create; its answer was lost (the CallSid never stored).
    dialer.place(DANA, "+97235550100", "/twilio/followup-answer?a=1", "", True, 30)
    dialer.statuses[dialer.placed[0].sid] = "ringing"
    assert len(swept.dials) == 1
    clock.advance(seconds=91)
    fu.run_once()
    fu.run_once()
    assert len(dialer.placed) == 1
    [attempt] = rows(engine, followup_attempts)
    assert attempt.call_sid == dialer.placed[0].sid and attempt.ended_at is None
    assert rows(engine, followups)[0].status == "dialing"


# ------------------------------------------------------------------ agent mode


@pytest.fixture
def agent_mode(tmp_path: Path) -> Path:
    path = tmp_path / "followups.yaml"
    path.write_text((ROOT / "followups.yaml").read_text(encoding="utf-8").replace(
        "  mode: survey ", "  mode: agent  "), encoding="utf-8")
    return path


@pytest.mark.parametrize("fu_file", [pytest.param(None, id="agent-mode")])
def test_agent_mode_hands_it_to_the_queue_with_the_pop(
        fu_file: None, agent_mode: Path, fu_settings: Settings, clock: FrozenClock,
        engine: Engine, people: dict[str, int], dialer: RecordingDialer) -> None:
    configured = fu_settings.model_copy(update={"followups_file": agent_mode})
    with TestClient(create_app(configured, clock, dialer=dialer)) as client:
        service = client.app.state.web.services.followups  # type: ignore[attr-defined]
        assert service.policy.satisfaction.mode == "agent"
        close_incident(engine, clock.now())
        service.run_once()
        clock.set(at(24, 10))
        service.run_once()
        f = rows(engine, followups)[0]
        [req] = rows(engine, callback_requests)
        assert (f.status, f.callback_request_id) == ("queued", req.id)
        assert (req.kind, req.queue, req.phone, req.customer_id) == (
            "followup", "support", DANA, 1)
        with engine.begin() as conn:
            conn.execute(update(agents).values(queues=["support"]))
        noa = login(client, "dana.agent")
        available(client, noa)
        [call] = dialer.placed
        assert call.url.startswith("/twilio/callback-answer?c=")
        with engine.connect() as conn:
            pop = conn.execute(select(agent_events.c.payload).where(
                agent_events.c.kind == "screenpop")).scalar_one()
        assert pop["followup"]["text"] == "Follow-up on the internet closed yesterday"
        cb = CallbackDriver(TwilioDriver(client, "http://testserver", TOKEN))
        cb.answer(call)
        cb.agent_answers(call)
        cb.dial_ends(call)
        cb.status(call, "completed")
        service.run_once()
        done = rows(engine, followups)[0]
        assert done.status == "completed"


# ------------------------------------------------------------------ low CSAT


def test_a_low_score_opens_an_agent_follow_up_once(
        fu: FollowUpService, engine: Engine, clock: FrozenClock,
        people: dict[str, int]) -> None:
    low = LowScore(response_id=7, call_sid="CAsurvey", about_call_sid="CArated",
                   customer_id=2, agent_id=None, queue="billing", topic="invoice",
                   question="overall", score=2, threshold=2, language="en-US",
                   at=clock.now())
    for _ in range(2):  # Twilio's retry of the webhook runs it again
        with engine.begin() as conn:
            fu.open_from_low_score(conn, low)
    [f] = rows(engine, followups)
    assert (f.kind, f.mode, f.queue, f.phone, f.language, f.due_at) == (
        "low_csat", "agent", "billing", YOSSI, "en-US", clock.now())
    assert f.reason == "a call rated 2/5"


# ------------------------------------------------------------------ SMS, CLI


def test_an_sms_is_sent_at_most_once(
        fu: FollowUpService, engine: Engine, clock: FrozenClock,
        people: dict[str, int]) -> None:
    scheduled(fu, engine, clock)
    assert isinstance(fu.sms, LocalSms)
    fu.send_sms()
    assert len(fu.sms.sent) == 1
    with engine.begin() as conn:  # a sender that died while Twilio had it
        conn.execute(insert(sms_messages).values(
            purpose="promise", ref_id=99, phone=DANA, body="x", status="sending",
            created_at=clock.now(), lease_until=clock.now() + timedelta(minutes=5)))
    clock.advance(minutes=6)
    fu.send_sms()
    assert len(fu.sms.sent) == 1
    assert [r.status for r in rows(engine, sms_messages)] == ["sent", "unknown"]


def test_ivr_followups_list_and_stats(
        fu: FollowUpService, engine: Engine, clock: FrozenClock, fu_settings: Settings,
        people: dict[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    scheduled(fu, engine, clock)
    args = argparse.Namespace(followups_cmd="list", status="open", limit=10, json=True)
    assert followups_cli.run(fu_settings, args, clock) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["kind"], row["status"], row["phone"]) == ("satisfaction", "pending",
                                                          "+97250***4567")
    args = argparse.Namespace(followups_cmd="stats", day=date(2026, 11, 24), json=True)
    assert followups_cli.run(fu_settings, args, clock) == 0
    figures = json.loads(capsys.readouterr().out)
    assert (figures["followups"], figures["pending"], figures["open"]) == (1, 1, 1)
    with engine.connect() as conn:
        kinds = [e.kind for e in conn.execute(select(followup_events))]
    assert kinds == ["scheduled"]


# ------------------------------------------------------------------ the demo


def test_the_demo_command_plays_a_closed_incident_s_follow_up(
        fu_settings: Settings, clock: FrozenClock, engine: Engine,
        people: dict[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    from tests.live_server import ServerThread
    server = ServerThread(create_app(fu_settings, clock))
    server.start()
    try:
        args = argparse.Namespace(followups_cmd="demo", phone=DANA, incident=None,
                                  press="2", url=f"http://{server.host}:{server.port}")
        assert followups_cli.run(fu_settings, args, clock) == 0
    finally:
        server.stop()
    out = capsys.readouterr().out
    satisfaction, low = rows(engine, followups)
    assert (satisfaction.kind, satisfaction.status) == ("satisfaction", "completed")
    # She pressed 2: the survey's low score opened the next follow-up, for an agent.
    assert (low.kind, low.mode, low.status) == ("low_csat", "agent", "pending")
    assert f"follow-up #{satisfaction.id} (survey): completed" in out
    assert "2/5" in out, out


# ------------------------------------------------------------------ the console


def test_the_console_loads_followups_js_and_its_words_exist_in_both_languages() -> None:
    import re
    static = ROOT / "ivr" / "agents" / "static"
    page = (static / "console.html").read_text(encoding="utf-8")
    assert page.index("/agent/static/followups.js") < page.index("/agent/static/console.js")
    script = (static / "followups.js").read_text(encoding="utf-8")
    keys = set(re.findall(r'\btr\("([a-z_]+)"', script))
    assert {"pop_title", "kept", "summary", "failed", "warning_mine"} <= keys
    catalog = json.loads((ROOT / "ivr" / "i18n" / "catalogs" / "followups.json")
                         .read_text(encoding="utf-8"))
    for key in keys:
        entry = catalog[f"followups.ui.{key}"]
        assert entry["en"] and entry["he"], key
    # The events it listens to are ones console.js sends.
    console = (static / "console.js").read_text(encoding="utf-8")
    sent = set(re.findall(r'hook\("([a-z]+)"', console))
    for name in set(re.findall(r'addEventListener\("console:([a-z]+)"', script)):
        assert name in sent, name


def test_a_followups_yaml_with_a_mistake_stops_the_server_s_start(
        tmp_path: Path, settings: Settings) -> None:
    from ivr.cli import UserError, _check_callbacks_file
    bad = tmp_path / "followups.yaml"
    bad.write_text("window:\n  weekly: {sun: ['10:00-18:00']}\ndialing:\n  max_attempts: 0\n",
                   encoding="utf-8")
    with pytest.raises(UserError) as err:
        _check_callbacks_file(settings.model_copy(update={"followups_file": bad}))
    assert str(err.value) == (f"the server cannot start: {bad}:4:3: dialing.max_attempts: "
                              "Input should be greater than or equal to 1")


def test_ivr_worker_runs_the_follow_ups_job(
        fu_settings: Settings, clock: FrozenClock, engine: Engine, people: dict[str, int],
        dialer: RecordingDialer) -> None:
    from ivr.worker import Worker, build_jobs
    worker = Worker([], clock, sleep=lambda s: clock.advance(seconds=s))
    worker.jobs, closing = build_jobs(engine, fu_settings, clock, sleep=worker.sleep,
                                      sync=False, outbox=False, followups=True,
                                      dialer=dialer)
    try:
        assert [j.name for j in worker.jobs] == ["followups"]
        close_incident(engine, clock.now())
        worker.run(max_ticks=1)
        assert [f.status for f in rows(engine, followups)] == ["pending"]
        clock.set(at(24, 10))
        worker.run(max_ticks=1)
        assert len(dialer.placed) == 1
    finally:
        for resource in closing:
            resource.close()
