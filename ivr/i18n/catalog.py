"""The interface's words in each language the centre speaks (issue 17.5).

Catalogs are JSON files in ``ivr/i18n/catalogs/``, one a feature (``console.json``,
``reports.json``, …), each mapping a key to its text in every language::

    {"console.sign_in": {"en": "Sign in", "he": "כניסה"},
     "console.overdue": {"en": {"one": "{count} promise overdue",
                                "other": "{count} promises overdue"},
                         "he": {"one": "הבטחה אחת באיחור", "two": "שתי הבטחות באיחור",
                                "other": "{count} הבטחות באיחור"}}}

A text is a string with ``{name}`` placeholders, or plural forms chosen by the ``count``
parameter (CLDR categories: ``one``, ``two``, ``other``; ``other`` is required). The same
files are served to the console (``/agent/i18n/messages.js``), so the browser and the
server say the same thing. This module is pure: no HTTP, no database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

Language = Literal["en", "he"]
LANGUAGES: tuple[Language, ...] = ("en", "he")
#: The languages written right to left.
RTL: frozenset[str] = frozenset({"he"})
NAMES: dict[Language, str] = {"en": "English", "he": "עברית"}
CATALOG_DIR = Path(__file__).resolve().parent / "catalogs"
PLURAL_FORMS = ("zero", "one", "two", "few", "many", "other")

Text = str | dict[str, str]
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class CatalogError(ValueError):
    """A catalog file that cannot be used: names the file and the key."""


def language(value: str | None, default: Language = "en") -> Language:
    """The supported language a tag such as ``"he-IL"``, ``"HE"`` or ``None`` stands for."""
    if value:
        base = value.strip().replace("_", "-").split("-")[0].lower()
        if base == "iw":  # the old code for Hebrew
            base = "he"
        if base in LANGUAGES:
            return base
    return default


def direction(lang: str) -> Literal["rtl", "ltr"]:
    return "rtl" if language(lang) in RTL else "ltr"


def locale_tag(lang: str, region: str = "IL") -> str:
    """The BCP 47 tag for dates and numbers: the agent's language in the centre's region
    (``he-IL``, ``en-IL``: 24-hour times, day before month)."""
    return f"{language(lang)}-{region.upper()}" if region else language(lang)


def plural_category(lang: str, count: int | float) -> str:
    """The CLDR plural category of an integer ``count`` (Hebrew: one, two, other)."""
    n = abs(count)
    if language(lang) == "he":
        if n == 1:
            return "one"
        if n == 2:
            return "two"
        return "other"
    return "one" if n == 1 else "other"


@dataclass(frozen=True)
class Catalog:
    """Every key, with its text per language, merged from the catalog files."""

    entries: Mapping[str, Mapping[str, Text]]
    origin: Mapping[str, str]  # key -> the file that defines it

    def text(self, lang: str, key: str, /, **params: object) -> str:
        """The text of ``key`` in ``lang`` (English where that language lacks it), with
        ``{name}`` placeholders filled from ``params``. An unknown key raises KeyError: a
        typo fails the tests, not a manager's report in production."""
        entry = self.entries[key]
        code = language(lang)
        value = entry.get(code, entry["en"])
        if isinstance(value, dict):
            count = params.get("count")
            if not isinstance(count, int | float):
                raise KeyError(f"{key}: plural text needs a numeric count parameter")
            value = value.get(plural_category(code, count), value["other"])
        return _PLACEHOLDER.sub(lambda m: _param(params, m.group(1), key), value)

    def messages(self, lang: str) -> dict[str, Text]:
        """Every key's text in one language (English where it lacks one), for the browser."""
        code = language(lang)
        return {key: entry.get(code, entry["en"]) for key, entry in self.entries.items()}


def _param(params: Mapping[str, object], name: str, key: str) -> str:
    if name not in params:
        raise KeyError(f"{key}: missing parameter {name!r}")
    return str(params[name])


def load(directory: Path = CATALOG_DIR) -> Catalog:
    """Read and check every ``*.json`` catalog in ``directory`` (sorted by name)."""
    entries: dict[str, dict[str, Text]] = {}
    origin: dict[str, str] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CatalogError(f"{path}: not a readable JSON catalog: {exc}") from None
        if not isinstance(data, dict):
            raise CatalogError(f"{path}: expected an object of key: {{language: text}}")
        for key, entry in data.items():
            where = f"{path.name}: {key}"
            if key in origin:
                raise CatalogError(f"{where}: already defined in {origin[key]}")
            entries[key] = _checked(where, entry)
            origin[key] = path.name
    return Catalog(entries, origin)


def _checked(where: str, entry: object) -> dict[str, Text]:
    if not isinstance(entry, dict) or "en" not in entry:
        raise CatalogError(f"{where}: expected {{\"en\": ..., \"he\": ...}}")
    out: dict[str, Text] = {}
    for lang, value in entry.items():
        if lang not in LANGUAGES:
            raise CatalogError(f"{where}: unknown language {lang!r} (expected one of "
                               f"{', '.join(LANGUAGES)})")
        if isinstance(value, dict):
            if "other" not in value or not all(
                    k in PLURAL_FORMS and isinstance(v, str) for k, v in value.items()):
                raise CatalogError(f"{where}.{lang}: plural forms need 'other' and only "
                                   f"{', '.join(PLURAL_FORMS)} as strings")
            out[lang] = dict(value)
        elif isinstance(value, str):
            out[lang] = value
        else:
            raise CatalogError(f"{where}.{lang}: expected a string or plural forms")
    return out


@cache
def catalog() -> Catalog:
    """The installed catalogs, read once per process."""
    return load()


def text(lang: str, key: str, /, **params: object) -> str:
    """``text("he", "reports.title")``: the interface's words for server-rendered pages."""
    return catalog().text(lang, key, **params)
