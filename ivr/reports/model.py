"""What a report is, for the page, the CLI and the CSV alike (pure: no database, no web).

A report (``Report``) is a name, a title and a ``build(conn, request) -> list[Block]``;
a block is a ``Table`` (columns and rows) or a ``Chart`` (drawn server-side as SVG by
``ivr.reports.charts``). ``ivr.reports.registry.REPORTS`` lists them: the page shows each
one as a section, ``ivr reports <name>`` prints it (``--csv`` / ``--json``).

Periods are calendar days or weeks in the centre's time zone (the entry menu's, as the
console shows times): ``periods`` cuts a date range into them and ``bounds`` gives each
period's start and end instants in UTC, so queries compare UTC timestamps only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from ivr.core.settings import Settings

By = Literal["day", "week"]
#: How a value is shown: a count, a share (0..1, shown as a percentage), seconds, a
#: 1-5 score, a date (period start), or text.
Kind = Literal["int", "pct", "seconds", "score", "date", "text"]


@dataclass(frozen=True)
class ReportRequest:
    """What a manager asked: the days ``start``..``end`` (inclusive, the centre's
    calendar), cut by day or week, in the centre's zone, shown in ``lang``."""

    start: date
    end: date
    by: By
    zone: ZoneInfo
    now: datetime
    lang: str = "en"
    #: Weeks start on this weekday (0 = Monday ... 6 = Sunday; Israel's week starts Sunday).
    week_start: int = 6
    #: Service level: answered within this many seconds of joining the queue.
    service_level_seconds: int = 20
    #: Per-report options (e.g. a queue filter); each report documents its own.
    options: dict[str, str] = field(default_factory=dict)
    #: The settings the request runs under (a report reading an admin file of its own,
    #: e.g. the leaving report's wrapup.yaml); None: each report's defaults.
    settings: Settings | None = None
    #: What one request computed once for all its reports (e.g. today's counters: the
    #: queue and agent reports of one page share them). Not part of equality.
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def utc_bounds(self) -> tuple[datetime, datetime]:
        """The whole range as UTC instants: [start 00:00, end+1 00:00) in the zone."""
        return local_midnight(self.start, self.zone), local_midnight(
            self.end + timedelta(days=1), self.zone)


@dataclass(frozen=True)
class Column:
    key: str
    label: str  # a string key (ivr.reports.strings) or, failing that, shown as is
    kind: Kind = "int"


@dataclass(frozen=True)
class Table:
    name: str  # stable, for CSV and tests
    title: str  # a string key
    columns: Sequence[Column]
    rows: Sequence[dict[str, Any]]
    note: str | None = None  # a string key: how the figures are counted


@dataclass(frozen=True)
class Series:
    label: str  # a string key or text
    values: Sequence[float | None]


@dataclass(frozen=True)
class Chart:
    name: str
    title: str  # a string key
    kind: Literal["bar", "line"]
    categories: Sequence[str]  # the x axis, already formatted
    series: Sequence[Series]
    unit: Kind = "int"


Block = Table | Chart


@dataclass(frozen=True)
class Report:
    name: str  # the CLI sub-command and the page's anchor
    title: str  # a string key
    build: Callable[[Connection, ReportRequest], list[Block]]
    help: str = ""  # one line for `ivr reports --help`
    #: Options the report reads from ``ReportRequest.options`` (``--NAME`` on the command
    #: line, ``?NAME=`` on the page), e.g. ``("queue",)``.
    options: tuple[str, ...] = ()


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The instant (UTC) a day starts in ``zone`` (a DST change at midnight included)."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def local_day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def period_start(day: date, by: By, week_start: int = 6) -> date:
    if by == "day":
        return day
    return day - timedelta(days=(day.weekday() - week_start) % 7)


def periods(start: date, end: date, by: By, week_start: int = 6) -> Iterator[date]:
    """The first day of each period touching ``start``..``end``, in order."""
    step = timedelta(days=1 if by == "day" else 7)
    p = period_start(start, by, week_start)
    while p <= end:
        yield p
        p += step
