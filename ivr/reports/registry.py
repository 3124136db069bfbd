"""Every report, in the order the page shows them. A feature adds its report here: one
``Report`` whose ``build(conn, request)`` returns tables and charts (``ivr.reports.model``);
the page, ``ivr reports <name>`` and its ``--csv`` / ``--json`` come with it."""

from __future__ import annotations

from ivr.reports import leaving, service
from ivr.reports.model import Report

REPORTS: tuple[Report, ...] = (
    Report("queues", "reports.queues.title", service.queue_report,
           help="per queue and day/week: calls, abandonment, waits, service level, "
                "callbacks, first-contact resolution, repeat callers, CSAT, follow-ups",
           options=("queue",)),
    Report("agents", "reports.agents.title", service.agent_report,
           help="per agent and day/week: answered, waits, callbacks, first-contact "
                "resolution, repeat callers, CSAT, follow-ups"),
    Report("leaving", "reports.leaving.title", leaving.build,
           help="exit interviews: leaving reasons by tier, segment, tenure, branch and "
                "month; the retention queues' saved rate; the customers at risk now"),
)


def find(name: str) -> Report | None:
    return next((r for r in REPORTS if r.name == name), None)
