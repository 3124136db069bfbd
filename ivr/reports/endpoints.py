"""The supervisor's reports on the web: ``GET /agent/reports`` (the page, in the agent's
language), ``GET /agent/reports/{name}.csv`` (one report's tables as CSV) and the page's
stylesheet. Signed-in supervisors only, as ``/agent/supervisor`` (the console's cookie or
a bearer token); a browser without a session is sent to the console's sign-in."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from ivr.agents.endpoints import Creds, current_agent
from ivr.reports.model import Block, Report, ReportRequest, Table
from ivr.reports.page import page
from ivr.reports.registry import REPORTS, find
from ivr.reports.render import as_csv
from ivr.reports.service import request_for
from ivr.services import web

STATIC = Path(__file__).resolve().parent / "static"
CSP = ("default-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
router = APIRouter(prefix="/agent/reports", tags=["reports"])
OPTIONS = sorted({o for r in REPORTS for o in r.options})


async def _supervisor(request: Request, creds: Any) -> dict[str, Any]:
    agent = await current_agent(request, creds)
    if agent["role"] != "admin":
        raise HTTPException(403, "supervisors only")
    return agent


def _request(request: Request, agent: dict[str, Any], start: date | None, end: date | None,
             by: str) -> ReportRequest:
    state = web(request)
    zone = ZoneInfo(state.agents.centre_timezone())
    options = {o: v for o in OPTIONS if (v := request.query_params.get(o))}
    try:
        return request_for(state.settings, zone, state.clock.now(), start=start, end=end,
                           by=by, lang=str(agent.get("language") or "en"), options=options)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


def _build(request: Request, reports: tuple[Report, ...], req: ReportRequest,
           ) -> list[tuple[Report, list[Block]]]:
    engine = web(request).services.engine
    with engine.connect() as conn:
        return [(r, r.build(conn, req)) for r in reports]


Start = Annotated[date | None, Query(alias="from")]
End = Annotated[date | None, Query(alias="to")]
By = Annotated[Literal["day", "week"], Query()]


@router.get("", response_class=HTMLResponse)
async def reports_page(request: Request, creds: Creds, start: Start = None, end: End = None,
                       by: By = "day") -> Response:
    try:
        agent = await _supervisor(request, creds)
    except HTTPException as exc:
        if exc.status_code == 401:
            return RedirectResponse("/agent/", status_code=303)
        raise
    req = _request(request, agent, start, end, by)
    sections = await web(request).db.run(_build, request, REPORTS, req)
    html = page(sections, req, web(request).settings.default_region)
    return HTMLResponse(html, headers={"Content-Security-Policy": CSP,
                                       "Cache-Control": "no-store"})


@router.get("/reports.css", include_in_schema=False)
async def stylesheet() -> Response:
    return FileResponse(STATIC / "reports.css", media_type="text/css")


@router.get("/{name}.csv")
async def report_csv(request: Request, creds: Creds, name: str, start: Start = None,
                     end: End = None, by: By = "day") -> Response:
    agent = await _supervisor(request, creds)
    report = find(name)
    if report is None:
        raise HTTPException(404, f"no report {name!r} (reports: "
                                 f"{', '.join(r.name for r in REPORTS)})")
    req = _request(request, agent, start, end, by)
    [(_, blocks)] = await web(request).db.run(_build, request, (report,), req)
    body = as_csv([b for b in blocks if isinstance(b, Table)])
    filename = f"{name}-{req.start.isoformat()}-{req.end.isoformat()}-{req.by}.csv"
    return Response(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store", "Content-Language": req.lang})
