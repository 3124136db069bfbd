"""Callers recognised from the shared customer store when the call starts, and menus that
branch on who is calling."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, text
from starlette.testclient import TestClient

from crm_sync.models import Customer, CustomerPhone, Incident, Interaction
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from tests.twilio import call_params, new_sid, signed_post

ROUTING_MENU = """\
languages: [en-US]
default_language: en-US
start: route
fallback: general
nodes:
  route:
    type: branch
    branches:
      - when: {attribute: has_open_incident, equals: true}
        next: fault
      - when: {attribute: tier, in: [premium]}
        next: vip
    default: general
  fault: {type: queue, queue: support-repeat}
  vip: {type: queue, queue: vip}
  general: {type: queue, queue: general, on_failure: bye}
  bye: {type: hangup}
"""


@pytest.fixture
def store(database_url: str, clock: FrozenClock) -> Iterator[Any]:
    engine = create_engine(database_url)
    now = clock.now()

    def add(customer_id: int, phone: str, tier: str = "standard", *,
            open_incident: bool = False, called_hours_ago: float | None = None) -> None:
        with engine.begin() as conn:
            conn.execute(insert(Customer), {
                "id": customer_id, "account_number": f"A{customer_id}", "name": "x",
                "tier": tier, "status": "active", "preferred_language": "he-IL",
                "lineage": {}, "created_at": now, "updated_at": now})
            conn.execute(insert(CustomerPhone),
                         {"customer_id": customer_id, "e164": phone})
            if open_incident:
                conn.execute(insert(Incident), {
                    "customer_id": customer_id, "source": "branch-haifa",
                    "external_id": f"I{customer_id}", "status": "open", "category": "fault",
                    "opened_at": now - timedelta(hours=1),
                    "last_update_at": now - timedelta(hours=1)})
            if called_hours_ago is not None:
                conn.execute(insert(Interaction), {
                    "customer_id": customer_id, "channel": "call", "direction": "in",
                    "started_at": now - timedelta(hours=called_hours_ago)})

    yield add
    engine.dispose()


def _attributes(database_url: str, sid: str) -> dict[str, Any]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        raw = conn.execute(text("SELECT attributes FROM calls WHERE call_sid = :s"),
                           {"s": sid}).scalar()
    engine.dispose()
    assert raw is not None
    return raw if isinstance(raw, dict) else dict(json.loads(raw))


def test_known_caller_with_an_open_incident(client: TestClient, store: Any,
                                            database_url: str) -> None:
    store(1, "+972501234567", "premium", open_incident=True, called_hours_ago=1)
    sid = new_sid()
    signed_post(client, "/twilio/voice", call_params(sid, "ringing"))
    attrs = _attributes(database_url, sid)
    assert {k: attrs[k] for k in ("identified", "caller_outcome", "customer_id", "tier",
                                  "has_open_incident", "open_incidents",
                                  "hours_since_last_call", "preferred_language")} == {
        "identified": True, "caller_outcome": "known", "customer_id": 1, "tier": "premium",
        "has_open_incident": True, "open_incidents": 1, "hours_since_last_call": 1.0,
        "preferred_language": "he-IL"}


@pytest.mark.parametrize(("caller", "outcome"), [
    ("anonymous", "withheld"),
    ("+266696687", "withheld"),
    ("+972509999999", "unknown"),
    ("+97235551234", "ambiguous"),  # a family landline shared by two customers
])
def test_withheld_unknown_and_shared_numbers(client: TestClient, store: Any,
                                             database_url: str, caller: str,
                                             outcome: str) -> None:
    store(2, "+97235551234")
    store(3, "+97235551234")
    sid = new_sid()
    r = signed_post(client, "/twilio/voice", call_params(sid, "ringing", From=caller))
    assert r.status_code == 200
    attrs = _attributes(database_url, sid)
    assert (attrs["identified"], attrs["caller_outcome"]) == (False, outcome)


def _serving(menu: str, settings: Settings, clock: FrozenClock,
             folder: Path) -> Iterator[TestClient]:
    """The app with one menu file as its entry menu."""
    folder.mkdir()
    (folder / "main.yaml").write_text(menu, encoding="utf-8")
    with TestClient(create_app(settings.model_copy(update={"menus_dir": folder}), clock)) as c:
        yield c


@pytest.fixture
def routing_client(settings: Settings, clock: FrozenClock,
                   tmp_path: Path) -> Iterator[TestClient]:
    yield from _serving(ROUTING_MENU, settings, clock, tmp_path / "routing")


@pytest.mark.parametrize(("caller", "queue"), [
    ("+972501111111", "support-repeat"),  # open incident from another branch, an hour ago
    ("+972502222222", "vip"),             # premium tier
    ("+972503333333", "general"),         # standard tier
    ("+972509999999", "general"),         # unknown caller
])
def test_menu_branches_on_who_is_calling(routing_client: TestClient, store: Any,
                                         caller: str, queue: str) -> None:
    store(11, "+972501111111", open_incident=True)
    store(12, "+972502222222", "premium")
    store(13, "+972503333333")
    r = signed_post(routing_client, "/twilio/voice", call_params(new_sid(), "ringing",
                                                                 From=caller))
    assert f">{queue}</Enqueue>" in r.text


def test_known_caller_hears_their_language_without_being_asked(client: TestClient,
                                                               store: Any,
                                                               database_url: str) -> None:
    store(21, "+972504444444")  # preferred language he-IL
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE customers SET preferred_language = 'en-US' WHERE id = 21"))
    engine.dispose()
    r = signed_post(client, "/twilio/voice", call_params(new_sid(), "ringing",
                                                         From="+972504444444"))
    assert "For billing and payments, press 1." in r.text
    assert "לעברית הקישו 1" not in r.text
    # An unknown caller is asked.
    r = signed_post(client, "/twilio/voice", call_params(new_sid(), "ringing",
                                                         From="+972509999999"))
    assert "לעברית הקישו 1" in r.text


IDENTIFY_MENU = """\
languages: [en-US]
default_language: en-US
start: who
fallback: general
nodes:
  who:
    type: identify
    prompt: {say: {en-US: "Please type your account number, then the hash key."}}
    invalid_prompt: {say: {en-US: "We could not find that account."}}
    max_attempts: 2
    identified: route
    failed: general
  route:
    type: branch
    branches:
      - when: {attribute: tier, equals: premium}
        next: vip
    default: general
  vip: {type: queue, queue: vip}
  general: {type: queue, queue: general, on_failure: bye}
  bye: {type: hangup}
"""


@pytest.fixture
def identify_client(settings: Settings, clock: FrozenClock,
                    tmp_path: Path) -> Iterator[TestClient]:
    yield from _serving(IDENTIFY_MENU, settings, clock, tmp_path / "identify")


def test_shared_line_caller_types_a_wrong_then_the_right_account_number(
        identify_client: TestClient, store: Any, database_url: str) -> None:
    store(31, "+97235551234", "premium")   # account A31
    store(32, "+97235551234")              # same family landline
    sid = new_sid()
    r = signed_post(identify_client, "/twilio/voice",
                    call_params(sid, "ringing", From="+97235551234"))
    assert "Please type your account number" in r.text
    assert 'finishOnKey' not in r.text  # '#' ends the number (Twilio's default)
    r = signed_post(identify_client, "/twilio/gather?s=1",
                    call_params(sid, Digits="99999"))
    assert "We could not find that account." in r.text
    # Account numbers in the test store are "A<id>": typed on a keypad, digits only.
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE customers SET account_number = '310031' WHERE id = 31"))
    engine.dispose()
    r = signed_post(identify_client, "/twilio/gather?s=2", call_params(sid, Digits="310031#"))
    assert ">vip</Enqueue>" in r.text
    attrs = _attributes(database_url, sid)
    assert (attrs["identified"], attrs["caller_outcome"], attrs["customer_id"]) == (
        True, "account", 31)


def test_identify_gives_up_after_max_attempts(identify_client: TestClient,
                                              store: Any) -> None:
    sid = new_sid()
    signed_post(identify_client, "/twilio/voice",
                call_params(sid, "ringing", From="anonymous"))
    signed_post(identify_client, "/twilio/gather?s=1", call_params(sid, Digits="1234"))
    r = signed_post(identify_client, "/twilio/gather?s=2", call_params(sid))  # silence
    assert ">general</Enqueue>" in r.text


def test_a_caller_known_by_number_is_not_asked(identify_client: TestClient,
                                               store: Any) -> None:
    store(41, "+972505555555", "premium")
    r = signed_post(identify_client, "/twilio/voice",
                    call_params(new_sid(), "ringing", From="+972505555555"))
    assert "account number" not in r.text
    assert ">vip</Enqueue>" in r.text


def _import_people(database_url: str, tmp_path: Path, now: Any) -> None:
    from crm_sync import demo
    from crm_sync.identity import Rules
    from crm_sync.importer import import_file
    from crm_sync.mapping import default_mapping
    from ivr.core.db import make_engine

    blank = dict.fromkeys(demo.CUSTOMER_COLUMNS, "")
    people = tmp_path / "branch.csv"
    demo.write_csv(people, [
        {**blank, "id": "H1", "name": "Yossi Mizrahi", "phone": "04-822-3344",
         "account_number": "300001", "language": "he-IL"},
        {**blank, "id": "H2", "name": "Rivka Mizrahi", "phone": "048223344",
         "account_number": "300002", "language": "en-US"},
        {**blank, "id": "H3", "name": "Dana Cohen", "mobile": "050-123-4567",
         "language": "en-US"}], demo.CUSTOMER_COLUMNS)
    faults = tmp_path / "incidents.csv"
    demo.write_csv(faults, [{**dict.fromkeys(demo.INCIDENT_COLUMNS, ""), "id": "I1",
                             "customer_id": "H3", "category": "internet-down",
                             "status": "open", "opened_at": "2026-11-23T07:00:00+00:00"}],
                   demo.INCIDENT_COLUMNS)
    engine = make_engine(database_url, 2)
    for path, kind in ((people, "customers"), (faults, "incidents")):
        import_file(engine, path, default_mapping("branch-haifa", kind), Rules(), "IL",
                    lambda: now)
    engine.dispose()


def test_demo_menu_sends_a_repeat_caller_to_the_team_with_the_fault(
        client: TestClient, database_url: str, tmp_path: Path, clock: FrozenClock) -> None:
    from tests.twilio import play

    _import_people(database_url, tmp_path, clock.now())
    # Written 050-123-4567 in the branch's file; Twilio sends E.164.
    t = play(client, ["2"], from_number="+972501234567")
    assert t.says()[0].startswith("For billing and payments")  # English, without asking
    assert "We can see you have an open fault report" in " ".join(t.says())
    assert [h.text for h in t.heard if h.kind == "enqueue"] == ["support-open-incidents"]


def test_demo_menu_asks_a_shared_line_for_the_account_number(
        client: TestClient, database_url: str, tmp_path: Path, clock: FrozenClock) -> None:
    from tests.twilio import play

    _import_people(database_url, tmp_path, clock.now())
    t = play(client, ["999999", "300002", "0"], from_number="+97248223344")
    says = t.says()
    assert "enter your account number" in says[0]
    assert "לא מצאנו את החשבון." in says  # in the line's default language
    # Rivka's account: her language (English) from then on, then the agent queue.
    assert says[3].startswith("For billing and payments")  # prompt, not found, prompt
    assert "Connecting you to an agent." in says
    assert _attributes(database_url, t.call_sid)["caller_outcome"] == "account"


def test_a_call_through_the_ivr_is_in_the_next_calls_history(
        client: TestClient, database_url: str, tmp_path: Path, clock: FrozenClock) -> None:
    from tests.twilio import play

    _import_people(database_url, tmp_path, clock.now())
    first = play(client, ["2"], from_number="+972501234567")
    signed_post(client, "/twilio/status", call_params(first.call_sid, "completed",
                                                      CallDuration="95"))
    engine = create_engine(database_url)
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT channel, direction, call_sid, ended_at, ivr_path, queue FROM interactions "
            "WHERE source = 'ivr'")).one()
    engine.dispose()
    assert (row.channel, row.direction, row.call_sid) == ("call", "in", first.call_sid)
    assert row.ended_at is not None
    assert row.queue == "support-open-incidents"
    path = row.ivr_path if isinstance(row.ivr_path, list) else json.loads(row.ivr_path)
    assert any(p.get("node") == "main_menu" for p in path)

    clock.advance(minutes=55)
    second = new_sid()
    signed_post(client, "/twilio/voice", call_params(second, From="+972501234567"))
    assert _attributes(database_url, second)["hours_since_last_call"] == 0.92


def test_a_caller_identified_by_account_gets_the_call_in_their_history(
        client: TestClient, database_url: str, tmp_path: Path, clock: FrozenClock) -> None:
    from tests.twilio import play

    _import_people(database_url, tmp_path, clock.now())
    t = play(client, ["300002", "0"], from_number="+97248223344")
    engine = create_engine(database_url)
    with engine.connect() as conn:
        owner = conn.execute(text(
            "SELECT c.name FROM interactions i JOIN customers c ON c.id = i.customer_id "
            "WHERE i.call_sid = :s"), {"s": t.call_sid}).scalar_one()
    engine.dispose()
    assert owner == "Rivka Mizrahi"
