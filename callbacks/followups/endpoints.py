"""Routes of follow-ups and promises.

Twilio (signed, like every webhook): ``/twilio/followup-answer?a=<attempt>`` (the survey
call was answered: a person is redirected to the survey, a machine hears a short message)
and ``/twilio/followup-status?a=<attempt>`` (its status callbacks).

JSON:

* ``GET /agent/followups`` (supervisors): open follow-ups, promises open, at risk, broken;
* ``POST /agent/promises/{id}/kept`` (any signed-in agent): the promise was kept;
* ``POST /api/promises/{id}/kept`` (an integration token): the same, for a CRM.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from starlette.responses import PlainTextResponse, Response

from callbacks.followups.promises import PromiseError
from callbacks.followups.service import FollowUpService
from ivr.agents.endpoints import Agent, supervisor
from ivr.agents.ports import Outcome
from ivr.auth.dependencies import require_integration
from ivr.calls import twiml
from ivr.calls.webhook import TwilioRequest, failed, number, routes, xml
from ivr.menu.engine import Hangup
from ivr.services import web

log = logging.getLogger("ivr.webhooks")


def _service(request: Request) -> FollowUpService:
    service = web(request).services.followups
    if service is None:
        raise HTTPException(503, "follow-ups are not configured (IVR_FOLLOWUPS_FILE)")
    return service


async def followup_answer(request: Request, tw: TwilioRequest) -> Response:
    """Our follow-up call was answered (``calls.create`` url)."""
    out = Outcome()
    attempt = number(tw.query.get("a", ""), 12)
    service = web(request).services.followups
    if attempt is None or service is None:
        log.warning("follow-up answer without an attempt or a service call=%s", tw.call_sid)
        return xml(twiml.render([Hangup()], 0))
    try:
        answer = await web(request).db.run(service.answered, attempt, tw.params, out)
        await web(request).after_commit(out)
        return xml(answer)
    except Exception:
        log.exception("follow-up answer failed call=%s", tw.call_sid)
        failed(request)
        return xml(twiml.render([Hangup()], 0))


async def followup_status(request: Request, tw: TwilioRequest) -> Response:
    """Status callbacks of a follow-up call (initiated … completed, busy, no-answer …)."""
    out = Outcome()
    attempt = number(tw.query.get("a", ""), 12)
    service = web(request).services.followups
    if attempt is None or service is None:
        return xml(twiml.empty())
    try:
        await web(request).db.run(service.leg_status, attempt, tw.params, out)
        await web(request).after_commit(out)
    except Exception:
        log.exception("follow-up status not recorded call=%s", tw.call_sid)
        failed(request)
        return PlainTextResponse("status not recorded; retry", status_code=503)
    return xml(twiml.empty())


ROUTES = routes(followup_answer, followup_status)

router = APIRouter(tags=["followups"])
#: An id as the database stores it (INTEGER): anything else is a 422, not a 500.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/agent/followups")
async def board(request: Request, _admin: Annotated[dict[str, Any], Depends(supervisor)],
                ) -> dict[str, Any]:
    service = _service(request)
    state = web(request)

    def read() -> dict[str, Any]:
        with service.engine.connect() as conn:
            return service.board(conn, state.clock.now())
    return await state.db.run(read)


async def _kept(request: Request, promise_id: RowId, by: str) -> dict[str, Any]:
    service = _service(request)
    state = web(request)

    def write() -> dict[str, Any]:
        with service.engine.begin() as conn:
            return service.promises.mark_kept(conn, promise_id, by, state.clock.now())
    try:
        return await state.db.run(write)
    except PromiseError:
        raise HTTPException(404, "no such promise") from None


@router.post("/agent/promises/{promise_id}/kept")
async def agent_kept(request: Request, promise_id: RowId, agent: Agent) -> dict[str, Any]:
    return await _kept(request, promise_id, f"agent:{agent['username']}")


@router.post("/api/promises/{promise_id}/kept",
             dependencies=[Depends(require_integration)])
async def api_kept(request: Request, promise_id: RowId) -> dict[str, Any]:
    return await _kept(request, promise_id, "api")
