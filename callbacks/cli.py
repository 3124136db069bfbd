"""``ivr callbacks``: the promises we made, as operators need them.

* ``ivr callbacks list [--status open|pending|dialing|connected|completed|failed]
  [--queue Q] [--limit N] [--json]``: requests by deadline, with the time left (numbers
  masked: +97250***4567).
* ``ivr callbacks stats [--day YYYY-MM-DD] [--json]``: per queue and overall, for the
  requests of that day (the centre's zone) or due that day: SLA attainment, completed,
  failed, pending, overdue, and time-to-callback percentiles (callbacks.stats).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, timedelta
from typing import Any

from callbacks import repository as cbrepo
from callbacks.policy import PolicyError, load_policies
from callbacks.stats import summarise
from crm_sync.phones import mask
from ivr.core.clock import Clock, SystemClock
from ivr.core.db import settings_engine
from ivr.core.migrate import upgrade
from ivr.core.settings import Settings

EXIT_OK, EXIT_USER = 0, 1
STATUSES = ("open", "pending", "dialing", "connected", "completed", "failed", "canceled")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("callbacks", help="callback requests and their SLA")
    cmds = p.add_subparsers(dest="callbacks_cmd", required=True)
    lst = cmds.add_parser("list", help="requests by deadline, with the time left")
    lst.add_argument("--status", choices=STATUSES, default="open")
    lst.add_argument("--queue")
    lst.add_argument("--limit", type=int, default=50)
    lst.add_argument("--json", action="store_true")
    stats = cmds.add_parser("stats", help="SLA attainment, pending/overdue, time to callback")
    stats.add_argument("--day", type=date.fromisoformat,
                       help="the day (centre's zone), default today")
    stats.add_argument("--json", action="store_true")


def _left(seconds: int) -> str:
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    return f"{sign}{s // 3600}h{s % 3600 // 60:02d}m"


def _row(r: Any, now: datetime) -> dict[str, Any]:
    return {"id": r.id, "queue": r.queue, "status": r.status, "kind": r.kind,
            "phone": mask(r.phone), "customer_id": r.customer_id, "tier": r.tier,
            "requested_at": r.requested_at.isoformat(),
            "deadline_at": r.deadline_at.isoformat(), "due_at": r.due_at.isoformat(),
            "seconds_left": int((r.deadline_at - now).total_seconds()),
            "attempts": r.attempts, "last_outcome": r.last_outcome}


def run(settings: Settings, args: argparse.Namespace, clock: Clock | None = None) -> int:
    clock = clock or SystemClock()
    now = clock.now()
    upgrade(settings.database_url)
    engine = settings_engine(settings, 2)
    try:
        with engine.connect() as conn:
            if args.callbacks_cmd == "list":
                rows = [_row(r, now) for r in cbrepo.list_requests(
                    conn, status=args.status, queue=args.queue, limit=args.limit)]
                if args.json:
                    print(json.dumps(rows, ensure_ascii=False, indent=2))
                elif not rows:
                    print(f"no {args.status} callback requests")
                for r in rows if not args.json else []:
                    print(f"#{r['id']:<6} {r['queue']:<24} {r['status']:<10} {r['kind']:<9} "
                          f"{r['phone']:<15} left {_left(r['seconds_left']):>8}  "
                          f"attempts {r['attempts']}")
                return EXIT_OK
            try:
                zone = load_policies(settings.callbacks_file).default.business_hours.zone
            except PolicyError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_USER
            day = args.day or now.astimezone(zone).date()
            start = datetime(day.year, day.month, day.day, tzinfo=zone)
            figures = summarise(cbrepo.requested_between(
                conn, start, start + timedelta(days=1)), now)
            figures["day"] = day.isoformat()
            if args.json:
                print(json.dumps(figures, indent=2))
                return EXIT_OK
            print(f"callbacks of {day.isoformat()} ({zone.key})")
            for name, f in [("all queues", figures), *figures["queues"].items()]:
                att = "-" if f["attainment"] is None else f"{f['attainment']:.1%}"
                t = f["time_to_callback_s"]
                p = " / ".join("-" if t[k] is None else f"{t[k] / 60:.0f}m"
                               for k in ("p50", "p90", "p99"))
                print(f"  {name:<24} SLA {att:>6}  requests {f['requests']}, completed "
                      f"{f['completed']}, failed {f['failed']}, pending {f['pending']} "
                      f"(overdue {f['overdue']}); time to callback p50/p90/p99 {p}")
            return EXIT_OK
    finally:
        engine.dispose()
