"""Operations endpoints and metrics: ``GET /readyz``, ``GET /metrics`` (Prometheus text,
a bearer token of the metrics or admin role: ``ivr.api_tokens``), the per-app metrics
registry, and the redaction of customer data in log lines (phone numbers masked as
``crm_sync.phones.mask`` does).

Counters and the webhook histogram are observed in the process (``ivr.webhooks``); the
queue, agent, outbox and sync gauges are read from the database at scrape time by
``DatabaseCollector``, so every process reports the same shared state.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Connection, func, select

from callbacks import repository as cbrepo
from callbacks.stats import summarise
from crm_sync import outbox as crm_outbox
from crm_sync import sync as crm_sync_status
from crm_sync.phones import mask, normalize
from ivr.agents.models import agents, queue_entries
from ivr.core.clock import Clock
from ivr.core.db import Database

# Webhook latency buckets (seconds): a menu step is a few ms; the safe route must stay far
# below Twilio's 15 s timeout.
WEBHOOK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0)
AGENT_STATES = ("offline", "available", "reserved", "on_call", "wrap_up")
OUTBOX_STATUSES = ("pending", "sending", "dead", "delivered")


class Metrics:
    """One app's metrics, in its own registry (tests build many apps in one process)."""

    def __init__(self, collector: DatabaseCollector | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.webhook_seconds = Histogram(
            "ivr_webhook_seconds", "Twilio webhook latency, signature check to answer",
            ["route"], buckets=WEBHOOK_BUCKETS, registry=self.registry)
        self.webhook_failures = Counter(
            "ivr_webhook_failures_total", "Twilio webhooks that failed inside (the caller "
            "got the safe route, or a status callback was answered 503 for a retry)",
            ["route"], registry=self.registry)
        self.identifications = Counter(
            "ivr_caller_identifications_total", "New calls by how the caller was identified "
            "from the calling number (known, ambiguous, unknown, withheld)", ["outcome"],
            registry=self.registry)
        self.calls_ended = Counter(
            "ivr_calls_ended_total", "Calls ended (their final status callback), by the menu "
            "and node they were at and how they ended (completed, busy, no-answer, failed, "
            "canceled)", ["menu", "node", "status"], registry=self.registry)
        self._observe: dict[str, Callable[[float], None]] = {}
        if collector is not None:
            self.registry.register(collector)

    def observe_webhook(self, route: str, seconds: float) -> None:
        """The hot path: a dict look-up and one histogram observation."""
        observe = self._observe.get(route)
        if observe is None:
            observe = self._observe[route] = self.webhook_seconds.labels(route).observe
        observe(seconds)

    def identified(self, outcome: str) -> None:
        self.identifications.labels(outcome).inc()

    def webhook_failed(self, route: str) -> None:
        self.webhook_failures.labels(route).inc()

    def call_ended(self, menu: str, node: str, status: str) -> None:
        self.calls_ended.labels(menu[:64], node[:64], status[:32]).inc()


class DatabaseCollector:
    """Gauges of the shared state, read when Prometheus scrapes: calls waiting per queue and
    the longest wait, agents by state, outbox depth, CRM sync lag per source."""

    def __init__(self, database: Callable[[], Database | None], clock: Clock) -> None:
        self.database = database
        self.clock = clock

    def describe(self) -> Iterable[Metric]:
        return []  # read at scrape time only (no database work at registration)

    def collect(self) -> Iterable[Metric]:
        db = self.database()
        if db is None:
            return []
        now = self.clock.now()
        waiting = GaugeMetricFamily(
            "ivr_queue_calls_waiting", "Calls in a queue not yet connected to an agent "
            "(waiting, or offered to a reserved agent)", labels=["queue"])
        longest = GaugeMetricFamily(
            "ivr_queue_longest_wait_seconds", "How long the longest-waiting call of a queue "
            "has waited (since it first joined)", labels=["queue"])
        by_state = GaugeMetricFamily("ivr_agents", "Active agents by state", labels=["state"])
        events = GaugeMetricFamily("ivr_outbox_events", "Outbox events by subscriber and "
                                   "status", labels=["subscriber", "status"])
        due = GaugeMetricFamily("ivr_outbox_due_events", "Pending outbox events due now",
                                labels=["subscriber"])
        oldest = GaugeMetricFamily(
            "ivr_outbox_oldest_undelivered_seconds", "Age of the oldest undelivered event",
            labels=["subscriber"])
        lag = GaugeMetricFamily(
            "ivr_crm_sync_lag_seconds", "Seconds since the last successful pull of a source "
            "endpoint", labels=["source", "kind"])
        cb_open = GaugeMetricFamily(
            "ivr_callbacks_open", "Callback requests not yet kept, by queue and status "
            "(pending, dialing, connected)", labels=["queue", "status"])
        cb_overdue = GaugeMetricFamily(
            "ivr_callbacks_overdue", "Open callback requests past their deadline",
            labels=["queue"])
        cb_attainment = GaugeMetricFamily(
            "ivr_callback_sla_attainment", "Share of callback requests decided in the last "
            "24 h that were kept by their deadline (callbacks.stats)", labels=["queue"])
        cb_events = GaugeMetricFamily(
            "ivr_callback_events_24h", "Callback events of the last 24 h by kind (requested, "
            "warning, breach, completed, failed, ...)", labels=["kind"])
        with db.engine.connect() as conn:
            self._callbacks(conn, now, cb_open, cb_overdue, cb_attainment, cb_events)
            rows = conn.execute(
                select(queue_entries.c.queue, func.count(), func.min(queue_entries.c.entered_at))
                .where(queue_entries.c.status.in_(("waiting", "offered")))
                .group_by(queue_entries.c.queue))
            for queue, count, first in rows:
                waiting.add_metric([queue], int(count))
                if first is not None:
                    longest.add_metric([queue], max(0.0, (now - first).total_seconds()))
            states = dict.fromkeys(AGENT_STATES, 0)
            for state, count in conn.execute(
                    select(agents.c.state, func.count()).where(agents.c.active.is_(True))
                    .group_by(agents.c.state)):
                states[state] = int(count)
            for state, count in states.items():
                by_state.add_metric([state], count)
            depth = crm_outbox.depth(conn, now)
            for name, entry in sorted(depth["subscribers"].items()):
                for status in OUTBOX_STATUSES:
                    events.add_metric([name, status], entry[status])
                due.add_metric([name], entry["due"])
                if entry["oldest_undelivered_seconds"] is not None:
                    oldest.add_metric([name], entry["oldest_undelivered_seconds"])
            for status_row in crm_sync_status.source_status(conn, now):
                if status_row["lag_seconds"] is not None:
                    lag.add_metric([status_row["source"], status_row["kind"]],
                                   status_row["lag_seconds"])
        return [waiting, longest, by_state, events, due, oldest, lag, cb_open, cb_overdue,
                cb_attainment, cb_events]

    @staticmethod
    def _callbacks(conn: Connection, now: datetime, open_: GaugeMetricFamily,
                   overdue: GaugeMetricFamily, attainment: GaugeMetricFamily,
                   events: GaugeMetricFamily) -> None:
        for (queue, status), count in sorted(cbrepo.counts_by_status(conn).items()):
            open_.add_metric([queue, status], count)
        day = now - timedelta(hours=24)
        for queue, count in sorted(cbrepo.overdue_by_queue(conn, now).items()):
            overdue.add_metric([queue], count)
        figures = summarise(cbrepo.requested_between(conn, day, now), now)
        for queue, f in figures["queues"].items():
            if f["attainment"] is not None:
                attainment.add_metric([queue], f["attainment"])
        for kind, count in sorted(cbrepo.event_counts_since(conn, day).items()):
            events.add_metric([kind], count)


# -- redaction of customer data in log lines

# A run of digits and the separators people write numbers with: +972501234567,
# %2B972501234567 (in a URL), 00972501234567, 050-123-4567, (050) 123 4567. Not inside a word
# (a CallSid's hex digits). Inside a run, every stretch of its digit groups that starts like a
# phone number (+, 0, 972) and normalises to one is masked: "called 0501234567 2 times".
_RUN = re.compile(r"(?<![\w%+])(?:\+|%2[bB])?\(?\d(?:[ .\-()]{0,3}+\d){7,}+(?!\w)")
# Every way of writing a phone number has this (a cheap test before the one above).
_LIKELY = re.compile(r"\d{3}[ .\-()]{0,2}\d{3}")
_GROUP = re.compile(r"(?:\+|%2[bB])?\d+")
_MIN_DIGITS, _MAX_DIGITS = 8, 15
# Customer data in query strings (uvicorn's access log of /crm/customers?phone=…&name=…).
_QUERY_KEYS = ("phone=", "name=", "email=", "account=")
_QUERY = re.compile(r"([?&](?:phone|name|email|account)=)[^&\s\"]*", re.IGNORECASE)
# SQLAlchemy writes a failed statement's bound values into its exceptions.
_SQL_PARAMETERS = re.compile(r"\[parameters: [^\n]*\]")


def _phone_at(groups: list[str], region: str) -> str | None:
    """The masked number these digit groups spell, or None."""
    compact = "".join(groups)
    compact = "+" + compact[3:] if compact[:3] in ("%2B", "%2b") else compact
    digits = len(compact) - compact.startswith("+")
    if not _MIN_DIGITS <= digits <= _MAX_DIGITS or not compact.startswith(("+", "0", "972")):
        return None
    e164 = normalize(compact, region).e164
    if e164 is None and compact.startswith("+"):
        e164 = compact  # not a number we know, still a number: mask its digits
    return mask(e164) if e164 else None


def _mask_run(found: re.Match[str], region: str) -> str:
    run = found.group(0)
    groups = [(g.start(), g.end(), g.group(0)) for g in _GROUP.finditer(run)]
    if sum(len(g[2]) for g in groups) < _MIN_DIGITS:
        return run
    out, done, i = [], 0, 0
    while i < len(groups):
        for j in range(len(groups), i, -1):  # the longest stretch from group i first
            masked = _phone_at([g[2] for g in groups[i:j]], region)
            if masked is not None:
                out += [run[done:groups[i][0]], masked]
                done, i = groups[j - 1][1], j
                break
        else:
            i += 1
    return "".join([*out, run[done:]]) if out else run


def redactor(region: str = "IL") -> Callable[[str], str]:
    """The log redaction: phone numbers masked (``+97250***4567``), customer fields in query
    strings and SQL parameters dropped."""

    def redact(message: str) -> str:
        if _LIKELY.search(message):
            message = _RUN.sub(lambda m: _mask_run(m, region), message)
        if "=" in message and any(key in message.lower() for key in _QUERY_KEYS):
            message = _QUERY.sub(r"\1***", message)
        if "[parameters: " in message:
            message = _SQL_PARAMETERS.sub("[parameters: hidden]", message)
        return message

    return redact


# -- endpoints
