"""The CRM's worker jobs: one pull per ``crm/sources/*.yaml`` (every ``every:`` seconds of the
file, else ``IVR_CRM_SYNC_EVERY_S``) and outbox delivery to ``crm/subscribers.yaml`` (every
``IVR_OUTBOX_EVERY_S``), purging delivered events after ``IVR_OUTBOX_KEEP_DELIVERED_S``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
from sqlalchemy import Engine

from crm_sync.config import load_rules
from crm_sync.outbox import DeliveryPolicy, deliver, purge, register
from crm_sync.retry import Backoff
from crm_sync.sources import SourceConfig, Subscriber, load_sources, load_subscribers
from crm_sync.sync import SyncBusy, SyncError, pull
from ivr.core.clock import Clock
from ivr.core.jobs import Job
from ivr.core.settings import Settings

log = logging.getLogger("ivr.worker")
PURGE_EVERY = timedelta(hours=1)  # delivered events older than IVR_OUTBOX_KEEP_DELIVERED_S go


def sync_job(engine: Engine, settings: Settings, config: SourceConfig, clock: Clock,
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


def outbox_job(engine: Engine, settings: Settings, subscribers: list[Subscriber],
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


def jobs(engine: Engine, settings: Settings, clock: Clock, *, sleep: Callable[[float], None],
         stop: Callable[[], bool], sync: bool, outbox: bool,
         transport: httpx.BaseTransport | None, closing: list[object]) -> list[Job]:
    """The CRM jobs the configuration asks for; their HTTP clients go to ``closing``.
    Configuration mistakes raise (a user error) before anything runs."""
    out: list[Job] = []
    if sync:
        for config in load_sources(settings.crm_dir / "sources").values():
            config.auth_headers()  # a missing token is reported at start
            client = httpx.Client(transport=transport)
            closing.append(client)
            out.append(sync_job(engine, settings, config, clock, client, sleep, stop))
    if outbox:
        subscribers = load_subscribers(settings.crm_dir / "subscribers.yaml")
        with engine.begin() as conn:
            register(conn, subscribers, clock.now())
        if any(s.active for s in subscribers):
            client = httpx.Client(transport=transport)
            closing.append(client)
            out.append(outbox_job(engine, settings, subscribers, clock, client))
    return out
