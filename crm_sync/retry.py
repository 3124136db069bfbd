"""Back-off for HTTP retries (the pull connector) and for outbox redeliveries. Pure: the caller
passes the random source, the clock and the server's ``Retry-After`` value."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Backoff:
    base: float = 0.5  # seconds before the first retry (at most: full jitter)
    cap: float = 30.0  # the longest wait between two attempts

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): "full jitter",
        uniform in [0, min(cap, base * 2**(attempt-1))), so retrying clients spread out."""
        ceiling = min(self.cap, self.base * 2 ** max(0, attempt - 1))
        return float(ceiling * rand())


def retry_after(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` header in seconds: delta-seconds or an HTTP date; None if absent or
    unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
