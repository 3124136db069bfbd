"""``ivr followups``: follow-ups and promises, as operators need them.

* ``ivr followups list [--status open|pending|dialing|connected|queued|completed|failed|
  skipped] [--limit N] [--json]``: follow-ups by due time (numbers masked);
* ``ivr followups promises [--status open|kept|broken] [--json]``: promises by due time;
* ``ivr followups stats [--day YYYY-MM-DD] [--json]``: for the follow-ups created or due
  that day (the window's zone): scheduled, completed, on time (completed by the end of their
  first window), failed, skipped, open; promises kept and broken that day.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from callbacks.followups import repository as frepo
from callbacks.followups.models import promises
from callbacks.followups.policy import load_policy
from callbacks.policy import PolicyError
from crm_sync.phones import mask
from ivr.core.clock import Clock, SystemClock
from ivr.core.db import settings_engine
from ivr.core.migrate import upgrade
from ivr.core.settings import Settings

EXIT_OK, EXIT_USER = 0, 1
STATUSES = ("open", "pending", "dialing", "connected", "queued", "completed", "failed",
            "skipped", "canceled")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("followups", help="follow-up calls and promises")
    cmds = p.add_subparsers(dest="followups_cmd", required=True)
    lst = cmds.add_parser("list", help="follow-ups by due time")
    lst.add_argument("--status", choices=STATUSES, default="open")
    lst.add_argument("--limit", type=int, default=50)
    lst.add_argument("--json", action="store_true")
    prom = cmds.add_parser("promises", help="promises by due time")
    prom.add_argument("--status", choices=("open", "kept", "broken"))
    prom.add_argument("--limit", type=int, default=50)
    prom.add_argument("--json", action="store_true")
    stats = cmds.add_parser("stats", help="follow-ups done, on time, failed; promises")
    stats.add_argument("--day", type=date.fromisoformat,
                       help="the day (the window's zone), default today")
    stats.add_argument("--json", action="store_true")


def _row(r: Any) -> dict[str, Any]:
    return {"id": r.id, "kind": r.kind, "mode": r.mode, "status": r.status,
            "queue": r.queue, "customer_id": r.customer_id,
            "phone": mask(r.phone) if r.phone else None, "due_at": r.due_at.isoformat(),
            "deadline_at": r.deadline_at.isoformat(), "attempts": r.attempts,
            "last_outcome": r.last_outcome}


def summarise(rows: list[Any], kept: int, broken: int) -> dict[str, Any]:
    by = {s: sum(1 for r in rows if r.status == s) for s in STATUSES[1:]}
    on_time = sum(1 for r in rows if r.status == "completed" and r.completed_at is not None
                  and r.completed_at <= r.deadline_at)
    done = by["completed"]
    return {"followups": len(rows), **by,
            "open": sum(by[s] for s in ("pending", "dialing", "connected", "queued")),
            "on_time": on_time, "on_time_rate": None if not done else on_time / done,
            "promises_kept": kept, "promises_broken": broken}


def run(settings: Settings, args: argparse.Namespace, clock: Clock | None = None) -> int:
    clock = clock or SystemClock()
    now = clock.now()
    upgrade(settings.database_url)
    engine = settings_engine(settings, 2)
    try:
        with engine.connect() as conn:
            if args.followups_cmd == "list":
                rows = [_row(r) for r in frepo.list_followups(conn, status=args.status,
                                                              limit=args.limit)]
                if args.json:
                    print(json.dumps(rows, ensure_ascii=False, indent=2))
                    return EXIT_OK
                if not rows:
                    print(f"no {args.status} follow-ups")
                for r in rows:
                    print(f"#{r['id']:<6} {r['kind']:<12} {r['mode']:<6} {r['status']:<9} "
                          f"{r['phone'] or '-':<15} due {r['due_at']}  attempts "
                          f"{r['attempts']}")
                return EXIT_OK
            if args.followups_cmd == "promises":
                from callbacks.followups.promises import public  # noqa: PLC0415

                prows = [public(r) for r in frepo.list_promises(conn, status=args.status,
                                                                 limit=args.limit)]
                if args.json:
                    print(json.dumps(prows, ensure_ascii=False, indent=2))
                    return EXIT_OK
                if not prows:
                    print("no promises")
                for p in prows:
                    owner = (f"agent {p['owner_agent_id']}" if p["owner_agent_id"]
                             else f"queue {p['owner_queue']}")
                    print(f"#{p['id']:<6} {p['status']:<7} due {p['due_at']}  {owner:<16} "
                          f"{p['action']}")
                return EXIT_OK
            try:
                zone = load_policy(settings.followups_file).window.zone
            except PolicyError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_USER
            except FileNotFoundError:
                print(f"error: {settings.followups_file}: no such file", file=sys.stderr)
                return EXIT_USER
            day = args.day or now.astimezone(zone).date()
            start = datetime(day.year, day.month, day.day, tzinfo=zone)
            end = start + timedelta(days=1)
            P = promises
            kept = int(conn.execute(select(func.count()).select_from(P).where(
                P.c.kept_at >= start, P.c.kept_at < end)).scalar_one())
            broken = int(conn.execute(select(func.count()).select_from(P).where(
                P.c.broken_at >= start, P.c.broken_at < end)).scalar_one())
            figures = summarise(frepo.created_between(conn, start, end), kept, broken)
            figures["day"] = day.isoformat()
            if args.json:
                print(json.dumps(figures, indent=2))
                return EXIT_OK
            rate = "-" if figures["on_time_rate"] is None else f"{figures['on_time_rate']:.1%}"
            print(f"follow-ups of {day.isoformat()} ({zone.key}): {figures['followups']}, "
                  f"completed {figures['completed']} (on time {rate}), failed "
                  f"{figures['failed']}, skipped {figures['skipped']}, open {figures['open']}; "
                  f"promises kept {kept}, broken {broken}")
            return EXIT_OK
    finally:
        engine.dispose()
