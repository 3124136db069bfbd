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
from datetime import timedelta
from types import FrameType
from typing import Any

import httpx
from sqlalchemy import Engine

from callbacks.followups.tasks import followups_job
from callbacks.tasks import callbacks_job
from crm_sync.tasks import jobs as crm_jobs
from ivr.core.clock import Clock
from ivr.core.jobs import Job
from ivr.core.settings import Settings
from ivr.reports.tasks import reports_job
from ivr.services import build_services

log = logging.getLogger("ivr.worker")


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


def build_jobs(engine: Engine, settings: Settings, clock: Clock, *,
               sleep: Callable[[float], None], stop: Callable[[], bool] = lambda: False,
               sync: bool = True, outbox: bool = True, callbacks: bool = False,
               reports: bool = False, followups: bool = False,
               transport: httpx.BaseTransport | None = None, gateway: Any = None,
               dialer: Any = None) -> tuple[list[Job], list[Any]]:
    """Each feature's jobs the configuration asks for, and the resources to close
    afterwards. Configuration mistakes raise (a user error) before anything runs."""
    jobs: list[Job] = []
    closing: list[Any] = []
    if callbacks or followups:
        services = build_services(engine, settings, clock, gateway=gateway, dialer=dialer)
        if callbacks and services.callbacks is not None:
            client = httpx.Client(transport=transport, timeout=10)
            closing.append(client)
            jobs.append(callbacks_job(services.dispatcher(), services.callbacks, settings,
                                      client))
        if followups and services.followups is not None:  # issue 17.2 (followups.yaml)
            fclient = httpx.Client(transport=transport, timeout=10)
            closing.append(fclient)
            jobs.append(followups_job(services.followups, settings, fclient))
    jobs += crm_jobs(engine, settings, clock, sleep=sleep, stop=stop, sync=sync,
                     outbox=outbox, transport=transport, closing=closing)
    if reports:  # issue 17.5: the reports' rollup of finished days
        jobs.append(reports_job(engine, settings, clock))
    return jobs, closing
