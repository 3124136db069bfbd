"""Recognition in the IVR (issue 17 section 3) through signed webhooks, on SQLite and
PostgreSQL: a customer on their birthday is greeted (the day in the centre's time zone),
every caller on a holiday eve hears the greeting in their language, and premium or
leaving-risk customers go first in line by the demo's priority rules."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, text
from starlette.testclient import TestClient

from crm_sync.models import Customer, CustomerPhone
from ivr.agents.models import queue_entries
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from tests.agent_flow import TwilioDriver
from tests.conftest import TOKEN
from tests.twilio import call_params, new_sid, signed_post

BIRTHDAY_GREETING_HE = "מזל טוב! כל צוות השירות מאחל לכם יום הולדת שמח."
EVE_EN = "On the eve of Yom Kippur, all of us at customer service wish you a happy holiday."
EVE_HE = "לקראת יום כיפור, כל צוות השירות מאחל לכם חג שמח."
MAIN_MENU_HE = "לבירורי חשבון ותשלומים הקישו 1."


def add_customer(engine: Engine, customer_id: int, phone: str, *, tier: str = "standard",
                 language: str = "he-IL", born: date | None = None,
                 status: str = "active") -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(insert(Customer), {
            "id": customer_id, "account_number": str(1000 + customer_id), "name": f"c{customer_id}",
            "tier": tier, "status": status, "preferred_language": language,
            "date_of_birth": born, "lineage": {}, "created_at": now, "updated_at": now})
        conn.execute(insert(CustomerPhone), {"customer_id": customer_id, "e164": phone})


def says(xml: str) -> list[str]:
    """Every text the caller hears, in order (a Gather's prompts included)."""
    return [(el.text or "").strip() for el in ET.fromstring(xml).iter("Say")]


def start(client: TestClient, caller: str) -> tuple[str, str]:
    sid = new_sid()
    r = signed_post(client, "/twilio/voice", call_params(sid, "ringing", From=caller))
    assert r.status_code == 200
    return sid, r.text


def attributes(engine: Engine, sid: str) -> dict[str, Any]:
    with engine.connect() as conn:
        raw = conn.execute(text("SELECT attributes FROM calls WHERE call_sid = :s"),
                           {"s": sid}).scalar()
    assert raw is not None
    return raw if isinstance(raw, dict) else dict(json.loads(raw))


# ---------------------------------------------------------------- the demo, centre open


def test_a_customer_on_their_birthday_is_greeted(client: TestClient, engine: Engine) -> None:
    # The clock: Monday 23 November 2026, 10:00 in Jerusalem.
    add_customer(engine, 1, "+972501234567", born=date(1985, 11, 23))
    add_customer(engine, 2, "+972527654321", born=date(1985, 11, 24))
    add_customer(engine, 3, "+972541112233")  # no date of birth on file
    sid, xml = start(client, "+972501234567")
    heard = says(xml)
    assert heard[0] == BIRTHDAY_GREETING_HE
    assert heard[1].startswith(MAIN_MENU_HE)
    attrs = attributes(engine, sid)
    assert attrs["birthday_today"] is True
    assert "date_of_birth" not in attrs  # the fact is kept with the call, not the date
    for caller, fact in (("+972527654321", False), ("+972541112233", None)):
        sid, xml = start(client, caller)
        assert says(xml)[0].startswith(MAIN_MENU_HE)
        assert attributes(engine, sid).get("birthday_today") is fact


@pytest.fixture
def eve_clock(clock: FrozenClock) -> FrozenClock:
    clock.set(datetime(2026, 9, 20, 7, 0, tzinfo=UTC))  # Sunday 10:00, the eve of Yom Kippur
    return clock


def test_on_a_holiday_eve_callers_are_greeted_in_their_language(
        eve_clock: FrozenClock, client: TestClient, engine: Engine) -> None:
    add_customer(engine, 1, "+972501234567", language="he-IL")
    add_customer(engine, 2, "+972527654321", language="en-US", born=date(1970, 9, 20))
    _sid, xml = start(client, "+972501234567")
    assert says(xml)[0] == EVE_HE
    # A birthday on the eve: both greetings, in English.
    _sid, xml = start(client, "+972527654321")
    assert says(xml)[:2] == [
        "Happy birthday! Everyone at customer service wishes you a wonderful day.", EVE_EN]
    # An unknown caller chooses English first: the holiday is named in English.
    sid, xml = start(client, "+972509999999")
    gather = ET.fromstring(xml).find("Gather")
    assert gather is not None
    r = signed_post(client, gather.get("action") or "",
                    call_params(sid, "in-progress", From="+972509999999", Digits="2"))
    assert says(r.text)[0] == EVE_EN
    assert attributes(engine, sid)["holiday_eve"] == {"en-US": "Yom Kippur",
                                                      "he-IL": "יום כיפור"}


def test_an_ordinary_day_has_no_holiday_facts(client: TestClient, engine: Engine) -> None:
    add_customer(engine, 1, "+972501234567")
    sid, _xml = start(client, "+972501234567")
    attrs = attributes(engine, sid)
    assert "holiday_eve" not in attrs and "holiday_today" not in attrs


# ---------------------------------------------------------------- first in line


def entry_priority(engine: Engine, sid: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(queue_entries.c.priority)
                                .where(queue_entries.c.call_sid == sid)).scalar_one())


def test_premium_and_leaving_risk_customers_go_first_in_line(
        client: TestClient, engine: Engine) -> None:
    add_customer(engine, 1, "+972501234567", tier="premium")
    add_customer(engine, 2, "+972527654321")
    add_customer(engine, 3, "+972541112233", status="leaving")  # the retention signals
    twilio = TwilioDriver(client, "http://testserver", TOKEN)
    premium = twilio.start("+972501234567", ["1"])  # billing
    standard = twilio.start("+972527654321", ["1"])
    leaving = twilio.start("+972541112233", ["1"])
    assert attributes(engine, leaving)["leaving_risk"] is True
    assert attributes(engine, standard)["leaving_risk"] is False
    assert (entry_priority(engine, premium), entry_priority(engine, standard),
            entry_priority(engine, leaving)) == (10, 0, 10)


# ---------------------------------------------------------------- the time zone's edge

EDGE_MENU = """\
languages: [en-US]
default_language: en-US
start: greet
fallback: bye
nodes:
  greet:
    type: branch
    branches:
      - when: {attribute: birthday_today, equals: true}
        next: hello
    default: q
  hello:
    type: message
    prompt: {say: {en-US: "Happy birthday!"}}
    next: q
  q: {type: queue, queue: general, on_failure: bye}
  bye: {type: hangup}
"""


@pytest.fixture
def edge_client(settings: Settings, clock: FrozenClock, tmp_path: Path,
                ) -> Iterator[TestClient]:
    # 23:30 UTC on Sunday 22 November is 01:30 on Monday the 23rd in Jerusalem.
    clock.set(datetime(2026, 11, 22, 23, 30, tzinfo=UTC))
    folder = tmp_path / "edge"
    folder.mkdir()
    (folder / "main.yaml").write_text(EDGE_MENU, encoding="utf-8")
    with TestClient(create_app(settings.model_copy(update={"menus_dir": folder}), clock)) as c:
        yield c


def test_a_birthday_at_23_30_utc_is_the_next_day_in_jerusalem(
        edge_client: TestClient, engine: Engine) -> None:
    add_customer(engine, 1, "+972501234567", language="en-US", born=date(1990, 11, 23))
    add_customer(engine, 2, "+972527654321", language="en-US", born=date(1990, 11, 22),
                 status="leaving")
    _sid, xml = start(edge_client, "+972501234567")
    assert says(xml) == ["Happy birthday!"]
    sid, xml = start(edge_client, "+972527654321")  # the UTC date, over in Jerusalem
    assert says(xml) == []
    # This menu never reads leaving_risk: the retention signals are not asked for it.
    assert "leaving_risk" not in attributes(engine, sid)


def test_a_customer_identified_by_account_number_is_recognised_too(
        client: TestClient, engine: Engine) -> None:
    """A shared family line: the birthday is known once the account number is typed."""
    add_customer(engine, 1, "+97235551234", born=date(1985, 11, 23))
    add_customer(engine, 2, "+972527654321")
    with engine.begin() as conn:
        conn.execute(insert(CustomerPhone), {"customer_id": 2, "e164": "+97235551234"})
    sid, xml = start(client, "+97235551234")
    gather = ET.fromstring(xml).find("Gather")
    assert gather is not None  # "enter your account number"
    r = signed_post(client, gather.get("action") or "",
                    call_params(sid, "in-progress", From="+97235551234", Digits="1001#"))
    assert says(r.text)[0] == BIRTHDAY_GREETING_HE
    attrs = attributes(engine, sid)
    assert attrs["birthday_today"] is True
    assert "date_of_birth" not in attrs
