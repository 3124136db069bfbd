"""Look-ups for people: one customer's whole picture, and search by phone, account or name.

Used by ``ivr crm show`` and the agent console's ``/crm/customers`` API.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select

from crm_sync.models import customer_emails as emails
from crm_sync.models import customer_phones as phones
from crm_sync.models import customers, incidents, interactions
from crm_sync.models import merge_events as merges
from crm_sync.models import source_records as records
from crm_sync.phones import is_withheld, normalize

SEARCH_LIMIT = 50


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _row(row: Any) -> dict[str, Any]:
    return {k: _plain(v) for k, v in row._mapping.items()}


def merged_into(conn: Connection, customer_id: int) -> int | None:
    """Where a customer folded away by a merge lives now (following chains), or None."""
    seen: set[int] = set()
    current = customer_id
    while current not in seen:
        seen.add(current)
        survivor = conn.execute(
            select(merges.c.customer_id).where(merges.c.kind == "merge",
                                               merges.c.other_customer_id == current)
            .order_by(merges.c.id.desc()).limit(1)).scalar()
        if survivor is None:
            break
        current = int(survivor)
    return current if current != customer_id else None


def customer_document(conn: Connection, customer_id: int, *,
                      history: int = 20) -> dict[str, Any] | None:
    """The golden record, its phones/e-mails, every source record, lineage, open and recent
    incidents, the last ``history`` interactions and merge history; None if unknown."""
    row = conn.execute(select(customers).where(customers.c.id == customer_id)).one_or_none()
    if row is None:
        return None
    doc = _row(row)
    doc["phones"] = list(conn.execute(select(phones.c.e164).where(
        phones.c.customer_id == customer_id).order_by(phones.c.e164)).scalars())
    doc["emails"] = list(conn.execute(select(emails.c.email).where(
        emails.c.customer_id == customer_id).order_by(emails.c.email)).scalars())
    doc["sources"] = [_row(r) for r in conn.execute(
        select(records.c.source, records.c.external_id, records.c.first_seen_at,
               records.c.last_seen_at, records.c.raw)
        .where(records.c.customer_id == customer_id)
        .order_by(records.c.source, records.c.external_id))]
    doc["incidents"] = [_row(r) for r in conn.execute(
        select(incidents.c.id, incidents.c.source, incidents.c.external_id,
               incidents.c.category, incidents.c.status, incidents.c.summary,
               incidents.c.branch, incidents.c.opened_at, incidents.c.closed_at,
               incidents.c.last_update_at)
        .where(incidents.c.customer_id == customer_id)
        .order_by((incidents.c.status == "open").desc(), incidents.c.last_update_at.desc())
        .limit(history))]
    doc["interactions"] = [_row(r) for r in conn.execute(
        select(interactions.c.id, interactions.c.source, interactions.c.channel,
               interactions.c.direction, interactions.c.queue, interactions.c.agent,
               interactions.c.started_at, interactions.c.ended_at, interactions.c.topic,
               interactions.c.outcome, interactions.c.resolved,
               interactions.c.promised_action, interactions.c.promised_due_at,
               interactions.c.notes, interactions.c.call_sid)
        .where(interactions.c.customer_id == customer_id)
        .order_by(interactions.c.started_at.desc()).limit(history))]
    doc["merges"] = [_row(r) for r in conn.execute(
        select(merges.c.id, merges.c.kind, merges.c.customer_id, merges.c.other_customer_id,
               merges.c.source_record_ids, merges.c.actor, merges.c.reason, merges.c.at)
        .where(or_(merges.c.customer_id == customer_id,
                   merges.c.other_customer_id == customer_id))
        .order_by(merges.c.id))]
    doc["open_incidents"] = sum(1 for i in doc["incidents"] if i["status"] == "open")
    return doc


def _summaries(conn: Connection, ids: list[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    rows = conn.execute(
        select(customers.c.id, customers.c.name, customers.c.account_number,
               customers.c.tier, customers.c.status, customers.c.preferred_language)
        .where(customers.c.id.in_(ids)).order_by(customers.c.id))
    return [_row(r) for r in rows]


def search(conn: Connection, *, phone: str | None = None, account: str | None = None,
           name: str | None = None, region: str = "IL") -> list[dict[str, Any]]:
    """Customers matching every given criterion (phone any format, account, name part).

    A name part is matched as typed: ``%``, ``_`` (and the escape character) are plain
    characters, not LIKE wildcards. A criterion with a NUL matches nobody: no stored value
    holds one (PostgreSQL's text cannot), and SQLite's LIKE would stop reading at it."""
    if any("\0" in v for v in (phone, account, name) if v is not None):
        return []
    query = select(customers.c.id)
    if phone is not None:
        if is_withheld(phone):
            return []
        e164 = normalize(phone, region).e164
        if e164 is None:
            return []
        query = query.where(customers.c.id.in_(
            select(phones.c.customer_id).where(phones.c.e164 == e164)))
    if account is not None:
        query = query.where(customers.c.account_number == account.replace(" ", "")
                            .replace("-", ""))
    if name is not None and name.strip():
        query = query.where(func.lower(customers.c.name).contains(
            name.strip().lower(), autoescape=True))
    ids = list(conn.execute(query.order_by(customers.c.id).limit(SEARCH_LIMIT)).scalars())
    return _summaries(conn, ids)


def find(conn: Connection, ref: str, region: str = "IL") -> list[dict[str, Any]]:
    """``ivr crm show`` argument: a customer id (#17), an account number, or a phone."""
    text = ref.strip()
    if text.startswith("#") and text[1:].isdigit():
        return _summaries(conn, [int(text[1:])])
    by_account = search(conn, account=text)
    if by_account:
        return by_account
    return search(conn, phone=text, region=region)
