"""The leaving-risk signal and the leaving report at scale, on PostgreSQL (issue 17.4).

``leaving_risk`` runs on every identified call (the menus' ``leaving_risk`` fact at the
call's start and the agent's pop), so it must cost about what the caller's own look-up
costs. Seeded with ``generate_series`` (no row-by-row inserts): 100,000 customers, 1,000,000
queue entries over 180 days (8% abandoned), 100,000 callback requests (5% failed, 10% past
their deadline), 1,000,000 interactions (5% with a promise, half kept), 200,000 survey
responses (10% low), 5,000 exit interviews.

Measured in one run, on the same random customers:

* baseline: the customer's row by id (what a call's look-up reads anyway);
* ``leaving_risk(conn, id, now)`` with the indexes of migration 0014;
* the same without ``ix_queue_entries_customer_entered`` (dropped, then put back): why
  that index exists;
* ``at_risk`` (everyone at risk now, for the report) with and without the partial indexes
  of migration 0014, and ``leaving_report`` over a year.

Usage: ``.venv/bin/python bench/retention.py [--customers N] [--entries N] [--samples N]``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h

from ivr.retention.config import DEFAULT_LISTS
from ivr.retention.report import leaving_report
from ivr.retention.signals import at_risk, leaving_risk

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
#: Migration 0014's partial indexes for everyone at risk at once (the report's list).
PARTIAL = ("ix_customers_leaving", "ix_queue_entries_abandoned_entered",
           "ix_interactions_leaving_started", "ix_survey_responses_low_started")
ZONE = ZoneInfo("Asia/Jerusalem")


def seed(conn: Any, customers: int, entries: int) -> None:
    n = {"customers": customers, "entries": entries, "tenth": entries // 10,
         "fifth": entries // 5, "interviews": max(customers // 20, 1), "now": NOW}
    conn.execute(text("""
        INSERT INTO customers (id, account_number, name, tier, segment, status, lineage,
                               created_at, updated_at)
        SELECT g, 'A' || g, 'customer ' || g,
               (ARRAY['standard','premium','business'])[1 + g % 3],
               (ARRAY['private','business'])[1 + g % 2],
               CASE WHEN g % 100 = 0 THEN 'leaving' ELSE 'active' END, '{}',
               CAST(:now AS timestamptz) - (g % 3000) * interval '1 day', CAST(:now AS timestamptz)
        FROM generate_series(1, :customers) g"""), n)
    conn.execute(text("""
        INSERT INTO queue_entries (call_sid, queue, priority, entered_at, status, customer_id,
                                   attempts, updated_at)
        SELECT 'CA' || g, 'billing', 0,
               CAST(:now AS timestamptz) - (g % 259200) * interval '1 minute',
               CASE WHEN g % 100 < 8 THEN 'abandoned' ELSE 'done' END,
               1 + (CAST(g AS bigint) * 7919) % :customers, 0, CAST(:now AS timestamptz)
        FROM generate_series(1, :entries) g"""), n)
    conn.execute(text("""
        INSERT INTO callback_requests (queue, phone, language, priority, entered_at,
            requested_at, kind, deadline_at, warn_at, due_at, status, attempts, max_attempts,
            customer_id, breached_at, updated_at)
        SELECT 'billing', '+9725' || g, 'he-IL', 0, r, r, 'asap', r + interval '2 hours',
               r + interval '1 hour', r,
               CASE WHEN g % 20 = 0 THEN 'failed' ELSE 'completed' END, 1, 3,
               1 + (CAST(g AS bigint) * 104729) % :customers,
               CASE WHEN g % 10 = 1 THEN r + interval '2 hours' END, CAST(:now AS timestamptz)
        FROM (SELECT g, CAST(:now AS timestamptz) - (g % 4320) * interval '1 hour' AS r
              FROM generate_series(1, :tenth) g) s"""), n)
    conn.execute(text("""
        INSERT INTO interactions (customer_id, channel, direction, started_at, topic,
            promised_action, promised_due_at, promise_kept_at, leaving_reason)
        SELECT 1 + (CAST(g AS bigint) * 15485863) % :customers, 'call', 'in', s,  'billing',
               CASE WHEN g % 20 = 0 THEN 'call back' END,
               CASE WHEN g % 20 = 0 THEN s + interval '2 days' END,
               CASE WHEN g % 40 = 0 THEN s + interval '1 day' END,
               CASE WHEN g % 200 = 7 THEN 'price' END
        FROM (SELECT g, CAST(:now AS timestamptz) - (g % 259200) * interval '1 minute' AS s
              FROM generate_series(1, :entries) g) x"""), n)
    conn.execute(text("""
        INSERT INTO survey_responses (call_sid, kind, survey, language, queue, customer_id,
            status, score, low, started_at, updated_at)
        SELECT 'CS' || g, 'agent', 'csat', 'he-IL', 'billing',
               1 + (CAST(g AS bigint) * 32452843) % :customers,
               'completed', 1 + g % 5, g % 10 = 0,
               CAST(:now AS timestamptz) - (g % 4320) * interval '1 hour',
               CAST(:now AS timestamptz)
        FROM generate_series(1, :fifth) g"""), n)
    conn.execute(text("""
        INSERT INTO exit_interviews (customer_id, call_sid, source, queue, reason, stayed,
            tier, segment, branch, customer_since, recorded_at)
        SELECT 1 + (CAST(g AS bigint) * 49979687) % :customers, 'CX' || g, 'wrapup',
               CASE WHEN g % 2 = 0 THEN 'retention' ELSE 'billing' END,
               (ARRAY['indifference','unresolved_complaint','competitor_offer','price',
                      'wants_change','moving'])[1 + g % 6],
               CASE WHEN g % 3 = 0 THEN true WHEN g % 3 = 1 THEN false END,
               (ARRAY['standard','premium','business'])[1 + g % 3],
               (ARRAY['private','business'])[1 + g % 2],
               (ARRAY['Haifa','Tel Aviv','Jerusalem'])[1 + g % 3],
               CAST(:now AS timestamptz) - (g % 3000) * interval '1 day',
               CAST(:now AS timestamptz) - (g % 360) * interval '1 day'
        FROM generate_series(1, :interviews) g"""), n)
    for table in ("customers", "queue_entries", "callback_requests", "interactions",
                  "survey_responses", "exit_interviews"):
        conn.execute(text(f"ANALYZE {table}"))


def timed(fn: Any, ids: list[int]) -> dict[str, float | None]:
    ms = []
    for cid in ids:
        started = time.perf_counter()
        fn(cid)
        ms.append((time.perf_counter() - started) * 1000)
    return h.summary(ms)


def fmt(s: dict[str, float | None]) -> str:
    return " / ".join(f"{s[k]:.2f}" if s[k] is not None else "-" for k in ("p50", "p90", "p99"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", default=h.PG_ADMIN_URL)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--no-write", action="store_true", help="print, leave results.md")
    args = parser.parse_args()
    rng = random.Random(17)
    with h.exclusive("retention"), h.pg_database(args.admin_url, "bench_retention",
                                                 migrate=True) as url:
        engine = create_engine(url)
        load_before = os.getloadavg()
        started = time.perf_counter()
        with engine.begin() as conn:
            seed(conn, args.customers, args.entries)
        seeded_s = time.perf_counter() - started
        ids = [rng.randint(1, args.customers) for _ in range(args.samples)]
        few = ids[: max(args.samples // 10, 20)]
        with engine.connect() as conn:
            row = text("SELECT id, tier, status, preferred_language FROM customers "
                       "WHERE id = :id")
            for cid in ids[:200]:  # warm the caches alike for both
                conn.execute(row, {"id": cid}).first()
                leaving_risk(conn, cid, NOW)
            base = timed(lambda cid: conn.execute(row, {"id": cid}).first(), ids)
            risk = timed(lambda cid: leaving_risk(conn, cid, NOW), ids)
            flagged = sum(leaving_risk(conn, cid, NOW).flag for cid in few)
            conn.commit()
            conn.execute(text("DROP INDEX ix_queue_entries_customer_entered"))
            conn.execute(text("ANALYZE queue_entries"))
            no_index = timed(lambda cid: leaving_risk(conn, cid, NOW), few)
            conn.rollback()  # the index is back
            for name in PARTIAL:
                conn.execute(text(f"DROP INDEX {name}"))
            t0 = time.perf_counter()
            at_risk(conn, NOW, limit=50)
            no_partial = (time.perf_counter() - t0) * 1000
            conn.rollback()  # they are back
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                risky = at_risk(conn, NOW, limit=50)
                runs.append((time.perf_counter() - t0) * 1000)
            report_runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                data = leaving_report(conn, DEFAULT_LISTS, NOW, ZONE)
                report_runs.append((time.perf_counter() - t0) * 1000)
        load_after = os.getloadavg()
        engine.dispose()
    section = f"""## Retention: the leaving-risk signal and the leaving report (issue 17.4)

`bench/retention.py` on PostgreSQL, {h.stamp()}, commit {h.git_rev()}, {h.machine_line()}.
The machine is shared with other work (8 helpers on 2 cores): 1-minute load average
{load_before[0]:.2f} before, {load_after[0]:.2f} after — the absolute figures are inflated
by it; the comparison within the run is what counts.

Seeded with generate_series in {seeded_s:.0f} s: {args.customers:,} customers,
{args.entries:,} queue entries over 180 days (8% abandoned), {args.entries // 10:,} callback
requests (5% failed, 10% past their deadline), {args.entries:,} interactions (5% with a
promise, half kept), {args.entries // 5:,} survey responses (10% low),
{max(args.customers // 20, 1):,} exit interviews.

Per call, ms p50 / p90 / p99 over {len(ids):,} random customers (one connection, in
process; {flagged} of {len(few)} sampled customers flagged):

| what | p50 / p90 / p99 ms |
|---|---|
| baseline: the customer's row by id | {fmt(base)} |
| `leaving_risk` (indexes of migration 0014) | {fmt(risk)} |
| `leaving_risk`, no `ix_queue_entries_customer_entered` ({len(few)} customers) | \
{fmt(no_index)} |

For the report (everyone at once): `at_risk` {min(runs):.0f} ms (best of 3; {len(risky)}
listed); without the partial indexes of migration 0014 ({", ".join(PARTIAL)}): {no_partial:.0f}
ms (one run). The whole `leaving_report` of the last 12 months {min(report_runs):.0f} ms (best
of 3, {data['total']:,} exit interviews, at-risk included).
"""
    print(section)
    if not args.no_write:
        h.update_results(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
