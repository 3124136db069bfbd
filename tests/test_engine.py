"""The pure menu engine: step(bundle, state, event, now) -> (state, actions)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest

from ivr.core.clock import FrozenClock
from ivr.menu.bundle import MenuBundle, assemble, load_directory
from ivr.menu.checks import check_bundle
from ivr.menu.engine import (
    DIAL_OK,
    MAX_DIGITS,
    MAX_SPEECH,
    QUEUE_DONE,
    AccountEntered,
    Action,
    CallState,
    Dial,
    DialEnded,
    EngineError,
    Enqueue,
    Event,
    Gather,
    Gathered,
    Hangup,
    Play,
    QueueEnded,
    Say,
    Start,
    StepResult,
    account_digits,
    condition_holds,
    match_option,
    queue_priority,
    render_prompt,
    start_state,
    step,
)
from ivr.menu.loader import LoadedMenu, load_menu_text
from ivr.menu.model import (
    MAX_AUTOMATIC_HOPS,
    Condition,
    HangupNode,
    IdentifyNode,
    MenuNode,
    Prompt,
    QueueNode,
)

DEMO_MENUS = Path(__file__).resolve().parent.parent / "menus"

# Monday 5 January 2026, 10:00 in Jerusalem (UTC+2): open.
MONDAY_10 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
AT = "2026-01-05T08:00:00.000+00:00"

EN_VOICE = "Polly.Joanna"
HE_VOICE = "Google.he-IL-Standard-A"

MAIN = """\
languages: [en-US, he-IL]
default_language: en-US
voices:
  en-US: Polly.Joanna
  he-IL: Google.he-IL-Standard-A
start: main
fallback: goodbye
schedules:
  office:
    weekly:
      sun: ["08:00-20:00"]
      mon: ["08:00-20:00"]
      fri: ["08:00-13:00"]
    holidays: {country: IL}
    closures:
      - {start: "2026-01-06T10:00:00", end: "2026-01-06T12:00:00", reason: flood}
nodes:
  main:
    type: menu
    input: [dtmf, speech]
    timeout: 7
    max_no_input: 2
    max_invalid: 3
    prompt:
      say: {en-US: "Main menu.", he-IL: "תפריט ראשי."}
    no_input_prompt:
      say: {en-US: "We did not hear you.", he-IL: "לא שמענו אתכם."}
    invalid_prompt:
      say: {en-US: "That is not a choice.", he-IL: "אין בחירה כזו."}
    on_failure: sorry
    options:
      "1": {next: billing, speech: {en-US: [billing, pay a bill], he-IL: [חשבון, תשלום]}}
      "2": {next: hours, speech: {en-US: [hours], he-IL: [שעות]}}
      "3": {next: route, speech: {en-US: [account], he-IL: [חשבונית]}}
      "4": {next: call_number, speech: {en-US: [agent], he-IL: [נציג]}}
      "5": {next: call_sip, speech: {en-US: [sip], he-IL: [סיפ]}}
      "6": {next: call_client, speech: {en-US: [desk], he-IL: [דלפק]}}
      "7": {next: tech, speech: {en-US: [technical support], he-IL: [תמיכה טכנית]}}
      "8": {next: news, speech: {en-US: [news], he-IL: [חדשות]}}
      "9": {next: main, language: he-IL, speech: {en-US: [hebrew], he-IL: [עברית]}}
      "0": {next: main, language: en-US, speech: {en-US: [english], he-IL: [אנגלית]}}
      "*": {next: goodbye, speech: {en-US: [goodbye], he-IL: [להתראות]}}
  billing:
    type: queue
    queue: billing
    prompt:
      say: {en-US: "Transferring you to billing.", he-IL: "מעבירים אתכם לחשבונות."}
    on_failure: sorry
  hours:
    type: hours
    schedule: office
    open: open_now
    closed: closed_bye
    holiday: holiday_bye
    emergency: emergency_bye
  open_now:
    type: message
    prompt:
      say: {en-US: "We are open.", he-IL: "אנחנו פתוחים."}
    next: operators
  operators:
    type: queue
    queue: operators
  closed_bye:
    type: hangup
    prompt:
      play: "https://audio.test/closed.mp3"
  holiday_bye:
    type: hangup
    prompt:
      say: {en-US: "Happy holiday.", he-IL: "חג שמח."}
  emergency_bye:
    type: hangup
  route:
    type: branch
    branches:
      - when: {attribute: tier, equals: gold}
        next: vip
      - when: {attribute: segment, in: [north, south, 7]}
        next: regional
      - when: {attribute: open_incident_opened_at, exists: true}
        next: tickets
      - when: {attribute: open_incidents, at_least: 1000}
        next: collections
      - when: {attribute: minutes_since_last_call, at_most: 30}
        next: welcome
    default: billing
  vip: {type: queue, queue: vip}
  regional: {type: queue, queue: regional}
  tickets: {type: queue, queue: tickets}
  collections: {type: queue, queue: collections}
  welcome: {type: queue, queue: welcome}
  call_number:
    type: transfer
    number: "+97231234567"
    caller_id: "+97239999999"
    timeout: 30
    prompt:
      say: {en-US: "Calling an agent.", he-IL: "מתקשרים לנציג."}
    on_failure: sorry
  call_sip:
    type: transfer
    sip: "sip:desk@pbx.example.test"
  call_client:
    type: transfer
    client: agent_desk
  tech:
    type: submenu
    menu: tech
  news:
    type: message
    prompt:
      play: {en-US: "https://audio.test/news-en.mp3", he-IL: "https://audio.test/news-he.mp3"}
    next: main
  sorry:
    type: hangup
    prompt:
      say: {en-US: "Sorry, goodbye.", he-IL: "מצטערים, להתראות."}
  goodbye:
    type: hangup
"""

TECH = """\
languages: [he-IL, en-US]
default_language: he-IL
voices:
  he-IL: Google.he-IL-Standard-A
  en-US: Polly.Joanna
start: tech_menu
fallback: tech_queue
nodes:
  tech_menu:
    type: menu
    max_no_input: 1
    prompt:
      say: {he-IL: "תמיכה טכנית.", en-US: "Technical support."}
    options:
      "1": {next: tech_queue}
      "*": {next: back}
  tech_queue:
    type: queue
    queue: tech
    on_failure: tech_bye
  tech_bye:
    type: hangup
  back:
    type: submenu
    menu: main
"""


def build(*menus: tuple[str, str], entry: str = "main") -> MenuBundle:
    """A checked bundle (the way the server builds one); the menus must have no problems."""
    parsed = []
    for name, text in menus:
        path = Path(f"{name}.yaml")
        lm, problems = load_menu_text(text, path)
        parsed.append((path, lm, problems))
    bundle, report = assemble(parsed, None, entry)
    assert [str(p) for p in report.problems] == []
    assert bundle is not None
    return bundle


def unchecked(text: str, name: str = "main") -> MenuBundle:
    """A bundle that skips the semantic checks (what they would have refused)."""
    lm, problems = load_menu_text(text, Path(f"{name}.yaml"))
    assert problems == []
    assert lm is not None
    return MenuBundle("unchecked", {name: lm})


@pytest.fixture(scope="module")
def bundle() -> MenuBundle:
    return build(("main", MAIN), ("tech", TECH))


@pytest.fixture
def frozen() -> FrozenClock:
    return FrozenClock(MONDAY_10)


class Call:
    """One caller's way through a bundle, step by step."""

    def __init__(self, bundle: MenuBundle, clock: FrozenClock, entry: str = "main",
                 attributes: dict[str, Any] | None = None) -> None:
        self.bundle = bundle
        self.clock = clock
        self.state = start_state(bundle, "CA0001", entry, attributes)

    def send(self, event: Event) -> tuple[Action, ...]:
        result = step(self.bundle, self.state, event, self.clock.now())
        assert isinstance(result, StepResult)
        self.state = result.state
        return result.actions

    def at(self, node: str) -> tuple[Action, ...]:
        """Put the call at a node (as if it got there earlier) and start there."""
        self.state = CallState(call_sid=self.state.call_sid, version=self.state.version,
                               menu=self.state.menu, node=node, language=self.state.language,
                               attributes=self.state.attributes)
        return self.send(Start())

    def events(self) -> list[str]:
        return [entry["event"] for entry in self.state.path]


def main_gather(language: str = "en-US", lead: tuple[Say | Play, ...] = ()) -> Gather:
    if language == "en-US":
        prompt = Say("Main menu.", "en-US", EN_VOICE)
        hints = ("billing", "pay a bill", "hours", "account", "agent", "sip", "desk",
                 "technical support", "news", "hebrew", "עברית", "english", "goodbye")
    else:
        prompt = Say("תפריט ראשי.", "he-IL", HE_VOICE)
        hints = ("חשבון", "תשלום", "שעות", "חשבונית", "נציג", "סיפ", "דלפק", "תמיכה טכנית",
                 "חדשות", "עברית", "אנגלית", "english", "להתראות")
    return Gather(prompts=(*lead, prompt), input=("dtmf", "speech"), timeout=7, num_digits=1,
                  finish_on_key="#", language=language, hints=hints)


NO_INPUT_EN = Say("We did not hear you.", "en-US", EN_VOICE)
INVALID_EN = Say("That is not a choice.", "en-US", EN_VOICE)
SORRY_EN = Say("Sorry, goodbye.", "en-US", EN_VOICE)
BILLING_EN = Say("Transferring you to billing.", "en-US", EN_VOICE)


# ---------------------------------------------------------------- starting a call


def test_start_state(bundle: MenuBundle) -> None:
    state = start_state(bundle, "CA1", "main", {"tier": "gold"})
    assert state == CallState(call_sid="CA1", version=bundle.version, menu="main", node="main",
                              language="en-US", attributes={"tier": "gold"})
    assert (state.no_input, state.invalid, state.path, state.ended) == (0, 0, (), False)


def test_start_state_copies_attributes(bundle: MenuBundle) -> None:
    attributes = {"tier": "gold"}
    state = start_state(bundle, "CA1", "main", attributes)
    attributes["tier"] = "silver"
    assert state.attributes == {"tier": "gold"}


def test_start_state_for_an_unknown_menu(bundle: MenuBundle) -> None:
    with pytest.raises(EngineError, match=r"^menu 'nope' is not in version "):
        start_state(bundle, "CA1", "nope")


def test_start_gathers_at_the_menu(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    assert call.send(Start()) == (main_gather(),)
    assert call.state.node == "main"
    assert call.state.path == ({"at": AT, "menu": "main", "node": "main", "event": "prompt"},)


def test_step_does_not_change_the_state_it_was_given(bundle: MenuBundle) -> None:
    state = start_state(bundle, "CA1", "main")
    result = step(bundle, state, Start(), MONDAY_10)
    assert state.path == ()
    assert result.state.path != ()
    assert result.state.version == state.version == bundle.version


# ---------------------------------------------------------------- choosing an option


@pytest.mark.parametrize("event", [
    Gathered(digits="1"),
    Gathered(digits="1#"),
    Gathered(digits=" 1 "),
    Gathered(speech="billing"),
    Gathered(speech="Billing."),
    Gathered(speech="I'd like to PAY A BILL, please"),
    Gathered(digits="1", speech="goodbye"),  # keys win over words
])
def test_option_to_a_queue(bundle: MenuBundle, frozen: FrozenClock, event: Gathered) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    assert call.send(event) == (BILLING_EN, Enqueue("billing", "en-US"))
    assert call.state.node == "billing"
    assert not call.state.ended
    assert call.state.path[-1] == {"at": AT, "menu": "main", "node": "billing", "event": "queue",
                                   "queue": "billing"}


def test_input_path_entry(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    call.send(Gathered(speech="Pay a bill", confidence=0.87))
    assert call.state.path[1] == {"at": AT, "menu": "main", "node": "main", "event": "input",
                                  "speech": "Pay a bill", "confidence": 0.87, "option": "1"}
    call = Call(bundle, frozen)
    call.send(Start())
    call.send(Gathered(digits="1#"))
    assert call.state.path[1] == {"at": AT, "menu": "main", "node": "main", "event": "input",
                                  "digits": "1#", "option": "1"}


@pytest.mark.parametrize(("speech", "option"), [
    ("אני רוצה לברר חשבון", "1"),
    ("תשלום", "1"),
    ("חשבון.", "1"),
    ("שעות פתיחה?", "2"),
    # Whole words: "חשבונית" (invoice) is option 3, not "חשבון" (account).
    ("יש לי שאלה על חשבונית", "3"),
    ("תמיכה טכנית בבקשה", "7"),
])
def test_hebrew_speech(bundle: MenuBundle, frozen: FrozenClock, speech: str,
                       option: str) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    call.send(Gathered(digits="9"))
    call.send(Gathered(speech=speech, confidence=0.9))
    assert call.state.path[3] == {"at": AT, "menu": "main", "node": "main", "event": "input",
                                  "speech": speech, "confidence": 0.9, "option": option}


def test_hebrew_speech_to_billing(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    call.send(Gathered(digits="9"))
    assert call.send(Gathered(speech="חשבון")) == (Say("מעבירים אתכם לחשבונות.", "he-IL", HE_VOICE),
                                                  Enqueue("billing", "he-IL"))


def test_speech_in_the_other_language_matches_when_nothing_else_does(
        bundle: MenuBundle, frozen: FrozenClock) -> None:
    # Callers mix languages ("billing" in a Hebrew call); the call's own language is tried
    # first, then every other language's phrases.
    call = Call(bundle, frozen)
    call.send(Start())
    call.send(Gathered(digits="9"))  # Hebrew from now on
    actions = call.send(Gathered(speech="billing"))
    assert actions[-1] == Enqueue("billing", "he-IL")
    assert call.state.language == "he-IL"


def test_unknown_speech_in_any_language_is_invalid(bundle: MenuBundle,
                                                   frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    call.send(Gathered(digits="9"))
    he_invalid = Say("אין בחירה כזו.", "he-IL", HE_VOICE)
    assert call.send(Gathered(speech="banana")) == (main_gather("he-IL", (he_invalid,)),)


def test_language_switch_by_option(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    assert call.send(Gathered(digits="9")) == (main_gather("he-IL"),)
    assert call.state.language == "he-IL"
    # The new language stays for the rest of the call ...
    assert call.send(Gathered(digits="4")) == (
        Say("מתקשרים לנציג.", "he-IL", HE_VOICE),
        Dial("number", "+97231234567", 30, "+97239999999"),
    )
    assert call.state.language == "he-IL"


def test_language_switch_back_by_speech(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    call.send(Gathered(digits="9"))
    assert call.send(Gathered(speech="אנגלית בבקשה")) == (main_gather("en-US"),)
    assert call.state.language == "en-US"


def test_choosing_resets_the_counters(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    call.send(Gathered())
    call.send(Gathered(digits="55"))
    assert (call.state.no_input, call.state.invalid) == (1, 1)
    call.send(Gathered(digits="9"))  # back to the same menu, in Hebrew
    assert (call.state.no_input, call.state.invalid) == (0, 0)


def test_match_option_directly() -> None:
    lm, _ = load_menu_text(MAIN, Path("main.yaml"))
    assert lm is not None
    node = lm.menu.nodes["main"]
    assert isinstance(node, MenuNode)
    assert match_option(node, "en-US", "*", None) == "*"
    assert match_option(node, "en-US", "*#", None) == "*"
    assert match_option(node, "en-US", "12", None) is None
    assert match_option(node, "en-US", "#", None) is None
    assert match_option(node, "en-US", None, "technical   SUPPORT!") == "7"
    assert match_option(node, "en-US", None, "technical") is None
    assert match_option(node, "en-US", None, "supporting technical") is None
    assert match_option(node, "en-US", "", "news") == "8"
    assert match_option(node, "en-US", "99", "news") == "8"  # bad keys, good words
    assert match_option(node, "he-IL", None, "news") == "8"  # other languages as a fallback
    assert match_option(node, "he-IL", None, "חדשות") == "8"
    assert match_option(node, "en-US", None, None) is None


# ---------------------------------------------------------------- every node kind


def test_message_then_menu(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    assert call.send(Gathered(digits="8")) == (Play("https://audio.test/news-en.mp3"),
                                              main_gather())
    assert call.events() == ["prompt", "input", "message", "prompt"]
    assert call.state.path[2] == {"at": AT, "menu": "main", "node": "news", "event": "message"}
    call.send(Gathered(digits="9"))
    assert call.send(Gathered(digits="8")) == (Play("https://audio.test/news-he.mp3"),
                                              main_gather("he-IL"))


def test_queue(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    assert call.at("vip") == (Enqueue("vip", "en-US"),)
    assert call.state.path[-1] == {"at": AT, "menu": "main", "node": "vip", "event": "queue",
                                   "queue": "vip"}


@pytest.mark.parametrize(("node", "actions", "to"), [
    ("call_number", (Say("Calling an agent.", "en-US", EN_VOICE),
                     Dial("number", "+97231234567", 30, "+97239999999")), "number"),
    ("call_sip", (Dial("sip", "sip:desk@pbx.example.test", 20, None),), "sip"),
    ("call_client", (Dial("client", "agent_desk", 20, None),), "client"),
])
def test_transfer(bundle: MenuBundle, frozen: FrozenClock, node: str,
                  actions: tuple[Action, ...], to: str) -> None:
    call = Call(bundle, frozen)
    assert call.at(node) == actions
    assert call.state.node == node
    assert call.state.path[-1] == {"at": AT, "menu": "main", "node": node, "event": "transfer",
                                   "to": to}


def test_transfer_chosen_by_option(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    assert call.send(Gathered(speech="desk")) == (Dial("client", "agent_desk", 20, None),)


def test_hangup(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    assert call.send(Gathered(digits="*")) == (Hangup(),)
    assert call.state.ended
    assert call.state.node == "goodbye"
    assert call.state.path[-1] == {"at": AT, "menu": "main", "node": "goodbye",
                                   "event": "hangup"}


def test_hangup_with_prompt(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    assert call.at("sorry") == (SORRY_EN, Hangup())
    assert call.state.ended


def test_events_after_the_end_just_hang_up(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.at("goodbye")
    path = call.state.path
    for event in (Gathered(digits="1"), DialEnded("completed"), QueueEnded("bridged")):
        assert call.send(event) == (Hangup(),)
        assert call.state.ended
        assert call.state.path == path


# ---------------------------------------------------------------- hours


@pytest.mark.parametrize(("now", "actions", "outcome", "reason"), [
    (datetime(2026, 1, 5, 8, 0, tzinfo=UTC),
     (Say("We are open.", "en-US", EN_VOICE), Enqueue("operators", "en-US")),
     "open", "mon 10:00"),
    (datetime(2026, 1, 5, 19, 0, tzinfo=UTC),  # 21:00
     (Play("https://audio.test/closed.mp3"), Hangup()), "closed", "mon 21:00"),
    (datetime(2026, 1, 6, 7, 0, tzinfo=UTC),  # Tuesday is not in the schedule
     (Play("https://audio.test/closed.mp3"), Hangup()), "closed", "tue 09:00"),
    (datetime(2026, 1, 6, 9, 0, tzinfo=UTC),  # 11:00 on Tuesday: the flood
     (Hangup(),), "emergency", "flood"),
    (datetime(2026, 9, 21, 7, 0, tzinfo=UTC),  # Yom Kippur, 10:00 IDT
     (Say("Happy holiday.", "en-US", EN_VOICE), Hangup()), "holiday", "Yom Kippur"),
])
def test_hours_node(bundle: MenuBundle, now: datetime, actions: tuple[Action, ...],
                    outcome: str, reason: str) -> None:
    assert holidays.country_holidays("IL", years=2026).get(date(2026, 9, 21)) == "Yom Kippur"
    call = Call(bundle, FrozenClock(now))
    call.send(Start())
    assert call.send(Gathered(digits="2")) == actions
    assert call.state.path[2] == {"at": now.isoformat(timespec="milliseconds"), "menu": "main",
                                  "node": "hours", "event": "hours", "outcome": outcome,
                                  "reason": reason}


HOURS_DEFAULTS = """\
languages: [en-US]
default_language: en-US
start: hours
fallback: closed
schedules:
  office:
    weekly: {mon: ["08:00-20:00"]}
    holidays: {country: IL}
    closures:
      - {start: "2026-01-05T09:00:00", end: "2026-01-05T11:00:00"}
nodes:
  hours:
    type: hours
    schedule: office
    open: open
    closed: closed
  open: {type: queue, queue: open, on_failure: closed}
  closed: {type: hangup}
"""


@pytest.mark.parametrize(("now", "outcome"), [
    (datetime(2026, 1, 5, 12, 0, tzinfo=UTC), "open"),
    (datetime(2026, 1, 5, 8, 0, tzinfo=UTC), "emergency"),
    (datetime(2026, 9, 21, 7, 0, tzinfo=UTC), "holiday"),
    (datetime(2026, 1, 5, 19, 0, tzinfo=UTC), "closed"),
])
def test_holiday_and_emergency_default_to_closed(now: datetime, outcome: str) -> None:
    bundle = build(("main", HOURS_DEFAULTS))
    call = Call(bundle, FrozenClock(now))
    actions = call.send(Start())
    assert call.state.path[0]["outcome"] == outcome
    if outcome == "open":
        assert actions == (Enqueue("open", "en-US"),)
    else:
        assert actions == (Hangup(),)
        assert call.state.node == "closed"


# ---------------------------------------------------------------- branches


@pytest.mark.parametrize(("attributes", "queue"), [
    ({}, "billing"),  # the default
    ({"tier": "gold"}, "vip"),
    ({"tier": "silver"}, "billing"),
    ({"tier": None}, "billing"),
    ({"segment": "north"}, "regional"),
    ({"segment": "south"}, "regional"),
    ({"segment": 7}, "regional"),
    ({"segment": "east"}, "billing"),
    ({"open_incident_opened_at": "T-17"}, "tickets"),
    ({"open_incident_opened_at": 0}, "tickets"),  # present, even if falsy
    ({"open_incident_opened_at": None}, "billing"),  # None is the same as absent
    ({"open_incidents": 1000}, "collections"),
    ({"open_incidents": "1500.5"}, "collections"),
    ({"open_incidents": 999.99}, "billing"),
    ({"open_incidents": "a lot"}, "billing"),
    ({"minutes_since_last_call": 30}, "welcome"),
    ({"minutes_since_last_call": 0}, "welcome"),
    ({"minutes_since_last_call": 31}, "billing"),
    # The first branch that holds wins.
    ({"tier": "gold", "segment": "north", "open_incidents": 5000}, "vip"),
    ({"segment": "north", "open_incident_opened_at": "T-1"}, "regional"),
])
def test_branch(bundle: MenuBundle, frozen: FrozenClock, attributes: dict[str, Any],
                queue: str) -> None:
    call = Call(bundle, frozen, attributes=attributes)
    actions = call.at("route")
    assert actions[-1] == Enqueue(queue, "en-US")
    # Each queue here has the same name as its node.
    assert call.state.path[0] == {"at": AT, "menu": "main", "node": "route", "event": "branch",
                                  "to": queue}


@pytest.mark.parametrize(("condition", "attributes", "holds"), [
    ({"equals": "gold"}, {"x": "gold"}, True),
    ({"equals": "gold"}, {"x": "Gold"}, False),
    ({"equals": "gold"}, {}, False),
    ({"equals": 3}, {"x": 3}, True),
    ({"equals": 3}, {"x": 3.0}, True),
    ({"equals": 3}, {"x": "3"}, False),
    ({"equals": True}, {"x": True}, True),
    ({"equals": False}, {"x": False}, True),
    ({"equals": False}, {}, False),
    ({"in": ["a", "b"]}, {"x": "b"}, True),
    ({"in": ["a", "b"]}, {"x": "c"}, False),
    ({"in": ["a", "b"]}, {}, False),
    ({"in": [1, 2]}, {"x": 2}, True),
    ({"exists": True}, {"x": ""}, True),
    ({"exists": True}, {"x": None}, False),
    ({"exists": True}, {}, False),
    ({"exists": False}, {}, True),
    ({"exists": False}, {"x": None}, True),
    ({"exists": False}, {"x": 1}, False),
    ({"at_least": 10}, {"x": 10}, True),
    ({"at_least": 10}, {"x": 9.5}, False),
    ({"at_least": 10}, {"x": "12"}, True),
    ({"at_least": 10}, {"x": "twelve"}, False),
    ({"at_least": 10}, {"x": [12]}, False),
    ({"at_least": 10}, {}, False),
    ({"at_most": 10}, {"x": 10}, True),
    ({"at_most": 10}, {"x": -3}, True),
    ({"at_most": 10}, {"x": 10.01}, False),
    ({"at_most": 10}, {"x": None}, False),
])
def test_condition_holds(condition: dict[str, Any], attributes: Mapping[str, Any],
                         holds: bool) -> None:
    cond = Condition.model_validate({"attribute": "x", **condition})
    assert condition_holds(cond, dict(attributes)) is holds


# ---------------------------------------------------------------- sub-menus


def test_submenu_and_back(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    tech_gather = Gather(prompts=(Say("Technical support.", "en-US", EN_VOICE),),
                         input=("dtmf",), timeout=5, num_digits=1, finish_on_key="#",
                         language="en-US", hints=())
    assert call.send(Gathered(digits="7")) == (tech_gather,)
    # The caller's language goes with them although the sub-menu defaults to Hebrew.
    assert (call.state.menu, call.state.node, call.state.language) == ("tech", "tech_menu",
                                                                       "en-US")
    assert call.state.path[2:] == (
        {"at": AT, "menu": "main", "node": "tech", "event": "submenu", "to": "tech"},
        {"at": AT, "menu": "tech", "node": "tech_menu", "event": "prompt"},
    )
    assert call.send(Gathered(digits="1")) == (Enqueue("tech", "en-US"),)
    assert (call.state.menu, call.state.node) == ("tech", "tech_queue")


def test_back_to_the_main_menu(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    call.send(Gathered(digits="9"))
    call.send(Gathered(digits="7"))
    assert call.state.language == "he-IL"
    assert call.send(Gathered(digits="*")) == (main_gather("he-IL"),)
    assert (call.state.menu, call.state.node) == ("main", "main")


def test_submenu_failure_goes_to_the_submenus_fallback(bundle: MenuBundle,
                                                       frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    call.send(Gathered(digits="7"))
    # tech_menu allows one no-input and has no on_failure: the tech menu's fallback.
    assert call.send(Gathered()) == (Enqueue("tech", "en-US"),)
    assert (call.state.menu, call.state.node) == ("tech", "tech_queue")
    assert call.state.path[-2] == {"at": AT, "menu": "tech", "node": "tech_menu",
                                   "event": "failure", "reason": "no_input"}
    # ... and a failed queue there goes to that queue's on_failure.
    assert call.send(QueueEnded("queue-full")) == (Hangup(),)
    assert (call.state.menu, call.state.node, call.state.ended) == ("tech", "tech_bye", True)


def test_submenu_that_does_not_speak_the_callers_language() -> None:
    # Only possible without the checks: the sub-menu's default language takes over.
    bundle = MenuBundle("unchecked", {
        "main": _loaded(MAIN.replace("languages: [en-US, he-IL]",
                                     "languages: [en-US, he-IL, ar-IL]"), "main"),
        "tech": _loaded(TECH, "tech"),
    })
    state = CallState("CA1", bundle.version, "main", "tech", "ar-IL")
    result = step(bundle, state, Start(), MONDAY_10)
    assert result.state.language == "he-IL"
    assert result.actions == (Gather(prompts=(Say("תמיכה טכנית.", "he-IL", HE_VOICE),),
                                     input=("dtmf",), timeout=5, num_digits=1,
                                     finish_on_key="#", language="he-IL", hints=()),)


def _loaded(text: str, name: str) -> LoadedMenu:
    lm, problems = load_menu_text(text, Path(f"{name}.yaml"))
    assert problems == []
    assert lm is not None
    return lm


# ---------------------------------------------------------------- no input and invalid input


def test_no_input_reprompts_then_fails_to_on_failure(bundle: MenuBundle,
                                                     frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    # max_no_input is 2: the first silence asks again, with the no-input prompt first.
    assert call.send(Gathered()) == (main_gather(lead=(NO_INPUT_EN,)),)
    assert (call.state.no_input, call.state.invalid, call.state.node) == (1, 0, "main")
    assert call.state.path[-1] == {"at": AT, "menu": "main", "node": "main",
                                   "event": "no_input", "count": 1}
    assert call.send(Gathered(digits="", speech="")) == (SORRY_EN, Hangup())
    assert call.state.node == "sorry"
    assert call.state.ended
    assert (call.state.no_input, call.state.invalid) == (0, 0)
    assert call.events() == ["prompt", "no_input", "no_input", "failure", "hangup"]
    assert call.state.path[-2] == {"at": AT, "menu": "main", "node": "main",
                                   "event": "failure", "reason": "no_input"}


def test_invalid_counts_separately_up_to_max_invalid(bundle: MenuBundle,
                                                     frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    assert call.send(Gathered(digits="55")) == (main_gather(lead=(INVALID_EN,)),)
    assert (call.state.no_input, call.state.invalid) == (0, 1)
    assert call.state.path[-1] == {"at": AT, "menu": "main", "node": "main", "event": "invalid",
                                   "digits": "55", "count": 1}
    assert call.send(Gathered()) == (main_gather(lead=(NO_INPUT_EN,)),)
    assert (call.state.no_input, call.state.invalid) == (1, 1)
    assert call.send(Gathered(speech="weather")) == (main_gather(lead=(INVALID_EN,)),)
    assert (call.state.no_input, call.state.invalid) == (1, 2)
    assert call.state.path[-1] == {"at": AT, "menu": "main", "node": "main", "event": "invalid",
                                   "speech": "weather", "count": 2}
    # max_invalid is 3.
    assert call.send(Gathered(digits="#")) == (SORRY_EN, Hangup())
    assert call.events() == ["prompt", "invalid", "no_input", "invalid", "invalid", "failure",
                             "hangup"]
    assert call.state.path[-2]["reason"] == "invalid"


FALLBACK = """\
languages: [en-US]
default_language: en-US
start: ask
fallback: last_resort
nodes:
  ask:
    type: menu
    prompt: {play: "https://audio.test/ask.mp3"}
    options:
      "1": {next: bye}
  last_resort:
    type: queue
    queue: operators
    on_failure: bye
  bye: {type: hangup}
"""


def test_failure_without_on_failure_goes_to_the_fallback(frozen: FrozenClock) -> None:
    bundle = build(("main", FALLBACK))
    call = Call(bundle, frozen)
    gather = Gather(prompts=(Play("https://audio.test/ask.mp3"),), input=("dtmf",), timeout=5,
                    num_digits=1, finish_on_key="#", language="en-US", hints=())
    assert call.send(Start()) == (gather,)
    # Defaults: three of each; no re-prompt text, so only the menu prompt is repeated.
    assert call.send(Gathered()) == (gather,)
    assert call.send(Gathered()) == (gather,)
    assert call.send(Gathered()) == (Enqueue("operators", "en-US"),)
    assert call.state.node == "last_resort"
    call = Call(bundle, frozen)
    call.send(Start())
    assert call.send(Gathered(digits="2")) == (gather,)
    assert call.send(Gathered(digits="3")) == (gather,)
    assert call.send(Gathered(digits="4")) == (Enqueue("operators", "en-US"),)
    assert call.state.path[-2] == {"at": AT, "menu": "main", "node": "ask", "event": "failure",
                                   "reason": "invalid"}


def test_oversize_digits_are_truncated(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    assert call.send(Gathered(digits="1" * 40)) == (main_gather(lead=(INVALID_EN,)),)
    assert MAX_DIGITS == 32
    assert call.state.path[-1]["digits"] == "1" * MAX_DIGITS


def test_oversize_speech_is_truncated(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    # Words beyond the limit are not heard ...
    call.send(Gathered(speech="x" * MAX_SPEECH + " billing"))
    assert call.state.path[-1]["event"] == "invalid"
    assert call.state.path[-1]["speech"] == "x" * MAX_SPEECH
    # ... words within it are.
    assert call.send(Gathered(speech="billing " + "x" * 600)) == (BILLING_EN,
                                                                 Enqueue("billing", "en-US"))


# ---------------------------------------------------------------- Gather attributes

GATHER_KEYS = """\
languages: [en-US]
default_language: en-US
start: ask
fallback: bye
nodes:
  ask:
    type: menu
    prompt: {say: {en-US: "Choose."}}
    options:
{options}
  bye: {type: hangup}
"""


@pytest.mark.parametrize(("keys", "num_digits", "finish_on_key"), [
    (["1", "2", "3"], 1, "#"),
    (["*", "0"], 1, "#"),
    (["10", "20"], 2, "#"),
    (["1234", "5678"], 4, "#"),
    (["1", "20"], None, "#"),
    (["1", "12"], None, "#"),
    (["123", "4"], None, "#"),
    (["1", "#"], 1, ""),  # '#' is an option: it cannot end the input too
    (["11#", "22#"], 3, ""),
    (["1", "22#"], None, ""),
])
def test_num_digits_and_finish_on_key(frozen: FrozenClock, keys: list[str],
                                      num_digits: int | None, finish_on_key: str) -> None:
    options = "\n".join(f'      "{k}": {{next: bye}}' for k in keys)
    bundle = unchecked(GATHER_KEYS.replace("{options}", options))
    (gather,) = Call(bundle, frozen).send(Start())
    assert isinstance(gather, Gather)
    assert (gather.num_digits, gather.finish_on_key) == (num_digits, finish_on_key)
    assert (gather.input, gather.timeout, gather.hints) == (("dtmf",), 5, ())


@pytest.mark.parametrize(("keys", "digits", "matched"), [
    (["1", "12"], "1", True),
    (["1", "12"], "12", True),
    (["1", "12"], "12#", True),
    (["1", "#"], "#", True),
    (["11#", "22#"], "11#", True),
    (["11#", "22#"], "11", False),
    (["10", "20"], "1", False),
    (["12", "3"], "12#", True),  # '#' ends a multi-digit key too
    (["12", "3"], "1#", False),
])
def test_multi_digit_keys(frozen: FrozenClock, keys: list[str], digits: str,
                          matched: bool) -> None:
    options = "\n".join(f'      "{k}": {{next: bye}}' for k in keys)
    call = Call(unchecked(GATHER_KEYS.replace("{options}", options)), frozen)
    call.send(Start())
    actions = call.send(Gathered(digits=digits))
    assert (actions == (Hangup(),)) is matched
    assert call.state.path[-2 if matched else -1]["event"] == ("input" if matched else "invalid")


# ---------------------------------------------------------------- Twilio's results


@pytest.mark.parametrize("status", ["completed", "answered"])
def test_dial_completed_hangs_up(bundle: MenuBundle, frozen: FrozenClock, status: str) -> None:
    assert status in DIAL_OK
    call = Call(bundle, frozen)
    call.at("call_number")
    assert call.send(DialEnded(status)) == (Hangup(),)
    assert call.state.ended
    assert call.state.node == "call_number"
    assert call.state.path[-1] == {"at": AT, "menu": "main", "node": "call_number",
                                   "event": "transfer_done", "status": status}


@pytest.mark.parametrize("status", ["busy", "no-answer", "failed", "canceled"])
def test_dial_failed_goes_to_on_failure(bundle: MenuBundle, frozen: FrozenClock,
                                        status: str) -> None:
    call = Call(bundle, frozen)
    call.at("call_number")
    assert call.send(DialEnded(status)) == (SORRY_EN, Hangup())
    assert call.state.node == "sorry"
    assert call.state.path[-3:] == (
        {"at": AT, "menu": "main", "node": "call_number", "event": "transfer_failed",
         "status": status},
        {"at": AT, "menu": "main", "node": "call_number", "event": "failure", "reason": status},
        {"at": AT, "menu": "main", "node": "sorry", "event": "hangup"},
    )


def test_dial_failed_without_on_failure_goes_to_the_fallback(bundle: MenuBundle,
                                                            frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.at("call_sip")
    assert call.send(DialEnded("no-answer")) == (Hangup(),)
    assert call.state.node == "goodbye"


def test_dial_with_empty_status(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.at("call_number")
    call.send(DialEnded(""))
    assert call.state.path[-2] == {"at": AT, "menu": "main", "node": "call_number",
                                   "event": "failure", "reason": "failed"}


@pytest.mark.parametrize("result", ["bridged", "hangup", "redirected", "bridging-in-process"])
def test_queue_done_hangs_up(bundle: MenuBundle, frozen: FrozenClock, result: str) -> None:
    assert result in QUEUE_DONE
    call = Call(bundle, frozen)
    call.at("billing")
    assert call.send(QueueEnded(result)) == (Hangup(),)
    assert call.state.ended
    assert call.state.path[-1] == {"at": AT, "menu": "main", "node": "billing",
                                   "event": "queue_done", "result": result}


@pytest.mark.parametrize("result", ["queue-full", "error", "system-error", "leave"])
def test_queue_failed_goes_to_on_failure(bundle: MenuBundle, frozen: FrozenClock,
                                         result: str) -> None:
    call = Call(bundle, frozen)
    call.at("billing")
    assert call.send(QueueEnded(result)) == (SORRY_EN, Hangup())
    assert call.state.node == "sorry"
    assert call.state.path[-3]["event"] == "queue_failed"
    assert call.state.path[-3]["result"] == result
    assert call.state.path[-2]["reason"] == result


def test_queue_failed_without_on_failure_goes_to_the_fallback(bundle: MenuBundle,
                                                             frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.at("vip")
    assert call.send(QueueEnded("error")) == (Hangup(),)
    assert call.state.node == "goodbye"


def test_queue_with_empty_result(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.at("billing")
    call.send(QueueEnded(""))
    assert call.state.path[-2]["reason"] == "error"


# ---------------------------------------------------------------- events that do not fit


@pytest.mark.parametrize(("node", "event", "actions"), [
    ("main", DialEnded("completed"), (main_gather(),)),
    ("main", QueueEnded("bridged"), (main_gather(),)),
    ("billing", Gathered(digits="1"), (BILLING_EN, Enqueue("billing", "en-US"))),
    ("billing", DialEnded("busy"), (BILLING_EN, Enqueue("billing", "en-US"))),
    ("call_sip", QueueEnded("queue-full"), (Dial("sip", "sip:desk@pbx.example.test", 20, None),)),
    ("call_sip", Gathered(), (Dial("sip", "sip:desk@pbx.example.test", 20, None),)),
])
def test_event_that_does_not_fit_the_node_resumes(bundle: MenuBundle, frozen: FrozenClock,
                                                  node: str, event: Event,
                                                  actions: tuple[Action, ...]) -> None:
    call = Call(bundle, frozen)
    call.at(node)
    before = (call.state.node, call.state.no_input, call.state.invalid, call.state.ended)
    assert call.send(event) == actions
    assert (call.state.node, call.state.no_input, call.state.invalid,
            call.state.ended) == before
    assert call.state.path[-2] == {"at": AT, "menu": "main", "node": node, "event": "resume",
                                   "got": type(event).__name__}


def test_resume_keeps_the_counters(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    call.send(Gathered())
    assert call.send(DialEnded("busy")) == (main_gather(),)
    assert call.state.no_input == 1
    assert call.send(Gathered()) == (SORRY_EN, Hangup())


# ---------------------------------------------------------------- the call's path


def test_path_entries_carry_timestamps(bundle: MenuBundle) -> None:
    clock = FrozenClock(datetime(2026, 1, 5, 8, 0, 0, 123456, tzinfo=UTC))
    call = Call(bundle, clock)
    call.send(Start())
    clock.advance(seconds=4.5)
    call.send(Gathered())
    clock.advance(seconds=7)
    call.send(Gathered(digits="1"))
    clock.advance(minutes=3)
    call.send(QueueEnded("bridged"))
    assert [(e["at"], e["node"], e["event"]) for e in call.state.path] == [
        ("2026-01-05T08:00:00.123+00:00", "main", "prompt"),
        ("2026-01-05T08:00:04.623+00:00", "main", "no_input"),
        ("2026-01-05T08:00:11.623+00:00", "main", "input"),
        ("2026-01-05T08:00:11.623+00:00", "billing", "queue"),
        ("2026-01-05T08:03:11.623+00:00", "billing", "queue_done"),
    ]


def test_path_time_keeps_the_offset_it_is_given(bundle: MenuBundle) -> None:
    now = datetime(2026, 1, 5, 8, 0, tzinfo=UTC).astimezone(ZoneInfo("Asia/Jerusalem"))
    result = step(bundle, start_state(bundle, "CA1", "main"), Start(), now)
    assert result.state.path[0]["at"] == "2026-01-05T10:00:00.000+02:00"


def test_path_is_appended_to_across_steps(bundle: MenuBundle, frozen: FrozenClock) -> None:
    call = Call(bundle, frozen)
    call.send(Start())
    first = call.state.path
    call.send(Gathered(digits="8"))
    assert call.state.path[:len(first)] == first
    assert isinstance(call.state.path, tuple)


# ---------------------------------------------------------------- prompts


def test_render_prompt_languages() -> None:
    menu = _loaded(MAIN, "main").menu
    sorry, closed_bye = menu.nodes["sorry"], menu.nodes["closed_bye"]
    assert isinstance(sorry, HangupNode)
    assert isinstance(closed_bye, HangupNode)
    prompt = sorry.prompt
    assert render_prompt(prompt, menu, "he-IL") == (Say("מצטערים, להתראות.", "he-IL", HE_VOICE),)
    assert render_prompt(prompt, menu, "en-US") == (SORRY_EN,)
    assert render_prompt(None, menu, "en-US") == ()
    assert render_prompt(closed_bye.prompt, menu, "he-IL") == (Play("https://audio.test/closed.mp3"),)


# ---------------------------------------------------------------- guards


def test_automatic_loop_raises_engine_error(frozen: FrozenClock) -> None:
    # The checks refuse this menu; built without them, the engine still stops.
    text = """\
languages: [en-US]
default_language: en-US
start: a
fallback: a
nodes:
  a:
    type: branch
    branches:
      - when: {attribute: vip, exists: true}
        next: a
    default: b
  b:
    type: branch
    branches:
      - when: {attribute: vip, exists: true}
        next: b
    default: a
"""
    with pytest.raises(EngineError, match=r"^more than 32 automatic moves without input$"):
        step(unchecked(text), start_state(unchecked(text), "CA1", "main"), Start(),
             frozen.now())


def _message_chain(length: int) -> str:
    nodes = "".join(f"  m{i}:\n    type: message\n    prompt: {{say: {{en-US: \"{i}\"}}}}\n"
                    f"    next: m{i + 1}\n" for i in range(length))
    return (f"languages: [en-US]\ndefault_language: en-US\nstart: m0\nfallback: m{length}\n"
            f"nodes:\n{nodes}  m{length}:\n    type: hangup\n")


def test_longest_chain_of_automatic_moves(frozen: FrozenClock) -> None:
    # The hop limit counts every node entered, the one that stops included.
    ok = build(("main", _message_chain(MAX_AUTOMATIC_HOPS - 1)))
    actions = Call(ok, frozen).send(Start())
    assert len(actions) == MAX_AUTOMATIC_HOPS
    assert actions[-1] == Hangup()
    # The checker refuses such a chain; should one get past it, the engine stops.
    lm, _ = load_menu_text(_message_chain(MAX_AUTOMATIC_HOPS), Path("main.yaml"))
    assert lm is not None
    assert [str(p) for p in check_bundle({"main": lm})] == [
        "main.yaml:6:3: error: nodes.m0: 32 messages, hours, branches and sub-menus in a row "
        "from here; at most 31 can be played without the caller"]
    too_long = unchecked(_message_chain(MAX_AUTOMATIC_HOPS))
    with pytest.raises(EngineError, match="automatic moves"):
        Call(too_long, frozen).send(Start())


def test_reference_to_a_missing_node_raises_engine_error(frozen: FrozenClock) -> None:
    bundle = unchecked(GATHER_KEYS.replace("{options}", '      "1": {next: nowhere}'))
    call = Call(bundle, frozen)
    call.send(Start())
    with pytest.raises(EngineError, match=r"^node 'nowhere' does not exist$"):
        call.send(Gathered(digits="1"))


def test_state_at_a_missing_node_raises_engine_error(bundle: MenuBundle) -> None:
    state = CallState("CA1", bundle.version, "main", "gone", "en-US")
    with pytest.raises(EngineError, match=r"^node 'gone' does not exist$"):
        step(bundle, state, Gathered(digits="1"), MONDAY_10)


def test_state_in_a_missing_menu_raises_engine_error(bundle: MenuBundle) -> None:
    state = CallState("CA1", bundle.version, "gone", "main", "en-US")
    with pytest.raises(EngineError, match=r"^menu 'gone' is not in version "):
        step(bundle, state, Gathered(digits="1"), MONDAY_10)


# ---------------------------------------------------------------- the demo menus


@pytest.fixture(scope="module")
def demo() -> MenuBundle:
    bundle, report = load_directory(DEMO_MENUS, "main")
    assert report.problems == []
    assert bundle is not None
    return bundle


def test_demo_call_in_english_to_an_internet_technician(demo: MenuBundle) -> None:
    call = Call(demo, FrozenClock(MONDAY_10))
    (gather,) = call.send(Start())
    assert isinstance(gather, Gather)
    assert (gather.language, gather.num_digits, gather.input) == ("he-IL", 1, ("dtmf", "speech"))
    assert call.state.path[0]["outcome"] == "open"
    call.send(Gathered(digits="2"))
    assert call.state.language == "en-US"
    (gather,) = call.send(Gathered(digits="2"))
    assert isinstance(gather, Gather)
    assert (call.state.menu, call.state.node) == ("support", "support_menu")
    assert gather.prompts[0] == Say(
        "If the fault you reported has come back, press 1. For an internet fault, press 2. "
        "For a TV fault, press 3. To go back to the main menu, press star.",
        "en-US", "Polly.Joanna-Neural")
    assert call.send(Gathered(speech="my internet is down")) == (
        Enqueue("support-internet", "en-US"),)
    # The internet queue is full: the general support queue; that fails too: goodbye.
    assert call.send(QueueEnded("queue-full")) == (Enqueue("support", "en-US"),)
    assert call.send(QueueEnded("error")) == (
        Say("Sorry, we cannot connect you right now. Please try again later.", "en-US",
            "Polly.Joanna-Neural"),
        Hangup(),
    )
    assert call.state.ended


def test_demo_call_in_hebrew_to_billing(demo: MenuBundle) -> None:
    call = Call(demo, FrozenClock(MONDAY_10))
    call.send(Start())
    call.send(Gathered(digits="1"))
    assert call.send(Gathered(speech="חיוב")) == (
        Say("מעבירים אתכם למחלקת החשבונות.", "he-IL", "Google.he-IL-Standard-A"),
        Enqueue("billing", "he-IL"),
    )


@pytest.mark.parametrize(("now", "text"), [
    (datetime(2026, 1, 9, 11, 30, tzinfo=UTC),  # Friday 13:30
     "We are closed now. Our hours are Sunday to Thursday 8 to 8, Friday 8 to 1. Goodbye."),
    (datetime(2026, 9, 21, 7, 0, tzinfo=UTC),  # Yom Kippur
     "We are closed today for the holiday. Happy holiday, goodbye."),
])
def test_demo_outside_hours(demo: MenuBundle, now: datetime, text: str) -> None:
    state = start_state(demo, "CA1", "main")
    state = CallState(state.call_sid, state.version, state.menu, state.node, "en-US")
    result = step(demo, state, Start(), now)
    assert result.actions == (Say(text, "en-US", "Polly.Joanna-Neural"), Hangup())
    assert result.state.ended


def test_demo_silent_caller_reaches_an_operator(demo: MenuBundle) -> None:
    call = Call(demo, FrozenClock(MONDAY_10))
    call.send(Start())
    for _ in range(2):
        call.send(Gathered())
    # Three silences at the language menu: on to the main menu (its on_failure) ...
    (gather,) = call.send(Gathered())
    assert isinstance(gather, Gather)
    assert call.state.node == "main_menu"
    for _ in range(2):
        call.send(Gathered())
    # ... and three more there: the fallback, an operator.
    assert call.send(Gathered()) == (
        Say("מעבירים אתכם לנציג.", "he-IL", "Google.he-IL-Standard-A"),
        Enqueue("operator", "he-IL"),
    )
    assert call.send(QueueEnded("queue-full"))[-1] == Hangup()
    assert call.state.node == "sorry_goodbye"


@pytest.mark.parametrize(("text", "attributes", "zone", "spoken"), [
    ("Hello {tier} customer", {"tier": "premium"}, "UTC", "Hello premium customer"),
    # an ISO timestamp spoken as local time (Jerusalem: UTC+2 in winter, +3 in summer)
    ("reported at {t:time}", {"t": "2026-11-23T07:05:00+00:00"}, "Asia/Jerusalem",
     "reported at 09:05"),
    ("reported at {t:time}", {"t": "2026-06-01T07:05:00+00:00"}, "Asia/Jerusalem",
     "reported at 10:05"),
    ("reported at {t:time}", {"t": "2026-06-01T07:05:00"}, "UTC", "reported at 07:05"),
    # a value the caller does not have is left out, never spoken as "{...}" or "None"
    ("at {t:time}.", {}, "UTC", "at ."),
    ("at {t:time}.", {"t": "not a time"}, "UTC", "at ."),
    ("tier {tier}", {"tier": None}, "UTC", "tier "),
    ("no placeholders", {"tier": "x"}, "UTC", "no placeholders"),
])
def test_fill(text: str, attributes: dict[str, Any], zone: str, spoken: str) -> None:
    from ivr.menu.engine import fill

    assert fill(text, attributes, zone) == spoken


# ---------------------------------------------------------------- found by mutation testing
# (tests/mutation.sh): behaviour that a changed engine kept passing before these.

SPEECH = """\
languages: [en-US, he-IL]
default_language: en-US
start: ask
fallback: bye
nodes:
  ask:
    type: menu
    input: [dtmf, speech]
    prompt: {say: {en-US: "Say it.", he-IL: "אמרו."}}
    options:
      "1": {next: bye, speech: {en-US: [back, main menu]}}
      "2": {next: bye, speech: {en-US: [go back to the main menu]}}
      "3": {next: bye, speech: {en-US: [billing department]}}
      "4": {next: bye, speech: {en-US: [billing]}}
      "5": {next: bye, speech: {en-US: [agent]}}
      "6": {next: bye, speech: {en-US: [human]}}
      "7": {next: bye, speech: {he-IL: [ראוטר], en-US: [router]}}
      "8": {next: bye, speech: {he-IL: [netflix], en-US: [television]}}
  bye: {type: hangup}
"""


def _speech_node() -> MenuNode:
    node = _loaded(SPEECH, "main").menu.nodes["ask"]
    assert isinstance(node, MenuNode)
    return node


@pytest.mark.parametrize(("language", "speech", "key"), [
    # The longest phrase heard wins, wherever its option is listed: a later option ...
    ("en-US", "go back to the main menu", "2"),  # not "back" or "main menu" (option 1)
    ("en-US", "back", "1"),
    ("en-US", "main menu please", "1"),
    # ... or an earlier one.
    ("en-US", "the billing department please", "3"),  # not "billing" (option 4)
    ("en-US", "billing", "4"),
    # Phrases of equal length: the option listed first, whatever the order they were said in.
    ("en-US", "agent or human", "5"),
    ("en-US", "a human agent", "5"),
    # The call's language first, even over a longer phrase of another language ...
    ("en-US", "netflix on my router", "7"),
    ("he-IL", "netflix on my router", "8"),
    # ... then any language's phrases.
    ("he-IL", "router", "7"),
    ("en-US", "netflix", "8"),
])
def test_match_option_prefers_the_longest_phrase(language: str, speech: str, key: str) -> None:
    assert match_option(_speech_node(), language, None, speech) == key


def test_speech_is_matched_in_the_calls_language_first(frozen: FrozenClock) -> None:
    call = Call(unchecked(SPEECH), frozen)  # the checks want phrases in every language
    call.send(Start())
    assert call.send(Gathered(speech="netflix on my router")) == (Hangup(),)
    assert call.state.path[1]["option"] == "7"


@pytest.mark.parametrize(("language", "hints"), [
    # An option without phrases in the call's language, or in the language it switches to,
    # adds no hints for it (and is no error).
    ("en-US", ("billing",)),
    ("he-IL", ("אנגלית",)),
])
def test_hints_skip_options_without_phrases_in_the_language(frozen: FrozenClock, language: str,
                                                            hints: tuple[str, ...]) -> None:
    menu = """\
languages: [en-US, he-IL]
default_language: en-US
start: ask
fallback: bye
nodes:
  ask:
    type: menu
    input: [speech]
    prompt: {say: {en-US: "Say it.", he-IL: "אמרו."}}
    options:
      "1": {next: bye, speech: {en-US: [billing]}}
      "2": {next: bye, language: en-US, speech: {he-IL: [אנגלית]}}
  bye: {type: hangup}
"""
    bundle = unchecked(menu)
    state = start_state(bundle, "CA1", "main", {"preferred_language": language})
    (gather,) = step(bundle, state, Start(), MONDAY_10).actions
    assert isinstance(gather, Gather)
    assert (gather.language, gather.hints) == (language, hints)


@pytest.mark.parametrize(("play", "language", "url"), [
    ({"he-IL": "https://audio.test/he.mp3", "en-US": "https://audio.test/en.mp3"}, "he-IL",
     "https://audio.test/he.mp3"),
    # No recording in the call's language: the menu's default language's (en-US) ...
    ({"fr-FR": "https://audio.test/fr.mp3", "en-US": "https://audio.test/en.mp3"}, "he-IL",
     "https://audio.test/en.mp3"),
    # ... else the first one listed.
    ({"fr-FR": "https://audio.test/fr.mp3", "de-DE": "https://audio.test/de.mp3"}, "he-IL",
     "https://audio.test/fr.mp3"),
])
def test_render_prompt_recording_per_language(play: dict[str, str], language: str,
                                              url: str) -> None:
    menu = _loaded(MAIN, "main").menu
    assert render_prompt(Prompt(play=play), menu, language) == (Play(url),)


PLACEHOLDERS = """\
languages: [en-US]
default_language: en-US
timezone: Asia/Jerusalem
start: hello
fallback: bye
nodes:
  hello:
    type: message
    prompt: {say: {en-US: "Hello {first_name}, we call you back at {callback_at:time}."}}
    next: ask
  ask:
    type: menu
    prompt: {say: {en-US: "Press 1 for {callback_at:time}, {first_name}."}}
    no_input_prompt: {play: "https://audio.test/silence.mp3"}
    options:
      "1": {next: bye}
  bye: {type: hangup}
"""


def test_prompts_in_the_step_result_are_filled_in(frozen: FrozenClock) -> None:
    bundle = unchecked(PLACEHOLDERS)  # the checks want the attributes declared
    attributes = {"first_name": "Dana", "callback_at": "2026-01-05T12:30:00+00:00"}
    call = Call(bundle, frozen, entry="main", attributes=attributes)
    ask = Gather(prompts=(Say("Press 1 for 14:30, Dana.", "en-US", None),), input=("dtmf",),
                 timeout=5,
                 num_digits=1, finish_on_key="#", language="en-US", hints=())
    # Spoken in the menu's time zone (Jerusalem, UTC+2 in January).
    assert call.send(Start()) == (Say("Hello Dana, we call you back at 14:30.", "en-US", None),
                                  ask)
    # A recording before the text in one Gather: the text is filled, the recording kept.
    silence = Play("https://audio.test/silence.mp3")
    assert call.send(Gathered()) == (Gather(prompts=(silence, *ask.prompts), input=("dtmf",),
                                            timeout=5, num_digits=1, finish_on_key="#",
                                            language="en-US", hints=()),)
    # The state keeps the attributes, not the filled text.
    assert call.state.attributes == attributes


@pytest.fixture
def server_zone() -> Iterator[None]:
    """The server's own zone is not UTC (a naive time must not be read in it)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.mark.usefixtures("server_zone")
@pytest.mark.parametrize(("value", "spoken"), [
    ("2026-01-05T08:00:00", "10:00"),  # naive: taken as UTC, not as the server's zone
    ("2026-01-05T10:00:00+02:00", "10:00"),  # an offset is kept
    ("2026-01-05T03:00:00-05:00", "10:00"),
])
def test_fill_time_zones(value: str, spoken: str) -> None:
    from ivr.menu.engine import fill

    assert fill("{t:time}", {"t": value}, "Asia/Jerusalem") == spoken


@pytest.mark.parametrize(("attributes", "language"), [
    ({"preferred_language": "he-IL"}, "he-IL"),
    ({"preferred_language": "fr-FR"}, "en-US"),  # the menu does not speak it: its default
    ({}, "en-US"),
])
def test_start_state_speaks_the_customers_language(bundle: MenuBundle,
                                                   attributes: dict[str, Any],
                                                   language: str) -> None:
    assert start_state(bundle, "CA1", "main", attributes).language == language


def test_no_input_reprompt_in_the_calls_language(bundle: MenuBundle,
                                                  frozen: FrozenClock) -> None:
    call = Call(bundle, frozen, attributes={"preferred_language": "he-IL"})
    call.send(Start())
    assert call.send(Gathered()) == (
        main_gather("he-IL", (Say("לא שמענו אתכם.", "he-IL", HE_VOICE),)),)


IDENTIFY = """\
languages: [en-US, he-IL]
default_language: en-US
start: who
fallback: general
nodes:
  who:
    type: identify
    prompt: {say: {en-US: "Your account number?", he-IL: "מספר החשבון?"}}
    invalid_prompt: {say: {en-US: "Not found.", he-IL: "לא נמצא."}}
    max_attempts: 2
    min_digits: 4
    max_digits: 8
    timeout: 9
    identified: known
    failed: unidentified
  known: {type: queue, queue: known, on_failure: bye}
  unidentified: {type: queue, queue: unidentified, on_failure: bye}
  general: {type: queue, queue: general, on_failure: bye}
  bye: {type: hangup}
"""


def _ask_account(language: str, lead: tuple[Say, ...] = ()) -> Gather:
    text = {"en-US": "Your account number?", "he-IL": "מספר החשבון?"}[language]
    return Gather(prompts=(*lead, Say(text, language, None)), input=("dtmf",), timeout=9,
                  num_digits=None, finish_on_key="#", language=language, hints=())


def _entry(event: str, node: str = "who", **extra: Any) -> dict[str, Any]:
    return {"at": AT, "menu": "main", "node": node, "event": event, **extra}


@pytest.mark.parametrize(("typed", "digits"), [
    ("1234", "1234"), ("12345678", "12345678"),  # min_digits and max_digits are allowed
    ("1234#", "1234"), (" 1234 ", "1234"),
    ("1234X", None), ("X1234", None), ("#", None), ("", None),
])
def test_account_digits_bounds(typed: str, digits: str | None) -> None:
    node = _loaded(IDENTIFY, "main").menu.nodes["who"]
    assert isinstance(node, IdentifyNode)
    assert account_digits(node, typed) == digits


@pytest.mark.parametrize("language", ["en-US", "he-IL"])
def test_identify_asks_for_the_account_on_the_keypad(frozen: FrozenClock,
                                                      language: str) -> None:
    call = Call(build(("main", IDENTIFY)), frozen, attributes={"preferred_language": language})
    assert call.send(Start()) == (_ask_account(language),)
    assert call.state.path == (_entry("prompt"),)


@pytest.mark.parametrize(("preferred", "language"), [
    ("he-IL", "he-IL"),  # known now: the call speaks the customer's language
    ("fr-FR", "en-US"),  # a language the menu does not speak: unchanged
    (None, "en-US"),
])
def test_a_found_account_is_logged_masked_and_switches_language(
        frozen: FrozenClock, preferred: str | None, language: str) -> None:
    call = Call(build(("main", IDENTIFY)), frozen)
    call.send(Start())
    match = {"identified": True, "tier": "gold", "preferred_language": preferred}
    assert call.send(AccountEntered("12345678", match)) == (Enqueue("known", language),)
    assert call.state.language == language
    assert call.state.attributes == match
    assert call.state.path[1:] == (
        _entry("identify", outcome="account", digits="***78"),
        _entry("queue", node="known", queue="known"),
    )


@pytest.mark.parametrize(("failed", "queue"), [
    ("unidentified", "unidentified"),
    (None, "general"),  # no failed node: the menu's fallback
])
def test_an_unknown_account_asks_again_then_fails(frozen: FrozenClock, failed: str | None,
                                                  queue: str) -> None:
    text = IDENTIFY if failed else (
        IDENTIFY.replace("    failed: unidentified\n", "")
        .replace("  unidentified: {type: queue, queue: unidentified, on_failure: bye}\n", ""))
    call = Call(build(("main", text)), frozen, attributes={"preferred_language": "he-IL"})
    call.send(Start())
    assert call.send(AccountEntered("12345678", None)) == (
        _ask_account("he-IL", (Say("לא נמצא.", "he-IL", None),)),)
    assert (call.state.invalid, call.state.path[-1]) == (
        1, _entry("identify", outcome="not_found", count=1))
    # Too short: not found again, the last attempt; the caller hears so, then goes on.
    assert call.send(Gathered(digits="12")) == (Say("לא נמצא.", "he-IL", None),
                                                Enqueue(queue, "he-IL"))
    assert call.state.path[2:] == (
        _entry("identify", outcome="not_found", count=2),
        _entry("failure", reason="not_identified"),
        _entry("queue", node=queue, queue=queue),
    )


def test_an_identified_caller_is_not_asked(frozen: FrozenClock) -> None:
    call = Call(build(("main", IDENTIFY)), frozen, attributes={"identified": True})
    assert call.send(Start()) == (Enqueue("known", "en-US"),)
    assert call.state.path == (_entry("identify", outcome="already"),
                               _entry("queue", node="known", queue="known"))


QUEUE_PRIORITY = """\
languages: [en-US]
default_language: en-US
start: q
fallback: q
nodes:
  q:
    type: queue
    queue: support
    priority:
      - {when: {attribute: open_incidents, at_least: 1000}, priority: 5}
      - {when: {attribute: tier, equals: gold}, priority: 10}
      - {when: {attribute: tier, equals: trial}, priority: -3}
"""


@pytest.mark.parametrize(("attributes", "priority"), [
    ({}, 0),  # no rule holds
    ({"tier": "silver"}, 0),
    ({"open_incidents": 5000}, 5),
    ({"tier": "gold"}, 10),
    ({"tier": "gold", "open_incidents": 5000}, 10),  # the highest of the rules that hold
    ({"tier": "trial"}, -3),  # a lower priority than a caller no rule matches
])
def test_queue_priority(attributes: dict[str, Any], priority: int) -> None:
    node = _loaded(QUEUE_PRIORITY, "main").menu.nodes["q"]
    assert isinstance(node, QueueNode)
    assert queue_priority(node, attributes) == priority


@pytest.mark.parametrize("now", [
    datetime(2026, 1, 5, 19, 0, tzinfo=UTC),  # 21:00: closed
    datetime(2026, 1, 6, 9, 0, tzinfo=UTC),  # the flood (an emergency closure)
    datetime(2026, 9, 21, 7, 0, tzinfo=UTC),  # Yom Kippur
])
def test_always_open_answers_every_hours_node_open(bundle: MenuBundle, now: datetime) -> None:
    state = CallState("CA1", bundle.version, "main", "hours", "en-US")
    result = step(bundle, state, Start(), now, always_open=True)
    assert result.actions == (Say("We are open.", "en-US", EN_VOICE), Enqueue("operators", "en-US"))
    assert result.state.path[0] == {"at": now.isoformat(timespec="milliseconds"), "menu": "main",
                                    "node": "hours", "event": "hours", "outcome": "open",
                                    "reason": "demo: open at any hour"}
    # Without it (the default) the schedule decides.
    assert step(bundle, state, Start(), now).state.path[0]["outcome"] != "open"
