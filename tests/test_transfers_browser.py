"""Transfers in the console, in a real browser (Debian's Chromium through Playwright) against
the real server (uvicorn in a thread) and the participants stand-in, on both databases.

Dana's call, driven through the signed webhooks as Twilio would, is with Noa on the call's
conference. Noa holds and resumes; she starts a warm transfer to Avi with a note: Avi's
console pops the caller with "transferred by Noa Mizrahi from … after 4 min: <note>"; they
consult (the supervisor sees it, with Monitor and Barge); Noa cancels and has the caller
back (Avi's pop goes). A second warm transfer: all three join, Noa hands over and wraps up;
Avi then transfers the caller cold to the billing queue, where the supervisor sees them
waiting. A busy agent is in the list but cannot be chosen, and the console is driven with
the keyboard where an agent would.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import Engine, select

from ivr.agents.models import agents
from ivr.app import create_app
from ivr.core.settings import Settings
from ivr.transfers.gateway import LocalConferences
from tests.agent_fixtures import DANA
from tests.agent_flow import TwilioDriver
from tests.conftest import OPEN_TIME, TOKEN
from tests.live_server import LiveServer, RunningClock, ServerThread
from tests.test_console_browser import Console, browser

__all__ = ["browser"]  # the fixture, imported for pytest

DANA_NAME = "דנה כהן"
NOTE = "wants a refund — רוצה החזר"
NOTE_2 = "router keeps dropping"
PARTNER = "+97235550999"


# The queues' hours (their callback policies'): the operator's open only in the evening, so
# at 10:00 it is closed, the others open.
HOURS = """\
default:
  business_hours:
    timezone: Asia/Jerusalem
    weekly: {sun: ["08:00-20:00"], mon: ["08:00-20:00"], tue: ["08:00-20:00"]}
  deadline: {default: 2h}
  offer: {enabled: false}
queues:
  operator:
    business_hours:
      timezone: Asia/Jerusalem
      weekly: {mon: ["18:00-20:00"]}
"""


@pytest.fixture
def tx_server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    hours = tmp_path / "callbacks.yaml"
    hours.write_text(HOURS, encoding="utf-8")
    on = settings.model_copy(update={"conference_calls": True, "callbacks_file": hours,
                                     "transfer_numbers": {"Partner bank": PARTNER}})
    clock = RunningClock(OPEN_TIME)
    app = create_app(on, clock)
    thread = ServerThread(app)
    thread.start()
    try:
        yield LiveServer(app, clock, thread.host, thread.port)
    finally:
        thread.stop()


def stand_in(server: LiveServer) -> LocalConferences:
    gateway = server.app.state.web.services.transfers.gateway
    assert isinstance(gateway, LocalConferences)
    return gateway


def path_of(url: str) -> str:
    """A callback URL the server wrote (its own base) as a path of the live server."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


class Caller:
    """Dana's call as Twilio carries it: the webhooks, and each new participant's leg."""

    def __init__(self, server: LiveServer, twilio: TwilioDriver) -> None:
        self.server = server
        self.twilio = twilio
        self.sid = ""

    def calls(self) -> None:
        self.sid = self.twilio.start(DANA, ["2"])  # support-open-incidents

    def connects(self) -> None:
        """Released to the agent (the pop is pushed): the caller joins the conference, and
        the agent is rung into it (the server asks once the connect's answer is sent)."""
        xml = self.twilio.connect(self.sid)
        assert ET.fromstring(xml).findtext("Dial/Conference") == f"call-{self.sid}", xml
        assert self.twilio.agent_participant(self.sid) is not None

    def agent_answers(self) -> None:
        """The agent's leg joins the conference."""
        self.twilio.post(f"/twilio/conference-events?c={self.sid}", self.params(
            ConferenceSid=stand_in(self.server).sid_of(f"call-{self.sid}"),
            StatusCallbackEvent="participant-join"))
        self.new_leg_answers()

    def new_leg_answers(self, status: str = "in-progress") -> None:
        """The last participant the server added (an agent's leg) answers."""
        add = [op for op in stand_in(self.server).ops if op[0] == "add"][-1]
        self.twilio.post(path_of(add[3]["status_callback"]), self.params(
            CallSid=add[2], CallStatus=status, Direction="outbound-api"))

    def follows_redirect(self) -> ET.Element:
        """The stand-in caller's next round of hold music carries the move."""
        root = ET.fromstring(self.twilio.post(f"/twilio/conference-wait?c={self.sid}",
                                              self.params()))
        url = root.findtext("Redirect")
        assert url, ET.tostring(root)
        return ET.fromstring(self.twilio.post(path_of(url), self.params()))

    def params(self, **extra: str) -> dict[str, str]:
        return self.twilio.params(self.twilio.calls[self.sid], **extra)


def agent_row(engine: Engine, username: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(agents.c.state, agents.c.current_call_sid)
                            .where(agents.c.username == username)).one()


def xfer_status(page: Page, text: str) -> None:
    page.locator("#xfer-status", has_text=text).wait_for()


def start_transfer(console: Console, kind: str, target: str, *, warm: bool,
                   note: str) -> None:
    """Transfer…, with the keyboard: Enter on the button, arrows through the kinds."""
    page = console.page
    page.get_by_role("button", name="Transfer…").focus()
    page.keyboard.press("Enter")
    page.locator("#xfer-form").wait_for()
    assert console.focused() == "xfer-kind-queue"
    for _ in range(["A queue", "An agent", "An outside number"].index(kind)):
        page.keyboard.press("ArrowDown")
    assert page.get_by_label(kind, exact=True).is_checked()
    select = page.get_by_label({"A queue": "Queue", "An agent": "Agent",
                                "An outside number": "Outside number"}[kind], exact=True)
    select.locator("option", has_text=target).first.wait_for(state="attached")
    select.select_option(label=select.locator("option", has_text=target).first.inner_text())
    if warm:
        page.get_by_label("Warm — talk to them first (the caller waits on hold)").check()
    page.get_by_label("Note for the next person (optional)").fill(note)
    page.get_by_role("button", name="Transfer", exact=True).click()
    page.locator("#xfer-form").wait_for(state="hidden")


def test_warm_transfer_cancel_hand_over_and_cold_to_a_queue(
        tx_server: LiveServer, browser: Browser, people: dict[str, int],
        engine: Engine) -> None:
    clock = tx_server.clock
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000},
                                    timezone_id="Asia/Jerusalem", locale="en-GB")
                for _ in range(3)]
    noa, avi, boss = (Console(c.new_page(), clock) for c in contexts)
    try:
        for c, who in ((noa, "dana.agent"), (avi, "avi"), (boss, "boss")):
            c.page.goto(f"{tx_server.url}/agent/")
            c.sign_in(who, f"{who}-pw")
        noa.page.keyboard.press("Enter")  # the toggle has the focus: Available
        noa.wait_state("available")

        with httpx.Client(base_url=tx_server.url, timeout=10) as http:
            caller = Caller(tx_server, TwilioDriver(http, tx_server.url, TOKEN,
                                               conferences=stand_in(tx_server)))
            caller.calls()
            caller.connects()
            noa.wait_pop(caller.sid)
            assert not noa.page.locator("#xfer").is_visible()  # ringing: nothing to hold
            caller.agent_answers()
            noa.wait_call_status("answered")
            noa.advance(4 * 60)  # four minutes into the conversation

            # Hold and resume: the caller hears the queue's music; the supervisor sees it.
            page = noa.page
            page.get_by_role("button", name="Hold", exact=True).click()
            xfer_status(page, "The caller is on hold (since")
            page.reload()  # a reload brings the call back as it is: held
            noa.wait_pop(caller.sid)
            xfer_status(page, "The caller is on hold (since")
            boss.page.locator("#sup-xfer tr[data-held=true]", has_text="Noa Mizrahi").wait_for()
            assert "on hold" in boss.text("#sup-xfer")
            page.get_by_role("button", name="Resume", exact=True).click()
            page.get_by_role("button", name="Hold", exact=True).wait_for()
            assert agent_row(engine, "dana.agent").state == "on_call"

            # The picker: a closed queue says the caller will be offered a callback.
            page.get_by_role("button", name="Transfer…").click()
            closed = page.locator("#xfer-target option", has_text="operator")
            closed.wait_for(state="attached")
            assert closed.inner_text() == (
                "operator — closed: the caller will be offered a callback")
            page.get_by_label("Queue", exact=True).select_option("operator")
            assert page.locator("#xfer-target-hint").inner_text() == (
                "This queue is closed now: the caller will be offered a callback instead of "
                "waiting.")
            assert "billing — open" in page.locator("#xfer-target").inner_text()
            # Avi is offline, so listed but not to be chosen.
            page.get_by_label("An agent", exact=True).check()
            offline = page.locator("#xfer-target option", has_text="Avi Ben-David")
            offline.wait_for(state="attached")
            assert offline.is_disabled()
            assert "offline, cannot take a transfer" in offline.inner_text()
            page.keyboard.press("Escape")
            page.locator("#xfer-form").wait_for(state="hidden")
            assert noa.focused() == "xfer-open"

            avi.page.get_by_role("button", name="Available").click()
            avi.wait_state("available")

            # A list gone stale: Avi goes offline after Noa chose him. The server refuses,
            # Noa reads why, the call is still hers and the list shows Avi as he is now.
            page.get_by_role("button", name="Transfer…").click()
            page.get_by_label("An agent", exact=True).check()
            page.locator("#xfer-target option:not([disabled])",
                         has_text="Avi Ben-David").wait_for(state="attached")
            page.get_by_label("Agent", exact=True).select_option(str(people["avi"]))
            avi.page.get_by_role("button", name="Go offline").click()
            avi.wait_state("offline")
            page.get_by_role("button", name="Transfer", exact=True).click()
            page.locator("#xfer-form-error", has_text="Not possible right now: Avi Ben-David "
                         "is offline. The caller is still with you.").wait_for()
            page.locator("#xfer-target option[disabled]", has_text="Avi Ben-David").wait_for(
                state="attached")
            assert agent_row(engine, "dana.agent") == ("on_call", caller.sid)
            page.get_by_role("button", name="Close", exact=True).click()
            avi.page.get_by_role("button", name="Available").click()
            avi.wait_state("available")

            # 1. A warm transfer to Avi with a note: his pop says who, from where, when, why.
            start_transfer(noa, "An agent", "Avi Ben-David", warm=True, note=NOTE)
            xfer_status(page, "Calling Avi Ben-David… The caller is on hold.")
            assert noa.focused() == "xfer-cancel"  # the keyboard is on the one choice there is
            avi.wait_pop(caller.sid)
            assert avi.text("#xfer-from") == (
                "Transferred call — transferred by Noa Mizrahi from support-open-incidents "
                f"after 4 min: {NOTE}")
            assert avi.text("#caller-name") == DANA_NAME
            assert "internet" in avi.text("#incidents")  # the same screen-pop as Noa's
            caller.new_leg_answers()
            xfer_status(page, "You are talking to Avi Ben-David. The caller is on hold")
            join = page.get_by_role("button", name="Join all three")
            join.wait_for()
            page.wait_for_function("() => !document.getElementById('xfer-join').disabled")
            assert noa.focused() == "xfer-cancel"  # not moved under the agent's fingers
            avi.page.locator("#xfer-from .consult-incoming").wait_for()
            assert "Noa Mizrahi wants to consult with you" in avi.text("#xfer-from")
            avi.wait_call_status("answered")
            assert not avi.page.locator("#xfer-hold").is_visible()  # not his call yet
            row = boss.page.locator("#sup-xfer tr[data-transfer=consulting]")
            row.wait_for()
            assert "warm transfer to Avi Ben-David: consulting" in row.inner_text()
            assert row.get_by_role("button", name="Monitor Noa Mizrahi's call").is_visible()
            assert row.get_by_role("button", name="Barge into Noa Mizrahi's call").is_visible()
            # The supervisor listens in: their phone joins the conference, muted.
            row.get_by_role("button", name="Monitor Noa Mizrahi's call").click()
            boss.page.locator("#sup-xfer-said", has_text="Your phone is joining Noa Mizrahi's "
                              "call to listen.").wait_for()
            monitor = [op for op in stand_in(tx_server).ops if op[0] == "add"][-1]
            assert (monitor[1], monitor[3]["to"], monitor[3]["label"], monitor[3]["muted"]) == (
                f"call-{caller.sid}", "client:boss", "monitor", True)
            noa.shot("transfer-consult")
            avi.shot("transfer-consult-second-agent")
            boss.shot("transfer-consult-supervisor")

            # ... which Noa cancels (Enter: the focus is on it): the caller is back with her,
            # Avi's pop goes.
            assert noa.focused() == "xfer-cancel"
            page.keyboard.press("Enter")
            xfer_status(page, "Transfer canceled: the caller is back with you.")
            page.get_by_role("button", name="Hold", exact=True).wait_for()
            avi.page.locator("#idle").wait_for()
            assert "Noa Mizrahi took the caller back" in avi.text("#notice")
            avi.wait_state("available")
            assert agent_row(engine, "dana.agent") == ("on_call", caller.sid)

            # The partner's line is busy: Noa is told so in words, the caller is back with her.
            start_transfer(noa, "An outside number", "Partner bank", warm=True, note="")
            xfer_status(page, "Calling Partner bank")
            caller.new_leg_answers("busy")
            xfer_status(page, "The transfer to Partner bank did not work: the line was busy. "
                        "The caller is back with you.")
            page.get_by_role("button", name="Hold", exact=True).wait_for()
            assert noa.text("#caller-name") == DANA_NAME  # the call stays on the screen

            # 2. Again: consult, all three, and Noa hands over and wraps up.
            start_transfer(noa, "An agent", "Avi Ben-David", warm=True, note=NOTE_2)
            avi.wait_pop(caller.sid)
            avi.page.locator("#xfer-from", has_text=NOTE_2).wait_for()
            caller.new_leg_answers()
            join.wait_for()
            page.reload()  # mid-consult: the consult's choices come back
            noa.wait_pop(caller.sid)
            page.wait_for_function("() => !document.getElementById('xfer-join').disabled")
            xfer_status(page, "You are talking to Avi Ben-David.")
            assert not page.locator("#xfer-from").is_visible()  # her own transfer: no line
            join.click()
            xfer_status(page, "All three of you are on the line")
            page.get_by_role("button", name="Hand over").click()
            xfer_status(page, "The caller is now with Avi Ben-David. Please wrap up.")
            noa.wait_call_status("transferred")
            assert page.locator("#call-status").text_content() == "Transferred — please wrap up"
            noa.wait_state("wrap_up")
            assert not page.get_by_role("button", name="Hold", exact=True).is_visible()
            assert agent_row(engine, "avi") == ("on_call", caller.sid)
            # In Hebrew the call-control words are Hebrew too, the layout mirrored.
            page.get_by_label("Language", exact=True).select_option("he")
            page.locator("#call-status", has_text="הועברה — נא לסכם").wait_for()
            assert page.locator("#xfer-title").inner_text() == "ניהול השיחה"
            xfer_status(page, "המתקשר עכשיו עם Avi Ben-David. נא לסכם את השיחה.")
            assert page.evaluate("getComputedStyle(document.getElementById('xfer'))"
                                 ".direction") == "rtl"

            # 3. Avi transfers the caller cold to billing: they wait there, first in line.
            avi.wait_state("on_call")
            avi.page.locator("#xfer-hold").wait_for()  # his call now
            start_transfer(avi, "A queue", "billing", warm=False, note="")
            assert avi.page.get_by_label(
                "Warm — talk to them first (the caller waits on hold)").is_disabled()
            xfer_status(avi.page, "Transferring to billing")
            root = caller.follows_redirect()  # the caller moves on their next round of music
            assert root.findtext("Enqueue") == "billing"
            avi.wait_call_status("transferred")
            avi.wait_state("wrap_up")
            boss.page.locator("#sup-queues [data-queue=billing] tr", has_text=DANA_NAME
                              ).wait_for()
            caller.twilio.caller_hangs_up(caller.sid)
    finally:
        for context in contexts:
            context.close()
    for c in (noa, avi, boss):
        assert c.dialogs == []
        assert c.errors == []
