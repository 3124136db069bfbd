"""Opening hours: a pure function of (schedule, instant).

Wall-clock ranges are compared in the schedule's own time zone, so DST changes move the
UTC instants, never the advertised hours. Public holidays come from the ``holidays`` package
(Israel's Hebrew-calendar holidays included); explicit special days win over both.
"""

from __future__ import annotations

from datetime import date, datetime, time
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

from ivr.menu.model import Schedule, TimeRange

Outcome = Literal["open", "closed", "holiday", "emergency"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order


@lru_cache(maxsize=256)
def _holiday_calendar(country: str, subdivision: str | None, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, subdiv=subdivision, years=year)


def holiday_name(schedule: Schedule, day: date) -> str | None:
    if schedule.holidays is None:
        return None
    cal = _holiday_calendar(schedule.holidays.country, schedule.holidays.subdivision, day.year)
    name = cal.get(day)
    return str(name) if name else None


def _in_ranges(ranges: list[TimeRange], t: time) -> bool:
    return any(r.start <= t and (r.end is None or t < r.end) for r in ranges)


def hours_status(schedule: Schedule, now: datetime) -> tuple[Outcome, str]:
    """Whether the centre is open at ``now`` (aware), and why, for the call's path."""
    if now.tzinfo is None:
        raise ValueError("hours_status needs an aware datetime")
    tz = ZoneInfo(schedule.timezone)
    for closure in schedule.closures:
        start = closure.start if closure.start.tzinfo else closure.start.replace(tzinfo=tz)
        end = closure.end if closure.end.tzinfo else closure.end.replace(tzinfo=tz)
        if start <= now < end:
            return "emergency", closure.reason or "emergency closure"
    local = now.astimezone(tz)
    day = local.date()
    special = schedule.special_days.get(day)
    if special == "closed":
        return "closed", f"special day {day.isoformat()}"
    if special == "holiday":
        return "holiday", f"special day {day.isoformat()}"
    if isinstance(special, list):
        ranges = special
    else:
        name = holiday_name(schedule, day)
        if name:
            return "holiday", name
        ranges = schedule.weekly.get(WEEKDAYS[day.weekday()], [])  # type: ignore[call-overload]
    if _in_ranges(ranges, local.time()):
        return "open", f"{WEEKDAYS[day.weekday()]} {local:%H:%M}"
    return "closed", f"{WEEKDAYS[day.weekday()]} {local:%H:%M}"
