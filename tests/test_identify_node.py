"""The identify node in the pure engine: the account lookup arrives in the event."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ivr.menu.bundle import MenuBundle, assemble
from ivr.menu.engine import (
    AccountEntered,
    Enqueue,
    Gather,
    Gathered,
    Say,
    Start,
    account_digits,
    start_state,
    step,
)
from ivr.menu.loader import load_menu_text
from ivr.menu.model import IdentifyNode

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
MENU = """\
languages: [en-US]
default_language: en-US
start: who
fallback: general
nodes:
  who:
    type: identify
    prompt: {say: {en-US: "Your account number?"}}
    invalid_prompt: {say: {en-US: "Not found."}}
    max_attempts: 2
    min_digits: 4
    max_digits: 8
    identified: known
    failed: general
  known: {type: queue, queue: known}
  general: {type: queue, queue: general, on_failure: bye}
  bye: {type: hangup}
"""


def bundle(text: str = MENU) -> MenuBundle:
    lm, problems = load_menu_text(text, Path("main.yaml"))
    assert lm is not None, problems
    b, report = assemble([(Path("main.yaml"), lm, problems)], None, "main")
    assert b is not None, report.problems
    return b


def node() -> IdentifyNode:
    n = bundle().menus["main"].menu.nodes["who"]
    assert isinstance(n, IdentifyNode)
    return n


@pytest.mark.parametrize(("typed", "digits"), [
    ("123456", "123456"), ("123456#", "123456"), ("123", None), ("123456789", None),
    ("12a456", None), ("", None), (None, None),
])
def test_account_digits(typed: str | None, digits: str | None) -> None:
    assert account_digits(node(), typed) == digits


def test_found_account_joins_the_attributes_and_moves_on() -> None:
    b = bundle()
    first = step(b, start_state(b, "CA1", "main"), Start(), NOW)
    assert isinstance(first.actions[0], Gather)
    assert first.actions[0].finish_on_key == "#" and first.actions[0].num_digits is None
    done = step(b, first.state, AccountEntered("123456", {"identified": True, "tier": "gold"}),
                NOW)
    assert done.actions == (Enqueue("known", "en-US"),)
    assert done.state.attributes["tier"] == "gold"


def test_not_found_asks_again_then_gives_up() -> None:
    b = bundle()
    s = step(b, start_state(b, "CA1", "main"), Start(), NOW).state
    again = step(b, s, AccountEntered("123456", None), NOW)
    gather = again.actions[0]
    assert isinstance(gather, Gather)
    assert gather.prompts[0] == Say("Not found.", "en-US", None)
    out = step(b, again.state, Gathered(digits=None), NOW)
    # The last miss is answered too, before the failed path (issue 14, item 8).
    assert out.actions == (Say("Not found.", "en-US", None), Enqueue("general", "en-US"))


def test_identified_caller_skips_the_question() -> None:
    b = bundle()
    state = start_state(b, "CA1", "main", {"identified": True})
    assert step(b, state, Start(), NOW).actions == (Enqueue("known", "en-US"),)
