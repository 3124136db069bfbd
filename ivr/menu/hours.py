"""Opening hours of a menu schedule: ``ivr.core.calendar``, the one business calendar (the
engine imports it from there). Kept so that ``ivr.menu.hours.hours_status`` and
``holiday_name`` still name what they always did.
"""

from __future__ import annotations

from ivr.core.calendar import WEEKDAYS, Outcome, holiday_name, hours_status

__all__ = ["WEEKDAYS", "Outcome", "holiday_name", "hours_status"]
