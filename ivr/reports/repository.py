"""The rollup's reads and writes. ``refresh`` rebuilds the rows of whole days from the
calls' tables (one transaction: the day's rows are replaced, the day is listed as rolled
up); ``read_counts`` / ``read_waits`` sum them per period (day or week, computed in SQL)
and per queue or agent, so a report reads one row per period, key and wait bucket."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Connection,
    case,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
)

from ivr.reports.facts import rollup_days
from ivr.reports.model import By
from ivr.reports.models import report_days, report_rolled_days, report_waits
from ivr.reports.rollup import COUNTERS

Group = Literal["queue", "agent_id", "all"]
Sums = dict[tuple[date, Any], Counter[str]]
Waits = dict[tuple[date, Any], Counter[int]]


def refresh(conn: Connection, first: date, last: date, zone: ZoneInfo, now: datetime) -> int:
    """Roll up the days ``first``..``last`` (whole days, before today: the caller's
    choice) from the calls' tables; returns the number of counter rows written."""
    rollup = rollup_days(conn, first, last, zone, now)
    for table in (report_days, report_waits, report_rolled_days):
        conn.execute(delete(table).where(table.c.day >= first, table.c.day <= last))
    rows = [{"day": d, "queue": q, "agent_id": a, **{c: counts.get(c, 0) for c in COUNTERS}}
            for (d, q, a), counts in rollup.counts.items()]
    if rows:
        conn.execute(insert(report_days), rows)
    waits = [{"day": d, "queue": q, "agent_id": a, "wait_s": b, "n": n}
             for (d, q, a), hist in rollup.waits.items() for b, n in hist.items()]
    if waits:
        conn.execute(insert(report_waits), waits)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    conn.execute(insert(report_rolled_days),
                 [{"day": d, "zone": zone.key, "rolled_at": now} for d in days])
    return len(rows)


def rolled_days(conn: Connection, first: date, last: date, zone: ZoneInfo) -> set[date]:
    t = report_rolled_days.c
    return {_date(d) for d in conn.execute(select(t.day).where(
        t.day >= first, t.day <= last, t.zone == zone.key)).scalars()}


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def period_sql(conn: Connection, column: Any, by: By, week_start: int) -> ColumnElement[Any]:
    """The first day of the period of ``column`` (a date), in SQL: the day itself, or the
    day minus its distance from ``week_start`` (0 = Monday ... 6 = Sunday)."""
    if by == "day":
        return column  # type: ignore[no-any-return]
    name = f"{column.table.name}.{column.name}"
    dow = (week_start + 1) % 7  # SQL counts Sunday as 0
    if conn.dialect.name == "postgresql":
        return literal_column(f"({name} - ((extract(dow from {name})::int - {dow} + 7) % 7))")
    return literal_column(
        f"date({name}, '-' || ((cast(strftime('%w', {name}) as integer) - {dow} + 7) % 7)"
        " || ' days')")


def _key(t: Any, group: Group) -> Any:
    return {"queue": t.queue, "agent_id": t.agent_id, "all": literal("*")}[group]


def read_counts(conn: Connection, first: date, last: date, by: By, week_start: int,
                group: Group, days: set[date] | None = None) -> Sums:
    """Counters summed per (period, queue or agent) over the rolled-up days."""
    t = report_days.c
    period = period_sql(conn, t.day, by, week_start).label("period")
    key = _key(t, group)
    stmt = (select(period, key.label("key"), *[func.sum(t[c]).label(c) for c in COUNTERS])
            .where(t.day >= first, t.day <= last).group_by(period, key))
    if days is not None:
        stmt = stmt.where(t.day.in_(sorted(days)))
    out: Sums = defaultdict(Counter)
    for r in conn.execute(stmt).mappings():
        out[(_date(r["period"]), r["key"])].update(
            {c: int(r[c] or 0) for c in COUNTERS})
    return out


def read_waits(conn: Connection, first: date, last: date, by: By, week_start: int,
               group: Group, days: set[date] | None = None) -> Waits:
    t = report_waits.c
    period = period_sql(conn, t.day, by, week_start).label("period")
    key = _key(t, group)
    stmt = (select(period, key.label("key"), t.wait_s, func.sum(t.n).label("n"))
            .where(t.day >= first, t.day <= last).group_by(period, key, t.wait_s))
    if days is not None:
        stmt = stmt.where(t.day.in_(sorted(days)))
    out: Waits = defaultdict(Counter)
    for r in conn.execute(stmt):
        out[(_date(r.period), r.key)][int(r.wait_s)] += int(r.n)
    return out


WaitFigures = dict[tuple[date, Any], tuple[int | None, int]]


def read_wait_figures(conn: Connection, first: date, last: date, by: By, week_start: int,
                      group: Group, days: set[date], within_s: int) -> WaitFigures:
    """Per (period, queue / agent / all): the p90 wait (nearest rank over the histogram,
    as ``rollup.percentile_of``) and the answered calls that waited less than
    ``within_s``, computed in SQL (a running sum over the buckets) — one row per period
    and key comes back, not the histogram."""
    t = report_waits.c
    period = period_sql(conn, t.day, by, week_start).label("period")
    key = _key(t, group).label("key")
    h = (select(period, key, t.wait_s.label("w"), func.sum(t.n).label("n"))
         .where(t.day >= first, t.day <= last, t.day.in_(sorted(days)))
         .group_by(period, key, t.wait_s).subquery())
    part = (h.c.period, h.c.key)
    c = select(h.c.period, h.c.key, h.c.w, h.c.n,
               func.sum(h.c.n).over(partition_by=part, order_by=h.c.w).label("cum"),
               func.sum(h.c.n).over(partition_by=part).label("total")).subquery()
    stmt = select(c.c.period, c.c.key,
                  func.min(case((c.c.cum * 10 >= c.c.total * 9, c.c.w))).label("p90"),
                  func.coalesce(func.sum(case((c.c.w < within_s, c.c.n), else_=0)), 0)
                  .label("within")).group_by(c.c.period, c.c.key)
    return {(_date(r.period), r.key): (None if r.p90 is None else int(r.p90), int(r.within))
            for r in conn.execute(stmt)}
