"""A periodic job of ``ivr worker``: each feature's ``tasks.py`` builds its own, the worker
(``ivr.worker``) runs them in one loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime


@dataclass
class Job:
    name: str
    every: float  # seconds between runs
    run: Callable[[], bool]  # True: more is waiting, run again at once
    next_at: datetime | None = None  # None: due now
    runs: int = 0
    failures: int = 0
