"""Declarative per-source field mappings: a raw CSV row or JSON object -> a SourceRecord, or a
rejection that says why. Pure: the importers (next step of the customer-store issue) read
files and write the store around it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from crm_sync.identity import SourceRecord
from crm_sync.phones import normalize


class FieldSpec(BaseModel):
    """Where a golden field comes from: one column, or several joined, with value mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str | list[str]
    map: dict[str, str] = Field(default_factory=dict, description="source value -> ours")
    format: str | None = Field(default=None, description="strptime format for dates/times")
    timezone: str = "UTC"


Spec = str | list[str] | FieldSpec


class SourceMapping(BaseModel):
    """One source system's layout (a ``--mapping`` YAML file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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


@dataclass(frozen=True)
class Rejection:
    reason: str


def _spec(spec: Spec) -> FieldSpec:
    return spec if isinstance(spec, FieldSpec) else FieldSpec(field=spec)


def _text(raw: dict[str, Any], spec: Spec | None) -> str | None:
    if spec is None:
        return None
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


def map_record(raw: dict[str, Any], mapping: SourceMapping, region: str,
               received_at: datetime) -> SourceRecord | Rejection:
    """One source row as a SourceRecord; a row that cannot be one is rejected with why."""
    external_id = str(raw.get(mapping.id) or "").strip()
    if not external_id:
        return Rejection(f"missing id (column {mapping.id!r})")
    phones: list[str] = []
    for column in mapping.phones:
        value = raw.get(column)
        if value in (None, ""):
            continue
        phone = normalize(str(value), region)
        if phone.e164 is None:
            return Rejection(f"bad phone in {column!r}: {phone.reason}")
        if phone.e164 not in phones:
            phones.append(phone.e164)
    emails = []
    for column in mapping.emails:
        value = str(raw.get(column) or "").strip().lower()
        if not value:
            continue
        if "@" not in value or value.startswith("@") or value.endswith("@"):
            return Rejection(f"bad e-mail in {column!r}: {value!r}")
        emails.append(value)
    try:
        seen_at = _moment(raw, mapping.seen_at) or received_at
        date_of_birth = _day(raw, mapping.date_of_birth)
    except ValueError as exc:
        return Rejection(f"bad date: {exc}")
    if not phones and not emails and not _text(raw, mapping.account_number):
        return Rejection("no phone, e-mail or account number: nobody could find this customer")
    return SourceRecord(
        source=mapping.source, external_id=external_id, seen_at=seen_at,
        name=_text(raw, mapping.name), phones=tuple(phones), emails=tuple(emails),
        account_number=_text(raw, mapping.account_number),
        preferred_language=_text(raw, mapping.preferred_language),
        tier=_text(raw, mapping.tier), segment=_text(raw, mapping.segment),
        status=_text(raw, mapping.status), date_of_birth=date_of_birth,
    )
