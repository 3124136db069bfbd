"""The HTTP server ``ivr serve`` runs: uvicorn, with a bound on how long a request's headers
may take and how large they may be.

uvicorn closes a keep-alive connection idle for ``timeout_keep_alive`` after a response, but
nothing bounds a connection before its first request, nor a request whose headers trickle
in (each byte re-arms nothing: the keep-alive timer is only cancelled): 500 clients that
send half a header line and stall held 500 connections for as long as they liked. Its h11
protocol caps header size, the httptools one (what uvicorn picks when httptools is
installed, as here) does not. ``BoundedHttpToolsProtocol`` adds both to the httptools
protocol: from the moment a connection can send a request (it opened, or the previous
response ended) its headers must be complete within ``header_timeout`` seconds (else 408
and the connection is closed; a connection that sent nothing is just closed) and within
``max_header_bytes`` (else 431). Bodies, streaming answers (the console's event stream) and
the handlers' own time are not bounded here.

Each agent's open console is a connection, so a process holding 1,000 consoles needs more
than 1,000 file descriptors: past the soft limit on open files (1,024 is a common default:
systemd's and most shells') uvicorn can accept no more connections — consoles, and the
webhooks with them. ``serve`` raises the soft limit to the hard one first
(``raise_open_files_limit``), as the Go runtime and nginx's ``worker_rlimit_nofile`` do; the
hard limit is the operator's to set (``LimitNOFILE=`` in a systemd unit, ``ulimit -Hn``).

Why this rather than another server or a proxy: it keeps the server every figure in
``bench/results.md`` was measured on, costs a timer per request, and holds with or without a
reverse proxy in front (hypercorn's ``read_timeout`` is re-armed by every byte; granian's
``header_read_timeout`` would mean re-measuring everything on another server).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

log = logging.getLogger(__name__)

#: Defaults when a uvicorn Config does not carry the settings (``serve`` sets them).
HEADER_TIMEOUT = 10.0
MAX_HEADER_BYTES = 64 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request's headers and a cap on
    their size (``config.header_timeout``, ``config.max_header_bytes``)."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = float(getattr(config, "header_timeout", HEADER_TIMEOUT))
        self.max_header_bytes = int(getattr(config, "max_header_bytes", MAX_HEADER_BYTES))
        self._header_deadline: asyncio.TimerHandle | None = None
        self._reading_headers = False
        self._header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        reading = self._reading_headers
        super().data_received(data)
        if reading and self._reading_headers:  # still no complete header: all header bytes
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431, "Request header fields too large")

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._stop_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        waiting = bool(self.pipeline)  # a pipelined request whose headers are complete
        super().on_response_complete()
        if not waiting and not self.transport.is_closing():
            self._await_headers()

    # -- the deadline

    def _await_headers(self) -> None:
        self._stop_deadline()
        self._reading_headers = True
        self._header_bytes = 0
        self._header_deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _stop_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or not self._reading_headers:
            return
        if self._header_bytes:  # a request was begun: say why it ends
            self._refuse(408, "Request header timeout")
        else:  # an idle connection: nothing to answer
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        self._reading_headers = False
        self._stop_deadline()
        if self.transport.is_closing():
            return
        body = message.encode("ascii")
        self.transport.write(b"".join([
            STATUS_LINE[status], b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: ", str(len(body)).encode("ascii"), b"\r\n",
            b"connection: close\r\n\r\n", body]))
        self.transport.close()


def raise_open_files_limit() -> tuple[int, int]:
    """This process's soft limit on open files (``RLIMIT_NOFILE``) raised to its hard limit;
    the processes it starts inherit it. Returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:  # the kernel refuses an infinite soft limit
        try:
            target = int(Path("/proc/sys/fs/nr_open").read_text())
        except (OSError, ValueError):
            target = 1024 * 1024
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("open files limit left at %d (hard %d): %s", soft, hard, exc)
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def serve(app: Any, *, header_timeout: float, max_header_bytes: int = MAX_HEADER_BYTES,
          **options: Any) -> bool:
    """``uvicorn.run`` with ``BoundedHttpToolsProtocol``; the bounds travel on the Config
    (pickled to each worker process with ``workers`` > 1). The soft limit on open files is
    raised to the hard one first (every console is a connection). False: the server did not
    start. Responses carry no ``server: uvicorn`` header: it tells an attacker which server
    to aim at and costs every response a header (the ``date`` header stays, as HTTP asks)."""
    raise_open_files_limit()
    options.setdefault("server_header", False)
    config = uvicorn.Config(app, http=BoundedHttpToolsProtocol, **options)
    config.header_timeout = header_timeout  # type: ignore[attr-defined]
    config.max_header_bytes = max_header_bytes  # type: ignore[attr-defined]
    if config.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return True
    server = uvicorn.Server(config)
    server.run()
    return bool(server.started)
