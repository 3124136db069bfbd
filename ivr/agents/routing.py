"""Which waiting call goes to which free agent: a pure function, no database.

Order: one ordering for all work, live calls and callbacks alike: the highest priority
first, then the earliest SLA deadline (the caller's tier deadline counted from the time they
first joined the queue; a callback carries the deadline of its caller's place), then the
longest waiting (``entered_at``: a caller put back after an agent did not answer keeps the
time they first joined, so they are at the head again). Callers of one tier therefore go in
the order they joined whether they wait on the line or asked to be called back.

A call goes to its preferred agent (the one who handled the caller's last
contact, for a repeat caller) when that agent is free; otherwise to the free agent of its
queue who has been idle longest. A call no free agent serves stays waiting without
holding up calls of other queues behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Waiting:
    entry_id: int
    call_sid: str
    queue: str
    priority: int
    entered_at: datetime
    preferred_agent_id: int | None = None
    deadline: datetime | None = None  # None: ordered by ``entered_at`` alone
    kind: str = "call"  # call (waiting on the line) / callback (a due callback request)


@dataclass(frozen=True)
class Free:
    agent_id: int
    queues: frozenset[str]
    idle_since: datetime


def order_key(w: Waiting) -> tuple[int, datetime, datetime, str, int]:
    return (-w.priority, w.deadline or w.entered_at, w.entered_at, w.kind, w.entry_id)


def plan(waiting: Sequence[Waiting], free: Sequence[Free]) -> list[tuple[Waiting, Free]]:
    """Pairs (call, agent) to offer now, in the order they were decided."""
    pool = sorted(free, key=lambda a: (a.idle_since, a.agent_id))
    taken: set[int] = set()
    out: list[tuple[Waiting, Free]] = []
    for call in sorted(waiting, key=order_key):
        if len(taken) == len(pool):
            break
        choice = None
        if call.preferred_agent_id is not None:
            choice = next((a for a in pool if a.agent_id == call.preferred_agent_id
                           and a.agent_id not in taken), None)
        if choice is None:
            choice = next((a for a in pool if a.agent_id not in taken
                           and call.queue in a.queues), None)
        if choice is not None:
            taken.add(choice.agent_id)
            out.append((call, choice))
    return out
