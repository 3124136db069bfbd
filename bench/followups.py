"""The follow-ups job's sweep at scale, on PostgreSQL (issue 17.2).

``ivr worker`` runs ``FollowUpService.sweep`` every ``IVR_FOLLOWUP_EVERY_S`` (5 s): it looks
for incidents closed in the last 3 days without a follow-up, promised actions not yet
tracked, due follow-ups, lapsed leases, promise warnings and breaks. Most passes find
nothing, so what a pass costs with nothing to do, on a large store, is the figure.

Seeded with ``generate_series``: 100,000 customers with a phone, 1,000,000 incidents (90%
closed, over a year), 1,000,000 interactions (5% with a promise, due from a year ago to a
month ahead). Measured in one run, on the same data:

* baseline: a sweep on the empty store (the fixed cost of a pass: its statements);
* catching up: the passes that take up the recent closed incidents and promises (200 a
  statement), per follow-up / promise written;
* a pass with nothing new, with migration 0013's partial indexes
  (``ix_incidents_closed_at``, ``ix_interactions_promised_due``);
* the same pass without them (dropped in a transaction, then put back): why they exist.

Usage: ``.venv/bin/python bench/followups.py [--incidents N] [--samples N] [--no-write]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h

from callbacks.followups import repository as frepo
from callbacks.followups.policy import load_policy
from callbacks.followups.service import LOOKBACK, FollowUpService
from callbacks.followups.sms import LocalSms
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # Monday 11:00 in Jerusalem: the window open
INDEXES = ("ix_incidents_closed_at", "ix_interactions_promised_due")


class NoDialer:
    """Stands in for calls.create (the bench measures the database side)."""

    def place(self, to: str, from_: str, url: str, status_callback: str,
              machine_detection: bool, timeout: int) -> str:
        return "CA" + uuid.uuid4().hex

    def status(self, call_sid: str) -> str | None:
        return "queued"

    def find(self, to: str, from_: str, since: datetime) -> list[tuple[str, str]] | None:
        return []

    def cancel(self, call_sid: str) -> None:
        return None


def seed(conn: Any, customers: int, incidents: int) -> None:
    p = {"customers": customers, "incidents": incidents, "now": NOW}
    conn.execute(text("""
        INSERT INTO customers (id, account_number, name, status, lineage, created_at,
                               updated_at, preferred_language)
        SELECT g, 'A' || g, 'customer ' || g, 'active', '{}', CAST(:now AS timestamptz),
               CAST(:now AS timestamptz), 'he-IL'
        FROM generate_series(1, :customers) g"""), p)
    conn.execute(text("""
        INSERT INTO customer_phones (customer_id, e164)
        SELECT g, '+97250' || lpad(g::text, 7, '0') FROM generate_series(1, :customers) g"""),
        p)
    conn.execute(text("""
        INSERT INTO incidents (customer_id, source, external_id, category, status, opened_at,
                               closed_at, last_update_at)
        SELECT 1 + g % :customers, 'crm', 'I' || g, 'internet',
               CASE WHEN g % 10 = 0 THEN 'open' ELSE 'closed' END,
               CAST(:now AS timestamptz) - (g % 365) * interval '1 day' - interval '1 day',
               CASE WHEN g % 10 = 0 THEN NULL
                    ELSE CAST(:now AS timestamptz) - (g % 365) * interval '1 day'
                         - (g % 7) * interval '1 hour' - interval '1 hour' END,
               CAST(:now AS timestamptz)
        FROM generate_series(1, :incidents) g"""), p)
    conn.execute(text("""
        INSERT INTO interactions (customer_id, source, external_id, channel, direction,
                                  started_at, promised_action, promised_due_at, call_sid)
        SELECT 1 + g % :customers, 'crm', 'X' || g, 'call', 'in',
               CAST(:now AS timestamptz) - (g % 365) * interval '1 day' - interval '2 day',
               CASE WHEN g % 20 = 0 THEN 'a technician will call' END,
               CASE WHEN g % 20 = 0 THEN CAST(:now AS timestamptz)
                    + ((g / 20) % 395 - 365) * interval '1 day' END,
               'CA' || g
        FROM generate_series(1, :incidents) g"""), p)
    conn.execute(text("ANALYZE"))


def pass_ms(service: FollowUpService, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        swept = service.sweep()
        out.append((time.perf_counter() - t0) * 1000)
        service.dial(swept.dials, swept.out)
    return out


def fmt(ms: list[float]) -> str:
    s = h.summary(ms)
    return " / ".join(f"{s[k]:.1f}" if s[k] is not None else "-" for k in ("p50", "p90", "p99"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", default=h.PG_ADMIN_URL)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--no-write", action="store_true", help="print, leave results.md")
    args = parser.parse_args()
    policy = load_policy(ROOT / "followups.yaml")
    with h.exclusive("followups"), h.pg_database(args.admin_url, "bench_followups",
                                                 migrate=True) as url:
        engine = create_engine(url, pool_size=2)
        settings = Settings(_env_file=None, database_url=url)
        service = FollowUpService(engine, FrozenClock(NOW), settings, policy, NoDialer(),
                                  LocalSms(), "bench:1:x")
        load_before = os.getloadavg()
        pass_ms(service, 3)  # warm
        empty = pass_ms(service, args.samples)
        started = time.perf_counter()
        with engine.begin() as conn:
            seed(conn, args.customers, args.incidents)
        seeded_s = time.perf_counter() - started
        t0 = time.perf_counter()
        catch_up = 0
        while True:
            catch_up += 1
            before = _counts(engine)
            swept = service.run_once()
            if _counts(engine) == before and not swept.dials:
                break
        catch_up_ms = (time.perf_counter() - t0) * 1000
        written = _counts(engine)
        steady = pass_ms(service, args.samples)
        with engine.connect() as conn:
            with_index = []
            for _ in range(max(args.samples // 5, 3)):
                t1 = time.perf_counter()
                _sweep_on(service, conn)
                with_index.append((time.perf_counter() - t1) * 1000)
            conn.rollback()
            for name in INDEXES:
                conn.execute(text(f"DROP INDEX {name}"))
            conn.execute(text("ANALYZE incidents, interactions"))
            no_index = []
            for _ in range(max(args.samples // 5, 3)):
                t1 = time.perf_counter()
                _sweep_on(service, conn)
                no_index.append((time.perf_counter() - t1) * 1000)
            conn.rollback()  # the indexes are back
        load_after = os.getloadavg()
        engine.dispose()
    per_row = catch_up_ms / max(sum(written), 1)
    section = f"""## Follow-ups: the worker's sweep at scale (issue 17.2)

`bench/followups.py` on PostgreSQL, {h.stamp()}, commit {h.git_rev()}, {h.machine_line()}.
The machine is shared with other work (8 helpers on 2 cores): 1-minute load average
{load_before[0]:.2f} before, {load_after[0]:.2f} after — the absolute figures are inflated
by it; the comparison within the run is what counts.

Seeded with generate_series in {seeded_s:.0f} s: {args.customers:,} customers with a phone,
{args.incidents:,} incidents (90% closed, over a year), {args.incidents:,} interactions (5%
with a promise, due from a year ago to a month ahead). One `FollowUpService.sweep` (what
`ivr worker` runs every `IVR_FOLLOWUP_EVERY_S`), in process, ms p50 / p90 / p99:

| pass | p50 / p90 / p99 ms |
|---|---|
| baseline: the empty store ({args.samples} passes) | {fmt(empty)} |
| nothing new, the seeded tables, with `{INDEXES[0]}`, `{INDEXES[1]}` \
({args.samples} passes) | {fmt(steady)} |
| the pass's reads only, with the two indexes ({len(with_index)} passes) | \
{fmt(with_index)} |
| the pass's reads only, without them ({len(no_index)} passes) | {fmt(no_index)} |

Catching up after the seed (`run_once`: sweep, dials, SMS): {catch_up} passes,
{catch_up_ms:.0f} ms for {written[0]:,} follow-ups (the incidents closed in the 3 days
before; due at the window's first opening after the close, so most were due already:
claimed, dialled through a stand-in dialer and their SMS sent in the same passes) and
{written[1]:,} promises taken up (due in the last 7 days or later; warned or broken in the
same passes) — {per_row:.1f} ms a row, each dial and SMS a transaction of its own.
"""
    print(section)
    if not args.no_write:
        h.update_results(section)
    return 0


def _counts(engine: Any) -> tuple[int, int]:
    with engine.connect() as conn:
        return (int(conn.execute(text("SELECT count(*) FROM followups")).scalar_one()),
                int(conn.execute(text("SELECT count(*) FROM promises")).scalar_one()))


def _sweep_on(service: FollowUpService, conn: Any) -> None:
    """A sweep's statements on ``conn`` (the transaction with the indexes dropped)."""
    now = service.clock.now()
    frepo.closed_incidents_without_followup(conn, now - LOOKBACK)
    frepo.promised_without_promise(conn, now - service.policy.promises.lookback)
    frepo.due(conn, now)
    frepo.expired_leases(conn, now)
    frepo.queued_closed(conn)
    frepo.promises_kept_in_store(conn)
    frepo.promise_warnings_due(conn, now)
    frepo.promises_overdue(conn, now)


if __name__ == "__main__":
    raise SystemExit(h.run(main))
