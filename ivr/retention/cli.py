"""``ivr retention``: the wrap-up lists and the leaving profile from the command line.

* ``ivr retention check [PATH]``: check ``wrapup.yaml`` (exit 1 with ``file:line:col``
  lines on mistakes);
* ``ivr retention risk CUSTOMER_ID [--json]``: a customer's leaving-risk signal now;
* ``ivr retention report [--since DAY] [--until DAY] [--json | --csv]``: the leaving
  report (also ``ivr reports leaving``): reasons by tier, segment, tenure, branch and
  month, the retention queues' saved rate, the customers at risk now.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ivr.core.clock import Clock, SystemClock
from ivr.core.db import settings_engine
from ivr.core.migrate import upgrade
from ivr.core.settings import Settings
from ivr.retention.config import DEFAULT_LISTS, ListsError, WrapUpLists, load_lists
from ivr.retention.report import DIMENSIONS, leaving_report
from ivr.retention.signals import leaving_risk

EXIT_OK, EXIT_USER = 0, 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser("retention", help="wrap-up lists, leaving risk, the leaving report")
    cmds = p.add_subparsers(dest="retention_cmd", required=True)
    check = cmds.add_parser("check", help="check the wrap-up lists file (exit 1 on errors)")
    check.add_argument("path", nargs="?", type=Path,
                       help="default: IVR_WRAPUP_FILE (wrapup.yaml)")
    risk = cmds.add_parser("risk", help="a customer's leaving-risk signal now")
    risk.add_argument("customer_id", type=int)
    risk.add_argument("--json", action="store_true")
    add_report_arguments(cmds.add_parser(
        "report", help="leaving reasons by tier, segment, tenure, branch and month; the "
        "retention queues' saved rate; the customers at risk now"))


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    """The leaving report's options (``ivr retention report``, ``ivr reports leaving``)."""
    p.add_argument("--since", type=date.fromisoformat,
                   help="first day (the centre's zone); default: 11 months before this one")
    p.add_argument("--until", type=date.fromisoformat,
                   help="last day, included; default: today")
    p.add_argument("--at-risk", type=int, default=20, metavar="N",
                   help="customers at risk to list (default 20)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true")
    out.add_argument("--csv", action="store_true")


def _lists(settings: Settings) -> WrapUpLists:
    path = settings.wrapup_file
    return load_lists(path) if path.exists() else DEFAULT_LISTS


def run(settings: Settings, args: argparse.Namespace, clock: Clock | None = None) -> int:
    if args.retention_cmd == "check":
        path = args.path or settings.wrapup_file
        try:
            lists = load_lists(path)
        except ListsError as exc:
            print(exc, file=sys.stderr)
            return EXIT_USER
        print(f"{path}: ok ({len(lists.topics)} topics, {len(lists.outcomes)} outcomes, "
              f"{len(lists.leaving_reasons)} leaving reasons)")
        return EXIT_OK
    try:
        lists = _lists(settings)
    except ListsError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USER
    if args.retention_cmd == "risk":
        return _risk(settings, lists, args, clock or SystemClock())
    return report(settings, lists, args, clock or SystemClock())


def _risk(settings: Settings, lists: WrapUpLists, args: argparse.Namespace,
          clock: Clock) -> int:
    upgrade(settings.database_url)
    engine = settings_engine(settings, 2)
    try:
        with engine.connect() as conn:
            risk = leaving_risk(conn, args.customer_id, clock.now(),
                                policy=lists.leaving_risk)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(risk.as_dict(), ensure_ascii=False, indent=2))
        return EXIT_OK
    verdict = "AT RISK" if risk.flag else "not at risk"
    print(f"customer {args.customer_id}: {verdict} (score {risk.score}, threshold "
          f"{lists.leaving_risk.threshold})")
    for reason in risk.reasons:
        print(f"  - {reason}")
    return EXIT_OK


def report(settings: Settings, lists: WrapUpLists, args: argparse.Namespace,
           clock: Clock) -> int:
    """Print the leaving report (text, ``--json`` or ``--csv``)."""
    zone = ZoneInfo(settings.timezone)
    since = (datetime(args.since.year, args.since.month, args.since.day, tzinfo=zone)
             if args.since else None)
    until = (datetime(args.until.year, args.until.month, args.until.day, tzinfo=zone)
             + timedelta(days=1) if args.until else None)
    if since and until and since >= until:
        print("error: --since is after --until", file=sys.stderr)
        return EXIT_USER
    upgrade(settings.database_url)
    engine = settings_engine(settings, 2)
    try:
        with engine.connect() as conn:
            data = leaving_report(conn, lists, clock.now(), zone, since=since, until=until,
                                  at_risk_limit=args.at_risk)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    elif args.csv:
        sys.stdout.write(as_csv(data))
    else:
        print(as_text(data))
    return EXIT_OK


def as_csv(data: dict[str, Any]) -> str:
    """One table: section, dimension, value, reason, count, rate (empty where none)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["section", "dimension", "value", "reason", "count", "rate"])
    for code, n in data["reasons"].items():
        w.writerow(["reasons", "all", "", code, n, ""])
    for dimension in DIMENSIONS:
        for group in data["by"][dimension]:
            for code, n in group["reasons"].items():
                w.writerow(["reasons", dimension, group["value"], code, n, ""])
    saved = data["saved"]
    for month in [{"month": "all", **saved}, *saved["by_month"]]:
        for end in ("stayed", "left", "unknown"):
            rate = "" if month["rate"] is None else month["rate"]
            w.writerow(["saved", "month", month["month"], end, month[end], rate])
    for person in data["at_risk"]:
        w.writerow(["at_risk", "customer", person["customer_id"],
                    "; ".join(person["reasons"]), person["score"], ""])
    return out.getvalue()


def as_text(data: dict[str, Any]) -> str:
    labels = data["labels"]
    lines = [f"Leaving report, {data['since'][:10]} to {data['until'][:10]} "
             f"({data['timezone']}): {data['total']} exit interviews"]
    if data["reasons"]:
        lines.append("Reasons:")
        lines += [f"  {labels.get(c, c):<32} {n:>6}" for c, n in data["reasons"].items()]
    for dimension in DIMENSIONS:
        groups = data["by"][dimension]
        if not groups:
            continue
        lines.append(f"By {dimension}:")
        for g in groups:
            top = ", ".join(f"{labels.get(c, c)} {n}" for c, n in g["reasons"].items())
            lines.append(f"  {g['value']:<16} {g['total']:>6}  {top}")
    s = data["saved"]
    rate = "-" if s["rate"] is None else f"{s['rate']:.0%}"
    lines.append(f"Saved rate of {', '.join(s['queues']) or 'no queue'}: {rate} "
                 f"({s['stayed']} stayed, {s['left']} left, {s['unknown']} not known yet)")
    lines.append(f"Customers at risk now ({len(data['at_risk'])} listed):")
    for p in data["at_risk"]:
        lines.append(f"  #{p['customer_id']:<8} {p['name'] or '':<24} {p['tier'] or '-':<10} "
                     f"score {p['score']:>3}  {'; '.join(p['reasons'])}")
    if not data["at_risk"]:
        lines.append("  none")
    return "\n".join(lines)
