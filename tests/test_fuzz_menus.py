"""Fuzzing the YAML loaders: the menu loader with its checks (what ``ivr menus check``
reports) and the callback policy loader.

Any text at all (random text, random data rendered as YAML, the demo files mutated: keys
dropped, types changed, keys duplicated, lines re-indented, cut or repeated) is either
loaded or refused with problems that name the file, a line and a column; nothing else
escapes. Examples are bounded and derandomized (no .hypothesis directory).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from callbacks.policy import Policies, PolicyError, load_policies
from ivr.cli import main as ivr_main
from ivr.menu.bundle import assemble
from ivr.menu.loader import LoadedMenu, Problem, load_menu_file, load_menu_text
from tests.conftest import DEMO_MENUS, ROOT

FUZZ = settings(max_examples=50, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
DEMO = {p.name: p.read_text(encoding="utf-8") for p in sorted(DEMO_MENUS.glob("*.yaml"))}
PARSED_DEMO = [(Path("menus") / n, *load_menu_text(t, Path("menus") / n)) for n, t in DEMO.items()]
POLICY = (ROOT / "callbacks.yaml").read_text(encoding="utf-8")

# ------------------------------------------------------------------------- strategies

YAML_CHARS = st.sampled_from([*":-[]{}!&*#|>'\"\n\t %@`,?=~\\", "  ", "\n  ", "---",
                             "...", "!!str", "!!python/object:os.system", "<<: *a", "&a",
                             "\ufeff", "\x00", "\x85", "\u2028", "😀", "ש"])
RANDOM_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(YAML_CHARS, st.text(max_size=5)), max_size=60).map("".join),
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                    st.floats(allow_nan=True), st.text(max_size=20),
                    st.sampled_from(["he-IL", "en-US", "main_menu", "menu", "queue",
                                     "hangup", "2026-12-31", "08:00-20:00", "15m", "1"]))
DATA = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.text(max_size=10), st.integers(0, 99)), inner, max_size=4)),
    max_leaves=25)


def dump(data: Any, style: str) -> str:
    if style == "json":
        return json.dumps(data, ensure_ascii=False, allow_nan=True)
    out = io.StringIO()
    yaml = YAML(typ="safe")
    yaml.default_flow_style = style == "flow"
    yaml.dump(data, out)
    return out.getvalue()


def _plain(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


@st.composite
def line_mutations(draw: st.DrawFn, text: str) -> str:
    """The text with a few lines dropped, repeated (a duplicate key), re-indented, swapped,
    cut short, or given a value of another type."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "repeat", "indent", "dedent", "tab", "swap", "cut",
                                   "value", "tag", "date", "junk"]))
        line = lines[i]
        if op == "drop":
            del lines[i]
        elif op == "repeat":
            lines.insert(i, line)
        elif op == "indent":
            lines[i] = " " * draw(st.integers(1, 5)) + line
        elif op == "dedent":
            lines[i] = line.lstrip()
        elif op == "tab":
            lines[i] = "\t" + line
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], line
        elif op == "cut":
            lines[i] = line[:draw(st.integers(0, len(line)))]
            del lines[i + 1:i + 1 + draw(st.integers(0, 3))]
        elif op == "date":  # a key or value YAML reads as a date that the calendar has not
            keys = [j for j, x in enumerate(lines) if re.match(r"^ *[\w-]+:", x)]
            i = draw(st.sampled_from(keys)) if keys else i
            line = lines[i]
            indent = line[:len(line) - len(line.lstrip())]
            bad = draw(st.sampled_from(["2026-13-01", "2026-02-30", "2026-01-01T25:00:00"]))
            lines[i] = draw(st.sampled_from([f"{indent}{bad}: x", f"{line.split(':')[0]}: {bad}"]))
        elif op in ("value", "tag"):
            key, sep, _ = line.partition(":")
            value = (draw(st.sampled_from(["", " [1, 2]", " {a: 1}", " 42", " -1", " 1e9",
                                           " true", " null", " ~", " \"\"", " *x", " &x y",
                                           " 2026-13-01", " |", " >-", " [", " {", " '",
                                           " 99999999999999999999999"]))
                     if op == "value" else
                     draw(st.sampled_from([" !!python/object/apply:os.system [ls]",
                                           " !!binary aGk=", " !!set {a}", " !!omap [a: 1]",
                                           " !!timestamp 2026-01-01", " !custom x",
                                           " !!int x", " !!float y"])))
            lines[i] = key + (sep or ":") + value
        else:
            lines[i] = line + draw(RANDOM_TEXT)
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))


@st.composite
def data_mutations(draw: st.DrawFn, text: str) -> str:
    """The file as data with keys dropped or values replaced (by other types, random data),
    rendered again as block YAML, flow YAML or JSON."""
    data = _plain(text)
    for _ in range(draw(st.integers(1, 4))):
        node, path = data, []
        while isinstance(node, dict | list) and node and draw(st.integers(0, 3)) > 0:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            key = draw(st.sampled_from(keys))
            path.append((node, key))
            node = node[key]
        if not path:
            continue
        parent, key = path[-1]
        if draw(st.booleans()):
            del parent[key]
        else:
            parent[key] = draw(DATA)
    return dump(data, draw(st.sampled_from(["block", "flow", "json"])))


def any_yaml(base: str) -> st.SearchStrategy[str]:
    """Mostly the demo file mutated (what an admin's mistakes look like), else anything."""
    mutated = line_mutations(base)
    return st.one_of(RANDOM_TEXT, st.builds(dump, DATA, st.sampled_from(["block", "flow",
                                                                         "json"])),
                     mutated, mutated, mutated, data_mutations(base))


# --------------------------------------------------------------------------- checking

POSITION = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): ")


def check_problems(problems: list[Problem], files: set[str], text: str | None = None) -> None:
    lines = text.count("\n") + 2 if text is not None else None
    for p in problems:
        assert p.file in files, p
        assert p.line >= 1 and p.column >= 1, p
        if lines is not None:
            assert p.line <= lines, (p, lines)
        assert p.message.strip(), p
        assert p.severity in ("error", "warning"), p
        assert POSITION.match(str(p)), str(p)


# ------------------------------------------------------------------------------ menus


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(DEMO)))
def test_menu_text_loads_or_is_refused_with_positions(tmp_path_factory: pytest.TempPathFactory,
                                                      data: st.DataObject, name: str) -> None:
    """One menu file, any text: a menu, or problems with file:line:col; then the folder is
    assembled with the other demo menus as the server and ``ivr menus check`` do."""
    text = data.draw(any_yaml(DEMO[name]), label="text")
    path = Path("menus") / name
    lm, problems = load_menu_text(text, path, str(path))
    assert (lm is None) == bool(problems), problems
    check_problems(problems, {str(path)}, text)
    if lm is not None:
        assert isinstance(lm, LoadedMenu) and lm.name
    parsed = [(path, lm, problems), *(p for p in PARSED_DEMO if p[0].name != name)]
    bundle, report = assemble(parsed, None, "main")
    files = {str(p) for p, _, _ in parsed}
    check_problems(report.problems, files)
    assert bundle is not None or report.fatal or report.refused
    if bundle is not None:
        assert "main" in bundle.menus
    json.dumps(report.as_dict())  # the admin API's answer


@settings(FUZZ, max_examples=15)
@given(data=st.data())
def test_ivr_menus_check_exits_0_or_1(tmp_path_factory: pytest.TempPathFactory,
                                      data: st.DataObject,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The command line: a mutated demo folder is checked with exit status 0 or 1 (never 3,
    an internal error), every problem printed as file:line:col."""
    folder = tmp_path_factory.mktemp("menus")
    for name, text in DEMO.items():
        (folder / name).write_text(text, encoding="utf-8")
    name = data.draw(st.sampled_from(sorted(DEMO)))
    raw = data.draw(st.one_of(any_yaml(DEMO[name]).map(lambda t: t.encode("utf-8", "replace")),
                              st.binary(max_size=100)))
    (folder / name).write_bytes(raw)
    capsys.readouterr()
    code = ivr_main(["menus", "check", str(folder)])
    out = capsys.readouterr().out.splitlines()
    assert code in (0, 1), out
    assert out and out[-1].endswith(" warning(s)"), out
    for line in out[:-1]:
        assert POSITION.match(line) or line.startswith(f"{folder}: error: "), line


def test_menu_file_loading_reads_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "main.yaml"
    path.write_bytes(b"languages: [he-IL]\nstart: \xff\xfe\n")
    lm, problems = load_menu_file(path)
    assert lm is None and [str(p) for p in problems] == [
        f"{path}:1:1: error: not UTF-8 text: invalid start byte"]


# ----------------------------------------------------------------------------- policy


def policy_yaml() -> st.SearchStrategy[str]:
    return any_yaml(POLICY)


POLICY_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): \S")


@FUZZ
@given(text=policy_yaml())
def test_policy_file_loads_or_is_refused_with_positions(
        tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    """callbacks.yaml, any text: policies, or a PolicyError whose every line is
    ``file:line:col: what``."""
    path = tmp_path_factory.mktemp("policy") / "callbacks.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        policies = load_policies(path)
    except PolicyError as exc:
        lines = str(exc).splitlines()
        assert lines, exc
        for line in lines:
            m = POLICY_LINE.match(line)
            assert m and m["file"] == str(path), line
            assert 1 <= int(m["line"]) <= text.count("\n") + 2, line
    else:
        assert isinstance(policies, Policies)
        assert policies.for_queue("billing") is not None


# ------------------------------------------------------- regressions the fuzzing found


def test_a_control_character_in_a_menu_is_refused_where_it_is() -> None:
    """ruamel's ReaderError has no mark: the problem said line 1, column 1 and went on over
    two lines ('in "<unicode string>", position 40')."""
    text = DEMO["main.yaml"].replace("start:", "start:\x08", 1)
    line = text[:text.index("\x08")].count("\n") + 1
    _, problems = load_menu_text(text, Path("menus/main.yaml"))
    assert [str(p) for p in problems] == [
        f"menus/main.yaml:{line}:7: error: invalid YAML: an invisible control character "
        "(U+0008) that YAML does not allow: delete it (retype the text around it)"]


def test_a_control_character_in_the_policy_file_is_refused_with_its_position(
        tmp_path: Path) -> None:
    """The PolicyError had no line and column and a second line of ruamel's."""
    path = tmp_path / "callbacks.yaml"
    path.write_text("default:\n  max_attempts: 3\x1b\n", encoding="utf-8")
    with pytest.raises(PolicyError) as refused:
        load_policies(path)
    assert str(refused.value) == (f"{path}:2:18: not valid YAML: an invisible control "
                                  "character (U+001B) that YAML does not allow: delete it "
                                  "(retype the text around it)")


def test_a_date_that_is_no_date_in_a_menu_is_refused_where_it_is() -> None:
    """2026-13-01 looks like a YAML timestamp and failed to construct: the ValueError
    escaped the loader (``ivr menus check`` exit 3, a reload's traceback)."""
    text = DEMO["main.yaml"].replace("start:", "x: 2026-13-01\nstart:", 1)
    line = text[:text.index("x: 2026")].count("\n") + 1
    _, problems = load_menu_text(text, Path("menus/main.yaml"))
    assert [str(p) for p in problems] == [
        f"menus/main.yaml:{line}:4: error: invalid YAML: '2026-13-01' is no date or time "
        "(month must be in 1..12)"]


def test_a_date_that_is_no_date_in_the_policy_file_has_its_position(tmp_path: Path) -> None:
    path = tmp_path / "callbacks.yaml"
    path.write_text("default:\n  business_hours:\n    special_days: {2026-02-30: closed}\n",
                    encoding="utf-8")
    with pytest.raises(PolicyError) as refused:
        load_policies(path)
    assert str(refused.value) == (f"{path}:3:20: not valid YAML: '2026-02-30' is no date "
                                  "(day is out of range for month)")
