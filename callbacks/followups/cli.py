"""``ivr followups``: follow-ups and promises, as operators need them.

* ``ivr followups list [--status open|pending|dialing|connected|queued|completed|failed|
  skipped] [--limit N] [--json]``: follow-ups by due time (numbers masked);
* ``ivr followups promises [--status open|kept|broken] [--json]``: promises by due time;
* ``ivr followups stats [--day YYYY-MM-DD] [--json]``: for the follow-ups created or due
  that day (the window's zone): scheduled, completed, on time (completed by the end of their
  first window), failed, skipped, open; promises kept and broken that day.
* ``ivr followups demo [--phone E164 | --incident ID] [--press 5,4] [--url URL]``: closes an
  open incident now (as a CRM would), schedules its satisfaction call due now and runs one
  sweep of the follow-ups job here, with the local dialer playing the customer against the
  running server (``ivr serve`` at ``--url``, default http://127.0.0.1:IVR_PORT): it
  answers, hears the survey and presses ``--press`` (then 5). Without Twilio only; the
  window must be open (``IVR_DEMO_ALWAYS_OPEN`` opens it).
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
    demo = cmds.add_parser("demo", help="close an incident; its follow-up call is played "
                           "by the local dialer against the running server")
    demo.add_argument("--phone", help="the customer's number (E.164); default: any "
                      "customer with an open incident")
    demo.add_argument("--incident", type=int, help="the incident's id")
    demo.add_argument("--press", default="5", help="keys at the survey's questions: 5,4")
    demo.add_argument("--url", help="the server (default http://127.0.0.1:IVR_PORT)")


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
        if args.followups_cmd == "demo":
            return _demo(settings, args, engine, clock)
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


def _demo(settings: Settings, args: argparse.Namespace, engine: Any, clock: Clock) -> int:
    from callbacks.followups.service import build_service  # noqa: PLC0415
    from callbacks.local_dialer import LocalDialer  # noqa: PLC0415
    from crm_sync.models import customer_phones, incidents  # noqa: PLC0415
    from ivr.agents.gateway import HoldLoopGateway  # noqa: PLC0415
    from ivr.core.calendar import is_open  # noqa: PLC0415

    if settings.twilio_account_sid:
        print("error: the demo plays the customer without Twilio (unset "
              "IVR_TWILIO_ACCOUNT_SID)", file=sys.stderr)
        return EXIT_USER
    url = (args.url or f"http://127.0.0.1:{settings.port}").rstrip("/")
    keys = tuple(k.strip() for k in args.press.split(",") if k.strip())
    dialer = LocalDialer(url, settings.twilio_auth_token.get_secret_value(),
                         settings.local_dialer_talk_seconds, keys=keys)
    try:
        service = build_service(engine, clock, settings, HoldLoopGateway(), url, dialer)
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER
    if service is None:
        print(f"error: {settings.followups_file}: no such file (follow-ups are off)",
              file=sys.stderr)
        return EXIT_USER
    now = clock.now()
    if not is_open(service.policy.window, now):
        print(f"error: the follow-up window ({settings.followups_file}) is closed now; "
              "IVR_DEMO_ALWAYS_OPEN=true opens it for the demo", file=sys.stderr)
        return EXIT_USER
    INC, CP = incidents, customer_phones
    with engine.begin() as conn:
        stmt = select(INC).where(INC.c.status == "open").order_by(INC.c.id).limit(1)
        if args.incident is not None:
            stmt = select(INC).where(INC.c.id == args.incident)
        elif args.phone:
            stmt = stmt.where(INC.c.customer_id.in_(
                select(CP.c.customer_id).where(CP.c.e164 == args.phone)))
        else:
            stmt = stmt.where(INC.c.customer_id.in_(select(CP.c.customer_id)))
        incident = conn.execute(stmt).first()
        if incident is None:
            print("error: no such open incident", file=sys.stderr)
            return EXIT_USER
        conn.execute(INC.update().where(INC.c.id == incident.id).values(
            status="closed", closed_at=now, last_update_at=now))
        closed = conn.execute(select(INC).where(INC.c.id == incident.id)).one()
        # The demo does not wait for the next business day.
        fid = service.schedule_incident(conn, closed, now, at_once=True)
    print(f"closed incident #{incident.id} ({incident.category}) of customer "
          f"{incident.customer_id}")
    if fid is None:
        print("no follow-up: one exists for it, or the policy skips it (no phone, category)")
        return EXIT_OK
    service.run_once()
    for thread in dialer.threads:
        thread.join(60)
    with engine.connect() as conn:
        f = frepo.get(conn, fid)
        assert f is not None
        print(f"follow-up #{fid} ({f.mode}): {f.status}"
              + (f", handed to queue {f.queue} (an agent calls)" if f.status == "queued"
                 else ""))
        from ivr.surveys.repository import response_for_followup  # noqa: PLC0415

        response = response_for_followup(conn, fid)
    if response is not None:
        scores = ", ".join(f"{a['question']} {a['score']}/5" for a in response["answers"])
        print(f"survey {response['status']}: {scores or 'no answer'}")
    return EXIT_OK
