"""The transfers part of the console (issue 16), checked without a browser: every word it
shows is in the catalog in both languages, the page loads it where it hears the console's
first event, and every console event it listens to is one console.js sends.

(The browser test, tests/test_transfers_browser.py, drives it for real.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ivr.i18n import catalog

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "ivr" / "agents" / "static"
SCRIPT = (STATIC / "transfers.js").read_text(encoding="utf-8")
CONSOLE = (STATIC / "console.js").read_text(encoding="utf-8")
PAGE = (STATIC / "console.html").read_text(encoding="utf-8")
PREFIX = "transfers.ui."

# The values the script puts into a key (tr(`why_${reason}`) …): the API contract's lists.
EXPANSIONS = {
    "kind_": ("queue", "agent", "external"),
    "target_": ("queue", "agent", "external"),
    "state_": ("reserved", "on_call", "wrap_up"),
    "st_": ("pending", "ringing", "consulting", "joined", "completed", "canceled", "failed"),
    "sup_state_": ("pending", "ringing", "consulting", "joined"),
    "why_": ("no-answer", "busy", "declined", "failed", "hung-up", "rest-failed", "closed",
             "abandoned", "interrupted", "canceled"),
    "back_": ("first-agent", "queue", "callback"),
}


def first_arguments(script: str) -> list[str]:
    """The text of the first argument of every tr(…) call."""
    out = []
    for match in re.finditer(r"\btr\(", script):
        depth, i = 0, match.end()
        start = i
        while i < len(script):
            c = script[i]
            if c in "([{":
                depth += 1
            elif c in ")]}":
                if depth == 0:
                    break
                depth -= 1
            elif c == "," and depth == 0:
                break
            i += 1
        out.append(script[start:i].strip())
    return out


def used_keys(script: str) -> set[str]:
    keys: set[str] = set()
    for arg in first_arguments(script):
        template = re.fullmatch(r"`([\w-]+)\$\{[^}]+\}`", arg)
        if template:
            prefix = template.group(1)
            assert prefix in EXPANSIONS, f"tr(`{prefix}${{…}}`): add its values to EXPANSIONS"
            keys.update(prefix + value for value in EXPANSIONS[prefix])
            continue
        table = re.fullmatch(r"""(\w+)\[[^\]]+\]\s*\|\|\s*["']([\w-]+)["']""", arg)
        if table:  # TABLE[x] || "default": the table's values and the default
            body = re.search(rf"const {table.group(1)} = \{{([^}}]*)\}}", script)
            assert body, f"tr({arg}): no const {table.group(1)} = {{…}}"
            keys.update(re.findall(r"""["']([\w-]+)["']""", body.group(1)))
            keys.add(table.group(2))
            continue
        # A literal, or literals chosen by a conditional (those after ? and :).
        found = re.findall(r"""(?:^|[?:])\s*["']([\w.-]+)["']""", arg)
        assert found, f"tr({arg}): a key the test cannot read"
        keys.update(found)
    return keys


def test_every_word_is_in_the_catalog_in_both_languages() -> None:
    books = catalog()
    keys = used_keys(SCRIPT)
    assert {"hold", "resume", "join", "handover", "cancel", "from_line", "monitor",
            "barge", "queue_closed", "why_no-answer", "back_first-agent"} <= keys
    reasons = re.search(r"const REASONS = new Set\(\[([^\]]*)\]\)", SCRIPT)
    assert reasons is not None
    assert set(re.findall(r'"([\w-]+)"', reasons.group(1))) == set(EXPANSIONS["why_"])
    missing = sorted(k for k in keys if PREFIX + k not in books.entries)
    assert missing == []
    for key in keys:
        entry = books.entries[PREFIX + key]
        assert set(entry) >= {"en", "he"}, key


def test_the_words_an_agent_reads() -> None:
    books = catalog()
    assert books.text("en", PREFIX + "from_line", by="Noa Mizrahi", queue="billing",
                      after=books.text("en", PREFIX + "minutes", count=4)) == (
        "transferred by Noa Mizrahi from billing after 4 min")
    assert books.text("he", PREFIX + "minutes", count=2) == "שתי דקות"
    assert "callback" in books.text("en", PREFIX + "queue_closed", name="billing")
    assert books.text("en", PREFIX + "cancel") == "Cancel — take the caller back"


def test_the_page_loads_it_before_the_console_and_after_the_words() -> None:
    scripts = re.findall(r'<script src="([^"]+)" defer></script>', PAGE)
    assert scripts.index("/agent/static/transfers.js") < scripts.index(
        "/agent/static/console.js")
    assert scripts.index("/agent/static/i18n.js") < scripts.index("/agent/static/transfers.js")
    assert '<link rel="stylesheet" href="/agent/static/transfers.css">' in PAGE
    for box in ('id="xfer"', 'id="xfer-from"', 'id="sup-xfer"'):
        assert box in PAGE, box


def test_every_console_event_it_listens_to_is_sent() -> None:
    heard = set(re.findall(r"""addEventListener\(\s*["']console:(\w+)["']""", SCRIPT))
    sent = set(re.findall(r"""\bhook\(\s*["'](\w+)["']""", CONSOLE))
    assert heard == {"stream", "me", "screenpop", "status", "clear", "board"}
    assert heard <= sent, heard - sent
    # ... and the stream's own events, as the transfer API names them.
    # ... and what it asks of console.js.
    asked = set(re.findall(r"""new CustomEvent\(\s*["']console:(\w+)["']""", SCRIPT))
    listened = set(re.findall(r"""addEventListener\(\s*["']console:(\w+)["']""", CONSOLE))
    assert asked == {"drop", "answered"}
    assert asked <= listened, asked - listened
    stream = set(re.findall(r"""source\.addEventListener\(\s*["'](\w+)["']""", SCRIPT))
    assert stream == {"hold", "transfer", "call"}


@pytest.mark.parametrize("name", ["transfers.js", "transfers.css"])
def test_served(client: TestClient, name: str) -> None:
    response = client.get(f"/agent/static/{name}")
    assert response.status_code == 200
    assert response.text == (STATIC / name).read_text(encoding="utf-8")
    page = client.get("/agent/")
    assert f"/agent/static/{name}" in page.text
