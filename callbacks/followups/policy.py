"""The follow-up policy: the models of ``followups.yaml`` and its loader, with the pure
scheduling rule (``first_slot``).

::

    window:                         # when satisfaction calls are made: the format of a
      timezone: Asia/Jerusalem      # menu schedule (here 10:00-18:00 on business days,
      weekly: {sun: ["10:00-18:00"], ...}   # never on a holiday)
      holidays: {country: IL}
    satisfaction:                   # after an incident is closed
      enabled: true
      mode: survey                  # survey (an automated call) / agent (a task in a queue)
      queue: support                # the agent's queue (mode agent); the survey's queue
      categories: []                # only incidents of these categories ([]: all)
      delay_days: 1                 # the next business day (0: the same day if open)
      daily_cap: 1                  # follow-up calls per customer per day
      skip_if_called: true          # not if the customer called us since it closed
    low_csat: {enabled: true, mode: agent, queue: support}
    dialing: {max_attempts: 3, retry_backoff: [30m, 2h], machine_detection: true}
    promises: {warn_before: 2h, default_queue: support}
    sms: {callbacks: false, followups: true, promises: true}

Read by ``ivr.core.yamlfile`` through the callback policy's loader rules (unknown keys,
durations, hours and their ``file:line:col: key.path: message`` refusals are the same).
Pure: no database, no clock (``now`` is an argument).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError

from callbacks.policy import (
    Backoff,
    BusinessHours,
    Duration,
    PolicyError,
    QueueName,
    _refuse,
    _refused,
)
from ivr.core.calendar import intervals_from, utc
from ivr.core.yamlfile import StrictConfig, YamlError, load_yaml, read_text

DEFAULT_FILE = Path("followups.yaml")  # IVR_FOLLOWUPS_FILE
Mode = Literal["survey", "agent"]


class Satisfaction(StrictConfig):
    """The satisfaction call after an incident is closed."""

    enabled: bool = True
    mode: Mode = "survey"
    queue: QueueName = "support"
    survey: str | None = None  # a survey of surveys.yaml (None: the queue's)
    categories: list[str] = Field(default_factory=list)
    delay_days: Annotated[int, Field(ge=0, le=30)] = 1
    daily_cap: Annotated[int, Field(ge=1, le=20)] = 1
    skip_if_called: bool = True


class LowCsat(StrictConfig):
    """The follow-up a low survey score opens."""

    enabled: bool = True
    mode: Mode = "agent"
    queue: QueueName = "support"
    again_after_followup: bool = True  # also for a low score on a satisfaction call


class Dialing(StrictConfig):
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    retry_backoff: Backoff = Field(default_factory=lambda: [
        timedelta(minutes=30), timedelta(hours=2)])
    machine_detection: bool = True
    ring_seconds: Annotated[int, Field(ge=5, le=120)] = 30


class Promises(StrictConfig):
    enabled: bool = True
    warn_before: Duration = timedelta(hours=2)
    default_queue: QueueName = "support"
    # Promises whose due time is further back than this are not taken up (old imports).
    lookback: Duration = timedelta(days=7)


class Sms(StrictConfig):
    callbacks: bool = False
    followups: bool = False
    promises: bool = False


class FollowUpPolicy(StrictConfig):
    window: BusinessHours
    satisfaction: Satisfaction = Field(default_factory=Satisfaction)
    low_csat: LowCsat = Field(default_factory=LowCsat)
    dialing: Dialing = Field(default_factory=Dialing)
    promises: Promises = Field(default_factory=Promises)
    sms: Sms = Field(default_factory=Sms)

    def backoff_after(self, attempt_no: int) -> timedelta:
        """The wait after the ``attempt_no``-th attempt (1-based); the last one repeats."""
        b = self.dialing.retry_backoff
        return b[min(max(attempt_no, 1), len(b)) - 1]

    def wants(self, category: str | None) -> bool:
        """Whether an incident of this category gets a satisfaction call."""
        s = self.satisfaction
        return s.enabled and (not s.categories or (category or "") in s.categories)


# ---------------------------------------------------------------------------- scheduling


def windows_from(policy: FollowUpPolicy, t: datetime) -> list[tuple[datetime, datetime]]:
    """The window's open intervals from ``t`` on (the first may have begun), at most 60."""
    out = []
    for start, end in intervals_from(policy.window, utc(t)):
        out.append((max(start, utc(t)), end))
        if len(out) >= 60:
            break
    return out


def first_slot(policy: FollowUpPolicy, closed_at: datetime, now: datetime,
               taken: Callable[[date], int], delay_days: int | None = None,
               ) -> tuple[datetime, datetime]:
    """When a follow-up of something that happened at ``closed_at`` is due: the first
    window interval on a local date at least ``delay_days`` after it (the next business
    day: the window is closed on holidays and days without hours), not before ``now``, on
    a date whose count of follow-ups (``taken(date)``) is under the daily cap. Returns
    (due, end of that interval)."""
    zone = policy.window.zone
    delay = policy.satisfaction.delay_days if delay_days is None else delay_days
    first_day = closed_at.astimezone(zone).date() + timedelta(days=delay)
    start = max(utc(now), datetime(first_day.year, first_day.month, first_day.day,
                                   tzinfo=zone).astimezone(utc(now).tzinfo))
    seen: dict[date, int] = {}
    for begin, end in windows_from(policy, start):
        day = begin.astimezone(zone).date()
        if day not in seen:
            seen[day] = taken(day)
        if seen[day] < policy.satisfaction.daily_cap:
            return begin, end
    raise PolicyError("no window with room for a follow-up within 60 openings")


def next_open(policy: FollowUpPolicy, t: datetime) -> tuple[datetime, datetime]:
    """The first window instant at or after ``t`` and the end of its interval."""
    begin, end = windows_from(policy, t)[0]
    return begin, end


# -------------------------------------------------------------------------------- loader


def load_policy(path: Path = DEFAULT_FILE) -> FollowUpPolicy:
    """``followups.yaml`` (``IVR_FOLLOWUPS_FILE``), validated; mistakes raise PolicyError
    (``file:line:col: key.path: what was expected``)."""
    try:
        doc = load_yaml(read_text(path), str(path), holds="a follow-up policy")
    except YamlError as err:
        raise _refused(path, err) from None
    if not isinstance(doc.data, dict):
        raise PolicyError(f"{path}:1:1: expected a mapping with window: and satisfaction:")
    try:
        return FollowUpPolicy.model_validate(doc.data)
    except ValidationError as exc:
        raise _refuse(path, doc, exc) from None
