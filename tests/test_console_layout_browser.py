"""The console's layout in a real browser (Chromium through Playwright) at a laptop's width
(1366 px) and a narrow window (800 px): no card overflows sideways, every table header is
whole, a short Hebrew name sits on one line; and the supervisor's view says something
useful — who each agent is talking to (not a CallSid), no supervisor listed as an offline
agent, and the queues before anyone waits. Screenshots go to the test's tmp_path (look at
them; they are not committed)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import select

from crm_sync.models import customers
from crm_sync.wrapup import CallFacts, WrapUp, record_wrap_up
from ivr.agents.repository import create_agent
from ivr.core.db import make_engine
from ivr.core.settings import Settings
from tests.agent_flow import TwilioDriver, stand_in_of
from tests.conftest import TOKEN
from tests.live_server import LiveServer
from tests.test_console_browser import (
    AGENT_NAME,
    DANA,
    DANA_E164,
    Console,
    _route,
    _seed,
    browser,
    live_server,
)

__all__ = ["browser", "live_server"]  # the fixtures, imported for pytest

OTHER_AGENT = "אברהם בן-דוד"  # a short Hebrew name: one line in any table
SUPERVISOR = "נועה ברק"  # _seed's supervisor, who answers no queue
PLAYING_SUPERVISOR = "דליה"  # a supervisor who also answers the operator queue

# Every card and table inside its card, every header whole, the page not wider than the
# window. Returns what is wrong, in words.
LAYOUT_PROBLEMS = """() => {
  const problems = [];
  const shown = (e) => e.getClientRects().length > 0;
  const label = (e) => `${e.tagName.toLowerCase()}#${e.id || e.closest('[id]')?.id || '?'}`
    + (e.querySelector('h2') ? ` "${e.querySelector('h2').textContent}"` : '');
  const doc = document.documentElement;
  if (doc.scrollWidth > doc.clientWidth) {
    problems.push(`the page scrolls sideways: ${doc.scrollWidth} > ${doc.clientWidth}`);
  }
  for (const card of document.querySelectorAll('.card, .pop-head')) {
    if (!shown(card)) continue;
    if (card.scrollWidth > card.clientWidth) {
      problems.push(`${label(card)} overflows: ${card.scrollWidth} > ${card.clientWidth}`);
    }
    const box = card.getBoundingClientRect();
    for (const part of card.querySelectorAll('table, th, td, div')) {
      if (!shown(part)) continue;
      const r = part.getBoundingClientRect();
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5) {
        problems.push(`${label(part)} (${part.textContent.trim().slice(0, 30)}) sticks out `
                      + `of ${label(card)}: ${r.left}..${r.right} not in `
                      + `${box.left}..${box.right}`);
      }
    }
  }
  for (const th of document.querySelectorAll('th')) {
    if (!shown(th)) continue;
    if (th.scrollWidth > th.clientWidth) {
      problems.push(`header "${th.textContent}" is cut: ${th.scrollWidth} > ${th.clientWidth}`);
    }
  }
  return problems;
}"""

# How many lines a piece of text takes on screen (distinct line tops of its text).
LINES = """(e) => {
  const range = document.createRange();
  range.selectNodeContents(e);
  const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0)
                      .map((r) => Math.round(r.top)));
  return tops.size;
}"""


def _seed_history(settings: Settings, now: datetime) -> None:
    """Dana's earlier calls with promises still open (one overdue), written down by
    agents with Hebrew names, and a supervisor who also answers a queue."""
    engine = make_engine(settings.database_url, 1)
    try:
        with engine.begin() as conn:
            dana = conn.execute(select(customers.c.id).where(customers.c.name == DANA)
                                ).scalars().first()
            assert dana is not None
            promises = [
                (now - timedelta(days=2), OTHER_AGENT, "טכנאי יתקשר",
                 now - timedelta(days=1)),
                (now - timedelta(days=1), AGENT_NAME,
                 "להחזיר ללקוחה את החיוב הכפול על חודש אוקטובר ולשלוח אישור במייל "
                 "(פנייה REF-2026-11-000123456789)", now + timedelta(days=3)),
                (now - timedelta(hours=3), OTHER_AGENT, "send the new router by courier",
                 now + timedelta(hours=5)),
            ]
            for i, (at, agent, action, due) in enumerate(promises):
                record_wrap_up(conn, CallFacts(
                    call_sid=f"CAhistory{i}", customer_id=int(dana), agent=agent,
                    queue="support-open-incidents", started_at=at,
                    ended_at=at + timedelta(minutes=6), wait_seconds=40, talk_seconds=320),
                    WrapUp(topic="חיוב כפול" if i == 1 else "תקלה באינטרנט",
                           outcome="callback promised", resolved=False,
                           promised_action=action, promised_due_at=due,
                           notes="הלקוחה ביקשה שיחזרו אליה אחרי הצהריים"), at)
            create_agent(conn, username="dalia", name=PLAYING_SUPERVISOR, password="d-pass-1",
                         role="admin", queues=["operator"], reach_target="dalia", now=now)
    finally:
        engine.dispose()


def _check_layout(page: Page, where: str) -> None:
    problems = page.evaluate(LAYOUT_PROBLEMS)
    assert problems == [], f"{where}: {problems}"


def _one_line(page: Page, selector: str, text: str, patience: float = 3.0) -> None:
    """Every cell of ``selector`` showing ``text`` takes one line. Read again for up to
    ``patience`` seconds while it does not: a board that re-renders (the supervisor's, on
    every event) can be caught with a row not laid out yet (0 lines; seen once in the full
    suite), and a wrapped line must stay wrapped to fail."""
    deadline = time.monotonic() + patience
    while True:
        cells = page.locator(selector).get_by_text(text, exact=True)
        lines = [cells.nth(i).evaluate(LINES) for i in range(cells.count())]
        if (lines and all(n == 1 for n in lines)) or time.monotonic() > deadline:
            break
        page.wait_for_timeout(100)
    assert lines, f"no {text!r} in {selector}"
    for n in lines:
        assert n == 1, f"{text!r} in {selector} takes {n} lines"


def _shots(consoles: dict[str, Console], tmp_path: Path, width: int) -> None:
    for name, c in consoles.items():
        c.page.set_viewport_size({"width": width, "height": 900})
        c.page.wait_for_timeout(50)  # one frame for the new layout
        path = tmp_path / f"console-{name}-{width}.png"
        c.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        _check_layout(c.page, f"{name} at {width} px")


# The layout is the page's, the same on both databases (the board's query runs on both in
# test_console_payload): one backend keeps the browser suite quick.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_layout_at_1366_and_800_px_and_the_supervisor_view(
        live_server: LiveServer, browser: Browser, settings: Settings,
        tmp_path: Path) -> None:
    started = time.monotonic()
    clock = live_server.clock
    _seed(settings, clock.now())
    _seed_history(settings, clock.now())
    contexts = [browser.new_context(viewport={"width": 1366, "height": 900},
                                    timezone_id="Asia/Jerusalem", locale="en-GB")
                for _ in range(2)]
    agent, boss = (Console(ctx.new_page(), clock) for ctx in contexts)
    try:
        for c, who, password in ((boss, "noa", "b0ss-pass"), (agent, "rina", "s3cret-pass")):
            c.page.goto(f"{live_server.url}/agent/")
            c.sign_in(who, password)
        # A supervisor who takes no calls is no "offline" agent, in the header either.
        assert boss.text("#state-badge") == "Supervisor"
        assert boss.text("#state-time") == ""
        # Before anyone calls: the supervisor sees the queues agents answer, at zero.
        board = boss.page.locator("#sup-queues")
        board.locator("[data-queue=operator]").wait_for()
        assert "No calls waiting" in board.inner_text()
        for queue in ("operator", "support-open-incidents"):
            assert "0 waiting" in board.locator(f"[data-queue={queue}]").inner_text()
        agent.page.keyboard.press("Enter")
        agent.wait_state("available")

        with httpx.Client(base_url=live_server.url, timeout=10) as http:
            driver = TwilioDriver(http, live_server.url, TOKEN,
                                  conferences=stand_in_of(live_server.app))
            sid, _ = _route(driver, agent, DANA_E164, ["2"], hold=5)
            driver.agent_answers(sid)
            agent.wait_call_status("answered")
            assert agent.page.locator("#promises tr.promise").count() == 3

            # The supervisor sees whom the agent is talking to, in which queue — not a SID.
            row = boss.page.locator("#sup-agents tr", has_text=AGENT_NAME)
            row.filter(has_text="On call").filter(has_text=DANA).wait_for()
            current = row.locator("td").nth(3).inner_text()
            assert DANA in current and "support-open-incidents" in current, current
            assert sid not in boss.page.locator("#sup-agents").inner_text()
            # A supervisor who answers no queue is no offline agent; one who does is
            # marked as a supervisor.
            agents = boss.page.locator("#sup-agents").inner_text()
            assert SUPERVISOR not in agents, agents
            assert "supervisor" in boss.page.locator(
                "#sup-agents tr", has_text=PLAYING_SUPERVISOR).inner_text().lower()

            consoles = {"agent": agent, "supervisor": boss}
            _shots(consoles, tmp_path, 1366)
            _one_line(agent.page, "#promises", OTHER_AGENT)
            _one_line(agent.page, "#promises", AGENT_NAME)
            _one_line(agent.page, "#promises", "טכנאי יתקשר")
            _one_line(boss.page, "#sup-agents", AGENT_NAME)
            _shots(consoles, tmp_path, 800)
            _one_line(agent.page, "#promises", OTHER_AGENT)
            _one_line(agent.page, "#promises", AGENT_NAME)
            _one_line(boss.page, "#sup-agents", AGENT_NAME)
            driver.hang_up(sid)
            agent.wait_call_status("ended")
    finally:
        for ctx in contexts:
            ctx.close()
    for c in (agent, boss):
        assert c.dialogs == [] and c.errors == []
    print(f"layout test: {time.monotonic() - started:.1f} s")

