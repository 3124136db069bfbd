"""The admin's wrap-up lists (``wrapup.yaml``, ``IVR_WRAPUP_FILE``): the topics and outcomes
the console offers, the leaving reasons an exit interview records, the retention queues
whose saved rate is reported, and the weights of the leaving-risk signal.

Read through ``ivr.core.yamlfile`` (safe, positions kept; tags, anchors and duplicate keys
refused), validated by pydantic, every mistake one ``file:line:col: key.path: message``
line. ``LiveLists`` keeps the last good lists live: a file edited into a mistake is reported
and the lists before it stay in use until the file is fixed.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    StringConstraints,
    ValidationError,
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

DEFAULT_FILE = Path("wrapup.yaml")  # IVR_WRAPUP_FILE
OTHER = "other"  # the reason whose free text says what it is


class ListsError(ValueError):
    """A wrap-up lists file that cannot be used: ``file:line:col: key.path: message``."""


_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_DAYS = re.compile(r"^(\d+)d$")


def _refusal(kind: str, text: str) -> PydanticCustomError:
    """A validation error whose message is ``text`` as written (no template fields)."""
    return PydanticCustomError(kind, text.replace("{", "{{").replace("}", "}}"))


def _code(value: Any) -> Any:
    if isinstance(value, str) and not _CODE.match(value):
        raise _refusal("code", "a reason code is lower-case letters, digits and '_' (like "
                       f"'unresolved_complaint'), got {value!r}")
    return value


def _days(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    m = _DAYS.match(value) if isinstance(value, str) else None
    if not m or int(m.group(1)) < 1:
        raise _refusal("days", f"expected a number of days like '90d', got {value!r}")
    return timedelta(days=int(m.group(1)))


Code = Annotated[str, BeforeValidator(_code)]
Entry = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Days = Annotated[timedelta, BeforeValidator(_days)]
Weight = Annotated[int, Field(ge=0, le=100, strict=True)]


class Reason(StrictConfig):
    """A leaving reason: its code (stored), its words in the console per language."""

    code: Code
    label: Label
    label_he: Label | None = None


class Weights(StrictConfig):
    """How much each signal adds to a customer's leaving-risk score."""

    status: Weight = 3            # the customer's status is leaving / left
    exit_interview: Weight = 3    # said they may leave, and did not end up staying
    chose_queue: Weight = 3       # chose a retention queue in the IVR (this call)
    abandoned_call: Weight = 1    # each call they hung up on while waiting
    failed_callback: Weight = 2   # each callback we never got through on
    late_callback: Weight = 1     # each callback that passed its deadline
    broken_promise: Weight = 2    # each promise not kept by its time
    low_score: Weight = 2         # each call they rated low in the post-call survey


class RiskPolicy(StrictConfig):
    """The leaving-risk signal: signals of the last ``window`` days, weighed; a customer
    whose score reaches ``threshold`` is a leaving-risk customer."""

    window: Days = timedelta(days=90)
    threshold: Annotated[int, Field(ge=1, le=1000, strict=True)] = 2
    weights: Weights = Field(default_factory=Weights)


class WrapUpLists(StrictConfig):
    """What ``wrapup.yaml`` holds."""

    topics: list[Entry] = Field(min_length=1, max_length=200)
    outcomes: list[Entry] = Field(min_length=1, max_length=200)
    leaving_reasons: list[Reason] = Field(min_length=1, max_length=50)
    retention_queues: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = \
        Field(default_factory=lambda: ["retention"])
    leaving_risk: RiskPolicy = Field(default_factory=RiskPolicy)

    def reason(self, code: str) -> Reason | None:
        return next((r for r in self.leaving_reasons if r.code == code), None)

    def public(self) -> dict[str, Any]:
        """What the console reads (``GET /agent/wrapup-lists``)."""
        return {"topics": list(self.topics), "outcomes": list(self.outcomes),
                "leaving_reasons": [r.model_dump() for r in self.leaving_reasons],
                "other": OTHER, "retention_queues": list(self.retention_queues)}


#: The lists when no file is configured: the seed's reasons (plus price) and free text.
DEFAULT_LISTS = WrapUpLists(
    topics=["billing", "technical fault", "cancellation", "moving house", "new service",
            "complaint"],
    outcomes=["solved", "technician booked", "escalated", "callback promised",
              "information given", "customer kept", "new opportunity"],
    leaving_reasons=[
        Reason(code="indifference", label="Felt ignored / indifference",
               label_he="יחס אדיש"),
        Reason(code="unresolved_complaint", label="Unresolved complaint",
               label_he="תלונה שלא טופלה"),
        Reason(code="competitor_offer", label="A better offer elsewhere",
               label_he="הצעה טובה יותר אצל מתחרה"),
        Reason(code="price", label="Price", label_he="מחיר"),
        Reason(code="wants_change", label="Wants a change", label_he="רצון לשינוי"),
        Reason(code="moving", label="Moving", label_he="מעבר דירה"),
        Reason(code=OTHER, label="Other (say what)", label_he="אחר (פרטו)")])


# ------------------------------------------------------------------------------ loading

def _locate(doc: Loaded, loc: tuple[Any, ...]) -> tuple[tuple[int, int], list[str]]:
    """The (line, column) of the deepest key of a pydantic location found in the file,
    and the key path as written (a missing key kept, pointing at its parent)."""
    node, found, parts = doc.data, (1, 1), []
    path: KeyPath = ()
    for part in loc:
        if isinstance(node, dict):
            key = next((k for k in node if str(k) == str(part)), None)
            if key is None:
                if part == loc[-1]:
                    parts.append(str(part))
                continue
            path, node = (*path, key), node[key]
            parts.append(str(key))
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path, node = (*path, part), node[part]
            parts.append(str(part))
        else:
            break
        found = doc.positions.keys.get(path, found)
    return found, parts


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _refuse(path: Path, doc: Loaded, exc: ValidationError) -> ListsError:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "unknown_key":
            loc = (*loc, err["ctx"]["key"])
        (line, column), parts = _locate(doc, loc)
        message = "required key is missing" if err["type"] == "missing" else str(err["msg"])
        lines.append(f"{path}:{line}:{column}: {_printable('.'.join(parts)) or '(top)'}: "
                     f"{_printable(message)}")
    return ListsError("\n".join(dict.fromkeys(lines)))


def _refused(path: Path, err: YamlError) -> ListsError:
    where = f"{path}:{err.line}:{err.column}"
    if err.kind == "unreadable":
        return ListsError(f"{path}: cannot read: {err.problem}")
    if err.kind in ("syntax", "duplicate", "date"):
        return ListsError(f"{where}: not valid YAML: {err.problem}")
    if err.kind == "tag":
        line, column = err.key_at or (1, 1)
        where = f"{path}:{line}:{column}"
    if err.path or err.kind in ("tag", "anchor"):
        return ListsError(f"{where}: {dotted(err.path) or '(top)'}: {err.message}")
    return ListsError(f"{where}: {err.message}")


def parse_lists(text: str, path: Path) -> WrapUpLists:
    """The lists of a file's text; mistakes raise ListsError (``file:line:col: ...``)."""
    try:
        doc = load_yaml(text, str(path), holds="a wrap-up lists file")
    except YamlError as err:
        raise _refused(path, err) from None
    if not isinstance(doc.data, dict):
        raise ListsError(f"{path}:1:1: expected a mapping with topics:, outcomes: and "
                         "leaving_reasons:")
    try:
        lists = WrapUpLists.model_validate(doc.data)
    except ValidationError as exc:
        raise _refuse(path, doc, exc) from None
    twice = _listed_twice(path, doc, lists)
    if twice:
        raise ListsError("\n".join(twice))
    return lists


def _listed_twice(path: Path, doc: Loaded, lists: WrapUpLists) -> list[str]:
    """A topic, outcome (case aside) or reason code written twice, at the second one."""
    out = []
    for key, what, values in (
            ("topics", "topic", [t.casefold() for t in lists.topics]),
            ("outcomes", "outcome", [o.casefold() for o in lists.outcomes]),
            ("leaving_reasons", "reason code", [r.code for r in lists.leaving_reasons])):
        seen: dict[str, int] = {}
        for i, value in enumerate(values):
            line, column = doc.positions.of((key, i), key=True)
            if value in seen:
                out.append(f"{path}:{line}:{column}: {key}.{i}: {what} {value!r} is listed "
                           f"twice (first at line {seen[value]})")
            else:
                seen[value] = line
    return out


def load_lists(path: Path = DEFAULT_FILE) -> WrapUpLists:
    """``wrapup.yaml``, validated; mistakes raise ListsError."""
    try:
        text = read_text(path)
    except YamlError as err:
        raise _refused(path, err) from None
    return parse_lists(text, path)


@dataclass(frozen=True)
class Status:
    """What is live and why: the file, whether it is in use, its refusal if any."""

    file: str
    source: str  # file / default (no file) / last good (the file has mistakes)
    error: str | None


class LiveLists:
    """The lists in use. ``current()`` re-reads the file when its modification time or size
    changed (one ``stat`` otherwise); a file with mistakes keeps the last good lists live
    (or the defaults, if it never was good) and its refusal in ``status()``."""

    def __init__(self, path: Path | None, *, initial: WrapUpLists | None = None) -> None:
        self.path = path
        self._lists = initial or DEFAULT_LISTS
        self._good = initial is not None
        self._stamp: tuple[float, int] | None = None
        self._error: str | None = None
        self._lock = threading.Lock()
        if initial is None:
            self.current()

    def _stat(self) -> tuple[float, int] | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def current(self) -> WrapUpLists:
        stamp = self._stat()
        if stamp == self._stamp:
            return self._lists
        with self._lock:
            if stamp == self._stamp:
                return self._lists
            self._stamp = stamp
            if stamp is None or self.path is None:
                self._error = None if self.path is None or not self._good else (
                    f"{self.path}: cannot read it any more; the last good lists stay live")
                return self._lists
            try:
                self._lists, self._good, self._error = load_lists(self.path), True, None
            except ListsError as err:
                self._error = str(err)
                log.error("wrap-up lists refused, the %s lists stay live:\n%s",
                          "last good" if self._good else "default", err)
        return self._lists

    def status(self) -> Status:
        self.current()
        source = ("default" if not self._good else
                  "last good" if self._error else "file")
        return Status(str(self.path) if self.path else "", source, self._error)
