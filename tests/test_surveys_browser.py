"""The post-call survey in the console, in a real browser (Chromium through Playwright)
against the real server, on both databases: a caller rates the call 1/5 after the agent
hangs up; the supervisor's console shows the low score live (the `survey` event of the
stream), and the agent's next pop of that customer says "Last call rated 1/5"."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from ivr.app import create_app
from ivr.core.settings import Settings
from tests.agent_flow import TwilioDriver, stand_in_of
from tests.conftest import OPEN_TIME, TOKEN
from tests.live_server import LiveServer, RunningClock, ServerThread
from tests.test_console_browser import (
    AGENT_NAME,
    DANA,
    DANA_E164,
    Console,
    _seed,
    browser,
)
from tests.test_surveys import SURVEYS, follow

__all__ = ["browser"]  # the fixture, imported for pytest

#: Seconds a step may take on a loaded machine (the console waits 5 s by default).
SLOW = 20.0


@pytest.fixture
def survey_server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    path = tmp_path / "surveys.yaml"
    path.write_text(SURVEYS, encoding="utf-8")
    configured = settings.model_copy(update={"surveys_file": path,
                                             "route_every_seconds": 0.2})
    clock = RunningClock(OPEN_TIME)
    app = create_app(configured, clock)
    thread = ServerThread(app)
    thread.start()
    try:
        yield LiveServer(app, clock, thread.host, thread.port)
    finally:
        thread.stop()


def test_a_live_low_csat_alert_and_the_rating_on_the_next_pop(
        survey_server: LiveServer, browser: Browser, settings: Settings) -> None:
    clock = survey_server.clock
    _seed(settings, clock.now())
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000},
                                    timezone_id="Asia/Jerusalem", locale="en-GB")
                for _ in range(2)]
    console, boss = (Console(c.new_page(), clock) for c in contexts)
    try:
        for c, who, password in ((console, "rina", "s3cret-pass"), (boss, "noa", "b0ss-pass")):
            c.page.goto(f"{survey_server.url}/agent/")
            c.sign_in(who, password)
        boss.page.locator("#sup-surveys .empty").wait_for()
        assert boss.text("#sup-surveys") == "No low scores since you signed in."
        console.page.keyboard.press("Enter")  # focus is on the availability toggle
        console.wait_state("available", timeout=SLOW)

        with httpx.Client(base_url=survey_server.url, timeout=10) as http:
            twilio = TwilioDriver(http, survey_server.url, TOKEN,
                                  conferences=stand_in_of(survey_server.app))
            sid = twilio.start(DANA_E164, ["2"])  # support-open-incidents: surveyed
            twilio.connect(sid)
            console.wait_pop(sid, timeout=SLOW)
            assert console.page.locator("#survey-banner").count() == 0  # never rated
            twilio.agent_answers(sid)
            console.wait_call_status("answered", timeout=SLOW)
            leg = twilio.calls[sid]
            survey = follow(twilio, sid, ET.fromstring(twilio.post(
                leg.dial_action or "", twilio.params(leg, DialCallStatus="completed",
                                                     DialCallSid=leg.agent_leg_sid))))
            console.wait_call_status("ended", timeout=SLOW)
            gather = survey.find("Gather")
            assert gather is not None
            twilio.post(gather.get("action") or "", twilio.params(leg, Digits="1"))

            alert = boss.page.locator("#sup-surveys .survey-alert")
            alert.wait_for()
            text = alert.inner_text()
            assert text.startswith("Rated 1/5 — "), text
            assert DANA in text and AGENT_NAME in text, text
            assert "support-open-incidents" in text
            boss.shot("supervisor-low-csat")

            console.page.get_by_label("Topic", exact=True).fill("internet fault")
            console.page.get_by_label("Outcome", exact=True).fill("escalated")
            console.page.get_by_role("button", name="Save wrap-up").click()
            console.wait_state("available", timeout=SLOW)

            again = twilio.start(DANA_E164, ["2", "1"])
            twilio.connect(again)
            console.wait_pop(again, timeout=SLOW)
            banner = console.page.locator("#survey-banner")
            banner.wait_for()
            assert banner.inner_text().startswith("Last call rated 1/5")
            assert "support-open-incidents" in banner.inner_text()
            console.shot("pop-last-rating")
    finally:
        for context in contexts:
            context.close()
    for c in (console, boss):
        assert c.dialogs == [] and c.errors == []
