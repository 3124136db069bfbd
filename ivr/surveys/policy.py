"""Post-call surveys: the models of ``surveys.yaml`` (``IVR_SURVEYS_FILE``), its loader, and
the live configuration that keeps the last good file when a new one has mistakes.

::

    low_score: 2                 # an answer at or below this alerts supervisors and opens
                                 # a follow-up (a survey may set its own)
    followup_survey: csat        # the survey a satisfaction call runs (default: the first)
    surveys:
      csat:
        queues: [billing, support-open-incidents]   # opt-in: only these queues' callers
        intro: {he-IL: "...", en-US: "..."}
        questions:               # one to three, each answered 1-5 by key or by voice
          - id: satisfaction     # the first question is the call's rating ("rated 2/5")
            text: {he-IL: "...", en-US: "..."}
        thanks: {he-IL: "...", en-US: "..."}
        speech: true             # spoken answers too ("very satisfied"), in the caller's
                                 # language; false: keys only

Every text names the same languages (``he-IL``, ``en-US``: the menus' languages whose
spoken scale ``ivr.surveys.scoring`` knows); a call in another language hears the survey's
first one. A queue belongs to one survey at most. Read by ``ivr.core.yamlfile`` (plain
data only, positions kept; tags, duplicate keys and anchors refused); a mistake is refused
with ``file:line:col: key.path: what was expected``, one line each.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ivr.core.yamlfile import (
    KeyPath,
    Loaded,
    StrictConfig,
    YamlError,
    dotted,
    load_yaml,
    read_text,
)

log = logging.getLogger(__name__)

DEFAULT_FILE = Path("surveys.yaml")  # IVR_SURVEYS_FILE
Language = Literal["he-IL", "en-US"]
#: The voice of each language when the file names none (the menus' Hebrew voice; Twilio's
#: default voice speaks English).
DEFAULT_VOICES: dict[str, str | None] = {"he-IL": "Google.he-IL-Standard-A", "en-US": None}
SCALE = 5  # answers are 1..SCALE
_NAME = r"^[a-z][a-z0-9_-]{0,63}$"
Name = Annotated[str, StringConstraints(pattern=_NAME)]
QueueName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=600)]


class SurveyError(ValueError):
    """A surveys file that cannot be used: ``file:line:col: key.path: what was expected``."""


class Question(StrictConfig):
    id: Name
    text: dict[Language, Text] = Field(min_length=1)


class Survey(StrictConfig):
    queues: list[QueueName] = Field(default_factory=list)
    intro: dict[Language, Text] = Field(min_length=1)
    questions: list[Question] = Field(min_length=1, max_length=3)
    thanks: dict[Language, Text] = Field(min_length=1)
    speech: bool = True
    low_score: int | None = Field(default=None, ge=1, le=SCALE - 1)
    voices: dict[Language, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _same_languages(self) -> Survey:
        want = list(self.intro)
        for where, texts in (("thanks", self.thanks),
                             *((f"questions.{i}.text", q.text)
                               for i, q in enumerate(self.questions))):
            missing = [lang for lang in want if lang not in texts]
            extra = [lang for lang in texts if lang not in want]
            if missing or extra:
                raise PydanticCustomError(
                    "languages", "{where}: every text names the intro's languages ({want})"
                    "; {what}", {"where": where, "want": ", ".join(want),
                                 "what": f"missing {', '.join(missing)}" if missing
                                 else f"not in the intro: {', '.join(extra)}"})
        ids = [q.id for q in self.questions]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise PydanticCustomError("duplicate", "question id {ids} used twice",
                                      {"ids": ", ".join(twice)})
        return self

    @property
    def languages(self) -> list[str]:
        return list(self.intro)

    def language_for(self, language: str | None) -> str:
        """The caller's language if the survey speaks it, else its first."""
        return language if language in self.intro else self.languages[0]

    def voice(self, language: str) -> str | None:
        for lang, name in self.voices.items():
            if lang == language:
                return name
        return DEFAULT_VOICES.get(language)


class _SurveysFile(StrictConfig):
    low_score: int = Field(default=2, ge=1, le=SCALE - 1)
    followup_survey: Name | None = None
    surveys: dict[Name, Survey] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_survey_per_queue(self) -> _SurveysFile:
        seen: dict[str, str] = {}
        for name, survey in self.surveys.items():
            for i, queue in enumerate(survey.queues):
                if queue in seen:  # located at the second one (``_refusal``)
                    raise PydanticCustomError(
                        "queue_twice", "queue '{queue}' is in surveys '{a}' and '{b}'; a "
                        "queue has one survey",
                        {"queue": queue, "a": seen[queue], "b": name, "i": i})
                seen[queue] = name
        if self.followup_survey is not None and self.followup_survey not in self.surveys:
            raise PydanticCustomError(
                "unknown_survey", "followup_survey: no survey named '{name}' (surveys: "
                "{names})", {"name": self.followup_survey, "names": ", ".join(self.surveys)})
        return self


@dataclass(frozen=True)
class Surveys:
    """Every survey, by name and by queue."""

    low_score: int
    surveys: dict[str, Survey]
    followup_survey: str | None = None
    #: Rendered TwiML of these surveys (``ivr.surveys.twiml.question``).
    cache: dict[tuple[object, ...], str] = field(default_factory=dict, compare=False,
                                                 repr=False)

    def for_queue(self, queue: str | None) -> tuple[str, Survey] | None:
        for name, survey in self.surveys.items():
            if queue in survey.queues:
                return name, survey
        return None

    def named(self, name: str | None, queue: str | None = None) -> tuple[str, Survey] | None:
        """A survey by name; else the queue's; else the follow-up survey; else the first."""
        if name:
            return (name, self.surveys[name]) if name in self.surveys else None
        by_queue = self.for_queue(queue)
        if by_queue is not None:
            return by_queue
        first = self.followup_survey or next(iter(self.surveys))
        return first, self.surveys[first]

    def threshold(self, survey: Survey) -> int:
        return survey.low_score if survey.low_score is not None else self.low_score

    @classmethod
    def from_data(cls, data: Any) -> Surveys:
        parsed = _SurveysFile.model_validate(data)
        return cls(parsed.low_score, dict(parsed.surveys), parsed.followup_survey)


NO_SURVEYS = Surveys(2, {})


# -------------------------------------------------------------------------------- loader


def load_surveys(path: Path = DEFAULT_FILE) -> Surveys:
    """``surveys.yaml``, validated; mistakes raise SurveyError (``file:line:col: ...``)."""
    try:
        doc = load_yaml(read_text(path), str(path), holds="a surveys file")
    except YamlError as err:
        raise SurveyError(_yaml_refusal(path, err)) from None
    if not isinstance(doc.data, dict):
        raise SurveyError(f"{path}:1:1: expected a mapping with surveys: (and low_score:)")
    try:
        return Surveys.from_data(doc.data)
    except ValidationError as exc:
        raise SurveyError(_refusal(path, doc, exc)) from None


def _yaml_refusal(path: Path, err: YamlError) -> str:
    if err.kind == "unreadable":
        return f"{path}: cannot read: {err.problem}"
    line, column = err.key_at if err.kind == "tag" and err.key_at else (err.line, err.column)
    where = f"{path}:{line}:{column}"
    if err.kind in ("syntax", "duplicate", "date"):
        return f"{where}: not valid YAML: {err.problem or err.message}"
    if err.path or err.kind in ("tag", "anchor"):
        return f"{where}: {dotted(err.path) or '(top)'}: {err.message}"
    return f"{where}: {err.message}"


def _refusal(path: Path, doc: Loaded, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "unknown_key":
            loc = (*loc, err["ctx"]["key"])
        elif err["type"] == "queue_twice":  # the whole file's check, at the queue's place
            loc = ("surveys", err["ctx"]["b"], "queues", err["ctx"]["i"])
        elif err["type"] == "unknown_survey":
            loc = ("followup_survey",)
        pos, parts = _locate(doc, loc)
        line, column = pos or (1, 1)
        message = "required key is missing" if err["type"] == "missing" else str(err["msg"])
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        lines.append(f"{path}:{line}:{column}: {_printable('.'.join(parts)) or '(top)'}: "
                     f"{_printable(message)}")
    return "\n".join(dict.fromkeys(lines))


def _locate(doc: Loaded, loc: tuple[Any, ...]) -> tuple[tuple[int, int] | None, list[str]]:
    """The 1-based position of the deepest key of a pydantic location found in the file,
    and the key path as the file writes it (a missing last key is kept in the path)."""
    node, found, parts = doc.data, None, []
    path: KeyPath = ()
    for part in loc:
        if isinstance(node, dict):
            key = next((k for k in node if str(part) == str(k)), _NO_KEY)
            if key is _NO_KEY:
                if part == loc[-1] and not str(part).startswith("["):
                    parts.append(str(part))
                continue
            path = (*path, key)
            node = node[key]
            parts.append(str(key))
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path = (*path, part)
            node = node[part]
            parts.append(str(part))
        else:
            break
        found = doc.positions.keys.get(path, found)
    return found, parts


_NO_KEY = object()
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable(text: str) -> str:
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


# --------------------------------------------------------------------------- live config


class LiveSurveys:
    """The surveys in force. ``current()`` re-reads the file when it changed on disk (its
    size and modification time, one ``stat``): a good file goes live, a file with mistakes
    is logged and the last good one stays (as a menu does); a file removed turns surveys
    off. Safe from several threads."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._surveys = NO_SURVEYS
        self.error: str | None = None
        if path is not None and path.exists():
            self._surveys = load_surveys(path)  # a bad file at start-up is the caller's error
            self._seen = _stamp(path)

    def current(self) -> Surveys:
        if self.path is None:
            return self._surveys
        stamp = _stamp(self.path)
        if stamp == self._seen:
            return self._surveys
        with self._lock:
            if stamp != self._seen:
                self._reload(stamp)
        return self._surveys

    def _reload(self, stamp: tuple[int, int] | None) -> None:
        assert self.path is not None
        self._seen = stamp
        if stamp is None:
            log.warning("%s is gone; post-call surveys are off", self.path)
            self._surveys, self.error = NO_SURVEYS, None
            return
        try:
            self._surveys = load_surveys(self.path)
            self.error = None
            log.info("%s reloaded: %d survey(s)", self.path, len(self._surveys.surveys))
        except SurveyError as exc:
            self.error = str(exc)
            log.error("%s has mistakes; the previous surveys stay live:\n%s", self.path, exc)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
