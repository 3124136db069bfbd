"""Declarative per-source field mappings: a raw CSV row or JSON object -> a SourceRecord (or an
incident / interaction row), or a rejection that says why. Pure apart from ``load_mapping``,
which reads a mapping YAML file (with ``ivr.core.yamlfile``, as every crm file is read:
``read_yaml_file``) and reports mistakes with file and line."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crm_sync.identity import SourceRecord
from crm_sync.phones import normalize
from ivr.core.yamlfile import KeyPath, Loaded, YamlError, load_yaml, read_text


class FieldSpec(BaseModel):
    """Where a golden field comes from: one column, or several joined, with value mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str | list[str]
    map: dict[str, str] = Field(default_factory=dict, description="source value -> ours")
    format: str | None = Field(default=None, description="strptime format for dates/times")
    timezone: str = "UTC"


Spec = str | list[str] | FieldSpec


class SourceMapping(BaseModel):
    """One source system's customer layout (a ``--mapping`` YAML file, ``kind: customers``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["customers"] = "customers"
    source: str
    id: str = Field(description="The column holding the source's own id")
    name: Spec | None = None
    phones: list[str] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)
    account_number: Spec | None = None
    preferred_language: Spec | None = None
    tier: Spec | None = None
    segment: Spec | None = None
    status: Spec | None = None
    date_of_birth: Spec | None = None
    seen_at: Spec | None = None


HISTORY_FIELDS: dict[str, dict[str, str]] = {
    # target column -> "text" / "moment" / "bool"
    "incidents": {"category": "text", "status": "text", "summary": "text", "branch": "text",
                  "opened_at": "moment", "closed_at": "moment", "last_update_at": "moment"},
    "interactions": {"channel": "text", "direction": "text", "queue": "text", "agent": "text",
                     "started_at": "moment", "ended_at": "moment", "topic": "text",
                     "outcome": "text", "resolved": "bool", "promised_action": "text",
                     "promised_due_at": "moment", "notes": "text"},
}
REQUIRED_HISTORY = {"incidents": ("opened_at",), "interactions": ("started_at", "channel")}
HISTORY_DEFAULTS = {"incidents": {"status": "open"}, "interactions": {"direction": "in"}}
_BOOLS = {"true": True, "yes": True, "1": True, "y": True,
          "false": False, "no": False, "0": False, "n": False}


class HistoryMapping(BaseModel):
    """Incidents or interactions of customers already imported (``kind: incidents`` or
    ``kind: interactions``). ``customer`` is the column with the id the customer has in
    ``customer_source`` (default: this source)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["incidents", "interactions"]
    source: str
    id: str = Field(description="The column holding the source's own id of the row")
    customer: str = Field(description="The column holding the customer's id in customer_source")
    customer_source: str | None = None
    fields: dict[str, Spec] = Field(default_factory=dict,
                                    description="target column -> where it comes from")

    def model_post_init(self, _context: Any) -> None:
        allowed = HISTORY_FIELDS[self.kind]
        unknown = sorted(set(self.fields) - set(allowed))
        if unknown:
            raise ValueError(f"unknown {self.kind} field(s) {unknown}; known: {sorted(allowed)}")

    @property
    def customers_from(self) -> str:
        return self.customer_source or self.source


Mapping = SourceMapping | HistoryMapping


def default_mapping(source: str, kind: str = "customers") -> Mapping:
    """The layout ``ivr crm demo-data`` writes and a CRM pushing our own field names uses."""
    if kind == "customers":
        return SourceMapping(
            source=source, id="id", name="name", phones=["phone", "mobile", "phones"],
            emails=["email", "emails"], account_number="account_number",
            preferred_language="language", tier="tier", segment="segment", status="status",
            date_of_birth="date_of_birth", seen_at="updated_at")
    if kind not in HISTORY_FIELDS:
        raise ValueError(f"unknown kind {kind!r}; known: customers, {', '.join(HISTORY_FIELDS)}")
    fields: dict[str, Spec] = {f: f for f in HISTORY_FIELDS[kind]}
    if kind == "incidents":
        fields["last_update_at"] = "updated_at"
    return HistoryMapping(kind=kind, source=source, id="id",
                          customer="customer_id", fields=fields)


class MappingError(ValueError):
    """A mapping file that cannot be used; the message names file, line and what was expected."""


def read_yaml_file(path: Path, holds: str, error: type[MappingError] = MappingError,
                   ) -> Loaded:
    """A crm YAML file (mappings, sources, subscribers, rules) read by ``ivr.core.yamlfile``;
    what it refuses raises ``error`` with ``file:line:col: what was expected``."""
    try:
        return load_yaml(read_text(path), str(path), holds=holds)
    except YamlError as err:
        if err.kind == "unreadable":
            raise error(f"{path}: cannot read: {err.problem}") from None
        if err.kind in ("syntax", "duplicate"):
            raise error(f"{path}:{err.line}:{err.column}: not valid YAML: {err.problem}",
                        ) from None
        raise error(str(err)) from None


def _position(doc: Loaded, loc: tuple[int | str, ...]) -> tuple[int, int] | None:
    """1-based (line, column) of the deepest key of ``loc`` that the YAML tree has."""
    node: Any = doc.data
    found: tuple[int, int] | None = None
    path: KeyPath = ()
    for key in loc:
        if isinstance(key, str) and isinstance(node, dict) and key not in node:
            continue  # a union member's name (FieldSpec, str), not a key of the file
        where = doc.positions.keys.get((*path, key))
        if where is None:  # no such key or item, or no container at all
            break
        found, node, path = where, node[key], (*path, key)
    return found


_UNION_TAGS = frozenset({"str", "list[str]", "FieldSpec"})


def _relevant(data: Any, loc: tuple[int | str, ...]) -> bool:
    """Of a union's errors, keep those of the member the value's shape asked for: a mapping
    is a FieldSpec, a string or list is a column name (or names)."""
    node = data
    for key in loc:
        if key in _UNION_TAGS:
            wants_mapping = key == "FieldSpec"
            return isinstance(node, dict) == wants_mapping
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return True
    return True


def load_mapping(path: Path) -> Mapping:
    """A mapping YAML file (safe loading), validated; mistakes raise MappingError with
    ``file:line:col: what was expected``."""
    doc = read_yaml_file(path, "a mapping file")
    data = doc.data
    if not isinstance(data, dict):
        raise MappingError(f"{path}:1:1: expected a mapping with source:, id: and fields")
    model: type[BaseModel] = (HistoryMapping if data.get("kind") in HISTORY_FIELDS
                              else SourceMapping)
    try:
        return model.model_validate(data)  # type: ignore[return-value]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            if not _relevant(data, loc):
                continue
            pos = _position(doc, loc)
            where = f"{path}:{pos[0]}:{pos[1]}" if pos else f"{path}:1:1"
            dotted = ".".join(str(p) for p in loc if p not in _UNION_TAGS) or "(top)"
            lines.append(f"{where}: {dotted}: {err['msg']}")
        raise MappingError("\n".join(lines)) from None


@dataclass(frozen=True)
class Rejection:
    reason: str


@dataclass(frozen=True)
class HistoryRow:
    external_id: str
    customer_source: str
    customer_external_id: str
    values: dict[str, Any]


def _spec(spec: Spec) -> FieldSpec:
    if isinstance(spec, FieldSpec):
        return spec
    return _plain_spec(spec if isinstance(spec, str) else tuple(spec))


@lru_cache(maxsize=1024)
def _plain_spec(columns: str | tuple[str, ...]) -> FieldSpec:
    return FieldSpec(field=columns if isinstance(columns, str) else list(columns))


def _text(raw: dict[str, Any], spec: Spec | None) -> str | None:
    if spec is None:
        return None
    if isinstance(spec, str):  # one column, as is: the common case, kept cheap
        found = raw.get(spec)
        return None if found is None else (str(found).strip() or None)
    fs = _spec(spec)
    columns = fs.field if isinstance(fs.field, list) else [fs.field]
    parts = [str(raw[c]).strip() for c in columns if raw.get(c) not in (None, "")]
    value = " ".join(p for p in parts if p) or None
    if value is not None and fs.map:
        value = fs.map.get(value, value)
    return value


def _moment(raw: dict[str, Any], spec: Spec | None) -> datetime | None:
    text = _text(raw, spec)
    if text is None or spec is None:
        return None
    fs = _spec(spec)
    moment = (datetime.strptime(text, fs.format) if fs.format  # noqa: DTZ007 (zone below)
              else datetime.fromisoformat(text))
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(fs.timezone))


def _day(raw: dict[str, Any], spec: Spec | None) -> date | None:
    text = _text(raw, spec)
    if text is None or spec is None:
        return None
    fs = _spec(spec)
    if fs.format:
        return datetime.strptime(text, fs.format).date()  # noqa: DTZ007 (a date, no time)
    return date.fromisoformat(text)


def _values(raw: dict[str, Any], column: str) -> list[str]:
    """A column's values: a JSON list gives several, a scalar one."""
    value = raw.get(column)
    if value in (None, ""):
        return []
    if isinstance(value, list):
        return [str(v) for v in value if v not in (None, "")]
    return [str(value)]


_ACCOUNT_NOISE = re.compile(r"[\s\-./]")


def map_record(raw: dict[str, Any], mapping: SourceMapping, region: str,
               received_at: datetime) -> SourceRecord | Rejection:
    """One source row as a SourceRecord; a row that cannot be one is rejected with why."""
    external_id = str(raw.get(mapping.id) or "").strip()
    if not external_id:
        return Rejection(f"missing id (column {mapping.id!r})")
    phones: list[str] = []
    for column in mapping.phones:
        for value in _values(raw, column):
            phone = normalize(value, region)
            if phone.e164 is None:
                return Rejection(f"bad phone in {column!r}: {phone.reason}")
            if phone.e164 not in phones:
                phones.append(phone.e164)
    emails: list[str] = []
    for column in mapping.emails:
        for text in _values(raw, column):
            value = text.strip().lower()
            if not value:
                continue
            if "@" not in value or value.startswith("@") or value.endswith("@"):
                return Rejection(f"bad e-mail in {column!r}: {value!r}")
            if value not in emails:
                emails.append(value)
    account = _text(raw, mapping.account_number)
    account = _ACCOUNT_NOISE.sub("", account) or None if account else None
    try:
        seen_at = _moment(raw, mapping.seen_at) or received_at
        date_of_birth = _day(raw, mapping.date_of_birth)
    except ValueError as exc:
        return Rejection(f"bad date: {exc}")
    if not phones and not emails and not account:
        return Rejection("no phone, e-mail or account number: nobody could find this customer")
    return SourceRecord(
        source=mapping.source, external_id=external_id, seen_at=seen_at,
        name=_text(raw, mapping.name), phones=tuple(phones), emails=tuple(emails),
        account_number=account,
        preferred_language=_text(raw, mapping.preferred_language),
        tier=_text(raw, mapping.tier), segment=_text(raw, mapping.segment),
        status=_text(raw, mapping.status), date_of_birth=date_of_birth,
    )


def map_history(raw: dict[str, Any], mapping: HistoryMapping) -> HistoryRow | Rejection:
    """One incident or interaction row, or why it cannot be one."""
    external_id = str(raw.get(mapping.id) or "").strip()
    if not external_id:
        return Rejection(f"missing id (column {mapping.id!r})")
    customer = str(raw.get(mapping.customer) or "").strip()
    if not customer:
        return Rejection(f"missing customer id (column {mapping.customer!r})")
    kinds = HISTORY_FIELDS[mapping.kind]
    values: dict[str, Any] = dict(HISTORY_DEFAULTS[mapping.kind])
    for target, spec in mapping.fields.items():
        try:
            if kinds[target] == "moment":
                value: Any = _moment(raw, spec)
            elif kinds[target] == "bool":
                text = _text(raw, spec)
                value = None if text is None else _BOOLS.get(text.casefold())
                if text is not None and value is None:
                    return Rejection(f"bad {target}: {text!r} is not true/false")
            else:
                value = _text(raw, spec)
        except ValueError as exc:
            return Rejection(f"bad {target}: {exc}")
        if value is not None:
            values[target] = value
    for required in REQUIRED_HISTORY[mapping.kind]:
        if values.get(required) is None:
            return Rejection(f"missing {required}")
    if mapping.kind == "incidents":
        values.setdefault("last_update_at", values.get("closed_at") or values["opened_at"])
    return HistoryRow(external_id, mapping.customers_from, customer, values)
