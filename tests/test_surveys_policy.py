"""surveys.yaml (refusals at file:line:col, the last good file live on a bad reload, `ivr
menus check`) and the pure scoring of an answer (keys, Hebrew and English speech, the
longest phrase) and of the next step. No database."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.cli import main
from ivr.surveys.policy import LiveSurveys, SurveyError, load_surveys
from ivr.surveys.scoring import Heard, Step, next_step, understand
from tests.test_surveys import SURVEYS

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "surveys.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_demo_file_loads() -> None:
    surveys = load_surveys(ROOT / "surveys.yaml")
    assert surveys.for_queue("billing") is not None
    assert surveys.for_queue("operator") is None  # opt-in: not listed, not surveyed
    assert surveys.named(None, None) == ("csat", surveys.surveys["csat"])  # followup_survey


@pytest.mark.parametrize(("change", "message"), [
    (("    queues: [support-open-incidents, billing]",
      "    queues: [support-open-incidents, billing]\n    colour: red"),
     "surveys.yaml:5:5: surveys.csat.colour: unknown key 'colour'; expected one of: intro, "
     "low_score, questions, queues, speech, thanks, voices"),
    (('      - id: agent\n', '      - id: agent\n        text: {he-IL: "1"}\n      - id: a3\n'
      '        text: {he-IL: "1", en-US: "2"}\n      - id: a4\n        text: {he-IL: "1", '
      'en-US: "2"}\n      - id: a5\n'),
     "surveys.yaml:8:5: surveys.csat.questions: List should have at most 3 items after "
     "validation, not 5"),
    (('thanks: {he-IL: "תודה רבה", en-US: "Thank you"}', 'thanks: {he-IL: "תודה רבה"}'),
     "surveys.yaml:3:3: surveys.csat: thanks: every text names the intro's languages "
     "(he-IL, en-US); missing en-US"),
    (("low_score: 2", "low_score: 5"),
     "surveys.yaml:1:1: low_score: Input should be less than or equal to 4"),
    (('he-IL: "שתי שאלות קצרות"', 'fr-FR: "Deux questions"'),
     "surveys.yaml:6:7: surveys.csat.intro.fr-FR: Input should be 'he-IL' or 'en-US'"),
    (("low_score: 2", "low_score: !!python/object/apply:os.system [id]"),
     "surveys.yaml:1:1: low_score: YAML tag '!!python/object/apply:os.system' is not "
     "allowed: a surveys file holds plain text, numbers, lists and mappings"),
])
def test_mistakes_are_refused_at_their_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            change: tuple[str, str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert change[0] in SURVEYS
    write(tmp_path, SURVEYS.replace(*change))
    with pytest.raises(SurveyError) as err:
        load_surveys(Path("surveys.yaml"))
    assert str(err.value) == message


def test_a_queue_has_one_survey(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    body = SURVEYS.split("surveys:\n", 1)[1]
    write(tmp_path, SURVEYS + body.replace("  csat:", "  nps:").replace(
        "[support-open-incidents, billing]", "[billing]"))
    with pytest.raises(SurveyError) as err:
        load_surveys(Path("surveys.yaml"))
    assert str(err.value) == ("surveys.yaml:15:14: surveys.nps.queues.0: queue 'billing' is "
                              "in surveys 'csat' and 'nps'; a queue has one survey")


def test_a_bad_reload_keeps_the_last_good_surveys(tmp_path: Path) -> None:
    path = write(tmp_path, SURVEYS)
    live = LiveSurveys(path)
    good = live.current()
    assert good.for_queue("billing") is not None
    path.write_text(SURVEYS.replace("low_score: 2", "low_score: [2"), encoding="utf-8")
    os.utime(path, ns=(1, 1))  # a different stamp, whatever the file system's resolution
    assert live.current() is good
    assert live.error is not None and live.error.startswith(f"{path}:1:")
    path.write_text(SURVEYS.replace("billing]", "billing, operator]"), encoding="utf-8")
    os.utime(path, ns=(2, 2))
    assert live.current().for_queue("operator") is not None and live.error is None
    path.unlink()
    assert live.current().surveys == {}  # no file: no surveys


@pytest.fixture
def root_logging() -> Iterator[None]:
    """``ivr.cli.main`` installs a log handler on this test's captured stderr: put the root
    logger back, so later tests do not log into a closed stream."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_menus_check_checks_the_surveys_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(ROOT / "menus", tmp_path / "menus")
    write(tmp_path, SURVEYS.replace("billing]", "billing, nowhere]"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IVR_SURVEYS_FILE", "surveys.yaml")
    assert main(["menus", "check"]) == 0
    out = capsys.readouterr().out
    assert ("surveys.yaml:4:47: warning: surveys.csat.queues.2: no menu sends callers to "
            "queue 'nowhere'; its survey never runs") in out
    assert out.splitlines()[-1] == "3 file(s) checked: 0 error(s), 1 warning(s)"
    write(tmp_path, SURVEYS.replace("low_score: 2", "low_score: 0"))
    assert main(["menus", "check"]) == 1
    out = capsys.readouterr().out
    assert ("surveys.yaml:1:1: error: low_score: Input should be greater than or equal to 1"
            in out)


@pytest.mark.parametrize(("digits", "speech", "language", "heard"), [
    ("4", None, "he-IL", Heard("score", 4, "dtmf")),
    ("1", "", "en-US", Heard("score", 1, "dtmf")),
    ("0", None, "he-IL", Heard("invalid", via="dtmf")),
    ("7", None, "he-IL", Heard("invalid", via="dtmf")),
    ("*", None, "en-US", Heard("invalid", via="dtmf")),
    ("", None, "en-US", Heard("none")),
    (None, "  ", "en-US", Heard("none")),
    (None, "Very satisfied!", "en-US", Heard("score", 5, "speech", "Very satisfied!")),
    (None, "satisfied", "en-US", Heard("score", 4, "speech", "satisfied")),
    (None, "I am very dissatisfied", "en-US",
     Heard("score", 1, "speech", "I am very dissatisfied")),
    (None, "not satisfied at all", "en-US", Heard("score", 1, "speech", "not satisfied at all")),
    (None, "dissatisfied", "en-US", Heard("score", 2, "speech", "dissatisfied")),
    (None, "3", "en-US", Heard("score", 3, "speech", "3")),
    (None, "מרוצה מאוד", "he-IL", Heard("score", 5, "speech", "מרוצה מאוד")),
    (None, "אני מרוצה", "he-IL", Heard("score", 4, "speech", "אני מרוצה")),
    (None, "לא מרוצה", "he-IL", Heard("score", 2, "speech", "לא מרוצה")),
    (None, "מאוד לא מרוצה.", "he-IL", Heard("score", 1, "speech", "מאוד לא מרוצה.")),
    (None, "בסדר", "he-IL", Heard("score", 3, "speech", "בסדר")),
    (None, "satisfied", "he-IL", Heard("invalid", via="speech", speech="satisfied")),
    (None, "what time is it", "en-US", Heard("invalid", via="speech", speech="what time is it")),
    (None, "2 or 4", "en-US", Heard("invalid", via="speech", speech="2 or 4")),
])
def test_what_an_answer_means(digits: str | None, speech: str | None, language: str,
                              heard: Heard) -> None:
    assert understand(digits, speech, language) == heard


def test_keys_only_surveys_do_not_listen_to_words() -> None:
    assert understand(None, "very satisfied", "en-US", speech_on=False).kind == "invalid"


@pytest.mark.parametrize(("index", "tries", "kind", "questions", "step"), [
    (0, 0, "score", 2, Step("ask", 1)),
    (1, 0, "score", 2, Step("end", completed=True)),
    (0, 1, "score", 1, Step("end", completed=True)),
    (0, 0, "invalid", 2, Step("ask", 0, 1, retry=True)),
    (0, 0, "none", 2, Step("ask", 0, 1, retry=False)),
    (0, 1, "invalid", 2, Step("end")),
    (1, 1, "none", 3, Step("end")),
])
def test_the_next_step(index: int, tries: int, kind: str, questions: int, step: Step) -> None:
    heard = Heard("score", 3, "dtmf") if kind == "score" else Heard(kind)  # type: ignore[arg-type]
    assert next_step(index, tries, heard, questions) == step


def test_ivr_serve_refuses_a_surveys_file_with_mistakes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ivr.cli import UserError, _check_menus_servable
    from ivr.core.settings import Settings

    monkeypatch.chdir(tmp_path)
    write(tmp_path, SURVEYS.replace("low_score: 2", "low_score: two"))
    settings = Settings(_env_file=None, menus_dir=ROOT / "menus",
                        surveys_file=Path("surveys.yaml"),
                        callbacks_file=tmp_path / "none.yaml")
    with pytest.raises(UserError) as err:
        _check_menus_servable(settings)
    assert str(err.value) == ("the server cannot start: surveys.yaml:1:1: low_score: Input "
                              "should be a valid integer, unable to parse string as an integer")
