"""Business time of a callback policy: ``ivr.core.calendar``, the one business calendar
(``callbacks.sla`` imports it from there). Kept so that the names ``callbacks.hours`` has
always had (``is_open``, ``add_business_time``, ``quiet_end`` ...) still work.
"""

from __future__ import annotations

from ivr.core.calendar import (
    SEARCH_DAYS,
    WEEKDAYS,
    Interval,
    NeverOpen,
    add_business_time,
    business_time_between,
    day_ranges,
    holiday_name,
    intervals_from,
    is_open,
    is_quiet,
    next_open,
    open_intervals,
    quiet_end,
    utc,
)

__all__ = ["SEARCH_DAYS", "WEEKDAYS", "Interval", "NeverOpen", "add_business_time",
           "business_time_between", "day_ranges", "holiday_name", "intervals_from", "is_open",
           "is_quiet", "next_open", "open_intervals", "quiet_end", "utc"]
