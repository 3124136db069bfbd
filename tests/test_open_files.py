"""``ivr serve`` raises its soft limit on open files to the hard one (issue 18, item 3).

Every open agent console is a connection: a process holding 1,000 consoles needs more than
1,000 descriptors, and 1,024 is a common default soft limit. Past it uvicorn can accept no
more connections (consoles, and the webhooks with them). Here a real ``ivr serve`` is
started with a soft limit of 64 and must still hold 150 connections at once."""

from __future__ import annotations

import re
import resource
import socket
from pathlib import Path

import pytest

from tests.test_processes import server

pytestmark = pytest.mark.slow

STARTED_WITH = 64
CONNECTIONS = 150


def soft_limit(pid: int) -> int:
    m = re.search(r"^Max open files\s+(\d+)", Path(f"/proc/{pid}/limits").read_text(), re.M)
    assert m, "no open files limit in /proc"
    return int(m.group(1))


def test_serve_holds_more_connections_than_the_soft_limit_it_started_with(
        tmp_path: Path, menus_dir: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < CONNECTIONS * 2:
        pytest.fail(f"this machine's hard limit on open files ({hard}) is below what the test "
                    "needs")
    with server(f"sqlite:///{tmp_path / 'ivr.db'}", menus_dir,
                open_files=STARTED_WITH) as (url, proc):
        assert soft_limit(proc.pid) > CONNECTIONS * 2
        host, port = url.removeprefix("http://").split(":")
        socks = []
        try:
            for _ in range(CONNECTIONS):  # all held open at once
                sock = socket.create_connection((host, int(port)), timeout=5)
                socks.append(sock)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answers = [sock.recv(4096) for sock in socks]
        finally:
            for sock in socks:
                sock.close()
    assert all(a.startswith(b"HTTP/1.1 200 ") for a in answers), \
        sum(not a.startswith(b"HTTP/1.1 200 ") for a in answers)
