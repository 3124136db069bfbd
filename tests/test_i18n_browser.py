"""The console in Hebrew (issue 17.5), in a real browser (Debian's Chromium) against the
real server, on both databases.

An agent whose language is Hebrew signs in from a browser set to English in New York: the
page turns right to left with Hebrew labels, and the times of her caller's pop are the
centre's (Jerusalem), in Hebrew with 24-hour clocks — neither the browser's zone nor its
language. She switches to English: the page turns left to right, the same times in English
(still the centre's zone, still 24-hour), and the choice is kept with her (a reload, the
database).
"""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Browser
from sqlalchemy import select, update

from ivr.agents.models import agents
from ivr.core.db import make_engine
from ivr.core.settings import Settings
from tests.agent_flow import TwilioDriver
from tests.conftest import TOKEN
from tests.live_server import LiveServer
from tests.test_console_browser import DANA, DANA_E164, Console, _route, _seed, browser, live_server

__all__ = ["browser", "live_server"]  # the fixtures, imported for pytest

OPENED = "#incidents tr.incident td:first-child time"


def _language(settings: Settings, username: str, value: str | None = None) -> str | None:
    engine = make_engine(settings.database_url, 1)
    try:
        with engine.begin() as conn:
            if value is not None:
                conn.execute(update(agents).where(agents.c.username == username)
                             .values(language=value))
            stored: str | None = conn.execute(select(agents.c.language).where(
                agents.c.username == username)).scalar_one()
            return stored
    finally:
        engine.dispose()


def test_a_hebrew_agent_gets_a_right_to_left_console_and_switches_to_english(
        live_server: LiveServer, browser: Browser, settings: Settings) -> None:
    clock = live_server.clock
    clock.advance(hours=6)  # Monday 16:00 in Jerusalem: an afternoon shows the 24-hour clock
    _seed(settings, clock.now())  # Dana's fault was opened an hour ago, at 15:00
    _language(settings, "rina", "he")
    _language(settings, "noa", "he")  # her supervisor
    context, boss_context = (
        browser.new_context(viewport={"width": 1366, "height": 900},
                            timezone_id="America/New_York", locale="en-US") for _ in range(2))
    console = Console(context.new_page(), clock)
    page = console.page
    html = "() => [document.documentElement.lang, document.documentElement.dir]"
    try:
        page.goto(f"{live_server.url}/agent/")
        console.sign_in("rina", "s3cret-pass")  # the sign-in page: the centre's language
        page.wait_for_function("() => document.documentElement.dir === 'rtl'")
        assert page.evaluate(html) == ["he-IL", "rtl"]
        assert page.evaluate("() => getComputedStyle(document.body).direction") == "rtl"
        assert console.text("#bar .brand") == "עמדת נציג"
        assert console.text("#toggle-available") == "זמין"
        assert console.text("#state-badge") == "לא זמין"
        assert console.text("#idle-title") == "אין שיחה"
        assert console.text("#zone") == "השעות לפי Asia/Jerusalem"
        assert page.title() == "עמדת נציג"
        # The bar mirrors: the brand, first in the bar, is at the right; sign-out at the left.
        brand = page.locator("#bar .brand").bounding_box()
        sign_out = page.locator("#sign-out").bounding_box()
        assert brand and sign_out and brand["x"] > sign_out["x"]
        page.keyboard.press("Enter")  # the toggle has focus: available
        console.wait_state("available")
        assert console.text("#toggle-available") == "יציאה מזמינות"
        assert console.text("#idle-title") == "ממתין לשיחה"

        # Her supervisor, in Hebrew too: the board's words and her state.
        boss = Console(boss_context.new_page(), clock)
        boss.page.goto(f"{live_server.url}/agent/")
        boss.sign_in("noa", "b0ss-pass")
        row = boss.page.locator("#sup-agents tr", has_text="רינה לוי").filter(has_text="זמין")
        row.wait_for()
        assert boss.page.evaluate(html) == ["he-IL", "rtl"]
        assert boss.text("#supervisor-title") == "מפקח/ת"
        assert boss.page.locator("#sup-agents th").all_inner_texts() == [
            "נציג/ה", "מצב", "מאז", "שיחה נוכחית"]
        assert boss.text("#supervisor-updated").startswith("עודכן 16:00:")
        assert boss.text("#sup-sla").startswith("היום: ")
        boss.shot("hebrew-supervisor")

        with httpx.Client(base_url=live_server.url, timeout=10) as http:
            call, _ = _route(TwilioDriver(http, live_server.url, TOKEN), console, DANA_E164,
                             ["2"], hold=20)
        assert console.text("#caller-name") == DANA
        assert console.text("#call-status") == "שיחה נכנסת — מצלצל"
        assert console.text("#waited") == "20 שנ׳"
        assert console.text("#language") == "עברית"
        # Her number reads left to right inside the Hebrew line: "+972…", not "…972+".
        assert page.eval_on_selector("#caller-sub .phone",
                                     "e => [e.textContent, getComputedStyle(e).direction]"
                                     ) == [DANA_E164, "ltr"]
        assert console.text("#incidents-title") == "תקלות פתוחות"
        assert console.text("#incident-banner").startswith("תקלה פתוחה אחת — ")
        assert console.text(OPENED) == "15:00"  # the centre's clock, 24-hour
        assert page.get_attribute(OPENED, "title") == "יום שני, 23 בנובמבר 2026 בשעה 15:00"
        assert console.text("#incidents tr.incident td:first-child .ago") == "לפני שעה"
        assert page.locator("#incidents th").all_inner_texts() == [
            "נפתחה", "איפה", "מה", "עדכון אחרון"]
        console.shot("hebrew")

        page.select_option("#language-switch", "en")
        page.wait_for_function("() => document.documentElement.dir === 'ltr'")
        assert page.evaluate(html) == ["en-IL", "ltr"]
        assert page.text_content("#call-status") == "Incoming call — ringing"
        assert console.text("#toggle-available") == "Go offline"
        assert console.text("#waited") == "20 s"
        assert console.text("#language") == "Hebrew"
        assert console.text(OPENED) == "15:00"  # not 8:00 AM in New York
        assert page.get_attribute(OPENED, "title") == "Monday, 23 November 2026 at 15:00"
        assert console.text("#incidents tr.incident td:first-child .ago") == "1 hour ago"
        assert console.text("#zone") == "Times in Asia/Jerusalem"
        assert page.title() == f"Call: {DANA} — Agent console"
        assert _language(settings, "rina") == "en"

        page.reload()  # kept with the agent, not the page
        console.wait_pop(call)
        assert page.evaluate(html) == ["en-IL", "ltr"]
        assert page.text_content("#incidents-title") == "Open incidents"
        assert page.input_value("#language-switch") == "en"

        # Back to Hebrew, then signed out: this browser's sign-in page (a reload, too)
        # stays in her language, not the centre's English.
        page.select_option("#language-switch", "he")
        page.wait_for_function("() => document.documentElement.dir === 'rtl'")
        page.locator("#sign-out").click()
        page.locator("#login-title").wait_for()
        page.reload()
        page.locator("#login-title").wait_for()
        assert (console.text("#login-title"), page.evaluate(html)) == ("כניסה", ["he-IL", "rtl"])
        assert _language(settings, "rina") == "he"
        # The server's refusals in her words too: a wrong password, then the throttle.
        error = ""
        for attempt in range(settings.login_max_failures + 1):
            page.evaluate("() => { document.getElementById('login-error').textContent = ''; }")
            page.fill("#username", "rina")
            page.fill("#password", "not her password")
            page.locator("#login-submit").click()
            page.wait_for_function("() => document.getElementById('login-error').textContent")
            error = console.text("#login-error")
            if attempt < settings.login_max_failures:
                assert error == "שם המשתמש או הסיסמה שגויים."
        assert re.fullmatch(r"יותר מדי ניסיונות כניסה שנכשלו: אפשר לנסות שוב בעוד \d+ שנ׳\.",
                            error), error
        assert console.errors == []
    finally:
        context.close()
        boss_context.close()
