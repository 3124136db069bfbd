"""The callback policy file (callbacks.policy): the demo file, overrides per queue, and
mistakes refused with ``file:line:col: key.path: what was expected`` (exact messages)."""

from __future__ import annotations

from datetime import date, time, timedelta
from pathlib import Path

import pytest

from callbacks.policy import (
    DEFAULT_FILE,
    PolicyError,
    QuietHours,
    TimeRange,
    load_policies,
    parse_duration,
)

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
default:
  business_hours:
    weekly:
      sun: ["08:00-20:00"]
      fri: ["08:00-13:00"]
    holidays: {country: IL}
    special_days:
      2026-12-31: ["08:00-12:00"]
      2026-12-30: closed
  quiet_hours: "21:00-08:00"
  deadline: {premium: 15m, standard: 2h, default: 2h}
queues:
  billing:
    deadline: {standard: 4h}
    retry_backoff: [5m]
  night-desk:
    business_hours:
      timezone: Europe/London
      weekly: {sat: ["00:00-24:00"]}
    quiet_hours: null
    max_attempts: 6
    warn_at: 0.5
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_the_demo_file() -> None:
    assert str(DEFAULT_FILE) == "callbacks.yaml"
    policies = load_policies(ROOT / DEFAULT_FILE)
    default = policies.default
    hours = default.business_hours
    assert hours.timezone == "Asia/Jerusalem" and hours.holidays is not None
    assert sorted(hours.weekly) == ["fri", "mon", "sun", "thu", "tue", "wed"]
    assert default.quiet_hours == QuietHours(start=time(21), end=time(8))
    assert default.deadline_for("premium") == timedelta(minutes=15)
    assert default.deadline_for("standard") == timedelta(hours=2)
    assert default.deadline_for(None) == timedelta(hours=2)
    assert default.scheduled_horizon == timedelta(days=7)
    assert (default.max_attempts, default.warn_at) == (3, 0.8)
    assert default.retry_backoff == [timedelta(minutes=m) for m in (2, 10, 30)]
    assert policies.for_queue("billing").deadline_for("standard") == timedelta(hours=4)
    assert policies.for_queue("billing").deadline_for("premium") == timedelta(minutes=15)
    assert policies.for_queue("retention").max_attempts == 5
    assert policies.for_queue("support") is default
    assert policies.for_queue(None) is default


def test_queue_overrides_name_only_what_differs(tmp_path: Path) -> None:
    policies = load_policies(write(tmp_path / "callbacks.yaml", GOOD))
    default = policies.default
    assert default.business_hours.special_days == {
        date(2026, 12, 30): "closed",
        date(2026, 12, 31): [TimeRange(start=time(8), end=time(12))]}
    billing = policies.for_queue("billing")
    # deadline entries replace the default's tier by tier; other keys replace whole.
    assert billing.deadline == {"premium": timedelta(minutes=15),
                                "standard": timedelta(hours=4), "default": timedelta(hours=2)}
    assert billing.retry_backoff == [timedelta(minutes=5)]
    assert billing.business_hours == default.business_hours
    assert billing.quiet_hours == default.quiet_hours
    night = policies.for_queue("night-desk")
    assert night.business_hours.timezone == "Europe/London"
    assert night.quiet_hours is None  # null: no quiet hours for this queue
    assert (night.max_attempts, night.warn_at) == (6, 0.5)
    assert night.deadline == default.deadline
    assert default.max_attempts == 3  # the default is untouched


@pytest.mark.parametrize(("text", "expected"), [
    ("15m", timedelta(minutes=15)),
    ("2h", timedelta(hours=2)),
    ("1h30m", timedelta(minutes=90)),
    ("7d", timedelta(days=7)),
    ("90s", timedelta(seconds=90)),
    ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
])
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(("quiet", "inside", "outside"), [
    ("21:00-08:00", [time(21), time(23, 59), time(0), time(7, 59)], [time(8), time(20, 59)]),
    ("13:00-14:00", [time(13), time(13, 59)], [time(12, 59), time(14)]),
    ("22:00-24:00", [time(22), time(23, 59)], [time(0), time(21, 59)]),
])
def test_quiet_hours_may_cross_midnight(tmp_path: Path, quiet: str, inside: list[time],
                                        outside: list[time]) -> None:
    path = write(tmp_path / "c.yaml", GOOD.replace('"21:00-08:00"', f'"{quiet}"'))
    hours = load_policies(path).default.quiet_hours
    assert hours is not None
    assert all(hours.covers(t) for t in inside)
    assert not any(hours.covers(t) for t in outside)


def _refused(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path / "callbacks.yaml", text)
    with pytest.raises(PolicyError) as err:
        load_policies(path)
    return str(err.value).replace(str(path), "F").splitlines()


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("  quiet_hours:", "  quiet_houres:",
     "F:10:3: default.quiet_houres: unknown key 'quiet_houres'; expected one of: "
     "business_hours, deadline, fallback_handle_time, max_attempts, offer, quiet_hours, "
     "retry_backoff, scheduled_horizon, scheduled_window, warn_at"),
    ("premium: 15m", "premium: 15 minutes",
     "F:11:14: default.deadline.premium: expected a duration like '15m', '2h' or '1h30m', "
     "got '15 minutes'"),
    ("premium: 15m", "premium: 15",
     "F:11:14: default.deadline.premium: expected a duration like '15m', '2h' or '1h30m', "
     "got 15"),
    ("premium: 15m", "premium: 0m",
     "F:11:14: default.deadline.premium: expected a duration longer than zero, got '0m'"),
    ("premium: 15m", "Premium: 15m",
     "F:11:14: default.deadline.Premium: a tier is a lower-case name like 'premium', "
     "got 'Premium'"),
    (", default: 2h}", "}",
     "F:11:3: default.deadline: needs a 'default' entry: the deadline of callers with no "
     "tier or a tier not listed"),
    ('"21:00-08:00"', '"21:00-21:00"',
     "F:10:3: default.quiet_hours: range '21:00-21:00' is empty"),
    ('"21:00-08:00"', '"00:00-24:00"',
     "F:10:3: default.quiet_hours: quiet hours '00:00-24:00' leave no time of the day to "
     "call"),
    ('"21:00-08:00"', '"9pm-8am"',
     "F:10:3: default.quiet_hours: expected a time range like '08:00-17:30', got '9pm-8am'"),
    ('sun: ["08:00-20:00"]', 'sun: ["20:00-08:00"]',
     "F:4:13: default.business_hours.weekly.sun.0: range '20:00-08:00' ends before it "
     "starts; split ranges that cross midnight"),
    ('sun: ["08:00-20:00"]', 'sun: ["08:00-24:30"]',
     "F:4:13: default.business_hours.weekly.sun.0: a range can end at 24:00 at the latest"),
    ('sun: ["08:00-20:00"]', "sun: [8]",
     "F:4:13: default.business_hours.weekly.sun.0: expected a time range like "
     "'08:00-17:30', got 8"),
    ('sun: ["08:00-20:00"]', 'sunday: ["08:00-20:00"]',
     "F:4:7: default.business_hours.weekly.sunday: Input should be 'sun', 'mon', 'tue', "
     "'wed', 'thu', 'fri' or 'sat'"),
    ("2026-12-30: closed", "2026-12-30: shut",
     "F:9:7: default.business_hours.special_days.2026-12-30: expected 'closed', 'holiday' or "
     "a list of time ranges, got 'shut'"),
    ("{country: IL}", "{country: XX}",
     "F:6:5: default.business_hours.holidays: no public holiday calendar for country 'XX'"),
    ("  business_hours:\n    weekly:", "  business_hours:\n    timezone: Asia/Jerusalm\n"
     "    weekly:",
     "F:3:5: default.business_hours.timezone: unknown time zone 'Asia/Jerusalm' (expected "
     "e.g. 'Asia/Jerusalem')"),
    ("    max_attempts: 6", "    max_attempts: 0",
     "F:21:5: queues.night-desk.max_attempts: Input should be greater than or equal to 1"),
    ("    max_attempts: 6", "    max_attempts: null",
     "F:21:5: queues.night-desk.max_attempts: expected a value (leave the key out to use "
     "the default's)"),
    ("    warn_at: 0.5", "    warn_at: 1.5",
     "F:22:5: queues.night-desk.warn_at: Input should be less than 1"),
    ("    retry_backoff: [5m]", "    retry_backoff: []",
     "F:15:5: queues.billing.retry_backoff: List should have at least 1 item after "
     "validation, not 0"),
    ("    deadline: {standard: 4h}", "    deadline: {standard: soon}",
     "F:14:16: queues.billing.deadline.standard: expected a duration like '15m', '2h' or "
     "'1h30m', got 'soon'"),
], ids=[
    "unknown-key", "duration-words", "duration-number", "duration-zero", "tier-case",
    "no-default-tier", "quiet-empty", "quiet-all-day", "quiet-format", "range-backwards",
    "range-past-24", "range-number", "weekday-name", "special-day-word", "holiday-country",
    "time-zone", "attempts-zero", "override-null", "warn-at-fraction", "backoff-empty",
    "override-duration",
])
def test_policy_file_mistakes(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in GOOD
    assert _refused(tmp_path, GOOD.replace(old, new, 1)) == [expected]


def test_every_mistake_of_a_file_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("premium: 15m", "premium: 15").replace(
        "    warn_at: 0.5", "    warn_at: 2").replace("{country: IL}", "{country: XX}")
    assert _refused(tmp_path, text) == [
        "F:6:5: default.business_hours.holidays: no public holiday calendar for country 'XX'",
        "F:11:14: default.deadline.premium: expected a duration like '15m', '2h' or "
        "'1h30m', got 15",
        "F:22:5: queues.night-desk.warn_at: Input should be less than 1",
    ]


@pytest.mark.parametrize(("text", "expected"), [
    ("queues: {}\n", ["F:1:1: default: required key is missing"]),
    ("default:\n  deadline: {default: 1h}\n",
     ["F:1:1: default.business_hours: required key is missing"]),
    ("default:\n  business_hours: {weekly: {}}\n  deadline: {default: 1h}\n",
     ["F:2:20: default.business_hours.weekly: no opening hours on any weekday"]),
    ("- default\n", ["F:1:1: expected a mapping with default: and queues:"]),
    ("", ["F:1:1: expected a mapping with default: and queues:"]),
    ("default: [\n", ["F:1:10: not valid YAML: `[` opened on line 1 is never closed: end the "
                      "list with `]`"]),
    ("default: {}\ndefault: {}\n",
     ["F:2:1: not valid YAML: duplicate key 'default': each key may appear only once in a "
      "mapping (first defined on line 1)"]),
    ("default:\n  business_hours:\n    special_days: {2026-13-01: closed}\n",
     ["F:3:20: not valid YAML: '2026-13-01' is no date (month must be in 1..12)"]),
], ids=["no-default", "missing-hours", "never-open", "a-list", "empty", "broken-yaml",
        "duplicate-key", "bad-date"])
def test_file_shape_mistakes(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert _refused(tmp_path, text) == expected


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(PolicyError) as err:
        load_policies(path)
    assert str(err.value) == f"{path}: cannot read: No such file or directory"


def test_the_readme_example_is_a_valid_policy(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Callbacks"):]
    example = section[section.index("```yaml\n") + 8:section.index("```\n", 10)]
    policies = load_policies(write(tmp_path / "callbacks.yaml", example))
    assert policies.for_queue("billing").deadline_for("premium") == timedelta(minutes=15)
    assert policies.for_queue("billing").deadline_for("gold") == timedelta(hours=4)
