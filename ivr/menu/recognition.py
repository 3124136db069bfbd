"""Recognition facts: what the menu knows about the caller's day (issue 17 section 3).

Pure functions of a date of birth, an instant and the centre's time zone; the call's edge
(``ivr.calls.service``) calls them with its injected clock when a call starts (and when a
caller is identified by their account number) and hands the result to the engine as
caller attributes. The engine itself never looks at a clock or a calendar for them.

* ``birthday_today``: true when the customer's date of birth falls on today's date in the
  centre's time zone (a call at 23:30 UTC on the 4th is on the 5th in Jerusalem). Someone
  born on 29 February celebrates on 28 February in other years. Absent when the customer
  is not identified or their date of birth is not known.
* ``holiday_today`` / ``holiday_eve``: the name of today's public holiday, and of
  tomorrow's (today is its eve), from the ``holidays`` package for the centre's country
  (Israel: the Hebrew-calendar holidays), one name per language of the menus:
  ``{"he-IL": "פסח", "en-US": "Pesach"}``. A prompt's ``{holiday_today}`` speaks the name in
  the language of the prompt; a condition's ``equals``/``in`` matches the name in any
  language. Absent on a day that is no holiday (eve).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays


def local_today(now: datetime, zone: str) -> date:
    """Today's date in ``zone`` (``now`` must be timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("recognition facts need a timezone-aware instant")
    return now.astimezone(ZoneInfo(zone)).date()


def is_birthday(date_of_birth: date, today: date) -> bool:
    """Month and day match; 29 February counts on 28 February in a year without it."""
    if (date_of_birth.month, date_of_birth.day) == (today.month, today.day):
        return True
    leap_day = (date_of_birth.month, date_of_birth.day) == (2, 29)
    return leap_day and (today.month, today.day) == (2, 28) and not _leap(today.year)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def birthday_facts(date_of_birth: date | str | None, today: date) -> dict[str, Any]:
    """``{"birthday_today": bool}`` for a known date of birth, else nothing."""
    if date_of_birth is None or date_of_birth == "":
        return {}
    born = date.fromisoformat(date_of_birth) if isinstance(date_of_birth, str) \
        else date_of_birth
    return {"birthday_today": is_birthday(born, today)}


def holiday_language(tag: str, supported: Iterable[str]) -> str | None:
    """The ``holidays`` language for a menu language tag (``en-US`` -> ``en_US``,
    ``he-IL`` -> ``he``), or None when the calendar has no names in that language."""
    options = tuple(supported)
    exact = tag.replace("-", "_")
    if exact in options:
        return exact
    primary = tag.split("-", maxsplit=1)[0]
    if primary in options:
        return primary
    return next((o for o in options if o.split("_", maxsplit=1)[0] == primary), None)


@lru_cache(maxsize=64)
def _calendar(country: str, subdivision: str | None, year: int,
              language: str | None) -> Mapping[date, str]:
    return dict(holidays.country_holidays(country, subdiv=subdivision, years=year,
                                          language=language))


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    return frozenset(holidays.list_supported_countries())


@lru_cache(maxsize=16)
def _languages(country: str) -> tuple[tuple[str, ...], str | None]:
    entity = holidays.country_holidays(country)
    return tuple(entity.supported_languages), entity.default_language


def holiday_names(day: date, country: str, languages: Iterable[str],
                  subdivision: str | None = None) -> dict[str, str]:
    """The public holiday on ``day`` named in each language (the calendar's own language
    for one it does not speak); empty when ``day`` is no holiday or the country has no
    calendar."""
    if country not in _countries():
        return {}
    supported, default = _languages(country)
    out: dict[str, str] = {}
    for tag in languages:
        language = holiday_language(tag, supported) or default
        name = _calendar(country, subdivision, day.year, language).get(day)
        if name is None:
            return {}
        out[tag] = name
    return out


def recognition_facts(now: datetime, zone: str, country: str, languages: Iterable[str],
                      *, date_of_birth: date | str | None = None,
                      subdivision: str | None = None) -> dict[str, Any]:
    """The recognition attributes of a call at ``now`` (see the module's docstring)."""
    today = local_today(now, zone)
    langs = tuple(languages)
    facts: dict[str, Any] = birthday_facts(date_of_birth, today)
    holiday = holiday_names(today, country, langs, subdivision)
    if holiday:
        facts["holiday_today"] = holiday
    eve = holiday_names(today + timedelta(days=1), country, langs, subdivision)
    if eve:
        facts["holiday_eve"] = eve
    return facts
