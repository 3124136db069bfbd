"""``ivr retention``: the wrap-up lists and the leaving profile from the command line.

* ``ivr retention check [PATH]``: check ``wrapup.yaml`` (exit 1 with ``file:line:col``
  lines on mistakes);
* ``ivr retention risk CUSTOMER_ID [--json]``: a customer's leaving-risk signal now;

The leaving report is ``ivr reports leaving`` (``ivr.reports.leaving``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ivr.core.clock import Clock, SystemClock
from ivr.core.db import settings_engine
from ivr.core.migrate import upgrade
from ivr.core.settings import Settings
from ivr.retention.config import DEFAULT_LISTS, ListsError, WrapUpLists, load_lists
from ivr.retention.signals import leaving_risk

EXIT_OK, EXIT_USER = 0, 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser("retention", help="the wrap-up lists file, a customer's leaving risk")
    cmds = p.add_subparsers(dest="retention_cmd", required=True)
    check = cmds.add_parser("check", help="check the wrap-up lists file (exit 1 on errors)")
    check.add_argument("path", nargs="?", type=Path,
                       help="default: IVR_WRAPUP_FILE (wrapup.yaml)")
    risk = cmds.add_parser("risk", help="a customer's leaving-risk signal now")
    risk.add_argument("customer_id", type=int)
    risk.add_argument("--json", action="store_true")


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
        print(f"ok: {len(lists.topics)} topics, {len(lists.outcomes)} outcomes, "
              f"{len(lists.leaving_reasons)} leaving reasons ({path})")
        return EXIT_OK
    try:
        lists = _lists(settings)
    except ListsError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USER
    return _risk(settings, lists, args, clock or SystemClock())


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
