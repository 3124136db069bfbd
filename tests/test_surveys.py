"""The post-call survey through Twilio's signed webhooks: after the agent hangs up, a caller
still on the line answers by key or by voice; results stored with agent, queue, topic and
customer; a low score calls the follow-up port and alerts supervisors; the next pop shows
the rating; a satisfaction call runs the same survey from /twilio/survey-start."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from ivr.agents import repository as agents_repo
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from ivr.surveys import repository as survey_repo
from ivr.surveys.models import survey_answers, survey_responses
from ivr.surveys.ports import LowScore
from tests.agent_fixtures import DANA, YOSSI, available, login
from tests.agent_flow import TwilioDriver
from tests.conftest import TOKEN

SURVEYS = """\
low_score: 2
surveys:
  csat:
    queues: [support-open-incidents, billing]
    intro:
      he-IL: "שתי שאלות קצרות"
      en-US: "Two short questions"
    questions:
      - id: satisfaction
        text: {he-IL: "עד כמה הייתם מרוצים?", en-US: "How satisfied were you?"}
      - id: agent
        text: {he-IL: "עד כמה הנציג עזר?", en-US: "How helpful was the agent?"}
    thanks: {he-IL: "תודה רבה", en-US: "Thank you"}
"""


@pytest.fixture
def surveys_file(tmp_path: Path) -> Path:
    path = tmp_path / "surveys.yaml"
    path.write_text(SURVEYS, encoding="utf-8")
    return path


@pytest.fixture
def follow_ups() -> list[LowScore]:
    return []


@pytest.fixture
def sv_client(settings: Settings, clock: FrozenClock, surveys_file: Path,
              follow_ups: list[LowScore]) -> Iterator[TestClient]:
    quiet = settings.model_copy(update={"route_every_seconds": 0,
                                        "surveys_file": surveys_file})
    app = create_app(quiet, clock)
    with TestClient(app) as c:
        # The follow-ups feature's port, as ivr/services.py plugs it in: it gets the
        # answer's connection (it writes in that transaction).
        def record(conn: Any, low: LowScore) -> None:
            assert conn.in_transaction()
            follow_ups.append(low)
        app.state.web.surveys.open_follow_up = record
        yield c


@pytest.fixture
def twilio(sv_client: TestClient) -> TwilioDriver:
    return TwilioDriver(sv_client, "http://testserver", TOKEN)


def talked(twilio: TwilioDriver, client: TestClient, auth: dict[str, str], number: str,
           keys: list[str], *, call_status: str = "in-progress") -> tuple[str, ET.Element]:
    """A caller reaches the agent, they talk, the agent hangs up: the Dial action's TwiML."""
    available(client, auth)
    sid = twilio.start(number, keys)
    twilio.connect(sid)
    twilio.agent_answers(sid)
    xml = twilio.dial_ends(sid, talked=120, call_status=call_status)
    return sid, follow(twilio, sid, ET.fromstring(xml))


def follow(twilio: TwilioDriver, sid: str, root: ET.Element) -> ET.Element:
    """Twilio follows a <Redirect> (the agent-dial's way to the survey) as it says."""
    redirect = root.find("Redirect")
    if redirect is None:
        return root
    assert list(root) == [redirect]  # nothing is said before the survey's own request
    assert redirect.get("method") == "POST"
    return ET.fromstring(twilio.post(redirect.text or "", twilio.params(twilio.calls[sid])))


def answer(twilio: TwilioDriver, sid: str, root: ET.Element, **said: str) -> ET.Element:
    """The caller answers the <Gather> of ``root`` (Digits=..., SpeechResult=..., or
    nothing)."""
    gather = root.find("Gather")
    assert gather is not None, ET.tostring(root, encoding="unicode")
    leg = twilio.calls[sid]
    return ET.fromstring(twilio.post(gather.get("action") or "", twilio.params(leg, **said)))


def spoken(root: ET.Element) -> list[str]:
    return [s.text or "" for s in root.iter("Say")]


def response_of(engine: Engine, sid: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(survey_responses)
                            .where(survey_responses.c.call_sid == sid)).one_or_none()


def answers_of(engine: Engine, sid: str) -> list[tuple[str, int, str, str | None]]:
    with engine.connect() as conn:
        return [(r.question, r.score, r.via, r.speech) for r in conn.execute(
            select(survey_answers).join(survey_responses)
            .where(survey_responses.c.call_sid == sid).order_by(survey_answers.c.position))]


def events(engine: Engine, agent_id: int, kind: str) -> list[dict[str, Any]]:
    """What the agent's console stream (SSE) sends of ``kind``."""
    import json

    with engine.connect() as conn:
        return [json.loads(data) for _id, k, data in agents_repo.events_after(conn, agent_id, 0)
                if k == kind]


def test_a_caller_who_stays_on_answers_by_key_in_hebrew_and_it_is_stored(
        sv_client: TestClient, twilio: TwilioDriver, people: dict[str, int], engine: Engine,
        clock: FrozenClock, follow_ups: list[LowScore]) -> None:
    noa = login(sv_client, "dana.agent")
    sid, root = talked(twilio, sv_client, noa, DANA, ["2"])  # support-open-incidents
    gather = root.find("Gather")
    assert gather is not None
    assert (gather.get("input"), gather.get("numDigits"), gather.get("language")) == (
        "dtmf speech", "1", "he-IL")
    assert spoken(root) == ["שתי שאלות קצרות", "עד כמה הייתם מרוצים?"]
    assert root.find("Say").get("voice") == "Google.he-IL-Standard-A"  # type: ignore[union-attr]
    # The agent hung up: wrap-up, as without a survey.
    assert sv_client.get("/agent/me", headers=noa).json()["state"] == "wrap_up"
    assert response_of(engine, sid) is None  # nothing stored before an answer

    clock.advance(seconds=8)
    second = answer(twilio, sid, root, Digits="4")
    assert spoken(second) == ["עד כמה הנציג עזר?"]
    # The agent writes the wrap-up while the caller answers: the topic joins the result.
    r = sv_client.post(f"/agent/calls/{sid}/wrapup", headers=noa, json={
        "topic": "internet fault", "outcome": "solved", "resolved": True})
    assert r.status_code == 201, r.text
    end = answer(twilio, sid, second, Digits="5")
    assert spoken(end) == ["תודה רבה"] and end.find("Hangup") is not None

    row = response_of(engine, sid)
    assert (row.kind, row.survey, row.language, row.queue, row.customer_id, row.agent_id) == (
        "agent", "csat", "he-IL", "support-open-incidents", 1, people["dana.agent"])
    assert (row.score, row.low, row.status, row.topic) == (4, False, "completed",
                                                           "internet fault")
    assert answers_of(engine, sid) == [("satisfaction", 4, "dtmf", None),
                                       ("agent", 5, "dtmf", None)]
    assert follow_ups == []
    assert events(engine, people["boss"], "survey") == []


def test_spoken_answers_in_english_and_a_low_score_opens_a_follow_up_and_alerts(
        sv_client: TestClient, twilio: TwilioDriver, people: dict[str, int], engine: Engine,
        follow_ups: list[LowScore]) -> None:
    avi = login(sv_client, "avi")
    sid, root = talked(twilio, sv_client, avi, YOSSI, ["1"])  # English: billing
    assert root.find("Gather").get("language") == "en-US"  # type: ignore[union-attr]
    assert "very satisfied" in (root.find("Gather").get("hints") or "")  # type: ignore[union-attr]
    second = answer(twilio, sid, root, SpeechResult="Very dissatisfied.", Confidence="0.9")
    assert spoken(second) == ["How helpful was the agent?"]
    # The alert and the follow-up come with the low answer, before the survey ends.
    row = response_of(engine, sid)
    assert (row.score, row.low, row.status) == (1, True, "asked")
    assert len(follow_ups) == 1
    low = follow_ups[0]
    assert (low.response_id, low.call_sid, low.about_call_sid, low.customer_id, low.agent_id,
            low.queue, low.question, low.score, low.threshold, low.language,
            low.followup_id) == (row.id, sid, sid, 2, people["avi"], "billing",
                                 "satisfaction", 1, 2, "en-US", None)
    alert = events(engine, people["boss"], "survey")
    assert len(alert) == 1
    assert {k: alert[0][k] for k in ("kind", "score", "of", "agent", "queue", "customer",
                                     "call_sid")} == {
        "kind": "low", "score": 1, "of": 5, "agent": "Avi Ben-David", "queue": "billing",
        "customer": "Yossi Levi", "call_sid": sid}
    assert events(engine, people["dana.agent"], "survey") == []  # supervisors only

    # A second low answer neither opens another follow-up nor alerts again.
    end = answer(twilio, sid, second, SpeechResult="two")
    assert end.find("Hangup") is not None
    assert len(follow_ups) == 1 and len(events(engine, people["boss"], "survey")) == 1
    assert answers_of(engine, sid) == [("satisfaction", 1, "speech", "Very dissatisfied."),
                                       ("agent", 2, "speech", "two")]


def test_a_caller_who_hangs_up_mid_survey_keeps_the_answers_given(
        sv_client: TestClient, twilio: TwilioDriver, people: dict[str, int],
        engine: Engine) -> None:
    noa = login(sv_client, "dana.agent")
    sid, root = talked(twilio, sv_client, noa, DANA, ["2"])
    answer(twilio, sid, root, Digits="3")
    twilio.caller_hangs_up(sid)  # the final status callback: nothing more comes
    row = response_of(engine, sid)
    assert (row.score, row.status, row.completed_at) == (3, "asked", None)
    assert answers_of(engine, sid) == [("satisfaction", 3, "dtmf", None)]


def test_a_caller_who_hung_up_first_is_not_surveyed(
        sv_client: TestClient, twilio: TwilioDriver, people: dict[str, int],
        engine: Engine) -> None:
    noa = login(sv_client, "dana.agent")
    sid, root = talked(twilio, sv_client, noa, DANA, ["2"], call_status="completed")
    assert root.find("Gather") is None and root.find("Hangup") is not None
    assert response_of(engine, sid) is None


def test_an_invalid_key_is_asked_again_then_the_survey_ends(
        sv_client: TestClient, twilio: TwilioDriver, people: dict[str, int],
        engine: Engine) -> None:
    noa = login(sv_client, "dana.agent")
    sid, root = talked(twilio, sv_client, noa, DANA, ["2"])
    again = answer(twilio, sid, root, Digits="9")
    assert spoken(again) == ["לא הבנו את התשובה. הקישו או אמרו מספר בין 1 ל-5.",
                             "עד כמה הייתם מרוצים?"]
    assert parse_qs(urlsplit(again.find("Gather").get("action") or "").query)["t"] == ["1"]  # type: ignore[union-attr]
    second = answer(twilio, sid, again, Digits="2")  # understood on the second try
    assert spoken(second) == ["עד כמה הנציג עזר?"]
    silent = answer(twilio, sid, second)  # no answer: asked once more, no "not understood"
    assert spoken(silent) == ["עד כמה הנציג עזר?"]
    end = answer(twilio, sid, silent, SpeechResult="מה השעה")  # words that are no score
    assert end.find("Hangup") is not None
    row = response_of(engine, sid)
    assert (row.score, row.status) == (2, "ended")
    assert answers_of(engine, sid) == [("satisfaction", 2, "dtmf", None)]


def test_a_retried_answer_is_stored_once(
        sv_client: TestClient, twilio: TwilioDriver, people: dict[str, int], engine: Engine,
        follow_ups: list[LowScore]) -> None:
    noa = login(sv_client, "dana.agent")
    sid, root = talked(twilio, sv_client, noa, DANA, ["2"])
    first = answer(twilio, sid, root, Digits="1")
    retried = answer(twilio, sid, root, Digits="1")  # Twilio retries the same request
    assert ET.tostring(first) == ET.tostring(retried)
    assert answers_of(engine, sid) == [("satisfaction", 1, "dtmf", None)]
    assert len(follow_ups) == 1 and len(events(engine, people["boss"], "survey")) == 1


def test_a_queue_that_did_not_opt_in_hangs_up_as_before(
        sv_client: TestClient, twilio: TwilioDriver, people: dict[str, int],
        engine: Engine) -> None:
    noa = login(sv_client, "dana.agent")
    sid, root = talked(twilio, sv_client, noa, YOSSI, ["0"])  # English: operator
    assert twilio.calls[sid].queue == "operator"
    assert root.find("Gather") is None and root.find("Hangup") is not None
    assert response_of(engine, sid) is None


def test_the_next_screen_pop_shows_the_last_rating(
        sv_client: TestClient, twilio: TwilioDriver, people: dict[str, int],
        clock: FrozenClock) -> None:
    noa = login(sv_client, "dana.agent")
    sid, root = talked(twilio, sv_client, noa, DANA, ["2"])
    answer(twilio, sid, answer(twilio, sid, root, Digits="2"), Digits="4")
    r = sv_client.post(f"/agent/calls/{sid}/wrapup", headers=noa, json={
        "topic": "internet fault", "outcome": "technician booked", "resolved": False})
    assert r.status_code == 201, r.text

    clock.advance(minutes=30)
    available(sv_client, noa)
    again = twilio.start(DANA, ["2", "1"])
    twilio.connect(again)
    pop = sv_client.get(f"/agent/calls/{again}/context", headers=noa).json()
    assert pop["last_survey"] == {
        "score": 2, "of": 5, "low": True, "agent": "Noa Mizrahi",
        "queue": "support-open-incidents", "call_sid": sid,
        "at": pop["last_survey"]["at"]}
    assert pop["last_survey"]["at"].startswith("2026-11-23T08:")
    # A customer never surveyed has none.
    available(sv_client, login(sv_client, "avi"))
    other = twilio.start(YOSSI, ["1"])
    twilio.connect(other)
    avi_pop = sv_client.get(f"/agent/calls/{other}/context",
                            headers=login(sv_client, "boss")).json()
    assert avi_pop["last_survey"] is None


def test_a_satisfaction_call_runs_the_survey_from_the_entry_url(
        sv_client: TestClient, twilio: TwilioDriver, people: dict[str, int], engine: Engine,
        follow_ups: list[LowScore]) -> None:
    noa = login(sv_client, "dana.agent")
    rated, _ = talked(twilio, sv_client, noa, DANA, ["2"], call_status="completed")
    r = sv_client.post(f"/agent/calls/{rated}/wrapup", headers=noa, json={
        "topic": "internet fault", "outcome": "solved", "resolved": True})
    assert r.status_code == 201, r.text

    # The follow-ups feature dials the customer with calls.create(url=...); Twilio posts.
    out = twilio.calls[rated].__class__("CA" + "f" * 32, DANA)
    twilio.calls[out.sid] = out
    url = f"/twilio/survey-start?about={rated}&followup=77"
    params = twilio.params(out, Direction="outbound-api", AnsweredBy="human")
    first = ET.fromstring(twilio.post(url, params))
    assert spoken(first) == ["שתי שאלות קצרות", "עד כמה הייתם מרוצים?"]
    end = answer(twilio, out.sid, answer(twilio, out.sid, first, Digits="1"), Digits="3")
    assert end.find("Hangup") is not None
    row = response_of(engine, out.sid)
    assert (row.kind, row.about_call_sid, row.followup_id, row.agent_id, row.queue,
            row.customer_id, row.topic, row.score, row.status) == (
        "followup", rated, 77, people["dana.agent"], "support-open-incidents", 1,
        "internet fault", 1, "completed")
    assert [f.followup_id for f in follow_ups] == [77]
    with engine.connect() as conn:
        found = survey_repo.response_for_followup(conn, 77)
    assert found is not None and [a["score"] for a in found["answers"]] == [1, 3]

    # An answering machine is not surveyed; an unknown survey name says goodbye.
    machine = twilio.params(out, CallSid="CA" + "e" * 32, AnsweredBy="machine_start")
    assert ET.fromstring(twilio.post(url, machine)).find("Gather") is None
    assert response_of(engine, "CA" + "e" * 32) is None
    unknown = ET.fromstring(twilio.post("/twilio/survey-start?survey=nps&lang=en-US",
                                        twilio.params(out, CallSid="CA" + "d" * 32)))
    assert spoken(unknown) == ["Thank you. Goodbye."]


def test_an_unsigned_survey_request_is_refused(sv_client: TestClient) -> None:
    r = sv_client.post("/twilio/survey-answer?k=agent&s=csat&l=he-IL&a=1&q=0&t=0",
                       data={"CallSid": "CA1", "Digits": "1"})
    assert r.status_code == 403


def test_csat_rows_for_the_reports(
        sv_client: TestClient, twilio: TwilioDriver, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    noa = login(sv_client, "dana.agent")
    sid, root = talked(twilio, sv_client, noa, DANA, ["2"])
    answer(twilio, sid, root, Digits="5")
    # The wrap-up comes after the caller's answers: the reports read its topic all the same.
    r = sv_client.post(f"/agent/calls/{sid}/wrapup", headers=noa, json={
        "topic": "router", "outcome": "solved", "resolved": True})
    assert r.status_code == 201, r.text
    from datetime import timedelta

    with engine.connect() as conn:
        rows = survey_repo.csat_rows(conn, clock.now() - timedelta(hours=1),
                                     clock.now() + timedelta(hours=1))
    assert [(r["queue"], r["score"], r["topic"], r["customer_id"]) for r in rows] == [
        ("support-open-incidents", 5, "router", 1)]


def test_with_conference_calls_the_caller_s_conference_end_runs_the_survey(
        settings: Settings, clock: FrozenClock, surveys_file: Path, people: dict[str, int],
        engine: Engine) -> None:
    from tests.test_transfers import Call

    on = settings.model_copy(update={"route_every_seconds": 0, "conference_calls": True,
                                     "public_url": "http://testserver",
                                     "surveys_file": surveys_file})
    with TestClient(create_app(on, clock)) as client:
        call = Call(client, people, clock)  # Noa and Dana on the call's conference
        leg = call.twilio.calls[call.sid]
        assert "/twilio/conference-end" in (leg.dial_action or "")
        # Noa left: the caller's conference is over, the caller still on the line.
        root = follow(call.twilio, call.sid, ET.fromstring(call.twilio.post(
            leg.dial_action or "", call.twilio.params(leg, DialCallStatus="completed"))))
        assert spoken(root) == ["שתי שאלות קצרות", "עד כמה הייתם מרוצים?"]
        answer(call.twilio, call.sid, root, Digits="5")
    row = response_of(engine, call.sid)
    assert (row.agent_id, row.queue, row.score) == (people["dana.agent"],
                                                    "support-open-incidents", 5)


def test_on_a_plain_dial_the_agent_dial_action_runs_the_survey(
        settings: Settings, clock: FrozenClock, surveys_file: Path, people: dict[str, int],
        engine: Engine) -> None:
    """Pinned to the plain ``<Dial><Client>`` (``IVR_CONFERENCE_CALLS=false``, still
    supported): its own ``<Dial action>``, ``/twilio/agent-dial``, runs the survey."""
    plain = settings.model_copy(update={"route_every_seconds": 0, "conference_calls": False,
                                        "surveys_file": surveys_file})
    with TestClient(create_app(plain, clock)) as client:
        twilio = TwilioDriver(client, "http://testserver", TOKEN)
        noa = login(client, "dana.agent")
        sid, root = talked(twilio, client, noa, DANA, ["2"])
        assert (twilio.calls[sid].dial_action or "").startswith("/twilio/agent-dial?a=")
        assert spoken(root) == ["שתי שאלות קצרות", "עד כמה הייתם מרוצים?"]
        assert client.get("/agent/me", headers=noa).json()["state"] == "wrap_up"
        end = answer(twilio, sid, answer(twilio, sid, root, Digits="4"), Digits="5")
        assert spoken(end) == ["תודה רבה"] and end.find("Hangup") is not None
        # A caller who hung up first is not surveyed on this path either.
        assert client.post(f"/agent/calls/{sid}/wrapup", headers=noa, json={
            "topic": "t", "outcome": "o", "resolved": True}).status_code == 201
        gone, after = talked(twilio, client, noa, DANA, ["2"], call_status="completed")
        assert after.find("Gather") is None and after.find("Hangup") is not None
    row = response_of(engine, sid)
    assert (row.agent_id, row.queue, row.score, row.status) == (
        people["dana.agent"], "support-open-incidents", 4, "completed")
    assert response_of(engine, gone) is None


def test_a_survey_removed_from_the_file_meanwhile_says_goodbye(
        sv_client: TestClient, twilio: TwilioDriver, people: dict[str, int], engine: Engine,
        surveys_file: Path) -> None:
    noa = login(sv_client, "dana.agent")
    available(sv_client, noa)
    sid = twilio.start(DANA, ["2"])
    twilio.connect(sid)
    twilio.agent_answers(sid)
    leg = twilio.calls[sid]
    root = ET.fromstring(twilio.post(leg.dial_action or "", twilio.params(
        leg, DialCallStatus="completed")))
    assert root.find("Redirect") is not None
    # The admin renames the survey before Twilio follows the redirect: the new file is
    # live at once, and the caller hears a goodbye, not an error.
    surveys_file.write_text(SURVEYS.replace("  csat:", "  nps:"), encoding="utf-8")
    os.utime(surveys_file, ns=(5, 5))
    end = follow(twilio, sid, root)
    assert spoken(end) == ["תודה, להתראות."] and end.find("Hangup") is not None
    assert response_of(engine, sid) is None
