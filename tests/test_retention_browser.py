"""The exit interview in a real browser against the real server, on both databases.

The wrap-up's lists are the admin's file, not the page's: a topic the admin added is
offered, the reasons are the file's (labels included). A customer who chose "cancel my
service" reaches the retention queue; the agent picks "other", is asked for the customer's
words before anything is sent, gives them, says the customer stayed, and the exit interview
is stored as said. The next call's caller answers the IVR's "why" (moving): the form starts
with it, and says the caller chose it in the IVR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser
from sqlalchemy import select

from crm_sync.identity import Rules
from crm_sync.importer import import_batch
from crm_sync.mapping import default_mapping
from ivr.agents.repository import create_agent
from ivr.core.db import make_engine
from ivr.core.settings import Settings
from ivr.retention.models import exit_interviews
from tests.agent_flow import TwilioDriver, stand_in_of
from tests.conftest import ROOT, TOKEN
from tests.live_server import LiveServer
from tests.test_console_browser import Console, browser, live_server

__all__ = ["browser", "live_server"]  # the fixtures, imported for pytest

YOSSI_E164 = "+972527654321"
WORDS = "עובר לחברה אחרת, נמאס לו לחכות"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The demo's wrapup.yaml with the admin's edits: a topic and a label of their own."""
    text = (ROOT / "wrapup.yaml").read_text(encoding="utf-8")
    text = text.replace("  - billing\n", "  - billing\n  - roaming abroad\n")
    text = text.replace("label: A better offer elsewhere", "label: Offer from HOT or Partner")
    path = tmp_path / "wrapup.yaml"
    path.write_text(text, encoding="utf-8")
    return settings.model_copy(update={"wrapup_file": path})


def _seed(settings: Settings, now: Any) -> None:
    engine = make_engine(settings.database_url, 2)
    try:
        report = import_batch(engine, [{"id": "T7", "name": "יוסי לוי", "mobile": "052-765-4321",
                                        "account_number": "400007", "language": "he-IL",
                                        "tier": "standard", "segment": "residential"}],
                              default_mapping("branch-tlv", "customers"), Rules(), "IL", now)
        assert not report.rejected, report.rejected
        with engine.begin() as conn:
            create_agent(conn, username="tami", name="תמי שומרת", password="keep-pass",
                         role="agent", queues=["retention"], reach_kind="client",
                         reach_target="tami", now=now)
    finally:
        engine.dispose()


def _interviews(settings: Settings) -> list[dict[str, Any]]:
    engine = make_engine(settings.database_url, 1)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(exit_interviews)).mappings()]
    finally:
        engine.dispose()


def test_the_exit_interview_from_the_admins_lists(
        live_server: LiveServer, browser: Browser, settings: Settings) -> None:
    _seed(settings, live_server.clock.now())
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-GB")
    agent = Console(context.new_page(), live_server.clock)
    page = agent.page
    try:
        page.goto(f"{live_server.url}/agent/")
        agent.sign_in("tami", "keep-pass")
        # The lists are the file's: the admin's topic, the reasons with their labels.
        page.wait_for_function(
            "() => [...document.querySelectorAll('#topics option')]"
            ".some((o) => o.value === 'roaming abroad')")
        reasons = page.eval_on_selector_all(
            "#wu-leaving option", "os => os.map((o) => [o.value, o.textContent])")
        assert reasons == [
            ["", "Not leaving"], ["indifference", "Felt ignored / indifference"],
            ["unresolved_complaint", "Unresolved complaint"],
            ["competitor_offer", "Offer from HOT or Partner"], ["price", "Price"],
            ["wants_change", "Wants a change"], ["moving", "Moving"],
            ["other", "Other (say what)"]]
        page.keyboard.press("Enter")  # Available
        agent.wait_state("available")
        with httpx.Client(base_url=live_server.url, timeout=10) as http:
            twilio = TwilioDriver(http, live_server.url, TOKEN,
                                  conferences=stand_in_of(live_server.app))
            sid = twilio.start(YOSSI_E164, ["3"])  # "cancel my service": the retention queue
            assert twilio.calls[sid].queue == "retention"
            assert "<Dial" in twilio.connect(sid)
            agent.wait_pop(sid)
            twilio.agent_answers(sid)
            twilio.hang_up(sid)
        agent.wait_call_status("ended")
        # The interview's questions show once a reason is picked.
        assert page.is_hidden("#wu-exit")
        page.get_by_label("Topic", exact=True).fill("cancellation")
        page.get_by_label("Outcome", exact=True).fill("customer kept")
        page.get_by_label("Leaving reason", exact=True).select_option("other")
        assert page.is_visible("#wu-exit")
        page.get_by_role("button", name="Save wrap-up").click()
        page.locator("#wu-leaving-text-error", has_text="Say in words").wait_for()
        assert page.get_attribute("#wu-leaving-text", "aria-invalid") == "true"
        assert _interviews(settings) == []  # nothing was sent
        page.get_by_label("In the customer's words", exact=True).fill(WORDS)
        page.get_by_label("Stayed (saved)", exact=True).check()
        page.get_by_role("button", name="Save wrap-up").click()
        page.wait_for_function("() => document.getElementById('call').hidden")
        saved = _interviews(settings)
        assert [(r["call_sid"], r["queue"], r["reason"], r["reason_text"], r["stayed"],
                 r["agent"]) for r in saved] == [
            (sid, "retention", "other", WORDS, True, "תמי שומרת")]
        # The next call starts with a blank interview.
        agent.wait_state("available")
        with httpx.Client(base_url=live_server.url, timeout=10) as http:
            twilio = TwilioDriver(http, live_server.url, TOKEN,
                                  conferences=stand_in_of(live_server.app))
            # This time the caller answers the IVR's question: 4, moving.
            again = twilio.start(YOSSI_E164, ["3", "4"])
            twilio.connect(again)
            agent.wait_pop(again)
        # The form starts with the IVR's answer (not the last call's "other"), and says so.
        page.wait_for_function("() => document.getElementById('wu-leaving').value === 'moving'")
        assert page.text_content("#wu-ivr-reason") == "The caller chose in the IVR: Moving"
        assert page.is_visible("#wu-ivr-reason") and page.is_visible("#wu-exit")
        assert page.input_value("#wu-leaving-text") == ""
        assert page.is_checked("#wu-stayed-unknown")
    finally:
        context.close()
    assert agent.dialogs == [] and agent.errors == []
