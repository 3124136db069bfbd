"""Business time: the centre's open intervals, and time counted only while it is open.

Pure functions of (``BusinessHours``, aware instants). Opening hours are wall-clock ranges
in the centre's zone, turned into UTC instants day by day, so a DST change moves the
instants, never the advertised hours, and a day of 23 or 25 hours counts what it has.
Every sum and difference is taken in UTC (Python subtracts two datetimes of one zone by
their wall clocks, which is wrong across a DST change). A local time a spring-forward gap
skips reads as PEP 495 says (``fold=0``: the offset before the change, i.e. later); one a
fall-back repeats is its first occurrence (the end of a quiet span: the first one after).

The same semantics as ``ivr.menu.hours.hours_status`` (a test checks them side by side):
special days win, then public holidays (closed all day), then the weekly hours. Emergency
closures of menu schedules are not part of a callback policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from callbacks.policy import BusinessHours, QuietHours, TimeRange

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order
SEARCH_DAYS = 400  # how far ahead an opening is looked for before giving up


class NeverOpen(ValueError):
    """No opening (or no callable time) within ``SEARCH_DAYS``."""


Interval = tuple[datetime, datetime]  # [start, end) in UTC


def utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("business time needs timezone-aware datetimes")
    return t.astimezone(UTC)


@lru_cache(maxsize=256)
def _holiday_calendar(country: str, subdivision: str | None, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, subdiv=subdivision, years=year)


def holiday_name(hours: BusinessHours, day: date) -> str | None:
    if hours.holidays is None:
        return None
    name = _holiday_calendar(hours.holidays.country, hours.holidays.subdivision,
                             day.year).get(day)
    return str(name) if name else None


def day_ranges(hours: BusinessHours, day: date) -> list[TimeRange]:
    """The wall-clock ranges the centre is open on a local date."""
    special = hours.special_days.get(day)
    if isinstance(special, list):
        return special
    if special is not None or holiday_name(hours, day):
        return []
    return hours.weekly.get(WEEKDAYS[day.weekday()], [])  # type: ignore[call-overload,no-any-return]


def _instant(day: date, at: time | None, zone: ZoneInfo) -> datetime:
    if at is None:  # 24:00: the next day's midnight
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def open_intervals(hours: BusinessHours, day: date) -> list[Interval]:
    """A local date's opening ranges as UTC intervals, in order."""
    zone = hours.zone
    out = [(_instant(day, r.start, zone), _instant(day, r.end, zone))
           for r in day_ranges(hours, day)]
    return sorted((s, e) for s, e in out if e > s)


def intervals_from(hours: BusinessHours, t: datetime) -> Iterator[Interval]:
    """Open intervals that end after ``t``, the first one clipped to start at ``t`` at the
    earliest; ``NeverOpen`` after ``SEARCH_DAYS`` days without one."""
    t = utc(t)
    day = t.astimezone(hours.zone).date()
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


def is_open(hours: BusinessHours, t: datetime) -> bool:
    t = utc(t)
    return any(s <= t < e for s, e in open_intervals(hours, t.astimezone(hours.zone).date()))


def next_open(hours: BusinessHours, t: datetime) -> datetime:
    """``t`` if the centre is open then, else the next opening."""
    start, _ = next(intervals_from(hours, t))
    return start


def add_business_time(hours: BusinessHours, start: datetime, amount: timedelta) -> datetime:
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


def business_time_between(hours: BusinessHours, a: datetime, b: datetime) -> timedelta:
    """Open time in ``[a, b)``; zero when ``b <= a``."""
    a, b = utc(a), utc(b)
    total = timedelta(0)
    if b <= a:
        return total
    day = a.astimezone(hours.zone).date()
    while True:
        for s, e in open_intervals(hours, day):
            if e > a and s < b:
                total += min(e, b) - max(s, a)
        if _instant(day, None, hours.zone) >= b:
            return total
        day += timedelta(days=1)


def is_quiet(quiet: QuietHours | None, t: datetime, zone: ZoneInfo) -> bool:
    return quiet is not None and quiet.covers(utc(t).astimezone(zone).time())


def quiet_end(quiet: QuietHours, t: datetime, zone: ZoneInfo) -> datetime:
    """When the quiet span covering ``t`` ends (UTC); ``t`` itself if it is not quiet."""
    t = utc(t)
    local = t.astimezone(zone)
    if not quiet.covers(local.time()):
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
