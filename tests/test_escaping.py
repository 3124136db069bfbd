"""Hostile text stays text: a prompt full of markup is escaped in the TwiML, and a YAML tag
that would build a Python object (``!!python/object/apply:os.system``) is refused by the menu
loader and by the callback policy loader, with a ``file:line:col`` error, and never runs.

(A customer name that is an HTML tag, shown as text in the agent console, is checked in a
real browser by ``tests/test_console_browser.py``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import defusedxml.ElementTree as SafeET
import pytest
from starlette.testclient import TestClient

from callbacks.policy import PolicyError, load_policies
from ivr.app import create_app
from ivr.cli import main
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from ivr.menu.loader import load_menu_file
from tests.twilio import call_params, new_sid, signed_post

HOSTILE = '<script>alert(1)</script> & "x"'

# The prompt is single-quoted YAML: the double quotes and the markup are plain characters.
MENU = """\
languages: [en-US]
default_language: en-US
start: hello
fallback: bye
nodes:
  hello:
    type: message
    prompt: {say: {en-US: 'HOSTILE'}}
    next: choose
  choose:
    type: menu
    prompt: {say: {en-US: 'HOSTILE'}}
    options:
      "1": {next: bye}
  bye:
    type: hangup
""".replace("HOSTILE", HOSTILE)


@pytest.fixture
def hostile_client(settings: Settings, clock: FrozenClock,
                   tmp_path: Path) -> Iterator[TestClient]:
    menus = tmp_path / "hostile-menus"
    menus.mkdir()
    (menus / "main.yaml").write_text(MENU, encoding="utf-8")
    quiet = settings.model_copy(update={"menus_dir": menus, "route_every_seconds": 0})
    with TestClient(create_app(quiet, clock)) as c:
        yield c


def test_markup_in_a_prompt_is_text_in_the_twiml(hostile_client: TestClient) -> None:
    r = signed_post(hostile_client, "/twilio/voice", call_params(new_sid(), "ringing"))
    assert r.status_code == 200
    assert "<script" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in r.text
    root = SafeET.fromstring(r.content)
    # The message's <Say>, then the menu's <Gather> with its own <Say>: nothing else.
    assert [e.tag for e in root.iter()] == ["Response", "Say", "Gather", "Say"]
    says = root.findall(".//Say")
    assert [s.text for s in says] == [HOSTILE, HOSTILE]
    assert all(len(s) == 0 for s in says)  # no child element came out of the text


# -- YAML tags that would run code

# The shapes a python tag takes: a flow list, a block mapping, a bare scalar (a name).
PAYLOADS = [
    '!!python/object/apply:os.system ["echo hi > MARKER"]',
    "!!python/object/apply:os.system\n      args: [\"echo hi > MARKER\"]",
    "!!python/name:os.system MARKER",
    '!local ["echo hi > MARKER"]',
]


def menu_with(value: str) -> str:
    return ("languages: [en-US]\ndefault_language: en-US\nstart: bye\nfallback: bye\n"
            "nodes:\n  bye:\n    type: hangup\n    prompt:\n      say:\n"
            f"        en-US: {value}\n")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_menu_with_a_python_tag_is_refused(payload: str, tmp_path: Path,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "main.yaml"
    path.write_text(menu_with(payload.replace("MARKER", str(marker))), encoding="utf-8")
    menu, problems = load_menu_file(path)
    assert menu is None
    tag = payload.split(maxsplit=1)[0]
    assert [str(p) for p in problems] == [
        f"{path}:10:16: error: nodes.bye.prompt.say.en-US: YAML tag '{tag}' is not allowed: "
        "a menu holds plain text, numbers, lists and mappings"]
    # `ivr menus check` says the same and exits 1 (a user error, not an internal one).
    assert main(["menus", "check", str(path)]) == 1
    out = capfd.readouterr().out
    assert f"YAML tag '{tag}' is not allowed" in out
    assert not marker.exists()
    assert "hi" not in out.split()


POLICY = """\
default:
  business_hours:
    weekly:
      sun: ["08:00-20:00"]
  quiet_hours: "21:00-08:00"
  deadline:
    premium: 15m
    default: 2h
  retry_backoff: [2m, 10m]
  max_attempts: 3
"""


def policy_with(old: str, new: str, tmp_path: Path) -> Path:
    assert POLICY.count(old) == 1
    path = tmp_path / "callbacks.yaml"
    path.write_text(POLICY.replace(old, new), encoding="utf-8")
    return path


def test_the_policy_without_tags_loads(tmp_path: Path) -> None:
    loaded = load_policies(policy_with("max_attempts: 3", "max_attempts: 3", tmp_path))
    assert loaded.default.max_attempts == 3


@pytest.mark.parametrize(("old", "new", "where"), [
    # A list where a list is expected: without the tag check it was accepted as it is.
    ("retry_backoff: [2m, 10m]",
     'retry_backoff: !!python/object/apply:os.system ["echo hi > MARKER"]',
     "9:3: default.retry_backoff"),
    # A mapping where a mapping is expected (the tag on the key's own line).
    ("  deadline:\n", "  deadline: !!python/object/apply:os.system\n", "6:3: default.deadline"),
    ('quiet_hours: "21:00-08:00"', "quiet_hours: !!python/name:os.system MARKER",
     "5:3: default.quiet_hours"),
    ("      sun:", "      sun: !local", "4:7: default.business_hours.weekly.sun"),
])
def test_a_callback_policy_with_a_python_tag_is_refused(
        old: str, new: str, where: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = policy_with(old, new.replace("MARKER", str(marker)), tmp_path)
    with pytest.raises(PolicyError) as err:
        load_policies(path)
    tag = new.split(": ", 1)[1].split(maxsplit=1)[0]
    assert str(err.value) == (f"{path}:{where}: YAML tag '{tag}' is not allowed: a policy "
                              "holds plain text, numbers, lists and mappings")
    assert not marker.exists()


def test_the_exact_tag_of_the_brief_prints_nothing(tmp_path: Path,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "main.yaml"
    path.write_text(menu_with('!!python/object/apply:os.system ["echo hi"]'),
                    encoding="utf-8")
    assert load_menu_file(path)[0] is None
    policy = policy_with(
        "max_attempts: 3", 'max_attempts: !!python/object/apply:os.system ["echo hi"]',
        tmp_path)
    with pytest.raises(PolicyError, match="is not allowed"):
        load_policies(policy)
    captured = capfd.readouterr()
    assert "hi" not in captured.out.split() and "hi" not in captured.err.split()
