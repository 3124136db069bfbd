"""ivr.core.yamlfile, the one YAML kit of the admin's files: what it refuses, where and how
it says so (``file:line:col: a.b: message``), and the plain data and positions it gives."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ivr.core import yamlfile
from ivr.core.yamlfile import Positions, YamlError, load_yaml, read_text


def refused(text: str, **kw: Any) -> YamlError:
    with pytest.raises(YamlError) as err:
        load_yaml(text, "conf.yaml", **kw)
    return err.value


# ------------------------------------------------------------------------------- tags


@pytest.mark.parametrize(("text", "expected"), [
    ('run: !!python/object/apply:os.system ["echo hi"]\n',
     "conf.yaml:1:6: run: YAML tag '!!python/object/apply:os.system' is not allowed: "
     "this file holds plain text, numbers, lists and mappings"),
    ("a:\n  b:\n    - 1\n    - !custom x\n",
     "conf.yaml:4:7: a.b.1: YAML tag '!custom' is not allowed: this file holds plain text, "
     "numbers, lists and mappings"),
    ("a: !!python/name:os.system\n",
     "conf.yaml:1:4: a: YAML tag '!!python/name:os.system' is not allowed: this file holds "
     "plain text, numbers, lists and mappings"),
    ("a: !!str {b: 1}\n",  # !!str passes on text only
     "conf.yaml:1:4: a: YAML tag '!!str' is not allowed: this file holds plain text, "
     "numbers, lists and mappings"),
    ("a: 1\n!local b: 2\n",  # a key's own tag
     "conf.yaml:2:1: b: YAML tag '!local' is not allowed: this file holds plain text, "
     "numbers, lists and mappings"),
], ids=["python-apply", "local-tag-in-a-list", "python-name", "str-on-a-mapping", "key"])
def test_a_value_with_a_tag_of_its_own_is_refused(text: str, expected: str) -> None:
    err = refused(text)
    assert str(err) == expected
    assert err.kind == "tag"


def test_the_tag_refusal_names_the_file_kind_and_where_the_key_is() -> None:
    err = refused("queue:\n  deadline: !!python/object/apply:os.system [ls]\n",
                  holds="a policy")
    assert str(err) == ("conf.yaml:2:13: queue.deadline: YAML tag "
                        "'!!python/object/apply:os.system' is not allowed: a policy holds "
                        "plain text, numbers, lists and mappings")
    assert (err.line, err.column, err.key_at) == (2, 13, (2, 3))
    assert err.path == ("queue", "deadline") and err.problem == "!!python/object/apply:os.system"


def test_tags_yaml_resolves_itself_leave_plain_values() -> None:
    loaded = load_yaml("a: !!str 3\nb: !!int 5\nc: !!float 1\nd: !!map {e: !!seq [1]}\n"
                       "f: !!timestamp 2026-01-01\n", "conf.yaml")
    assert loaded.data == {"a": "3", "b": 5, "c": 1.0, "d": {"e": [1]},
                           "f": date(2026, 1, 1)}
    assert type(loaded.data["a"]) is str and type(loaded.data["c"]) is float


# ----------------------------------------------------------------------- duplicate keys


def test_a_duplicate_key_is_refused_where_it_is_repeated() -> None:
    err = refused("name: a\nnodes:\n  main: 1\n  bye: 2\n  main: 3\n")
    assert str(err) == ("conf.yaml:5:3: duplicate key 'main': each key may appear only once "
                        "in a mapping (first defined on line 3)")
    assert (err.kind, err.key, err.first_line) == ("duplicate", "main", 3)
    assert err.problem == ("duplicate key 'main': each key may appear only once in a mapping "
                           "(first defined on line 3)")
    assert err.parser == 'found duplicate key "main" with value "3" (original value: "1")'


def test_keys_the_loader_reads_as_one_are_a_duplicate() -> None:
    err = refused('options:\n  1: a\n  "1": b\n', keys=str)
    assert str(err) == ("conf.yaml:3:3: options.1: duplicate key '1': two keys read as one; "
                        "each key may appear only once in a mapping")
    assert err.kind == "same_key"
    assert load_yaml('options:\n  1: a\n  "1": b\n', "conf.yaml").data == {
        "options": {1: "a", "1": "b"}}  # without the loader's reading: two keys


# -------------------------------------------------------------------- anchors, aliases

BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(c)}: &{chr(c)} [{', '.join(['*' + chr(c - 1)] * 9)}]\n" for c in range(98, 108))


def test_an_alias_bomb_is_refused_before_anything_is_expanded() -> None:
    began = time.perf_counter()
    err = refused(BILLION_LAUGHS)
    assert time.perf_counter() - began < 2  # 9**11 strings had it been expanded
    assert str(err) == ("conf.yaml:1:4: a: YAML anchor '&a' is not allowed: write the value "
                        "out where it is used (anchors, aliases and merge keys are refused)")
    assert (err.kind, err.problem) == ("anchor", "a")


@pytest.mark.parametrize(("text", "where"), [
    ("base: &b {x: 1}\nother:\n  <<: *b\n", "conf.yaml:1:7: base: YAML anchor '&b'"),
    ("list:\n  - 1\n  - &one 2\n  - *one\n", "conf.yaml:3:5: list.1: YAML anchor '&one'"),
    ("&k key: 1\n", "conf.yaml:1:1: key: YAML anchor '&k'"),
    ("&top {a: 1}\n", "conf.yaml:1:1: YAML anchor '&top'"),
], ids=["merge-key", "list-item", "on-a-key", "the-document"])
def test_every_anchor_is_refused(text: str, where: str) -> None:
    assert str(refused(text)).startswith(f"{where} is not allowed: ")


def test_an_alias_to_no_anchor_is_a_syntax_error() -> None:
    assert str(refused("a: *nowhere\n")) == (
        "conf.yaml:1:4: not valid YAML: a text or key that starts with `*` must be in quotes "
        "(\"*...\"): YAML reads `*` there as an alias")


# ------------------------------------------------------------------------- not YAML


@pytest.mark.parametrize(("text", "expected", "context", "parser"), [
    ("a: [1, 2\nb: 3\n",
     "conf.yaml:1:4: not valid YAML: `[` opened on line 1 is never closed: end the list with "
     "`]`", "while parsing a flow sequence", "expected ',' or ']', but got ':'"),
    ("a:\n  b: 1\n   c: 2\n",
     "conf.yaml:3:4: not valid YAML: line 3 is indented more than the line above it: `c` "
     "belongs under `a` (line 1), indented 2 spaces like `b` on line 2",
     None, "mapping values are not allowed here"),
    ("a: 'open\n",
     "conf.yaml:1:4: not valid YAML: `'` opened on line 1 is never closed: end the text with "
     "`'`", "while scanning a quoted scalar", "found unexpected end of stream"),
    ("a: 1\n---\nb: 2\n",
     "conf.yaml:2:1: not valid YAML: `---` starts a second document, but the file holds one: "
     "remove this line (or what follows it)", "expected a single document in the stream",
     "but found another document"),
], ids=["flow", "indentation", "quote", "two-documents"])
def test_a_syntax_error_is_refused_where_it_is_to_be_changed(
        text: str, expected: str, context: str | None, parser: str) -> None:
    """Explained at the line to change; the parser's own words are kept apart."""
    err = refused(text)
    assert str(err) == expected
    assert (err.kind, err.context, err.parser) == ("syntax", context, parser)
    assert err.problem == expected.split(": not valid YAML: ", 1)[1]


def test_a_control_character_is_refused_where_it_is() -> None:
    err = refused("a: 1\nb: x\x08\n")
    assert str(err) == ("conf.yaml:2:5: not valid YAML: an invisible control character "
                        "(U+0008) that YAML does not allow: delete it (retype the text around "
                        "it)")
    assert err.what == "unacceptable character #x0008: special characters are not allowed"


@pytest.mark.parametrize(("text", "expected"), [
    ("days:\n  2026-13-01: closed\n",
     "conf.yaml:2:3: not valid YAML: '2026-13-01' is no date or time (month must be in 1..12)"),
    ("at: 2026-01-01T25:00:00\n",
     "conf.yaml:1:5: not valid YAML: '2026-01-01T25:00:00' is no date or time (hour must be "
     "in 0..23)"),
])
def test_a_date_the_calendar_has_not_is_refused_where_it_is(text: str, expected: str) -> None:
    err = refused(text)
    assert str(err) == expected and err.kind == "date"


# ------------------------------------------------------------------ data and positions


def test_plain_data_with_the_position_of_every_key_and_value() -> None:
    loaded = load_yaml("name: x\nnodes:\n  main:\n    type: menu\n    options: [1, {a: b}]\n"
                       "ratio: 0.5\nwhen: 2026-12-31\n", "conf.yaml")
    assert loaded.data == {"name": "x", "nodes": {"main": {"type": "menu", "options": [
        1, {"a": "b"}]}}, "ratio": 0.5, "when": date(2026, 12, 31)}
    assert type(loaded.data) is dict and type(loaded.data["nodes"]["main"]["options"]) is list
    pos = loaded.positions
    assert pos.of(("nodes", "main", "type")) == (4, 11)
    assert pos.of(("nodes", "main", "type"), key=True) == (4, 5)
    assert pos.keys[("nodes", "main", "options", 1)] == (5, 18)
    assert pos.of(("nodes", "main", "options", 1, "a")) == (5, 22)
    assert pos.of(("nodes", "main", "nothing")) == (3, 3)  # the nearest ancestor
    assert pos.of(("nothing",)) == (1, 1)


def test_an_empty_document_is_none() -> None:
    assert load_yaml("# a comment only\n", "conf.yaml").data is None
    assert load_yaml("", "conf.yaml").positions == Positions()


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "conf.yaml"
    path.write_bytes(b"a: caf\xe9\n")
    with pytest.raises(YamlError) as err:
        read_text(path)
    assert str(err.value) == f"{path}:1:1: not UTF-8 text: invalid continuation byte"
    with pytest.raises(YamlError) as err:
        read_text(tmp_path / "nowhere.yaml", "shown.yaml")
    assert str(err.value) == "shown.yaml:1:1: cannot read: No such file or directory"
    assert (err.value.kind, err.value.problem) == ("unreadable", "No such file or directory")


def test_a_text_read_again_the_same_way_is_not_parsed_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []
    parse = yamlfile._parse

    def counting(text: str, *args: Any) -> Any:
        parsed.append(text)
        return parse(text, *args)

    monkeypatch.setattr(yamlfile, "_parse", counting)
    text = "greeting: hello  # read twice\nsteps: [1, 2]\n"
    first = load_yaml(text, "menus/twice.yaml")
    again = load_yaml(text, "menus/twice.yaml")
    assert parsed == [text]
    assert again.data == first.data == {"greeting": "hello", "steps": [1, 2]}
    assert again.positions == first.positions
    # Each caller has an answer of its own: changing one changes no later one.
    again.data["steps"].append(3)
    again.positions.values.clear()
    third = load_yaml(text, "menus/twice.yaml")
    assert third.data == {"greeting": "hello", "steps": [1, 2]}
    assert third.positions.of(("steps", 1)) == (2, 12)
    assert parsed == [text]
    # Another file name, another way of reading keys, or changed text: parsed again.
    load_yaml(text, "menus/other.yaml")
    load_yaml(text, "menus/twice.yaml", keys=str)
    load_yaml(text + "more: 1\n", "menus/twice.yaml")
    assert len(parsed) == 4


def test_a_refused_text_is_refused_each_time_it_is_read() -> None:
    text = "a: 1\na: 2\n"
    for _ in range(2):
        with pytest.raises(YamlError, match="duplicate key 'a'"):
            load_yaml(text, "menus/dup.yaml")
