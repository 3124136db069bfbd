"""Callback SLA figures from request rows: attainment, pending and overdue counts, and
time-to-callback percentiles, per queue and overall. Pure: rows and ``now`` in, numbers out.

* A request **met** its SLA if it was completed by its deadline; it **missed** it if it
  was completed late, failed, or is still open past its deadline. Requests still open
  before their deadline (and canceled ones) are not counted yet.
* **attainment** = met / (met + missed), None when nothing is decided yet.
* **time to callback**: completion minus request time of completed requests, in seconds
  (scheduled ones from the time the caller chose instead).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

OPEN = ("pending", "dialing", "connected")


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _verdict(r: Any, now: datetime) -> str | None:
    if r.status == "completed" and r.completed_at is not None:
        return "met" if r.completed_at <= r.deadline_at else "missed"
    if r.status == "failed":
        return "missed"
    if r.status in OPEN and now >= r.deadline_at:
        return "missed"
    return None


def summarise(rows: Iterable[Any], now: datetime) -> dict[str, Any]:
    """Figures overall and per queue (``queues``)."""
    groups: dict[str, list[Any]] = {}
    everything: list[Any] = []
    for r in rows:
        groups.setdefault(r.queue, []).append(r)
        everything.append(r)
    out = _figures(everything, now)
    out["queues"] = {q: _figures(rs, now) for q, rs in sorted(groups.items())}
    return out


def _figures(rows: list[Any], now: datetime) -> dict[str, Any]:
    met = missed = pending = overdue = completed = failed = 0
    waits: list[float] = []
    for r in rows:
        verdict = _verdict(r, now)
        met += verdict == "met"
        missed += verdict == "missed"
        if r.status in OPEN:
            pending += 1
            overdue += now >= r.deadline_at
        if r.status == "completed" and r.completed_at is not None:
            completed += 1
            start = r.scheduled_for if r.kind == "scheduled" and r.scheduled_for else \
                r.requested_at
            waits.append(max(0.0, (r.completed_at - start).total_seconds()))
        failed += r.status == "failed"
    decided = met + missed
    return {"requests": len(rows), "completed": completed, "failed": failed,
            "pending": pending, "overdue": overdue, "met": met, "missed": missed,
            "attainment": round(met / decided, 4) if decided else None,
            "time_to_callback_s": {"p50": percentile(waits, 50), "p90": percentile(waits, 90),
                                   "p99": percentile(waits, 99)}}
