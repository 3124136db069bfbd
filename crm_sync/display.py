"""A customer and tables as ``ivr crm`` prints them: rich on a terminal, full width when
piped (no column cut at 80 characters), times in the centre's zone (``IVR_TIMEZONE``)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

PIPED_WIDTH = 1000  # characters a line may take when stdout is no terminal


def console() -> Any:
    """A rich console for stdout: the terminal's width on a terminal; piped or redirected,
    wide enough that no column is cut (rich would assume 80 characters)."""
    from rich.console import Console  # noqa: PLC0415

    return Console(highlight=False, width=None if sys.stdout.isatty() else PIPED_WIDTH)


def local_time(value: str | None, zone: ZoneInfo) -> str:
    """A stored instant (ISO 8601, UTC) as the centre's wall-clock time, to the minute."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value[:16]
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def print_customer(doc: dict[str, Any], zone: ZoneInfo) -> None:
    """``ivr crm show``: the golden record, conflicting values, source records, incidents,
    recent interactions and merges (``crm_sync.profile.customer_document``)."""
    from rich.table import Table  # noqa: PLC0415

    out = console()
    title = f"customer #{doc['id']}: {doc['name'] or '(no name)'}"
    if out.is_terminal:
        out.rule(title)
    else:
        out.print(title)
    out.print(f"times in {zone.key}")
    out.print(f"account {doc['account_number'] or '-'}   tier {doc['tier'] or '-'}   "
              f"segment {doc['segment'] or '-'}   status {doc['status']}   "
              f"language {doc['preferred_language'] or '-'}   born "
              f"{doc['date_of_birth'] or '-'}")
    out.print(f"phones {', '.join(doc['phones']) or '-'}   e-mails "
              f"{', '.join(doc['emails']) or '-'}")
    conflicts = {k: v for k, v in doc["lineage"].items()
                 if len({json.dumps(c['value']) for c in v}) > 1}
    for name, candidates in conflicts.items():
        values = "; ".join(f"{c['value']} ({c['source']}/{c['external_id']}"
                           f"{', chosen' if c['chosen'] else ''})" for c in candidates)
        out.print(f"  {name}: {values}")
    sources = Table("source", "id", "first seen", "last seen", title="source records")
    for s in doc["sources"]:
        sources.add_row(s["source"], s["external_id"], local_time(s["first_seen_at"], zone),
                        local_time(s["last_seen_at"], zone))
    out.print(sources)
    if doc["incidents"]:
        table = Table("status", "category", "source/branch", "opened", "last update",
                      title=f"incidents ({doc['open_incidents']} open)")
        for i in doc["incidents"]:
            table.add_row(i["status"], i["category"] or "-",
                          f"{i['source']}/{i['branch'] or '-'}",
                          local_time(i["opened_at"], zone),
                          local_time(i["last_update_at"], zone))
        out.print(table)
    if doc["interactions"]:
        table = Table("when", "channel", "dir", "queue", "agent", "topic", "outcome",
                      "resolved", title="recent interactions")
        for i in doc["interactions"]:
            table.add_row(local_time(i["started_at"], zone), i["channel"], i["direction"],
                          i["queue"] or "-", i["agent"] or "-", i["topic"] or "-",
                          i["outcome"] or "-", {True: "yes", False: "no"}.get(
                              i["resolved"], "-"))
        out.print(table)
    for m in doc["merges"]:
        out.print(f"  {local_time(m['at'], zone)} {m['kind']} #{m['customer_id']} ← "
                      f"#{m['other_customer_id']} by {m['actor'] or '-'}"
                      f"{': ' + m['reason'] if m['reason'] else ''}")
