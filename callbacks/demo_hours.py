"""The demo's "open at any hour" (``IVR_DEMO_ALWAYS_OPEN``, see ``Settings.open_at_any_hour``)
for callback policies: the same policies with the centre open around the clock.

A pure function of the loaded policies, applied once where the callback service is built,
so the SLA maths and the business calendar stay as they are: the business hours become
every day 00:00-24:00 in the policy's own zone (no holidays, no special days), quiet hours
and the offer's hours are dropped, and the offer is never made for "closing soon" (the
centre does not close). Deadlines then count wall-clock time.
"""

from __future__ import annotations

from callbacks.policy import BusinessHours, Policies, Policy

EVERY_DAY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _around_the_clock(policy: Policy) -> Policy:
    hours = BusinessHours.model_validate({
        "timezone": policy.business_hours.timezone,
        "weekly": {day: ["00:00-24:00"] for day in EVERY_DAY}})
    offer = policy.offer.model_copy(update={"hours": None, "closing_within": None})
    return policy.model_copy(update={"business_hours": hours, "quiet_hours": None,
                                     "offer": offer})


def open_at_any_hour(policies: Policies) -> Policies:
    """Every queue's policy, open around the clock (the demo's switch)."""
    return Policies(_around_the_clock(policies.default),
                    {queue: _around_the_clock(p) for queue, p in policies.queues.items()})
