"""The reports against a seeded day whose answer is known (Tuesday 1 December 2026 in the
centre's zone, Asia/Jerusalem, UTC+2), on SQLite and PostgreSQL: computed from the calls
themselves, then from the rollup (the same figures), per queue and agent, by day and week;
the CLI's CSV. The arithmetic's edges (buckets, percentiles, periods) as plain cases."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, Engine, create_engine, insert, select
from sqlalchemy import Table as SaTable

from callbacks.models import callback_requests
from crm_sync.models import customers, interactions
from ivr.agents.models import agents, queue_entries
from ivr.calls.models import Call
from ivr.cli import build_parser
from ivr.core.clock import FrozenClock
from ivr.core.db import Base
from ivr.core.migrate import upgrade
from ivr.core.settings import Settings
from ivr.reports import cli as reports_cli
from ivr.reports import repository
from ivr.reports.model import Column, ReportRequest, Table, period_start, periods
from ivr.reports.models import report_rolled_days
from ivr.reports.render import as_csv
from ivr.reports.rollup import percentile_of, wait_bucket
from ivr.reports.service import agent_report, queue_report
from ivr.worker import build_jobs
from tests.agent_fixtures import login

ZONE = ZoneInfo("Asia/Jerusalem")
calls: SaTable = Call.__table__  # type: ignore[assignment]
DAY = date(2026, 12, 1)
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # two days later: callbacks decided or not
AVI, NOA = 11, 12
C1, C2, C3 = 101, 102, 103  # customers


def local(d: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, hh, mm, ss, tzinfo=ZONE).astimezone(UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url)
    e = create_engine(database_url)
    yield e
    e.dispose()


def _call(conn: Connection, sid: str, at: datetime, last: str, ended: bool = True) -> None:
    conn.execute(insert(calls).values(
        call_sid=sid, from_number="+972500000000", to_number="+97235550100",
        direction="inbound", status="completed" if ended else "in-progress",
        menu_version="v1", menu="main", node="n", language="he-IL", ended=ended,
        attributes={}, path=[], step=1, last_response=last, created_at=at, updated_at=at,
        ended_at=at + timedelta(minutes=3) if ended else None))


def _entry(conn: Connection, sid: str, queue: str, at: datetime, status: str,
           wait: int | None = None, agent: int | None = None) -> None:
    _call(conn, sid, at - timedelta(seconds=40), "<Response><Enqueue>q</Enqueue></Response>")
    conn.execute(insert(queue_entries).values(
        call_sid=sid, queue=queue, entered_at=at, status=status, agent_id=agent,
        connected_at=at + timedelta(seconds=wait) if wait is not None else None,
        ended_at=at + timedelta(minutes=2), updated_at=at))


def _contact(conn: Connection, customer: int, at: datetime, *, sid: str | None = None,
             queue: str | None = None, topic: str | None = None,
             resolved: bool | None = None) -> None:
    conn.execute(insert(interactions).values(
        customer_id=customer, source="ivr", external_id=sid or f"x-{customer}-{at}",
        channel="call", direction="in", queue=queue, started_at=at, call_sid=sid,
        topic=topic, resolved=resolved, outcome="done" if topic else None))


def _callback(conn: Connection, n: int, status: str, deadline: datetime,
              completed: datetime | None = None) -> None:
    at = local(DAY, 12, n)
    conn.execute(insert(callback_requests).values(
        queue="billing", phone=f"+97250000000{n}", entered_at=at, requested_at=at,
        deadline_at=deadline, warn_at=deadline - timedelta(minutes=30), due_at=at,
        status=status, completed_at=completed, updated_at=at,
        open_key=f"billing|phone:{n}" if status == "pending" else None))


def _table(name: str) -> SaTable:
    table: SaTable = Base.metadata.tables[name]  # other features' tables, by name
    return table


def _survey(conn: Connection, sid: str, queue: str, agent: int, score: int) -> None:
    at = local(DAY, 16)
    conn.execute(insert(_table("survey_responses")).values(
        call_sid=f"SV-{sid}", about_call_sid=sid, kind="agent", survey="csat",
        language="he-IL", agent_id=agent, queue=queue, status="completed", score=score,
        low=score <= 2, started_at=at, updated_at=at))


def _followup(conn: Connection, n: int, queue: str, status: str,
              completed: datetime | None = None) -> None:
    deadline = local(DAY, 18)
    conn.execute(insert(_table("followups")).values(
        kind="satisfaction", source_key=f"incident:{n}", mode="survey", queue=queue,
        reason="r", language="he-IL", since_at=deadline, created_at=deadline,
        due_at=deadline, deadline_at=deadline, status=status, attempts=0, max_attempts=3,
        completed_at=completed, updated_at=deadline))


def _promise(conn: Connection, n: int, agent: int, queue: str, status: str,
             kept: datetime | None = None) -> None:
    due = local(DAY, 12)
    conn.execute(insert(_table("promises")).values(
        interaction_id=1000 + n, customer_id=C1, action="a technician calls", due_at=due,
        warn_at=due - timedelta(hours=2), owner_agent_id=agent, owner_queue=queue,
        status=status, kept_at=kept, created_at=due, updated_at=due))


def seed(engine: Engine) -> None:
    """The known day. Queue billing: waits 10 (Avi), 30 (Noa), 5 (Avi), one abandoned,
    one left for a callback. Queue support: waits 60 (Noa) and 20 (Avi, at 01:00 local =
    23:00 UTC the day before). Menu: one caller hung up at a question, one self-service
    end. Outside the day: an entry at 00:30 local on 2 December (22:30 UTC on the 1st)."""
    with engine.begin() as conn:
        now = local(DAY, 0)
        conn.execute(insert(agents), [
            {"id": i, "username": u, "name": n, "role": "agent", "password_hash": "x",
             "queues": [], "reach_kind": "client", "reach_target": u, "state": "offline",
             "state_since": now, "active": True, "created_at": now, "updated_at": now}
            for i, u, n in ((AVI, "avi.b", "Avi Ben-David"), (NOA, "noa.m", "Noa Mizrahi"))])
        conn.execute(insert(customers), [
            {"id": i, "name": f"c{i}", "status": "active", "lineage": {}, "created_at": now,
             "updated_at": now} for i in (C1, C2, C3)])
        _entry(conn, "CA-b1", "billing", local(DAY, 9), "done", 10, AVI)
        _entry(conn, "CA-b2", "billing", local(DAY, 9, 5), "done", 30, NOA)
        _entry(conn, "CA-b3", "billing", local(DAY, 10), "abandoned")
        _entry(conn, "CA-b4", "billing", local(DAY, 11), "done", 5, AVI)
        _entry(conn, "CA-b5", "billing", local(DAY, 12), "callback")
        _entry(conn, "CA-s1", "support", local(DAY, 9, 30), "done", 60, NOA)
        _entry(conn, "CA-s2", "support", local(DAY, 1, 0, 40), "done", 20, AVI)
        _entry(conn, "CA-next", "support", local(DAY + timedelta(days=1), 0, 30), "done", 7,
               AVI)
        _call(conn, "CA-m1", local(DAY, 14), "<Response><Gather>press</Gather></Response>")
        _call(conn, "CA-m2", local(DAY, 15), "<Response><Say>bye</Say><Hangup/></Response>")
        # Callbacks asked on the day (billing): met, failed, still pending before deadline.
        _callback(conn, 1, "completed", local(DAY, 14), completed=local(DAY, 13))
        _callback(conn, 2, "failed", local(DAY, 14))
        _callback(conn, 3, "pending", NOW + timedelta(days=2))
        # Customer 1: 'internet' resolved on the day, but again about 'Internet ' on Dec 4;
        # an earlier call 11 days before (not a repeat).
        _contact(conn, C1, local(DAY, 9), sid="CA-b1", queue="billing", topic="internet",
                 resolved=True)
        _contact(conn, C1, local(date(2026, 12, 4), 10), topic="Internet ", resolved=True)
        _contact(conn, C1, local(date(2026, 11, 20), 10))
        # Customer 2: resolved 'billing' (a later call is about 'router': first contact
        # resolution holds) and had called 3 days before (a repeat caller).
        _contact(conn, C2, local(DAY, 9, 5), sid="CA-b2", queue="billing", topic="billing",
                 resolved=True)
        _contact(conn, C2, local(date(2026, 12, 3), 8), topic="router", resolved=True)
        _contact(conn, C2, local(date(2026, 11, 28), 12))
        # Customer 3: not resolved.
        _contact(conn, C3, local(DAY, 9, 30), sid="CA-s1", queue="support", topic="router",
                 resolved=False)
        # Surveys: billing 4 (Avi) and 2 (Noa), support 5 (Noa).
        _survey(conn, "CA-b1", "billing", AVI, 4)
        _survey(conn, "CA-b2", "billing", NOA, 2)
        _survey(conn, "CA-s1", "support", NOA, 5)
        # Follow-ups whose window ended at 18:00: billing on time, failed, still pending
        # (past its window); support completed late.
        _followup(conn, 1, "billing", "completed", local(DAY, 17))
        _followup(conn, 2, "billing", "failed")
        _followup(conn, 3, "billing", "pending")
        _followup(conn, 4, "support", "completed", local(DAY, 19))
        # Promises due at 12:00: Avi's (billing) kept on time and broken; Noa's (support)
        # kept late and still open past due.
        _promise(conn, 1, AVI, "billing", "kept", local(DAY, 11))
        _promise(conn, 2, AVI, "billing", "broken")
        _promise(conn, 3, NOA, "support", "kept", local(DAY, 13))
        _promise(conn, 4, NOA, "support", "open")


def request(by: str = "day", start: date = DAY, end: date = DAY) -> ReportRequest:
    return ReportRequest(start, end, by, ZONE, NOW, "en", week_start=6,  # type: ignore[arg-type]
                         service_level_seconds=20)


def rows(blocks: list[Any], name: str) -> dict[str, dict[str, Any]]:
    table = next(b for b in blocks if isinstance(b, Table) and b.name == name)
    key = "queue" if name == "queues" else "agent"
    return {r[key]: r for r in table.rows}


EXPECTED_QUEUES = {
    "billing": {"calls": 5, "answered": 3, "abandoned_menu": None, "abandoned_queue": 1,
                "abandon_rate": 0.2, "callback_left": 1, "avg_wait": 15.0, "p90_wait": 30,
                "service_level": 0.5, "callback_sla": 0.5, "fcr": 0.5, "repeat_rate": 0.5,
                "csat": 3.0, "csat_n": 2, "followups_on_time": 0.3333, "promises_kept": 0.5},
    "support": {"calls": 2, "answered": 2, "abandoned_menu": None, "abandoned_queue": 0,
                "abandon_rate": 0.0, "callback_left": 0, "avg_wait": 40.0, "p90_wait": 60,
                "service_level": 0.0, "callback_sla": None, "fcr": 0.0, "repeat_rate": 0.0,
                "csat": 5.0, "csat_n": 1, "followups_on_time": 0.0, "promises_kept": 0.0},
    "*": {"calls": 9, "answered": 5, "abandoned_menu": 1, "abandoned_queue": 1,
          "abandon_rate": 0.2222, "callback_left": 1, "avg_wait": 25.0, "p90_wait": 60,
          "service_level": 0.3333, "callback_sla": 0.5, "fcr": 0.3333,
          "repeat_rate": 0.3333, "csat": 3.67, "csat_n": 3, "followups_on_time": 0.25,
          "promises_kept": 0.25},
}
EXPECTED_AGENTS = {
    "Avi Ben-David": {"answered": 3, "avg_wait": 11.7, "p90_wait": 20, "fcr": 0.0,
                      "repeat_rate": 0.0, "csat": 4.0, "csat_n": 1, "promises_kept": 0.5},
    "Noa Mizrahi": {"answered": 2, "avg_wait": 45.0, "p90_wait": 60, "fcr": 0.5,
                    "repeat_rate": 0.5, "csat": 3.5, "csat_n": 2, "promises_kept": 0.0},
}


def check(conn: Connection) -> None:
    got = rows(queue_report(conn, request()), "queues")
    assert {q: {k: v for k, v in r.items() if k not in ("period", "queue")}
            for q, r in got.items()} == EXPECTED_QUEUES
    assert {r["period"] for r in got.values()} == {"2026-12-01"}
    people = rows(agent_report(conn, request()), "agents")
    assert {a: {k: r[k] for k in EXPECTED_AGENTS[a]} for a, r in people.items()} == \
        EXPECTED_AGENTS


def test_a_known_day_from_the_calls_themselves(engine: Engine) -> None:
    seed(engine)
    with engine.connect() as conn:
        check(conn)


def test_the_rollup_gives_the_same_figures(engine: Engine) -> None:
    seed(engine)
    with engine.begin() as conn:
        repository.refresh(conn, DAY - timedelta(days=1), DAY + timedelta(days=1), ZONE, NOW)
        # The calls are gone: what the report shows now comes from the rollup alone.
        for table in (queue_entries, interactions, callback_requests, calls,
                      *map(_table, ("survey_responses", "followups", "promises"))):
            conn.execute(table.delete())
        assert {r for r in conn.execute(select(report_rolled_days.c.day)).scalars()} == {
            DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)}
        check(conn)


def test_weeks_start_on_sunday_in_the_centres_zone(engine: Engine) -> None:
    seed(engine)
    with engine.begin() as conn:
        # Saturday 5 Dec 23:30 local is the week of Sunday 29 Nov; Sunday 6 Dec 00:30
        # local (22:30 UTC on the 5th) the next week.
        _entry(conn, "CA-sat", "support", local(date(2026, 12, 5), 23, 30), "abandoned")
        _entry(conn, "CA-sun", "support", local(date(2026, 12, 6), 0, 30), "abandoned")
        # Roll up part of the range: a report mixes rolled-up and live days.
        repository.refresh(conn, DAY, DAY, ZONE, NOW)
    with engine.connect() as conn:
        blocks = queue_report(conn, request("week", date(2026, 11, 29), date(2026, 12, 6)))
    table = next(b for b in blocks if isinstance(b, Table))
    support = {r["period"]: r for r in table.rows if r["queue"] == "support"}
    assert support["2026-11-29"]["calls"] == 2 + 1 + 1  # the day's two, 00:30 Dec 2, Sat
    assert support["2026-11-29"]["abandoned_queue"] == 1
    assert support["2026-12-06"]["calls"] == 1
    assert support["2026-12-06"]["abandon_rate"] == 1.0


def test_the_cli_prints_csv(engine: Engine, database_url: str, menus_dir: Any,
                            capsys: pytest.CaptureFixture[str]) -> None:
    seed(engine)
    settings = Settings(_env_file=None, database_url=database_url, menus_dir=menus_dir)
    args: argparse.Namespace = build_parser().parse_args(
        ["reports", "queues", "--from", "2026-12-01", "--to", "2026-12-01", "--csv",
         "--queue", "billing"])
    assert reports_cli.run(settings, args, FrozenClock(NOW)) == 0
    assert capsys.readouterr().out.splitlines() == [
        "period,queue,calls,answered,abandoned_menu,abandoned_queue,abandon_rate,"
        "callback_left,avg_wait,p90_wait,service_level,callback_sla,fcr,repeat_rate,csat,"
        "csat_n,followups_on_time,promises_kept",
        "2026-12-01,billing,5,3,,1,0.2,1,15.0,30,0.5,0.5,0.5,0.5,3.0,2,0.3333,0.5"]


def test_the_supervisors_page_and_csv(engine: Engine, people: dict[str, int],
                                      app_client: Any) -> None:
    seed(engine)
    period = "from=2026-12-01&to=2026-12-01&by=day"
    boss = login(app_client, "boss")
    r = app_client.get(f"/agent/reports?{period}", headers=boss)
    assert r.status_code == 200, r.text
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    html = r.text
    assert '<html lang="en-IL" dir="ltr">' in html
    assert 'data-report="queues"' in html and 'data-report="agents"' in html
    assert '<td dir="auto" data-key="queue">billing</td>' in html
    assert '<td class="num" data-key="abandon_rate">20.0%</td>' in html
    assert '<td class="num" data-key="avg_wait">15 s</td>' in html
    assert all(f'data-chart="{c}"' in html for c in ("calls", "wait", "quality"))
    assert "<script" not in html
    csv = app_client.get(f"/agent/reports/queues.csv?{period}&queue=billing", headers=boss)
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    # The app's clock is 23 November: the follow-up still pending is not decided yet.
    assert csv.text.splitlines()[1] == \
        "2026-12-01,billing,5,3,,1,0.2,1,15.0,30,0.5,0.5,0.5,0.5,3.0,2,0.5,0.5"
    assert app_client.get("/agent/reports/nope.csv", headers=boss).status_code == 404
    assert app_client.get("/agent/reports?from=2026-12-02&to=2026-12-01",
                          headers=boss).status_code == 422
    # An agent is no supervisor; a browser without a session goes to the sign-in.
    agent = login(app_client, "avi")
    assert app_client.get(f"/agent/reports?{period}", headers=agent).status_code == 403
    assert app_client.get("/agent/reports/queues.csv", headers=agent).status_code == 403
    anonymous = app_client.get("/agent/reports", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/agent/"


def test_refresh_rolls_up_whole_days_before_today(engine: Engine, database_url: str,
                                                  menus_dir: Any,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(_env_file=None, database_url=database_url, menus_dir=menus_dir)
    args = build_parser().parse_args(["reports", "refresh"])
    assert reports_cli.run(settings, args, FrozenClock(NOW)) == 0
    assert "rolled up 2026-11-25 .. 2026-12-02 (Asia/Jerusalem)" in capsys.readouterr().out


def test_the_workers_job_rolls_up_the_last_8_days(engine: Engine, database_url: str,
                                                  menus_dir: Any) -> None:
    seed(engine)
    settings = Settings(_env_file=None, database_url=database_url, menus_dir=menus_dir)
    clock = FrozenClock(NOW)
    jobs, closing = build_jobs(engine, settings, clock, sleep=lambda _s: None, sync=False,
                               outbox=False, reports=True)
    assert [(j.name, j.every) for j in jobs] == [("reports", 900.0)] and not closing
    assert jobs[0].run() is False
    with engine.connect() as conn:
        days = sorted(conn.execute(select(report_rolled_days.c.day)).scalars())
        assert days[0] == date(2026, 11, 25) and days[-1] == date(2026, 12, 2)
        assert len(days) == 8
        check(conn)  # the rolled-up day reads the same


@pytest.mark.parametrize(("seconds", "bucket"), [
    (0, 0), (19.9, 19), (59, 59), (60, 60), (64, 60), (299, 295), (300, 300), (329, 300),
    (1799, 1770), (1800, 1800), (7199, 6900), (99999, 7200), (-3, 0)])
def test_wait_buckets(seconds: float, bucket: int) -> None:
    assert wait_bucket(seconds) == bucket


def test_the_sql_buckets_are_the_python_ones(engine: Engine) -> None:
    waits = [0, 19, 59, 60, 64, 299, 300, 329, 1799, 1800, 7199, 99999]
    with engine.begin() as conn:
        for n, w in enumerate(waits):
            _entry(conn, f"CA-w{n}", "q", local(DAY, 8, n), "done", w)
        repository.refresh(conn, DAY, DAY, ZONE, NOW)
        got = repository.read_waits(conn, DAY, DAY, "day", 6, "queue")
    assert got[(DAY, "q")] == Counter(wait_bucket(w) for w in waits)


@pytest.mark.parametrize(("hist", "q", "expected"), [
    ({}, 90, None), ({5: 1}, 90, 5), ({5: 1, 10: 1, 30: 1}, 90, 30),
    ({1: 9, 100: 1}, 90, 1), ({1: 8, 100: 2}, 90, 100), ({1: 1, 2: 1}, 50, 1)])
def test_percentile_of_a_histogram(hist: dict[int, int], q: float, expected: int | None,
                                   ) -> None:
    assert percentile_of(hist, q) == expected


def test_periods() -> None:
    assert period_start(date(2026, 12, 1), "week", 6) == date(2026, 11, 29)  # Sunday
    assert period_start(date(2026, 12, 1), "week", 0) == date(2026, 11, 30)  # Monday
    assert period_start(date(2026, 11, 29), "week", 6) == date(2026, 11, 29)
    assert list(periods(date(2026, 12, 1), date(2026, 12, 13), "week", 6)) == [
        date(2026, 11, 29), date(2026, 12, 6), date(2026, 12, 13)]
    assert list(periods(date(2026, 12, 1), date(2026, 12, 2), "day")) == [
        date(2026, 12, 1), date(2026, 12, 2)]


def test_csv_of_several_tables() -> None:
    t1 = Table("a", "x", [Column("k", "k")], [{"k": 1}])
    t2 = Table("b", "x", [Column("k", "k")], [{"k": None}])
    assert as_csv([t1, t2]) == '# a\nk\n1\n\n# b\nk\n""\n'  # a lone empty field is quoted
