"""The leaving report as the reports page and ``ivr reports leaving`` show it: the
retention feature's figures (``ivr.retention.report.leaving_report``) as tables and charts.

Owned by the retention feature (issue 17.4). The period is the request's days in the
centre's zone; months are that zone's. The admin's lists (``wrapup.yaml``, from the
request's settings: reason labels, the retention queues, the risk weights) are read live,
the last good ones kept (``ivr.retention.config.LiveLists``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from ivr.i18n import text
from ivr.reports.model import Block, Chart, Column, ReportRequest, Series, Table
from ivr.retention.config import DEFAULT_FILE, LiveLists, WrapUpLists
from ivr.retention.report import DIMENSIONS, leaving_report

_LIVE: dict[Path, LiveLists] = {}


def lists_for(req: ReportRequest) -> WrapUpLists:
    """The live lists of the request's ``IVR_WRAPUP_FILE`` (one watcher per file)."""
    path = req.settings.wrapup_file if req.settings is not None else DEFAULT_FILE
    live = _LIVE.get(path)
    if live is None:
        live = _LIVE[path] = LiveLists(path)
    return live.current()


def build(conn: Connection, req: ReportRequest) -> list[Block]:
    lists = lists_for(req)
    since, until = req.utc_bounds()
    data = leaving_report(conn, lists, req.now, req.zone, since=since, until=until)
    labels: dict[str, str] = data["labels"]
    he = req.lang == "he"
    if he:
        labels = {**labels, **{r.code: r.label_he for r in lists.leaving_reasons
                               if r.label_he}}
    codes = list(data["reasons"])
    total = data["total"]
    blocks: list[Block] = [
        Table("leaving_reasons", "reports.leaving.reasons",
              [Column("reason", "reports.leaving.col.reason", "text"),
               Column("code", "reports.leaving.col.code", "text"),
               Column("interviews", "reports.leaving.col.interviews", "int"),
               Column("share", "reports.leaving.col.share", "pct")],
              [{"reason": labels.get(c, c), "code": c, "interviews": n,
                "share": n / total if total else None} for c, n in data["reasons"].items()],
              note="reports.leaving.reasons_note"),
        Chart("leaving_by_reason", "reports.leaving.chart", "bar",
              categories=[labels.get(c, c) for c in codes],
              series=[Series("reports.leaving.col.interviews",
                             [float(data["reasons"][c]) for c in codes])]),
    ]
    for dimension in DIMENSIONS:
        blocks.append(_crosstab(dimension, data["by"][dimension], codes, labels))
    saved = data["saved"]
    everything = text(req.lang, "reports.leaving.all")
    blocks.append(Table(
        "leaving_saved", "reports.leaving.saved",
        [Column("month", "reports.leaving.col.month", "text"),
         Column("asked", "reports.leaving.col.asked", "int"),
         Column("stayed", "reports.leaving.col.stayed", "int"),
         Column("left", "reports.leaving.col.left", "int"),
         Column("unknown", "reports.leaving.col.unknown", "int"),
         Column("saved_rate", "reports.leaving.col.saved_rate", "pct")],
        [_saved_row(m["month"], m) for m in saved["by_month"]]
        + [_saved_row(everything, saved)],
        note="reports.leaving.saved_note"))
    if saved["by_month"]:
        blocks.append(Chart("leaving_saved_by_month", "reports.leaving.saved_chart", "line",
                            categories=[m["month"] for m in saved["by_month"]],
                            series=[Series("reports.leaving.col.saved_rate",
                                           [m["rate"] for m in saved["by_month"]])],
                            unit="pct"))
    policy = lists.leaving_risk
    blocks.append(Table(
        "leaving_at_risk", "reports.leaving.at_risk",
        [Column("customer_id", "reports.leaving.col.customer", "int"),
         Column("name", "reports.leaving.col.name", "text"),
         Column("tier", "reports.leaving.col.tier", "text"),
         Column("segment", "reports.leaving.col.segment", "text"),
         Column("score", "reports.leaving.col.score", "int"),
         Column("signals", "reports.leaving.col.signals", "text")],
        [{"customer_id": p["customer_id"], "name": p["name"], "tier": p["tier"],
          "segment": p["segment"], "score": p["score"], "signals": "; ".join(p["reasons"])}
         for p in data["at_risk"]],
        note=text(req.lang, "reports.leaving.at_risk_note", days=policy.window.days,
                  threshold=policy.threshold)))
    return blocks


def _saved_row(month: str, figures: dict[str, Any]) -> dict[str, Any]:
    return {"month": month, "asked": figures["asked"], "stayed": figures["stayed"],
            "left": figures["left"], "unknown": figures["unknown"],
            "saved_rate": figures["rate"]}


def _crosstab(dimension: str, groups: list[dict[str, Any]], codes: list[str],
              labels: dict[str, str]) -> Table:
    """One row per value of the dimension, a column per reason (most frequent first)."""
    columns = [Column("value", f"reports.leaving.col.{dimension}"
                      if dimension in ("tier", "segment", "month") else
                      "reports.leaving.col.value", "text"),
               Column("interviews", "reports.leaving.col.interviews", "int")]
    columns += [Column(c, labels.get(c, c), "int") for c in codes]
    rows = [{"value": g["value"], "interviews": g["total"],
             **{c: g["reasons"].get(c, 0) for c in codes}} for g in groups]
    return Table(f"leaving_by_{dimension}", f"reports.leaving.by_{dimension}", columns, rows)
