"""SLA maths for callbacks: pure functions of explicit inputs (no clock, no I/O).

Every instant in is timezone-aware and every instant out is UTC. The caller passes ``now``
(from ``ivr.core.clock``) where one is needed; nothing here reads the time.

* Deadlines and warnings count **business time** (``ivr.core.calendar``, the calendar the
  menus' hours nodes use too): the centre's open hours only (the clock pauses at night, on
  closed days and on public holidays).
* Calls are placed only when the centre is open **and** it is not the customer's quiet
  hours in the customer's own time zone (their zone, else the centre's).
* Retry back-off is wall-clock time after the failed attempt, then moved to the next
  callable instant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from callbacks.policy import Policy
from ivr.core.calendar import (
    SEARCH_DAYS,
    NeverOpen,
    add_business_time,
    in_ranges,
    intervals_from,
    is_open,
    is_quiet,
    next_open,
    quiet_end,
    utc,
)

SlotVerdict = Literal["ok", "past", "beyond_horizon", "closed", "quiet_hours"]


class NoCallableTime(NeverOpen):
    """The centre's hours and the customer's quiet hours never overlap (within a year)."""


def deadline(created_at: datetime, policy: Policy, tier: str | None) -> datetime:
    """When a callback requested at ``created_at`` must have been made: the tier's deadline
    (``Policy.deadline_for``) counted in the queue's business time from ``created_at``."""
    return add_business_time(policy.business_hours, created_at, policy.deadline_for(tier))


def warning_at(created_at: datetime, policy: Policy, tier: str | None) -> datetime:
    """When ``warn_at`` (e.g. 0.8) of the deadline's business time is used up: the moment
    an open callback is escalated as at risk."""
    used = policy.deadline_for(tier) * policy.warn_at
    return add_business_time(policy.business_hours, created_at, used)


def _zone(policy: Policy, customer_tz: ZoneInfo | None) -> ZoneInfo:
    return customer_tz or policy.business_hours.zone


def callable_at(t: datetime, policy: Policy, customer_tz: ZoneInfo | None = None) -> bool:
    """Whether a call may be placed at ``t``: open, and outside the customer's quiet hours."""
    return is_open(policy.business_hours, t) and not is_quiet(
        policy.quiet_hours, t, _zone(policy, customer_tz))


def next_callable(t: datetime, policy: Policy, customer_tz: ZoneInfo | None = None,
                  ) -> datetime:
    """The earliest instant ``>= t`` at which a call may be placed (see ``callable_at``).

    Raises ``NoCallableTime`` if there is none within ``SEARCH_DAYS`` (the customer's quiet
    hours cover every opening hour, seen from their zone)."""
    start = at = utc(t)
    zone = _zone(policy, customer_tz)
    limit = start + timedelta(days=SEARCH_DAYS)
    while at <= limit:
        at = next_open(policy.business_hours, at)
        if policy.quiet_hours is None or not is_quiet(policy.quiet_hours, at, zone):
            return at
        at = quiet_end(policy.quiet_hours, at, zone)
    raise NoCallableTime(f"no instant within {SEARCH_DAYS} days after {start.isoformat()} "
                         f"when the centre is open outside quiet hours in {zone.key}")


def next_attempt_at(last_attempt_at: datetime, attempt_no: int, policy: Policy,
                    customer_tz: ZoneInfo | None = None) -> datetime | None:
    """When to try again after attempt number ``attempt_no`` (1-based) went unanswered:
    ``last_attempt_at`` plus the back-off for that attempt (the list's last entry repeats),
    moved to the next callable instant. None once ``max_attempts`` attempts were made
    (the request is then escalated, not dropped: that is the dispatcher's job)."""
    if attempt_no < 1:
        raise ValueError("attempt_no counts the attempts made, from 1")
    if attempt_no >= policy.max_attempts:
        return None
    return next_callable(utc(last_attempt_at) + policy.backoff_after(attempt_no), policy,
                         customer_tz)


def scheduled_slot_ok(requested: datetime, now: datetime, policy: Policy,
                      customer_tz: ZoneInfo | None = None) -> SlotVerdict:
    """Whether a caller may pick ``requested`` for a scheduled callback, and if not why:
    ``past`` (before ``now``), ``beyond_horizon`` (after ``now + scheduled_horizon``, in
    calendar time), ``closed`` (the centre is not open then), ``quiet_hours`` (the
    customer's night, in their zone); else ``ok``."""
    requested, now = utc(requested), utc(now)
    if requested < now:
        return "past"
    if requested > now + policy.scheduled_horizon:
        return "beyond_horizon"
    if not is_open(policy.business_hours, requested):
        return "closed"
    if is_quiet(policy.quiet_hours, requested, _zone(policy, customer_tz)):
        return "quiet_hours"
    return "ok"


def expected_wait(position: int, agents_available: int,
                  recent_handle_times: Sequence[timedelta],
                  fallback_handle_time: timedelta = timedelta(minutes=5)) -> timedelta:
    """How long the caller at ``position`` (1 = next to be answered) can expect to wait.

    ``ceil(position / max(agents_available, 1)) * mean_handle_time``

    * ``agents_available``: the agents serving the queue now (signed in, not offline),
      busy or free. Zero counts as one, so the estimate stays finite (someone signs in).
    * ``mean_handle_time``: the mean of ``recent_handle_times`` (the queue's last handled
      calls, talk plus wrap-up; entries that are not positive are ignored); with none,
      ``fallback_handle_time`` (the policy's ``fallback_handle_time``).
    * The callers ahead are served in rounds of ``agents`` calls, and each round is taken
      to last one whole mean handle time (as if every agent had just started a call):
      an estimate on the long side, so the caller is not promised less than we keep.
      ``position <= 0`` (already being connected) waits zero.
    """
    if position <= 0:
        return timedelta(0)
    times = [h for h in recent_handle_times if h > timedelta(0)]
    mean = sum(times, timedelta(0)) / len(times) if times else fallback_handle_time
    return math.ceil(position / max(agents_available, 1)) * mean


def scheduled_deadline(slot: datetime, policy: Policy) -> datetime:
    """A scheduled callback's deadline: ``scheduled_window`` of business time after the
    chosen (callable) slot."""
    return add_business_time(policy.business_hours, slot, policy.scheduled_window)


OfferReason = Literal["wait", "closing"]


def closes_within(now: datetime, window: timedelta, policy: Policy) -> bool:
    """Open now, and closed at some instant before ``now + window``."""
    hours = policy.business_hours
    if not is_open(hours, now):
        return False
    _, end = next(intervals_from(hours, now))
    return end < utc(now) + window


def offer_reason(now: datetime, expected: timedelta, policy: Policy) -> OfferReason | None:
    """Why a waiting caller is offered a callback now, or None: the queue's offer is enabled,
    ``now`` is within its ``hours`` (the centre's zone), and the expected wait is over the
    threshold (``wait``) or the centre closes within ``closing_within`` (``closing``)."""
    offer = policy.offer
    if not offer.enabled:
        return None
    if offer.hours is not None and not in_ranges(
            offer.hours, utc(now).astimezone(policy.business_hours.zone).time()):
        return None
    if expected > offer.threshold:
        return "wait"
    if offer.closing_within is not None and closes_within(now, offer.closing_within, policy):
        return "closing"
    return None


#: The times a caller may choose, as (name, local hour): later today is now + 2 h.
CHOICES: tuple[tuple[str, int | None], ...] = (
    ("later_today", None), ("tomorrow_morning", 9), ("tomorrow_afternoon", 14))
LATER_TODAY = timedelta(hours=2)


def time_choices(now: datetime, policy: Policy, customer_tz: ZoneInfo | None = None,
                 ) -> list[tuple[str, datetime]]:
    """The scheduled times offered to a caller, each the first callable instant at or after
    its target (later today: two hours from now, only if that is still today; tomorrow
    morning 09:00 and afternoon 14:00 in the centre's zone, or the next open day's), kept
    only when ``scheduled_slot_ok`` accepts it. Empty when the queue offers no times."""
    if not policy.offer.scheduled:
        return []
    zone = policy.business_hours.zone
    local_now = utc(now).astimezone(zone)
    out: list[tuple[str, datetime]] = []
    for name, hour in CHOICES:
        if hour is None:
            target = utc(now) + LATER_TODAY
        else:
            day = local_now.date() + timedelta(days=1)
            target = utc(datetime(day.year, day.month, day.day, hour, tzinfo=zone))
        try:
            slot = next_callable(target, policy, customer_tz)
        except NoCallableTime:
            continue
        if hour is None and slot.astimezone(zone).date() != local_now.date():
            continue
        if any(abs((slot - s).total_seconds()) < 60 for _, s in out):
            continue  # two names for one instant (e.g. tomorrow is closed)
        if scheduled_slot_ok(slot, now, policy, customer_tz) == "ok":
            out.append((name, slot))
    return out
