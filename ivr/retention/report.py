"""The leaving report (``ivr reports leaving``, the supervisor page's section): what leaving
customers have in common, whether the retention queue keeps them, and who is at risk now.

* reasons overall, and by tier, segment, tenure, branch and month (the centre's time zone)
  of the exit interviews recorded in [since, until): the profile as it was when they spoke;
* the retention queues' saved rate: of their interviews whose end is known, the share
  that stayed (``stayed`` / (``stayed`` + ``left``); unknown ones are counted apart);
* the customers at risk now (``ivr.retention.signals.at_risk``).

Pure aggregation over rows in ``summarise`` (tested with plain cases), the reads in
``leaving_report``. Exit interviews are few (a fraction of the customers), so they are read
whole for the period and grouped here.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from ivr.retention.config import WrapUpLists
from ivr.retention.repository import interviews_between
from ivr.retention.signals import at_risk

DIMENSIONS = ("tier", "segment", "tenure", "branch", "month")
UNKNOWN = "(unknown)"
TENURES = ((365, "under 1 year"), (2 * 365, "1-2 years"), (5 * 365, "2-5 years"))
LONGEST = "5+ years"


def tenure(since: datetime | None, at: datetime) -> str:
    """How long they had been a customer when they spoke, as a band."""
    if since is None:
        return UNKNOWN
    days = (at - since).days
    for limit, name in TENURES:
        if days < limit:
            return name
    return LONGEST


def _value(row: Mapping[str, Any], dimension: str, zone: ZoneInfo) -> str:
    if dimension == "tenure":
        return tenure(row.get("customer_since"), row["recorded_at"])
    if dimension == "month":
        return str(row["recorded_at"].astimezone(zone).strftime("%Y-%m"))
    value = row.get(dimension)
    return str(value) if value else UNKNOWN


def summarise(rows: Iterable[Mapping[str, Any]], retention_queues: Iterable[str],
              zone: ZoneInfo) -> dict[str, Any]:
    """Reasons overall and by each dimension, and the retention queues' saved rate."""
    queues = set(retention_queues)
    overall: Counter[str] = Counter()
    by: dict[str, dict[str, Counter[str]]] = {d: defaultdict(Counter) for d in DIMENSIONS}
    saved = Counter[str]()
    saved_by_month: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        reason = str(row["reason"])
        overall[reason] += 1
        for dimension in DIMENSIONS:
            by[dimension][_value(row, dimension, zone)][reason] += 1
        if row.get("queue") in queues:
            end = ("stayed" if row.get("stayed") is True else
                   "left" if row.get("stayed") is False else "unknown")
            saved[end] += 1
            saved_by_month[_value(row, "month", zone)][end] += 1
    return {
        "total": sum(overall.values()),
        "reasons": dict(overall.most_common()),
        "by": {d: [{"value": v, "total": sum(c.values()), "reasons": dict(c.most_common())}
                   for v, c in sorted(groups.items())] for d, groups in by.items()},
        "saved": {"queues": sorted(queues), **_rate(saved),
                  "by_month": [{"month": m, **_rate(c)}
                               for m, c in sorted(saved_by_month.items())]},
    }


def _rate(c: Counter[str]) -> dict[str, Any]:
    known = c["stayed"] + c["left"]
    return {"asked": c["stayed"] + c["left"] + c["unknown"], "stayed": c["stayed"],
            "left": c["left"], "unknown": c["unknown"],
            "rate": round(c["stayed"] / known, 4) if known else None}


def month_start(at: datetime, zone: ZoneInfo, months_back: int = 0) -> datetime:
    """Midnight of the first day of the month ``months_back`` before ``at``'s (local)."""
    local = at.astimezone(zone)
    year, month = local.year, local.month - months_back
    while month < 1:
        year, month = year - 1, month + 12
    return datetime(year, month, 1, tzinfo=zone)


def leaving_report(conn: Connection, lists: WrapUpLists, now: datetime, zone: ZoneInfo, *,
                   since: datetime | None = None, until: datetime | None = None,
                   at_risk_limit: int = 50) -> dict[str, Any]:
    """The report of the exit interviews in [since, until) (default: this month and the
    eleven before it, in the centre's zone) and the customers at risk at ``now``."""
    since = since or month_start(now, zone, 11)
    until = until or now + timedelta(seconds=1)
    out = summarise(interviews_between(conn, since, until), lists.retention_queues, zone)
    labels = {r.code: r.label for r in lists.leaving_reasons}
    for code in out["reasons"]:
        labels.setdefault(code, code)  # a reason since taken off the list keeps its code
    return {"since": since.isoformat(), "until": until.isoformat(), "timezone": zone.key,
            "labels": labels, **out,
            "at_risk": at_risk(conn, now, policy=lists.leaving_risk, limit=at_risk_limit)}
