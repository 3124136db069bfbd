"""Transfers across real processes: the server is SIGKILLed between writing a transfer and
Twilio's answer to its ``participants.create``; another server's sweep rolls it back.

One ``ivr serve`` with an account SID (the REST gateways: Queue Members for the connect,
``TwilioConferences`` for the participants) against a stand-in of Twilio's REST API served
over HTTP (``IVR_TWILIO_API_BASE_URL``), which takes the Conference Participants resource
as Twilio's API does (create by the conference's friendly name, update, delete) and holds
the transfer's create. The server is killed while it waits for that answer. A second server
on the same database then finds the transfer ``pending`` past
``IVR_TRANSFER_PENDING_SECONDS`` and rolls it back: the second agent is available again,
the caller is taken off hold (``participants(caller).update(Hold=false)``), and the first
agent, still on the call, has them back.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ivr.agents.models import agents
from ivr.transfers.models import transfers
from tests.agent_flow import TwilioDriver
from tests.live_server import ServerThread
from tests.test_callback_processes import (
    SLOW,
    _free_port,
    _kill,
    base_env,
    go_available,
    login,
    seed,
    serve,
    wait_for,
)
from tests.test_processes import always_open
from tests.twilio_standin import ACCOUNT_SID, AUTH_TOKEN

DANA = "+972501234567"


@dataclass
class ConferenceStandIn:
    """Twilio's Queue Members, Calls and Conference Participants resources, recorded."""

    dequeued: list[dict[str, str]] = field(default_factory=list)
    created: list[dict[str, str]] = field(default_factory=list)
    updated: list[dict[str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: Set: the next participants.create is held until ``release`` is set.
    hold_next_create: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def app(self) -> Starlette:
        expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()

        def refused(request: Request) -> JSONResponse | None:
            if request.headers.get("authorization", "") != expected:
                return JSONResponse({"code": 20003, "message": "Authenticate"}, 401)
            return None

        def conference_sid(name: str) -> str:
            return "CF" + name[-32:].rjust(32, "0") if name.startswith("call-") else name

        def participant(conf: str, sid: str, form: dict[str, str]) -> dict[str, Any]:
            return {"account_sid": ACCOUNT_SID, "call_sid": sid,
                    "conference_sid": conference_sid(conf), "label": form.get("Label"),
                    "hold": form.get("Hold") == "true", "muted": form.get("Muted") == "true",
                    "end_conference_on_exit": form.get("EndConferenceOnExit") == "true",
                    "status": "queued", "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/"
                                               f"Conferences/{conf}/Participants/{sid}.json"}

        async def member(request: Request) -> JSONResponse:
            if (no := refused(request)) is not None:
                return no
            form = dict(parse_qsl((await request.body()).decode()))
            p = request.path_params
            self.dequeued.append({"call_sid": p["call"], **form})
            return JSONResponse({"call_sid": p["call"], "queue_sid": p["queue"],
                                 "account_sid": ACCOUNT_SID, "position": 0, "wait_time": 5,
                                 "date_enqueued": None, "uri": str(request.url.path)})

        async def create(request: Request) -> JSONResponse:
            if (no := refused(request)) is not None:
                return no
            form = dict(parse_qsl((await request.body()).decode()))
            if not form.get("From") or not form.get("To"):
                return JSONResponse({"code": 21604, "message": "From and To required"}, 400)
            if self.hold_next_create.is_set():
                self.hold_next_create.clear()
                self.arrived.set()
                await asyncio.to_thread(self.release.wait, 60)
            sid = f"CA{len(self.created) + 1:032x}"
            conf = request.path_params["conf"]
            self.created.append({"sid": sid, "conference": conf, **form})
            return JSONResponse(participant(conf, sid, form), 201)

        async def update(request: Request) -> JSONResponse:
            if (no := refused(request)) is not None:
                return no
            form = dict(parse_qsl((await request.body()).decode()))
            p = request.path_params
            self.updated.append({"conference": p["conf"], "call_sid": p["sid"], **form})
            return JSONResponse(participant(p["conf"], p["sid"], form))

        async def delete(request: Request) -> Response:
            if (no := refused(request)) is not None:
                return no
            self.removed.append(request.path_params["sid"])
            return Response(status_code=204)

        base = "/2010-04-01/Accounts/{account}"
        return Starlette(routes=[
            Route(base + "/Queues/{queue}/Members/{call}.json", member, methods=["POST"]),
            Route(base + "/Conferences/{conf}/Participants.json", create, methods=["POST"]),
            Route(base + "/Conferences/{conf}/Participants/{sid}.json", update,
                  methods=["POST"]),
            Route(base + "/Conferences/{conf}/Participants/{sid}.json", delete,
                  methods=["DELETE"]),
        ])


@pytest.fixture
def stand_in() -> Iterator[tuple[ConferenceStandIn, ServerThread]]:
    s = ConferenceStandIn()
    api = ServerThread(cast(FastAPI, s.app()))
    api.start()
    try:
        yield s, api
    finally:
        s.release.set()
        api.stop()


def test_a_server_killed_mid_transfer_is_rolled_back_by_the_next(
        database_url: str, menus_dir: Path, tmp_path: Path,
        stand_in: tuple[ConferenceStandIn, ServerThread]) -> None:
    twilio_api, api = stand_in
    always_open(menus_dir)
    seed(database_url)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = base_env(database_url, menus_dir, tmp_path, IVR_PUBLIC_URL=url,
                   IVR_TWILIO_ACCOUNT_SID=ACCOUNT_SID,
                   IVR_TWILIO_API_BASE_URL=f"http://{api.host}:{api.port}",
                   IVR_CONFERENCE_CALLS="true", IVR_TRANSFER_PENDING_SECONDS="5",
                   IVR_ROUTE_EVERY_SECONDS="0.2")
    engine = create_engine(database_url)
    with ExitStack() as stack:
        stack.callback(engine.dispose)
        _, first = stack.enter_context(serve(env, port, tmp_path))
        client = stack.enter_context(httpx.Client(base_url=url, timeout=15))
        twilio = TwilioDriver(client, url, AUTH_TOKEN)
        noa = login(url, "dana.agent")
        go_available(url, noa)
        sid = twilio.start(DANA, ["2"])
        # The REST gateway dequeues the caller to the connect URL: the caller joins the
        # conference, and the agent is created as a participant by its friendly name.
        dequeued = wait_for("the caller is dequeued", lambda: twilio_api.dequeued, SLOW,
                            first.tail)[0]
        xml = twilio.redirected(sid, dequeued["Url"])
        assert ET.fromstring(xml).findtext("Dial/Conference") == f"call-{sid}"
        agent_leg = wait_for("the agent is rung into the conference",
                             lambda: twilio_api.created, SLOW, first.tail)[0]
        assert (agent_leg["conference"], agent_leg["To"]) == (f"call-{sid}",
                                                              "client:dana.agent")
        assert agent_leg["EndConferenceOnExit"] == "true"
        conf_sid = "CF" + f"call-{sid}"[-32:].rjust(32, "0")
        twilio.post(f"/twilio/conference-events?c={sid}", twilio.params(
            twilio.calls[sid], ConferenceSid=conf_sid,
            StatusCallbackEvent="participant-join"))
        twilio.post(agent_leg["StatusCallback"], twilio.params(
            twilio.calls[sid], CallSid=agent_leg["sid"], CallStatus="in-progress",
            Direction="outbound-api"))
        avi = login(url, "avi")
        go_available(url, avi)

        twilio_api.hold_next_create.set()
        answer: dict[str, Any] = {}

        def ask() -> None:
            try:
                answer["r"] = httpx.post(f"{url}/agent/calls/{sid}/transfer", headers=noa,
                                         json={"kind": "agent", "target": "2",
                                               "mode": "warm"}, timeout=30)
            except httpx.HTTPError as exc:
                answer["error"] = exc

        asker = threading.Thread(target=ask, daemon=True)
        asker.start()
        assert wait_for("the transfer's participants.create reaches Twilio",
                        twilio_api.arrived.is_set, SLOW, first.tail)
        with engine.connect() as conn:
            row = conn.execute(select(transfers)).one()
        assert row.state == "pending"
        # Before the create: the caller was put on hold, the first agent's leg no longer
        # ends the conference.
        assert {(u["call_sid"], u.get("Hold"), u.get("EndConferenceOnExit"))
                for u in twilio_api.updated} == {(sid, "true", None),
                                                 (agent_leg["sid"], None, "false")}
        _kill(first)
        asker.join(30)
        assert "error" in answer  # the console's request died with the server

        port2 = _free_port()
        url2 = f"http://127.0.0.1:{port2}"
        _, second = stack.enter_context(serve({**env, "IVR_PUBLIC_URL": url2}, port2,
                                              tmp_path))

        def rolled_back() -> Any:
            with engine.connect() as conn:
                t = conn.execute(select(transfers)).one()
            return t if t.state == "failed" else None

        t = wait_for("the next server's sweep rolls the transfer back", rolled_back, SLOW,
                     second.tail)
        assert (t.reason, t.caller_back_to) == ("interrupted", "first-agent")
        with engine.connect() as conn:
            states = dict(conn.execute(select(agents.c.username, agents.c.state)).all())
        assert states["avi"] == "available"
        assert states["dana.agent"] == "on_call"
        wait_for("the caller is taken off hold", lambda: any(
            u["call_sid"] == sid and u.get("Hold") == "false" for u in twilio_api.updated),
            SLOW, second.tail)
        wait_for("the first agent's leaving ends the conference again", lambda: any(
            u["call_sid"] == agent_leg["sid"] and u.get("EndConferenceOnExit") == "true"
            for u in twilio_api.updated), SLOW, second.tail)
