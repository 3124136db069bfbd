"""Reports as people and programs read them: values formatted per kind and language, a
table as CSV (column keys as headers, raw values: shares as 0..1, seconds as numbers) or
as aligned text for a terminal. Pure."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date
from typing import Any

from ivr.reports.model import Block, Column, ReportRequest, Table
from ivr.reports.strings import format_period, label


def shown(value: Any, column: Column, req: ReportRequest) -> str:
    """A value as a manager reads it: ``87.5%``, ``42 s``, ``3.75``, a local date."""
    if value is None:
        return "–"
    if column.kind == "pct":
        return f"{float(value) * 100:.1f}%"
    if column.kind == "seconds":
        seconds = float(value)
        if seconds >= 120:
            return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"
        unit = "שנ׳" if req.lang == "he" else "s"
        return f"{seconds:g} {unit}"
    if column.kind == "score":
        return f"{float(value):.2f}"
    if column.kind == "date":
        return format_period(req.lang, date.fromisoformat(str(value)), req.by)
    if value == "*":  # the "all queues" row
        return label(req.lang, "reports.all")
    return str(value)


def header(column: Column, req: ReportRequest) -> str:
    return label(req.lang, column.label, seconds=req.service_level_seconds)


def as_csv(tables: Sequence[Table]) -> str:
    """Each table's rows under its column keys; several tables are separated by a blank
    line and a ``# name`` line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for n, table in enumerate(tables):
        if len(tables) > 1:
            out.write(("\n" if n else "") + f"# {table.name}\n")
        writer.writerow([c.key for c in table.columns])
        for row in table.rows:
            writer.writerow(["" if row.get(c.key) is None else row.get(c.key)
                             for c in table.columns])
    return out.getvalue()


def as_json(blocks: Sequence[Block]) -> str:
    tables = {b.name: list(b.rows) for b in blocks if isinstance(b, Table)}
    return json.dumps(tables, ensure_ascii=False, indent=2)


def as_text(table: Table, req: ReportRequest) -> str:
    """Aligned columns for a terminal (``ivr reports <name>`` without --csv/--json)."""
    heads = [header(c, req) for c in table.columns]
    body = [[shown(r.get(c.key), c, req) for c in table.columns] for r in table.rows]
    widths = [max([len(h), *(len(line[i]) for line in body)]) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True))
              for line in body]
    return "\n".join(line.rstrip() for line in lines)
