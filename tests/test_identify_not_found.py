"""After the last wrong account number the caller hears that it was not found, and only then
what comes next (issue 14, item 8): in the pure engine, and through the webhooks with the
demo menus (a family landline: two customers on one number are asked for the account)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, insert
from starlette.testclient import TestClient

from crm_sync.models import Customer, CustomerPhone
from ivr.core.clock import FrozenClock
from ivr.menu.bundle import MenuBundle, assemble
from ivr.menu.engine import AccountEntered, Enqueue, Gather, Gathered, Say, Start, start_state, step
from ivr.menu.loader import load_menu_text
from tests.conftest import OPEN_TIME
from tests.twilio import call_params, new_sid, signed_post

MENU = """\
languages: [en-US]
default_language: en-US
start: who
fallback: general
nodes:
  who:
    type: identify
    prompt: {say: {en-US: "Your account number?"}}
    invalid_prompt: {say: {en-US: "We could not find that account."}}
    max_attempts: 3
    identified: known
    failed: general
  known: {type: queue, queue: known}
  general:
    type: queue
    queue: general
    prompt: {say: {en-US: "Connecting you to an agent."}}
    on_failure: bye
  bye: {type: hangup}
"""
NOT_FOUND = Say("We could not find that account.", "en-US", None)


def bundle() -> MenuBundle:
    lm, problems = load_menu_text(MENU, Path("main.yaml"))
    assert lm is not None, problems
    b, report = assemble([(Path("main.yaml"), lm, problems)], None, "main")
    assert b is not None, report.problems
    return b


def test_the_last_wrong_account_number_is_answered_before_moving_on() -> None:
    b = bundle()
    state = step(b, start_state(b, "CA1", "main"), Start(), OPEN_TIME).state
    for _ in range(2):  # attempts 1 and 2: "not found", then the question again
        again = step(b, state, AccountEntered("123456", None), OPEN_TIME)
        assert isinstance(again.actions[0], Gather)
        assert again.actions[0].prompts[0] == NOT_FOUND
        state = again.state
    last = step(b, state, AccountEntered("123456", None), OPEN_TIME)
    assert last.actions == (NOT_FOUND, Say("Connecting you to an agent.", "en-US", None),
                            Enqueue("general", "en-US"))
    events = [(p["event"], p.get("outcome"), p.get("reason")) for p in last.state.path[-3:]]
    assert events[:2] == [("identify", "not_found", None), ("failure", None, "not_identified")]


def test_nothing_typed_at_the_last_attempt_is_not_found_too() -> None:
    b = bundle()
    state = step(b, start_state(b, "CA1", "main"), Start(), OPEN_TIME).state
    for _ in range(2):
        state = step(b, state, Gathered(digits=None), OPEN_TIME).state
    last = step(b, state, Gathered(digits=None), OPEN_TIME)
    assert last.actions[0] == NOT_FOUND and last.actions[-1] == Enqueue("general", "en-US")


# ------------------------------------------------------------------ through the webhooks

FAMILY = "+97235557788"  # a landline two customers share: the demo menu asks who it is


@pytest.fixture
def family(database_url: str, clock: FrozenClock) -> Iterator[Engine]:
    engine = create_engine(database_url)
    now = clock.now()
    with engine.begin() as conn:
        for cid in (51, 52):
            conn.execute(insert(Customer), {
                "id": cid, "account_number": f"9000{cid}", "name": f"family {cid}",
                "tier": "standard", "status": "active", "preferred_language": None,
                "lineage": {}, "created_at": now, "updated_at": now})
            conn.execute(insert(CustomerPhone), {"customer_id": cid, "e164": FAMILY})
    yield engine
    engine.dispose()


def says(xml: str) -> list[str]:
    return [s.text or "" for s in ET.fromstring(xml).iter("Say")]


def test_demo_menu_says_not_found_before_the_language_menu(client: TestClient,
                                                           family: Engine) -> None:
    sid = new_sid()
    r = signed_post(client, "/twilio/voice", call_params(sid, "ringing", From=FAMILY,
                                                          Caller=FAMILY))
    assert "הקישו את מספר החשבון" in r.text
    for s in (1, 2):
        r = signed_post(client, f"/twilio/gather?s={s}",
                        call_params(sid, From=FAMILY, Caller=FAMILY, Digits="111111#"))
        assert says(r.text)[0].startswith("לא מצאנו את החשבון."), r.text
        assert "הקישו את מספר החשבון" in says(r.text)[1]
    r = signed_post(client, "/twilio/gather?s=3",
                    call_params(sid, From=FAMILY, Caller=FAMILY, Digits="111111#"))
    spoken = says(r.text)
    # The third miss: the caller hears it (not "try again"), then the language menu.
    assert spoken[0] == "לא מצאנו את החשבון.", r.text
    assert "לעברית הקישו 1" in spoken[1]
    root = ET.fromstring(r.text)
    assert [el.tag for el in root] == ["Say", "Gather"]
