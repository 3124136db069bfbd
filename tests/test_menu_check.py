"""The mistakes admins make in menu files, and the exact message each one gets.

Every test writes a (broken) menu into a temporary directory, loads the directory the way
the server does and compares the full ``file:line:col: severity: path: message`` lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.menu.bundle import MenuBundle, assemble, load_directory
from ivr.menu.checks import check_bundle
from ivr.menu.loader import Problem, load_menu_file, load_menu_text, parse_yaml
from ivr.menu.model import MenuNode

DEMO_MENUS = Path(__file__).resolve().parent.parent / "menus"

MENU_NODE_KEYS = (
    "description, input, invalid_prompt, max_invalid, max_no_input, no_input_prompt, "
    "on_failure, options, prompt, timeout, type"
)
NODE_TYPES = ("'menu', 'message', 'hours', 'branch', 'queue', 'transfer', 'hangup', 'submenu', "
              "'identify'")
LOOP = (
    "a caller who presses nothing (or whose transfer or queue fails) loops for ever: {}; "
    "route a failure path to a hangup, queue or transfer that ends elsewhere"
)

# A small menu with no problems at all; tests below are variations of it.
GOOD = """\
languages: [en-US]
default_language: en-US
start: main
fallback: bye
nodes:
  main:
    type: menu
    prompt:
      say: {en-US: "Press 1 to leave."}
    options:
      "1": {next: bye}
  bye:
    type: hangup
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def check(tmp_path: Path, text: str, name: str = "menu.yaml") -> tuple[Path, list[str]]:
    """Load a directory holding just this menu; every problem, as printed."""
    path = write(tmp_path, name, text)
    _bundle, report = load_directory(tmp_path, entry=path.stem)
    return path, [str(p) for p in report.problems]


def test_good_menu_has_no_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "menu.yaml", GOOD)
    bundle, report = load_directory(tmp_path, "menu")
    assert report.problems == []
    assert report.fatal is None
    assert report.loaded == ["menu"]
    assert bundle is not None
    assert set(bundle.menus) == {"menu"}
    assert bundle.menus["menu"].path == path


def test_problem_str_format() -> None:
    assert str(Problem("m.yaml", 3, 7, "nodes.a", "bad")) == "m.yaml:3:7: error: nodes.a: bad"
    assert str(Problem("m.yaml", 3, 7, "", "bad", "warning")) == "m.yaml:3:7: warning: bad"


# ---------------------------------------------------------------- YAML itself


def test_yaml_syntax_error_bad_indentation(tmp_path: Path) -> None:
    path = write(tmp_path, "menu.yaml", """\
languages: [en-US]
default_language: en-US
start: main
fallback: bye
nodes:
  main:
    type: menu
     prompt:
      say: {en-US: "Press 1."}
""")
    lm, problems = load_menu_file(path)
    assert lm is None
    assert [str(p) for p in problems] == [
        f"{path}:8:6: error: invalid YAML: line 8 is indented more than the line above it: "
        "`prompt` belongs under `main` (line 6), indented 4 spaces like `type` on line 7",
    ]


def test_yaml_syntax_error_unclosed_flow_sequence(tmp_path: Path) -> None:
    path, problems = check(tmp_path, "languages: [en-US\ndefault_language: en-US\n")
    assert problems == [
        f"{path}:1:12: error: invalid YAML: `[` opened on line 1 is never closed: end the "
        "list with `]`",
    ]


def test_yaml_tab_indentation(tmp_path: Path) -> None:
    path, problems = check(tmp_path, "nodes:\n  main:\n\ttype: menu\n")
    assert problems == [
        f"{path}:3:1: error: invalid YAML: a tab character: indent with spaces",
    ]


def test_yaml_unterminated_quote(tmp_path: Path) -> None:
    path, problems = check(tmp_path, "start: 'main\n")
    assert problems == [
        f"{path}:1:8: error: invalid YAML: `'` opened on line 1 is never closed: end the text "
        "with `'`",
    ]


def test_duplicate_option_key(tmp_path: Path) -> None:
    path, problems = check(tmp_path, """\
languages: [en-US]
default_language: en-US
start: main
fallback: bye
nodes:
  main:
    type: menu
    prompt:
      say: {en-US: "Press 1 to leave."}
    options:
      "1": {next: bye}
      "1": {next: main}
  bye:
    type: hangup
""")
    assert problems == [
        f"{path}:12:7: error: duplicate key '1': each key may appear only once in a mapping "
        f"(first defined on line 11)",
    ]


def test_duplicate_unquoted_option_key(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace('"1": {next: bye}',
                                                  "2: {next: bye}\n      2: {next: main}"))
    assert problems == [
        f"{path}:12:7: error: duplicate key '2': each key may appear only once in a mapping "
        f"(first defined on line 11)",
    ]


def test_duplicate_node_name(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD + "  main:\n    type: hangup\n")
    assert problems == [
        f"{path}:14:3: error: duplicate key 'main': each key may appear only once in a "
        f"mapping (first defined on line 6)",
    ]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just text\n"])
def test_file_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path, problems = check(tmp_path, text)
    assert problems == [
        f"{path}:1:1: error: expected a menu: a mapping with languages, start, fallback "
        f"and nodes",
    ]


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "menu.yaml"
    path.write_bytes(GOOD.encode("utf-8") + b"# caf\xe9\n")
    _bundle, report = load_directory(tmp_path, "menu")
    assert [str(p) for p in report.problems] == [
        f"{path}:1:1: error: not UTF-8 text: invalid continuation byte",
    ]


def test_parse_yaml_keeps_positions() -> None:
    data, pos, problems = parse_yaml(GOOD, "m.yaml")
    assert problems == []
    assert data["nodes"]["main"]["options"] == {"1": {"next": "bye"}}
    assert pos.of(("nodes", "main", "type")) == (7, 11)
    assert pos.of(("nodes", "main", "type"), key=True) == (7, 5)
    assert pos.of(("nodes", "main", "options", "1", "next")) == (11, 19)
    # A path that is not in the document: the nearest ancestor that is.
    assert pos.of(("nodes", "main", "no_such_key")) == (6, 3)
    assert pos.of(("nothing",)) == (1, 1)


def test_unquoted_integer_option_keys_are_text(tmp_path: Path) -> None:
    lm, problems = load_menu_text(
        GOOD.replace('"1": {next: bye}', "1: {next: bye}\n      0: {next: main}"),
        tmp_path / "menu.yaml")
    assert problems == []
    assert lm is not None
    node = lm.menu.nodes["main"]
    assert isinstance(node, MenuNode)
    assert list(node.options) == ["1", "0"]


# ---------------------------------------------------------------- schema mistakes


def test_unknown_key_typo(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace("type: menu\n", "type: menu\n    timout: 5\n"))
    assert problems == [
        f"{path}:8:5: error: nodes.main.timout: unknown key 'timout'; expected one of: "
        f"{MENU_NODE_KEYS}",
    ]


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path, problems = check(tmp_path, "fallbak: bye\n" + GOOD)
    assert problems == [
        f"{path}:1:1: error: fallbak: unknown key 'fallbak'; expected one of: caller_time, "
        f"default_language, description, fallback, languages, name, nodes, schedules, start, "
        f"timezone, voices",
    ]


def test_bad_value_type_for_timeout(tmp_path: Path) -> None:
    path, problems = check(tmp_path,
                           GOOD.replace("type: menu\n", "type: menu\n    timeout: five\n"))
    assert problems == [
        f"{path}:8:14: error: nodes.main.timeout: expected a whole number, got 'five'",
    ]


def test_bad_value_type_list_expected(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace("languages: [en-US]", "languages: en-US"))
    assert problems == [f"{path}:1:12: error: languages: expected a list, got 'en-US'"]


def test_bad_value_type_mapping_expected(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace('"1": {next: bye}', "- 1"))
    assert problems == [
        f"{path}:11:7: error: nodes.main.options: expected a mapping (key: value lines), "
        f"got [1]",
    ]


@pytest.mark.parametrize(("value", "message"), [
    ("0", "input should be greater than or equal to 1, got 0"),
    ("61", "input should be less than or equal to 60, got 61"),
    ("-5", "input should be greater than or equal to 1, got -5"),
])
def test_gather_timeout_out_of_range(tmp_path: Path, value: str, message: str) -> None:
    path, problems = check(tmp_path,
                           GOOD.replace("type: menu\n", f"type: menu\n    timeout: {value}\n"))
    assert problems == [f"{path}:8:14: error: nodes.main.timeout: {message}"]


@pytest.mark.parametrize("value", ["1", "60"])
def test_gather_timeout_limits_are_allowed(tmp_path: Path, value: str) -> None:
    _path, problems = check(tmp_path,
                            GOOD.replace("type: menu\n", f"type: menu\n    timeout: {value}\n"))
    assert problems == []


def test_limits_on_retries(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace(
        "type: menu\n", "type: menu\n    max_no_input: 0\n    max_invalid: 11\n"))
    assert problems == [
        f"{path}:8:19: error: nodes.main.max_no_input: input should be greater than or equal "
        f"to 1, got 0",
        f"{path}:9:18: error: nodes.main.max_invalid: input should be less than or equal to "
        f"10, got 11",
    ]


def test_unknown_node_type(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace("type: hangup", "type: hangups"))
    assert problems == [
        f"{path}:13:11: error: nodes.bye.type: unknown node type 'hangups'; expected one of: "
        f"{NODE_TYPES}",
    ]


def test_node_without_type(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace("type: hangup", "typ: hangup"))
    assert problems == [
        f"{path}:13:5: error: nodes.bye: a node needs a 'type' (menu, message, hours, branch, "
        f"queue, transfer, hangup, submenu, identify)",
    ]


def test_missing_required_top_level_key(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace("start: main\n", ""))
    assert problems == [f"{path}:1:1: error: start: required key is missing"]


def test_missing_required_node_key(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace(
        '    prompt:\n      say: {en-US: "Press 1 to leave."}\n', ""))
    assert problems == [f"{path}:6:3: error: nodes.main.prompt: required key is missing"]


def test_several_schema_problems_sorted_by_line(tmp_path: Path) -> None:
    path, problems = check(tmp_path, """\
languages: [en-US]
default_language: en-US
start: main
fallback: bye
nodes:
  main:
    type: menu
    timeout: 61
    prompt:
      say: {en-US: "Press 1 to leave."}
    options:
      "1": {next: bye}
  bye:
    type: queue
    queu: sales
""")
    assert problems == [
        f"{path}:8:14: error: nodes.main.timeout: input should be less than or equal to 60, "
        f"got 61",
        f"{path}:15:5: error: nodes.bye.queu: unknown key 'queu'; expected one of: "
        f"description, on_failure, priority, prompt, queue, type",
    ]


def test_bad_option_key(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace('"1": {next: bye}',
                                                  '"1": {next: bye}\n      "1a": {next: bye}'))
    assert problems == [
        f"{path}:12:13: error: nodes.main.options.1a: '1a' is not valid here (expected to "
        f"match ^[0-9*#]{{1,8}}$)",
    ]


def test_bad_input_kind(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace("type: menu\n",
                                                  "type: menu\n    input: [dtmf, voice]\n"))
    assert problems == [
        f"{path}:8:19: error: nodes.main.input.1: expected one of 'dtmf' or 'speech', "
        f"got 'voice'",
    ]


def test_prompt_with_both_say_and_play(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace(
        "type: hangup", 'type: hangup\n    prompt: {say: {en-US: Bye}, play: "https://x.test/a.mp3"}'))
    assert problems == [
        f"{path}:14:13: error: nodes.bye.prompt: a prompt needs exactly one of 'say' or 'play'",
    ]


@pytest.mark.parametrize("targets", ["", '\n    number: "+97231234567"\n    sip: "sip:a@b.test"'])
def test_transfer_needs_exactly_one_target(tmp_path: Path, targets: str) -> None:
    path, problems = check(tmp_path, GOOD.replace("type: hangup", "type: transfer" + targets))
    assert problems == [
        f"{path}:13:5: error: nodes.bye: a transfer needs exactly one of: number, sip, client",
    ]


def test_condition_needs_exactly_one_operator(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace("type: hangup", """\
type: branch
    branches:
      - when: {attribute: tier, equals: gold, exists: true}
        next: main
    default: main"""))
    assert problems == [
        f"{path}:15:15: error: nodes.bye.branches.0.when: a condition needs exactly one of: "
        f"equals, in, exists, at_least, at_most",
    ]


def test_queue_name_too_long(tmp_path: Path) -> None:
    path, problems = check(tmp_path,
                           GOOD.replace("type: hangup", "type: queue\n    queue: " + "q" * 65))
    assert problems == [
        f"{path}:14:12: error: nodes.bye.queue: String should have at most 64 characters",
    ]


def test_queue_name_of_64_is_fine(tmp_path: Path) -> None:
    _path, problems = check(tmp_path, GOOD.replace("{next: bye}", "{next: q}")
                            + "  q:\n    type: queue\n    queue: " + "q" * 64
                            + "\n    on_failure: bye\n")
    assert problems == []


# ---------------------------------------------------------------- schedules

SCHEDULED = """\
languages: [en-US]
default_language: en-US
start: hours
fallback: bye
schedules:
  office:
    timezone: {zone}
    weekly:
      sun: [{sunday}]
      mon: ["08:00-18:00"]
nodes:
  hours:
    type: hours
    schedule: office
    open: bye
    closed: bye
  bye:
    type: hangup
"""


def test_schedule_is_fine(tmp_path: Path) -> None:
    _path, problems = check(tmp_path, SCHEDULED.format(zone="Asia/Jerusalem",
                                                       sunday="'08:00-24:00'"))
    assert problems == []


def test_time_range_that_crosses_midnight(tmp_path: Path) -> None:
    path, problems = check(tmp_path, SCHEDULED.format(zone="Asia/Jerusalem",
                                                      sunday="'18:00-08:00'"))
    assert problems == [
        f"{path}:9:13: error: schedules.office.weekly.sun.0: range '18:00-08:00' ends before it "
        f"starts; split ranges that cross midnight",
    ]


@pytest.mark.parametrize(("sunday", "message"), [
    ("'8-18'", "expected a time range like '08:00-17:30', got '8-18'"),
    ("'08:00-24:30'", "a range can end at 24:00 at the latest"),
    ("'09:00-09:00'", "range '09:00-09:00' ends before it starts; split ranges that cross "
                      "midnight"),
])
def test_bad_time_ranges(tmp_path: Path, sunday: str, message: str) -> None:
    path, problems = check(tmp_path, SCHEDULED.format(zone="Asia/Jerusalem", sunday=sunday))
    assert problems == [f"{path}:9:13: error: schedules.office.weekly.sun.0: {message}"]


def test_special_day_with_a_reversed_range(tmp_path: Path) -> None:
    path, problems = check(tmp_path, SCHEDULED.format(
        zone="Asia/Jerusalem", sunday="'08:00-18:00'").replace("    weekly:\n", """\
    special_days:
      2026-09-21: ["10:00-09:00"]
      2026-09-22: closed
    weekly:
"""))
    assert problems == [
        f"{path}:9:20: error: schedules.office.special_days.2026-09-21.0: range '10:00-09:00' "
        f"ends before it "
        f"starts; split ranges that cross midnight",
    ]


def test_special_day_with_an_unknown_word(tmp_path: Path) -> None:
    path, problems = check(tmp_path, SCHEDULED.format(
        zone="Asia/Jerusalem", sunday="'08:00-18:00'").replace("    weekly:\n", """\
    special_days:
      2026-09-21: shut
    weekly:
"""))
    assert problems == [
        f"{path}:9:19: error: schedules.office.special_days.2026-09-21: expected 'closed', "
        f"'holiday' or a list of time ranges, got 'shut'",
    ]


def test_bad_range_on_a_later_day_points_at_its_line(tmp_path: Path) -> None:
    path, problems = check(tmp_path, SCHEDULED.format(
        zone="Asia/Jerusalem", sunday="'08:00-18:00'").replace(
            "    weekly:\n", "    weekly:\n      sat: ['08:00-12:00', '14:00-13:00']\n"))
    assert problems == [
        f"{path}:9:28: error: schedules.office.weekly.sat.1: range '14:00-13:00' ends before "
        f"it starts; split ranges that cross midnight",
    ]


def test_unknown_timezone(tmp_path: Path) -> None:
    path, problems = check(tmp_path, SCHEDULED.format(zone="Asia/Jerusalm",
                                                      sunday="'08:00-18:00'"))
    assert problems == [
        f"{path}:7:15: error: schedules.office.timezone: unknown time zone 'Asia/Jerusalm' "
        f"(expected e.g. 'Asia/Jerusalem')",
    ]


def test_unknown_weekday_holiday_country_and_reversed_closure(tmp_path: Path) -> None:
    path, problems = check(tmp_path, SCHEDULED.format(
        zone="Asia/Jerusalem", sunday="'08:00-18:00'").replace("    weekly:\n", """\
    holidays: {country: XX}
    closures:
      - {start: 2026-01-02T10:00:00, end: 2026-01-02T09:00:00}
    weekly:
      funday: ["08:00-09:00"]
"""))
    assert problems == [
        f"{path}:8:15: error: schedules.office.holidays: no public holiday calendar for "
        f"country 'XX'",
        f"{path}:10:9: error: schedules.office.closures.0: a closure must end after it starts",
        f"{path}:12:15: error: schedules.office.weekly.funday: expected one of 'sun', 'mon', "
        f"'tue', 'wed', 'thu', 'fri' or 'sat', got 'funday'",
    ]


def test_unknown_schedule_with_suggestion(tmp_path: Path) -> None:
    path, problems = check(tmp_path, SCHEDULED.format(
        zone="Asia/Jerusalem", sunday="'08:00-18:00'").replace("schedule: office",
                                                               "schedule: ofice"))
    assert problems == [
        f"{path}:14:15: error: nodes.hours.schedule: unknown schedule 'ofice'; did you mean "
        f"'office'?",
    ]


def test_unknown_schedule_without_any_schedules(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace('{next: bye}', "{next: hours}") + """\
  hours:
    type: hours
    schedule: office
    open: main
    closed: bye
""")
    assert problems == [f"{path}:16:15: error: nodes.hours.schedule: unknown schedule 'office'"]


# ---------------------------------------------------------------- references


def test_reference_to_missing_node_with_suggestion(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace("{next: bye}", "{next: by}"))
    assert problems == [
        f"{path}:11:19: error: nodes.main.options.1.next: unknown node 'by'; did you mean "
        f"'bye'?",
    ]


def test_reference_to_missing_node_without_suggestion(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace("{next: bye}", "{next: operator}"))
    assert problems == [
        f"{path}:11:19: error: nodes.main.options.1.next: unknown node 'operator'",
    ]


def test_missing_start_and_fallback(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace("start: main", "start: mian").replace(
        "fallback: bye", "fallback: goodbye"))
    errors = [
        f"{path}:3:8: error: start: unknown node 'mian'; did you mean 'main'?",
        f"{path}:4:11: error: fallback: unknown node 'goodbye'; did you mean 'bye'?",
    ]
    # A refused file reports its errors only ...
    assert problems == errors
    # ... though the checks also see that nothing is reached from a start and fallback
    # that do not exist.
    lm, _ = load_menu_file(path)
    assert lm is not None
    assert [str(p) for p in check_bundle({"menu": lm})] == [
        *errors,
        f"{path}:6:3: warning: nodes.main: no caller can reach this node",
        f"{path}:12:3: warning: nodes.bye: no caller can reach this node",
    ]


def test_missing_references_in_every_node_kind(tmp_path: Path) -> None:
    path, problems = check(tmp_path, """\
languages: [en-US]
default_language: en-US
start: main
fallback: bye
schedules:
  office:
    weekly: {sun: ["08:00-18:00"]}
nodes:
  main:
    type: menu
    prompt: {say: {en-US: "Press 1."}}
    options:
      "1": {next: hours}
      "2": {next: route}
      "3": {next: msg}
      "4": {next: call}
    on_failure: nowhere1
  hours:
    type: hours
    schedule: office
    open: nowhere2
    closed: bye
    holiday: nowhere3
    emergency: nowhere4
  route:
    type: branch
    branches:
      - when: {attribute: tier, exists: true}
        next: nowhere5
    default: nowhere6
  msg:
    type: message
    prompt: {say: {en-US: "Hi."}}
    next: nowhere7
  call:
    type: transfer
    client: agent_1
    on_failure: nowhere8
  bye:
    type: hangup
""")
    assert problems == [
        f"{path}:17:17: error: nodes.main.on_failure: unknown node 'nowhere1'",
        f"{path}:21:11: error: nodes.hours.open: unknown node 'nowhere2'",
        f"{path}:23:14: error: nodes.hours.holiday: unknown node 'nowhere3'",
        f"{path}:24:16: error: nodes.hours.emergency: unknown node 'nowhere4'",
        f"{path}:29:15: error: nodes.route.branches.0.next: unknown node 'nowhere5'",
        f"{path}:30:14: error: nodes.route.default: unknown node 'nowhere6'",
        f"{path}:34:11: error: nodes.msg.next: unknown node 'nowhere7'",
        f"{path}:38:17: error: nodes.call.on_failure: unknown node 'nowhere8'",
    ]


SUPPORT = """\
languages: [en-US]
default_language: en-US
start: support_queue
fallback: goodbye
nodes:
  support_queue:
    type: queue
    queue: support
    on_failure: goodbye
  goodbye:
    type: hangup
"""

MAIN_WITH_SUBMENU = """\
languages: [en-US]
default_language: en-US
start: main
fallback: bye
nodes:
  main:
    type: menu
    prompt: {say: {en-US: "Press 1 for support."}}
    options:
      "1": {next: support}
  support:
    type: submenu
    menu: support
  bye:
    type: hangup
"""


def test_submenu_across_files(tmp_path: Path) -> None:
    write(tmp_path, "support.yaml", SUPPORT)
    write(tmp_path, "main.yaml", MAIN_WITH_SUBMENU)
    bundle, report = load_directory(tmp_path, "main")
    assert report.problems == []
    assert report.loaded == ["main", "support"]
    assert bundle is not None


def test_unknown_submenu_with_suggestion(tmp_path: Path) -> None:
    write(tmp_path, "support.yaml", SUPPORT)
    path = write(tmp_path, "main.yaml", MAIN_WITH_SUBMENU.replace("menu: support",
                                                                  "menu: suport"))
    bundle, report = load_directory(tmp_path, "main")
    assert [str(p) for p in report.problems] == [
        f"{path}:13:11: error: nodes.support.menu: unknown menu 'suport'; did you mean "
        f"'support'?",
    ]
    assert bundle is None
    assert report.fatal == "entry menu 'main' is not loaded: main.yaml has errors"


def test_unknown_submenu_without_suggestion(tmp_path: Path) -> None:
    path, problems = check(tmp_path, MAIN_WITH_SUBMENU.replace("menu: support",
                                                               "menu: billing"), "main.yaml")
    assert problems == [f"{path}:13:11: error: nodes.support.menu: unknown menu 'billing'"]


def test_submenu_that_does_not_speak_the_language(tmp_path: Path) -> None:
    write(tmp_path, "support.yaml", SUPPORT)
    path = write(tmp_path, "main.yaml", MAIN_WITH_SUBMENU.replace(
        "languages: [en-US]", "languages: [en-US, he-IL]").replace(
        '{en-US: "Press 1 for support."}', '{en-US: "Press 1 for support.", he-IL: "הקישו 1"}'))
    _bundle, report = load_directory(tmp_path, "main")
    assert [str(p) for p in report.problems] == [
        f"{path}:13:11: error: nodes.support.menu: menu 'support' does not speak he-IL",
    ]


def test_two_files_with_the_same_menu_name(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", "name: shared\n" + GOOD)
    second = write(tmp_path, "b.yaml", "name: shared\n" + GOOD)
    bundle, report = load_directory(tmp_path, "shared")
    assert [str(p) for p in report.problems] == [
        f"{second}:1:1: error: name: menu name 'shared' is already used by {first}",
    ]
    assert bundle is not None
    assert bundle.menus["shared"].path == first


# ---------------------------------------------------------------- graph


def test_unreachable_node_is_only_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "menu.yaml", GOOD + "  orphan:\n    type: hangup\n")
    bundle, report = load_directory(tmp_path, "menu")
    assert [str(p) for p in report.problems] == [
        f"{path}:14:3: warning: nodes.orphan: no caller can reach this node",
    ]
    assert report.refused == {}
    assert report.loaded == ["menu"]
    assert bundle is not None
    assert "orphan" in bundle.menus["menu"].menu.nodes


def test_node_reached_only_from_fallback_is_reachable(tmp_path: Path) -> None:
    _path, problems = check(tmp_path, GOOD.replace("fallback: bye", "fallback: sorry") + """\
  sorry:
    type: hangup
""")
    assert problems == []


def test_menu_whose_failure_returns_to_itself(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace('"1": {next: bye}',
                                                  '"1": {next: bye}\n    on_failure: main'))
    assert problems == [f"{path}:6:3: error: nodes.main: {LOOP.format('main -> main')}"]


def test_menu_without_on_failure_whose_fallback_is_itself(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace("fallback: bye", "fallback: main"))
    assert problems == [f"{path}:6:3: error: nodes.main: {LOOP.format('main -> main')}"]


def test_queue_and_menu_failing_into_each_other(tmp_path: Path) -> None:
    path, problems = check(tmp_path, """\
languages: [en-US]
default_language: en-US
start: main
fallback: bye
nodes:
  main:
    type: menu
    prompt: {say: {en-US: "Press 1 for sales."}}
    options:
      "1": {next: sales}
    on_failure: bye
  sales:
    type: queue
    queue: sales
    on_failure: sorry
  sorry:
    type: menu
    prompt: {say: {en-US: "Sales is busy. Press 1 to hang up."}}
    options:
      "1": {next: bye}
    on_failure: sales
  bye:
    type: hangup
""")
    assert problems == [
        f"{path}:12:3: error: nodes.sales: {LOOP.format('sales -> sorry -> sales')}",
    ]


def test_message_loop(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace("{next: bye}", "{next: a}") + """\
  a:
    type: message
    prompt: {say: {en-US: "A."}}
    next: b
  b:
    type: message
    prompt: {say: {en-US: "B."}}
    next: a
""")
    assert problems == [f"{path}:14:3: error: nodes.a: {LOOP.format('a -> b -> a')}"]


def test_loop_through_a_submenu(tmp_path: Path) -> None:
    support = write(tmp_path, "support.yaml", """\
languages: [en-US]
default_language: en-US
start: back
fallback: back
nodes:
  back:
    type: submenu
    menu: main
""")
    path = write(tmp_path, "main.yaml", MAIN_WITH_SUBMENU.replace("start: main",
                                                                  "start: support"))
    _bundle, report = load_directory(tmp_path, "main")
    assert [str(p) for p in report.problems] == [
        f"{path}:11:3: error: nodes.support: "
        f"{LOOP.format('support -> support:back -> support')}",
        # With main refused, support's way back is not checked (once, not as a mistake).
        f"{support}:8:11: error: nodes.back.menu: not checked against main.yaml, which has "
        "errors (see above)",
    ]


def test_transfer_failing_to_a_hangup_is_no_loop(tmp_path: Path) -> None:
    _path, problems = check(tmp_path, GOOD.replace("{next: bye}", "{next: call}") + """\
  call:
    type: transfer
    number: "+97231234567"
    on_failure: main
""")
    assert problems == []  # main's own failure path (the fallback) hangs up


# ---------------------------------------------------------------- languages and voices

TWO_LANGUAGES = """\
languages: [he-IL, en-US]
default_language: he-IL
voices:
  he-IL: Google.he-IL-Standard-A
  en-US: Polly.Joanna
start: main
fallback: bye
nodes:
  main:
    type: menu
    prompt:
      say:
        he-IL: "להמשך הקישו 1."
        en-US: "Press 1 to go on."
    options:
      "1": {next: bye}
  bye:
    type: hangup
"""


def test_two_languages_fine(tmp_path: Path) -> None:
    _path, problems = check(tmp_path, TWO_LANGUAGES)
    assert problems == []


def test_prompt_missing_text_for_a_language(tmp_path: Path) -> None:
    path, problems = check(tmp_path, TWO_LANGUAGES.replace('        en-US: "Press 1 to go on."\n',
                                                           ""))
    assert problems == [
        f"{path}:13:9: error: nodes.main.prompt.say: no say text for en-US, one of the menu's "
        f"languages",
    ]


def test_no_input_and_invalid_prompts_are_checked_too(tmp_path: Path) -> None:
    path, problems = check(tmp_path, TWO_LANGUAGES.replace("    options:\n", """\
    no_input_prompt: {say: {he-IL: "לא שמענו."}}
    invalid_prompt: {play: {en-US: "https://x.test/invalid.mp3"}}
    options:
"""))
    assert problems == [
        f"{path}:15:28: error: nodes.main.no_input_prompt.say: no say text for en-US, one of "
        f"the menu's languages",
        f"{path}:16:28: error: nodes.main.invalid_prompt.play: no play text for he-IL, one of "
        f"the menu's languages",
    ]


def test_prompt_text_for_an_undeclared_language(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace('{en-US: "Press 1 to leave."}',
                                                  '{en-US: "Press 1 to leave.", fr-FR: "Un."}'))
    assert problems == [
        f"{path}:9:41: warning: nodes.main.prompt.say.fr-FR: fr-FR is not one of the menu's "
        f"languages ['en-US']",
    ]


def test_default_language_not_declared(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace("default_language: en-US",
                                                  "default_language: he-IL"))
    assert problems == [
        f"{path}:2:19: error: default_language: 'he-IL' is not one of the menu's languages "
        f"['en-US']",
    ]


def test_voice_that_cannot_speak_hebrew(tmp_path: Path) -> None:
    path, problems = check(tmp_path, TWO_LANGUAGES.replace("he-IL: Google.he-IL-Standard-A",
                                                           "he-IL: Polly.Joanna"))
    assert problems == [
        f"{path}:4:10: error: voices.he-IL: voice 'Polly.Joanna' cannot speak he-IL "
        f"(it speaks en-US)",
    ]


def test_google_voice_for_the_wrong_language(tmp_path: Path) -> None:
    path, problems = check(tmp_path, TWO_LANGUAGES.replace("en-US: Polly.Joanna",
                                                           "en-US: Google.he-IL-Wavenet-B"))
    assert problems == [
        f"{path}:5:10: error: voices.en-US: voice 'Google.he-IL-Wavenet-B' cannot speak en-US "
        f"(it speaks he-IL)",
    ]


def test_unknown_voice_is_a_warning(tmp_path: Path) -> None:
    path, problems = check(tmp_path, TWO_LANGUAGES.replace("Polly.Joanna", "Polly.Nobody"))
    assert problems == [
        f"{path}:5:10: warning: voices.en-US: unknown voice 'Polly.Nobody': cannot check that "
        f"it speaks en-US",
    ]


def test_voice_for_an_undeclared_language(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace("start:", "voices: {de-DE: Polly.Hans}\nstart:"))
    assert problems == [
        f"{path}:3:10: warning: voices.de-DE: voice for 'de-DE', which is not one of the "
        f"menu's languages ['en-US']",
    ]


def test_say_text_over_4096_characters(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace('"Press 1 to leave."', "x" * 4097))
    assert problems == [
        f"{path}:9:20: error: nodes.main.prompt.say.en-US: text is 4097 characters; Twilio's "
        f"<Say> takes at most 4096",
    ]


def test_say_text_of_exactly_4096_characters(tmp_path: Path) -> None:
    _path, problems = check(tmp_path, GOOD.replace('"Press 1 to leave."', "x" * 4096))
    assert problems == []


def test_option_language_not_declared(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace('"1": {next: bye}',
                                                  '"1": {next: bye, language: fr-FR}'))
    assert problems == [
        f"{path}:11:34: error: nodes.main.options.1.language: 'fr-FR' is not one of the "
        f"menu's languages ['en-US']",
    ]


# ---------------------------------------------------------------- options and speech

SPEECH_MENU = """\
languages: [en-US]
default_language: en-US
start: main
fallback: bye
nodes:
  main:
    type: menu
    input: [dtmf, speech]
    prompt: {say: {en-US: "Say billing or support."}}
    options:
      "1": {next: bye, speech: {en-US: [billing, payment]}}
      "2": {next: bye, speech: {en-US: [support, "  Billing "]}}
  bye:
    type: hangup
"""


def test_duplicate_speech_phrase_across_options(tmp_path: Path) -> None:
    path, problems = check(tmp_path, SPEECH_MENU)
    assert problems == [
        f"{path}:12:40: error: nodes.main.options.2.speech.en-US: phrase '  Billing ' is also "
        f"option '1'",
    ]


def test_same_phrase_in_different_languages_is_fine(tmp_path: Path) -> None:
    _path, problems = check(tmp_path, SPEECH_MENU.replace(
        "languages: [en-US]", "languages: [en-US, en-GB]").replace(
        '{en-US: "Say billing or support."}',
        '{en-US: "Say billing or support.", en-GB: "Say billing or support."}').replace(
        '{en-US: [support, "  Billing "]}', '{en-US: [support], en-GB: [billing]}').replace(
        "{en-US: [billing, payment]}", "{en-US: [billing, payment], en-GB: [payment]}"))
    assert problems == []


def test_speech_menu_option_without_phrases_warns(tmp_path: Path) -> None:
    path, problems = check(tmp_path, SPEECH_MENU.replace(
        '"2": {next: bye, speech: {en-US: [support, "  Billing "]}}', '"2": {next: bye}'))
    assert problems == [
        f"{path}:12:7: warning: nodes.main.options.2: menu takes speech but this option has no "
        f"speech phrases; callers can only press the key",
    ]


def test_option_that_is_a_prefix_of_another_warns(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace('"1": {next: bye}',
                                                  '"1": {next: bye}\n      "12": {next: bye}'))
    assert problems == [
        f"{path}:10:5: warning: nodes.main.options: option '1' is a prefix of a longer option; "
        f"callers must end the longer one with '#'",
    ]


def test_options_of_different_lengths_without_prefix_are_fine(tmp_path: Path) -> None:
    _path, problems = check(tmp_path, GOOD.replace('"1": {next: bye}',
                                                   '"1": {next: bye}\n      "20": {next: bye}'))
    assert problems == []


# ---------------------------------------------------------------- check_bundle directly


def test_check_bundle_on_unchecked_text(tmp_path: Path) -> None:
    lm, problems = load_menu_text(GOOD.replace("{next: bye}", "{next: by}"),
                                  tmp_path / "menu.yaml", display="menu.yaml")
    assert problems == []
    assert lm is not None
    # load_menu_text's display name is for its own problems; checks name lm.path.
    assert [str(p) for p in check_bundle({"menu": lm})] == [
        f"{tmp_path / 'menu.yaml'}:11:19: error: nodes.main.options.1.next: unknown node 'by'; "
        f"did you mean 'bye'?",
    ]


def test_display_name_in_load_problems(tmp_path: Path) -> None:
    _lm, problems = load_menu_text("start: [\n", tmp_path / "menu.yaml", display="menus/x.yaml")
    assert [str(p) for p in problems] == [
        "menus/x.yaml:1:8: error: invalid YAML: `[` opened on line 1 is never closed: end the "
        "list with `]`",
    ]


# ---------------------------------------------------------------- reloading a directory

BROKEN_SUPPORT = SUPPORT.replace("    type: hangup\n", "    type: hangup\n    promt: Bye\n")


def test_demo_menus_load_without_problems() -> None:
    bundle, report = load_directory(DEMO_MENUS, "main")
    shown = report.as_dict()
    assert shown.pop("caller_time")  # the demo's costs (tests/test_menu_cost.py)
    assert shown == {"loaded": ["main", "support"], "kept_previous": [],
                     "refused": {}, "warnings": [], "fatal": None}
    assert bundle is not None
    assert set(bundle.menus) == {"main", "support"}
    assert len(bundle.version) == 16


def test_missing_directory(tmp_path: Path) -> None:
    bundle, report = load_directory(tmp_path / "nope", "main")
    assert bundle is None
    assert report.fatal == f"menu directory {tmp_path / 'nope'} does not exist"


def test_hidden_and_other_files_are_ignored(tmp_path: Path) -> None:
    write(tmp_path, "menu.yaml", GOOD)
    write(tmp_path, ".menu.yaml.swp", "not: [yaml")
    write(tmp_path, "notes.txt", "not: [yaml")
    write(tmp_path, "other.yml", GOOD)
    bundle, report = load_directory(tmp_path, "menu")
    assert report.problems == []
    assert bundle is not None
    assert set(bundle.menus) == {"menu", "other"}


def _good_directory(tmp_path: Path) -> tuple[MenuBundle, Path, Path]:
    main = write(tmp_path, "main.yaml", MAIN_WITH_SUBMENU)
    support = write(tmp_path, "support.yaml", SUPPORT)
    bundle, report = load_directory(tmp_path, "main")
    assert report.problems == []
    assert bundle is not None
    return bundle, main, support


def test_broken_file_keeps_its_previous_good_version(tmp_path: Path) -> None:
    first, _main, support = _good_directory(tmp_path)
    support.write_text(BROKEN_SUPPORT, encoding="utf-8")

    bundle, report = load_directory(tmp_path, "main", previous=first)

    shown = report.as_dict()
    assert shown.pop("caller_time")
    assert shown == {
        "loaded": ["main"],
        "kept_previous": ["support"],
        "refused": {str(support): [
            f"{support}:12:5: error: nodes.goodbye.promt: unknown key 'promt'; expected one "
            f"of: description, prompt, type"]},
        "warnings": [],
        "fatal": None,
    }
    assert bundle is not None
    assert bundle.menus["support"] is first.menus["support"]
    assert bundle.menus["support"].text == SUPPORT
    assert bundle.version == first.version  # nothing that is live has changed


def test_semantically_broken_file_keeps_its_previous_version(tmp_path: Path) -> None:
    first, _main, support = _good_directory(tmp_path)
    support.write_text(SUPPORT.replace("on_failure: goodbye", "on_failure: goodby"),
                       encoding="utf-8")

    bundle, report = load_directory(tmp_path, "main", previous=first)

    assert report.kept_previous == ["support"]
    assert [str(p) for p in report.problems] == [
        f"{support}:9:17: error: nodes.support_queue.on_failure: unknown node 'goodby'; did "
        f"you mean 'goodbye'?",
    ]
    assert bundle is not None
    assert bundle.menus["support"] is first.menus["support"]


def test_other_files_update_while_a_broken_one_is_kept(tmp_path: Path) -> None:
    first, main, support = _good_directory(tmp_path)
    support.write_text(BROKEN_SUPPORT, encoding="utf-8")
    new_main = MAIN_WITH_SUBMENU.replace("Press 1 for support.", "Press 1 for tech support.")
    main.write_text(new_main, encoding="utf-8")

    bundle, report = load_directory(tmp_path, "main", previous=first)

    assert report.loaded == ["main"]
    assert report.kept_previous == ["support"]
    assert list(report.refused) == [str(support)]
    assert bundle is not None
    assert bundle.menus["main"].text == new_main
    assert bundle.menus["support"] is first.menus["support"]
    assert bundle.version != first.version


def test_fixed_file_replaces_the_kept_version(tmp_path: Path) -> None:
    first, _main, support = _good_directory(tmp_path)
    support.write_text(BROKEN_SUPPORT, encoding="utf-8")
    second, _ = load_directory(tmp_path, "main", previous=first)
    assert second is not None
    fixed = SUPPORT.replace("queue: support\n", "queue: support-2\n")
    support.write_text(fixed, encoding="utf-8")

    third, report = load_directory(tmp_path, "main", previous=second)

    assert report.problems == []
    assert report.kept_previous == []
    assert report.loaded == ["main", "support"]
    assert third is not None
    assert third.menus["support"].text == fixed


def test_broken_file_without_previous_version_is_refused(tmp_path: Path) -> None:
    main = write(tmp_path, "main.yaml", MAIN_WITH_SUBMENU)
    support = write(tmp_path, "support.yaml", BROKEN_SUPPORT)

    bundle, report = load_directory(tmp_path, "main")

    # Without support, main's sub-menu cannot be checked: main is refused too, and says why.
    assert [str(p) for p in report.problems] == [
        f"{main}:13:11: error: nodes.support.menu: not checked against support.yaml, which "
        "has errors (see below)",
        f"{support}:12:5: error: nodes.goodbye.promt: unknown key 'promt'; expected one of: "
        f"description, prompt, type",
    ]
    assert bundle is None
    assert report.fatal == "entry menu 'main' is not loaded: main.yaml has errors"


def test_new_broken_file_does_not_disturb_the_others(tmp_path: Path) -> None:
    first, _main, _support = _good_directory(tmp_path)
    extra = write(tmp_path, "extra.yaml", "languages: [en-US\n")

    bundle, report = load_directory(tmp_path, "main", previous=first)

    assert report.loaded == ["main", "support"]
    assert report.kept_previous == []
    assert list(report.refused) == [str(extra)]
    assert bundle is not None
    assert set(bundle.menus) == {"main", "support"}
    assert bundle.version == first.version


def test_warnings_do_not_refuse_a_file(tmp_path: Path) -> None:
    first, _main, support = _good_directory(tmp_path)
    support.write_text(SUPPORT + "  orphan:\n    type: hangup\n", encoding="utf-8")

    bundle, report = load_directory(tmp_path, "main", previous=first)

    assert report.refused == {}
    assert report.kept_previous == []
    assert [str(p) for p in report.warnings] == [
        f"{support}:12:3: warning: nodes.orphan: no caller can reach this node",
    ]
    assert bundle is not None
    assert "orphan" in bundle.menus["support"].menu.nodes


def test_assemble_with_parsed_input(tmp_path: Path) -> None:
    good_path = tmp_path / "main.yaml"
    bad_path = tmp_path / "support.yaml"
    good, good_problems = load_menu_text(GOOD, good_path)
    bad, bad_problems = load_menu_text("start: [\n", bad_path)
    assert bad is None
    bundle, report = assemble([(good_path, good, good_problems), (bad_path, bad, bad_problems)],
                              None, "main")
    assert bundle is not None
    assert report.loaded == ["main"]
    assert report.refused == {str(bad_path): bad_problems}


def test_entry_menu_missing(tmp_path: Path) -> None:
    write(tmp_path, "menu.yaml", GOOD)
    bundle, report = load_directory(tmp_path, "main")
    assert bundle is None
    assert report.fatal == "entry menu 'main' is not loaded (menus available: menu)"


# ---------------------------------------------------------------- regressions


QUEUE_NODE = """\
languages: [en-US]
default_language: en-US
start: q
fallback: bye
nodes:
  q:
    type: queue
    queue: sales
    timout: 5
  bye:
    type: hangup
"""


def test_error_inside_a_queue_node_points_at_its_own_key(tmp_path: Path) -> None:
    # The node type "queue" is also a key of the queue node: the path must not follow it.
    path, problems = check(tmp_path, QUEUE_NODE)
    assert problems == [f"{path}:9:5: error: nodes.q.timout: unknown key 'timout'; expected "
                        "one of: description, on_failure, priority, prompt, queue, type"]
    path, problems = check(tmp_path, QUEUE_NODE.replace("timout: 5", "on_failure: 5"))
    assert problems == [f"{path}:9:17: error: nodes.q.on_failure: expected text, got 5"]


def test_option_1_and_quoted_1_are_one_key(tmp_path: Path) -> None:
    path, problems = check(tmp_path, GOOD.replace(
        '      "1": {next: bye}\n', '      1: {next: bye}\n      "1": {next: main}\n'))
    assert problems == [f'{path}:12:7: error: duplicate key \'1\': 1 and "1" are the same key; '
                        "each key may appear only once in a mapping"]


def test_leading_zero_option_keys_keep_what_the_admin_typed(tmp_path: Path) -> None:
    path = write(tmp_path, "menu.yaml", GOOD.replace(
        '      "1": {next: bye}\n', '      01: {next: bye}\n      010: {next: main}\n'))
    bundle, report = load_directory(tmp_path, "menu")
    assert bundle is not None, report.problems
    node = bundle.menus["menu"].menu.nodes["main"]
    assert isinstance(node, MenuNode)
    assert sorted(node.options) == ["01", "010"]
    assert path.exists()


def test_broken_file_named_differently_keeps_its_previous_version(tmp_path: Path) -> None:
    write(tmp_path, "main.yaml", MAIN_WITH_SUBMENU.replace("menu: support", "menu: tech"))
    write(tmp_path, "support.yaml", "name: tech\n" + SUPPORT)
    first, report = load_directory(tmp_path, "main")
    assert first is not None, report.problems
    write(tmp_path, "support.yaml", "name: tech\nlanguages: [\n")
    second, report = load_directory(tmp_path, "main", previous=first)
    assert second is not None, report.fatal
    assert report.kept_previous == ["tech"]
    assert second.menus["tech"] is first.menus["tech"]
    assert list(report.refused) == [str(tmp_path / "support.yaml")]


def test_a_chain_of_submenus_that_loses_its_end_changes_nothing(tmp_path: Path) -> None:
    def link(target: str) -> str:
        return ("languages: [en-US]\ndefault_language: en-US\nstart: go\nfallback: go\n"
                f"nodes:\n  go: {{type: submenu, menu: {target}}}\n")

    for name, target in (("main", "a"), ("a", "b"), ("b", "c"), ("c", "gone")):
        write(tmp_path, f"{name}.yaml", link(target))
    write(tmp_path, "gone.yaml", GOOD)
    first, report = load_directory(tmp_path, "main")
    assert first is not None, report.problems
    (tmp_path / "gone.yaml").unlink()
    second, report = load_directory(tmp_path, "main", previous=first)
    # Nothing consistent can be served without `gone`: the live bundle stays as it was.
    assert second is None
    assert report.fatal == "entry menu 'main' is not loaded: main.yaml has errors"
    assert report.kept_previous == []
    assert sorted(report.refused) == [str(tmp_path / f"{n}.yaml") for n in "abc"] + [
        str(tmp_path / "main.yaml")]


def test_submenu_entering_at_a_node_that_does_not_exist(tmp_path: Path) -> None:
    write(tmp_path, "support.yaml", SUPPORT)
    path = write(tmp_path, "main.yaml", MAIN_WITH_SUBMENU.replace(
        "menu: support", "menu: support\n    node: nowhere"))
    _bundle, report = load_directory(tmp_path, "main")
    assert [str(p) for p in report.problems] == [
        f"{path}:14:11: error: nodes.support.node: menu 'support' has no node 'nowhere'"]


def test_prompt_placeholders_are_checked(tmp_path: Path) -> None:
    text = GOOD.replace('"Press 1 to leave."',
                        '"At {open_incident_opened_at:date} {tier} {x y}"')
    path, problems = check(tmp_path, text)
    where = f"{path}:9:20: error: nodes.main.prompt.say.en-US: placeholder "
    assert problems == [
        where + "'{open_incident_opened_at:date}': expected {attribute} or {attribute:time}",
        where + "'{x y}': expected {attribute} or {attribute:time}",
    ]


def test_prompt_placeholder_of_an_unknown_attribute_is_an_error(tmp_path: Path) -> None:
    text = GOOD.replace('"Press 1 to leave."', '"You have {open_incident} faults"')
    path, problems = check(tmp_path, text)
    assert problems == [
        f"{path}:9:20: error: nodes.main.prompt.say.en-US: placeholder '{{open_incident}}': "
        "unknown caller attribute 'open_incident'; did you mean 'open_incidents'?"]


def test_menu_time_zone_is_checked(tmp_path: Path) -> None:
    path, problems = check(tmp_path, "timezone: Mars/Olympus\n" + GOOD)
    assert problems == [f"{path}:1:11: error: timezone: unknown time zone 'Mars/Olympus' "
                        "(expected e.g. 'Asia/Jerusalem')"]


# ------------------------------------------- an admin's first mistake (issue 14 item 7)


def test_a_duplicate_key_names_the_line_where_it_was_first_written(tmp_path: Path) -> None:
    """Not the line where its mapping starts (ruamel's mark), which named option 1's line."""
    path, problems = check(tmp_path, GOOD.replace(
        '      "1": {next: bye}\n',
        '      "1": {next: bye}\n      "2": {next: main}\n      "2": {next: bye}\n'))
    assert problems == [f"{path}:13:7: error: duplicate key '2': each key may appear only once "
                        "in a mapping (first defined on line 12)"]


def test_a_kept_version_s_warnings_are_not_the_file_s(tmp_path: Path) -> None:
    """support.yaml refused, its last good version live: that version's warnings (with its
    line numbers) are not reported as the file's, only the file's own errors."""
    write(tmp_path, "main.yaml", MAIN_WITH_SUBMENU)
    support = write(tmp_path, "support.yaml", SUPPORT + "  orphan:\n    type: hangup\n")
    first, report = load_directory(tmp_path, "main")
    assert first is not None and [p.severity for p in report.problems] == ["warning"]
    support.write_text(BROKEN_SUPPORT, encoding="utf-8")
    _bundle, report = load_directory(tmp_path, "main", previous=first)
    assert report.kept_previous == ["support"]
    assert [str(p) for p in report.problems] == [
        f"{support}:12:5: error: nodes.goodbye.promt: unknown key 'promt'; expected one of: "
        "description, prompt, type"]


def test_a_menu_refers_to_a_broken_one_once_however_often(tmp_path: Path) -> None:
    """Two sub-menu nodes lead to the broken menu: one line, at the first of them."""
    write(tmp_path, "support.yaml", "languages: [en-US\n")
    main = write(tmp_path, "main.yaml", MAIN_WITH_SUBMENU + "  again:\n    type: submenu\n"
                 "    menu: support\n")
    _bundle, report = load_directory(tmp_path, "main")
    assert [str(p) for p in report.problems if p.file == str(main)] == [
        f"{main}:13:11: error: nodes.support.menu: not checked against support.yaml, which has "
        "errors (see below)"]
    assert report.problems[0].cause == str(tmp_path / "support.yaml")
    assert report.fatal == "entry menu 'main' is not loaded: main.yaml has errors"
    assert report.fatal_cause == str(main)
