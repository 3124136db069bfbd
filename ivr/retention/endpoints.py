"""The retention feature's routes: the wrap-up lists the console reads, and the leaving
report for supervisors (JSON; the reports page shows it as its "leaving" section).

* ``GET /agent/retention/lists`` (any signed-in agent): topics, outcomes, leaving reasons
  (code, label, label_he), the code that needs words (``other``), the retention queues,
  and which lists are live (``status``: file / default / last good, with the refusal);
* ``GET /agent/retention/report?since=YYYY-MM-DD&until=YYYY-MM-DD`` (supervisors): the
  leaving report (``ivr.retention.report``), days in the centre's time zone;
* ``GET /agent/retention/customers/{id}/risk`` (supervisors): one customer's signal.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from ivr.agents.endpoints import Agent, supervisor
from ivr.retention.report import leaving_report
from ivr.retention.service import RetentionService
from ivr.services import web

router = APIRouter(prefix="/agent/retention", tags=["retention"])
#: An id as the database stores it (INTEGER): anything else is a 422, not a 500.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Supervisor = Annotated[dict[str, Any], Depends(supervisor)]


def _service(request: Request) -> RetentionService:
    service = web(request).services.retention
    if service is None:
        raise HTTPException(503, "the retention feature is not configured")
    return service


@router.get("/lists")
def lists(request: Request, agent: Agent) -> dict[str, Any]:
    service = _service(request)
    status = service.live.status()
    return {**service.lists.public(),
            "status": {"file": status.file, "source": status.source, "error": status.error}}


@router.get("/report")
async def report(request: Request, agent: Supervisor,
                 since: Annotated[date | None, Query()] = None,
                 until: Annotated[date | None, Query()] = None,
                 at_risk: Annotated[int, Query(ge=0, le=500)] = 50) -> dict[str, Any]:
    state = web(request)
    service = _service(request)
    zone = ZoneInfo(state.agents.centre_timezone())
    start = datetime(since.year, since.month, since.day, tzinfo=zone) if since else None
    end = (datetime(until.year, until.month, until.day, tzinfo=zone) + timedelta(days=1)
           if until else None)
    if start and end and start >= end:
        raise HTTPException(422, "since is after until")
    now = state.clock.now()
    lists = service.lists

    def read() -> dict[str, Any]:
        with state.services.engine.connect() as conn:
            return leaving_report(conn, lists, now, zone, since=start, until=end,
                                  at_risk_limit=at_risk)

    result: dict[str, Any] = await state.db.run(read)
    return result


@router.get("/customers/{customer_id}/risk")
async def customer_risk(request: Request, customer_id: RowId,
                        agent: Supervisor) -> dict[str, Any]:
    state = web(request)
    service = _service(request)
    now = state.clock.now()

    def read() -> dict[str, Any]:
        with state.services.engine.connect() as conn:
            return service.risk(conn, customer_id, now).as_dict()

    result: dict[str, Any] = await state.db.run(read)
    return result
