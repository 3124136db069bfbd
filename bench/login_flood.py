"""Webhook latency with and without a flood of agent sign-ins (issue 15, item 3).

Starts a real ``ivr serve`` on 127.0.0.1 (SQLite in a temporary directory, or a fresh
PostgreSQL database with ``--postgres``), adds one agent, then runs three phases of
``--seconds`` each, in one run:

1. ``quiet``: ``--webhooks`` concurrent loops of signed call starts (``POST /twilio/voice``:
   signature, caller look-up, the first menu step, the call recorded), nothing else;
2. ``right passwords``: the same, plus ``--flood`` concurrent loops signing in with the
   right password (never throttled: every one is a scrypt check, about 0.1 s of a core);
3. ``wrong passwords``: the same, plus ``--flood`` loops of wrong passwords over many
   accounts (throttled after a few, per account and per address).

Each phase reports the webhook's p50 / p99 / max and the sign-ins answered by status.
The sign-ins come from a process of their own, so they cannot take turns from the webhook
loops in the measuring client. ``--source DIR`` serves another checkout of the project
(e.g. a ``git worktree`` of the commit before the fix) with this same load, for a
before/after comparison in one run; ``--append`` adds the table to ``bench/results.md``
under "Login flood (issue 15)".

Every loop is bounded by the phase's time and by ``--max-requests``; nothing leaves
127.0.0.1. Needs only the project's own dependencies (httpx, twilio).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-auth-token"
PASSWORD = "bench-right-password"
RESULTS = ROOT / "bench" / "results.md"
HEADING = "## Login flood (issue 15)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Phase:
    name: str
    webhook: list[float] = field(default_factory=list)
    webhook_errors: int = 0
    logins: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0

    def row(self, label: str) -> str:
        w = sorted(self.webhook)
        if not w:
            return f"| {label} | {self.name} | 0 | – | – | – | {self.webhook_errors} | – |"
        p99 = w[min(len(w) - 1, int(len(w) * 0.99))]
        logins = ", ".join(f"{n}×{code}" for code, n in sorted(self.logins.items())) or "–"
        return (f"| {label} | {self.name} | {len(w) / self.seconds:.0f} | "
                f"{statistics.median(w) * 1000:.1f} | {p99 * 1000:.1f} | {w[-1] * 1000:.1f} | "
                f"{self.webhook_errors} | {logins} |")


class Server:
    """``ivr serve`` from ``source`` (a checkout of the project) in a process of its own."""

    def __init__(self, source: Path, env: dict[str, str], workdir: Path) -> None:
        self.source, self.workdir = source, workdir
        self.port = free_port()
        self.env = {**os.environ, "PYTHONPATH": str(source), **env}
        self.log = workdir / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, extra_env: dict[str, str] | None = None) -> None:
        subprocess.run([sys.executable, "-m", "ivr.cli", *args], cwd=self.source,
                       env={**self.env, **(extra_env or {})}, check=True,
                       stdout=subprocess.DEVNULL)

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ivr.cli", "serve", "--host", "127.0.0.1", "--port",
                 str(self.port)], cwd=self.source, env=self.env, stdout=out,
                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"the server did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def login_flood(url: str, seconds: float, flood: int, kind: str,
                      max_requests: int) -> Counter[int]:
    """``flood`` loops of sign-ins for ``seconds``: the right password of the bench's agent,
    or wrong ones over many accounts. Run in a process of its own (``flood_process``), so
    its fast refusals do not take turns from the webhook loops being measured."""
    answers: Counter[int] = Counter()
    stop_at = time.monotonic() + seconds
    budget = [max_requests]
    limits = httpx.Limits(max_connections=flood + 2, max_keepalive_connections=flood + 2)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        async def login_loop(i: int) -> None:
            n = 0
            while time.monotonic() < stop_at and budget[0] > 0:
                budget[0] -= 1
                n += 1
                body = ({"username": "flood", "password": PASSWORD} if kind == "right" else
                        {"username": f"user{i}-{n % 7}", "password": f"guess{n}"})
                try:
                    r = await client.post("/agent/login", json=body)
                    answers[r.status_code] += 1
                except httpx.HTTPError:
                    answers[0] += 1

        await asyncio.gather(*(login_loop(i) for i in range(flood)))
    return answers


def flood_process(url: str, seconds: float, flood: int, kind: str, max_requests: int,
                  out: Any) -> None:
    out.put(dict(asyncio.run(login_flood(url, seconds, flood, kind, max_requests))))


async def run_phase(url: str, name: str, seconds: float, webhooks: int, flood: int,
                    flood_kind: str | None, max_requests: int) -> Phase:
    phase = Phase(name)
    validator = RequestValidator(TOKEN)
    flooding = None
    if flood_kind is not None:
        results: Any = multiprocessing.Queue()
        flooding = multiprocessing.Process(target=flood_process, args=(
            url, seconds, flood, flood_kind, max_requests, results))
        flooding.start()
        await asyncio.sleep(0.5)  # the flood is on before the first webhook
    stop_at = time.monotonic() + seconds - (0.5 if flooding else 0)
    budget = [max_requests]
    limits = httpx.Limits(max_connections=webhooks + 2, max_keepalive_connections=webhooks + 2)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        async def webhook_loop() -> None:
            while time.monotonic() < stop_at and budget[0] > 0:
                budget[0] -= 1
                params = {"AccountSid": "AC" + "0" * 32, "CallSid": "CA" + uuid.uuid4().hex,
                          "CallStatus": "ringing", "Direction": "inbound",
                          "From": "+97250" + str(uuid.uuid4().int)[:7],
                          "To": "+97235550100", "ApiVersion": "2010-04-01"}
                signature = validator.compute_signature(f"{url}/twilio/voice", params)
                started = time.perf_counter()
                try:
                    r = await client.post("/twilio/voice", data=params,
                                          headers={"X-Twilio-Signature": signature})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    phase.webhook.append(time.perf_counter() - started)
                else:
                    phase.webhook_errors += 1

        started = time.monotonic()
        await asyncio.gather(*(webhook_loop() for _ in range(webhooks)))
        phase.seconds = time.monotonic() - started
    if flooding is not None:
        phase.logins.update(results.get(timeout=120))
        flooding.join(30)
    return phase


def postgres_database(admin_url: str) -> tuple[str, str]:
    """A fresh database next to ``admin_url``'s; (its URL, its name)."""
    from sqlalchemy import create_engine, text  # noqa: PLC0415
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    name = f"ivr_bench_login_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), name


def drop_postgres(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text  # noqa: PLC0415

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def measure(source: Path, label: str, args: argparse.Namespace) -> list[str]:
    workdir = Path(tempfile.mkdtemp(prefix="login-flood-"))
    dropped: str | None = None
    try:
        menus = workdir / "menus"
        shutil.copytree(source / "menus", menus, ignore=shutil.ignore_patterns("*.json"))
        if args.postgres:
            database_url, dropped = postgres_database(args.postgres)
        else:
            database_url = f"sqlite:///{workdir / 'ivr.db'}"
        env = {"IVR_DATABASE_URL": database_url, "IVR_MENUS_DIR": str(menus),
               "IVR_TWILIO_AUTH_TOKEN": TOKEN, "IVR_WATCH_MENUS": "false",
               "IVR_LOG_LEVEL": "warning", "IVR_CALLBACKS_FILE": str(workdir / "none.yaml"),
               "IVR_CRM_DIR": str(workdir / "crm")}
        server = Server(source, env, workdir)
        server.cli("migrate")
        server.cli("agents", "add", "flood", "--name", "Flood", "--queues", "operator",
                   "--password-env", "BENCH_PW", extra_env={"BENCH_PW": PASSWORD})
        server.start()
        try:
            phases = [("quiet", None), ("right passwords", "right"),
                      ("wrong passwords", "wrong")]
            rows = []
            for name, kind in phases:
                phase = asyncio.run(run_phase(server.url, name, args.seconds, args.webhooks,
                                              args.flood, kind, args.max_requests))
                rows.append(phase.row(label))
                print(rows[-1], flush=True)
            return rows
        finally:
            server.stop()
    finally:
        if dropped is not None:
            drop_postgres(args.postgres, dropped)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="each phase's length")
    parser.add_argument("--webhooks", type=int, default=8,
                        help="concurrent loops of signed call starts")
    parser.add_argument("--flood", type=int, default=32, help="concurrent sign-in loops")
    parser.add_argument("--max-requests", type=int, default=200_000,
                        help="at most this many requests a phase")
    parser.add_argument("--postgres", metavar="ADMIN_URL",
                        help="PostgreSQL (a fresh database is made next to this one)")
    parser.add_argument("--source", type=Path, action="append", default=[],
                        help="a checkout to serve as well (label: its directory's name)")
    parser.add_argument("--append", action="store_true", help="add to bench/results.md")
    args = parser.parse_args()

    header = ["| server | phase | webhooks/s | p50 ms | p99 ms | max ms | errors | sign-ins |",
              "|---|---|---:|---:|---:|---:|---:|---|"]
    print("\n".join(header), flush=True)
    rows: list[str] = []
    load_before = os.getloadavg()[0]
    for source in [ROOT, *args.source]:
        label = "this checkout" if source == ROOT else source.name
        rows += measure(source.resolve(), label, args)
    load_after = os.getloadavg()[0]
    if args.append:
        database = "PostgreSQL" if args.postgres else "SQLite"
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
        block = [f"### {when}, {database}, one `ivr serve` process",
                 "",
                 f"`python bench/login_flood.py {' '.join(sys.argv[1:])}` on "
                 f"{platform.machine()} with {os.cpu_count()} cores (load average "
                 f"{load_before:.1f} before, {load_after:.1f} after: other work shared the "
                 f"machine): {args.webhooks} concurrent webhook loops, {args.flood} sign-in "
                 f"loops, {args.seconds:g} s a phase.", "", *header, *rows, ""]
        if HEADING not in text:
            block = [HEADING, "", *block]
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write(("\n" if text and not text.endswith("\n\n") else "") +
                      "\n".join(block) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
