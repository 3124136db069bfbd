"""Opening hours: ivr.menu.hours.hours_status over schedules built with the pydantic model."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest

from ivr.menu.hours import holiday_name, hours_status
from ivr.menu.model import Schedule

JERUSALEM = ZoneInfo("Asia/Jerusalem")

# Sunday to Thursday 08:00-20:00, Friday 08:00-13:00, Saturday closed (like the demo menu).
OFFICE_WEEK: dict[str, list[str]] = {
    "sun": ["08:00-20:00"],
    "mon": ["08:00-20:00"],
    "tue": ["08:00-20:00"],
    "wed": ["08:00-20:00"],
    "thu": ["08:00-20:00"],
    "fri": ["08:00-13:00"],
}


def schedule(**fields: Any) -> Schedule:
    fields.setdefault("weekly", OFFICE_WEEK)
    return Schedule.model_validate(fields)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
          second: int = 0, microsecond: int = 0, fold: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=JERUSALEM,
                    fold=fold)


def yom_kippur_2026() -> date:
    cal = holidays.country_holidays("IL", years=2026)
    days = [d for d, name in cal.items() if name == "Yom Kippur"]
    assert days == [date(2026, 9, 21)]
    return days[0]


# ---------------------------------------------------------------- a January week (IST, UTC+2)


def test_the_week_used_below() -> None:
    assert [date(2026, 1, d).strftime("%a") for d in range(4, 11)] == [
        "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    assert local(2026, 1, 4, 12).utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize(("when", "expected"), [
    # Exactly at the start of a range: open; exactly at its end: closed.
    (local(2026, 1, 4, 8, 0), ("open", "sun 08:00")),
    (local(2026, 1, 4, 7, 59, 59, 999999), ("closed", "sun 07:59")),
    (local(2026, 1, 4, 19, 59, 59, 999999), ("open", "sun 19:59")),
    (local(2026, 1, 4, 20, 0), ("closed", "sun 20:00")),
    (local(2026, 1, 5, 12, 30), ("open", "mon 12:30")),
    (local(2026, 1, 8, 20, 0), ("closed", "thu 20:00")),
    # Midnight.
    (local(2026, 1, 5, 0, 0), ("closed", "mon 00:00")),
    (local(2026, 1, 4, 23, 59, 59), ("closed", "sun 23:59")),
    # Friday is a short day.
    (local(2026, 1, 9, 8, 0), ("open", "fri 08:00")),
    (local(2026, 1, 9, 12, 59), ("open", "fri 12:59")),
    (local(2026, 1, 9, 13, 0), ("closed", "fri 13:00")),
    (local(2026, 1, 9, 17, 0), ("closed", "fri 17:00")),
    # Saturday is not listed: closed all day.
    (local(2026, 1, 10, 0, 0), ("closed", "sat 00:00")),
    (local(2026, 1, 10, 10, 0), ("closed", "sat 10:00")),
    (local(2026, 1, 10, 15, 0), ("closed", "sat 15:00")),
])
def test_weekly_hours(when: datetime, expected: tuple[str, str]) -> None:
    office = schedule()
    assert hours_status(office, when) == expected
    # The same instant in another zone gives the same answer: hours are local wall time.
    assert hours_status(office, when.astimezone(UTC)) == expected
    assert hours_status(office, when.astimezone(ZoneInfo("America/New_York"))) == expected


def test_utc_instant_is_converted_to_the_schedule_zone() -> None:
    office = schedule()
    # 06:30 UTC on a Sunday in winter is 08:30 in Jerusalem.
    assert hours_status(office, datetime(2026, 1, 4, 6, 30, tzinfo=UTC)) == ("open", "sun 08:30")
    # 22:30 UTC on Saturday is already Sunday 00:30 in Jerusalem.
    assert hours_status(office, datetime(2026, 1, 3, 22, 30, tzinfo=UTC)) == (
        "closed", "sun 00:30")


def test_schedule_in_another_zone() -> None:
    new_york = schedule(timezone="America/New_York", weekly={"mon": ["09:00-17:00"]})
    # Monday 09:00 in New York (EST, UTC-5) is 14:00 UTC and 16:00 in Jerusalem.
    at = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)
    assert hours_status(new_york, at) == ("open", "mon 09:00")
    assert hours_status(new_york, at - timedelta(microseconds=1)) == ("closed", "mon 08:59")


@pytest.mark.parametrize(("when", "expected"), [
    (local(2026, 1, 8, 19, 59), ("closed", "thu 19:59")),
    (local(2026, 1, 8, 20, 0), ("open", "thu 20:00")),
    (local(2026, 1, 8, 23, 59, 59, 999999), ("open", "thu 23:59")),  # '24:00': to the end
    (local(2026, 1, 9, 0, 0), ("open", "fri 00:00")),
    (local(2026, 1, 9, 1, 59), ("open", "fri 01:59")),
    (local(2026, 1, 9, 2, 0), ("closed", "fri 02:00")),
    (local(2026, 1, 10, 0, 0), ("open", "sat 00:00")),  # '00:00-24:00': all day
    (local(2026, 1, 10, 12, 0), ("open", "sat 12:00")),
    (local(2026, 1, 10, 23, 59, 59), ("open", "sat 23:59")),
    (local(2026, 1, 5, 11, 59), ("open", "mon 11:59")),  # split day
    (local(2026, 1, 5, 12, 0), ("closed", "mon 12:00")),
    (local(2026, 1, 5, 12, 59), ("closed", "mon 12:59")),
    (local(2026, 1, 5, 13, 0), ("open", "mon 13:00")),
    (local(2026, 1, 5, 17, 0), ("closed", "mon 17:00")),
    (local(2026, 1, 6, 12, 0), ("closed", "tue 12:00")),  # listed with no ranges
])
def test_midnight_24_00_and_split_ranges(when: datetime, expected: tuple[str, str]) -> None:
    night = schedule(weekly={
        "mon": ["08:00-12:00", "13:00-17:00"],
        "tue": [],
        "thu": ["20:00-24:00"],
        "fri": ["00:00-02:00"],
        "sat": ["00:00-24:00"],
    })
    assert hours_status(night, when) == expected


def test_24_00_is_stored_as_open_ended() -> None:
    night = schedule(weekly={"thu": ["20:00-24:00"]})
    (rng,) = night.weekly["thu"]
    assert (rng.start.isoformat(), rng.end) == ("20:00:00", None)


# ---------------------------------------------------------------- daylight saving time


def test_israel_dst_dates_2026() -> None:
    """DST starts Friday 2026-03-27 at 02:00 and ends Sunday 2026-10-25 at 02:00 (local)."""
    assert date(2026, 3, 27).strftime("%A") == "Friday"
    assert date(2026, 10, 25).strftime("%A") == "Sunday"
    # Spring: 23:59 UTC on the 26th is 01:59 IST; one minute later it is 03:00 IDT.
    assert datetime(2026, 3, 26, 23, 59, tzinfo=UTC).astimezone(JERUSALEM) == local(
        2026, 3, 27, 1, 59)
    assert datetime(2026, 3, 26, 23, 59, tzinfo=UTC).astimezone(JERUSALEM).utcoffset() == (
        timedelta(hours=2))
    spring = datetime(2026, 3, 27, 0, 0, tzinfo=UTC).astimezone(JERUSALEM)
    assert (spring.hour, spring.minute, spring.utcoffset()) == (3, 0, timedelta(hours=3))
    assert local(2026, 3, 26, 12).utcoffset() == timedelta(hours=2)
    # Autumn: 22:59 UTC on the 24th is 01:59 IDT; one minute later it is 01:00 IST again.
    before = datetime(2026, 10, 24, 22, 59, tzinfo=UTC).astimezone(JERUSALEM)
    assert (before.day, before.hour, before.minute, before.utcoffset()) == (
        25, 1, 59, timedelta(hours=3))
    after = datetime(2026, 10, 24, 23, 0, tzinfo=UTC).astimezone(JERUSALEM)
    assert (after.day, after.hour, after.minute, after.fold, after.utcoffset()) == (
        25, 1, 0, 1, timedelta(hours=2))
    assert local(2026, 10, 26, 12).utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize(("utc", "expected"), [
    # The Friday before the change (IST, UTC+2).
    (datetime(2026, 3, 20, 6, 0, tzinfo=UTC), ("open", "fri 08:00")),
    (datetime(2026, 3, 20, 10, 30, tzinfo=UTC), ("open", "fri 12:30")),
    (datetime(2026, 3, 20, 11, 0, tzinfo=UTC), ("closed", "fri 13:00")),
    # DST starts that night: the same UTC times are an hour later on the wall clock.
    (datetime(2026, 3, 27, 5, 0, tzinfo=UTC), ("open", "fri 08:00")),
    (datetime(2026, 3, 27, 4, 59, tzinfo=UTC), ("closed", "fri 07:59")),
    (datetime(2026, 3, 27, 9, 59, tzinfo=UTC), ("open", "fri 12:59")),
    (datetime(2026, 3, 27, 10, 0, tzinfo=UTC), ("closed", "fri 13:00")),
    (datetime(2026, 3, 27, 10, 30, tzinfo=UTC), ("closed", "fri 13:30")),
    # The first Sunday of summer time opens at 08:00 IDT = 05:00 UTC.
    (datetime(2026, 3, 29, 5, 0, tzinfo=UTC), ("open", "sun 08:00")),
    (datetime(2026, 3, 29, 16, 59, tzinfo=UTC), ("open", "sun 19:59")),
    (datetime(2026, 3, 29, 17, 0, tzinfo=UTC), ("closed", "sun 20:00")),
    # The Sunday before DST ends (IDT, UTC+3) ...
    (datetime(2026, 10, 18, 5, 0, tzinfo=UTC), ("open", "sun 08:00")),
    # ... and the Sunday it ends (IST, UTC+2): 05:00 UTC is only 07:00 local.
    (datetime(2026, 10, 25, 5, 0, tzinfo=UTC), ("closed", "sun 07:00")),
    (datetime(2026, 10, 25, 6, 0, tzinfo=UTC), ("open", "sun 08:00")),
    (datetime(2026, 10, 25, 17, 59, tzinfo=UTC), ("open", "sun 19:59")),
    (datetime(2026, 10, 25, 18, 0, tzinfo=UTC), ("closed", "sun 20:00")),
])
def test_dst_moves_utc_instants_not_the_hours(utc: datetime, expected: tuple[str, str]) -> None:
    assert hours_status(schedule(), utc) == expected


@pytest.mark.parametrize(("utc", "expected"), [
    (datetime(2026, 10, 24, 21, 59, tzinfo=UTC), ("closed", "sun 00:59")),
    (datetime(2026, 10, 24, 22, 0, tzinfo=UTC), ("open", "sun 01:00")),  # first 01:00 (IDT)
    (datetime(2026, 10, 24, 22, 15, tzinfo=UTC), ("open", "sun 01:15")),
    (datetime(2026, 10, 24, 22, 30, tzinfo=UTC), ("closed", "sun 01:30")),
    (datetime(2026, 10, 24, 22, 45, tzinfo=UTC), ("closed", "sun 01:45")),
    (datetime(2026, 10, 24, 23, 0, tzinfo=UTC), ("open", "sun 01:00")),  # second 01:00 (IST)
    (datetime(2026, 10, 24, 23, 15, tzinfo=UTC), ("open", "sun 01:15")),
    (datetime(2026, 10, 24, 23, 30, tzinfo=UTC), ("closed", "sun 01:30")),
])
def test_repeated_hour_when_dst_ends(utc: datetime, expected: tuple[str, str]) -> None:
    # A range inside the hour that happens twice is open both times.
    assert hours_status(schedule(weekly={"sun": ["01:00-01:30"]}), utc) == expected


@pytest.mark.parametrize("utc", [
    datetime(2026, 3, 26, 23, 59, tzinfo=UTC),  # 01:59 IST
    datetime(2026, 3, 27, 0, 0, tzinfo=UTC),  # 03:00 IDT
    datetime(2026, 3, 27, 0, 30, tzinfo=UTC),  # 03:30 IDT
])
def test_range_in_the_skipped_hour_never_opens(utc: datetime) -> None:
    skipped = schedule(weekly={"fri": ["02:00-03:00"]})
    assert hours_status(skipped, utc)[0] == "closed"


# ---------------------------------------------------------------- public holidays


def test_yom_kippur_2026_is_a_holiday() -> None:
    day = yom_kippur_2026()
    assert day.strftime("%A") == "Monday"  # a normal working day otherwise
    office = schedule(holidays={"country": "IL"})
    assert holiday_name(office, day) == "Yom Kippur"
    assert hours_status(office, local(2026, 9, 21, 10, 0)) == ("holiday", "Yom Kippur")
    # The whole local day, even outside the usual hours.
    assert hours_status(office, local(2026, 9, 21, 0, 0)) == ("holiday", "Yom Kippur")
    assert hours_status(office, local(2026, 9, 21, 23, 59)) == ("holiday", "Yom Kippur")
    # 21:00 UTC on the 20th is already the 21st in Jerusalem (IDT, UTC+3).
    assert hours_status(office, datetime(2026, 9, 20, 21, 0, tzinfo=UTC)) == (
        "holiday", "Yom Kippur")
    # The days around it are ordinary.
    assert hours_status(office, local(2026, 9, 20, 10, 0)) == ("open", "sun 10:00")
    assert hours_status(office, local(2026, 9, 22, 10, 0)) == ("open", "tue 10:00")


def test_holiday_ignored_without_a_calendar() -> None:
    day = yom_kippur_2026()
    office = schedule()
    assert holiday_name(office, day) is None
    assert hours_status(office, local(2026, 9, 21, 10, 0)) == ("open", "mon 10:00")


def test_other_israeli_holidays() -> None:
    cal = holidays.country_holidays("IL", years=2026)
    assert cal.get(date(2026, 4, 22)) == "Independence Day"
    assert cal.get(date(2026, 9, 12)) == "Rosh Hashanah"  # a Saturday
    office = schedule(holidays={"country": "IL"})
    assert hours_status(office, local(2026, 4, 22, 9, 0)) == ("holiday", "Independence Day")
    # On a day that is closed anyway the holiday is still the reason given.
    assert hours_status(office, local(2026, 9, 12, 9, 0)) == ("holiday", "Rosh Hashanah")
    assert holiday_name(office, date(2026, 4, 21)) is None


def test_holiday_calendar_of_another_year() -> None:
    cal = holidays.country_holidays("IL", years=2027)
    (day,) = [d for d, name in cal.items() if name == "Yom Kippur"]
    office = schedule(holidays={"country": "IL"})
    at = datetime(day.year, day.month, day.day, 10, tzinfo=JERUSALEM)
    assert hours_status(office, at) == ("holiday", "Yom Kippur")


# ---------------------------------------------------------------- special days


@pytest.mark.parametrize(("special", "when", "expected"), [
    # Closed on what would be a working Monday.
    ({"2026-01-05": "closed"}, local(2026, 1, 5, 10, 0), ("closed", "special day 2026-01-05")),
    # A declared holiday that the calendar does not know.
    ({"2026-01-06": "holiday"}, local(2026, 1, 6, 10, 0), ("holiday", "special day 2026-01-06")),
    # Custom hours: open on a Saturday ...
    ({"2026-01-10": ["09:00-12:00"]}, local(2026, 1, 10, 9, 0), ("open", "sat 09:00")),
    ({"2026-01-10": ["09:00-12:00"]}, local(2026, 1, 10, 12, 0), ("closed", "sat 12:00")),
    # ... and shorter hours on a weekday replace (not add to) the weekly ones.
    ({"2026-01-07": ["08:00-10:00"]}, local(2026, 1, 7, 9, 59), ("open", "wed 09:59")),
    ({"2026-01-07": ["08:00-10:00"]}, local(2026, 1, 7, 10, 0), ("closed", "wed 10:00")),
    ({"2026-01-07": ["08:00-10:00"]}, local(2026, 1, 7, 15, 0), ("closed", "wed 15:00")),
    # Other days are not affected.
    ({"2026-01-05": "closed"}, local(2026, 1, 4, 10, 0), ("open", "sun 10:00")),
    ({"2026-01-05": "closed"}, local(2026, 1, 6, 10, 0), ("open", "tue 10:00")),
    # The special day is the local date: 23:30 UTC on the 4th is 01:30 on the 5th.
    ({"2026-01-05": ["00:00-02:00"]}, datetime(2026, 1, 4, 23, 30, tzinfo=UTC),
     ("open", "mon 01:30")),
])
def test_special_days(special: dict[str, Any], when: datetime, expected: tuple[str, str],
                      ) -> None:
    assert hours_status(schedule(special_days=special, holidays={"country": "IL"}),
                        when) == expected


def test_special_days_beat_the_holiday_calendar() -> None:
    day = yom_kippur_2026()
    key = day.isoformat()
    custom = schedule(holidays={"country": "IL"}, special_days={key: ["10:00-12:00"]})
    assert hours_status(custom, local(2026, 9, 21, 11, 0)) == ("open", "mon 11:00")
    assert hours_status(custom, local(2026, 9, 21, 13, 0)) == ("closed", "mon 13:00")
    closed = schedule(holidays={"country": "IL"}, special_days={key: "closed"})
    assert hours_status(closed, local(2026, 9, 21, 11, 0)) == ("closed", "special day 2026-09-21")
    holiday = schedule(holidays={"country": "IL"}, special_days={key: "holiday"})
    assert hours_status(holiday, local(2026, 9, 21, 11, 0)) == (
        "holiday", "special day 2026-09-21")


def test_special_days_accept_date_keys() -> None:
    office = schedule(special_days={date(2026, 1, 5): "closed"})
    assert hours_status(office, local(2026, 1, 5, 10, 0)) == ("closed", "special day 2026-01-05")


# ---------------------------------------------------------------- emergency closures


@pytest.mark.parametrize(("when", "expected"), [
    (local(2026, 1, 5, 9, 59, 59), ("open", "mon 09:59")),
    (local(2026, 1, 5, 10, 0), ("emergency", "power cut")),
    (local(2026, 1, 5, 11, 59, 59, 999999), ("emergency", "power cut")),
    (local(2026, 1, 5, 12, 0), ("open", "mon 12:00")),
    # The same instants given in UTC.
    (datetime(2026, 1, 5, 8, 0, tzinfo=UTC), ("emergency", "power cut")),
    (datetime(2026, 1, 5, 7, 59, tzinfo=UTC), ("open", "mon 09:59")),
    (datetime(2026, 1, 5, 10, 0, tzinfo=UTC), ("open", "mon 12:00")),
])
def test_closure_in_naive_local_time(when: datetime, expected: tuple[str, str]) -> None:
    office = schedule(closures=[{"start": "2026-01-05T10:00:00", "end": "2026-01-05T12:00:00",
                                 "reason": "power cut"}])
    assert hours_status(office, when) == expected


@pytest.mark.parametrize(("when", "expected"), [
    (local(2026, 1, 5, 9, 59), ("open", "mon 09:59")),
    (local(2026, 1, 5, 10, 0), ("emergency", "emergency closure")),
    (local(2026, 1, 5, 10, 59), ("emergency", "emergency closure")),
    (local(2026, 1, 5, 11, 0), ("open", "mon 11:00")),
])
def test_closure_with_offsets(when: datetime, expected: tuple[str, str]) -> None:
    # 08:00-09:00 UTC is 10:00-11:00 in Jerusalem; no reason given.
    office = schedule(closures=[{"start": "2026-01-05T08:00:00Z",
                                 "end": "2026-01-05T11:00:00+02:00"}])
    assert hours_status(office, when) == expected


def test_closure_beats_everything() -> None:
    day = yom_kippur_2026()
    office = schedule(
        holidays={"country": "IL"},
        special_days={day.isoformat(): ["00:00-24:00"], "2026-01-10": "closed"},
        closures=[
            {"start": "2026-09-21T00:00:00", "end": "2026-09-22T00:00:00", "reason": "flood"},
            {"start": "2026-01-10T00:00:00", "end": "2026-01-11T00:00:00", "reason": "storm"},
            {"start": "2026-01-04T21:00:00", "end": "2026-01-04T23:00:00", "reason": "drill"},
        ],
    )
    assert hours_status(office, local(2026, 9, 21, 10, 0)) == ("emergency", "flood")
    assert hours_status(office, local(2026, 1, 10, 10, 0)) == ("emergency", "storm")
    # Outside opening hours too: the caller hears why.
    assert hours_status(office, local(2026, 1, 4, 22, 0)) == ("emergency", "drill")
    assert hours_status(office, local(2026, 1, 4, 23, 0)) == ("closed", "sun 23:00")


def test_first_matching_closure_gives_the_reason() -> None:
    office = schedule(closures=[
        {"start": "2026-01-05T09:00:00", "end": "2026-01-05T11:00:00", "reason": "first"},
        {"start": "2026-01-05T10:00:00", "end": "2026-01-05T12:00:00", "reason": "second"},
    ])
    assert hours_status(office, local(2026, 1, 5, 10, 30)) == ("emergency", "first")
    assert hours_status(office, local(2026, 1, 5, 11, 30)) == ("emergency", "second")


def test_naive_closure_across_the_dst_change() -> None:
    # Local wall time: 00:00-06:00 on the Friday DST starts (02:00 -> 03:00).
    office = schedule(closures=[{"start": "2026-03-27T00:00:00", "end": "2026-03-27T06:00:00"}])
    assert hours_status(office, datetime(2026, 3, 26, 21, 59, tzinfo=UTC)) == (
        "closed", "thu 23:59")
    assert hours_status(office, datetime(2026, 3, 26, 22, 0, tzinfo=UTC))[0] == "emergency"
    assert hours_status(office, datetime(2026, 3, 27, 2, 59, tzinfo=UTC))[0] == "emergency"
    # 06:00 IDT is 03:00 UTC.
    assert hours_status(office, datetime(2026, 3, 27, 3, 0, tzinfo=UTC)) == (
        "closed", "fri 06:00")


# ---------------------------------------------------------------- misuse


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^hours_status needs an aware datetime$"):
        hours_status(schedule(), datetime(2026, 1, 4, 10, 0))  # noqa: DTZ001


def test_default_timezone_is_jerusalem() -> None:
    assert schedule().timezone == "Asia/Jerusalem"
