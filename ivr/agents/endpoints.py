"""The agent console's HTTP API, its page, and its live event stream.

Sign-in gives an opaque session token: in an HttpOnly, SameSite=Strict cookie for the
console (EventSource cannot send headers) and in the answer for API clients, which send it
as ``Authorization: Bearer``. Handlers parse, call ``AgentService``, render.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from crm_sync.wrapup import WrapUp
from ivr.agents import repository as repo
from ivr.agents.auth import HashingBusy
from ivr.agents.events import console_stream
from ivr.agents.ports import Outcome
from ivr.agents.service import AgentError, AgentService, SignIn
from ivr.core.db import reading
from ivr.core.http import UNPROCESSABLE
from ivr.services import web

log = logging.getLogger(__name__)
COOKIE = "ivr_agent_session"
STATIC_DIR = Path(__file__).resolve().parent / "static"
bearer = HTTPBearer(auto_error=False)
Creds = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

router = APIRouter(prefix="/agent", tags=["agents"])


def _deny(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def _token(request: Request, creds: HTTPAuthorizationCredentials | None) -> str | None:
    if creds is not None:
        return creds.credentials
    return request.cookies.get(COOKIE)


async def current_agent(request: Request, creds: Creds) -> dict[str, Any]:
    token = _token(request, creds)
    if not token or len(token) > 256:
        raise _deny("sign in first")
    db = web(request).db
    service = web(request).agents
    agent = await db.run(service.session, token)
    if agent is None:
        raise _deny("your session has expired or was signed out; sign in again")
    request.state.agent_token = token
    return _described(service, agent)


def _described(service: AgentService, me: dict[str, Any]) -> dict[str, Any]:
    """The agent with the centre's time zone and the console's language (the agent's
    choice, else the centre's)."""
    return {**me, "timezone": service.centre_timezone(),
            "language": me.get("language") or service.settings.interface_language}


Agent = Annotated[dict[str, Any], Depends(current_agent)]


async def supervisor(agent: Agent) -> dict[str, Any]:
    if agent["role"] != "admin":
        raise HTTPException(403, "supervisors only")
    return agent


async def apply(request: Request, out: Outcome) -> None:
    """After a use case committed: wake consoles, route again if something changed."""
    await web(request).after_commit(out)


def _error(exc: AgentError) -> HTTPException:
    return HTTPException(exc.status, exc.detail)


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class StateIn(BaseModel):
    state: Literal["available", "offline"]


class WrapUpIn(BaseModel):
    topic: str = Field(min_length=1, max_length=128)
    outcome: str = Field(min_length=1, max_length=128)
    resolved: bool
    promised_action: str | None = Field(default=None, max_length=2000)
    promised_due_at: datetime | None = None
    leaving_reason: str | None = Field(default=None, max_length=64)
    # The exit interview (wrapup.yaml's leaving reasons): the customer's words, and
    # whether they stayed.
    leaving_text: str | None = Field(default=None, max_length=500)
    stayed: bool | None = None
    notes: str | None = Field(default=None, max_length=10_000)
    close_incidents: list[int] = Field(default_factory=list, max_length=100)
    kept_promises: list[int] = Field(default_factory=list, max_length=100)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def console_page() -> Response:
    page = STATIC_DIR / "console.html"
    if not page.is_file():
        return HTMLResponse("the agent console is not installed", status_code=503)
    return HTMLResponse(page.read_text(encoding="utf-8"),
                        headers={"Content-Security-Policy":
                                 "default-src 'self'; object-src 'none'; base-uri 'none'; "
                                 "frame-ancestors 'none'"})


class Refusal(BaseModel):
    detail: str


SIGN_IN_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": Refusal, "description": "Wrong username or password"},
    429: {"model": Refusal, "description": "Too many failed sign-ins for this account or "
          "from this address; Retry-After says when to try again"},
    503: {"model": Refusal, "description": "Too many sign-ins at once; try again shortly"}}


@router.post("/login", responses=SIGN_IN_REFUSALS)
async def login(request: Request, body: LoginIn) -> JSONResponse:
    """Sign-ins are throttled (failures per account and per client address, in a sliding
    window) and their passwords checked in threads of their own, a few at a time: a flood of
    sign-ins cannot slow a caller's webhook."""
    db = web(request).db
    service = web(request).agents
    address = (request.client.host if request.client else "")[:64]
    hashing = service.hashing
    result = None
    try:
        async with hashing.admit():
            # A throttled sign-in is refused at once, not behind the password checks...
            wait = await db.run(service.sign_in_wait, body.username, address)
            if wait is None:
                # ... and the check that counts is made again under a slot, with the
                # password check and the failure's count: each sees every failure before it.
                async with hashing.slot():
                    attempt = await db.run(service.begin_sign_in, body.username, address)
                    if isinstance(attempt, SignIn):
                        ok = await hashing.verify(body.password, attempt.password_hash)
                        result = await db.run(service.finish_sign_in, attempt, ok)
                    else:
                        wait = attempt
    except HashingBusy:
        raise HTTPException(503, "too many sign-ins at once; try again in a moment",
                            headers={"Retry-After": "1"}) from None
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        log.warning("sign-in refused: too many failures for the account or address (retry in "
                    "%d s) address=%s", seconds, address)
        raise HTTPException(429, f"too many failed sign-ins; try again in {seconds} s",
                            headers={"Retry-After": str(seconds)})
    if result is None:
        raise _deny("wrong username or password")
    token, me = result
    response = JSONResponse({"token": token, "agent": _described(service, me)})
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https",
                        max_age=int(service.settings.agent_session_hours * 3600))
    return response


@router.post("/logout", status_code=204)
async def logout(request: Request, agent: Agent) -> Response:
    db = web(request).db
    service = web(request).agents
    out = await db.run(service.logout, request.state.agent_token, agent["id"])
    await apply(request, out)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/me")
async def whoami(request: Request, agent: Agent) -> dict[str, Any]:
    """The signed-in agent, the centre's time zone the console shows times in, and the
    console's language."""
    return agent


class LanguageIn(BaseModel):
    language: Literal["en", "he"]


@router.post("/language")
async def set_language(request: Request, body: LanguageIn, agent: Agent) -> dict[str, Any]:
    """The console's language (issue 17.5), kept with the agent for every console."""
    service = web(request).agents
    me = await web(request).db.run(service.set_language, agent["id"], body.language)
    return _described(service, me)


@router.post("/state")
async def set_state(request: Request, body: StateIn, agent: Agent) -> dict[str, Any]:
    db = web(request).db
    service = web(request).agents
    try:
        me, out = await db.run(service.set_availability, agent["id"], body.state)
    except AgentError as exc:
        raise _error(exc) from None
    await apply(request, out)
    return me


@router.get("/events")
async def events(request: Request, agent: Agent) -> StreamingResponse:
    """Server-Sent Events: ``state``, ``screenpop`` and ``call`` events for this agent."""
    db = web(request).db
    bus = web(request).events
    agent_id = int(agent["id"])
    last = request.headers.get("last-event-id", "")

    def start() -> int:
        with reading(db.engine) as conn:
            if last.isdigit():
                return int(last)
            return repo.replay_from(conn, agent_id, agent["current_call_sid"])

    after = await db.run(start)

    def load_sync(after_id: int) -> list[tuple[int, str, str]]:
        with reading(db.engine) as conn:
            return repo.events_after(conn, agent_id, after_id)

    async def load(after_id: int) -> list[tuple[int, str, str]]:
        return await db.run(load_sync, after_id)

    first = [f"retry: 2000\nevent: state\ndata: {json.dumps(agent, ensure_ascii=False)}\n\n"]
    return StreamingResponse(console_stream(bus, load, agent_id, after, first),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/calls/{call_sid}/context")
async def call_context(request: Request, call_sid: str, agent: Agent) -> dict[str, Any]:
    db = web(request).db
    service = web(request).agents
    try:
        return await db.run(service.context_for, agent, call_sid[:64])
    except AgentError as exc:
        raise _error(exc) from None


@router.post("/calls/{call_sid}/wrapup", status_code=201, responses=UNPROCESSABLE)
async def wrap_up(request: Request, call_sid: str, body: WrapUpIn,
                  agent: Agent) -> dict[str, Any]:
    db = web(request).db
    service = web(request).agents
    wrap = WrapUp(topic=body.topic, outcome=body.outcome, resolved=body.resolved,
                  promised_action=body.promised_action or None,
                  promised_due_at=body.promised_due_at, leaving_reason=body.leaving_reason
                  or None, notes=body.notes or None,
                  leaving_text=body.leaving_text or None, stayed=body.stayed,
                  close_incidents=tuple(body.close_incidents),
                  kept_promises=tuple(body.kept_promises))
    if wrap.promised_due_at is not None and wrap.promised_due_at.tzinfo is None:
        raise HTTPException(422, "promised_due_at needs a time zone (e.g. 2026-12-01T14:00Z)")
    if wrap.promised_action and wrap.promised_due_at is None:
        raise HTTPException(422, "a promised action needs a due date (promised_due_at)")
    try:
        interaction_id, out = await db.run(service.wrap_up, agent, call_sid[:64], wrap)
    except AgentError as exc:
        raise _error(exc) from None
    await apply(request, out)
    me = await db.run(service.session, request.state.agent_token)
    answer: dict[str, Any] = {"interaction_id": interaction_id, "agent": me}
    if interaction_id is None:
        answer["warning"] = ("the caller was not identified, so the wrap-up is not in any "
                             "customer's history")
    return answer


@router.get("/supervisor")
async def board(request: Request, _admin: Annotated[dict[str, Any], Depends(supervisor)],
                ) -> dict[str, Any]:
    db = web(request).db
    service = web(request).agents
    return await db.run(service.board)
