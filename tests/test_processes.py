"""Real server processes: any process answers a call's next webhook, and a server killed
(SIGKILL) between two webhooks of a call loses nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from ivr.simulator.caller import PhoneCall
from tests.conftest import TOKEN

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(database_url: str, menus_dir: Path, *, open_files: int | None = None,
           **extra_env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``ivr serve`` on a free port; ``open_files``: the soft limit on open files it starts
    with (util-linux's ``prlimit``; the hard limit stays)."""
    port = _free_port()
    env = {**os.environ, "IVR_DATABASE_URL": database_url, "IVR_MENUS_DIR": str(menus_dir),
           "IVR_TWILIO_AUTH_TOKEN": TOKEN, "IVR_WATCH_MENUS": "false",
           "IVR_LOG_LEVEL": "warning", **extra_env}
    log = menus_dir.parent / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*([] if open_files is None else ["prlimit", f"--nofile={open_files}:"]),
             sys.executable, "-m", "ivr.cli", "serve", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            raise AssertionError(f"server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _post(url: str, call: PhoneCall, path: str, params: dict[str, str]) -> str:
    with httpx.Client(base_url=url, timeout=10) as client:
        call.client = client
        call.base = url
        r = call.post(path, params)
    assert r.status_code == 200, r.text
    return str(r.text)


def always_open(menus_dir: Path) -> None:
    """The demo menu keeps office hours; these tests run at any hour on the real clock."""
    main = menus_dir / "main.yaml"
    text = main.read_text(encoding="utf-8")
    for day in ("sun", "mon", "tue", "wed", "thu"):
        text = text.replace(f'      {day}: ["08:00-20:00"]', f'      {day}: ["00:00-24:00"]')
    text = text.replace('      fri: ["08:00-13:00"]', '      fri: ["00:00-24:00"]')
    text = text.replace("    holidays: {country: IL}\n", '      sat: ["00:00-24:00"]\n')
    main.write_text(text, encoding="utf-8")


def test_kill_between_webhooks_and_continue_elsewhere(database_url: str,
                                                      menus_dir: Path) -> None:
    always_open(menus_dir)

    with httpx.Client() as unused:
        call = PhoneCall(unused, "http://x", TOKEN)
    with server(database_url, menus_dir) as (url_a, proc_a):
        # The real server names no server software; it dates its answers, as HTTP asks.
        probe = httpx.get(f"{url_a}/healthz", timeout=5)
        assert "server" not in probe.headers and "date" in probe.headers
        first = _post(url_a, call, "/twilio/voice", call.base_params("ringing"))
        assert "/twilio/gather?s=1" in first
        second = _post(url_a, call, "/twilio/gather?s=1", {**call.base_params(), "Digits": "2"})
        assert "For billing and payments, press 1." in second
        proc_a.send_signal(signal.SIGKILL)
        proc_a.wait(10)
    # A new process (after the crash) takes the call's next webhook.
    with server(database_url, menus_dir) as (url_b, _proc_b):
        third = _post(url_b, call, "/twilio/gather?s=2", {**call.base_params(), "Digits": "1"})
        assert "Transferring you to billing." in third
        # Twilio retrying the step the dead server may never have answered: same answer.
        again = _post(url_b, call, "/twilio/gather?s=2", {**call.base_params(), "Digits": "1"})
        assert again == third


def test_ivr_simulate_plays_a_call_against_a_real_server(database_url: str,
                                                         menus_dir: Path) -> None:
    always_open(menus_dir)
    with server(database_url, menus_dir) as (url, _proc):
        env = {**os.environ, "IVR_TWILIO_AUTH_TOKEN": TOKEN}
        out = subprocess.run(
            [sys.executable, "-m", "ivr.cli", "simulate", "--url", url, "--press", "2,,3,1"],
            env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[1] == ("  🔊 [he-IL] שלום, הגעתם לשירות הלקוחות. לעברית הקישו 1. "
                        "For English, press 2.")
    assert "  🔊 [en-US] We did not hear a choice." in lines
    assert "  ⏳ queued in 'retention' (answer: hangup)" in lines
    assert lines[-1] == "  ✆  call ended"
