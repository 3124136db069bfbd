"""Operations: /readyz, /metrics (token, webhook histogram and failures, database gauges),
JSON log lines with the CallSid, and no customer number or name in any log line."""

from __future__ import annotations

import io
import json
import logging
import types
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, insert, text
from starlette.testclient import TestClient

from crm_sync.sync_models import OutboxSubscriber, SyncCursor
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.db import Database
from ivr.core.logging import JsonFormatter, install_filters
from ivr.core.settings import Settings
from ivr.observability.metrics import redactor
from tests.agent_fixtures import DANA, available, login
from tests.agent_flow import TwilioDriver
from tests.conftest import TOKEN
from tests.twilio import call_params, new_sid, play, signed_post

METRICS = "test-metrics-token"
AUTH = {"Authorization": f"Bearer {METRICS}"}


@pytest.fixture
def ops(settings: Settings, clock: FrozenClock) -> Iterator[TestClient]:
    """The app with a metrics token and no background routing sweep."""
    quiet = settings.model_copy(update={"route_every_seconds": 0,
                                        "metrics_token": SecretStr(METRICS)})
    with TestClient(create_app(quiet, clock)) as c:
        yield c


def scrape(client: TestClient) -> dict[str, float]:
    """The exposition as {'name{labels}': value}."""
    r = client.get("/metrics", headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


# -- /readyz


def test_ready_when_database_menus_and_migrations_are(client: TestClient) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert (body["database"], body["menus"], body["migrations"]) == ("ok", "ok", "ok")
    assert client.get("/healthz").json() == {"status": "ok"}


def _with_db(client: TestClient, url: str, settings: Settings) -> Database:
    db = Database(settings.model_copy(update={"database_url": url}))
    client.app.state.web.db = db  # type: ignore[attr-defined]
    return db


def test_not_ready_on_an_unmigrated_database(client: TestClient, settings: Settings,
                                             tmp_path: Path) -> None:
    live = client.app.state.web.db  # type: ignore[attr-defined]
    db = _with_db(client, f"sqlite:///{tmp_path / 'empty.db'}", settings)
    try:
        r = client.get("/readyz")
    finally:
        client.app.state.web.db = live  # type: ignore[attr-defined]
        db.close()
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not ready"
    assert body["database"] == "ok"
    assert body["migrations"] == "failed: not at head"


def test_not_ready_when_a_migration_is_missing(client: TestClient, engine: Engine) -> None:
    with engine.begin() as conn:
        head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        r = client.get("/readyz")
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    assert r.status_code == 503
    assert r.json()["migrations"] == "failed: not at head"


def test_not_ready_when_the_database_is_unreachable(client: TestClient, settings: Settings,
                                                   tmp_path: Path) -> None:
    live = client.app.state.web.db  # type: ignore[attr-defined]
    db = _with_db(client, f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}", settings)
    try:
        r = client.get("/readyz")
    finally:
        client.app.state.web.db = live  # type: ignore[attr-defined]
        db.close()
    assert r.status_code == 503
    assert r.json()["database"].startswith("failed: ")
    assert r.json()["migrations"] == "failed: database unreachable"


def test_not_ready_without_menus(client: TestClient) -> None:
    live = client.app.state.web.menus  # type: ignore[attr-defined]
    client.app.state.web.menus = types.SimpleNamespace(loaded=False)  # type: ignore[attr-defined]
    try:
        r = client.get("/readyz")
    finally:
        client.app.state.web.menus = live  # type: ignore[attr-defined]
    assert r.status_code == 503
    assert r.json()["menus"] == "failed: no menus loaded"
    assert r.json()["database"] == "ok"


# -- /metrics


def test_metrics_are_disabled_without_a_token(client: TestClient) -> None:
    r = client.get("/metrics", headers=AUTH)
    assert r.status_code == 401
    assert "IVR_METRICS_TOKEN" in r.json()["detail"]


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {METRICS}"},
    {"Authorization": f"Bearer {METRICS}x"}])
def test_metrics_refuse_a_missing_or_wrong_token(ops: TestClient,
                                                 headers: dict[str, str]) -> None:
    r = ops.get("/metrics", headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


def test_the_histogram_counts_webhooks_and_failures(ops: TestClient) -> None:
    before = scrape(ops)
    assert 'ivr_webhook_seconds_count{route="/twilio/voice"}' not in before
    sid = new_sid()
    r = signed_post(ops, "/twilio/voice", call_params(sid, "ringing"))
    assert "<Gather" in r.text
    # A step for a call nobody started: the safe route, counted as a failure.
    r = signed_post(ops, "/twilio/gather?s=1", call_params(new_sid(), Digits="1"))
    assert "<Enqueue" in r.text
    # A refused signature is not a handled webhook.
    assert ops.post("/twilio/voice", data=call_params(new_sid())).status_code == 403
    after = scrape(ops)
    assert after['ivr_webhook_seconds_count{route="/twilio/voice"}'] == 1
    assert after['ivr_webhook_seconds_count{route="/twilio/gather"}'] == 1
    assert after['ivr_webhook_seconds_sum{route="/twilio/voice"}'] > 0
    assert after['ivr_webhook_seconds_bucket{le="+Inf",route="/twilio/voice"}'] == 1
    assert after['ivr_webhook_failures_total{route="/twilio/gather"}'] == 1
    assert 'ivr_webhook_failures_total{route="/twilio/voice"}' not in after


def test_new_calls_are_counted_by_identification_outcome(ops: TestClient,
                                                       people: dict[str, int]) -> None:
    for caller in ("050-123-4567", "+972541112233", "anonymous"):
        sid = new_sid()
        signed_post(ops, "/twilio/voice", call_params(sid, "ringing", From=caller))
        signed_post(ops, "/twilio/voice", call_params(sid, "ringing", From=caller))  # retry
    after = scrape(ops)
    assert [after.get(f'ivr_caller_identifications_total{{outcome="{o}"}}')
            for o in ("known", "unknown", "withheld", "ambiguous")] == [1, 1, 1, None]


def test_gauges_show_waiting_calls_agents_outbox_and_sync_lag(
        ops: TestClient, people: dict[str, int], engine: Engine, clock: FrozenClock) -> None:
    now = clock.now()
    with engine.begin() as conn:
        conn.execute(insert(OutboxSubscriber), {"name": "billing-hook", "source": "billing",
                                                "url": "https://billing.example/hook",
                                                "active": True, "updated_at": now})
        conn.execute(insert(SyncCursor), {"source": "billing", "kind": "customers",
                                          "last_success_at": now - timedelta(minutes=5)})
    twilio = TwilioDriver(ops, "http://testserver", TOKEN)
    twilio.start(DANA, ["2"])  # waits in support-open-incidents; every agent is offline
    clock.advance(seconds=42)
    got = scrape(ops)
    assert got['ivr_queue_calls_waiting{queue="support-open-incidents"}'] == 1
    assert got['ivr_queue_longest_wait_seconds{queue="support-open-incidents"}'] == 42
    assert got['ivr_agents{state="offline"}'] == 3
    assert got['ivr_agents{state="available"}'] == 0
    # Dana's call is in her history, and the change is on its way to the subscriber.
    assert got['ivr_outbox_events{status="pending",subscriber="billing-hook"}'] == 1
    assert got['ivr_outbox_events{status="dead",subscriber="billing-hook"}'] == 0
    assert got['ivr_outbox_due_events{subscriber="billing-hook"}'] == 1
    assert got['ivr_outbox_oldest_undelivered_seconds{subscriber="billing-hook"}'] == 42
    assert got['ivr_crm_sync_lag_seconds{kind="customers",source="billing"}'] == 5 * 60 + 42

    available(ops, login(ops, "avi"))  # Avi serves the queue: the call is offered to him
    got = scrape(ops)
    assert got['ivr_agents{state="reserved"}'] == 1
    assert got['ivr_agents{state="offline"}'] == 2
    assert got['ivr_queue_calls_waiting{queue="support-open-incidents"}'] == 1  # offered


def test_each_app_has_its_own_registry(settings: Settings, clock: FrozenClock) -> None:
    one, two = create_app(settings, clock), create_app(settings, clock)
    assert one.state.web.metrics.registry is not two.state.web.metrics.registry


# -- logs


@pytest.fixture
def log_lines(caplog: pytest.LogCaptureFixture, settings: Settings) -> Iterator[io.StringIO]:
    """What ``IVR_LOG_FORMAT=json`` writes (the configured filters), at DEBUG."""
    caplog.set_level(logging.DEBUG)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    install_filters(handler, redactor(settings.default_region))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield out
    finally:
        root.removeHandler(handler)


def _records(out: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_lines_carry_the_call_sid(ops: TestClient, people: dict[str, int],
                                       log_lines: io.StringIO) -> None:
    logging.getLogger("ivr.test").info("outside any call")
    available(ops, login(ops, "avi"))
    sid = TwilioDriver(ops, "http://testserver", TOKEN).start(DANA, ["2"])
    stray = new_sid()
    signed_post(ops, "/twilio/gather?s=2", call_params(stray, Digits="1"))
    records = _records(log_lines)
    outside = next(r for r in records if r["message"] == "outside any call")
    assert "call_sid" not in outside
    assert set(outside) == {"time", "level", "logger", "message"}
    assert outside["time"].endswith("+00:00")
    # Logged by the routing pass the wait webhook asked for, run after its answer (on
    # PostgreSQL in a database thread): the record carries the offered call's CallSid.
    offered = next(r for r in records if r["message"].startswith("call offered to agent"))
    assert offered["call_sid"] == sid
    assert (offered["level"], offered["logger"]) == ("INFO", "ivr.agents.service")
    unknown = next(r for r in records if r["message"].startswith("webhook for an unknown"))
    assert unknown["call_sid"] == stray
    assert unknown["level"] == "WARNING"


def test_a_failure_logs_its_exception_and_call_sid(client: TestClient,
                                                   log_lines: io.StringIO) -> None:
    client.app.state.web.calls.start_call = None  # type: ignore[attr-defined]  # a bug inside
    sid = new_sid()
    r = signed_post(client, "/twilio/voice", call_params(sid, "ringing"))
    assert "<Enqueue" in r.text
    failed = next(r for r in _records(log_lines) if r["message"].startswith("webhook failed"))
    assert failed["call_sid"] == sid
    assert failed["level"] == "ERROR"
    assert "TypeError" in failed["exception"]


RAW_FORMS = ("+972501234567", "972501234567", "0501234567", "050-123-4567", "501234567",
             "050 123 4567", "%2B972501234567")


@pytest.mark.parametrize("raw", [*(f for f in RAW_FORMS if f != "501234567"),
                                 "050) 123-4567", "00972501234567"])
def test_phone_numbers_are_masked_in_any_format(raw: str) -> None:
    assert redactor()(f"caller={raw} ok") == "caller=+97250***4567 ok"


@pytest.mark.parametrize(("message", "expected"), [
    ("called 0501234567 2 times", "called +97250***4567 2 times"),
    ("took 2 0501234567", "took 2 +97250***4567"),
    ("+972501234567, +972527654321", "+97250***4567, +97252***4321"),
    ("from +15005550006 to 03-555-0100", "from +15005***0006 to +97235***0100"),
    ("odd +99912345678", "odd +99912***5678"),  # not a known country: masked all the same
])
def test_numbers_among_other_digits(message: str, expected: str) -> None:
    assert redactor()(message) == expected


@pytest.mark.parametrize("message", [
    "call=CA0501234567abcdef0123456789abcdef", "2026-11-23 10:00:00 took 1234567890 ms",
    "offer=12345678", "version 3f0501234567aa"])
def test_other_digits_are_left_alone(message: str) -> None:
    assert redactor()(message) == message


def test_customer_fields_in_urls_and_sql_parameters_are_dropped() -> None:
    redact = redactor()
    assert redact('"GET /crm/customers?phone=0501234567&name=%D7%93 HTTP/1.1" 200') == \
        '"GET /crm/customers?phone=***&name=*** HTTP/1.1" 200'
    assert redact("(x) boom\n[SQL: INSERT ...]\n[parameters: ('דנה כהן', 7)]\n(Background)") \
        == "(x) boom\n[SQL: INSERT ...]\n[parameters: hidden]\n(Background)"


def test_no_customer_number_or_name_in_the_logs_of_a_whole_call(
        ops: TestClient, people: dict[str, int], caplog: pytest.LogCaptureFixture,
        log_lines: io.StringIO) -> None:
    # A known customer (דנה כהן) calls, is routed to an agent, talks, hangs up, and the agent
    # wraps up; a second call plays the demo menu by the simulator; then webhooks that fail
    # inside (an unknown CallSid, a number in a local format).
    auth = login(ops, "dana.agent")
    available(ops, auth)
    twilio = TwilioDriver(ops, "http://testserver", TOKEN)
    sid = twilio.start(DANA, ["2"])
    twilio.connect(sid)
    twilio.agent_answers(sid)
    twilio.hang_up(sid)
    r = ops.post(f"/agent/calls/{sid}/wrapup", headers=auth, json={
        "topic": "internet", "outcome": "fixed", "resolved": True, "notes": "ok"})
    assert r.status_code == 201, r.text
    play(ops, ["2", "1"], from_number="050-123-4567", queue_result="hangup")
    signed_post(ops, "/twilio/gather?s=3", call_params(new_sid(), Digits="1",
                                                       From="0501234567"))
    signed_post(ops, "/twilio/status", call_params(new_sid(), "completed", From=DANA))
    signed_post(ops, "/twilio/fallback", call_params(new_sid(), ErrorCode="11200"))
    logging.getLogger("ivr.test").warning("a careless line about %s", "050-123-4567")

    written = log_lines.getvalue()
    assert len(written.splitlines()) >= 5, written  # the call did log
    assert "+97250***4567" in written  # the careless line, masked
    for raw in RAW_FORMS:
        assert raw not in written, raw
    # Names are never written by a log call (no filter could find them): not in what the
    # code logged either, before any redaction.
    for name in ("דנה", "כהן", "Noa Mizrahi", "Yossi"):
        assert name not in written
        assert name not in caplog.text


def test_configure_sets_up_the_root_handler_for_uvicorn_too(settings: Settings) -> None:
    from ivr.core.logging import call_sid, configure

    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    out = io.StringIO()
    try:
        configure(settings.model_copy(update={"log_format": "text"}), redactor(), out)
        token = call_sid.set("CA42")
        try:
            logging.getLogger("uvicorn.error").warning("from %s", "+972501234567")
            logging.getLogger("ivr.test").warning("noted call=CA42")
        finally:
            call_sid.reset(token)
        logging.getLogger("uvicorn.access").warning('"GET /readyz HTTP/1.1" 200')
        json_out = io.StringIO()
        configure(settings.model_copy(update={"log_format": "json"}), redactor(), json_out)
        logging.getLogger("ivr.test").error("json now")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(" WARNING uvicorn.error: from +97250***4567 call=CA42")
    assert lines[1].endswith(" WARNING ivr.test: noted call=CA42")  # not twice
    assert lines[2].endswith(' WARNING uvicorn.access: "GET /readyz HTTP/1.1" 200')
    record = json.loads(json_out.getvalue())
    assert (record["level"], record["logger"], record["message"]) == ("ERROR", "ivr.test",
                                                                      "json now")


def test_ended_calls_are_counted_by_menu_node_and_status(ops: TestClient) -> None:
    sid, other = new_sid(), new_sid()
    signed_post(ops, "/twilio/voice", call_params(sid, "ringing"))
    signed_post(ops, "/twilio/voice", call_params(other, "ringing"))
    for call, status in ((sid, "completed"), (other, "no-answer"), (sid, "completed")):
        r = signed_post(ops, "/twilio/status", call_params(call, status, SequenceNumber="3"))
        assert r.status_code == 200
    # Nobody started this one: not counted.
    signed_post(ops, "/twilio/status", call_params(new_sid(), "completed"))
    after = scrape(ops)
    ended = {k: v for k, v in after.items() if k.startswith("ivr_calls_ended_total{")}
    assert sum(ended.values()) == 2, ended
    assert any('status="completed"' in k and 'menu="main"' in k for k in ended), ended
    assert any('status="no-answer"' in k for k in ended), ended
