"""A stand-in for Twilio's REST API: a small ASGI app, reached by the real twilio client
through its ``http_client`` (no network). It records what the product asked Twilio to do.
Process tests serve the same app over HTTP (``IVR_TWILIO_API_BASE_URL``)."""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from twilio.http import HttpClient
from twilio.http.response import Response

ACCOUNT_SID = "AC" + "a" * 32
AUTH_TOKEN = "test-auth-token"


def _call_resource(sid: str, form: dict[str, str], status: str) -> dict[str, object]:
    return {"sid": sid, "account_sid": ACCOUNT_SID, "to": form.get("To"),
            "from": form.get("From"), "status": status, "direction": "outbound-api",
            "api_version": "2010-04-01", "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/"
                                               f"{sid}.json"}


@dataclass
class TwilioStandIn:
    dequeued: list[dict[str, str]] = field(default_factory=list)
    fail_next: int = 0
    #: Calls API: every call created (the form Twilio got), and each one's status.
    created: list[dict[str, str]] = field(default_factory=list)
    call_status: dict[str, str] = field(default_factory=dict)
    fail_calls: int = 0
    #: Called (in the server's thread) before a create is recorded: a test can block here.
    #: Returning a starlette ``Response`` answers it instead (nothing is recorded: Twilio
    #: never got the create).
    before_create: Any = None
    #: Called (in a thread) with the recorded call, before the create is answered: a test
    #: can hang the answer of a create Twilio did receive, or return a starlette
    #: ``Response`` to answer with instead (the call exists; its answer is lost).
    after_create: Any = None
    #: Each status fetch (``calls(sid).fetch()``): the CallSids asked about, in order.
    fetched: list[str] = field(default_factory=list)
    #: Each list of calls (``calls.list(to=…, from_=…)``): its query.
    listed: list[dict[str, str]] = field(default_factory=list)
    #: Calls we asked Twilio to end (``calls(sid).update(status=canceled)``).
    ended_by_us: list[str] = field(default_factory=list)
    #: Messaging API: every SMS sent (the form Twilio got, with its sid).
    messages: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()

        async def calls(request: Request) -> StarletteResponse:
            if request.headers.get("authorization", "") != expected:
                return JSONResponse({"code": 20003, "message": "Authenticate"}, 401)
            form = dict(parse_qsl((await request.body()).decode()))
            if self.before_create is not None:
                answer = await asyncio.to_thread(self.before_create, form)
                if isinstance(answer, StarletteResponse):
                    return answer
            if self.fail_calls:
                self.fail_calls -= 1
                return JSONResponse({"code": 21215, "message": "not permitted"}, 400)
            sid = f"CA{len(self.created) + 1:032x}"
            self.created.append({"sid": sid, **form})
            self.call_status[sid] = "queued"
            if self.after_create is not None:
                late = await asyncio.to_thread(self.after_create, self.created[-1])
                if isinstance(late, StarletteResponse):
                    return late  # Twilio has the call; its answer is lost on the way
            return JSONResponse(_call_resource(sid, form, "queued"), 201)

        async def call(request: Request) -> JSONResponse:
            if request.headers.get("authorization", "") != expected:
                return JSONResponse({"code": 20003, "message": "Authenticate"}, 401)
            sid = request.path_params["sid"]
            self.fetched.append(sid)
            if sid not in self.call_status:
                return JSONResponse({"code": 20404, "message": "not found"}, 404)
            form = next(c for c in self.created if c["sid"] == sid)
            return JSONResponse(_call_resource(sid, form, self.call_status[sid]))

        async def call_list(request: Request) -> JSONResponse:
            if request.headers.get("authorization", "") != expected:
                return JSONResponse({"code": 20003, "message": "Authenticate"}, 401)
            to, from_ = request.query_params.get("To"), request.query_params.get("From")
            self.listed.append(dict(request.query_params))
            found = [_call_resource(c["sid"], c, self.call_status[c["sid"]])
                     for c in reversed(self.created)
                     if (to is None or c.get("To") == to)
                     and (from_ is None or c.get("From") == from_)]
            uri = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
            return JSONResponse({"calls": found, "page": 0, "page_size": 50, "start": 0,
                                 "end": max(len(found) - 1, 0), "uri": uri,
                                 "first_page_uri": uri, "next_page_uri": None,
                                 "previous_page_uri": None})

        async def call_update(request: Request) -> JSONResponse:
            if request.headers.get("authorization", "") != expected:
                return JSONResponse({"code": 20003, "message": "Authenticate"}, 401)
            sid = request.path_params["sid"]
            form = dict(parse_qsl((await request.body()).decode()))
            if sid not in self.call_status:
                return JSONResponse({"code": 20404, "message": "not found"}, 404)
            if form.get("Status") in ("canceled", "completed"):
                self.call_status[sid] = form["Status"]
                self.ended_by_us.append(sid)
            created = next(c for c in self.created if c["sid"] == sid)
            return JSONResponse(_call_resource(sid, created, self.call_status[sid]))

        async def member(request: Request) -> JSONResponse:
            auth = request.headers.get("authorization", "")
            if auth != expected:
                return JSONResponse({"code": 20003, "message": "Authenticate"}, 401)
            if self.fail_next:
                self.fail_next -= 1
                return JSONResponse({"code": 20404, "message": "not in queue"}, 404)
            form = dict(parse_qsl((await request.body()).decode()))
            p = request.path_params
            self.dequeued.append({"queue_sid": p["queue"], "call_sid": p["call"], **form})
            return JSONResponse({"call_sid": p["call"], "queue_sid": p["queue"],
                                 "account_sid": ACCOUNT_SID, "position": 0,
                                 "wait_time": 5, "date_enqueued": None,
                                 "uri": str(request.url.path)})

        async def message(request: Request) -> JSONResponse:
            if request.headers.get("authorization", "") != expected:
                return JSONResponse({"code": 20003, "message": "Authenticate"}, 401)
            form = dict(parse_qsl((await request.body()).decode()))
            sid = f"SM{len(self.messages) + 1:032x}"
            self.messages.append({"sid": sid, **form})
            return JSONResponse({"sid": sid, "account_sid": ACCOUNT_SID, "to": form.get("To"),
                                 "from": form.get("From"), "body": form.get("Body"),
                                 "status": "queued", "api_version": "2010-04-01",
                                 "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/"
                                        f"{sid}.json"}, 201)

        return Starlette(routes=[
            Route("/2010-04-01/Accounts/{account}/Messages.json", message, methods=["POST"]),
            Route("/2010-04-01/Accounts/{account}/Queues/{queue}/Members/{call}.json",
                  member, methods=["POST"]),
            Route("/2010-04-01/Accounts/{account}/Calls.json", calls, methods=["POST"]),
            Route("/2010-04-01/Accounts/{account}/Calls.json", call_list, methods=["GET"]),
            Route("/2010-04-01/Accounts/{account}/Calls/{sid}.json", call, methods=["GET"]),
            Route("/2010-04-01/Accounts/{account}/Calls/{sid}.json", call_update,
                  methods=["POST"]),
        ])


class AsgiHttpClient(HttpClient):  # type: ignore[misc]
    """twilio's HttpClient interface over a Starlette TestClient of the stand-in."""

    def __init__(self, app: Starlette) -> None:
        super().__init__(logging.getLogger('twilio.http_client'), is_async=False)
        self.client = TestClient(app, base_url="https://api.twilio.com")

    def request(self, method: str, uri: str, params: dict[str, object] | None = None,
                data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                auth: tuple[str, str] | None = None, timeout: float | None = None,
                allow_redirects: bool = False) -> Response:
        path = urlsplit(uri).path
        hdrs = dict(headers or {})
        if auth is not None:
            hdrs["Authorization"] = "Basic " + base64.b64encode(
                f"{auth[0]}:{auth[1]}".encode()).decode()
        r = self.client.request(method, path, params=params,  # type: ignore[arg-type]
                                data=data, headers=hdrs)  # type: ignore[arg-type]
        return Response(r.status_code, r.text, r.headers)

    def close(self) -> None:
        self.client.close()


def rest_gateway(standin: TwilioStandIn) -> Any:
    from ivr.agents.gateway import TwilioGateway

    return TwilioGateway(ACCOUNT_SID, AUTH_TOKEN, http_client=AsgiHttpClient(standin.app()))
