"""The app served for real (uvicorn on 127.0.0.1, a free port, a background thread), for
tests that drive it from outside the process: a browser, an SSE stream, httpx.

``live_server`` starts ``ivr.app.create_app(settings, clock)`` with a clock that ticks in
real time from the conftest's opening hours (a browser's timers, SSE heartbeats and
"time in state" all see time pass), waits until it accepts connections, and stops it
cleanly: lifespan shutdown runs, the thread ends, and the socket is closed.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn
from fastapi import FastAPI

from ivr.app import create_app
from ivr.core.settings import Settings
from tests.conftest import OPEN_TIME


class RunningClock:
    """Real time, shifted to start at ``start``; ``advance`` jumps ahead (and stays ahead)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("RunningClock needs a timezone-aware datetime")
        self._offset = start.astimezone(UTC) - datetime.now(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, **kwargs: float) -> None:
        with self._lock:
            self._offset += timedelta(**kwargs)


@dataclass
class LiveServer:
    app: FastAPI
    clock: RunningClock
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class ServerThread:
    """One uvicorn server in a thread. ``start`` returns when it accepts connections;
    ``stop`` asks it to finish (open streams get ``grace`` seconds) and joins the thread."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", grace: int = 2) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.host, self.port = host, int(self.sock.getsockname()[1])
        config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="none",
                                timeout_graceful_shutdown=grace,
                                timeout_keep_alive=1)
        self.server = uvicorn.Server(config)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}",
                                       daemon=True)

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # reported by start()/stop(), not by the thread
            self.error = exc

    def start(self, timeout: float = 30.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                self.sock.close()
                raise RuntimeError(f"the server did not start: {self.error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start within {timeout} s")
            time.sleep(0.02)
        # Accepting connections, not just started: one request to be sure.
        with socket.create_connection((self.host, self.port), timeout=5):
            pass

    def stop(self, timeout: float = 15.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(5)
        self.sock.close()
        if self.thread.is_alive():
            raise RuntimeError("the server thread did not stop")
        if self.error is not None and not isinstance(self.error, SystemExit):
            raise RuntimeError(f"the server failed: {self.error!r}") from self.error


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    clock = RunningClock(OPEN_TIME)
    app = create_app(settings, clock)
    thread = ServerThread(app)
    thread.start()
    try:
        yield LiveServer(app, clock, thread.host, thread.port)
    finally:
        thread.stop()
