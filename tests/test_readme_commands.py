"""Every command of the README's ``sh`` blocks, run as written against the demo a newcomer
gets from ``./run.sh``: the same steps (demo customers, demo agents, ``ivr serve``) in a
fresh folder, with the demo's ``IVR_DEMO_ALWAYS_OPEN`` so the commands work at any hour on
the real clock. Each must exit 0 and print its key line; a command the test cannot run is
listed in ``NOT_RUN`` with the reason, and a README command in neither list fails the test.

SQLite only, on purpose: the demo is SQLite (``./run.sh``), and the always-open switch is
ignored on PostgreSQL (see ``Settings.demo_always_open_ignored``).
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "demo-password-1"
SPEED = ["--speed", "50"]  # waits and talk 50x faster; what is posted to the server is not

NOT_RUN = {
    "./run.sh": "creates .venv, installs the package and serves until stopped; this test "
                "runs its steps (crm demo-data, agents demo, ivr serve) itself",
    "./test.sh": "the whole check suite, this test included",
    "printf 'correct horse battery\\n' | .venv/bin/ivr agents add dana --name \"דנה לוי\" "
    "--queues billing --language he --password-stdin":
        "a pipe into ivr (not one command); tests/test_i18n_agents.py runs agents add "
        "--language",
    ".venv/bin/ivr reports queues --by week --from 2026-11-01 --csv > queues.csv":
        "a redirection into a file; tests/test_reports.py checks the CSV",
}
# A line each README command prints (as written; simulate with SPEED added).
EXPECT = {
    ".venv/bin/ivr simulate":
        "  🔊 [he-IL] שלום, הגעתם לשירות הלקוחות. לעברית הקישו 1. For English, press 2.",
    ".venv/bin/ivr simulate --press 2,1": "  🔊 [en-US] Transferring you to billing.",
    '.venv/bin/ivr simulate --press "2,say:I want to cancel,1"':
        "  🔊 [en-US] Thank you. A retention specialist will be with you shortly.",
    ".venv/bin/ivr simulate --press 1,0 --queue-result bridged":
        "  🔊 [he-IL] מעבירים אתכם לנציג.",
    ".venv/bin/ivr simulate --from +972507745961 --press 2,1 --wait-for-agent 60 "
    "--dial-status completed --talk 20": "  ☏  the agent answered; talking for 20 s",
    ".venv/bin/ivr simulate --from +972527654321 --press 2,0,1 --accept-callback":
        "  🔊 [en-US] Thank you. We will call you back by ",
    ".venv/bin/ivr simulate --from +972507745961 --press 1,4,\"say:very dissatisfied\" "
    "--wait-for-agent 60 --dial-status completed --talk 20":
        "  🔊 [en-US] Thank you very much. Goodbye.",
    ".venv/bin/ivr followups demo --press 2,5": "survey completed: ",
    ".venv/bin/ivr simulate --from +972507745961 --press 2,1 --talk 40 --as-agent noa "
    "--transfer queue:retention --second-agent avi --transfer-note \"wants to leave over "
    "the faults\"": "  👤 Avi Ben-David has the call; the screen-pop says: transferred by ",
    ".venv/bin/ivr simulate --from +972507745961 --press 2,1 --talk 40 --as-agent noa "
    "--transfer agent:avi --transfer-mode warm --transfer-note \"wants to leave; can you "
    "keep her?\"": "  👤 handed over: the caller is now with Avi Ben-David",
    ".venv/bin/ivr retention check": "ok: 6 topics, 7 outcomes, 7 leaving reasons",
    ".venv/bin/ivr reports list": "queues       per queue and day/week: ",
    ".venv/bin/ivr reports queues --from 2026-12-01 --to 2026-12-07 --lang he":
        "לפי תור — 2026-12-01 .. 2026-12-07",
    ".venv/bin/ivr reports agents --from 2026-12-01 --json": "{",
    ".venv/bin/ivr reports refresh": "rolled up ",
    ".venv/bin/ivr reports leaving --from 2026-01-01":
        "Why customers leave (exit interviews) — 2026-01-01 .. ",
}


def readme_commands(text: str) -> list[str]:
    """The command lines of the ```sh blocks, comments dropped, in README order."""
    out = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.M | re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                out.append(line.split(" #")[0].strip() if " #" in line else line.strip())
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_env(folder: Path, port: int, **extra: str) -> dict[str, str]:
    """What ``./run.sh`` gives the commands: a SQLite file, the demo's files, its .env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    return {**env, "IVR_DATABASE_URL": f"sqlite:///{folder / 'ivr.db'}",
            "IVR_MENUS_DIR": str(ROOT / "menus"), "IVR_CALLBACKS_FILE":
            str(ROOT / "callbacks.yaml"), "IVR_CRM_DIR": str(folder / "crm"),
            "IVR_SURVEYS_FILE": str(ROOT / "surveys.yaml"),
            "IVR_FOLLOWUPS_FILE": str(ROOT / "followups.yaml"),
            "IVR_WRAPUP_FILE": str(ROOT / "wrapup.yaml"),
            "IVR_TWILIO_AUTH_TOKEN": TOKEN, "IVR_DEMO_AGENT_PASSWORD": PASSWORD,
            "IVR_DEMO_ALWAYS_OPEN": "true", "IVR_PORT": str(port),
            "IVR_WATCH_MENUS": "false", **extra}


def ivr(folder: Path, env: dict[str, str], *argv: str,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ivr.cli", *argv], cwd=folder, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, check=False)


@contextmanager
def serving(folder: Path, env: dict[str, str], *argv: str) -> Iterator[tuple[str, Path]]:
    """``ivr serve`` (its port from IVR_PORT unless ``argv`` says), until it answers;
    yields its URL and the file its output goes to."""
    port = next((argv[i + 1] for i, a in enumerate(argv) if a == "--port"), env["IVR_PORT"])
    log = folder / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ivr.cli", "serve", *argv],
                                cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"ivr serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class Console:
    """Noa's side, through the console's API."""

    def __init__(self, url: str) -> None:
        self.url = url
        r = httpx.post(f"{url}/agent/login", json={"username": "noa", "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.auth = {"Authorization": f"Bearer {r.json()['token']}"}

    def available(self) -> None:
        r = httpx.post(f"{self.url}/agent/state", json={"state": "available"},
                       headers=self.auth)
        assert r.status_code == 200, r.text

    def wrap_up(self, call_sid: str) -> None:
        r = httpx.post(f"{self.url}/agent/calls/{call_sid}/wrapup", headers=self.auth,
                       json={"topic": "internet-down", "outcome": "resolved-on-call",
                             "resolved": True})
        assert r.status_code == 201, r.text

    def wrap_up_and_sign_out(self, call_sid: str) -> None:
        r = httpx.post(f"{self.url}/agent/calls/{call_sid}/wrapup", headers=self.auth,
                       json={"topic": "internet-down", "outcome": "resolved-on-call",
                             "resolved": True})
        assert r.status_code == 201, r.text
        assert httpx.post(f"{self.url}/agent/logout", headers=self.auth).status_code in (
            200, 204)

    def state(self) -> str:
        return str(httpx.get(f"{self.url}/agent/me", headers=self.auth).json()["state"])

    def take_what_waits(self, quiet: float = 6.0, within: float = 120.0) -> None:
        """Available, answer (the local dialer plays the customer) and wrap up whatever
        waits for Noa — callbacks, follow-ups — until nothing more comes for ``quiet``
        seconds (longer than a follow-up sweep), then sign out."""
        self.available()
        deadline = time.monotonic() + within
        free_since = time.monotonic()
        while time.monotonic() - free_since < quiet:
            assert time.monotonic() < deadline, "Noa never got free"
            me = httpx.get(f"{self.url}/agent/me", headers=self.auth).json()
            if me["state"] == "wrap_up":
                self.wrap_up(me["current_call_sid"])
            if me["state"] != "available":
                free_since = time.monotonic()
            time.sleep(0.1)
        assert httpx.post(f"{self.url}/agent/logout", headers=self.auth).status_code in (
            200, 204)


def test_every_readme_command_runs(tmp_path: Path) -> None:
    commands = readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    unknown = [c for c in commands if c not in EXPECT and c not in NOT_RUN]
    assert not unknown, f"README commands this test does not know: {unknown}"
    gone = [c for c in [*EXPECT, *NOT_RUN] if c not in commands]
    assert not gone, f"no longer in the README: {gone}"

    env = demo_env(tmp_path, free_port())
    data = ivr(tmp_path, env, "crm", "demo-data", "--customers", "200", "--if-empty")
    assert data.returncode == 0, data.stderr
    # The README's open-fault caller is the one run.sh prints.
    assert "  +972507745961  Yulia Morozov: has an open incident" in data.stdout
    agents = ivr(tmp_path, env, "agents", "demo", "--if-empty")
    assert agents.returncode == 0, agents.stderr

    with serving(tmp_path, env) as (url, log):
        banner = log.read_text(encoding="utf-8")
        assert f"the agent console: {url}/agent/" in banner
        assert "demo: the centre is open at any hour (IVR_DEMO_ALWAYS_OPEN)" in banner
        console: Console | None = None
        last_sid = ""

        def agent_available() -> None:
            nonlocal console
            console = Console(url)
            console.available()

        def agent_wrapped_up() -> None:  # the wrap-up frees the agent for the next call
            assert console is not None and console.state() == "wrap_up"
            console.wrap_up(last_sid)

        def agent_signed_out() -> None:
            assert console is not None and console.state() == "wrap_up"
            console.wrap_up_and_sign_out(last_sid)

        before: dict[str, Callable[[], None]] = {
            # "Press **Available**, then in a second terminal call …"
            ".venv/bin/ivr simulate --from +972507745961 --press 2,1 --wait-for-agent 60 "
            "--dial-status completed --talk 20": agent_available,
            # "Wrap up Yulia's call in the console … then call as Yulia once more"
            ".venv/bin/ivr simulate --from +972507745961 --press 1,4,\"say:very "
            "dissatisfied\" --wait-for-agent 60 --dial-status completed --talk 20":
                agent_wrapped_up,
            # "With Noa signed out …" (after the wrap-up of the call before)
            ".venv/bin/ivr simulate --from +972527654321 --press 2,0,1 --accept-callback":
                agent_signed_out,
            # "A callback or follow-up waiting for Noa … take it in the console and wrap it
            # up first" (Transfers): the callback and the low score's follow-up above.
            ".venv/bin/ivr simulate --from +972507745961 --press 2,1 --talk 40 --as-agent "
            "noa --transfer queue:retention --second-agent avi --transfer-note \"wants to "
            "leave over the faults\"": lambda: Console(url).take_what_waits(),
        }
        for command in commands:
            if command in NOT_RUN:
                continue
            before.get(command, lambda: None)()
            argv = shlex.split(command)
            assert argv[0] == ".venv/bin/ivr"
            out = ivr(tmp_path, env, *argv[1:], *(SPEED if argv[1] == "simulate" else []))
            assert out.returncode == 0, (f"{command}\n{out.stdout}\n{out.stderr}\nserver:\n"
                                         f"{log.read_text(encoding='utf-8')[-3000:]}")
            lines = out.stdout.splitlines()
            assert any(line.startswith(EXPECT[command]) for line in lines), (
                f"{command}: no line {EXPECT[command]!r} in\n{out.stdout}")
            assert not [line for line in lines if line.startswith("note:")], out.stdout
            sid = re.search(r"\(CallSid (CA\w+)\)", out.stdout)
            last_sid = sid.group(1) if sid else last_sid
