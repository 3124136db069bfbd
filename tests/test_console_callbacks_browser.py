"""Callbacks in the console, in a real browser (Chromium through Playwright) against the real
server, on both databases: the supervisor sees the open callback with a countdown that runs,
turns "at risk" then "overdue", and gets the warning pushed; the agent gets the callback's
screen-pop (the promise, the time left, the attempt) before the customer is dialled."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from ivr.app import create_app
from ivr.core.settings import Settings
from tests.agent_flow import TwilioDriver
from tests.callback_flow import CallbackDriver, RecordingDialer
from tests.conftest import OPEN_TIME, TOKEN
from tests.live_server import LiveServer, RunningClock, ServerThread
from tests.test_console_browser import DANA, DANA_E164, Console, _seed, browser

__all__ = ["browser"]  # the fixture, imported for pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def dialer() -> RecordingDialer:
    return RecordingDialer()


@pytest.fixture
def cb_server(settings: Settings, dialer: RecordingDialer) -> Iterator[LiveServer]:
    configured = settings.model_copy(update={
        "callbacks_file": ROOT / "callbacks.yaml", "route_every_seconds": 0.2})
    clock = RunningClock(OPEN_TIME)
    app = create_app(configured, clock, dialer=dialer)
    thread = ServerThread(app)
    thread.start()
    try:
        yield LiveServer(app, clock, thread.host, thread.port)
    finally:
        thread.stop()


def test_supervisor_countdowns_alerts_and_the_callback_pop(
        cb_server: LiveServer, browser: Browser, settings: Settings,
        dialer: RecordingDialer) -> None:
    clock = cb_server.clock
    _seed(settings, clock.now())
    agent_ctx = browser.new_context(viewport={"width": 1400, "height": 1000},
                                    timezone_id="Asia/Jerusalem", locale="en-GB")
    boss_ctx = browser.new_context(viewport={"width": 1400, "height": 1000},
                                   timezone_id="Asia/Jerusalem", locale="en-GB")
    console = Console(agent_ctx.new_page(), clock)
    boss = Console(boss_ctx.new_page(), clock)
    try:
        for c, who, password in ((console, "rina", "s3cret-pass"), (boss, "noa", "b0ss-pass")):
            c.page.goto(f"{cb_server.url}/agent/")
            c.sign_in(who, password)
        with httpx.Client(base_url=cb_server.url, timeout=10) as http:
            twilio = TwilioDriver(http, cb_server.url, TOKEN)
            cb = CallbackDriver(twilio)
            sid = twilio.start(DANA_E164, ["2"])  # premium: 15 minutes
            cb.accept_offer(sid)
            cb.press(sid, "1")
            twilio.caller_hangs_up(sid)

            row = boss.page.locator("#sup-callbacks tr[data-request]")
            row.wait_for()
            assert "support-open-incidents" in row.inner_text()
            assert "+97250***4321" in row.inner_text() and DANA_E164 not in boss.page.content()
            countdown = row.locator("td.countdown")
            first = countdown.inner_text()
            assert first.startswith("14 min") or first == "15 min", first
            boss.page.clock.fast_forward(3000)  # the browser's second hand moves the countdown
            boss.page.wait_for_function(
                "t => document.querySelector('#sup-callbacks td.countdown').textContent !== t",
                arg=first)
            assert "0 at risk" in boss.text("#sup-sla")

            # 12 of the 15 minutes used: the sweep warns, the supervisor is told at once.
            console.advance(12 * 60)
            boss.page.locator("#sup-alerts [data-kind=warning]").wait_for()
            assert "Callback at risk" in boss.text("#sup-alerts")
            boss.page.locator("#sup-callbacks tr.at-risk").wait_for()
            boss.shot("supervisor-callback-at-risk")

            # The agent goes available: the callback's pop comes first, then the dial.
            console.page.keyboard.press("Enter")
            console.page.locator("#callback-banner").wait_for()
            banner = console.text("#callback-banner")
            assert "Callback" in banner and "attempt 1 of 3" in banner and "left" in banner
            assert console.text("#caller-name") == DANA
            assert "internet-down" in console.text("#incidents")
            console.shot("callback-pop")
            assert [p.to for p in dialer.placed] == [DANA_E164]
            call = dialer.placed[0]
            cb.answer(call)
            cb.agent_answers(call)
            console.wait_call_status("answered")
            cb.dial_ends(call)
            console.wait_call_status("ended")
            boss.page.wait_for_function(
                "() => !document.querySelector('#sup-callbacks tr[data-request]')")
            boss.page.wait_for_function(
                "() => document.getElementById('sup-sla').textContent.includes('100.0%')")
    finally:
        agent_ctx.close()
        boss_ctx.close()
    for c in (console, boss):
        assert c.dialogs == [] and c.errors == []
