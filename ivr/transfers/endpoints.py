"""The console's transfer API: hold and resume, the targets, a transfer and the first
agent's choices during it (join, hand over, cancel). Handlers parse, call
``TransferService``, render (README "Transfers" lists the routes)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ivr.agents.endpoints import Agent, apply, supervisor
from ivr.agents.service import AgentError
from ivr.services import web
from ivr.transfers.service import TransferService

router = APIRouter(tags=["transfers"])
#: A transfer's id as the database stores it (INTEGER): anything else is a 422, not a 500.
TransferId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _service(request: Request) -> TransferService:
    service = web(request).services.transfers
    assert service is not None
    return service


class TransferIn(BaseModel):
    kind: Literal["queue", "agent", "external"]
    target: Annotated[str, Field(min_length=1, max_length=256)]
    mode: Literal["cold", "warm"] = "cold"
    note: Annotated[str, Field(max_length=500)] | None = None


async def _run(request: Request, fn: Any, *args: Any) -> Any:
    try:
        result, out = await web(request).db.run(fn, *args)
    except AgentError as exc:
        undo = getattr(exc, "outcome", None)
        if undo is not None:  # a failed transfer already brought the caller back
            await apply(request, undo)
        raise HTTPException(exc.status, exc.detail) from None
    await apply(request, out)
    return result


@router.post("/agent/calls/{call_sid}/hold")
async def hold(request: Request, call_sid: str, agent: Agent) -> dict[str, Any]:
    """The caller hears the queue's hold music; the call stays yours."""
    return dict(await _run(request, _service(request).hold, agent, call_sid[:64], True))


@router.post("/agent/calls/{call_sid}/resume")
async def resume(request: Request, call_sid: str, agent: Agent) -> dict[str, Any]:
    return dict(await _run(request, _service(request).hold, agent, call_sid[:64], False))


@router.get("/agent/transfer-targets")
async def targets(request: Request, agent: Agent) -> dict[str, Any]:
    """Queues (open now or not), agents (available first), the admin's outside numbers."""
    return dict(await web(request).db.run(_service(request).targets, agent))


@router.post("/agent/calls/{call_sid}/transfer", status_code=202)
async def transfer(request: Request, call_sid: str, body: TransferIn,
                   agent: Agent) -> JSONResponse:
    result = await _run(request, _service(request).transfer, agent, call_sid[:64], body.kind,
                        body.target, body.mode, body.note)
    return JSONResponse({"transfer": result}, status_code=202)


@router.get("/agent/transfers/{transfer_id}")
async def get_transfer(request: Request, transfer_id: TransferId, agent: Agent) -> dict[str, Any]:
    try:
        body = await web(request).db.run(_service(request).get, agent, transfer_id)
    except AgentError as exc:
        raise HTTPException(exc.status, exc.detail) from None
    return {"transfer": body}


async def _act(request: Request, transfer_id: TransferId, agent: dict[str, Any], action: str,
               ) -> dict[str, Any]:
    return {"transfer": await _run(request, _service(request).act, agent, transfer_id,
                                   action)}


@router.post("/agent/transfers/{transfer_id}/join")
async def join(request: Request, transfer_id: TransferId, agent: Agent) -> dict[str, Any]:
    """Warm: all three talk."""
    return await _act(request, transfer_id, agent, "join")


@router.post("/agent/transfers/{transfer_id}/handover")
async def handover(request: Request, transfer_id: TransferId, agent: Agent) -> dict[str, Any]:
    """Warm: the first agent leaves; the second has the caller."""
    return await _act(request, transfer_id, agent, "handover")


@router.post("/agent/transfers/{transfer_id}/cancel")
async def cancel(request: Request, transfer_id: TransferId, agent: Agent) -> dict[str, Any]:
    """The new party is dropped; the caller is back with the first agent."""
    return await _act(request, transfer_id, agent, "cancel")


Supervisor = Annotated[dict[str, Any], Depends(supervisor)]


@router.post("/supervisor/calls/{call_sid}/monitor")
async def monitor(request: Request, call_sid: str, admin: Supervisor) -> dict[str, Any]:
    """Listen to a call: the supervisor joins its conference muted (supervisors only)."""
    return dict(await _run(request, _service(request).listen_in, admin, call_sid[:64],
                           False))


@router.post("/supervisor/calls/{call_sid}/barge")
async def barge(request: Request, call_sid: str, admin: Supervisor) -> dict[str, Any]:
    """Join a call's conversation: the supervisor joins its conference unmuted."""
    return dict(await _run(request, _service(request).listen_in, admin, call_sid[:64],
                           True))
