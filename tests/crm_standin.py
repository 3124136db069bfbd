"""A stand-in source CRM and a stand-in subscriber, for the sync and outbox tests and bench.

``StandinCRM`` lists ``/api/{customers,incidents,interactions}`` in (updated_at, id) order,
filtered by ``updated_since`` (inclusive), in pages of ``limit``: page style (``page=N``),
offset style (``offset=N``) or cursor style (``cursor=TOKEN``, the default; ``next`` in the
body). Faults are scripted by request number. ``handle`` is an ``httpx.MockTransport``
handler; ``asgi_app`` serves the same over HTTP (uvicorn on 127.0.0.1 in the benchmark).

``StandinSubscriber`` receives outbox POSTs, checks the signature, and can fail its first N.
"""

from __future__ import annotations

import base64
import bisect
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from crm_sync.outbox import SIGNATURE_HEADER, verify_signature

KINDS = ("customers", "incidents", "interactions")


@dataclass
class Fault:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    error: type[Exception] | None = None  # raise this (a connection error) instead


class StandinCRM:
    def __init__(self, token: str = "s3cret") -> None:  # noqa: S107 (a test token)
        self.token = token
        self.data: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in KINDS}
        self.requests: list[dict[str, str]] = []  # every request's query parameters + path
        self.script: dict[int, Fault] = {}  # request number (1-based) -> fault
        self.down: Fault | None = None  # every request fails while set
        self.lock = threading.Lock()
        self._sorted: dict[str, tuple[list[tuple[float, str]], list[dict[str, Any]]]] = {}

    def put(self, kind: str, record: dict[str, Any]) -> None:
        self.data[kind][str(record["id"])] = dict(record)
        self._sorted.pop(kind, None)

    def _ordered(self, kind: str) -> tuple[list[tuple[float, str]], list[dict[str, Any]]]:
        """(keys, rows) in (updated_at, id) order, kept until the next ``put``."""
        if kind not in self._sorted:
            rows = sorted(self.data[kind].values(),
                          key=lambda r: (_instant(r["updated_at"]), str(r["id"])))
            self._sorted[kind] = ([(_instant(r["updated_at"]), str(r["id"])) for r in rows],
                                  rows)
        return self._sorted[kind]

    def _listing(self, kind: str, since: str | None,
                 after: tuple[float, str] | None = None) -> list[dict[str, Any]]:
        keys, rows = self._ordered(kind)
        start = 0
        if since is not None:
            start = bisect.bisect_left(keys, (_instant(since), ""))
        if after is not None:
            start = max(start, bisect.bisect_right(keys, after))
        return rows[start:]

    def answer(self, method: str, path: str, params: dict[str, str],
               headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.requests.append({"path": path, **params})
            number = len(self.requests)
            fault = self.script.pop(number, None) or self.down
        if fault is not None:
            if fault.error is not None:
                raise fault.error("stand-in: connection refused")
            return fault.status, fault.headers, b'{"error": "scripted"}'
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, {}, b'{"error": "bad token"}'
        kind = path.rsplit("/", 1)[-1]
        if method != "GET" or kind not in self.data:
            return 404, {}, b'{"error": "not found"}'
        limit = int(params.get("limit", "100"))
        next_token: str | None = None
        since = params.get("updated_since")
        if "page" in params:
            start = (int(params["page"]) - 1) * limit
            page = self._listing(kind, since)[start:start + limit]
        elif "offset" in params:
            start = int(params["offset"])
            page = self._listing(kind, since)[start:start + limit]
        else:
            after = None
            if params.get("cursor"):
                stamp_, id_ = json.loads(base64.urlsafe_b64decode(params["cursor"]))
                after = (_instant(stamp_), id_)
            rows = self._listing(kind, since, after)
            page = rows[:limit]
            if len(rows) > limit:
                last = page[-1]
                next_token = base64.urlsafe_b64encode(json.dumps(
                    [last["updated_at"], str(last["id"])]).encode()).decode()
        body = json.dumps({"data": page, "next": next_token}).encode()
        return 200, {"content-type": "application/json"}, body

    def handle(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        status, headers, body = self.answer(request.method, request.url.path, params,
                                            {k.lower(): v for k, v in request.headers.items()})
        return httpx.Response(status, headers=headers, content=body)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def asgi_app(self) -> Callable[..., Any]:
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            query = httpx.QueryParams(scope.get("query_string", b"").decode())
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            status, out, body = self.answer(scope["method"], scope["path"], dict(query),
                                            headers)
            await send({"type": "http.response.start", "status": status,
                        "headers": [(k.encode(), v.encode()) for k, v in out.items()]})
            await send({"type": "http.response.body", "body": body})
        return app


def _instant(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def customer(n: int, updated: str, **extra: Any) -> dict[str, Any]:
    """A source record in our own field names (the default mapping)."""
    return {"id": f"C{n}", "name": f"Person {n}", "phone": f"+9725{n:08d}",
            "email": f"p{n}@example.com", "updated_at": updated, **extra}


def stamp(minute: int) -> str:
    return datetime(2026, 11, 20, 9, 0, tzinfo=UTC).replace(
        hour=9 + minute // 60, minute=minute % 60).isoformat()


class StandinSubscriber:
    """Records every POST; answers ``fail_first`` of them with ``fail_status``."""

    def __init__(self, secret: bytes, now: Callable[[], datetime], *, fail_first: int = 0,
                 fail_status: int = 500) -> None:
        self.secret = secret
        self.now = now
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.posts: list[dict[str, Any]] = []  # every attempt
        self.accepted: list[dict[str, Any]] = []  # the ones answered 2xx
        self.lock = threading.Lock()

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = request.content
        event = json.loads(body)
        signed = verify_signature(self.secret, request.headers.get(SIGNATURE_HEADER, ""),
                                  body, self.now())
        entry = {"key": request.headers.get("Idempotency-Key"), "event": event,
                 "signed": signed, "url": str(request.url),
                 "attempt": request.headers.get("X-IVR-Attempt")}
        with self.lock:
            self.posts.append(entry)
            if not signed:
                return httpx.Response(401)
            if len(self.posts) <= self.fail_first:
                return httpx.Response(self.fail_status)
            self.accepted.append(entry)
        return httpx.Response(204)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)
