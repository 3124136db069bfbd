"""The menu language: pydantic models for the YAML files under ``menus/``.

The JSON Schema editors use (``menus/menu.schema.json``) is generated from these models
by ``ivr menus schema``; a test keeps the committed file in step with them.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

# Twilio's documented limits (values it would reject or truncate).
SAY_MAX_CHARS = 4096  # <Say> text
QUEUE_NAME_MAX = 64  # <Enqueue> queue friendly name
MAX_AUTOMATIC_HOPS = 32  # messages, hours, branches, sub-menus in a row without input
GATHER_TIMEOUT_RANGE = (1, 60)  # <Gather timeout>: positive integer seconds; we cap at a minute
DIAL_TIMEOUT_RANGE = (5, 600)  # <Dial timeout>

LanguageTag = Annotated[
    str, StringConstraints(pattern=r"^[a-z]{2,3}-[A-Z]{2}$", max_length=16)
]
NodeName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$", max_length=64)
]
MenuName = NodeName
DtmfKey = Annotated[str, StringConstraints(pattern=r"^[0-9*#]{1,8}$")]
Url = Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2048)]
# A leaving reason's code, as wrapup.yaml writes them (``ivr menus check`` holds it to that
# file's list; the menu language itself does not read it: ivr.retention is above ivr.menu).
LeavingReasonCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
E164 = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]


class StrictModel(BaseModel):
    """Unknown keys are refused with the list of keys that are allowed (typos are the
    commonest admin mistake)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = set()
            for name, field in cls.model_fields.items():
                allowed.add(field.alias or name)
            for key in data:
                if key not in allowed:
                    raise PydanticCustomError(
                        "unknown_key",
                        "unknown key '{key}'; expected one of: {allowed}",
                        {"key": str(key), "allowed": ", ".join(sorted(allowed))},
                    )
        return data


class Prompt(StrictModel):
    """What the caller hears: text spoken per language (``say``) or a recording (``play``)."""

    say: dict[LanguageTag, Annotated[str, StringConstraints(min_length=1)]] | None = Field(
        default=None, description="Text per language, e.g. {he-IL: ..., en-US: ...}"
    )
    play: Url | dict[LanguageTag, Url] | None = Field(
        default=None, description="A recording URL, or one URL per language"
    )

    @model_validator(mode="after")
    def _one_of(self) -> Prompt:
        if (self.say is None) == (self.play is None):
            raise PydanticCustomError(
                "prompt_kind", "a prompt needs exactly one of 'say' or 'play'"
            )
        return self


class Option(StrictModel):
    next: NodeName = Field(description="The node this option leads to")
    speech: dict[LanguageTag, list[Annotated[str, StringConstraints(min_length=1)]]] = Field(
        default_factory=dict, description="Words a caller may say instead of pressing the key"
    )
    language: LanguageTag | None = Field(
        default=None, description="Switch the call to this language for the rest of the call"
    )
    leaving_reason: LeavingReasonCode | None = Field(
        default=None, description="Record this leaving reason (a code of wrapup.yaml's "
        "leaving_reasons) as the call's attribute 'leaving_reason': the retention agent sees "
        "it on the screen-pop and in the wrap-up form")


class _Node(StrictModel):
    description: str | None = None


InputKind = Literal["dtmf", "speech"]


class MenuNode(_Node):
    """Gather a key press and/or speech and branch on it."""

    type: Literal["menu"]
    prompt: Prompt
    options: dict[DtmfKey, Option] = Field(min_length=1)
    input: list[InputKind] = Field(default_factory=lambda: list[InputKind](["dtmf"]),
                                   min_length=1)
    timeout: int = Field(
        default=5,
        ge=GATHER_TIMEOUT_RANGE[0],
        le=GATHER_TIMEOUT_RANGE[1],
        description="Seconds of silence before a no-input",
    )
    max_no_input: int = Field(default=3, ge=1, le=10)
    max_invalid: int = Field(default=3, ge=1, le=10)
    no_input_prompt: Prompt | None = None
    invalid_prompt: Prompt | None = None
    on_failure: NodeName | None = Field(
        default=None, description="Where a caller goes when a limit is reached (default: fallback)"
    )

    @field_validator("options", mode="before")
    @classmethod
    def _keys_as_text(cls, value: Any) -> Any:
        # YAML reads an unquoted `1:` as the integer 1; a key is what the caller presses.
        if isinstance(value, dict):
            return {str(k) if isinstance(k, int) and not isinstance(k, bool) else k: v
                    for k, v in value.items()}
        return value


class MessageNode(_Node):
    """Play a prompt, then go on."""

    type: Literal["message"]
    prompt: Prompt
    next: NodeName


class HoursNode(_Node):
    """Branch on opening hours."""

    type: Literal["hours"]
    schedule: str
    open: NodeName
    closed: NodeName
    holiday: NodeName | None = Field(default=None, description="Default: the closed node")
    emergency: NodeName | None = Field(
        default=None, description="During an emergency closure. Default: the closed node"
    )


class Condition(StrictModel):
    """A test on one caller attribute; exactly one operator."""

    attribute: Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*$")]
    equals: str | int | float | bool | None = None
    in_: list[str | int | float] | None = Field(default=None, alias="in")
    exists: bool | None = None
    at_least: float | None = None
    at_most: float | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        ops = [n for n in ("equals", "in_", "exists", "at_least", "at_most")
               if getattr(self, n) is not None]
        if len(ops) != 1:
            raise PydanticCustomError(
                "condition_operator",
                "a condition needs exactly one of: equals, in, exists, at_least, at_most",
            )
        return self


class Branch(StrictModel):
    when: Condition
    next: NodeName


class BranchNode(_Node):
    """Route on caller attributes (identified, tier, open incident, ...)."""

    type: Literal["branch"]
    branches: list[Branch] = Field(min_length=1)
    default: NodeName


class PriorityRule(StrictModel):
    when: Condition
    priority: int = Field(ge=-100, le=100)


class QueueNode(_Node):
    """Send the caller to a named queue."""

    type: Literal["queue"]
    queue: Annotated[str, StringConstraints(min_length=1, max_length=QUEUE_NAME_MAX)]
    prompt: Prompt | None = None
    priority: list[PriorityRule] = Field(
        default_factory=list,
        description="Caller priority in the queue: the highest priority of the rules whose "
                    "condition holds (0 if none). Higher is served first; equal priorities "
                    "in the order callers joined.",
    )
    on_failure: NodeName | None = Field(
        default=None, description="When the queue is full or fails (default: fallback)"
    )


class TransferNode(_Node):
    """Dial a number, SIP address or Twilio Client; a failed leg goes to on_failure."""

    type: Literal["transfer"]
    number: E164 | None = None
    sip: Annotated[str, StringConstraints(pattern=r"^sips?:\S+@\S+$")] | None = None
    client: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,256}$")] | None = None
    timeout: int = Field(default=20, ge=DIAL_TIMEOUT_RANGE[0], le=DIAL_TIMEOUT_RANGE[1])
    caller_id: E164 | None = None
    prompt: Prompt | None = None
    on_failure: NodeName | None = Field(
        default=None, description="When the leg is busy, unanswered or fails (default: fallback)"
    )

    @model_validator(mode="after")
    def _one_target(self) -> TransferNode:
        if sum(x is not None for x in (self.number, self.sip, self.client)) != 1:
            raise PydanticCustomError(
                "transfer_target", "a transfer needs exactly one of: number, sip, client"
            )
        return self


class HangupNode(_Node):
    """Say goodbye (optionally) and hang up."""

    type: Literal["hangup"]
    prompt: Prompt | None = None


class SubmenuNode(_Node):
    """Continue in another menu file, at its start node (or at ``node``)."""

    type: Literal["submenu"]
    menu: MenuName
    node: NodeName | None = Field(default=None, description="Default: the menu's start")


class IdentifyNode(_Node):
    """Ask for the account number on the keypad (for callers whose number is unknown,
    withheld or shared) and look it up in the customer store."""

    type: Literal["identify"]
    prompt: Prompt
    invalid_prompt: Prompt | None = Field(
        default=None, description="Said when the number is not known: before asking again, "
        "and after the last attempt before going on")
    max_attempts: int = Field(default=3, ge=1, le=10)
    min_digits: int = Field(default=4, ge=1, le=32)
    max_digits: int = Field(default=16, ge=1, le=32)
    timeout: int = Field(default=8, ge=GATHER_TIMEOUT_RANGE[0], le=GATHER_TIMEOUT_RANGE[1])
    identified: NodeName = Field(description="Where an identified caller goes")
    failed: NodeName | None = Field(
        default=None, description="After max_attempts without a match (default: fallback)")
    skip_if_identified: bool = Field(
        default=True, description="A caller recognised by their number is not asked")

    @model_validator(mode="after")
    def _digit_range(self) -> IdentifyNode:
        if self.min_digits > self.max_digits:
            raise PydanticCustomError("digit_range", "min_digits is larger than max_digits")
        return self


Node = Annotated[
    MenuNode | MessageNode | HoursNode | BranchNode | QueueNode | TransferNode | HangupNode
    | SubmenuNode | IdentifyNode,
    Field(discriminator="type"),
]

NODE_TYPES = ("menu", "message", "hours", "branch", "queue", "transfer", "hangup", "submenu",
              "identify")

_TIME_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class TimeRange(StrictModel):
    start: time
    end: time | None  # None = midnight at the end of the day


def _parse_range(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    m = _TIME_RANGE.match(value)
    if not m:
        raise PydanticCustomError(
            "time_range", "expected a time range like '08:00-17:30', got '{value}'",
            {"value": value},
        )
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h2 == 24 and m2 != 0:
        raise PydanticCustomError("time_range", "a range can end at 24:00 at the latest")
    start = time(h1, m1)
    end = None if h2 == 24 else time(h2, m2)
    if end is not None and end <= start:
        raise PydanticCustomError(
            "time_range",
            "range '{value}' ends before it starts; split ranges that cross midnight",
            {"value": value},
        )
    return {"start": start, "end": end}


Range = Annotated[
    TimeRange,
    BeforeValidator(_parse_range),
    WithJsonSchema({"type": "string", "pattern": _TIME_RANGE.pattern}),
]
Weekday = Literal["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


class HolidayCalendar(StrictModel):
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    subdivision: str | None = None

    @model_validator(mode="after")
    def _known_country(self) -> HolidayCalendar:
        import holidays  # noqa: PLC0415  (heavy import, only when a schedule uses it)

        if self.country not in holidays.list_supported_countries():
            raise PydanticCustomError(
                "holiday_country", "no public holiday calendar for country '{country}'",
                {"country": self.country},
            )
        return self


class Closure(StrictModel):
    start: datetime
    end: datetime
    reason: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Closure:
        if self.end <= self.start:
            raise PydanticCustomError("closure_order", "a closure must end after it starts")
        return self


def _special_day(value: Any) -> Any:
    if isinstance(value, str) and value not in ("closed", "holiday"):
        raise PydanticCustomError(
            "special_day", "expected 'closed', 'holiday' or a list of time ranges, got '{value}'",
            {"value": value},
        )
    return value


SpecialDay = Annotated[
    Annotated[Literal["closed", "holiday"], BeforeValidator(_special_day), Tag("word")]
    | Annotated[list[Range], Tag("hours")],
    Discriminator(lambda v: "word" if isinstance(v, str) else "hours"),
]


def known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError(
            "timezone", "unknown time zone '{value}' (expected e.g. 'Asia/Jerusalem')",
            {"value": value},
        ) from None
    return value


class Schedule(StrictModel):
    timezone: str = "Asia/Jerusalem"
    weekly: dict[Weekday, list[Range]] = Field(
        description="Opening hours per weekday; a day that is not listed is closed"
    )
    holidays: HolidayCalendar | None = None
    special_days: dict[date, SpecialDay] = Field(default_factory=dict)
    closures: list[Closure] = Field(
        default_factory=list,
        description="Emergency closures (local time unless an offset is given)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)


# Caller attributes the IVR sets (menus branch on them; prompts may speak them). The last
# four are the recognition facts (``ivr.menu.recognition``): the caller's birthday today
# (the customer's date of birth, in the centre's time zone), today's public holiday and
# tomorrow's (today is its eve), each named in the call's language, and the customer's
# leaving-risk flag (the retention signals, given by the call's edge).
CALLER_ATTRIBUTES = (
    "caller", "called", "caller_country", "caller_outcome", "identified", "customer_id",
    "tier", "segment", "status", "preferred_language", "open_incidents", "has_open_incident",
    "open_incident_opened_at", "hours_since_last_call", "minutes_since_last_call",
    "repeat_caller", "candidates",
    "birthday_today", "holiday_today", "holiday_eve", "leaving_risk",
    "leaving_reason",  # the code of the caller's answer to a leaving-reason menu (Option)
)
# "{tier}" speaks an attribute; "{open_incident_opened_at:time}" a timestamp as HH:MM in the
# menu's time zone.
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
PLACEHOLDER_FORMATS = ("", "time")


class CallerTime(StrictModel):
    """What the menu costs the caller (``ivr.menu.cost``): the seconds of speech before each
    queue, transfer or hang-up along the shortest key path, per language."""

    budget_seconds: float | None = Field(
        default=None, gt=0, le=3600,
        description="Warn where a caller hears more than this before reaching a queue, "
                    "transfer or hang-up (paths that start at this menu)")
    chars_per_second: dict[LanguageTag, Annotated[float, Field(gt=0, le=100)]] = Field(
        default_factory=dict,
        description="Speaking rate of text-to-speech per language, in characters a second "
                    "(default: he-IL 13, en-US 15, any other 14)")
    recordings: str | None = Field(
        default=None, description="Folder (relative to this file) holding the files that "
        "'play' URLs name, by the URL's last path segment; default: 'recordings'")


class Menu(StrictModel):
    """One menu file."""

    name: MenuName | None = Field(default=None, description="Defaults to the file name")
    description: str | None = None
    languages: list[LanguageTag] = Field(min_length=1)
    default_language: LanguageTag
    voices: dict[LanguageTag, str] = Field(
        default_factory=dict, description="Twilio <Say> voice per language"
    )
    start: NodeName
    fallback: NodeName = Field(description="The safe place for callers who reach a limit")
    schedules: dict[str, Schedule] = Field(default_factory=dict)
    timezone: str | None = Field(
        default=None, description="Time zone of times spoken in prompts ({x:time}); "
                                  "default: the first schedule's, else UTC")
    nodes: dict[NodeName, Node] = Field(min_length=1)
    caller_time: CallerTime = Field(
        default_factory=CallerTime, description="The caller's time budget and speaking rates")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return known_zone(value) if value is not None else None

    def spoken_timezone(self) -> str:
        if self.timezone:
            return self.timezone
        return next((s.timezone for s in self.schedules.values()), "UTC")


def menu_json_schema() -> dict[str, Any]:
    schema = Menu.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "IVR menu file"
    return schema
