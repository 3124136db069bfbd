"""The interface's words in Hebrew and English (issue 17.5): the catalogs, ``text()``, the
browser's copy of them, and the check that the console has no untranslated string."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ivr.i18n import catalog, direction, language, locale_tag, text
from ivr.i18n.catalog import CatalogError, load


def test_text_in_each_language_with_parameters_and_plurals(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({
        "a.hello": {"en": "Hello {name}", "he": "שלום {name}"},
        "a.waiting": {"en": {"one": "{count} caller", "other": "{count} callers"},
                      "he": {"one": "מתקשר אחד", "two": "שני מתקשרים",
                             "other": "{count} מתקשרים"}},
        "a.only_en": {"en": "Only English"},
    }), encoding="utf-8")
    books = load(tmp_path)
    assert books.text("he", "a.hello", name="דנה") == "שלום דנה"
    assert books.text("en-US", "a.hello", name="Dana") == "Hello Dana"
    assert [books.text("he", "a.waiting", count=n) for n in (1, 2, 5)] == [
        "מתקשר אחד", "שני מתקשרים", "5 מתקשרים"]
    assert [books.text("en", "a.waiting", count=n) for n in (1, 2)] == ["1 caller", "2 callers"]
    assert books.text("he", "a.only_en") == "Only English"
    with pytest.raises(KeyError):
        books.text("he", "a.nope")
    with pytest.raises(KeyError, match="name"):
        books.text("he", "a.hello")


def test_a_duplicate_key_or_an_unknown_language_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"x.k": {"en": "A", "he": "א"}}', encoding="utf-8")
    (tmp_path / "b.json").write_text('{"x.k": {"en": "B", "he": "ב"}}', encoding="utf-8")
    with pytest.raises(CatalogError, match=r"b.json: x.k: already defined in a.json"):
        load(tmp_path)
    (tmp_path / "b.json").write_text('{"x.j": {"en": "B", "fr": "B"}}', encoding="utf-8")
    with pytest.raises(CatalogError, match="unknown language 'fr'"):
        load(tmp_path)


@pytest.mark.parametrize(("tag", "lang", "dir_", "locale"), [
    ("he", "he", "rtl", "he-IL"), ("he-IL", "he", "rtl", "he-IL"), ("iw", "he", "rtl", "he-IL"),
    ("en-US", "en", "ltr", "en-IL"), ("fr", "en", "ltr", "en-IL"), (None, "en", "ltr", "en-IL")])
def test_language_tags(tag: str | None, lang: str, dir_: str, locale: str) -> None:
    assert language(tag) == lang
    assert direction(language(tag)) == dir_
    assert locale_tag(language(tag), "IL") == locale


def test_the_installed_catalogs_load() -> None:
    assert text("he", "common.yes") == "כן"
    assert catalog().entries


def test_the_console_gets_every_language(client: TestClient) -> None:
    response = client.get("/agent/i18n/messages.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    prefix = "window.IVR_MESSAGES = "
    body = response.text
    assert body.startswith(prefix)
    payload = json.loads(body[len(prefix):].rstrip().rstrip(";"))
    assert payload["rtl"] == ["he"]
    assert payload["region"] == "IL"
    assert payload["messages"]["he"]["common.yes"] == "כן"
    assert payload["messages"]["en"]["common.yes"] == "Yes"
    again = client.get("/agent/i18n/messages.js",
                       headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
