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

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Literal, NamedTuple
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


#: A busy agent's call that has run for (nearly) the mean handle time is still taken to need
#: this share of the mean: we do not know that it ends now, so we do not promise it.
MIN_LEFT = 0.25


def mean_handle_time(recent_handle_times: Sequence[timedelta],
                     fallback_handle_time: timedelta = timedelta(minutes=5)) -> timedelta:
    """The mean of the queue's recent handle times (talk plus wrap-up; entries that are not
    positive are no sample); with none, ``fallback_handle_time`` (the policy's)."""
    times = [h for h in recent_handle_times if h > timedelta(0)]
    return sum(times, timedelta(0)) / len(times) if times else fallback_handle_time


def time_left(elapsed: timedelta, mean: timedelta) -> timedelta:
    """How long a call handled for ``elapsed`` so far is expected to go on: the rest of the
    mean handle time, and never less than ``MIN_LEFT`` of it."""
    return max(mean - max(elapsed, timedelta(0)), mean * MIN_LEFT)


def expected_wait(position: int, busy: Sequence[timedelta],
                  recent_handle_times: Sequence[timedelta],
                  fallback_handle_time: timedelta = timedelta(minutes=5), *,
                  free: int = 0) -> timedelta | None:
    """How long the caller at ``position`` (1 = next to be answered: the live callers and
    pending callbacks served before them, plus one) can expect to wait; None when nobody
    can answer (no agent of the queue signed in), for then no wait can be promised.

    * ``free``: the queue's agents free now; each takes a caller at once.
    * ``busy``: for each of its agents on a call (being connected, talking or wrapping up),
      how long that call has been handled so far; the agent is free after ``time_left`` of
      it against the mean handle time (``mean_handle_time``).
    * The callers ahead take, in order, the agent free soonest, each for one mean handle
      time; the caller's wait is the moment the agent they get is free. Zero when a free
      agent is left for them (they are next in line); ``position <= 0`` (already being
      connected) waits zero.

    With every agent busy and just started, this is ``ceil(position / agents)`` mean
    handle times."""
    longest_first = sorted(busy, reverse=True)
    return expected_wait_ranked(position, free, len(busy), longest_first.__getitem__,
                                recent_handle_times, fallback_handle_time)


def expected_wait_ranked(position: int, free: int, busy: int,
                         elapsed_at: Callable[[int], timedelta],
                         recent_handle_times: Sequence[timedelta],
                         fallback_handle_time: timedelta = timedelta(minutes=5),
                         ) -> timedelta | None:
    """``expected_wait`` from the queue's counts and one order statistic, so that the
    store reads one busy agent, not all of them: ``busy`` agents on a call, and
    ``elapsed_at(rank)`` how long the call of the busy agent at ``rank`` (0-based) has
    been handled, in the order of the longest handled first (``elapsed_at`` is asked at
    most once)."""
    if position <= 0:
        return timedelta(0)
    if position <= free:
        return timedelta(0)
    if free <= 0 and busy <= 0:
        return None
    mean = mean_handle_time(recent_handle_times, fallback_handle_time)
    # Each caller ahead holds the agent free soonest for one mean. Every agent is free
    # within one mean (0 <= time_left <= mean), so the agents are taken in the order they
    # are free, round after round: after the ``position - 1`` callers ahead, the caller
    # gets the agent at index ``(position - 1) % n`` of that order, ``(position - 1) // n``
    # means later (the same as simulating the callers one by one, in O(n log n) rather
    # than O(position x n): tests/test_sla.py compares the two). The order: the free
    # agents (0 left), then the busy ones by time left, which falls as the time handled
    # grows (``time_left``): the longest handled first.
    free = max(free, 0)
    rounds, index = divmod(position - 1, free + busy)
    ready = timedelta(0) if index < free else time_left(elapsed_at(index - free), mean)
    return ready + mean * rounds


class WaitEstimate(NamedTuple):
    """What a waiting caller is told about their wait: their place (1 = next), the queue's
    agents free and busy now, and ``expected_wait`` (None: nobody can answer)."""

    position: int
    free: int
    busy: int
    wait: timedelta | None


def scheduled_deadline(slot: datetime, policy: Policy) -> datetime:
    """A scheduled callback's deadline: ``scheduled_window`` of business time after the
    chosen (callable) slot."""
    return add_business_time(policy.business_hours, slot, policy.scheduled_window)


OfferReason = Literal["wait", "closing", "unstaffed"]


def closes_within(now: datetime, window: timedelta, policy: Policy) -> bool:
    """Open now, and closed at some instant before ``now + window``."""
    hours = policy.business_hours
    if not is_open(hours, now):
        return False
    _, end = next(intervals_from(hours, now))
    return end < utc(now) + window


def offer_reason(now: datetime, expected: timedelta | None, policy: Policy,
                 ) -> OfferReason | None:
    """Why a waiting caller is offered a callback now, or None: the queue's offer is enabled,
    ``now`` is within its ``hours`` (the centre's zone), and nobody can answer (``expected``
    None: ``unstaffed``), or the expected wait is over the threshold (``wait``), or the
    centre closes within ``closing_within`` (``closing``). Never when the wait is zero (an
    agent is free for the caller)."""
    offer = policy.offer
    if not offer.enabled:
        return None
    if offer.hours is not None and not in_ranges(
            offer.hours, utc(now).astimezone(policy.business_hours.zone).time()):
        return None
    if expected is None:
        return "unstaffed"
    if expected <= timedelta(0):
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
