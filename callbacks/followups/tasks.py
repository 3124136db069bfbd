"""The follow-ups job of ``ivr worker`` (every ``IVR_FOLLOWUP_EVERY_S``): the sweep
(closed incidents scheduled, due follow-ups handed to the callback queue or claimed, leases,
promise warnings and breaks), the survey calls dialled after its commit, the SMS, then the
escalation events to the callbacks' escalation webhook."""

from __future__ import annotations

import httpx

from callbacks.followups.service import FollowUpService
from ivr.core.jobs import Job
from ivr.core.settings import Settings


def followups_job(service: FollowUpService, settings: Settings, client: httpx.Client) -> Job:
    def run() -> bool:
        service.run_once(client)
        return False

    return Job("followups", settings.followup_every_s, run)
