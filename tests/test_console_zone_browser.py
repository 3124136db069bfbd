"""The console in a browser whose clock is in another time zone (New York) than the centre
(Jerusalem), against the real server with callbacks on, on both databases.

Times are the centre's, and the page says so: the supervisor sees a callback's deadline as
the time the caller was told, not the browser's; the agent's callback pop says the same
time; a promise typed as "12:00" is noon at the centre. And a wrap-up half typed survives a
reload and signing in again, and is forgotten once it is saved.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from playwright.sync_api import Browser, Page
from sqlalchemy import select

from callbacks.models import CallbackRequest
from crm_sync.models import interactions
from ivr.core.db import make_engine
from ivr.core.settings import Settings
from tests.agent_flow import TwilioDriver
from tests.callback_flow import CallbackDriver, RecordingDialer, spoken
from tests.conftest import TOKEN
from tests.live_server import LiveServer
from tests.test_console_browser import AGENT_NAME, DANA, DANA_E164, Console, _seed, browser
from tests.test_console_callbacks_browser import cb_server, dialer

__all__ = ["browser", "cb_server", "dialer"]  # the fixtures, imported for pytest

CENTRE = ZoneInfo("Asia/Jerusalem")
BROWSER_ZONE = "America/New_York"
DRAFT = {"#wu-topic": "חיוב כפול", "#wu-outcome": "callback promised",
         "#wu-promise": "להחזיר את החיוב הכפול", "#wu-due": "2026-11-24T12:00",
         "#wu-notes": "הלקוחה כועסת\nביקשה שיחזרו אליה", "#wu-leaving": "price"}


def _deadline(settings: Settings) -> datetime:
    engine = make_engine(settings.database_url, 1)
    try:
        with engine.connect() as conn:
            return conn.execute(select(CallbackRequest.deadline_at)).scalar_one()
    finally:
        engine.dispose()


def _interaction(settings: Settings, topic: str) -> dict[str, Any]:
    engine = make_engine(settings.database_url, 1)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(select(interactions).where(
                interactions.c.topic == topic)).mappings().one())
    finally:
        engine.dispose()


def _draft_on_screen(page: Page) -> dict[str, str]:
    return {selector: page.input_value(selector) for selector in DRAFT}


def _drafts_stored(page: Page) -> list[str]:
    return list(page.evaluate(
        "() => [localStorage, sessionStorage].flatMap((s) => Object.keys(s))"
        ".filter((k) => k.includes('wrapup'))"))


def test_times_in_the_centres_zone_and_a_wrap_up_draft_that_survives(
        cb_server: LiveServer, browser: Browser, settings: Settings,
        dialer: RecordingDialer) -> None:
    clock = cb_server.clock
    _seed(settings, clock.now())
    contexts = [browser.new_context(viewport={"width": 1366, "height": 900},
                                    timezone_id=BROWSER_ZONE, locale="en-GB")
                for _ in range(2)]
    agent, boss = (Console(ctx.new_page(), clock) for ctx in contexts)
    page = agent.page
    try:
        for c, who, password in ((agent, "rina", "s3cret-pass"), (boss, "noa", "b0ss-pass")):
            c.page.goto(f"{cb_server.url}/agent/")
            c.sign_in(who, password)
            c.page.locator("#zone", has_text="Asia/Jerusalem").wait_for()
            assert c.text("#zone") == "Times in Asia/Jerusalem"
        assert page.get_by_label("Promised by (Asia/Jerusalem time)", exact=True).count() == 1

        with httpx.Client(base_url=cb_server.url, timeout=10) as http:
            twilio = TwilioDriver(http, cb_server.url, TOKEN)
            cb = CallbackDriver(twilio)
            sid = twilio.start(DANA_E164, ["2"])
            cb.accept_offer(sid)
            told = spoken(cb.press(sid, "1"))
            twilio.caller_hangs_up(sid)
            local = _deadline(settings).astimezone(CENTRE).strftime("%H:%M")
            assert local in told, (local, told)  # what the caller heard
            elsewhere = _deadline(settings).astimezone(ZoneInfo(BROWSER_ZONE)).strftime("%H:%M")
            assert elsewhere != local

            # The supervisor in New York sees the deadline the caller was told.
            deadline = boss.page.locator("#sup-callbacks tr[data-request] td.time")
            deadline.wait_for()
            assert deadline.inner_text() == local

            # The agent's callback pop: the same time.
            page.keyboard.press("Enter")  # Available
            page.locator("#callback-banner").wait_for()
            assert agent.text("#caller-name") == DANA
            assert f"we promised to call by {local} " in agent.text("#callback-banner")
            key = str(page.get_attribute("#call", "data-call-sid"))
            call = dialer.placed[0]
            cb.answer(call)
            cb.agent_answers(call)
            agent.wait_call_status("answered")
            # The supervisor sees the agent on a callback to Dana, not its key.
            boss.page.locator("#sup-agents tr", has_text=AGENT_NAME).filter(
                has_text=f"{DANA} (callback)").wait_for()
            cb.dial_ends(call)
            agent.wait_call_status("ended")

        # Half the wrap-up typed, then a reload and a new sign-in: nothing typed is lost.
        for selector, value in DRAFT.items():
            if selector == "#wu-leaving":
                page.select_option(selector, value)
            else:
                page.fill(selector, value)
        page.get_by_label("Resolved on this call", exact=True).check()
        page.locator("#wrapup-form fieldset").get_by_label("internet-down").check()
        page.reload()
        agent.wait_pop(key)
        agent.wait_call_status("ended")
        assert _draft_on_screen(page) == DRAFT
        assert page.is_checked("#wu-resolved")
        assert page.locator("#wrapup-form fieldset").get_by_label("internet-down").is_checked()
        page.get_by_role("button", name="Sign out").click()
        agent.sign_in("rina", "s3cret-pass")
        agent.wait_pop(key)
        agent.wait_call_status("ended")
        assert _draft_on_screen(page) == DRAFT
        assert page.locator("#wrapup-form fieldset").get_by_label("internet-down").is_checked()

        page.get_by_role("button", name="Save wrap-up").click()
        page.wait_for_function("() => document.getElementById('call').hidden")
        agent.wait_state("available")
        assert _drafts_stored(page) == []  # saved: the draft is gone
        saved = _interaction(settings, DRAFT["#wu-topic"])
        assert (saved["outcome"], saved["resolved"], saved["leaving_reason"]) == (
            "callback promised", True, "price")
        assert saved["notes"] == DRAFT["#wu-notes"]
        # "12:00" typed in New York is noon at the centre (10:00 UTC in November).
        assert saved["promised_due_at"] == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
        page.reload()
        agent.wait_state("available")
        assert re.fullmatch(r"\s*", page.input_value("#wu-topic"))  # nothing comes back
    finally:
        for ctx in contexts:
            ctx.close()
    for c in (agent, boss):
        assert c.dialogs == [] and c.errors == []
