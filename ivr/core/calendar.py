"""The business calendar: when a centre is open, and time counted only while it is open.

One calendar for the menus' ``hours`` nodes (``ivr.menu.model.Schedule``) and the callback
SLA (``callbacks.policy.BusinessHours``). Pure functions of a schedule (anything with its
shape, see ``Hours``) and timezone-aware instants; the core imports nothing else of the
project.

**Open** (the one definition): an instant is open when its wall-clock time in the
schedule's zone falls in one of its local date's ranges ``[start, end)`` (``end`` None is
the midnight that ends the day). A date's ranges: a special day wins (its list of ranges,
or none when it is ``closed`` / ``holiday``); else a public holiday of the ``holidays``
package (Israel's Hebrew-calendar ones included) closes the whole day; else the weekly
hours of its weekday (a day not listed is closed). A menu schedule's emergency closures
come first (``hours_status`` only; callback policies have none).

Wall clocks are compared in the schedule's own zone, so a DST change moves the UTC
instants, never the advertised hours, and a day of 23 or 25 hours counts what it has. A
wall-clock time that a spring-forward gap skips never occurs (a range ending in the gap
ends at the change); one that a fall-back repeats is open both times it occurs.

**Open intervals** (``open_intervals``) are exactly the open instants of a local date, as
UTC intervals: each range is cut along the zone's UTC-offset changes around the date, so
``is_open(t)`` and "``t`` is in one of the intervals" always agree. Every sum and
difference is taken in UTC (Python subtracts two datetimes of one zone by their wall
clocks, which is wrong across a DST change). **Business time** (``add_business_time``,
``business_time_between``) runs only inside the intervals.

**Quiet hours** (a daily wall-clock span with no calls, in the customer's zone, that may
cross midnight) end, for an instant they cover, at the first occurrence of their end time
after it: a repeated wall time (fall back) ends the first time after the instant (fold 0,
then 1); one a spring-forward gap skips reads as PEP 495 says (``fold=0``: the offset
before the change, i.e. later).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

import holidays

Outcome = Literal["open", "closed", "holiday", "emergency"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order
SEARCH_DAYS = 400  # how far ahead an opening is looked for before giving up
Interval = tuple[datetime, datetime]  # [start, end) in UTC


class Range(Protocol):
    """Wall-clock hours of one day, ``[start, end)``; ``end`` None is the next midnight."""

    @property
    def start(self) -> time: ...
    @property
    def end(self) -> time | None: ...


class HolidayCalendar(Protocol):
    @property
    def country(self) -> str: ...
    @property
    def subdivision(self) -> str | None: ...


class Hours(Protocol):
    """The shape of a schedule (``ivr.menu.model.Schedule``, ``callbacks.policy.BusinessHours``)."""

    @property
    def timezone(self) -> str: ...
    @property
    def weekly(self) -> Mapping[Any, Sequence[Range]]: ...  # "sun" ... "sat"
    @property
    def holidays(self) -> HolidayCalendar | None: ...
    @property
    def special_days(self) -> Mapping[date, str | Sequence[Range]]: ...  # closed / holiday


class Closure(Protocol):
    @property
    def start(self) -> datetime: ...  # local time of the schedule's zone unless aware
    @property
    def end(self) -> datetime: ...
    @property
    def reason(self) -> str | None: ...


class MenuHours(Hours, Protocol):
    """A menu schedule: hours and emergency closures."""

    @property
    def closures(self) -> Sequence[Closure]: ...


class Quiet(Protocol):
    """A daily wall-clock span with no calls; may cross midnight (``21:00-08:00``)."""

    @property
    def start(self) -> time: ...
    @property
    def end(self) -> time: ...


class NeverOpen(ValueError):
    """No opening (or no callable time) within ``SEARCH_DAYS``."""


def utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("business time needs timezone-aware datetimes")
    return t.astimezone(UTC)


def zone_of(hours: Hours) -> ZoneInfo:
    return ZoneInfo(hours.timezone)  # ZoneInfo keeps one instance per key


# ------------------------------------------------------------------------- a local date


@lru_cache(maxsize=256)
def _holiday_calendar(country: str, subdivision: str | None, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, subdiv=subdivision, years=year)


def holiday_name(hours: Hours, day: date) -> str | None:
    """The public holiday on a local date, if the schedule keeps a holiday calendar."""
    if hours.holidays is None:
        return None
    name = _holiday_calendar(hours.holidays.country, hours.holidays.subdivision,
                             day.year).get(day)
    return str(name) if name else None


def _plan(hours: Hours, day: date) -> tuple[Sequence[Range], tuple[Outcome, str] | None]:
    """A local date's ranges, and why there are none when a special day or a public holiday
    closes it all day."""
    special = hours.special_days.get(day)
    if isinstance(special, str):
        outcome: Outcome = "holiday" if special == "holiday" else "closed"
        return [], (outcome, f"special day {day.isoformat()}")
    if special is not None:
        return special, None
    name = holiday_name(hours, day)
    if name:
        return [], ("holiday", name)
    return hours.weekly.get(WEEKDAYS[day.weekday()], []), None


def day_ranges(hours: Hours, day: date) -> Sequence[Range]:
    """The wall-clock ranges the centre is open on a local date."""
    return _plan(hours, day)[0]


def in_ranges(ranges: Sequence[Range], t: time) -> bool:
    return any(r.start <= t and (r.end is None or t < r.end) for r in ranges)


def hours_status(schedule: MenuHours, now: datetime) -> tuple[Outcome, str]:
    """Whether the centre is open at ``now`` (aware), and why, for the call's path."""
    if now.tzinfo is None:
        raise ValueError("hours_status needs an aware datetime")
    tz = zone_of(schedule)
    for closure in schedule.closures:
        start = closure.start if closure.start.tzinfo else closure.start.replace(tzinfo=tz)
        end = closure.end if closure.end.tzinfo else closure.end.replace(tzinfo=tz)
        if start <= now < end:
            return "emergency", closure.reason or "emergency closure"
    local = now.astimezone(tz)
    day = local.date()
    ranges, closed = _plan(schedule, day)
    if closed is not None:
        return closed
    label = f"{WEEKDAYS[day.weekday()]} {local:%H:%M}"
    return ("open" if in_ranges(ranges, local.time()) else "closed"), label


def is_open(hours: Hours, t: datetime) -> bool:
    local = utc(t).astimezone(zone_of(hours))
    return in_ranges(day_ranges(hours, local.date()), local.time())


# ---------------------------------------------------------------------- open intervals

_MARGIN = timedelta(hours=6)  # beyond the biggest UTC-offset change around a midnight
_STEP = timedelta(hours=1)  # offset changes are further apart than this


def _offset(zone: ZoneInfo, t: datetime) -> timedelta:
    return t.astimezone(zone).utcoffset() or timedelta(0)


@lru_cache(maxsize=4096)
def _spans(key: str, day: date) -> tuple[tuple[datetime, datetime, timedelta], ...]:
    """UTC spans ``[a, b)`` of one UTC offset each, in order, that together hold every
    instant whose wall-clock date in zone ``key`` is ``day``."""
    zone = ZoneInfo(key)
    lo = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC) - _MARGIN
    hi = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    hi += _MARGIN
    spans = []
    start, offset, at = lo, _offset(zone, lo), lo
    while at < hi:
        step = min(at + _STEP, hi)
        if _offset(zone, step) != offset:
            # The change is in (at, step]: find its second (tzdata's changes are whole ones).
            a, b = int(at.timestamp()), int(step.timestamp())
            while b - a > 1:
                m = (a + b) // 2
                a, b = (m, b) if _offset(zone, datetime.fromtimestamp(m, UTC)) == offset else (
                    a, m)
            change = datetime.fromtimestamp(b, UTC)
            spans.append((start, change, offset))
            start, offset = change, _offset(zone, change)
        at = step
    spans.append((start, hi, offset))
    return tuple(spans)


def _wall_span(hours: Hours, day: date, r: Range) -> list[Interval]:
    """The instants whose wall-clock time (in the schedule's zone) is on ``day`` within the
    range, as UTC intervals; pieces that touch are one interval."""
    first = datetime.combine(day, r.start, tzinfo=UTC)
    last = datetime.combine(day + timedelta(days=1) if r.end is None else day,
                            r.end or time(0), tzinfo=UTC)
    out: list[Interval] = []
    for a, b, offset in _spans(hours.timezone, day):
        s, e = max(a, first - offset), min(b, last - offset)
        if e <= s:
            continue
        if out and out[-1][1] == s:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def open_intervals(hours: Hours, day: date) -> list[Interval]:
    """A local date's open instants as UTC intervals, in order (one range may give two
    when a fall-back repeats part of it)."""
    return sorted(i for r in day_ranges(hours, day) for i in _wall_span(hours, day, r))


def intervals_from(hours: Hours, t: datetime) -> Iterator[Interval]:
    """Open intervals that end after ``t``, the first one clipped to start at ``t`` at the
    earliest; ``NeverOpen`` after ``SEARCH_DAYS`` days without one."""
    t = utc(t)
    day = t.astimezone(zone_of(hours)).date()
    quiet_days = 0
    while quiet_days <= SEARCH_DAYS:
        found = False
        for start, end in open_intervals(hours, day):
            if end > t:
                found = True
                yield max(start, t), end
        quiet_days = 0 if found else quiet_days + 1
        day += timedelta(days=1)
    raise NeverOpen(f"the centre is not open on any day within {SEARCH_DAYS} days "
                    f"after {t.isoformat()}")


def next_open(hours: Hours, t: datetime) -> datetime:
    """``t`` if the centre is open then, else the next opening."""
    start, _ = next(intervals_from(hours, t))
    return start


def add_business_time(hours: Hours, start: datetime, amount: timedelta) -> datetime:
    """The instant at which ``amount`` of open time has passed since ``start`` (UTC).

    The clock runs only while the centre is open; an amount used up exactly at closing
    time ends at closing time, not at the next opening."""
    if amount < timedelta(0):
        raise ValueError("amount must not be negative")
    left = amount
    for s, e in intervals_from(hours, start):
        if left <= e - s:
            return s + left
        left -= e - s
    raise AssertionError("unreachable: intervals_from ends by raising")  # pragma: no cover


def business_time_between(hours: Hours, a: datetime, b: datetime) -> timedelta:
    """Open time in ``[a, b)``; zero when ``b <= a``."""
    a, b = utc(a), utc(b)
    total = timedelta(0)
    if b <= a:
        return total
    zone = zone_of(hours)
    day = a.astimezone(zone).date()
    while True:
        for s, e in open_intervals(hours, day):
            if e > a and s < b:
                total += min(e, b) - max(s, a)
        if datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC) >= b:
            return total
        day += timedelta(days=1)


# ------------------------------------------------------------------------- quiet hours


def covers(quiet: Quiet, t: time) -> bool:
    """Whether a wall-clock time is within the quiet span."""
    if quiet.start < quiet.end:
        return quiet.start <= t < quiet.end
    return t >= quiet.start or t < quiet.end


def is_quiet(quiet: Quiet | None, t: datetime, zone: ZoneInfo) -> bool:
    return quiet is not None and covers(quiet, utc(t).astimezone(zone).time())


def quiet_end(quiet: Quiet, t: datetime, zone: ZoneInfo) -> datetime:
    """When the quiet span covering ``t`` ends (UTC); ``t`` itself if it is not quiet."""
    t = utc(t)
    local = t.astimezone(zone)
    if not covers(quiet, local.time()):
        return t
    day = local.date()
    if quiet.start > quiet.end and local.time() >= quiet.start:
        day += timedelta(days=1)  # 21:00-08:00 at 22:30: ends tomorrow morning
    # A wall time a DST change repeats ends the first time after t (fold 0, then 1); one a
    # spring-forward gap skips reads with the offset before the change (later).
    for fold in (0, 1):
        end = datetime.combine(day, quiet.end, tzinfo=zone).replace(fold=fold).astimezone(UTC)
        if end > t:
            return end
    raise AssertionError("unreachable: a quiet span ends after an instant it covers")
