"""SLA maths (callbacks.sla, callbacks.hours): plain parametrised cases, explicit instants.

The demo centre (callbacks.yaml): Sun–Thu 08–20, Fri 08–13, Saturday and Israeli public
holidays closed, Asia/Jerusalem; quiet hours 21:00–08:00 in the customer's zone; premium
15m, business 1h, standard 2h; back-off 2m, 10m, 30m; 3 attempts; warning at 80 %.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callbacks import sla
from callbacks.hours import (
    NeverOpen,
    add_business_time,
    business_time_between,
    is_open,
    next_open,
)
from callbacks.policy import Policy, load_policies
from callbacks.sla import (
    NoCallableTime,
    SlotVerdict,
    callable_at,
    deadline,
    expected_wait,
    next_attempt_at,
    next_callable,
    scheduled_slot_ok,
    warning_at,
)

ROOT = Path(__file__).resolve().parents[1]
JERUSALEM = ZoneInfo("Asia/Jerusalem")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
HONOLULU = ZoneInfo("Pacific/Honolulu")

OFFICE_WEEK: dict[str, list[str]] = {
    "sun": ["08:00-20:00"], "mon": ["08:00-20:00"], "tue": ["08:00-20:00"],
    "wed": ["08:00-20:00"], "thu": ["08:00-20:00"], "fri": ["08:00-13:00"],
}
ALWAYS: dict[str, list[str]] = {d: ["00:00-24:00"] for d in
                                ("sun", "mon", "tue", "wed", "thu", "fri", "sat")}


def policy(**fields: Any) -> Policy:
    hours = fields.pop("business_hours", {})
    hours.setdefault("weekly", OFFICE_WEEK)
    hours.setdefault("holidays", {"country": "IL"})
    fields.setdefault("quiet_hours", "21:00-08:00")
    fields.setdefault("deadline", {"premium": "15m", "business": "1h", "standard": "2h",
                                   "default": "2h"})
    return Policy.model_validate({"business_hours": hours, **fields})


DEMO = policy()


def j(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026,
      fold: int = 0) -> datetime:
    """A wall-clock time in Jerusalem."""
    return datetime(year, month, day, hour, minute, tzinfo=JERUSALEM, fold=fold)


def u(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def test_the_calendar_used_below() -> None:
    assert [date(2026, 1, d).strftime("%a") for d in range(4, 12)] == [
        "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    yom_kippur = [d for d, n in holidays.country_holidays("IL", years=2026).items()
                  if n == "Yom Kippur"]
    assert yom_kippur == [date(2026, 9, 21)] and date(2026, 9, 21).strftime("%a") == "Mon"
    # Israel: clocks forward on Friday 27 March 02:00, back on Sunday 25 October 02:00.
    assert j(3, 27, 1).utcoffset() == timedelta(hours=2)
    assert j(3, 27, 4).utcoffset() == timedelta(hours=3)
    assert j(10, 25, 1, fold=0).utcoffset() == timedelta(hours=3)
    assert j(10, 25, 1, fold=1).utcoffset() == timedelta(hours=2)


def test_the_demo_file_is_the_policy_these_cases_use() -> None:
    demo = load_policies(ROOT / "callbacks.yaml").default
    assert demo.model_copy(update={"offer": DEMO.offer}) == DEMO
    assert demo.offer == OFFERING.offer


OFFERING = policy(offer={"enabled": True, "threshold": "2m", "closing_within": "30m",
                         "scheduled": True, "hours": ["08:00-19:45"], "repeat_every": "1m"})


# ------------------------------------------------------------------------------ the offer


@pytest.mark.parametrize(("now", "expected_wait", "reason"), [
    (j(11, 23, 10), timedelta(minutes=5), "wait"),        # over the 2-minute threshold
    (j(11, 23, 10), timedelta(minutes=2), None),          # not over it
    (j(11, 23, 19, 31), timedelta(minutes=1), "closing"),  # closes at 20:00, within 30 min
    (j(11, 23, 19, 29), timedelta(minutes=1), None),       # 31 minutes before closing
    (j(11, 23, 19, 50), timedelta(minutes=9), None),       # after the offer's hours
    (j(11, 27, 12, 40), timedelta(minutes=1), "closing"),  # Friday: closes at 13:00
    (j(11, 28, 10), timedelta(minutes=9), "wait"),         # closed: called when open
])
def test_when_the_callback_is_offered(now: datetime, expected_wait: timedelta,
                                      reason: str | None) -> None:
    assert sla.offer_reason(now, expected_wait, OFFERING) == reason


def test_no_offer_when_the_queue_does_not_offer() -> None:
    assert sla.offer_reason(j(11, 23, 10), timedelta(hours=3), DEMO) is None


@pytest.mark.parametrize(("now", "choices"), [
    # Monday 10:00: later today (12:00), tomorrow 09:00 and 14:00.
    (j(11, 23, 10), [("later_today", j(11, 23, 12)), ("tomorrow_morning", j(11, 24, 9)),
                     ("tomorrow_afternoon", j(11, 24, 14))]),
    # Monday 19:00: two hours later the centre is closed: no "later today".
    (j(11, 23, 19), [("tomorrow_morning", j(11, 24, 9)),
                     ("tomorrow_afternoon", j(11, 24, 14))]),
    # Thursday 10:00: tomorrow is Friday, open 08:00-13:00 — 14:00 moves to Sunday 08:00.
    (j(11, 26, 10), [("later_today", j(11, 26, 12)), ("tomorrow_morning", j(11, 27, 9)),
                     ("tomorrow_afternoon", j(11, 29, 8))]),
    # Friday 12:00: Saturday is closed, so both tomorrow times are Sunday 08:00 (one kept).
    (j(11, 27, 12), [("tomorrow_morning", j(11, 29, 8))]),
])
def test_the_times_a_caller_may_choose(now: datetime,
                                       choices: list[tuple[str, datetime]]) -> None:
    assert sla.time_choices(now, OFFERING) == choices


def test_no_times_when_scheduling_is_off() -> None:
    off = policy(offer={"enabled": True, "scheduled": False})
    assert sla.time_choices(j(11, 23, 10), off) == []


@pytest.mark.parametrize(("slot", "deadline"), [
    (j(11, 23, 9), j(11, 23, 9, 30)),
    (j(11, 23, 19, 50), j(11, 24, 8, 20)),  # 10 minutes today, 20 tomorrow
])
def test_a_scheduled_callback_is_due_within_its_window(slot: datetime,
                                                       deadline: datetime) -> None:
    assert sla.scheduled_deadline(slot, DEMO) == deadline


# ------------------------------------------------------------------------------ deadlines


@pytest.mark.parametrize(("created", "tier", "expected"), [
    # Open all along.
    (j(1, 4, 10), "premium", j(1, 4, 10, 15)),
    (j(1, 4, 10), "standard", j(1, 4, 12)),
    (j(1, 4, 10), "business", j(1, 4, 11)),
    # Tiers are matched without case or spaces; no tier, or one not listed: `default`.
    (j(1, 4, 10), " Premium ", j(1, 4, 10, 15)),
    (j(1, 4, 10), None, j(1, 4, 12)),
    (j(1, 4, 10), "gold", j(1, 4, 12)),
    # Before opening the clock has not started.
    (j(1, 4, 7), "premium", j(1, 4, 8, 15)),
    # Used up exactly at closing: the deadline is the closing time, not the next opening.
    (j(1, 4, 19, 45), "premium", j(1, 4, 20)),
    # Across a closed night.
    (j(1, 4, 19, 50), "premium", j(1, 5, 8, 5)),
    (j(1, 8, 19), "standard", j(1, 9, 9)),
    (j(1, 4, 22), "standard", j(1, 5, 10)),
    # Friday closes at 13:00, Saturday is closed: a weekend spanned.
    (j(1, 9, 12, 30), "standard", j(1, 11, 9, 30)),
    (j(1, 9, 13), "premium", j(1, 11, 8, 15)),
    (j(1, 10, 12), "business", j(1, 11, 9)),
    (j(1, 8, 19, 30), "standard", j(1, 9, 9, 30)),
    # Yom Kippur (Monday 21 September 2026) is closed all day.
    (j(9, 20, 19), "standard", j(9, 22, 9)),
    (j(9, 21, 10), "premium", j(9, 22, 8, 15)),
    # DST forward (Fri 27 March): Thu 19:00 IST (+2) -> Fri 09:00 IDT (+3) = 06:00 UTC.
    (j(3, 26, 19), "standard", u(3, 27, 6)),
    # DST back (Sun 25 October): Fri 12:30 IDT -> Sun 09:30 IST (+2) = 07:30 UTC.
    (j(10, 23, 12, 30), "standard", u(10, 25, 7, 30)),
    # Instants in other zones are the same instants.
    (datetime(2026, 1, 4, 3, tzinfo=NEW_YORK), "premium", j(1, 4, 10, 15)),
], ids=[
    "open", "standard", "business", "tier-case", "no-tier", "unknown-tier", "before-open",
    "ends-at-close", "night", "night-2h", "created-at-night", "weekend", "fri-after-close",
    "created-on-saturday", "thu-evening", "yom-kippur-eve", "on-yom-kippur", "dst-forward",
    "dst-back", "other-zone-input",
])
def test_deadline_counts_business_time_only(created: datetime, tier: str | None,
                                            expected: datetime) -> None:
    got = deadline(created, DEMO, tier)
    assert got == expected
    assert got.tzinfo is UTC


@pytest.mark.parametrize(("created", "amount", "expected"), [
    # A centre open round the clock: the spring-forward day has 23 hours, the autumn one 25.
    (j(3, 26, 12), "24h", j(3, 27, 13)),
    (j(10, 24, 12), "24h", j(10, 25, 11)),
    # The night of the change itself: 02:00 IST is 03:00 IDT; 01:00 comes twice.
    (j(3, 27, 1, 30), "1h", j(3, 27, 3, 30)),
    # (An ambiguous wall time never equals an instant of another zone (PEP 495): UTC here.)
    (j(10, 25, 0, 30), "1h", u(10, 24, 22, 30)),  # the first 01:30 (IDT)
    (j(10, 25, 0, 30), "2h", u(10, 24, 23, 30)),  # the second 01:30 (IST)
], ids=["forward-23h-day", "back-25h-day", "forward-night", "back-night-first-1:30",
        "back-night-second-1:30"])
def test_deadline_across_dst_in_elapsed_time(created: datetime, amount: str,
                                             expected: datetime) -> None:
    always = policy(business_hours={"weekly": ALWAYS, "holidays": None},
                    deadline={"default": amount})
    assert deadline(created, always, None) == expected


@pytest.mark.parametrize(("created", "tier", "expected"), [
    (j(1, 4, 10), "premium", j(1, 4, 10, 12)),  # 80 % of 15 minutes
    (j(1, 4, 10), "standard", j(1, 4, 11, 36)),  # 80 % of 2 hours
    (j(1, 4, 19), "standard", j(1, 5, 8, 36)),  # 60 minutes on Sunday, 36 on Monday
    (j(1, 9, 12, 30), "standard", j(1, 11, 9, 6)),  # across the weekend
])
def test_warning_at_the_threshold_of_business_time(created: datetime, tier: str,
                                                   expected: datetime) -> None:
    assert warning_at(created, DEMO, tier) == expected
    assert warning_at(created, DEMO, tier) < deadline(created, DEMO, tier)


def test_warning_threshold_follows_the_policy() -> None:
    assert warning_at(j(1, 4, 10), policy(warn_at=0.5), "standard") == j(1, 4, 11)


# ------------------------------------------------------------------------- business time


@pytest.mark.parametrize(("t", "expected"), [
    (j(1, 4, 8), True),
    (j(1, 4, 7, 59), False),
    (j(1, 4, 19, 59), True),
    (j(1, 4, 20), False),
    (j(1, 9, 12, 59), True),
    (j(1, 9, 13), False),
    (j(1, 10, 10), False),  # Saturday
    (j(9, 21, 10), False),  # Yom Kippur
    (j(9, 20, 10), True),  # its eve (Sunday) is a working day
])
def test_is_open_edges(t: datetime, expected: bool) -> None:
    assert is_open(DEMO.business_hours, t) is expected


@pytest.mark.parametrize(("a", "b", "expected"), [
    (j(1, 4, 10), j(1, 4, 12), timedelta(hours=2)),
    (j(1, 9, 12), j(1, 11, 9), timedelta(hours=2)),  # Fri 1 h + Sun 1 h
    (j(1, 4, 0), j(1, 11, 0), timedelta(hours=5 * 12 + 5)),  # a whole week
    (j(9, 20, 0), j(9, 23, 0), timedelta(hours=24)),  # Sun, Yom Kippur, Tue
    (j(1, 4, 12), j(1, 4, 10), timedelta(0)),
])
def test_business_time_between(a: datetime, b: datetime, expected: timedelta) -> None:
    assert business_time_between(DEMO.business_hours, a, b) == expected


@settings(max_examples=150, deadline=None)
@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31),  # noqa: DTZ001
                    timezones=st.just(UTC)),
       st.integers(min_value=0, max_value=60 * 60 * 40))
def test_business_time_added_is_business_time_between(created: datetime, seconds: int) -> None:
    hours = DEMO.business_hours
    end = add_business_time(hours, created, timedelta(seconds=seconds))
    assert business_time_between(hours, created, end) == timedelta(seconds=seconds)
    assert end >= created


# Ranges whose ends fall into the hour DST skips (27 March, 02:00-03:00) or repeats
# (25 October, 01:00-02:00): where two calendars could disagree.
DST_EDGES: dict[str, list[str]] = {d: ["00:00-01:30", "02:30-24:00"] for d in ALWAYS}
INTO_THE_GAP: dict[str, list[str]] = {d: ["01:00-02:30", "09:00-12:00"] for d in ALWAYS}


@pytest.mark.parametrize("week", [OFFICE_WEEK, DST_EDGES, INTO_THE_GAP],
                         ids=["office", "dst-edges", "into-the-gap"])
def test_business_time_runs_exactly_while_the_menu_schedule_is_open(
        week: dict[str, list[str]]) -> None:
    """One calendar (ivr.core.calendar) for menus and callbacks: the open intervals that
    business time runs in hold exactly the instants a menu schedule (same YAML) is open
    at, minute by minute around the edges (special days, a holiday, both DST changes)."""
    from ivr.core.calendar import open_intervals
    from ivr.menu.hours import hours_status
    from ivr.menu.model import Schedule

    special = {date(2026, 1, 6): ["10:00-11:00"], date(2026, 1, 7): "closed"}
    schedule = Schedule.model_validate({"weekly": week, "holidays": {"country": "IL"},
                                        "special_days": special})
    hours = policy(business_hours={"weekly": week, "special_days": special}).business_hours

    def menu_open(t: datetime) -> bool:
        return hours_status(schedule, t)[0] == "open"

    for start in [j(1, 4), j(1, 9), j(3, 26), j(9, 20), j(10, 23)]:
        for minute in range(0, 4 * 24 * 60, 5):
            t = start.astimezone(UTC) + timedelta(minutes=minute)  # real minutes, not wall ones
            intervals = open_intervals(hours, t.astimezone(JERUSALEM).date())
            assert any(s <= t < e for s, e in intervals) == menu_open(t) == is_open(hours, t), t
        # Each interval's edges are exact: open from its first to its last microsecond,
        # closed just outside unless another interval goes on from there.
        days = [(start + timedelta(days=day)).date() for day in range(-1, 5)]
        edges = [i for day in days for i in open_intervals(hours, day)]
        tick = timedelta(microseconds=1)
        for s, e in (i for day in days[1:-1] for i in open_intervals(hours, day)):
            assert menu_open(s) and menu_open(e - tick), (s, e)
            assert not menu_open(s - tick) or any(e2 == s for _, e2 in edges), (s, e)
            assert not menu_open(e) or any(s2 == e for s2, _ in edges), (s, e)


def test_ranges_that_end_in_a_dst_change() -> None:
    """00:00-01:30 on 25 October: 01:00-01:30 comes twice (IDT, then IST), open both
    times; 02:30-24:00 on 27 March opens at 03:00, when the clocks jump over 02:30."""
    from ivr.core.calendar import open_intervals

    hours = policy(business_hours={"weekly": DST_EDGES, "holidays": None}).business_hours
    assert open_intervals(hours, date(2026, 10, 25)) == [
        (u(10, 24, 21), u(10, 24, 22, 30)), (u(10, 24, 23), u(10, 24, 23, 30)),
        (u(10, 25, 0, 30), u(10, 25, 22))]
    assert open_intervals(hours, date(2026, 3, 27)) == [
        (u(3, 26, 22), u(3, 26, 23, 30)), (u(3, 27, 0), u(3, 27, 21))]
    assert business_time_between(hours, j(10, 25), j(10, 26)) == timedelta(hours=23, minutes=30)


def test_naive_datetimes_and_a_centre_never_open_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        deadline(datetime(2026, 1, 4, 10), DEMO, "premium")  # noqa: DTZ001
    closed_for_good = policy(business_hours={
        "weekly": {"sun": ["08:00-09:00"]}, "holidays": None,
        "special_days": {date(2026, 1, 4) + timedelta(weeks=w): "closed" for w in range(60)}})
    with pytest.raises(NeverOpen, match="not open on any day within 400 days"):
        next_open(closed_for_good.business_hours, j(1, 1))


# ------------------------------------------------------------------ when we may call


@pytest.mark.parametrize(("t", "zone", "expected"), [
    # A customer in the centre's own zone: quiet hours lie outside the opening hours.
    (j(1, 4, 10), None, j(1, 4, 10)),
    (j(1, 4, 20, 30), None, j(1, 5, 8)),
    (j(1, 9, 13), None, j(1, 11, 8)),
    (j(9, 20, 20), None, j(9, 22, 8)),  # Yom Kippur between
    # New York, 7 hours behind in January: 08:00 in New York is 15:00 in Jerusalem.
    (j(1, 4, 9), NEW_YORK, j(1, 4, 15)),
    (j(1, 4, 15, 30), NEW_YORK, j(1, 4, 15, 30)),
    (j(1, 9, 9), NEW_YORK, j(1, 11, 15)),  # Friday closes before New York wakes
    # Tokyo, 7 hours ahead: 21:00 in Tokyo is 14:00 in Jerusalem.
    (j(1, 4, 13, 59), TOKYO, j(1, 4, 13, 59)),
    (j(1, 4, 14), TOKYO, j(1, 5, 8)),
    # Honolulu, 12 hours behind: only 08:00-09:00 in Jerusalem (20:00-21:00 there).
    (j(1, 4, 9), HONOLULU, j(1, 5, 8)),
    (j(1, 4, 7), HONOLULU, j(1, 4, 8)),
    # The two zones change clocks on different dates (US: 8 March, 1 November), so the
    # gap is 6 hours in between: 08:00 in New York is 14:00 in Jerusalem.
    (j(3, 15, 9), NEW_YORK, j(3, 15, 14)),
    (j(3, 29, 9), NEW_YORK, j(3, 29, 15)),
    (j(10, 26, 9), NEW_YORK, j(10, 26, 14)),
    (j(11, 2, 9), NEW_YORK, j(11, 2, 15)),
], ids=[
    "open", "evening", "friday-afternoon", "over-yom-kippur", "ny-morning", "ny-awake",
    "ny-friday", "tokyo-before-night", "tokyo-night", "honolulu-late", "honolulu-window",
    "ny-us-dst-only", "ny-both-dst", "ny-israel-back-only", "ny-both-back",
])
def test_next_callable(t: datetime, zone: ZoneInfo | None, expected: datetime) -> None:
    got = next_callable(t, DEMO, zone)
    assert got == expected
    assert callable_at(got, DEMO, zone)


@pytest.mark.parametrize(("quiet", "t", "expected"), [
    # 02:30 on 27 March does not exist: the quiet span ends at 03:30 IDT (00:30 UTC).
    ("21:00-02:30", j(3, 27, 1), u(3, 27, 0, 30)),
    # 01:30 on 25 October comes twice: during the second 01:15 the span ends at the second.
    ("21:00-01:30", j(10, 25, 1, 15, fold=0), u(10, 24, 22, 30)),
    ("21:00-01:30", j(10, 25, 1, 15, fold=1), u(10, 24, 23, 30)),
], ids=["gap", "fold-first", "fold-second"])
def test_quiet_hours_ending_in_a_dst_change(quiet: str, t: datetime, expected: datetime,
                                            ) -> None:
    always = policy(business_hours={"weekly": ALWAYS}, quiet_hours=quiet)
    assert next_callable(t, always) == expected


def test_without_quiet_hours_opening_hours_alone_decide() -> None:
    assert next_callable(j(1, 4, 9), policy(quiet_hours=None), NEW_YORK) == j(1, 4, 9)


def test_quiet_hours_that_cover_every_opening_hour() -> None:
    short = policy(business_hours={"weekly": {d: ["10:00-11:00"] for d in OFFICE_WEEK}})
    with pytest.raises(NoCallableTime, match="outside quiet hours in Pacific/Honolulu"):
        next_callable(j(1, 4, 9), short, HONOLULU)


# ------------------------------------------------------------------------------ retries


@pytest.mark.parametrize(("last", "attempt_no", "zone", "expected"), [
    (j(1, 4, 10), 1, None, j(1, 4, 10, 2)),
    (j(1, 4, 10), 2, None, j(1, 4, 10, 10)),
    (j(1, 4, 10), 3, None, None),  # max_attempts: 3
    (j(1, 4, 19, 55), 2, None, j(1, 5, 8)),  # back-off ends after closing
    (j(1, 9, 12, 55), 1, None, j(1, 9, 12, 57)),
    (j(1, 9, 12, 55), 2, None, j(1, 11, 8)),  # Friday 13:05: Sunday morning
    (j(9, 20, 19, 55), 2, None, j(9, 22, 8)),  # Yom Kippur
    (j(1, 4, 12), 1, NEW_YORK, j(1, 4, 15)),  # 05:02 in New York: wait for 08:00 there
    (j(1, 4, 13, 50), 2, TOKYO, j(1, 5, 8)),  # 21:00 in Tokyo
    (j(3, 26, 19, 55), 2, None, u(3, 27, 5)),  # 08:00 IDT, the morning after DST
], ids=["first", "second", "last-attempt", "after-closing", "friday", "friday-closing",
        "yom-kippur", "new-york-night", "tokyo-night", "dst-forward"])
def test_next_attempt_at(last: datetime, attempt_no: int, zone: ZoneInfo | None,
                         expected: datetime | None) -> None:
    assert next_attempt_at(last, attempt_no, DEMO, zone) == expected


@pytest.mark.parametrize(("attempt_no", "wait"), [
    (1, timedelta(minutes=2)), (2, timedelta(minutes=10)), (3, timedelta(minutes=30)),
    (4, timedelta(minutes=30)),  # the last back-off repeats
    (5, None),
])
def test_backoff_per_attempt(attempt_no: int, wait: timedelta | None) -> None:
    patient = policy(max_attempts=5)
    got = next_attempt_at(j(1, 4, 10), attempt_no, patient)
    assert got == (None if wait is None else j(1, 4, 10) + wait)


def test_attempts_are_counted_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        next_attempt_at(j(1, 4, 10), 0, DEMO)


# ---------------------------------------------------------------------- scheduled slots

NOW = j(1, 4, 10)


@pytest.mark.parametrize(("requested", "zone", "verdict"), [
    (NOW, None, "ok"),
    (j(1, 4, 9, 59), None, "past"),
    (j(1, 5, 10), None, "ok"),
    (j(1, 11, 10), None, "ok"),  # exactly the 7-day horizon
    (j(1, 11, 10, 1), None, "beyond_horizon"),
    (j(2, 1, 10), None, "beyond_horizon"),
    (j(1, 10, 10), None, "closed"),  # Saturday
    (j(1, 4, 20), None, "closed"),  # closing time
    (j(1, 4, 19, 59), None, "ok"),
    (j(1, 9, 13), None, "closed"),
    (j(1, 5, 10), NEW_YORK, "quiet_hours"),  # 03:00 in New York
    (j(1, 5, 15), NEW_YORK, "ok"),
    (j(1, 5, 14), TOKYO, "quiet_hours"),
], ids=["now", "past", "tomorrow", "horizon", "beyond-horizon", "far", "saturday",
        "closing", "before-closing", "friday-afternoon", "ny-night", "ny-day", "tokyo-night"])
def test_scheduled_slot(requested: datetime, zone: ZoneInfo | None,
                        verdict: SlotVerdict) -> None:
    assert scheduled_slot_ok(requested, NOW, DEMO, zone) == verdict


def test_scheduled_slot_on_a_holiday_and_a_shorter_horizon() -> None:
    assert scheduled_slot_ok(j(9, 21, 10), j(9, 20, 10), DEMO) == "closed"  # Yom Kippur
    assert scheduled_slot_ok(j(1, 6, 10), NOW, policy(scheduled_horizon="1d")) == (
        "beyond_horizon")


# -------------------------------------------------------------------------- expected wait

M = timedelta(minutes=1)


# ``agents``: busy agents who all just started a call (the old model's only case): the
# caller waits ceil(position / agents) mean handle times.
@pytest.mark.parametrize(("position", "agents", "handle_times", "expected"), [
    (1, 1, [4 * M, 6 * M], 5 * M),
    (1, 3, [4 * M, 6 * M], 5 * M),  # one round even with agents to spare
    (3, 2, [4 * M, 6 * M], 10 * M),  # ceil(3 / 2) = 2 rounds
    (4, 2, [4 * M, 6 * M], 10 * M),
    (5, 2, [4 * M, 6 * M], 15 * M),
    # No agent signed in: nobody can answer, so no wait can be promised (it was "no agent
    # counts as one": 10 minutes, the lie of issue 14 item 1).
    (2, 0, [5 * M], None),
    (3, 1, [], 15 * M),  # no recent calls: the fallback handle time (5 minutes)
    (2, 1, [timedelta(0), 6 * M], 12 * M),  # a zero-length call is no sample
    (0, 2, [4 * M], timedelta(0)),  # already being connected
    (1, 1, [timedelta(seconds=90), timedelta(seconds=100)], timedelta(seconds=95)),
], ids=["first", "spare-agents", "two-rounds", "two-rounds-full", "three-rounds",
        "no-agents", "fallback", "ignore-zero", "position-zero", "seconds"])
def test_expected_wait(position: int, agents: int, handle_times: list[timedelta],
                       expected: timedelta | None) -> None:
    assert expected_wait(position, [timedelta(0)] * agents, handle_times) == expected


def test_expected_wait_fallback_from_the_policy() -> None:
    quick = policy(fallback_handle_time="3m")
    assert expected_wait(3, [timedelta(0)], [], quick.fallback_handle_time) == 9 * M


@pytest.mark.parametrize(("position", "free", "busy", "handle_times", "expected"), [
    (1, 1, [], [4 * M], timedelta(0)),  # an idle agent: next in line, no wait
    (2, 2, [3 * M], [4 * M], timedelta(0)),  # two idle agents for the first two
    (1, 1, [1 * M], [4 * M], timedelta(0)),  # free beats busy
    (2, 1, [], [4 * M], 4 * M),  # behind the one the free agent takes: a whole call
    (2, 1, [2 * M], [4 * M], 2 * M),  # ... or the busy agent's 2 minutes left
    (3, 1, [2 * M], [4 * M], 4 * M),  # 0 → 4, 2 → 6: the third gets the agent free at 4
    (1, 0, [], [4 * M], None),  # nobody signed in
    (7, 0, [], [], None),
    (0, 0, [], [], timedelta(0)),  # already being connected
    (1, 0, [3 * M], [3 * M, 5 * M], 1 * M),  # 3 minutes into a 4-minute mean
    (1, 0, [3 * M, 1 * M], [3 * M, 5 * M], 1 * M),
    (2, 0, [3 * M, 1 * M], [3 * M, 5 * M], 3 * M),
    (3, 0, [3 * M, 1 * M], [3 * M, 5 * M], 5 * M),  # the first agent again: 1 + 4
    (4, 0, [3 * M, 1 * M], [3 * M, 5 * M], 7 * M),  # the second again: 3 + 4
    (1, 0, [10 * M], [4 * M], 1 * M),  # past the mean: a quarter of it still left
    (1, 0, [timedelta(seconds=210)], [4 * M], 1 * M),  # 30 s short of it: the quarter
    (1, 0, [1 * M], [], 4 * M),  # no recent calls: the 5-minute fallback, 1 minute in
    (1, 0, [timedelta(seconds=-5)], [4 * M], 4 * M),  # a clock behind: not in a call yet
], ids=["idle", "two-idle", "free-first", "behind-free", "busy-sooner", "third",
        "nobody", "nobody-long-queue", "position-zero", "one-busy", "two-busy-1",
        "two-busy-2", "two-busy-3", "two-busy-4", "overrun", "nearly-done", "fallback",
        "negative-elapsed"])
def test_expected_wait_from_what_the_queue_has(position: int, free: int,
                                               busy: list[timedelta],
                                               handle_times: list[timedelta],
                                               expected: timedelta | None) -> None:
    assert expected_wait(position, busy, handle_times, free=free) == expected


def _simulated_wait(position: int, busy: list[timedelta], handle_times: list[timedelta],
                    free: int) -> timedelta | None:
    """The definition, caller by caller: each caller ahead takes the agent free soonest for
    one mean handle time (what ``expected_wait`` computed in O(position x agents) before)."""
    if position <= 0 or position <= free:
        return timedelta(0)
    if free <= 0 and not busy:
        return None
    mean = sla.mean_handle_time(handle_times)
    ready = [timedelta(0)] * free + [sla.time_left(e, mean) for e in busy]
    for _ in range(position - 1):
        soonest = ready.index(min(ready))
        ready[soonest] += mean
    return min(ready)


@settings(max_examples=300, deadline=None)
@given(position=st.integers(-1, 60), free=st.integers(0, 4),
       busy=st.lists(st.integers(-30, 900).map(lambda s: timedelta(seconds=s)), max_size=6),
       handle_times=st.lists(st.integers(0, 900).map(lambda s: timedelta(seconds=s)),
                             max_size=4))
def test_expected_wait_is_the_caller_by_caller_simulation(
        position: int, free: int, busy: list[timedelta],
        handle_times: list[timedelta]) -> None:
    assert expected_wait(position, busy, handle_times, free=free) == _simulated_wait(
        position, busy, handle_times, free)


@settings(max_examples=300, deadline=None)
@given(position=st.integers(-1, 60), free=st.integers(0, 4),
       busy=st.lists(st.integers(-30, 900).map(lambda s: timedelta(seconds=s)), max_size=6),
       handle_times=st.lists(st.integers(0, 900).map(lambda s: timedelta(seconds=s)),
                             max_size=4))
def test_the_ranked_estimate_asks_for_one_busy_agent_and_agrees(
        position: int, free: int, busy: list[timedelta],
        handle_times: list[timedelta]) -> None:
    """What the store reads for the estimate (issue 18 item 2): the counts and the one busy
    agent whose call ends when the caller's turn comes, ranked longest handled first."""
    asked: list[int] = []
    longest_first = sorted(busy, reverse=True)

    def elapsed_at(rank: int) -> timedelta:
        asked.append(rank)
        return longest_first[rank]

    assert sla.expected_wait_ranked(position, free, len(busy), elapsed_at,
                                    handle_times) == _simulated_wait(
        position, busy, handle_times, free)
    assert len(asked) <= 1


def test_expected_wait_of_a_long_queue_with_many_agents() -> None:
    """Far more callers than agents, agents at every stage of their calls: many rounds."""
    busy = [timedelta(seconds=(i * 37) % 400) for i in range(60)]
    for position in (59, 60, 61, 1_000, 2_345):
        assert expected_wait(position, busy, [5 * M, 3 * M], free=3) == _simulated_wait(
            position, busy, [5 * M, 3 * M], 3)


@pytest.mark.parametrize(("now", "expected", "reason"), [
    (j(11, 23, 10), None, "unstaffed"),          # nobody can answer: say so, offer
    (j(11, 23, 19, 50), None, None),             # ... but not after the offer's hours
    (j(11, 23, 10), timedelta(0), None),         # an agent is free: nothing to offer
    (j(11, 23, 19, 31), timedelta(0), None),     # not even just before closing
    (j(11, 23, 19, 31), timedelta(seconds=10), "closing"),
])
def test_the_offer_when_nobody_can_answer_or_an_agent_is_free(
        now: datetime, expected: timedelta | None, reason: str | None) -> None:
    assert sla.offer_reason(now, expected, OFFERING) == reason


def test_no_unstaffed_offer_when_the_queue_does_not_offer() -> None:
    assert sla.offer_reason(j(11, 23, 10), None, DEMO) is None


# ------------------------------------------------------- found by mutation testing
# (tests/mutation.sh): behaviour that changed SLA maths kept passing before these.


@pytest.mark.parametrize(("t", "zone", "expected"), [
    (j(1, 4, 10), None, True),
    (j(1, 10, 10), None, False),  # Saturday: closed, though not quiet hours
    (j(1, 4, 20, 30), None, False),  # closed and quiet hours
    (j(1, 5, 10), NEW_YORK, False),  # open, but 03:00 in New York
    (j(1, 5, 15), NEW_YORK, True),  # 08:00 there
    (j(1, 4, 14), TOKYO, False),  # 21:00 there
], ids=["open", "saturday", "night", "ny-night", "ny-morning", "tokyo-night"])
def test_callable_at(t: datetime, zone: ZoneInfo | None, expected: bool) -> None:
    assert callable_at(t, DEMO, zone) is expected


@pytest.mark.parametrize(("now", "window", "expected"), [
    (j(11, 23, 19, 30), timedelta(minutes=30), False),  # closes exactly at now + window
    (j(11, 23, 19, 31), timedelta(minutes=30), True),
    (j(11, 27, 12, 30), timedelta(minutes=30), False),  # Friday: 13:00
    (j(11, 27, 12, 31), timedelta(minutes=30), True),
    (j(11, 28, 10), timedelta(days=2), False),  # closed now (Saturday): nothing closes
], ids=["at-window", "within", "friday-at-window", "friday-within", "closed"])
def test_closes_within(now: datetime, window: timedelta, expected: bool) -> None:
    assert sla.closes_within(now, window, OFFERING) is expected


@pytest.mark.parametrize(("now", "reason"), [
    (j(11, 23, 7, 59), None),
    (j(11, 23, 8), "wait"),  # the offer's hours (08:00-19:45) include their start ...
    (j(11, 23, 19, 44), "wait"),
    (j(11, 23, 19, 45), None),  # ... not their end
])
def test_the_offers_hours_edges(now: datetime, reason: str | None) -> None:
    assert sla.offer_reason(now, timedelta(minutes=5), OFFERING) == reason


@pytest.fixture(params=["UTC", "Pacific/Honolulu", "Asia/Tokyo"])
def server_zone(request: pytest.FixtureRequest) -> Iterator[str]:
    """The server's own time zone (TZ), which no answer may depend on."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.mark.usefixtures("server_zone")
@pytest.mark.parametrize(("now", "choices"), [
    (j(11, 23, 10), [("later_today", j(11, 23, 12)), ("tomorrow_morning", j(11, 24, 9)),
                     ("tomorrow_afternoon", j(11, 24, 14))]),
    # 00:30 on Tuesday (22:30 on Monday in UTC): "today" and "tomorrow" are the centre's.
    (j(11, 24, 0, 30), [("later_today", j(11, 24, 8)), ("tomorrow_morning", j(11, 25, 9)),
                        ("tomorrow_afternoon", j(11, 25, 14))]),
], ids=["monday-morning", "after-midnight"])
def test_time_choices_do_not_depend_on_the_servers_zone(
        now: datetime, choices: list[tuple[str, datetime]]) -> None:
    assert sla.time_choices(now, OFFERING) == choices


ALWAYS_OPEN = policy(business_hours={"weekly": ALWAYS},
                     offer={"enabled": True, "scheduled": True})


@pytest.mark.parametrize(("now", "offering", "choices"), [
    # Quiet hours in New York until 08:00 there (15:00 here); 14:00 tomorrow is 15:00 too.
    (j(11, 23, 10), OFFERING, [("later_today", j(11, 23, 15)),
                               ("tomorrow_morning", j(11, 24, 15))]),
    # A centre open all night: 22:00 here is 15:00 in New York, callable for the customer
    # although it is quiet hours in the centre's zone.
    (j(11, 23, 20), ALWAYS_OPEN, [("later_today", j(11, 23, 22)),
                                  ("tomorrow_morning", j(11, 24, 15))]),
], ids=["office", "always-open"])
def test_time_choices_in_the_customers_zone(now: datetime, offering: Policy,
                                            choices: list[tuple[str, datetime]]) -> None:
    assert sla.time_choices(now, offering, NEW_YORK) == choices
