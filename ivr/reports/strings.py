"""The reports' words, through the i18n layer (``ivr/i18n/catalogs/reports.json``), and
days shown the way each language reads them. ``label`` shows a string key's text, or the
value itself when it is none (a queue's name, typed by the admin). Pure.
"""

from __future__ import annotations

from datetime import date

from ivr.i18n import catalog, direction, language, text

__all__ = ["direction", "format_day", "format_period", "label", "language", "text"]
_EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
              "Dec")
_EN_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_HE_DAYS = ("יום ב׳", "יום ג׳", "יום ד׳", "יום ה׳", "יום ו׳", "שבת", "יום א׳")


def label(lang: str, key_or_text: str, /, **params: object) -> str:
    """A string key's text, or the value itself when it is no key (a queue's name)."""
    entry = catalog().entries.get(key_or_text)
    if entry is None:
        return key_or_text
    return catalog().text(lang, key_or_text, **params)


def format_day(lang: str, day: date, *, short: bool = False) -> str:
    """English: ``Sun 6 Dec 2026`` (short ``6 Dec``); Hebrew: ``יום א׳ 6.12.2026``
    (short ``6.12``)."""
    if language(lang) == "he":
        return f"{day.day}.{day.month}" if short else \
            f"{_HE_DAYS[day.weekday()]} {day.day}.{day.month}.{day.year}"
    month = _EN_MONTHS[day.month - 1]
    return f"{day.day} {month}" if short else \
        f"{_EN_DAYS[day.weekday()]} {day.day} {month} {day.year}"


def format_period(lang: str, first: date, by: str, *, short: bool = False) -> str:
    shown = format_day(lang, first, short=short)
    return text(lang, "reports.week_of", date=shown) if by == "week" else shown
