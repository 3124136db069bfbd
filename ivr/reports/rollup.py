"""The reports' arithmetic (pure): counters per (day, queue, agent) and wait histograms
(``Rollup``, filled by ``ivr.reports.facts``), summed per period into the figures a manager
reads (``figures``).

Counters add up: a week is the sum of its days, a queue's row the sum of its agents', so
``ivr.reports.repository`` stores them per day (the rollup) and a report of any range
reads a few thousand rows, not a million calls. Every rate is a ratio of two counters.

What each figure counts (README, "Reports"):

* **calls**: per queue, the calls that joined it; in the "all queues" row, every inbound
  call the IVR answered (``inbound``).
* **abandoned in the menu**: inbound calls that ended while the menu was asking something
  (the last answer was a ``<Gather>``) and never joined a queue; **in the queue**: queue
  entries the caller hung up on (``abandoned``). **Abandonment** = both / calls.
* **wait**: from joining the queue (``entered_at``, kept across a failed agent leg) to an
  agent answering (``connected_at``), in whole seconds, answered calls only; **average** and **p90**
  (nearest rank over the histogram's buckets: exact to the second below 60 s).
* **service level**: answered within N s / (answered + abandoned in the queue).
* **callbacks on time**: ``callbacks.stats`` verdicts (met / missed) of the requests made
  that day.
* **resolved first time** (FCR): wrap-ups of inbound calls marked resolved, with no inbound
  call from that customer about the same topic within 7 days after / wrap-ups with a topic.
* **repeat callers**: identified inbound calls whose customer called in the 7 days before
  / identified inbound calls.
* **CSAT**: the survey's headline score (1-5), mean over answered surveys.
* **follow-ups on time**: satisfaction follow-ups whose window ended that day
  (``followups.deadline_at``) completed within it / those decided (completed, failed,
  skipped, canceled, or still open after it).
* **promises kept**: promises due that day (``promises.due_at``, their owner's queue and
  agent) kept by then / those decided (kept, broken, or still open after it).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

#: The counters of the rollup, in the order of ``report_days``' columns.
COUNTERS = ("inbound", "abandoned_menu", "offered", "answered", "abandoned_queue",
            "callback_left", "wait_sum", "cb_met", "cb_missed", "fcr_calls", "fcr_ok",
            "identified", "repeats", "csat_n", "csat_sum", "fu_due", "fu_on_time", "pr_due",
            "pr_kept")
#: "No agent" in a key (a call nobody answered, the menu's row).
NO_AGENT = 0
#: The menu's row: calls not (yet) in any queue.
NO_QUEUE = ""
REPEAT_WINDOW = timedelta(days=7)

Key = tuple[date, str, int]  # (day in the centre's zone, queue, agent id or 0)


def wait_bucket(seconds: float) -> int:
    """The histogram bucket of a wait: its lower bound, exact seconds below 60, then 5 s
    to 300, 30 s to 1800, 300 s to 7200; longer waits share the 7200 bucket."""
    s = max(0, int(seconds))
    if s < 60:
        return s
    if s < 300:
        return s - s % 5
    if s < 1800:
        return s - s % 30
    return min(s - s % 300, 7200)


@dataclass
class Rollup:
    counts: dict[Key, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    waits: dict[Key, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, key: Key, counter: str, n: int = 1) -> None:
        self.counts[key][counter] += n


def percentile_of(histogram: Mapping[int, int], q: float) -> int | None:
    """Nearest-rank percentile (``q`` in 0..100) of a histogram {bucket: n}."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q / 100 * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket
    return max(histogram)


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def figures(c: Mapping[str, int], waits: Mapping[int, int], service_level_s: int, *,
            all_calls: bool = False,
            precomputed: tuple[int | None, int] | None = None) -> dict[str, Any]:
    """The figures of one row (a period and a queue or agent) from its summed counters
    and wait histogram. ``all_calls``: the "all queues" row, whose calls are every inbound
    call and whose abandonment includes the menu's. ``precomputed``: the p90 and the
    answered within ``service_level_s`` when the database computed them (no histogram)."""
    calls = c.get("inbound", 0) if all_calls else c.get("offered", 0)
    abandoned = c.get("abandoned_queue", 0) + (c.get("abandoned_menu", 0) if all_calls else 0)
    answered = c.get("answered", 0)
    p90, within = precomputed if precomputed is not None else (
        percentile_of(waits, 90), sum(n for b, n in waits.items() if b < service_level_s))
    csat_n = c.get("csat_n", 0)
    return {
        "calls": calls, "answered": answered,
        "abandoned_menu": c.get("abandoned_menu", 0) if all_calls else None,
        "abandoned_queue": c.get("abandoned_queue", 0),
        "abandon_rate": _ratio(abandoned, calls),
        "callback_left": c.get("callback_left", 0),
        "avg_wait": round(c.get("wait_sum", 0) / answered, 1) if answered else None,
        "p90_wait": p90,
        "service_level": _ratio(within, answered + c.get("abandoned_queue", 0)),
        "callback_sla": _ratio(c.get("cb_met", 0), c.get("cb_met", 0) + c.get("cb_missed", 0)),
        "fcr": _ratio(c.get("fcr_ok", 0), c.get("fcr_calls", 0)),
        "repeat_rate": _ratio(c.get("repeats", 0), c.get("identified", 0)),
        "csat": round(c.get("csat_sum", 0) / csat_n, 2) if csat_n else None,
        "csat_n": csat_n,
        "followups_on_time": _ratio(c.get("fu_on_time", 0), c.get("fu_due", 0)),
        "promises_kept": _ratio(c.get("pr_kept", 0), c.get("pr_due", 0)),
    }
