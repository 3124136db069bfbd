"""Recognition in the IVR (issue 17 section 3), the pure parts: birthdays in the centre's
time zone, holidays named in the caller's language, the engine speaking and branching on
them, and ``ivr menus check`` knowing the new attributes. The calls themselves (signed
webhooks, both databases) are in tests/test_recognition_calls.py."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from ivr.menu.bundle import MenuBundle, assemble, load_directory
from ivr.menu.engine import Gather, Say, Start, condition_holds, fill, start_state, step
from ivr.menu.loader import load_menu_text
from ivr.menu.model import Condition
from ivr.menu.recognition import (
    birthday_facts,
    holiday_language,
    holiday_names,
    is_birthday,
    local_today,
    recognition_facts,
)

DEMO_MENUS = Path(__file__).resolve().parent.parent / "menus"
JERUSALEM = "Asia/Jerusalem"
LANGS = ("en-US", "he-IL")


@pytest.mark.parametrize(("born", "today", "expected"), [
    (date(1985, 12, 5), date(2026, 12, 5), True),
    (date(1985, 12, 5), date(2026, 12, 4), False),
    (date(1985, 12, 5), date(2026, 11, 5), False),  # the day alone is not enough
    (date(1984, 2, 29), date(2027, 2, 28), True),  # no 29 February in 2027
    (date(1984, 2, 29), date(2027, 3, 1), False),
    (date(1984, 2, 29), date(2028, 2, 28), False),  # 2028 has its own 29th
    (date(1984, 2, 29), date(2028, 2, 29), True),
    (date(1984, 2, 29), date(2100, 2, 28), True),  # 2100 is no leap year
    (date(1990, 2, 28), date(2028, 2, 29), False),
])
def test_is_birthday(born: date, today: date, expected: bool) -> None:
    assert is_birthday(born, today) is expected


@pytest.mark.parametrize(("now", "zone", "today"), [
    # 23:30 UTC on the 4th is 01:30 on the 5th in Jerusalem (winter, UTC+2).
    (datetime(2026, 12, 4, 23, 30, tzinfo=UTC), JERUSALEM, date(2026, 12, 5)),
    (datetime(2026, 12, 4, 21, 59, tzinfo=UTC), JERUSALEM, date(2026, 12, 4)),
    (datetime(2026, 12, 4, 22, 0, tzinfo=UTC), JERUSALEM, date(2026, 12, 5)),
    # Summer time (UTC+3): 21:00 UTC is already tomorrow.
    (datetime(2026, 7, 1, 21, 0, tzinfo=UTC), JERUSALEM, date(2026, 7, 2)),
    (datetime(2026, 12, 4, 23, 30, tzinfo=UTC), "UTC", date(2026, 12, 4)),
])
def test_local_today_is_the_centres_date(now: datetime, zone: str, today: date) -> None:
    assert local_today(now, zone) == today


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        local_today(datetime(2026, 12, 4, 23, 30), JERUSALEM)  # noqa: DTZ001


def test_birthday_at_23_30_utc_is_the_next_day_in_jerusalem() -> None:
    at = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)
    assert recognition_facts(at, JERUSALEM, "IL", LANGS, date_of_birth="1985-12-05") == {
        "birthday_today": True}
    assert recognition_facts(at, JERUSALEM, "IL", LANGS, date_of_birth="1985-12-04") == {
        "birthday_today": False}
    # The same instant in a centre on UTC is still the 4th.
    assert recognition_facts(at, "UTC", "IL", LANGS, date_of_birth=date(1985, 12, 4)) == {
        "birthday_today": True}


@pytest.mark.parametrize("born", [None, ""])
def test_no_date_of_birth_no_birthday_fact(born: str | None) -> None:
    assert birthday_facts(born, date(2026, 12, 5)) == {}


@pytest.mark.parametrize(("tag", "expected"), [
    ("en-US", "en_US"),
    ("he-IL", "he"),
    ("en-GB", "en_US"),  # the calendar's only English
    ("uk-UA", "uk"),
    ("fr-FR", None),  # no French names: the calendar's own language is used
])
def test_holiday_language(tag: str, expected: str | None) -> None:
    assert holiday_language(tag, ("en_US", "he", "th", "uk")) == expected


def test_holiday_eve_and_holiday_named_in_each_language() -> None:
    # Sunday 20 September 2026 is the eve of Yom Kippur; Monday the 21st is the day.
    eve = datetime(2026, 9, 20, 7, 0, tzinfo=UTC)
    assert recognition_facts(eve, JERUSALEM, "IL", LANGS) == {
        "holiday_eve": {"en-US": "Yom Kippur", "he-IL": "יום כיפור"}}
    day = datetime(2026, 9, 21, 7, 0, tzinfo=UTC)
    assert recognition_facts(day, JERUSALEM, "IL", LANGS) == {
        "holiday_today": {"en-US": "Yom Kippur", "he-IL": "יום כיפור"}}
    # 1 April 2026 is the eve of Pesach; an ordinary day has neither fact.
    assert recognition_facts(datetime(2026, 4, 1, 9, tzinfo=UTC), JERUSALEM, "IL", LANGS) == {
        "holiday_eve": {"en-US": "Pesach", "he-IL": "פסח"}}
    assert recognition_facts(datetime(2026, 11, 23, 8, tzinfo=UTC), JERUSALEM, "IL",
                             LANGS) == {}


def test_the_holiday_starts_at_midnight_in_the_centres_zone() -> None:
    # 21:30 UTC on 20 September is 00:30 on Yom Kippur in Jerusalem.
    at = datetime(2026, 9, 20, 21, 30, tzinfo=UTC)
    assert recognition_facts(at, JERUSALEM, "IL", ("en-US",)) == {
        "holiday_today": {"en-US": "Yom Kippur"}}
    assert recognition_facts(at, "UTC", "IL", ("en-US",)) == {
        "holiday_eve": {"en-US": "Yom Kippur"}}


def test_a_language_the_calendar_does_not_speak_gets_its_own_names() -> None:
    assert holiday_names(date(2026, 9, 21), "IL", ("fr-FR",)) == {"fr-FR": "יום כיפור"}


def test_a_country_without_a_calendar_has_no_holidays() -> None:
    assert holiday_names(date(2026, 9, 21), "XX", LANGS) == {}


# ---------------------------------------------------------------- the engine


def test_a_placeholder_given_per_language_is_spoken_in_the_prompts_language() -> None:
    attrs: dict[str, Any] = {"holiday_eve": {"en-US": "Pesach", "he-IL": "פסח"}}
    assert fill("Happy {holiday_eve}!", attrs, "UTC", "en-US") == "Happy Pesach!"
    assert fill("חג {holiday_eve} שמח", attrs, "UTC", "he-IL") == "חג פסח שמח"
    assert fill("Happy {holiday_eve}!", attrs, "UTC", "ar-IL") == "Happy !"
    assert fill("Happy {holiday_eve}!", attrs, "UTC") == "Happy !"


@pytest.mark.parametrize(("condition", "holds"), [
    ({"exists": True}, True),
    ({"equals": "Pesach"}, True),  # any language's name
    ({"equals": "פסח"}, True),
    ({"equals": "Shavuot"}, False),
    ({"in": ["Shavuot", "פסח"]}, True),
    ({"in": ["Shavuot"]}, False),
])
def test_a_condition_on_a_holiday_matches_its_name_in_any_language(
        condition: dict[str, Any], holds: bool) -> None:
    cond = Condition.model_validate({"attribute": "holiday_today", **condition})
    attrs = {"holiday_today": {"en-US": "Pesach", "he-IL": "פסח"}}
    assert condition_holds(cond, attrs) is holds


@pytest.fixture(scope="module")
def demo() -> MenuBundle:
    bundle, report = load_directory(DEMO_MENUS, "main")
    assert bundle is not None, report.problems
    return bundle


def _greeting(demo: MenuBundle, language: str, **facts: Any) -> tuple[str, ...]:
    """What a known caller hears before the main menu's choices (the demo, centre open)."""
    attrs = {"identified": True, "caller_outcome": "known", "preferred_language": language,
             "tier": "standard", **facts}
    state = start_state(demo, "CA1", "main", attrs)
    result = step(demo, state, Start(), datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    *before, gather = result.actions
    assert isinstance(gather, Gather)
    assert result.state.node == "main_menu"
    return tuple(a.text for a in before if isinstance(a, Say))


def test_the_demo_greets_a_customer_on_their_birthday(demo: MenuBundle) -> None:
    assert _greeting(demo, "he-IL", birthday_today=True) == (
        "מזל טוב! כל צוות השירות מאחל לכם יום הולדת שמח.",)
    assert _greeting(demo, "en-US", birthday_today=True) == (
        "Happy birthday! Everyone at customer service wishes you a wonderful day.",)
    assert _greeting(demo, "he-IL", birthday_today=False) == ()
    assert _greeting(demo, "he-IL") == ()


def test_the_demo_greets_on_a_holiday_eve_in_the_callers_language(demo: MenuBundle) -> None:
    eve = {"he-IL": "יום כיפור", "en-US": "Yom Kippur"}
    assert _greeting(demo, "en-US", holiday_eve=eve) == (
        "On the eve of Yom Kippur, all of us at customer service wish you a happy holiday.",)
    assert _greeting(demo, "he-IL", holiday_eve=eve) == (
        "לקראת יום כיפור, כל צוות השירות מאחל לכם חג שמח.",)
    # A birthday on a holiday eve: both, the birthday first.
    assert _greeting(demo, "he-IL", holiday_eve=eve, birthday_today=True) == (
        "מזל טוב! כל צוות השירות מאחל לכם יום הולדת שמח.",
        "לקראת יום כיפור, כל צוות השירות מאחל לכם חג שמח.")


def test_the_demo_puts_premium_and_leaving_risk_customers_first(demo: MenuBundle) -> None:
    from ivr.menu.engine import queue_priority
    from ivr.menu.model import QueueNode

    for queue in ("billing", "operator", "retention_queue", "open_incident"):
        node = demo.menus["main"].menu.nodes[queue]
        assert isinstance(node, QueueNode)
        assert queue_priority(node, {"tier": "premium"}) == 10, queue
        assert queue_priority(node, {"tier": "standard", "leaving_risk": True}) == 10, queue
        assert queue_priority(node, {"tier": "standard", "leaving_risk": False}) == 0, queue


def test_a_bundle_knows_the_attributes_its_menus_read(demo: MenuBundle) -> None:
    used = demo.attributes_used
    assert {"birthday_today", "holiday_eve", "leaving_risk", "tier",
            "open_incident_opened_at"} <= used
    assert "holiday_today" not in used and "segment" not in used


# ---------------------------------------------------------------- ivr menus check

MENU = """\
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
    prompt: {say: {en-US: "Happy birthday! And happy {holiday_today}."}}
    next: q
  q:
    type: queue
    queue: sales
    priority:
      - {when: {attribute: leaving_risk, equals: true}, priority: 10}
      - {when: {attribute: holiday_eve, exists: true}, priority: 1}
    on_failure: bye
  bye: {type: hangup}
"""


def _check(text: str) -> list[str]:
    path = Path("main.yaml")
    lm, problems = load_menu_text(text, path)
    _bundle, report = assemble([(path, lm, problems)], None, "main")
    return [str(p) for p in report.problems]


def test_the_new_attributes_are_known_to_the_check() -> None:
    assert _check(MENU) == []


@pytest.mark.parametrize(("wrong", "right", "where", "line_col"), [
    ("attribute: birthday_today", "attribute: birthday", "branches.0.when.attribute",
     "9:27"),
    ("attribute: leaving_risk", "attribute: leaving_risks", "priority.0.when.attribute",
     "20:28"),
    ("attribute: holiday_eve", "attribute: holidayeve", "priority.1.when.attribute",
     "21:28"),
])
def test_a_misspelt_condition_is_an_error_at_its_line_and_column(
        wrong: str, right: str, where: str, line_col: str) -> None:
    text = MENU.replace(wrong, right)
    node = "greet" if "branches" in where else "q"
    name = right.split(": ")[1]
    expected = wrong.split(": ")[1]
    assert _check(text) == [
        f"main.yaml:{line_col}: error: nodes.{node}.{where}: unknown caller attribute "
        f"{name!r}; did you mean {expected!r}?"]


def test_a_misspelt_prompt_field_is_an_error() -> None:
    text = MENU.replace("{holiday_today}", "{holiday}")
    assert _check(text) == [
        "main.yaml:14:27: error: nodes.hello.prompt.say.en-US: placeholder '{holiday}': "
        "unknown caller attribute 'holiday'; did you mean 'holiday_eve'?"]


def test_an_attribute_like_none_is_an_error_that_lists_what_is_expected() -> None:
    text = MENU.replace("attribute: birthday_today", "attribute: vip")
    [problem] = _check(text)
    assert problem.startswith("main.yaml:9:27: error: nodes.greet.branches.0.when.attribute: "
                              "unknown caller attribute 'vip'; expected one of: caller, ")
    assert problem.endswith("birthday_today, holiday_today, holiday_eve, leaving_risk, "
                            "leaving_reason")
