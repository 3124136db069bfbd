"""Webhooks as Twilio drives them: signed form posts, TwiML followed verb by verb."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from ivr.core.clock import FrozenClock
from tests.twilio import call_params, new_sid, play, signed_post


def test_full_call_in_hebrew_reaches_billing(client: TestClient) -> None:
    t = play(client, ["1", "1"], queue_result="bridged")
    says = t.says()
    assert says[0].startswith("שלום, הגעתם לשירות הלקוחות")
    assert "לבירורי חשבון ותשלומים הקישו 1" in says[1]
    assert says[2] == "מעבירים אתכם למחלקת החשבונות."
    # Queued once; then only the queue's wait experience (its own verbs), and once the
    # caller is bridged the call's last verb is the hangup.
    kinds = t.kinds()
    assert kinds.count("enqueue") == 1 and kinds[-1] == "hangup"
    assert set(kinds[kinds.index("enqueue") + 1:-1]) <= {"wait", "say", "play", "pause"}
    enqueue = next(h for h in t.heard if h.kind == "enqueue")
    assert enqueue.text == "billing"
    assert all(h.attrs.get("language") == "he-IL" for h in t.heard if h.kind == "say"
               and "תודה" in h.text)


def test_full_call_in_english_by_speech_to_retention(client: TestClient) -> None:
    # ...then why (the leaving-reason step: 1, the price; tests/test_ivr_leaving_reason.py).
    t = play(client, ["2", "say:I want to cancel my service", "1"])
    says = t.says()
    assert says[1].startswith("For billing and payments, press 1.")
    assert "We are sorry to hear that." in says[2]
    assert says[3] == "Thank you. A retention specialist will be with you shortly."
    enqueue = next(h for h in t.heard if h.kind == "enqueue")
    assert enqueue.text == "retention"
    english = [h for h in t.heard if h.kind == "say" and h.text.startswith("For billing")]
    assert english[0].attrs == {"language": "en-US", "voice": "Polly.Joanna-Neural"}


def test_support_submenu_fault_came_back(client: TestClient) -> None:
    t = play(client, ["1", "2", "1"])
    assert "הקישו 1" in t.says()[2]
    assert next(h for h in t.heard if h.kind == "enqueue").text == "support-repeat"


def test_silence_three_times_goes_to_the_operator(client: TestClient) -> None:
    # choose_language falls back to main_menu, main_menu's silence limit to the operator.
    t = play(client, [None, None, None, None, None, None])
    assert next(h for h in t.heard if h.kind == "enqueue").text == "operator"
    assert t.says().count("לא שמענו בחירה.") == 4


def test_closed_hours_path(client: TestClient, clock: FrozenClock) -> None:
    clock.advance(hours=14)  # 00:00 in Jerusalem
    t = play(client, [])
    assert t.says()[0].startswith("המוקד סגור כעת")
    assert t.kinds()[-1] == "hangup"


def test_responses_are_twiml(client: TestClient) -> None:
    r = signed_post(client, "/twilio/voice", call_params(new_sid(), "ringing"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(r.content)
    gather = root.find("Gather")
    assert gather is not None
    assert gather.attrib["action"] == "/twilio/gather?s=1"
    assert gather.attrib["actionOnEmptyResult"] == "true"
    assert gather.attrib["numDigits"] == "1"


def test_forged_signature_is_refused(client: TestClient) -> None:
    params = call_params(new_sid(), "ringing")
    r = signed_post(client, "/twilio/voice", params, token="not-the-token")
    assert r.status_code == 403
    r = client.post("/twilio/voice", data=params)
    assert r.status_code == 403


def test_tampered_parameters_are_refused(client: TestClient) -> None:
    from twilio.request_validator import RequestValidator

    from tests.conftest import TOKEN

    params = call_params(new_sid(), "ringing")
    sig = RequestValidator(TOKEN).compute_signature("http://testserver/twilio/voice", params)
    params["From"] = "+972509999999"
    r = client.post("/twilio/voice", data=params, headers={"X-Twilio-Signature": sig})
    assert r.status_code == 403


def test_retried_webhook_gets_the_same_answer_and_no_double_effect(
        client: TestClient, database_url: str) -> None:
    sid = new_sid()
    first = signed_post(client, "/twilio/voice", call_params(sid, "ringing"))
    again = signed_post(client, "/twilio/voice", call_params(sid, "ringing"))
    assert again.text == first.text
    step1 = signed_post(client, "/twilio/gather?s=1", call_params(sid, Digits="2"))
    retry = signed_post(client, "/twilio/gather?s=1", call_params(sid, Digits="2"))
    assert retry.text == step1.text
    assert "/twilio/gather?s=2" in step1.text
    engine = create_engine(database_url)
    with engine.connect() as conn:
        step, language, path = conn.execute(text(
            "SELECT step, language, path FROM calls WHERE call_sid = :s"), {"s": sid}).one()
    engine.dispose()
    assert step == 2
    assert language == "en-US"
    inputs = [e for e in (path if isinstance(path, list) else __import__("json").loads(path))
              if e["event"] == "input"]
    assert len(inputs) == 1 and inputs[0]["digits"] == "2"


def test_state_survives_a_new_app_instance(settings, clock) -> None:  # type: ignore[no-untyped-def]
    from ivr.app import create_app

    sid = new_sid()
    with TestClient(create_app(settings, clock)) as first:
        signed_post(first, "/twilio/voice", call_params(sid, "ringing"))
        signed_post(first, "/twilio/gather?s=1", call_params(sid, Digits="2"))
    # A different process (here: a fresh app, fresh engine, fresh registry) answers next.
    with TestClient(create_app(settings, clock)) as second:
        r = signed_post(second, "/twilio/gather?s=2", call_params(sid, Digits="1"))
    assert "Transferring you to billing." in r.text
    assert "<Enqueue" in r.text


@pytest.mark.parametrize(("path", "params"), [
    ("/twilio/gather?s=1", {"Digits": "1"}),          # unknown CallSid mid-flow
    ("/twilio/gather", {"Digits": "1"}),              # no step in the URL
    ("/twilio/gather?s=1", {"Digits": "9" * 5000}),   # oversized digits, unknown call
])
def test_failures_still_answer_twiml(client: TestClient, path: str,
                                     params: dict[str, str]) -> None:
    r = signed_post(client, path, call_params(new_sid(), **params))
    assert r.status_code == 200
    root = ET.fromstring(r.content)
    assert [el.tag for el in root] == ["Say", "Say", "Enqueue"]
    assert root.find("Enqueue").text == "operator"  # type: ignore[union-attr]


def test_missing_form_fields_still_answer_twiml(client: TestClient) -> None:
    r = signed_post(client, "/twilio/voice", {"From": "+972501234567"})
    assert r.status_code == 200
    assert ET.fromstring(r.content).find("Enqueue").text == "operator"  # type: ignore[union-attr]


def test_garbage_digits_count_as_invalid(client: TestClient) -> None:
    sid = new_sid()
    signed_post(client, "/twilio/voice", call_params(sid, "ringing"))
    r = signed_post(client, "/twilio/gather?s=1", call_params(sid, Digits="x" * 10_000))
    assert r.status_code == 200
    assert "הבחירה אינה קיימת." in r.text


def test_exception_inside_answers_the_safe_route(client: TestClient,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from ivr.calls import service

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(service, "step", boom)
    r = signed_post(client, "/twilio/voice", call_params(new_sid(), "ringing"))
    assert r.status_code == 200
    assert ET.fromstring(r.content).find("Enqueue").text == "operator"  # type: ignore[union-attr]


def test_fallback_url_apologises_and_routes_to_the_operator(client: TestClient) -> None:
    r = signed_post(client, "/twilio/fallback", call_params(
        new_sid(), ErrorCode="11200", ErrorUrl="https://ivr.example.com/twilio/voice"))
    root = ET.fromstring(r.content)
    assert root[0].tag == "Say" and root[0].attrib["language"] == "he-IL"
    assert root.find("Enqueue").text == "operator"  # type: ignore[union-attr]


def test_status_callbacks_are_recorded_once(client: TestClient, database_url: str) -> None:
    sid = new_sid()
    signed_post(client, "/twilio/voice", call_params(sid, "ringing"))
    done = call_params(sid, "completed", CallDuration="37", SequenceNumber="3")
    assert signed_post(client, "/twilio/status", done).status_code == 200
    assert signed_post(client, "/twilio/status", done).status_code == 200
    engine = create_engine(database_url)
    with engine.connect() as conn:
        status, duration, ended = conn.execute(text(
            "SELECT status, duration_seconds, ended FROM calls WHERE call_sid=:s"),
            {"s": sid}).one()
        events = conn.execute(text(
            "SELECT count(*) FROM call_status_events WHERE call_sid=:s"), {"s": sid}).scalar()
    engine.dispose()
    assert (status, duration, bool(ended), events) == ("completed", 37, True, 1)


def test_transfer_that_fails_goes_to_its_fallback(client: TestClient, menus_dir) -> None:  # type: ignore[no-untyped-def]
    menu = (menus_dir / "main.yaml").read_text(encoding="utf-8")
    menu = menu.replace("""  operator:
    type: queue
    queue: operator""", """  operator:
    type: transfer
    number: "+97235551234"
    on_failure: operator_queue
  operator_queue:
    type: queue
    queue: operator""")
    (menus_dir / "main.yaml").write_text(menu, encoding="utf-8")
    r = client.post("/admin/menus/reload", headers={"Authorization": "Bearer test-admin-token"})
    assert r.json()["report"]["refused"] == {}
    t = play(client, ["1", "0"], dial_status="busy")
    dial = next(h for h in t.heard if h.kind == "dial")
    assert dial.text == "number:+97235551234"
    assert next(h for h in t.heard if h.kind == "enqueue").text == "operator"


def test_saying_english_at_the_hebrew_prompt_switches_language(client: TestClient) -> None:
    t = play(client, ["say:English please", "0"])
    assert t.says()[1].startswith("For billing and payments, press 1.")
    assert next(h for h in t.heard if h.kind == "enqueue").text == "operator"


def test_longest_phrase_wins_go_back_to_the_main_menu(client: TestClient) -> None:
    # Option 1 of the support menu listens for "is back"; "main menu" is longer and wins.
    t = play(client, ["2", "2", "say:go back to the main menu please", "3", "1"])
    assert t.says()[3].startswith("For billing and payments, press 1.")
    assert next(h for h in t.heard if h.kind == "enqueue").text == "retention"


def test_a_retried_voice_webhook_and_status_callback_are_recognised(
        client: TestClient) -> None:
    """On both databases (PostgreSQL's driver reports no row count for ON CONFLICT DO
    NOTHING): the second /voice of a CallSid is a replay, and a repeated final status is
    recorded once."""
    service = client.app.state.web.calls  # type: ignore[attr-defined]
    sid = new_sid()
    params = call_params(sid, "ringing")
    first = service.start_call(params, "fp")
    again = service.start_call(params, "fp")
    assert (first.replayed, again.replayed) == (False, True)
    assert again.twiml == first.twiml
    done = call_params(sid, "completed", CallDuration="30", SequenceNumber="3")
    for _ in range(2):
        assert signed_post(client, "/twilio/status", done).status_code == 200
    engine = create_engine(str(client.app.state.web.settings.database_url))  # type: ignore[attr-defined]
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM call_status_events "
                                  "WHERE call_sid = :s"), {"s": sid}).scalar()
    engine.dispose()
    assert count == 1
