"""A stand-in for Twilio's REST API: a small ASGI app, reached by the real twilio client
through its ``http_client`` (no network). It records what the product asked Twilio to do."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from twilio.http import HttpClient
from twilio.http.response import Response

ACCOUNT_SID = "AC" + "a" * 32
AUTH_TOKEN = "test-auth-token"


@dataclass
class TwilioStandIn:
    dequeued: list[dict[str, str]] = field(default_factory=list)
    fail_next: int = 0

    def app(self) -> Starlette:
        async def member(request: Request) -> JSONResponse:
            auth = request.headers.get("authorization", "")
            expected = "Basic " + base64.b64encode(
                f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
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

        return Starlette(routes=[Route(
            "/2010-04-01/Accounts/{account}/Queues/{queue}/Members/{call}.json", member,
            methods=["POST"])])


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
