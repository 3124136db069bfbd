"""``ivr reports``: the numbers a manager asks for, on the command line.

* ``ivr reports list``: the reports there are.
* ``ivr reports <name> [--from D] [--to D] [--by day|week] [--lang en|he]
  [--service-level S] [--csv | --json] [--<option> V]``: one report (each report of
  ``ivr.reports.registry.REPORTS`` is a sub-command; ``--queue`` for ``queues``). Days in
  the centre's time zone (the entry menu's); default range: the last 7 days, today
  included.
* ``ivr reports refresh [--from D] [--to D]``: roll up whole days (default: the 8 days
  before today, so first-contact resolution settles); the worker does it too.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, timedelta
from typing import Any

from ivr.core.clock import Clock, SystemClock
from ivr.core.db import make_engine
from ivr.core.migrate import upgrade
from ivr.core.settings import Settings
from ivr.reports import repository
from ivr.reports.model import Report, Table
from ivr.reports.registry import REPORTS, find
from ivr.reports.render import as_csv, as_json, as_text
from ivr.reports.service import SETTLE_DAYS, centre_zone, request_for
from ivr.reports.strings import label

EXIT_OK, EXIT_USER = 0, 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser("reports", help="the numbers a manager asks for (per queue, agent, "
                       "day or week; --csv)")
    cmds = p.add_subparsers(dest="reports_cmd", required=True)
    cmds.add_parser("list", help="the reports there are")
    refresh = cmds.add_parser("refresh", help="roll up whole days (the worker does it too)")
    refresh.add_argument("--from", dest="start", type=date.fromisoformat)
    refresh.add_argument("--to", dest="end", type=date.fromisoformat)
    for report in REPORTS:
        add_report_parser(cmds, report)


def add_report_parser(cmds: Any, report: Report) -> None:
    r = cmds.add_parser(report.name, help=report.help or report.name)
    r.add_argument("--from", dest="start", type=date.fromisoformat,
                   help="first day (YYYY-MM-DD, the centre's calendar); default 6 days ago")
    r.add_argument("--to", dest="end", type=date.fromisoformat,
                   help="last day, included; default today")
    r.add_argument("--by", choices=("day", "week"), default="day")
    r.add_argument("--lang", choices=("en", "he"),
                   help="the language of the labels (default IVR_INTERFACE_LANGUAGE)")
    r.add_argument("--service-level", type=int, metavar="SECONDS",
                   help="answered within this many seconds (default "
                        "IVR_REPORTS_SERVICE_LEVEL_SECONDS)")
    out = r.add_mutually_exclusive_group()
    out.add_argument("--csv", action="store_true", help="CSV: column keys, raw values")
    out.add_argument("--json", action="store_true")
    for option in report.options:
        r.add_argument(f"--{option.replace('_', '-')}", dest=f"opt_{option}")


def run(settings: Settings, args: argparse.Namespace, clock: Clock | None = None) -> int:
    now = (clock or SystemClock()).now()
    if args.reports_cmd == "list":
        for report in REPORTS:
            print(f"{report.name:<12} {report.help}")
        return EXIT_OK
    zone = centre_zone(settings)
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url, 2, settings.sqlite_busy_timeout_ms)
    try:
        if args.reports_cmd == "refresh":
            today = now.astimezone(zone).date()
            last = min(args.end or today - timedelta(days=1), today - timedelta(days=1))
            first = args.start or last - timedelta(days=SETTLE_DAYS - 1)
            if first > last:
                print(f"error: nothing to roll up: {first} is not before today ({today})",
                      file=sys.stderr)
                return EXIT_USER
            with engine.begin() as conn:
                rows = repository.refresh(conn, first, last, zone, now)
            print(f"rolled up {first} .. {last} ({zone.key}): {rows} counter rows")
            return EXIT_OK
        found = find(args.reports_cmd)
        assert found is not None  # argparse offers only registered names
        report = found
        options = {o: getattr(args, f"opt_{o}") for o in report.options
                   if getattr(args, f"opt_{o}", None)}
        try:
            req = request_for(settings, zone, now, start=args.start, end=args.end, by=args.by,
                              lang=args.lang or settings.interface_language,
                              service_level=args.service_level,
                              options=options)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USER
        with engine.connect() as conn:
            blocks = report.build(conn, req)
        tables = [b for b in blocks if isinstance(b, Table)]
        try:
            if args.csv:
                sys.stdout.write(as_csv(tables))
            elif args.json:
                print(as_json(blocks))
            else:
                for table in tables:
                    print(f"{label(req.lang, table.title)} — {req.start} .. {req.end} "
                          f"({req.by}, {zone.key})")
                    print(as_text(table, req) if table.rows else
                          label(req.lang, "reports.empty"))
            sys.stdout.flush()
        except BrokenPipeError:  # `ivr reports … | head`: the reader had enough
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    finally:
        engine.dispose()
