"""Hardening, round two: request bodies bounded on every route, no 500 for a wrong method
or path under ``/twilio/``, log lines that cannot be forged, and a customer search whose
LIKE wildcards and NULs are plain characters."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient
from starlette.types import Message

from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.logging import JsonFormatter, TextFormatter, escape_controls, install_filters
from ivr.core.settings import Settings
from ivr.observability.metrics import redactor
from tests.conftest import ADMIN
from tests.live_server import ServerThread
from tests.twilio import call_params, new_sid, signed_post

LIMIT = 100_000
CHUNK = 16 * 1024


# -- 1. request bodies


class Upload:
    """An ASGI client side: the request's body in chunks, counting what the app pulled."""

    def __init__(self, total: int, chunk: int = CHUNK) -> None:
        self.left, self.chunk, self.pulled = total, chunk, 0
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body = b""

    async def receive(self) -> Message:
        if self.left <= 0:
            await asyncio.sleep(0)
            return {"type": "http.disconnect"}
        size = min(self.chunk, self.left)
        self.left -= size
        self.pulled += size
        return {"type": "http.request", "body": b"x" * size, "more_body": self.left > 0}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
            "root_path": "", "query_string": b"", "server": ("testserver", 80),
            "client": ("127.0.0.1", 5000), "headers": [(b"host", b"testserver"), *headers]}


@pytest.fixture
def small(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_body_bytes": LIMIT})


@pytest.mark.parametrize("path", ["/agent/login", "/twilio/voice", "/crm/sources/crm/records"])
def test_a_declared_length_over_the_limit_is_refused_unread(small: Settings,
                                                            clock: FrozenClock,
                                                            path: str) -> None:
    app = create_app(small.model_copy(update={"max_push_body_bytes": LIMIT}), clock)
    upload = Upload(300 * 1024 * 1024)
    scope = _scope(path, [(b"content-type", b"application/json"),
                          (b"content-length", str(300 * 1024 * 1024).encode())])
    asyncio.run(app(scope, upload.receive, upload.send))
    assert upload.status == 413
    assert upload.pulled == 0
    assert upload.headers["content-type"].startswith("text/plain")
    assert b"too large" in upload.body


@pytest.mark.parametrize("path", ["/agent/login", "/twilio/voice", "/crm/sources/crm/records"])
def test_a_chunked_body_is_cut_off_once_past_the_limit(small: Settings, clock: FrozenClock,
                                                       path: str) -> None:
    app = create_app(small.model_copy(update={"max_push_body_bytes": LIMIT}), clock)
    upload = Upload(20 * LIMIT)  # no Content-Length: Transfer-Encoding chunked
    scope = _scope(path, [(b"content-type", b"application/json"),
                          (b"transfer-encoding", b"chunked")])
    asyncio.run(app(scope, upload.receive, upload.send))
    assert upload.status == 413
    assert upload.pulled <= LIMIT + CHUNK


def test_the_crm_push_has_its_own_larger_limit(small: Settings, clock: FrozenClock) -> None:
    app = create_app(small, clock)  # max_push_body_bytes left at its default
    assert small.max_push_body_bytes >= 16 * 1024 * 1024
    upload = Upload(2 * LIMIT)
    scope = _scope("/crm/sources/crm/records", [(b"content-type", b"application/json"),
                                                (b"content-length", str(2 * LIMIT).encode())])
    asyncio.run(app(scope, upload.receive, upload.send))
    assert upload.status == 422  # read whole (it is no JSON): within the push's limit
    assert upload.pulled == 2 * LIMIT


def test_a_huge_declared_body_is_answered_413_over_the_wire(settings: Settings,
                                                           clock: FrozenClock) -> None:
    """uvicorn for real: 300 MB announced, a few bytes sent, 413 back at once."""
    thread = ServerThread(create_app(settings, clock))
    thread.start()
    try:
        with socket.create_connection((thread.host, thread.port), timeout=5) as sock:
            sock.sendall(b"POST /agent/login HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\n"
                         b"Content-Length: 300000000\r\n\r\n{\"username\": ")
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413 ")
    finally:
        thread.stop()


def test_webhooks_and_pushes_within_the_limits_still_work(settings: Settings,
                                                         clock: FrozenClock,
                                                         tmp_path: Path) -> None:
    settings = settings.model_copy(update={"crm_token": SecretStr("push"),
                                           "crm_dir": tmp_path / "crm"})
    with TestClient(create_app(settings, clock)) as client:
        answer = signed_post(client, "/twilio/voice", call_params(new_sid()))
        assert answer.status_code == 200
        assert "<Response>" in answer.text
        # A batch well over the general limit (about 1.7 MB of JSON) is the push's to take.
        records = [{"id": f"C{i}", "name": f"Customer {i}", "account_number": f"{i + 100000}",
                    "notes": "n" * 300}
                   for i in range(5_000)]
        assert len(json.dumps({"records": records})) > settings.max_body_bytes
        got = client.post("/crm/sources/crm/records", json={"records": records},
                          headers={"Authorization": "Bearer push"})
        assert got.status_code == 200, got.text
        assert got.json()["created"] == 5_000, got.json()["rejections"][:3]


# -- 2. a wrong method or path under /twilio/


@pytest.fixture
def lenient(settings: Settings, clock: FrozenClock) -> Iterator[TestClient]:
    """A client that shows a server error as its 500, as Twilio would get it."""
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as c:
        yield c


def test_wrong_method_and_unknown_twilio_path_are_405_and_404_quietly(
        lenient: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    wrong = lenient.get("/twilio/voice")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    nope = lenient.post("/twilio/nope", data={"CallSid": "CA1"})
    assert nope.status_code == 404
    assert lenient.get("/twilio/").status_code == 404
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "Traceback" not in caplog.text
    assert all(r.exc_info is None for r in caplog.records)


# -- 3. log injection


@pytest.fixture
def written(caplog: pytest.LogCaptureFixture,
            settings: Settings) -> Iterator[dict[str, io.StringIO]]:
    """What each configured format writes (the configured filters included)."""
    caplog.set_level(logging.INFO)
    outs = {"text": io.StringIO(), "json": io.StringIO()}
    handlers = []
    for name, fmt in (("text", TextFormatter()), ("json", JsonFormatter())):
        handler = logging.StreamHandler(outs[name])
        handler.setFormatter(fmt)
        install_filters(handler, redactor(settings.default_region))
        handlers.append(handler)
        logging.getLogger().addHandler(handler)
    try:
        yield outs
    finally:
        for handler in handlers:
            logging.getLogger().removeHandler(handler)


FORGED = "\n2026-01-01 ERROR forged"


def test_a_forged_line_in_a_fallback_request_stays_in_its_record(
        client: TestClient, caplog: pytest.LogCaptureFixture,
        written: dict[str, io.StringIO]) -> None:
    sid = new_sid()
    params = call_params(sid, ErrorCode="11200\r", ErrorUrl="https://ivr.example.com/v" + FORGED)
    assert signed_post(client, "/twilio/fallback", params).status_code == 200
    fallback = [r for r in caplog.records if "used the fallback URL" in r.getMessage()]
    assert len(fallback) == 1
    text = TextFormatter().format(fallback[0])
    assert "\n" not in text and "\r" not in text
    assert "\\n2026-01-01 ERROR forged" in text and "11200\\r" in text
    # As written by the configured handlers: one line each, the value intact in JSON.
    lines = [line for line in written["text"].getvalue().splitlines()
             if "used the fallback URL" in line]
    assert len(lines) == 1 and "\\n2026-01-01 ERROR forged" in lines[0]
    assert not any(line.startswith("2026-01-01") for line in
                   written["text"].getvalue().splitlines())
    records = [json.loads(line) for line in written["json"].getvalue().split("\n") if line]
    [record] = [r for r in records if "used the fallback URL" in r["message"]]
    assert FORGED in record["message"]


def test_every_field_is_escaped_and_a_traceback_cannot_start_a_record() -> None:
    logger = logging.getLogger("ivr.test.hardening")
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 1,
                               "value=%s", ("a\u2028b\x85c\x1b[31md\u202ee",), None)
    record.call_sid = "CA1\nforged"
    try:
        raise ValueError("bad" + FORGED)
    except ValueError:
        record.exc_info = sys.exc_info()
    text = TextFormatter().format(record)
    first, *rest = text.split("\n")
    assert first.endswith("value=a\\u2028b\\x85c\\x1b[31md\\u202ee call=CA1\\nforged")
    assert rest and all(line.startswith(" ") for line in rest)  # the traceback, indented
    assert "ValueError: bad" in text
    assert len(text.splitlines()) == len(text.split("\n"))  # no other line breaks
    line = JsonFormatter().format(record)
    assert len(line.splitlines()) == 1
    assert json.loads(line)["message"] == "value=a\u2028b\x85c\x1b[31md\u202ee"
    assert escape_controls("plain שלום\ttab") == "plain שלום\\ttab"


# -- 4. customer search by name


@pytest.fixture
def crm(settings: Settings, clock: FrozenClock, tmp_path: Path) -> Iterator[TestClient]:
    settings = settings.model_copy(update={"crm_token": SecretStr("push"),
                                           "crm_dir": tmp_path / "crm"})
    with TestClient(create_app(settings, clock), raise_server_exceptions=False) as c:
        got = c.post("/crm/sources/crm/records", headers={"Authorization": "Bearer push"},
                     json={"records": [
                         {"id": "C1", "name": "Dana Levi", "phone": "050-123-4567"},
                         {"id": "C2", "name": "Noa Cohen", "phone": "052-222-3333"},
                         {"id": "C3", "name": "Shop_100% Ltd", "phone": "053-333-4444"}]})
        assert got.json()["created"] == 3, got.text
        yield c


def _names(client: TestClient, name: str) -> list[str] | int:
    got = client.get("/crm/customers", params={"name": name},
                     headers={"Authorization": f"Bearer {ADMIN}"})
    if got.status_code != 200:
        return got.status_code
    return sorted(c["name"] for c in got.json()["customers"])


def test_name_search_takes_wildcards_and_nul_literally(crm: TestClient) -> None:
    assert _names(crm, "Lev") == ["Dana Levi"]
    assert _names(crm, "a l") == ["Dana Levi"]
    assert _names(crm, "%") == ["Shop_100% Ltd"]
    assert _names(crm, "_") == ["Shop_100% Ltd"]
    assert _names(crm, "a%o") == []
    assert _names(crm, "D_na") == []
    assert _names(crm, "/") == []
    assert _names(crm, "p_1") == ["Shop_100% Ltd"]
    assert _names(crm, "\x00") in ([], 422)
    assert _names(crm, "Dana\x00") in ([], 422)
