"""No word in the console escapes translation (issue 17.5): every key is in both catalogs
with the same placeholders; every text of console.html sits in a data-i18n element whose
English matches the catalog; every string literal of console.js that reads as words is a
catalog key or a known code string. A new English literal fails here."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ivr.i18n import LANGUAGES, catalog
from tests.js_strings import literals

STATIC = Path(__file__).resolve().parents[1] / "ivr" / "agents" / "static"
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
LETTER = re.compile(r"[^\W\d_]")
KEY = re.compile(r"(?:console|common)\.[a-z0-9_.]+")
CODE = re.compile(r"[a-z0-9_\-:/#.\[\]=*>@?&(),+^$]*")  # ids, classes, events, paths, keys
# Strings of console.js that are code, not words: add a class list or selector here.
CODE_STRINGS = frozenset({
    "use strict", "en-US", "Content-Type", "Retry-After", "DOMContentLoaded",
    "tag tier tier-", "tag warn", "banner repeat", "muted block", "promise overdue",
    "block notes", "block unresolved", "strong who", "tag role",
    "#wrapup-form [aria-invalid=true]", "#sup-callbacks td.countdown"})
TRANSLATED_ATTRIBUTES = {"placeholder": "data-i18n-placeholder", "title": "data-i18n-title",
                         "aria-label": "data-i18n-aria-label", "alt": "data-i18n-alt"}


def _placeholders(value: str | dict[str, str]) -> set[str]:
    texts = value.values() if isinstance(value, dict) else [value]
    return {name for text in texts for name in PLACEHOLDER.findall(text)}


def test_every_key_is_in_every_language_with_the_same_placeholders() -> None:
    books = catalog()
    problems = []
    for key, entry in books.entries.items():
        where = f"{books.origin[key]}: {key}"
        for lang in LANGUAGES:
            if lang not in entry:
                problems.append(f"{where}: no {lang!r} text")
        english = _placeholders(entry["en"])
        for code, value in entry.items():
            names = _placeholders(value)
            # A plural form may say its number in words ("שתי הבטחות") and leave {count} out.
            extra = names - english
            missing = english - names - ({"count"} if isinstance(value, dict) else set())
            if extra or missing:
                problems.append(f"{where}.{code}: placeholders {sorted(names)} against "
                                f"English {sorted(english)}")
    assert problems == []


class _Texts(HTMLParser):
    """Each text of the page with the element holding it, and each translatable attribute."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[tuple[int, str, dict[str, str | None], str]] = []
        self.attributes: list[tuple[int, str, str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name in TRANSLATED_ATTRIBUTES:
            if attributes.get(name):
                self.attributes.append((self.getpos()[0], tag, name, attributes))
        if tag not in {"meta", "link", "input", "br", "hr", "img"}:
            self.stack.append((tag, attributes))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if data.strip() and self.stack and self.stack[-1][0] not in {"script", "style"}:
            tag, attributes = self.stack[-1]
            self.texts.append((self.getpos()[0], tag, attributes, " ".join(data.split())))


def test_every_text_of_the_page_is_translated() -> None:
    english = catalog().messages("en")
    page = _Texts()
    page.feed((STATIC / "console.html").read_text(encoding="utf-8"))
    assert page.texts, "the scan found no text at all"
    problems = []
    for line, tag, attributes, text in page.texts:
        key = attributes.get("data-i18n")
        if key is None:
            if LETTER.search(text):
                problems.append(f"console.html:{line}: <{tag}> {text!r} has no data-i18n")
        elif english.get(key) != text:
            problems.append(f"console.html:{line}: {key} is {english.get(key)!r} in the "
                            f"catalog, {text!r} in the page")
    for line, tag, name, attributes in page.attributes:
        key = attributes.get(TRANSLATED_ATTRIBUTES[name])
        if key is None or english.get(key) != attributes[name]:
            problems.append(f"console.html:{line}: <{tag} {name}={attributes[name]!r}> needs "
                            f"{TRANSLATED_ATTRIBUTES[name]} with the catalog's English")
    assert problems == []


def untranslated(source: str) -> list[str]:
    known = catalog().entries
    problems = []
    for line, value in literals(source):
        text = value.strip()
        if KEY.fullmatch(text):
            if text not in known:
                problems.append(f"console.js:{line}: no catalog key {text!r}")
        elif (LETTER.search(text) and not CODE.fullmatch(text) and not text.isupper()
              and text not in CODE_STRINGS):
            problems.append(f"console.js:{line}: {value!r} is not translated (t(key))")
    return problems


def test_every_string_of_the_console_script_is_translated() -> None:
    source = (STATIC / "console.js").read_text(encoding="utf-8")
    assert len(literals(source)) > 200, "the scan found too few strings"
    assert untranslated(source) == []


@pytest.mark.parametrize("line", [
    'notice("Wrap-up saved.", "ok");',
    "el('p', {}, 'just now')",
    "el('p', {}, `${n} callers waiting`)",
    'x = "ממתין";',
    't("console.no_such_key")'])
def test_a_new_literal_is_caught(line: str) -> None:
    source = f"// a comment with \"words in it\"\nconst re = /\"[a-z]+'/g;\n{line}\n"
    assert len(untranslated(source)) == 1


def test_the_scanner_skips_comments_and_regular_expressions() -> None:
    source = ('/* "Not this" */ const a = 1 / 2; // "nor this"\n'
              'const b = /^(\\d{4})"x/.exec(s); const c = `a ${f("in")} b ${`n${1}`} c`;')
    assert [v for _, v in literals(source)] == ["a ", "in", " b ", "n", "", " c"]


def test_every_console_key_is_used() -> None:
    """console.json holds the words of console.html and console.js, and no others: a key
    the page no longer shows goes with it (the other scripts have catalogs of their own)."""
    used = ((STATIC / "console.js").read_text(encoding="utf-8")
            + (STATIC / "console.html").read_text(encoding="utf-8"))
    books = catalog()
    unused = [key for key, origin in books.origin.items()
              if origin == "console.json" and f'"{key}"' not in used]
    assert unused == []
