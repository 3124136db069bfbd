"""Callback SLA policies: the models of ``callbacks.yaml`` and its loader.

The file has a ``default:`` policy and, under ``queues:``, per-queue overrides that name
only what differs (a queue's ``deadline:`` entries replace the default's tier by tier;
every other key replaces the default's value whole; ``quiet_hours: null`` turns quiet hours
off for that queue)::

    default:
      business_hours:                  # the format of a menu schedule (menus/*.yaml)
        timezone: Asia/Jerusalem
        weekly: {sun: ["08:00-20:00"], fri: ["08:00-13:00"]}
        holidays: {country: IL}
        special_days: {2026-12-31: ["08:00-13:00"]}
      quiet_hours: "21:00-08:00"       # never call then, in the customer's time zone
      deadline: {premium: 15m, standard: 2h, default: 2h}   # business time, per tier
      scheduled_horizon: 7d            # how far ahead a caller may pick a time
      max_attempts: 3
      retry_backoff: [2m, 10m, 30m]    # after attempt 1, 2, 3...; the last one repeats
      warn_at: 0.8                     # warn when 80 % of the deadline's business time is used
      fallback_handle_time: 5m         # expected wait with no recent handle times
    queues:
      billing:
        deadline: {standard: 4h}

Read by ``ivr.core.yamlfile`` (safe: plain data only, positions kept; tags, duplicate keys
and anchors refused); a mistake is refused with ``file:line:col: key.path: what was
expected``, one line each. The business hours are our own small model (not
``ivr.menu.model.Schedule``: callbacks import ``ivr.core`` only) in the same YAML shape;
``ivr.core.calendar`` computes with either.
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ivr.core.calendar import covers
from ivr.core.yamlfile import (
    KeyPath,
    Loaded,
    StrictConfig,
    YamlError,
    dotted,
    load_yaml,
    read_text,
)

DEFAULT_FILE = Path("callbacks.yaml")  # IVR_CALLBACKS_FILE
DEFAULT_TIER = "default"  # the deadline of callers with no tier, or a tier not listed


def _refusal(kind: str, text: str) -> PydanticCustomError:
    """A validation error whose message is ``text`` as written (no template fields)."""
    return PydanticCustomError(kind, text.replace("{", "{{").replace("}", "}}"))


class PolicyError(ValueError):
    """A policy file that cannot be used: ``file:line:col: key.path: what was expected``."""


# ------------------------------------------------------------------------------ durations

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value: Any) -> Any:
    """``15m``, ``2h``, ``1h30m``, ``7d``, ``90s`` -> timedelta (a timedelta passes)."""
    if isinstance(value, timedelta):
        return value
    m = _DURATION.match(value) if isinstance(value, str) else None
    if not m or not any(m.groups()):
        raise _refusal("duration",
                       f"expected a duration like '15m', '2h' or '1h30m', got {value!r}")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    out = timedelta(days=d, hours=h, minutes=mi, seconds=s)
    if out <= timedelta(0):
        raise _refusal("duration", f"expected a duration longer than zero, got {value!r}")
    return out


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


# ------------------------------------------------------------------------ business hours

_TIME_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
Weekday = Literal["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_TIER = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def _tier_name(value: Any) -> Any:
    if isinstance(value, str) and not _TIER.match(value):
        raise _refusal("tier", f"a tier is a lower-case name like 'premium', got {value!r}")
    return value


TierName = Annotated[str, AfterValidator(_tier_name)]
QueueName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def _clock_range(value: Any, *, wraps: bool) -> tuple[time, time | None]:
    m = _TIME_RANGE.match(value) if isinstance(value, str) else None
    if not m:
        raise _refusal("time_range",
                       f"expected a time range like '08:00-17:30', got {value!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h2 == 24 and m2 != 0:
        raise PydanticCustomError("time_range", "a range can end at 24:00 at the latest")
    start, end = time(h1, m1), (None if h2 == 24 else time(h2, m2))
    if end == start:
        raise _refusal("time_range", f"range {value!r} is empty")
    if not wraps and end is not None and end < start:
        raise _refusal("time_range", f"range {value!r} ends before it starts; split ranges "
                       "that cross midnight")
    return start, end


class TimeRange(StrictConfig):
    """Wall-clock hours of one day, ``[start, end)``; ``end`` None is the next midnight."""

    start: time
    end: time | None


def _opening_range(value: Any) -> Any:
    if isinstance(value, TimeRange | dict):
        return value
    start, end = _clock_range(value, wraps=False)
    return {"start": start, "end": end}


Range = Annotated[TimeRange, BeforeValidator(_opening_range)]


class QuietHours(StrictConfig):
    """A daily wall-clock span with no calls, in the customer's zone; may cross midnight
    (``21:00-08:00``)."""

    start: time
    end: time

    def covers(self, t: time) -> bool:
        return covers(self, t)


def _quiet_range(value: Any) -> Any:
    if value is None or isinstance(value, QuietHours | dict):
        return value
    start, end = _clock_range(value, wraps=True)
    if (end or time(0)) == start:
        raise _refusal("time_range", f"quiet hours {value!r} leave no time of the day to call")
    return {"start": start, "end": end or time(0)}


class HolidayCalendar(StrictConfig):
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    subdivision: str | None = None

    @model_validator(mode="after")
    def _known_country(self) -> HolidayCalendar:
        import holidays  # noqa: PLC0415  (heavy import, only when a policy uses it)

        if self.country not in holidays.list_supported_countries():
            raise PydanticCustomError(
                "holiday_country", "no public holiday calendar for country '{country}'",
                {"country": self.country})
        return self


def _special_day(value: Any) -> Any:
    if isinstance(value, str) and value not in ("closed", "holiday"):
        raise _refusal("special_day",
                       f"expected 'closed', 'holiday' or a list of time ranges, got {value!r}")
    return value


SpecialDay = Annotated[
    Annotated[Literal["closed", "holiday"], BeforeValidator(_special_day), Tag("word")]
    | Annotated[list[Range], Tag("hours")],
    Discriminator(lambda v: "word" if isinstance(v, str) else "hours"),
]


class BusinessHours(StrictConfig):
    """When the centre works: weekly hours (a day not listed is closed), public holidays
    from the ``holidays`` package (closed all day), special days (win over both)."""

    timezone: str = "Asia/Jerusalem"
    weekly: dict[Weekday, list[Range]]
    holidays: HolidayCalendar | None = None
    special_days: dict[date, SpecialDay] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        _zone(value)
        return value

    @field_validator("weekly")
    @classmethod
    def _some_hours(cls, value: dict[str, list[TimeRange]]) -> dict[str, list[TimeRange]]:
        if not any(value.values()):
            raise PydanticCustomError("no_hours", "no opening hours on any weekday")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)


def _zone(value: str) -> ZoneInfo:
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise _refusal("timezone", f"unknown time zone {value!r} (expected e.g. "
                       "'Asia/Jerusalem')") from None


# ------------------------------------------------------------------------------ policies

Fraction = Annotated[float, Field(gt=0, lt=1)]
Attempts = Annotated[int, Field(ge=1, le=20)]
Deadlines = dict[TierName, Duration]
Backoff = Annotated[list[Duration], Field(min_length=1)]
Quiet = Annotated[QuietHours | None, BeforeValidator(_quiet_range)]


class Offer(StrictConfig):
    """When a waiting caller is offered a callback ("press 1 to keep your place")."""

    enabled: bool = False
    # Offer when the caller's expected wait is longer than this ...
    threshold: Duration = timedelta(minutes=5)
    # ... or whatever the wait, when the centre closes within this (null: never on that).
    closing_within: Duration | None = timedelta(minutes=30)
    # Whether the caller may pick a time (later today, tomorrow morning / afternoon).
    scheduled: bool = True
    # Only during these hours of the centre's day (null: whenever the queue is open).
    hours: list[Range] | None = None
    # How often the offer (and the expected wait) is spoken in the wait loop.
    repeat_every: Duration = timedelta(minutes=1)


class Policy(StrictConfig):
    """One queue's callback policy, resolved (the default merged with the queue's keys)."""

    business_hours: BusinessHours
    quiet_hours: Quiet = None
    deadline: Deadlines
    scheduled_horizon: Duration = timedelta(days=7)
    max_attempts: Attempts = 3
    retry_backoff: Backoff = Field(default_factory=lambda: [
        timedelta(minutes=2), timedelta(minutes=10), timedelta(minutes=30)])
    warn_at: Fraction = 0.8
    fallback_handle_time: Duration = timedelta(minutes=5)
    # A scheduled callback is due within this much business time after the chosen time.
    scheduled_window: Duration = timedelta(minutes=30)
    offer: Offer = Field(default_factory=Offer)

    @field_validator("deadline")
    @classmethod
    def _has_default(cls, value: dict[str, timedelta]) -> dict[str, timedelta]:
        if DEFAULT_TIER not in value:
            raise PydanticCustomError(
                "default_tier", "needs a 'default' entry: the deadline of callers with no "
                "tier or a tier not listed")
        return value

    def deadline_for(self, tier: str | None) -> timedelta:
        """The business time a tier is promised; case and spaces of the tier do not count."""
        key = (tier or "").strip().lower()
        return self.deadline.get(key) or self.deadline[DEFAULT_TIER]

    def backoff_after(self, attempt_no: int) -> timedelta:
        """The wait after the ``attempt_no``-th attempt (1-based); the last one repeats."""
        return self.retry_backoff[min(max(attempt_no, 1), len(self.retry_backoff)) - 1]


_OVERRIDABLE = tuple(Policy.model_fields)


class QueuePolicy(StrictConfig):
    """A queue's overrides: only the keys it sets. ``quiet_hours: null`` means none."""

    business_hours: BusinessHours | None = None
    quiet_hours: Quiet = None
    deadline: Deadlines | None = None
    scheduled_horizon: Duration | None = None
    max_attempts: Attempts | None = None
    retry_backoff: Backoff | None = None
    warn_at: Fraction | None = None
    fallback_handle_time: Duration | None = None
    scheduled_window: Duration | None = None
    offer: Offer | None = None

    @field_validator(*(f for f in _OVERRIDABLE if f != "quiet_hours"), mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise PydanticCustomError(
                "null", "expected a value (leave the key out to use the default's)")
        return value

    def apply_to(self, default: Policy) -> Policy:
        update: dict[str, Any] = {k: getattr(self, k) for k in self.model_fields_set}
        if self.deadline is not None:
            update["deadline"] = {**default.deadline, **self.deadline}
        return default.model_copy(update=update)


class _PolicyFile(StrictConfig):
    default: Policy
    queues: dict[QueueName, QueuePolicy] = Field(default_factory=dict)


class Policies:
    """Every queue's resolved policy; a queue not in the file gets ``default``."""

    def __init__(self, default: Policy, queues: dict[str, Policy] | None = None) -> None:
        self.default = default
        self.queues = dict(queues or {})

    def for_queue(self, queue: str | None) -> Policy:
        return self.queues.get(queue or "", self.default)

    @classmethod
    def from_data(cls, data: Any) -> Policies:
        """Validate plain data (raises pydantic's ValidationError)."""
        parsed = _PolicyFile.model_validate(data)
        return cls(parsed.default,
                   {q: o.apply_to(parsed.default) for q, o in parsed.queues.items()})


# -------------------------------------------------------------------------------- loader


def _locate(doc: Loaded, loc: tuple[Any, ...]) -> tuple[tuple[int, int] | None, list[str]]:
    """Where a pydantic error location is in the YAML tree: the 1-based (line, column) of
    its deepest key found, and the key path as the file writes it (dates as 2026-12-31).
    Parts that are no key of the file (pydantic's '[key]', union tags) are skipped; a
    missing key is kept in the path, pointing at its parent."""
    node, found, parts = doc.data, None, []
    path: KeyPath = ()
    for part in loc:
        if isinstance(node, dict):
            key = next((k for k in node if str(part) in (str(k), repr(k))), _NO_KEY)
            if key is _NO_KEY:
                if part == loc[-1] and part not in _TAGS:
                    parts.append(str(part))  # a required key that is missing
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
_TAGS = frozenset({"[key]", "word", "hours"})


def _message(err: Any) -> str:
    if err["type"] == "missing":
        return "required key is missing"
    return str(err["msg"])


def _refuse(path: Path, doc: Loaded, exc: ValidationError) -> PolicyError:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "unknown_key":
            loc = (*loc, err["ctx"]["key"])
        pos, parts = _locate(doc, loc)
        where = f"{path}:{pos[0]}:{pos[1]}" if pos else f"{path}:1:1"
        lines.append(f"{where}: {_printable('.'.join(parts)) or '(top)'}: "
                     f"{_printable(_message(err))}")
    return PolicyError("\n".join(dict.fromkeys(lines)))


def _printable(text: str) -> str:
    """A key or message as one line an admin can read: control characters (a key may be
    ``"\\r"``) shown escaped, so every refusal stays one ``file:line:col:`` line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _refused(path: Path, err: YamlError) -> PolicyError:
    """A refusal of ``ivr.core.yamlfile`` in the words of a policy file's mistakes."""
    where = f"{path}:{err.line}:{err.column}"
    if err.kind == "unreadable":
        return PolicyError(f"{path}: cannot read: {err.problem}")
    if err.kind in ("syntax", "duplicate"):
        return PolicyError(f"{where}: not valid YAML: {err.problem}")
    if err.kind == "date":  # a date key that is no date (2026-13-01)
        what = f"{err.value!r} is no date ({err.problem})" if err.value is not None else (
            err.problem)
        return PolicyError(f"{where}: not valid YAML: {what}")
    if err.kind == "tag":  # at the key that holds the tagged value
        line, column = err.key_at or (1, 1)
        where = f"{path}:{line}:{column}"
    if err.path or err.kind in ("tag", "anchor"):
        return PolicyError(f"{where}: {dotted(err.path) or '(top)'}: {err.message}")
    return PolicyError(f"{where}: {err.message}")


def load_policies(path: Path = DEFAULT_FILE) -> Policies:
    """``callbacks.yaml`` (``IVR_CALLBACKS_FILE``), validated; mistakes raise PolicyError."""
    try:
        doc = load_yaml(read_text(path), str(path), holds="a policy")
    except YamlError as err:
        raise _refused(path, err) from None
    if not isinstance(doc.data, dict):
        raise PolicyError(f"{path}:1:1: expected a mapping with default: and queues:")
    try:
        return Policies.from_data(doc.data)
    except ValidationError as exc:
        raise _refuse(path, doc, exc) from None
