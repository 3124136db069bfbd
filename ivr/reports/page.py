"""The supervisor's reports page, rendered on the server: a form (from, to, per day or
week), then each report of the registry as a section — its tables as HTML, its charts as
inline SVG, a CSV link. In the agent's language: Hebrew pages are ``dir="rtl"`` (the CSS
uses logical properties only, so the layout mirrors). No script. Pure: blocks in, HTML
out."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import urlencode

from ivr.i18n import locale_tag
from ivr.reports.charts import svg
from ivr.reports.model import Block, Chart, Report, ReportRequest, Table
from ivr.reports.render import header, shown
from ivr.reports.strings import direction, format_day, label, language

NUMERIC = frozenset({"int", "pct", "seconds", "score"})


def _t(req: ReportRequest, key: str, **params: object) -> str:
    return escape(label(req.lang, key, seconds=req.service_level_seconds, **params))


def table_html(table: Table, req: ReportRequest) -> str:
    head = "".join(f'<th scope="col" data-key="{escape(c.key)}">{escape(header(c, req))}</th>'
                   for c in table.columns)
    body = []
    for row in table.rows:
        cells = []
        for c in table.columns:
            value = escape(shown(row.get(c.key), c, req))
            if c.kind in NUMERIC:
                cells.append(f'<td class="num" data-key="{escape(c.key)}">{value}</td>')
            else:
                cells.append(f'<td dir="auto" data-key="{escape(c.key)}">{value}</td>')
        total = ' class="total"' if row.get("queue") == "*" else ""
        body.append(f"<tr{total}>{''.join(cells)}</tr>")
    if not body:
        return f'<p class="empty">{_t(req, "reports.empty")}</p>'
    note = f'<p class="note">{_t(req, table.note)}</p>' if table.note else ""
    return (f'<div class="scroll"><table data-table="{escape(table.name)}">'
            f"<caption>{_t(req, table.title)}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
            f"{note}")


def chart_html(chart: Chart, req: ReportRequest) -> str:
    title = label(req.lang, chart.title, seconds=req.service_level_seconds)
    names = [label(req.lang, s.label, seconds=req.service_level_seconds)
             for s in chart.series]
    return f'<figure class="chart">{svg(chart, title, names)}' \
           f"<figcaption>{escape(title)}</figcaption></figure>"


def query(req: ReportRequest, **extra: str) -> str:
    params = {"from": req.start.isoformat(), "to": req.end.isoformat(), "by": req.by,
              **req.options, **extra}
    return urlencode(params)


def section(report: Report, blocks: Sequence[Block], req: ReportRequest) -> str:
    parts = [f'<section id="report-{escape(report.name)}" data-report="{escape(report.name)}">'
             f"<h2>{_t(req, report.title)}"
             f' <a class="csv" href="/agent/reports/{escape(report.name)}.csv?'
             f'{escape(query(req))}">{_t(req, "reports.form.csv")}</a></h2>']
    tables = [b for b in blocks if isinstance(b, Table)]
    charts = [b for b in blocks if isinstance(b, Chart)]
    has_rows = any(t.rows for t in tables)
    parts += [table_html(t, req) for t in tables]
    if charts and has_rows:
        parts.append('<div class="charts">' + "".join(chart_html(c, req) for c in charts)
                     + "</div>")
    parts.append("</section>")
    return "".join(parts)


def page(sections: Sequence[tuple[Report, Sequence[Block]]], req: ReportRequest,
         region: str = "IL") -> str:
    lang = language(req.lang)
    by_options = "".join(
        f'<option value="{b}"{" selected" if req.by == b else ""}>'
        f"{_t(req, f'reports.by.{b}')}</option>" for b in ("day", "week"))
    rng = _t(req, "reports.range", start=format_day(lang, req.start),
             end=format_day(lang, req.end), by=label(lang, f"reports.by.{req.by}"),
             zone=req.zone.key)
    nav = "".join(f'<a href="#report-{escape(r.name)}">{_t(req, r.title)}</a>'
                  for r, _ in sections)
    body = "".join(section(r, blocks, req) for r, blocks in sections)
    hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
                     for k, v in req.options.items())
    return (
        f'<!doctype html><html lang="{locale_tag(lang, region)}" dir="{direction(lang)}">'
        f'<head><meta charset="utf-8"><meta name="viewport" '
        f'content="width=device-width, initial-scale=1">'
        f"<title>{_t(req, 'reports.title')}</title>"
        f'<link rel="stylesheet" href="/agent/reports/reports.css"></head><body>'
        f'<header><h1>{_t(req, "reports.title")}</h1>'
        f'<a class="back" href="/agent/">{_t(req, "reports.back")}</a></header>'
        f'<form method="get" action="/agent/reports">'
        f'<label>{_t(req, "reports.form.from")} <input type="date" name="from" '
        f'value="{req.start.isoformat()}"></label>'
        f'<label>{_t(req, "reports.form.to")} <input type="date" name="to" '
        f'value="{req.end.isoformat()}"></label>'
        f'<label>{_t(req, "reports.form.by")} <select name="by">{by_options}</select></label>'
        f'{hidden}<button type="submit">{_t(req, "reports.form.show")}</button></form>'
        f'<p class="range">{rng}</p><nav>{nav}</nav><main>{body}</main></body></html>')
