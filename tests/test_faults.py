"""Faults, on real ``ivr serve`` processes: the database lost in the middle of a call and
back again, a server killed between two webhooks of a call, broken menu files at start-up.

The database never really goes down (PostgreSQL is shared by every test run): on PostgreSQL
the server reaches it through a TCP proxy this test runs and cuts (listener and every
connection closed, new connections refused); on SQLite another connection holds the file's
write lock (``BEGIN EXCLUSIVE``), the way a long import or a backup in another process does.

A server killed between the answered gather and the next one is
``tests/test_processes.py::test_kill_between_webhooks_and_continue_elsewhere``; here the kill
comes right after ``/voice``. A worker killed mid-dispatch belongs to the callbacks tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import defusedxml.ElementTree as ET
import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from ivr.core.db import Database
from ivr.core.settings import Settings
from ivr.simulator.caller import PhoneCall
from tests.conftest import ADMIN, TOKEN
from tests.test_processes import _free_port, always_open, server

pytestmark = pytest.mark.slow

SAFE_QUEUE = "fault-desk"
APOLOGY_EN = "Sorry, something went wrong. Connecting you to an agent."
WELCOME = "For English, press 2."
BILLING_MENU = "For billing and payments, press 1."
BILLING = "Transferring you to billing."
# The caller's answer while the database is gone: far within Twilio's 15 s webhook timeout.
ANSWER_WITHIN_S = 5.0
RECOVER_WITHIN_S = 20.0


# -- the faults


class TcpProxy:
    """127.0.0.1:<port> to 127.0.0.1:<upstream>, on an event loop in a thread. ``cut``
    closes the listener and aborts every connection: new ones are refused, or with
    ``silent`` taken and never answered (a server that hangs). ``restore`` forwards again,
    on the same port."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = _free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._silent = False
        self._transports: set[asyncio.WriteTransport] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self._thread.start()
        self.restore()

    def _run(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", self.port,
                                                  reuse_address=True)

    async def _accepted(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        if self._silent:  # read what the client sends, answer nothing
            self._transports.add(writer.transport)
            with contextlib.suppress(OSError):
                while await reader.read(65536):
                    pass
            self._transports.discard(writer.transport)
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1",
                                                                 self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._transports |= {writer.transport, up_writer.transport}
        pipes = [asyncio.create_task(self._pipe(reader, up_writer)),
                 asyncio.create_task(self._pipe(up_reader, writer))]
        self._pipes.update(pipes)
        await asyncio.wait(pipes)
        for done in pipes:
            self._pipes.discard(done)
        for transport in (writer.transport, up_writer.transport):
            self._transports.discard(transport)
            transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()
        if self._pipes:
            await asyncio.wait(list(self._pipes))

    def cut(self, silent: bool = False) -> None:
        self._run(self._cut())
        if silent:
            self._silent = True
            self._run(self._listen())

    def restore(self) -> None:
        if self._silent:
            self._run(self._cut())
            self._silent = False
        self._run(self._listen())

    def close(self) -> None:
        self._run(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@dataclass
class Outage:
    """The database URL the server gets, and how to take its database away and back."""

    url: str
    proxy: TcpProxy | None = None
    silent: bool = False
    sqlite_path: str | None = None
    _holder: sqlite3.Connection | None = None

    def cut(self) -> None:
        if self.proxy is not None:
            self.proxy.cut(self.silent)
            return
        assert self.sqlite_path is not None
        holder = sqlite3.connect(self.sqlite_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        self._holder = holder

    def restore(self) -> None:
        if self.proxy is not None:
            self.proxy.restore()
            return
        assert self._holder is not None
        self._holder.execute("ROLLBACK")
        self._holder.close()
        self._holder = None


@contextlib.contextmanager
def outage(database_url: str, silent: bool = False) -> Iterator[Outage]:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        fault = Outage(database_url, sqlite_path=url.database)
        try:
            yield fault
        finally:
            if fault._holder is not None:
                fault.restore()
        return
    assert url.host == "127.0.0.1", "the proxy only ever talks to a local server"
    proxy = TcpProxy(url.port or 5432)
    try:
        yield Outage(url.set(port=proxy.port).render_as_string(hide_password=False), proxy,
                     silent)
    finally:
        proxy.close()


# -- helpers


def _call() -> PhoneCall:
    with httpx.Client() as unused:
        return PhoneCall(unused, "http://x", TOKEN)


def _post(url: str, call: PhoneCall, path: str, digits: str | None = None) -> str:
    params = call.base_params("ringing" if digits is None else "in-progress")
    if digits is not None:
        params["Digits"] = digits
    with httpx.Client(base_url=url, timeout=30) as client:
        call.client = client
        call.base = url
        r = call.post(path, params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/xml"), r.headers
    return str(r.text)


def _safe_route(twiml: str) -> bool:
    root = ET.fromstring(twiml)
    verbs = [(el.tag, (el.text or "").strip()) for el in root]
    return (root.tag == "Response" and ("Say", APOLOGY_EN) in verbs
            and verbs[-1] == ("Enqueue", SAFE_QUEUE))


def _readyz(url: str) -> tuple[int, dict[str, object]]:
    r = httpx.get(f"{url}/readyz", timeout=30)
    return r.status_code, r.json()


def _call_goes_through(url: str) -> None:
    call = _call()
    assert "/twilio/gather?s=1" in _post(url, call, "/twilio/voice")
    assert BILLING_MENU in _post(url, call, "/twilio/gather?s=1", "2")
    assert BILLING in _post(url, call, "/twilio/gather?s=2", "1")


def _log(proc: subprocess.Popen[bytes], url: str, menus_dir: Path) -> str:
    return (menus_dir.parent / f"server-{url.rsplit(':', 1)[1]}.log").read_text("utf-8")


# -- 1. the database goes away in the middle of a call, and comes back


def _lose_the_database_mid_call(database_url: str, menus_dir: Path,
                                silent: bool = False) -> str:
    """The whole story of one outage; returns the timings seen."""
    always_open(menus_dir)
    with outage(database_url, silent) as fault, \
            server(fault.url, menus_dir, IVR_SAFE_QUEUE=SAFE_QUEUE) as (url, proc):
        assert _readyz(url)[0] == 200
        call = _call()
        first = _post(url, call, "/twilio/voice")
        assert WELCOME in first and "/twilio/gather?s=1" in first

        fault.cut()
        started = time.monotonic()
        during = _post(url, call, "/twilio/gather?s=1", "2")
        waited = time.monotonic() - started
        assert _safe_route(during), during
        assert waited < ANSWER_WITHIN_S, f"the caller waited {waited:.2f} s"
        # A new call while the database is gone: the same safe answer, as fast.
        started = time.monotonic()
        new_call = _post(url, _call(), "/twilio/voice")
        waited_new = time.monotonic() - started
        assert _safe_route(new_call), new_call
        assert waited_new < ANSWER_WITHIN_S, f"a new caller waited {waited_new:.2f} s"
        started = time.monotonic()
        status, body = _readyz(url)
        probe = time.monotonic() - started
        assert status == 503, body
        assert str(body["database"]).startswith("failed: "), body
        assert body["menus"] == "ok"
        assert probe < ANSWER_WITHIN_S, f"/readyz took {probe:.2f} s"

        fault.restore()
        restored = time.monotonic()
        deadline = restored + RECOVER_WITHIN_S
        while (status := _readyz(url)[0]) != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        ready_after = time.monotonic() - restored
        assert status == 200, f"not ready {RECOVER_WITHIN_S} s after the database came back"
        # No restart: a new call goes through the menus, first time.
        _call_goes_through(url)
        through_after = time.monotonic() - restored
        assert proc.poll() is None
        log = _log(proc, url, menus_dir)
    assert "webhook failed; sending the caller to the safe queue" in log
    return (f"caller answered in {waited:.2f} s, new caller in {waited_new:.2f} s, /readyz "
            f"503 in {probe:.2f} s; ready {ready_after:.2f} s after the database came back, "
            f"a new call through the menus after {through_after:.2f} s")


def test_database_lost_mid_call_the_caller_is_routed_safely_and_the_server_recovers(
        database_url: str, menus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    timings = _lose_the_database_mid_call(database_url, menus_dir)
    with capsys.disabled():
        print(f"\n[{make_url(database_url).get_backend_name()}, refused] {timings}")


def test_database_that_takes_connections_and_never_answers_is_not_waited_for(
        pg_url: str, menus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Connections cut, then new ones taken and never answered (a hung server): the
    connect timeout bounds every wait."""
    timings = _lose_the_database_mid_call(pg_url, menus_dir, silent=True)
    with capsys.disabled():
        print(f"\n[postgresql, silent] {timings}")


def _terminate_other_backends(pg_url: str) -> int:
    """What a PostgreSQL restart or a proxy in between does to the pooled connections: every
    connection to this test's database but this one is closed by the server."""
    engine = create_engine(pg_url, poolclass=NullPool)
    with engine.connect() as conn:
        pids = conn.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")).scalars().all()
        for pid in pids:
            conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
    engine.dispose()
    return len(pids)


def test_pooled_connections_the_server_closed_are_not_lent(pg_url: str) -> None:
    """The engine and the menu-step pool find closed connections before a request uses
    them (no safe route for the first callers after a database restart)."""
    db = Database(Settings(_env_file=None, database_url=pg_url, db_pool_size=3))

    async def steps() -> list[int]:
        pool = await db.open_async_pool()
        try:
            async with pool.connection() as aconn:
                before = (await (await aconn.execute("SELECT pg_backend_pid()")).fetchone())[0]
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            assert _terminate_other_backends(pg_url) >= 4  # 3 step connections, 1 engine's
            async with pool.connection() as aconn:
                after = (await (await aconn.execute("SELECT pg_backend_pid()")).fetchone())[0]
            return [before, after]
        finally:
            await pool.close()

    try:
        before, after = asyncio.run(steps())
        assert before != after
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        db.ping()
    finally:
        db.close()


# -- 2. a server killed between /voice and the first gather


def test_server_killed_after_voice_a_new_process_continues_the_call(
        database_url: str, menus_dir: Path) -> None:
    always_open(menus_dir)
    call = _call()
    with server(database_url, menus_dir, IVR_SAFE_QUEUE=SAFE_QUEUE) as (url_a, proc_a):
        first = _post(url_a, call, "/twilio/voice")
        assert WELCOME in first and "/twilio/gather?s=1" in first
        proc_a.send_signal(signal.SIGKILL)
        assert proc_a.wait(10) == -signal.SIGKILL
    with server(database_url, menus_dir, IVR_SAFE_QUEUE=SAFE_QUEUE) as (url_b, _proc_b):
        second = _post(url_b, call, "/twilio/gather?s=1", "2")
        assert BILLING_MENU in second and not _safe_route(second), second
        # Twilio retrying the gather the dead server may have answered: the same answer.
        assert _post(url_b, call, "/twilio/gather?s=1", "2") == second
        assert BILLING in _post(url_b, call, "/twilio/gather?s=2", "1")


# -- 3. broken menu files at start-up

# An extra menu nobody links to, with a flow sequence left open on line 3 (the parser finds
# out on line 4, column 6; the problem names the `[` on line 3, column 19).
BROKEN_EXTRA = """\
description: Promotions
languages: [he-IL, en-US]
default_language: [he-IL
start: promo
nodes:
  promo: {type: hangup}
"""


def test_a_broken_menu_file_is_reported_and_the_valid_menus_are_served(
        database_url: str, menus_dir: Path) -> None:
    always_open(menus_dir)
    broken = menus_dir / "promo.yaml"
    broken.write_text(BROKEN_EXTRA, encoding="utf-8")
    with server(database_url, menus_dir, IVR_ADMIN_TOKEN=ADMIN,
                IVR_SAFE_QUEUE=SAFE_QUEUE) as (url, proc):
        status, body = _readyz(url)
        assert status == 200 and body["menus"] == "ok", body
        admin = httpx.get(f"{url}/admin/menus", headers={"Authorization": f"Bearer {ADMIN}"},
                          timeout=10).json()
        assert admin["menus"] == ["main", "support"]
        [reason] = admin["report"]["refused"][str(broken)]
        assert reason == (f"{broken}:3:19: error: invalid YAML: `[` opened on line 3 is never "
                          "closed: end the list with `]`")
        _call_goes_through(url)
        log = _log(proc, url, menus_dir)
    assert f"menu refused: {reason}" in log
    assert f"menu file {broken} refused; it is not live" in log


def _serve_fails(menus_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"IVR_DATABASE_URL": f"sqlite:///{tmp_path / 'refused.db'}",
           "IVR_MENUS_DIR": str(menus_dir), "IVR_TWILIO_AUTH_TOKEN": TOKEN,
           "IVR_WATCH_MENUS": "false", "IVR_LOG_LEVEL": "warning"}
    return subprocess.run(
        [sys.executable, "-m", "ivr.cli", "serve", "--port", str(_free_port())],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False)


def test_a_broken_entry_menu_refuses_to_start_with_the_reason(menus_dir: Path,
                                                             tmp_path: Path) -> None:
    main = menus_dir / "main.yaml"
    text = main.read_text(encoding="utf-8")
    main.write_text(text.replace("\nnodes:\n", "\nnodez:\n", 1), encoding="utf-8")
    line = text[:text.index("\nnodes:\n")].count("\n") + 2
    done = _serve_fails(menus_dir, tmp_path)
    assert done.returncode == 1, done.stderr
    err = done.stderr
    assert f"{main}:{line}:1: error: nodez: unknown key 'nodez'; expected one of:" in err
    assert "error: the server cannot start: entry menu 'main' is not loaded" in err
    assert "Traceback" not in err
    assert not (tmp_path / "refused.db").exists()  # refused before touching the database


def test_no_valid_menu_refuses_to_start(menus_dir: Path, tmp_path: Path) -> None:
    for f in menus_dir.glob("*.yaml"):
        f.unlink()
    (menus_dir / "promo.yaml").write_text(BROKEN_EXTRA, encoding="utf-8")
    done = _serve_fails(menus_dir, tmp_path)
    assert done.returncode == 1, done.stderr
    assert f"{menus_dir / 'promo.yaml'}:3:19: error: invalid YAML" in done.stderr
    assert ("error: the server cannot start: entry menu 'main' is not loaded "
            "(menus available: none)") in done.stderr
    assert "Traceback" not in done.stderr
