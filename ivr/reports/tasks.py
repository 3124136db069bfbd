"""The worker's reports job: every ``IVR_REPORTS_ROLLUP_EVERY_S`` it rolls up the
``SETTLE_DAYS`` days before today in the centre's zone (one transaction), so the rollup
holds every finished day and the last week's first-contact resolution settles as the
repeat calls come in. Idempotent: a day's rows are replaced, so several workers or a
manual ``ivr reports refresh`` at the same time only redo the work."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import Engine

from ivr.core.clock import Clock
from ivr.core.jobs import Job
from ivr.core.settings import Settings
from ivr.reports.repository import refresh
from ivr.reports.service import SETTLE_DAYS, centre_zone

log = logging.getLogger("ivr.reports")


def reports_job(engine: Engine, settings: Settings, clock: Clock) -> Job:
    zone = centre_zone(settings)

    def run() -> bool:
        now = clock.now()
        yesterday = now.astimezone(zone).date() - timedelta(days=1)
        first = yesterday - timedelta(days=SETTLE_DAYS - 1)
        with engine.begin() as conn:
            rows = refresh(conn, first, yesterday, zone, now)
        log.debug("reports: rolled up %s .. %s (%s): %d rows", first, yesterday, zone.key,
                  rows)
        return False

    return Job("reports", settings.reports_rollup_every_s, run)
