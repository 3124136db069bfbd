"""The callbacks job of ``ivr worker`` (every ``IVR_CALLBACK_EVERY_S``): the one dispatcher
(``ivr.agents.dispatch``: callback timers — leases, warnings, breaches — then routing with
the due callbacks in the one ordering with live calls, each claimed callback dialled after
its commit), then escalation events to ``IVR_CALLBACK_ESCALATION_URL``."""

from __future__ import annotations

import asyncio

import httpx

from callbacks.service import CallbackService
from ivr.agents.dispatch import Dispatcher
from ivr.core.jobs import Job
from ivr.core.settings import Settings


def callbacks_job(dispatcher: Dispatcher, callbacks: CallbackService, settings: Settings,
                  client: httpx.Client) -> Job:
    def run() -> bool:
        asyncio.run(dispatcher.run_once())
        callbacks.notify(client)
        return False

    return Job("callbacks", settings.callback_every_s, run)
