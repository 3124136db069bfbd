"""The supervisor's reports page in Hebrew, in a real browser (Debian's Chromium) against
the real server, on both databases.

A supervisor whose language is Hebrew signs in at the console and opens the reports for
the known day of tests/test_reports.py: the page is right to left (the first column at the
right), in Hebrew — labels, the "all queues" row, the day as Israelis write it — with the
figures of that day and the charts drawn by the server; the CSV link downloads the same
figures; asking per week redraws it by the week starting on Sunday.
"""

from __future__ import annotations

from playwright.sync_api import Browser
from sqlalchemy import update

from ivr.agents.models import agents
from ivr.core.db import make_engine
from ivr.core.settings import Settings
from tests.live_server import LiveServer
from tests.test_console_browser import Console, _seed, browser, live_server
from tests.test_reports import seed

__all__ = ["browser", "live_server"]  # the fixtures, imported for pytest


def _prepare(settings: Settings, now: object) -> None:
    _seed(settings, now)  # type: ignore[arg-type]  # the console's people: noa supervises
    engine = make_engine(settings.database_url, 1)
    try:
        seed(engine)
        with engine.begin() as conn:
            conn.execute(update(agents).where(agents.c.username == "noa").values(language="he"))
    finally:
        engine.dispose()


def test_the_reports_page_in_hebrew(live_server: LiveServer, browser: Browser,
                                    settings: Settings) -> None:
    _prepare(settings, live_server.clock.now())
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US",
                                  timezone_id="America/New_York")
    console = Console(context.new_page(), live_server.clock)
    page = console.page
    try:
        page.goto(f"{live_server.url}/agent/")
        console.sign_in("noa", "b0ss-pass")
        link = page.locator("#reports-link")  # in the console's supervisor panel
        link.wait_for()
        assert link.inner_text() == "דוחות"
        link.click()
        page.wait_for_url("**/agent/reports")
        page.goto(f"{live_server.url}/agent/reports?from=2026-12-01&to=2026-12-01")
        assert page.evaluate("() => [document.documentElement.lang, document.dir]") == [
            "he-IL", "rtl"]
        assert page.evaluate("() => getComputedStyle(document.body).direction") == "rtl"
        assert page.title() == "דוחות"
        assert page.locator("h1").inner_text() == "דוחות"
        queues = page.locator('table[data-table="queues"]')
        heads = queues.locator("th")
        assert heads.nth(0).inner_text() == "תקופה"
        assert heads.nth(1).inner_text() == "תור"
        assert page.locator('th[data-key="service_level"]').first.inner_text() == \
            "נענו תוך 20 שנ׳"
        # Mirrored: the first column is at the right.
        first, last = heads.nth(0).bounding_box(), heads.last.bounding_box()
        assert first and last and first["x"] > last["x"]
        rows = {r.locator('td[data-key="queue"]').inner_text(): r
                for r in queues.locator("tbody tr").all()}
        assert set(rows) == {"billing", "support", "כל התורים"}
        billing = rows["billing"]
        assert billing.locator('td[data-key="period"]').inner_text() == "יום ג׳ 1.12.2026"
        assert billing.locator('td[data-key="abandon_rate"]').inner_text() == "20.0%"
        assert billing.locator('td[data-key="avg_wait"]').inner_text() == "15 שנ׳"
        assert rows["כל התורים"].locator('td[data-key="calls"]').inner_text() == "9"
        agents_table = page.locator('table[data-table="agents"]')
        assert agents_table.locator('td[data-key="agent"]').all_inner_texts() == [
            "Avi Ben-David", "Noa Mizrahi"]
        for chart in ("calls", "wait", "quality"):
            assert page.locator(f'svg[data-chart="{chart}"]').count() == 1
        assert page.locator('svg[data-chart="calls"] rect').count() >= 3
        console.shot("reports-hebrew")

        csv = page.request.get(f"{live_server.url}/agent/reports/queues.csv"
                               "?from=2026-12-01&to=2026-12-01&queue=billing")
        assert csv.status == 200
        assert csv.text().splitlines()[1].startswith("2026-12-01,billing,5,3,,1,0.2,")

        page.select_option('select[name="by"]', "week")
        page.locator('form button[type="submit"]').click()
        page.wait_for_url("**by=week**")
        assert page.locator(
            'table[data-table="queues"] tbody tr td[data-key="period"]').first.inner_text() \
            == "שבוע יום א׳ 29.11.2026"
        assert console.errors == []
    finally:
        context.close()
