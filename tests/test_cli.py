"""The ``ivr`` command as an admin uses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivr.cli import main
from ivr.menu.model import menu_json_schema
from tests.conftest import DEMO_MENUS

BROKEN = """\
languages: [he-IL]
default_language: he-IL
start: welcome
fallback: bye
nodes:
  welcome:
    type: menu
    timout: 5
    prompt: {say: {he-IL: "שלום"}}
    options:
      "1": {next: by}
  bye:
    type: hangup
"""


def test_demo_menus_check_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["menus", "check", str(DEMO_MENUS)]) == 0
    out = capsys.readouterr().out.splitlines()
    # The demo sets a caller_time budget: the table of what the menu costs comes first.
    assert out[0] == ("Seconds of speech before each queue, transfer and hang-up (shortest "
                      "key path):")
    assert "  main en-US:  10.5 s before queue 'billing' at billing [1]  (budget 30 s)" in out
    assert out[-1].endswith(" checked: 0 error(s), 0 warning(s)")


def test_broken_menu_exits_1_with_file_line_column(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "main.yaml"
    f.write_text(BROKEN, encoding="utf-8")
    assert main(["menus", "check", str(f)]) == 1
    assert capsys.readouterr().out == (
        f"{f}:8:5: error: nodes.welcome.timout: unknown key 'timout'; expected one of: "
        "description, input, invalid_prompt, max_invalid, max_no_input, no_input_prompt, "
        "on_failure, options, prompt, timeout, type\n"
        "1 file(s) checked: 1 error(s), 0 warning(s)\n")
    f.write_text(BROKEN.replace("    timout: 5\n", ""), encoding="utf-8")
    assert main(["menus", "check", str(f)]) == 1
    assert capsys.readouterr().out == (
        f"{f}:10:19: error: nodes.welcome.options.1.next: unknown node 'by'; "
        "did you mean 'bye'?\n"
        "1 file(s) checked: 1 error(s), 0 warning(s)\n")


def test_warnings_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "main.yaml"
    f.write_text(BROKEN.replace("    timout: 5\n", "").replace("next: by}", "next: bye}")
                 + "  orphan:\n    type: hangup\n", encoding="utf-8")
    assert main(["menus", "check", str(f)]) == 0
    assert capsys.readouterr().out == (
        f"{f}:13:3: warning: nodes.orphan: no caller can reach this node\n"
        "1 file(s) checked: 0 error(s), 1 warning(s)\n")


def test_missing_path_is_a_user_error(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["menus", "check", str(tmp_path / "nope")]) == 1
    assert "no such file or directory" in capsys.readouterr().err


def test_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["menus", "frobnicate"])
    assert exc.value.code == 2


def test_committed_json_schema_matches_the_models() -> None:
    committed = json.loads((DEMO_MENUS / "menu.schema.json").read_text(encoding="utf-8"))
    assert committed == menu_json_schema(), "run: ivr menus schema -o menus/menu.schema.json"
