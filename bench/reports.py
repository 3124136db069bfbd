"""Benchmark: the reports (issue 17.5) over 1,000,000 calls and 100,000 customers on
PostgreSQL — answered in < 1 s.

A fresh database (``ivr_reports_bench``, dropped afterwards) is seeded with
``INSERT … SELECT … FROM generate_series`` (no row-by-row inserts): 100,000 customers, 50
agents, ``--calls`` calls over ``--days`` days ending today in the centre's zone
(Asia/Jerusalem), 90% of them through one of 5 queues (answered 85%, abandoned 10%, left
for a callback 5%; waits 0-299 s), 70% of the queue calls by identified customers (an
interaction with one of 6 topics, 70% resolved), a callback request per callback entry,
and a survey score for a fifth of the answered calls (when the surveys' table exists).

Then, timed in this run:

* **rollup**: ``ivr reports refresh`` of every day before today (``repository.refresh``,
  one transaction a day): what the worker does once a day for the new day (and again for
  the last 8 days, so first-contact resolution settles);
* **reports** (median and max of ``--repeat`` runs): the queue and agent reports as the
  page builds them — the last 7 days by day, the last 30 days by day, the whole range by
  week — each the rolled-up days (``report_days`` / ``report_waits``, read by primary key
  range, grouped per period in SQL) plus today computed from the calls themselves (indexes
  ``ix_queue_entries_entered_at``, ``ix_interactions_started_at``,
  ``ix_callback_requests_requested_at``, ``ix_calls_created_at``,
  ``ix_interactions_customer_started``);
* **baselines**: ``SELECT count(*) FROM queue_entries`` (one scan of the calls), and the
  same reports with no rollup (every day computed from the calls, as before the rollup):
  the last 7 days, and the whole range once.

    python bench/reports.py                      # 1,000,000 calls over 92 days
    python bench/reports.py --calls 100000 --no-write
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h
from sqlalchemy import Connection, create_engine, text

from ivr.core.migrate import upgrade
from ivr.reports import repository
from ivr.reports.model import By, ReportRequest
from ivr.reports.service import agent_report, queue_report

ZONE = ZoneInfo("Asia/Jerusalem")
DB = "ivr_reports_bench"
QUEUES = ("billing", "support", "sales", "retention", "operator")
TOPICS = ("internet", "billing", "router", "tv", "mobile", "moving")


def seed(conn: Connection, calls: int, days: int, customers: int, today_start: datetime,
         ) -> dict[str, float]:
    """The data set, in SQL; seconds per table."""
    start = today_start - timedelta(days=days - 1)
    p = {"n": calls, "days": days, "c": customers, "start": start,
         "queues": list(QUEUES), "topics": list(TOPICS)}
    took: dict[str, float] = {}

    def run(name: str, sql: str) -> None:
        t0 = time.perf_counter()
        conn.execute(text(sql), p)
        took[name] = time.perf_counter() - t0

    run("customers", """
        INSERT INTO customers (id, name, status, lineage, created_at, updated_at)
        SELECT g, 'customer ' || g, 'active', '{}', :start, :start
        FROM generate_series(1, :c) g""")
    run("agents", """
        INSERT INTO agents (id, username, name, role, password_hash, queues, reach_kind,
                            reach_target, state, state_since, active, created_at, updated_at)
        SELECT g, 'agent' || g, 'Agent ' || g, 'agent', 'x', '[]', 'client', 'agent' || g,
               'offline', :start, true, :start, :start
        FROM generate_series(1, 50) g""")
    # Call g: day (g - 1) * days / n — in time order, as calls arrive — between 07:00 and
    # 19:00 local (05:00-17:00 UTC in winter).
    run("calls", """
        INSERT INTO calls (call_sid, from_number, direction, status, menu_version, menu, node,
                           language, no_input_count, invalid_count, ended, attributes, path,
                           step, last_response, created_at, updated_at, ended_at)
        SELECT 'CA' || g, '+9725' || lpad((g % :c)::text, 8, '0'), 'inbound', 'completed',
               'v1', 'main', 'n', 'he-IL', 0, 0, true, '{}', '[]', 3,
               CASE WHEN g % 10 = 0 AND g % 20 = 0 THEN '<Response><Gather/></Response>'
                    WHEN g % 10 = 0 THEN '<Response><Hangup/></Response>'
                    ELSE '<Response><Enqueue/></Response>' END,
               t, t, t + interval '4 minutes'
        FROM generate_series(1, :n) g,
             LATERAL (SELECT :start + (((g - 1)::bigint * :days) / :n) * interval '1 day'
                             + interval '5 hours'
                             + ((g::bigint * 7919) % 43200) * interval '1 second'
                      AS t) x""")
    run("queue_entries", """
        INSERT INTO queue_entries (call_sid, queue, priority, entered_at, status, agent_id,
                                   customer_id, attempts, connected_at, ended_at, updated_at)
        SELECT 'CA' || g, (CAST(:queues AS text[]))[1 + g % 5], 0, t,
               CASE WHEN g % 20 < 17 THEN 'done' WHEN g % 20 < 19 THEN 'abandoned'
                    ELSE 'callback' END,
               CASE WHEN g % 20 < 17 THEN 1 + (g / 7) % 50 END,
               CASE WHEN g % 10 < 7 THEN 1 + (g * 17) % :c END, 0,
               CASE WHEN g % 20 < 17 THEN t + ((g * 31) % 300) * interval '1 second' END,
               t + interval '5 minutes', t
        FROM generate_series(1, :n) g,
             LATERAL (SELECT :start + (((g - 1)::bigint * :days) / :n) * interval '1 day'
                             + interval '5 hours'
                             + ((g::bigint * 7919) % 43200 + 20) * interval '1 second' AS t) x
        WHERE g % 10 <> 0""")
    run("interactions", """
        INSERT INTO interactions (customer_id, source, external_id, channel, direction, queue,
                                  started_at, call_sid, topic, outcome, resolved)
        SELECT customer_id, 'ivr', call_sid, 'call', 'in', queue, entered_at, call_sid,
               CASE WHEN status = 'done'
                    THEN (CAST(:topics AS text[]))[1 + (customer_id * 3 + id) % 6] END,
               CASE WHEN status = 'done' THEN 'done' END,
               CASE WHEN status = 'done' THEN id % 10 < 7 END
        FROM queue_entries WHERE customer_id IS NOT NULL""")
    run("callback_requests", """
        INSERT INTO callback_requests (queue, phone, language, priority, entered_at,
                                       requested_at, kind, deadline_at, warn_at, due_at,
                                       status, attempts, max_attempts, completed_at,
                                       updated_at)
        SELECT queue, '+9725' || lpad(id::text, 8, '0'), 'he-IL', 0, entered_at, entered_at,
               'asap', entered_at + interval '2 hours', entered_at + interval '90 minutes',
               entered_at, CASE WHEN id % 10 < 8 THEN 'completed' ELSE 'failed' END, 1, 3,
               CASE WHEN id % 10 < 8 THEN entered_at + ((id % 180) * interval '1 minute')
               END, entered_at
        FROM queue_entries WHERE status = 'callback'""")
    has_surveys = conn.execute(text(
        "SELECT to_regclass('survey_responses') IS NOT NULL")).scalar()
    if has_surveys:
        run("survey_responses", """
            INSERT INTO survey_responses (call_sid, kind, survey, language, agent_id, queue,
                                          customer_id, status, score, low, started_at,
                                          updated_at)
            SELECT 'SV' || id, 'agent', 'csat', 'he-IL', agent_id, queue, customer_id,
                   'completed', 1 + id % 5, id % 5 = 0, connected_at, connected_at
            FROM queue_entries WHERE status = 'done' AND id % 5 = 0""")
    t0 = time.perf_counter()
    conn.execute(text("ANALYZE"))
    took["analyze"] = time.perf_counter() - t0
    return took


@contextlib.contextmanager
def database(admin_url: str, keep: bool) -> Iterator[str]:
    if not keep:
        with h.pg_database(admin_url, DB, migrate=True) as url:
            yield url
        return
    url = h.create_pg_database(admin_url, DB)
    upgrade(url)
    yield url


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(runs), "max_s": max(runs), "runs": len(runs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=92)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--admin-url", default=h.PG_ADMIN_URL)
    parser.add_argument("--keep", action="store_true",
                        help=f"keep the database {DB} afterwards (to look at it); the next "
                             "run drops it")
    h.add_results_options(parser, no_write=True)
    args = parser.parse_args()
    load_start = os.getloadavg()
    now = datetime.now(UTC)
    today = now.astimezone(ZONE).date()
    today_start = datetime(today.year, today.month, today.day, tzinfo=ZONE).astimezone(UTC)
    first = today - timedelta(days=args.days - 1)
    out: dict[str, Any] = {"calls": args.calls, "customers": args.customers,
                           "days": args.days, "machine": h.machine_line(),
                           "git": h.git_rev()}
    with h.exclusive("reports"), database(args.admin_url, args.keep) as url:
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                out["seed_s"] = seed(conn, args.calls, args.days, args.customers,
                                     today_start)
            with engine.connect() as conn:
                counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()  # noqa: S608
                          for t in ("calls", "queue_entries", "interactions",
                                    "callback_requests", "customers")}
            out["rows"] = counts
            print("seeded", counts, {k: round(v, 1) for k, v in out["seed_s"].items()},
                  flush=True)

            def req(days: int, by: By) -> ReportRequest:
                return ReportRequest(today - timedelta(days=days - 1), today, by, ZONE, now,
                                     "he", week_start=6, service_level_seconds=20)

            cases = {"7 days by day": req(7, "day"), "30 days by day": req(30, "day"),
                     f"{args.days} days by week": req(args.days, "week")}

            def both(r: ReportRequest) -> Callable[[], Any]:
                def go() -> Any:
                    fresh = dataclasses.replace(r, memo={})  # a page request: nothing cached
                    with engine.connect() as conn:
                        return queue_report(conn, fresh), agent_report(conn, fresh)
                return go

            # Baselines first (no rollup yet): a bare scan, the reports from the calls.
            with engine.connect() as conn:
                scan = timed(lambda: conn.execute(
                    text("SELECT count(*) FROM queue_entries")).scalar(), args.repeat)
            out["baseline_count_scan"] = scan
            out["baseline_no_rollup"] = {
                "7 days by day": timed(both(cases["7 days by day"]), 1),
                f"{args.days} days by week": timed(both(cases[f"{args.days} days by week"]),
                                                   1)}
            print("baselines", out["baseline_count_scan"], out["baseline_no_rollup"],
                  flush=True)
            t0 = time.perf_counter()
            rows = 0
            day = first
            while day < today:
                with engine.begin() as conn:
                    rows += repository.refresh(conn, day, day, ZONE, now)
                day += timedelta(days=1)
            out["rollup"] = {"days": (today - first).days, "seconds": time.perf_counter() - t0,
                             "counter_rows": rows}
            with engine.begin() as conn:  # what autovacuum does after the worker's inserts
                conn.execute(text("ANALYZE report_days, report_waits, report_rolled_days"))
            with engine.connect() as conn:
                out["rollup"]["wait_rows"] = conn.execute(
                    text("SELECT count(*) FROM report_waits")).scalar()
            print("rollup", out["rollup"], flush=True)
            out["reports"] = {name: timed(both(r), args.repeat) for name, r in cases.items()}
            # The figures agree with and without the rollup (the whole range, by week).
            with engine.connect() as conn:
                rolled = queue_report(conn, cases[f"{args.days} days by week"])[0]
            out["reports_ok"] = bool(rolled.rows)  # type: ignore[union-attr]
            print("reports", out["reports"], flush=True)
        finally:
            engine.dispose()
    out["load"] = {"start": load_start, "end": os.getloadavg()}
    h.write_raw("reports", out)
    h.publish(section(out), args)
    return 0


def section(o: dict[str, Any]) -> str:
    ms = 1000.0

    def f(t: dict[str, float]) -> str:
        return f"{t['median_s'] * ms:,.0f} ms (max {t['max_s'] * ms:,.0f})"

    rows = o["rows"]
    lines = [
        "## Reports: 1,000,000 calls, 100,000 customers (issue 17.5)",
        "",
        f"`python bench/reports.py` ({o['git']}); {o['machine']}; PostgreSQL; the machine "
        f"is shared and loaded: 1-minute load average {o['load']['start'][0]:.2f} at the "
        f"start, {o['load']['end'][0]:.2f} at the end. Seeded with generate_series: "
        f"{rows['calls']:,} calls over {o['days']} days (today included), "
        f"{rows['queue_entries']:,} queue entries, {rows['interactions']:,} interactions, "
        f"{rows['callback_requests']:,} callback requests, {rows['customers']:,} "
        f"customers ({sum(o['seed_s'].values()):.0f} s).",
        "",
        "Queue report + agent report together (as the page builds them), median of "
        f"{o['reports']['7 days by day']['runs']} runs; today is computed from the calls, "
        "every earlier day read from the rollup:",
        "",
        "| range | with the rollup | without (every day from the calls) |",
        "|---|---|---|",
    ]
    for name, t in o["reports"].items():
        base = o["baseline_no_rollup"].get(name)
        lines.append(f"| {name} | {f(t)} | {f(base) if base else '–'} |")
    lines += [
        "",
        "Baseline of the same run: `SELECT count(*) FROM queue_entries` (one scan of the "  # noqa: S608
        f"calls) {f(o['baseline_count_scan'])}.",
        "",
        f"Rollup (`ivr reports refresh`, the worker's job): {o['rollup']['days']} days in "
        f"{o['rollup']['seconds']:.0f} s "
        f"({o['rollup']['seconds'] / max(1, o['rollup']['days']):.1f} s a day of "
        f"~{rows['calls'] // o['days']:,} calls), {o['rollup']['counter_rows']:,} "
        f"counter rows (`report_days`), {o['rollup']['wait_rows']:,} histogram rows "
        "(`report_waits`).",
        "",
        "What makes it fast: `report_days` (counters per day, queue and agent) and "
        "`report_waits` (the wait histogram: seconds below 60, then 5/30/300-s buckets) are "
        "read by their primary keys (`day` first) and summed per period in SQL, the p90 and "
        "the service level of rolled-up periods computed in SQL too (a running sum over the "
        "buckets: one row per period and queue or agent comes back); today's calls come "
        "through `ix_queue_entries_entered_at`, `ix_calls_created_at`, "
        "`ix_interactions_started_at` (+ `ix_interactions_customer_started` for the "
        "7-day neighbours of today's callers), `ix_callback_requests_requested_at`, with "
        "PostgreSQL's JIT off for those statements, once per page for both reports.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(h.run(main))
