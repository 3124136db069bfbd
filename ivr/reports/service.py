"""The queue and agent reports: counters of the rolled-up days (``repository``) plus those
of the days not rolled up yet (today, always), computed from the calls themselves
(``facts``), summed per period and shown as figures (``rollup.figures``), tables and
charts (``model``)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from ivr.agents.models import agents
from ivr.core.settings import Settings
from ivr.menu.bundle import load_directory
from ivr.reports import repository as repo
from ivr.reports.facts import days_of, rollup_days
from ivr.reports.model import (
    Block,
    Chart,
    Column,
    ReportRequest,
    Series,
    Table,
    period_start,
    periods,
)
from ivr.reports.rollup import NO_AGENT, NO_QUEUE, figures
from ivr.reports.strings import format_period

#: Days a refresh rolls up again: first-contact resolution looks 7 days ahead.
SETTLE_DAYS = 8
#: The queue of the "all queues" row (every inbound call, the menu's abandonment).
ALL = "*"


def centre_zone(settings: Settings) -> ZoneInfo:
    """The centre's time zone: the entry menu's (the console shows times in it), else
    IVR_TIMEZONE."""
    bundle, _report = load_directory(settings.menus_dir, settings.entry_menu)
    entry = bundle.menus.get(settings.entry_menu) if bundle is not None else None
    return ZoneInfo(entry.menu.spoken_timezone() if entry is not None else settings.timezone)


def week_start_day(settings: Settings) -> int:
    """IVR_REPORTS_WEEK_START as a weekday number (0 = Monday ... 6 = Sunday)."""
    return 6 if settings.reports_week_start == "sunday" else 0


def request_for(settings: Settings, zone: ZoneInfo, now: datetime, *, start: date | None,
                end: date | None, by: str, lang: str, service_level: int | None = None,
                options: dict[str, str] | None = None) -> ReportRequest:
    """The request of the CLI and the page: the last 7 days (today included) unless
    ``start`` / ``end`` say otherwise; ValueError when ``start`` is after ``end``."""
    today = now.astimezone(zone).date()
    last = end or today
    first = start or last - timedelta(days=6)
    if first > last:
        raise ValueError(f"the first day {first} is after the last {last}")
    return ReportRequest(first, last, "week" if by == "week" else "day", zone, now, lang,
                         week_start=week_start_day(settings),
                         service_level_seconds=service_level
                         or settings.reports_service_level_seconds,
                         options=options or {}, settings=settings)


@dataclass
class Counts:
    """A report's counters per (period start, key) — key: a queue, an agent id, or "*"
    (every call) — and how its waits are known: the histograms of periods that include a
    day computed from the calls (``waits``), else p90 and "answered within" computed in
    SQL over the rollup (``wait_figures``)."""

    sums: repo.Sums
    waits: repo.Waits
    wait_figures: repo.WaitFigures

    def figures(self, k: tuple[date, Any], service_level_s: int, *,
                all_calls: bool = False) -> dict[str, Any]:
        return figures(self.sums.get(k, Counter()), self.waits.get(k, Counter()),
                       service_level_s, all_calls=all_calls,
                       precomputed=None if k in self.waits else self.wait_figures.get(k))


def counters(conn: Connection, req: ReportRequest, group: repo.Group) -> Counts:
    """Counters and waits per (period start, queue / agent id / "*") of the range."""
    rolled = repo.rolled_days(conn, req.start, req.end, req.zone)
    today = req.now.astimezone(req.zone).date()
    rolled = {d for d in rolled if d < today}
    runs = _runs(req.start, req.end, rolled)
    live_periods = {period_start(d, req.by, req.week_start)
                    for first, last in runs for d in days_of(first, last)}
    mixed = {d for d in rolled if period_start(d, req.by, req.week_start) in live_periods}
    sums: repo.Sums = defaultdict(Counter)
    waits: repo.Waits = defaultdict(Counter)
    figs: repo.WaitFigures = {}
    args = (conn, req.start, req.end, req.by, req.week_start, group)
    if rolled:
        sums.update(repo.read_counts(*args, rolled))
    if rolled - mixed:
        figs = repo.read_wait_figures(*args, rolled - mixed, req.service_level_seconds)
    if mixed:
        waits.update(repo.read_waits(*args, mixed))
    for first, last in runs:
        key = ("rollup_days", first, last)
        if key not in req.memo:  # once per request: every report of a page reads it
            req.memo[key] = rollup_days(conn, first, last, req.zone, req.now)
        live = req.memo[key]
        for (day, queue, agent), c in live.counts.items():
            sums[(period_start(day, req.by, req.week_start), _pick(group, queue, agent))] \
                .update(c)
        for (day, queue, agent), h in live.waits.items():
            waits[(period_start(day, req.by, req.week_start), _pick(group, queue, agent))] \
                .update(h)
    for p in live_periods:  # a period with a live day: its histogram, however empty
        for k in [k for k in sums if k[0] == p]:
            waits.setdefault(k, Counter())
    return Counts(sums, waits, figs)


def _pick(group: repo.Group, queue: str, agent: int) -> Any:
    return queue if group == "queue" else agent if group == "agent_id" else ALL


def _runs(first: date, last: date, done: set[date]) -> list[tuple[date, date]]:
    """The stretches of consecutive days in first..last that are not in ``done``."""
    runs: list[tuple[date, date]] = []
    day = first
    while day <= last:
        if day in done:
            day += timedelta(days=1)
            continue
        start = day
        while day + timedelta(days=1) <= last and day + timedelta(days=1) not in done:
            day += timedelta(days=1)
        runs.append((start, day))
        day += timedelta(days=1)
    return runs


def _cols(req: ReportRequest, keys: list[tuple[str, str]]) -> list[Column]:
    return [Column(k, f"reports.col.{k}", kind) for k, kind in keys]  # type: ignore[arg-type]


QUEUE_COLUMNS = [("calls", "int"), ("answered", "int"), ("abandoned_menu", "int"),
                 ("abandoned_queue", "int"), ("abandon_rate", "pct"), ("callback_left", "int"),
                 ("avg_wait", "seconds"), ("p90_wait", "seconds"), ("service_level", "pct"),
                 ("callback_sla", "pct"), ("fcr", "pct"), ("repeat_rate", "pct"),
                 ("csat", "score"), ("csat_n", "int"), ("followups_on_time", "pct"),
                 ("promises_kept", "pct")]
AGENT_COLUMNS = [("answered", "int"), ("avg_wait", "seconds"), ("p90_wait", "seconds"),
                 ("callback_sla", "pct"), ("fcr", "pct"), ("repeat_rate", "pct"),
                 ("csat", "score"), ("csat_n", "int"), ("promises_kept", "pct")]


def queue_report(conn: Connection, req: ReportRequest) -> list[Block]:
    """Per period: a row per queue, then the "all queues" row (every inbound call)."""
    per_queue = counters(conn, req, "queue")
    everything = counters(conn, req, "all")
    queue = req.options.get("queue")
    rows: list[dict[str, Any]] = []
    totals: list[dict[str, Any]] = []
    firsts = list(periods(req.start, req.end, req.by, req.week_start))
    for p in firsts:
        keys = sorted(q for (pp, q) in per_queue.sums if pp == p and q != NO_QUEUE)
        for q in keys:
            if queue and q != queue:
                continue
            rows.append({"period": p.isoformat(), "queue": q,
                         **per_queue.figures((p, q), req.service_level_seconds)})
        total = {"period": p.isoformat(), "queue": ALL,
                 **everything.figures((p, ALL), req.service_level_seconds, all_calls=True)}
        totals.append(total)
        if not queue:
            rows.append(total)
    columns = [Column("period", "reports.col.period", "date"),
               Column("queue", "reports.col.queue", "text"), *_cols(req, QUEUE_COLUMNS)]
    labels = [format_period(req.lang, p, req.by, short=True) for p in firsts]
    return [
        Table("queues", "reports.queues.table", columns, rows, note="reports.note.queues"),
        Chart("calls", "reports.chart.calls", "bar", labels, [
            Series("reports.col.answered", [t["answered"] for t in totals]),
            Series("reports.col.abandoned_queue", [t["abandoned_queue"] for t in totals]),
            Series("reports.col.abandoned_menu", [t["abandoned_menu"] for t in totals])]),
        Chart("wait", "reports.chart.wait", "line", labels, [
            Series("reports.col.avg_wait", [t["avg_wait"] for t in totals]),
            Series("reports.col.p90_wait", [t["p90_wait"] for t in totals])], unit="seconds"),
        Chart("quality", "reports.chart.quality", "line", labels, [
            Series("reports.col.service_level", [t["service_level"] for t in totals]),
            Series("reports.col.fcr", [t["fcr"] for t in totals])], unit="pct"),
    ]


def agent_names(conn: Connection) -> dict[int, str]:
    a = agents.c
    return {int(r.id): r.name for r in conn.execute(select(a.id, a.name))}


def agent_report(conn: Connection, req: ReportRequest) -> list[Block]:
    """Per period: a row per agent who answered, surveyed or followed up."""
    per_agent = counters(conn, req, "agent_id")
    names = agent_names(conn)
    rows: list[dict[str, Any]] = []
    for p in periods(req.start, req.end, req.by, req.week_start):
        for agent in sorted({a for (pp, a) in per_agent.sums if pp == p and a != NO_AGENT},
                            key=lambda a: (names.get(a, ""), a)):
            f = per_agent.figures((p, agent), req.service_level_seconds)
            rows.append({"period": p.isoformat(), "agent": names.get(agent, f"#{agent}"),
                         **{k: f[k] for k, _ in AGENT_COLUMNS}})
    columns = [Column("period", "reports.col.period", "date"),
               Column("agent", "reports.col.agent", "text"), *_cols(req, AGENT_COLUMNS)]
    return [Table("agents", "reports.agents.table", columns, rows)]
