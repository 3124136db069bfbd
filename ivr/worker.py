"""``ivr worker``: the long-running process for background work, as a loop of periodic jobs.

Each ``Job`` has a name, an interval and a function; a job whose function says there is more
waiting (a full outbox batch) runs again at once, and one that raises is logged and runs
again after its interval. Jobs today: one CRM pull per ``crm/sources/*.yaml`` (every
``every:`` seconds of the file, else ``IVR_CRM_SYNC_EVERY_S``) and outbox delivery to
``crm/subscribers.yaml`` (every ``IVR_OUTBOX_EVERY_S``), and the callbacks dispatcher
(every ``IVR_CALLBACK_EVERY_S``: callback timers, routing with the due callbacks, dialling,
escalation webhook).

Time comes from an injected clock and waiting from an injected ``sleep`` (tests move a
frozen clock instead of waiting). SIGTERM or SIGINT asks the loop to stop: the job running
finishes its current step (a page, a batch) and the process exits 0; nothing is lost, since
every step commits its own progress. Several workers may run against PostgreSQL (outbox
claims use SKIP LOCKED; a source is synced by one of them at a time); SQLite runs one.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType
from typing import Any

import httpx
from sqlalchemy import Engine

from crm_sync.config import load_rules
from crm_sync.outbox import DeliveryPolicy, deliver, purge, register
from crm_sync.retry import Backoff
from crm_sync.sources import SourceConfig, Subscriber, load_sources, load_subscribers
from crm_sync.sync import SyncBusy, SyncError, pull
from ivr.core.clock import Clock
from ivr.core.settings import Settings

log = logging.getLogger("ivr.worker")
PURGE_EVERY = timedelta(hours=1)  # delivered events older than IVR_OUTBOX_KEEP_DELIVERED_S go


@dataclass
class Job:
    name: str
    every: float  # seconds between runs
    run: Callable[[], bool]  # True: more is waiting, run again at once
    next_at: datetime | None = None  # None: due now
    runs: int = 0
    failures: int = 0


class Worker:
    def __init__(self, jobs: list[Job], clock: Clock,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.jobs = jobs
        self.clock = clock
        self.stopping = threading.Event()
        self.sleep = sleep or self._wait

    def _wait(self, seconds: float) -> None:
        self.stopping.wait(seconds)  # a stop request ends the wait at once

    def stop(self) -> None:
        self.stopping.set()

    def tick(self) -> float:
        """Run every due job once; seconds until the next one is due."""
        for job in self.jobs:
            if self.stopping.is_set():
                break
            now = self.clock.now()
            if job.next_at is not None and job.next_at > now:
                continue
            job.runs += 1
            try:
                more = job.run()
            except Exception:
                job.failures += 1
                log.exception("job %s failed; next try in %.0f s", job.name, job.every)
                more = False
            job.next_at = (self.clock.now() if more
                           else self.clock.now() + timedelta(seconds=job.every))
        if not self.jobs:
            return 60.0
        now = self.clock.now()
        return max(0.0, min(((j.next_at or now) - now).total_seconds() for j in self.jobs))

    def run(self, max_ticks: int | None = None) -> None:
        ticks = 0
        while not self.stopping.is_set():
            wait = self.tick()
            ticks += 1
            if max_ticks is not None and ticks >= max_ticks:
                return
            if wait > 0 and not self.stopping.is_set():
                self.sleep(wait)

    @contextmanager
    def signals(self) -> Iterator[None]:
        """SIGTERM and SIGINT stop the loop (main thread only); the old handlers after."""
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("%s: stopping after the current step", signal.Signals(signum).name)
            self.stop()

        previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, old in previous.items():
                signal.signal(s, old)


def _sync_job(engine: Engine, settings: Settings, config: SourceConfig, clock: Clock,
              client: httpx.Client, sleep: Callable[[float], None],
              stop: Callable[[], bool]) -> Job:
    def run() -> bool:
        rules = load_rules(settings.crm_dir / "rules.yaml")
        try:
            for report in pull(engine, config, settings.crm_dir, rules,
                               settings.default_region, client, now=clock.now, sleep=sleep,
                               stop=stop):
                c = report.report.counts
                log.info("sync %s %s: %d records in %d pages (created %d, updated %d, "
                         "merged %d, unchanged %d, rejected %d); cursor %s",
                         report.source, report.kind, report.report.records, report.pages,
                         c.created, c.updated, c.merged, c.unchanged, c.rejected,
                         report.cursor)
        except SyncBusy as exc:
            log.info("sync %s: %s", config.source, exc)
        except SyncError as exc:
            log.warning("sync %s failed (the next run resumes): %s", config.source, exc)
        return False

    return Job(f"sync:{config.source}", float(config.every or settings.crm_sync_every_s), run)


def _outbox_job(engine: Engine, settings: Settings, subscribers: list[Subscriber],
                clock: Clock, client: httpx.Client) -> Job:
    active = {s.name: s for s in subscribers if s.active}
    for s in active.values():
        s.secret()  # a missing secret stops the worker at start, not at the first event
    policy = DeliveryPolicy(batch=settings.outbox_batch,
                            max_attempts=settings.outbox_max_attempts,
                            backoff=Backoff(settings.outbox_backoff_base_s,
                                            settings.outbox_backoff_cap_s),
                            lease=settings.outbox_lease_s)

    purged_at: list[datetime] = []

    def run() -> bool:
        now = clock.now()
        if not purged_at or now - purged_at[-1] >= PURGE_EVERY:
            with engine.begin() as conn:
                gone = purge(conn, now - timedelta(seconds=settings.outbox_keep_delivered_s))
            if gone:
                log.info("outbox: %d delivered event(s) purged", gone)
            purged_at[:] = [now]
        stats = deliver(engine, active, client, clock.now, policy)
        if stats.claimed:
            log.info("outbox: %d delivered, %d to retry, %d dead", stats.delivered,
                     stats.retried, stats.dead)
        return stats.claimed >= policy.batch

    return Job("outbox", settings.outbox_every_s, run)


def callback_services(engine: Engine, settings: Settings, clock: Clock, *,
                      gateway: Any = None, dialer: Any = None) -> Any:
    """The agent service with its callback service, as a worker runs them (no menus: the
    worker never answers a caller's webhook). None when callbacks are off."""
    from ivr.agents.callbacks import build_service  # noqa: PLC0415
    from ivr.agents.gateway import HoldLoopGateway, TwilioGateway  # noqa: PLC0415
    from ivr.agents.service import AgentService  # noqa: PLC0415

    if gateway is None:
        token = settings.twilio_auth_token.get_secret_value()
        gateway = (TwilioGateway(settings.twilio_account_sid, token,
                                 api_base_url=settings.twilio_api_base_url)
                   if settings.twilio_account_sid and token else HoldLoopGateway())
    agents = AgentService(engine, None, clock, settings, gateway)
    agents.callbacks = build_service(engine, clock, settings, gateway,
                                     settings.public_url or "http://127.0.0.1:8000", dialer)
    return agents if agents.callbacks is not None else None


def _callbacks_job(agents: Any, settings: Settings, client: httpx.Client) -> Job:
    """The dispatcher: timers (leases, warnings, breaches), then routing (due callbacks in
    the one ordering with live calls; each claimed callback dialled after its commit), then
    escalation events to the webhook."""
    from ivr.agents.service import Outcome  # noqa: PLC0415

    def run() -> bool:
        agents.callbacks.sweep(Outcome())
        agents.expire_offers()
        for _ in range(10):
            offers, _published = agents.route()
            if not offers:
                break
            agents.deliver(offers)
        agents.callbacks.notify(client)
        return False

    return Job("callbacks", settings.callback_every_s, run)


def build_jobs(engine: Engine, settings: Settings, clock: Clock, *,
               sleep: Callable[[float], None], stop: Callable[[], bool] = lambda: False,
               sync: bool = True, outbox: bool = True, callbacks: bool = False,
               transport: httpx.BaseTransport | None = None, gateway: Any = None,
               dialer: Any = None) -> tuple[list[Job], list[Any]]:
    """The worker's jobs from the configuration, and the resources to close afterwards.
    Configuration mistakes raise ``ConfigError`` (a user error) before anything runs."""
    jobs: list[Job] = []
    closing: list[Any] = []
    if callbacks:
        agents = callback_services(engine, settings, clock, gateway=gateway, dialer=dialer)
        if agents is not None:
            client = httpx.Client(transport=transport, timeout=10)
            closing.append(client)
            jobs.append(_callbacks_job(agents, settings, client))
    if sync:
        for config in load_sources(settings.crm_dir / "sources").values():
            config.auth_headers()  # a missing token is reported at start
            client = httpx.Client(transport=transport)
            closing.append(client)
            jobs.append(_sync_job(engine, settings, config, clock, client, sleep, stop))
    if outbox:
        subscribers = load_subscribers(settings.crm_dir / "subscribers.yaml")
        with engine.begin() as conn:
            register(conn, subscribers, clock.now())
        if any(s.active for s in subscribers):
            client = httpx.Client(transport=transport)
            closing.append(client)
            jobs.append(_outbox_job(engine, settings, subscribers, clock, client))
    return jobs, closing
