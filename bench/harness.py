"""What every benchmark in bench/ shares; each script keeps only what it measures.

* the machine and the run: ``machine_info`` (the full record), ``machine_line``,
  ``git_rev``, ``stamp``, ``exclusive`` (one run of a script at a time), ``can_pin``,
  ``pinned`` / ``pinned_here`` (CPU affinity of a child / of this process);
* servers: ``Server``, a process serving HTTP on 127.0.0.1 used as a context manager
  (``with ivr_server(...) as s:`` starts it and waits until it answers, stops it on the
  way out, keeps its log in bench/out/ and counts its warnings); ``ivr_server`` (``ivr
  serve``), ``python_server`` (a Python script: the bare baselines, stand-ins),
  ``ivr_env`` (the environment of a benchmark ``ivr serve``), ``write_menu``;
* databases: ``create_pg_database`` / ``drop_pg_database`` / ``pg_database`` (a fresh
  PostgreSQL database, dropped afterwards);
* load drivers: ``run_wrk`` (wrk with a Lua script that prints ``BENCH_JSON``, see
  bench/replay.lua) and ``fixed_rate`` (calls started at a fixed rate in a thread pool);
  latency figures ``pct`` / ``summary``; ``profiler`` / ``summarise_profile`` (py-spy);
* the noise check: ``CpuMeter`` (the CPU each party used during a timed window: the
  servers, PostgreSQL, the client, everything else on the machine) and ``noise_notes``
  (``NOISY``: a run during which other work used more than that share of a core is
  suspect);
* fixtures: the synthetic customer store (``Customers``, ``write_customers``,
  ``load_customers``), the callers' history (``caller_records``, ``load_history``), the
  agents (``create_agents``, ``login_agents``, ``set_agent_states``);
* results: ``update_results`` replaces (or appends) one ``## `` section of
  bench/results.md (or the file given), leaving the others alone.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import contextlib
import csv
import fcntl
import functools
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar
from unittest import mock

import httpx
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from crm_sync.demo import CUSTOMER_COLUMNS, iter_customer_rows, write_csv  # noqa: E402
from crm_sync.identity import Rules  # noqa: E402
from crm_sync.importer import import_file  # noqa: E402
from crm_sync.mapping import default_mapping  # noqa: E402
from crm_sync.models import customer_phones, source_records  # noqa: E402
from crm_sync.phones import normalize  # noqa: E402
from ivr.agents import auth as agents_auth  # noqa: E402
from ivr.agents import repository as agents_repo  # noqa: E402
from ivr.core.db import make_engine  # noqa: E402
from ivr.core.migrate import upgrade  # noqa: E402

OUT = HERE / "out"
RESULTS = HERE / "results.md"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TOKEN = "bench-auth-token"  # IVR_TWILIO_AUTH_TOKEN of the benchmark servers
AGENT_PASSWORD = "bench-agent-pw"
NOISY = 0.15  # other work on the machine above this share of a core makes a run suspect
PORT = "{port}"  # in a python_server's arguments: the port it is given

CRM_REGION = "IL"
CRM_SOURCE = "billing"
CRM_BATCH = 20_000
KNOWN_SHARE = 0.8  # callers that are loaded customers; the rest are unknown numbers
OPEN_INCIDENT_SHARE = 0.3


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- machine and run


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def machine_line() -> str:
    """"2 CPU (model), Python 3.11.x": the short machine line of a results section."""
    return f"{os.cpu_count()} CPU ({cpu_model()}), Python {platform.python_version()}"


def machine_info() -> dict[str, Any]:
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    commit = _cmd(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    # Local changes to the code under test (the benchmark's own files do not count).
    dirty = _cmd(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no",
                  "--", ".", ":(exclude)bench"])
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "wrk": " ".join((_cmd(["wrk", "--version"]) or "wrk ?").split()[:2]),
        "uvicorn": _version("uvicorn"),
        "starlette": _version("starlette"),
        "fastapi": _version("fastapi"),
        "sqlalchemy": _version("sqlalchemy"),
        "git": f"{commit}{' (dirty)' if dirty else ''}" if commit else None,
    }


def git_rev() -> str:
    return _cmd(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "?"


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _cmd(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout or out.stderr).strip()


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


@contextlib.contextmanager
def exclusive(name: str) -> Iterator[None]:
    """A lock in bench/out/ held for the block: two runs of one script at once are refused
    (they would measure each other)."""
    OUT.mkdir(exist_ok=True)
    with (OUT / f"{name}.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise BenchError(f"another run of bench/{name}.py is in progress; two at once "
                             "would measure each other") from None
        yield


def run(main: Callable[[], int]) -> int:
    """``main()``'s exit status; a BenchError or a database error is printed as
    ``error: ...`` and exits 2."""
    try:
        return main()
    except (BenchError, SQLAlchemyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def can_pin(no_pin: bool) -> bool:
    """Whether to pin servers and clients to CPUs (taskset): 2 cores or more, unless told not."""
    return not no_pin and (os.cpu_count() or 1) >= 2 and bool(shutil.which("taskset"))


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv] if cpu is not None else argv


@contextlib.contextmanager
def pinned_here(cpu: int | None) -> Iterator[None]:
    """This process on one CPU for the block (None: left alone)."""
    before = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ivr_command() -> str:
    """The ``ivr`` CLI: next to this Python (a virtualenv not activated), else on PATH."""
    beside = Path(sys.executable).with_name("ivr")
    return str(beside) if beside.exists() else shutil.which("ivr") or "ivr"


@dataclass
class Server:
    """A server process on 127.0.0.1:``port``. As a context manager: started on entry
    (ready when ``GET health`` answers 200, or with ``health=None`` when the port accepts
    a connection), stopped on exit (SIGINT: uvicorn's graceful shutdown), its log copied
    to bench/out/ and its WARNING/ERROR lines counted in ``warnings``."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    log: Path
    health: str | None = "/healthz"
    timeout: float = 60.0
    keep_log: bool = True
    proc: subprocess.Popen[bytes] | None = None
    warnings: dict[str, int] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode} before it "
                                 f"was ready:\n{self.log_tail()}")
            if self._ready():
                return
            time.sleep(0.1)
        self.stop()
        raise BenchError(f"{self.name} not healthy after {self.timeout:.0f}s:\n"
                         f"{self.log_tail()}")

    def _ready(self) -> bool:
        if self.health is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(self.base + self.health, timeout=1.0).status_code == 200
        return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # uvicorn: graceful shutdown, lifespan exit
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None,
                 _tb: TracebackType | None) -> None:
        self.stop()
        self.warnings = dict(self.log_warnings())
        if self.keep_log:
            OUT.mkdir(exist_ok=True)
            with contextlib.suppress(OSError):
                shutil.copy(self.log, OUT / self.log.name)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_warnings(self) -> collections.Counter[str]:
        """Counts of WARNING/ERROR log lines by message (without the call id)."""
        counts: collections.Counter[str] = collections.Counter()
        with contextlib.suppress(OSError):
            for line in self.log.read_text(errors="replace").splitlines():
                m = re.search(r"\b(WARNING|ERROR|CRITICAL)\b (\S+): ([^=]*)", line)
                if m:
                    counts[f"{m.group(1)} {m.group(2)}: {m.group(3).strip()}"] += 1
        return counts


def ivr_server(name: str, env: dict[str, str], work: Path, log_name: str,
               cpu: int | None = None) -> Server:
    """``ivr serve`` on a free port (pinned to ``cpu``), its log at ``work/log_name``."""
    port = free_port()
    return Server(name, pinned([ivr_command(), "serve", "--host", "127.0.0.1", "--port",
                                str(port)], cpu), env, work, port, work / log_name)


def python_server(name: str, script: Path, args: Sequence[str], work: Path, log_name: str,
                  cpu: int | None = None, *, health: str | None = "/healthz",
                  timeout: float = 60.0) -> Server:
    """``python script args`` on a free port (``PORT`` in ``args`` stands for it)."""
    port = free_port()
    argv = [sys.executable, str(script), *(a.replace(PORT, str(port)) for a in args)]
    return Server(name, pinned(argv, cpu), dict(os.environ), work, port, work / log_name,
                  health=health, timeout=timeout)


def ivr_env(url: str, menus: Path, *, pg_pool: int, this_checkout: bool = False,
            **extra: str) -> dict[str, str]:
    """The environment of a benchmark ``ivr serve``: this one without its ``IVR_``
    variables, then the database, the menus, the Twilio token, no menu watching, warnings
    only, ``IVR_DB_POOL_SIZE`` on PostgreSQL, and ``extra``. ``this_checkout``: the code
    served is this checkout's (``PYTHONPATH``: a clean worktree of a commit runs its own
    code, not the editable install's tree)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env.update(IVR_DATABASE_URL=url, IVR_MENUS_DIR=str(menus), IVR_TWILIO_AUTH_TOKEN=TOKEN,
               IVR_WATCH_MENUS="false", IVR_LOG_LEVEL="warning", **extra)
    if this_checkout:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH"))
                                            if p)
    if url.startswith("postgresql"):
        env["IVR_DB_POOL_SIZE"] = str(pg_pool)
    return env


def write_menu(work: Path, yaml: str) -> Path:
    """``work/menus/main.yaml``, checked with ``ivr menus check``; the menus directory."""
    menus = work / "menus"
    menus.mkdir(exist_ok=True)
    (menus / "main.yaml").write_text(yaml, encoding="utf-8")
    check = subprocess.run([ivr_command(), "menus", "check", str(menus)],
                           capture_output=True, text=True, check=False, cwd=work)
    if check.returncode != 0:
        raise BenchError(f"benchmark menu refused:\n{check.stdout}{check.stderr}")
    return menus


# ---------------------------------------------------------------- databases


def create_pg_database(admin_url: str, name: str) -> str:
    """Drop and create the database ``name`` where ``admin_url`` points; its URL."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        raise BenchError(f"PostgreSQL at {admin_url} is not usable: {exc}") from None
    finally:
        admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(admin_url: str, name: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextlib.contextmanager
def pg_database(admin_url: str, name: str, *, migrate: bool = False) -> Iterator[str]:
    """A fresh database (migrated to head with ``migrate``), dropped afterwards."""
    url = create_pg_database(admin_url, name)
    try:
        if migrate:
            upgrade(url)
        yield url
    finally:
        drop_pg_database(admin_url, name)


# ---------------------------------------------------------------- CPU and the noise check


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), in seconds."""
    return sum(cpu_split(pid))


def postgres_cpu_seconds() -> float | None:
    """CPU of every process named postgres visible here (the local PostgreSQL server)."""
    total, seen = 0.0, False
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if "(postgres)" in stat:
            seen = True
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += cpu_seconds(int(proc.name))
    return total if seen else None


def machine_busy_seconds() -> float:
    """CPU time spent by everything on the machine (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """The CPU seconds each party used during a ``with`` block: each server process
    (``server``, and its kernel part ``server_system``), the local PostgreSQL
    (``postgres``, with ``postgres=True``; None when unknown, or when a backend exited
    and took its CPU with it), each client process (``clients``), the whole machine
    (``busy``); ``other(...)`` is what is left: unrelated work on the machine (noise).
    Also the wall time and the 1-minute load average before and after."""

    def __init__(self, servers: Sequence[int], *, postgres: bool = False,
                 clients: Sequence[int] = ()) -> None:
        self.pids = list(servers)
        self.client_pids = list(clients)
        self.with_postgres = postgres
        self.server: list[float] = []
        self.server_system: list[float] = []
        self.clients: list[float] = []
        self.postgres: float | None = None
        self.busy = self.wall = 0.0
        self.loadavg_before = self.loadavg_after = os.getloadavg()

    def __enter__(self) -> CpuMeter:
        self._busy0 = machine_busy_seconds()
        self._srv0 = [cpu_split(p) for p in self.pids]
        self._pg0 = postgres_cpu_seconds() if self.with_postgres else None
        self._cli0 = [cpu_seconds(p) for p in self.client_pids]
        self.loadavg_before = os.getloadavg()
        self._t0 = time.monotonic()
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None,
                 _tb: TracebackType | None) -> None:
        self.wall = time.monotonic() - self._t0
        self.busy = machine_busy_seconds() - self._busy0
        srv1 = [cpu_split(p) for p in self.pids]
        self.server = [(u1 - u0) + (s1 - s0)
                       for (u0, s0), (u1, s1) in zip(self._srv0, srv1, strict=True)]
        self.server_system = [s1 - s0 for (_u0, s0), (_u1, s1) in zip(self._srv0, srv1,
                                                                        strict=True)]
        pg1 = postgres_cpu_seconds() if self.with_postgres else None
        pg = pg1 - self._pg0 if self._pg0 is not None and pg1 is not None else None
        self.postgres = pg if pg is None or pg >= 0 else None
        self.clients = [cpu_seconds(p) - c for p, c in zip(self.client_pids, self._cli0,
                                                            strict=True)]
        self.loadavg_after = os.getloadavg()

    def other(self, extra: float = 0.0) -> float:
        """CPU seconds used by everything else (never below 0); ``extra``: another party
        accounted elsewhere (e.g. a child process that has exited)."""
        rest = self.busy - sum(self.server) - (self.postgres or 0.0) - sum(self.clients)
        return max(rest - extra, 0.0)


class NoiseSampler:
    """What other work on the machine used, second by second, during a ``with`` block: every
    ``every`` seconds a thread measures (``CpuMeter``) the machine's busy time less that of
    ``pids`` (and of PostgreSQL, with ``postgres``). ``samples``: [(CLOCK_MONOTONIC at the
    end of the interval, in seconds; other work's share of one core over it)] — to tell the
    calls that met a busy machine from those that did not (``CpuMeter`` averages the run)."""

    def __init__(self, pids: Sequence[int], *, postgres: bool = False,
                 every: float = 1.0) -> None:
        self.pids = list(pids)
        self.postgres = postgres
        self.every = every
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with CpuMeter(self.pids, postgres=self.postgres) as meter:
                self._stop.wait(self.every)
            if meter.wall > 0:
                self.samples.append((time.monotonic(), meter.other() / meter.wall))

    def __enter__(self) -> NoiseSampler:
        self._thread.start()
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None,
                 _tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(10)

    def share_at(self, t: float) -> float | None:
        """Other work's share over the interval holding monotonic time ``t``."""
        start = None
        for end, share in self.samples:
            if (start is None or t >= start) and t <= end:
                return share
            start = end
        return None


def process_memory(pid: int) -> dict[str, int]:
    """A process's resident memory (``VmRSS``, kB), open file descriptors and the soft limit
    on them (``Max open files``), from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    limits = re.search(r"^Max open files\s+(\d+|unlimited)",
                       Path(f"/proc/{pid}/limits").read_text(), re.M)
    soft = limits.group(1) if limits else "unlimited"
    return {"rss_kib": int(rss.group(1)) if rss else 0,
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "nofile_soft": int(soft) if soft.isdigit() else -1}


def noisy(other_share: float) -> bool:
    return other_share > NOISY


def noise_notes(runs: Iterable[tuple[str, float]]) -> list[str]:
    """(name, other CPU as a share of one core) per run: a note for each suspect run."""
    return [f"other work on the machine used {other:.0%} of a core during '{name}': that "
            "run is suspect" for name, other in runs if noisy(other)]


# ---------------------------------------------------------------- load drivers


@dataclass
class WrkResult:
    mode: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float
    counts: dict[str, int]
    socket_errors: dict[str, int]
    wrk_cpu: float  # share of one core
    raw: str

    @property
    def errors(self) -> int:
        """Every answer that is not a 2xx TwiML menu step, and every socket error."""
        c = self.counts
        return c["non2xx"] + c["other2xx"] + sum(self.socket_errors.values())


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found; installing it (apt-get install -y wrk) ...", flush=True)
    apt = shutil.which("apt-get")
    if apt and os.geteuid() == 0:
        for argv in ([apt, "install", "-y", "wrk"], [apt, "update"],
                     [apt, "install", "-y", "wrk"]):
            subprocess.run(argv, capture_output=True, check=False)
            found = shutil.which("wrk")
            if found:
                return found
    raise BenchError("wrk is required: install it with `apt-get install -y wrk` (Debian/Ubuntu)"
                     " or from https://github.com/wg/wrk, then run this again")


def run_wrk(server: Server, script: Path, data: Path, mode: str, duration: float,
            cpu: int | None, *, threads: int, connections: int) -> WrkResult:
    """wrk against ``server`` with a Lua ``script`` taking ``-- data mode host`` that
    prints one ``BENCH_JSON {...}`` line at the end (and ``BENCH_ONCE_DONE`` to stop it
    early: see bench/replay.lua). Stopped if the server dies."""
    port = server.port
    argv = pinned(["wrk", f"-t{threads}", f"-c{connections}", f"-d{math.ceil(duration)}s",
                   "--latency", "--timeout", "10s", "-s", str(script),
                   f"http://127.0.0.1:{port}", "--", str(data), mode, f"127.0.0.1:{port}"],
                  cpu)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    done = threading.Event()

    def watchdog() -> None:  # a dead server would leave wrk reconnecting until -d ends
        while not done.wait(0.5):
            if server.proc is not None and server.proc.poll() is not None:
                proc.send_signal(signal.SIGINT)
                return

    threading.Thread(target=watchdog, daemon=True).start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("BENCH_ONCE_DONE"):
                proc.send_signal(signal.SIGINT)  # wrk waits for all of -d otherwise
        proc.wait()
    finally:
        done.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if server.proc is not None and server.proc.poll() is not None:
        raise BenchError(f"{server.name} died during the run (exit {server.proc.returncode}):"
                         f"\n{server.log_tail()}")
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    raw = "".join(lines)
    found = [ln for ln in lines if ln.startswith("BENCH_JSON ")]
    if proc.returncode != 0 or not found:
        raise BenchError(f"wrk failed (exit {proc.returncode}):\n{raw}")
    d = json.loads(found[-1].split(" ", 1)[1])
    lat = d["latency_us"]
    seconds = d["duration_us"] / 1e6
    counts = d["counts"]
    # Throughput of real answers: the pool's requests (not the /healthz fillers of "once").
    answered = counts["gather"] + counts["other2xx"] + counts["non2xx"]
    cpu_used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return WrkResult(
        mode=mode, requests=answered, seconds=seconds, rps=answered / seconds,
        p50_ms=lat["p50"] / 1e3, p90_ms=lat["p90"] / 1e3, p99_ms=lat["p99"] / 1e3,
        p999_ms=lat["p999"] / 1e3, max_ms=lat["max"] / 1e3, mean_ms=lat["mean"] / 1e3,
        counts=counts, socket_errors=d["errors"], wrk_cpu=cpu_used / wall, raw=raw,
    )


class Started(Protocol):
    late_ms: float  # how late it started against its slot in the schedule


S = TypeVar("S", bound=Started)


def fixed_rate(n: int, rate: float, max_seconds: float, fn: Callable[[int], S],
               threads: int) -> tuple[list[S], list[str], float]:
    """fn(0..n-1) started at ``rate`` per second in a pool of ``threads``; a call whose
    slot is past ``max_seconds`` is not started. Returns (results, errors, seconds)."""
    results: list[S] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = time.monotonic()

    def run(i: int) -> None:
        late_ms = 1e3 * (time.monotonic() - start - i / rate)
        try:
            s = fn(i)
            s.late_ms = late_ms
        except Exception as exc:
            with lock:
                errors.append(f"call {i}: {type(exc).__name__}: {str(exc)[:300]}")
            return
        with lock:
            results.append(s)

    with cf.ThreadPoolExecutor(threads, thread_name_prefix="call") as pool:
        futures = []
        for i in range(n):
            slot = start + i / rate
            if slot - start > max_seconds:
                errors.append(f"{n - i} calls not started: past --max-seconds {max_seconds:g}")
                break
            delay = slot - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(run, i))
        _done, not_done = cf.wait(futures, timeout=60)
        if not_done:
            errors.append(f"{len(not_done)} calls still running 60 s after the last start")
            for f in not_done:
                f.cancel()
    return results, errors, time.monotonic() - start


def pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def summary(ms: Sequence[float]) -> dict[str, float | None]:
    if not ms:
        return {k: None for k in ("p50", "p90", "p95", "p99", "max", "mean")}
    return {"p50": pct(ms, 0.50), "p90": pct(ms, 0.90), "p95": pct(ms, 0.95),
            "p99": pct(ms, 0.99), "max": max(ms), "mean": statistics.fmean(ms)}


# ---------------------------------------------------------------- profiling (py-spy)

PROFILE_RATE = 200
ProfileRules = Sequence[tuple[str, Sequence[str]]]


@contextlib.contextmanager
def profiler(pid: int, seconds: float, out: Path | None) -> Iterator[None]:
    """py-spy record --gil on ``pid`` for the timed window (``out`` None: nothing)."""
    if out is None:
        yield
        return
    spy = shutil.which("py-spy")
    if spy is None:
        raise BenchError("--profile needs py-spy: pip install py-spy")
    argv = [spy, "record", "--pid", str(pid), "--duration", str(math.ceil(seconds)),
            "--rate", str(PROFILE_RATE), "--gil", "--nonblocking", "--format", "raw",
            "--output", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        try:
            proc.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)


def categorise(frames: list[str], stack_rules: ProfileRules, leaf_rules: ProfileRules) -> str:
    """The first rule whose pattern is anywhere in the stack, else the first leaf-most
    frame that matches a leaf rule (py-spy sometimes truncates stacks)."""
    joined = ";".join(frames)
    for name, patterns in stack_rules:
        if any(p in joined for p in patterns):
            return name
    for frame in reversed(frames):
        for name, patterns in leaf_rules:
            if any(p in frame for p in patterns):
                return name
    return "other"


def summarise_profile(raw: Path, seconds: float, top: int = 25, *,
                      stack_rules: ProfileRules = (), leaf_rules: ProfileRules = (),
                      ) -> dict[str, Any]:
    """From py-spy --gil collapsed stacks: the share of time the GIL was held, and the
    shares of the GIL-holding time by category, by function (self) and inclusive."""
    self_s: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    cats: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        raw_frames = stack.split(";")
        cats[categorise(raw_frames, stack_rules, leaf_rules)] += n
        frames = [_frame(f) for f in raw_frames]
        if frames:
            self_s[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return {"samples": 0}

    def share(c: collections.Counter[str], k: int | None = top) -> list[tuple[str, float]]:
        return [(name, round(100 * v / total, 1)) for name, v in c.most_common(k)]

    return {"samples": total, "gil_share": total / (PROFILE_RATE * seconds),
            "categories_pct": share(cats, None), "self_pct": share(self_s),
            "inclusive_pct": share(incl)}


def _frame(frame: str) -> str:
    # "function (path/to/file.py:123)" -> "function (file-ish:123)", shortened
    m = re.match(r"(.*) \((.*?):(\d+)\)$", frame)
    if not m:
        return frame
    func, path, _line_no = m.groups()
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path})"


# ---------------------------------------------------------------- fixtures: customers


@dataclass
class Customers:
    """The synthetic customers of a run: one CSV, loaded into every backend."""

    count: int
    csv: Path
    phones: list[str]  # the loaded customers' mobiles, E.164
    known: frozenset[str]
    write_seconds: float

    def callers(self, rng: random.Random, n: int) -> list[str]:
        """``n`` caller ids: KNOWN_SHARE loaded customers' mobiles (random, repeats
        possible), the rest unknown numbers (+97259 and 7 random digits, never loaded)."""
        out = []
        for _ in range(n):
            if rng.random() < KNOWN_SHARE:
                out.append(rng.choice(self.phones))
                continue
            while True:
                unknown = f"+97259{rng.randrange(10_000_000):07d}"
                if unknown not in self.known:
                    break
            out.append(unknown)
        return out


def write_customers(n: int, work: Path) -> Customers:
    """N billing customer rows to a CSV; collects their mobiles in E.164 on the way."""
    now = datetime.now(UTC)
    phones: list[str] = []

    def rows() -> Iterator[dict[str, str]]:
        for row in iter_customer_rows(n, now=now, source=CRM_SOURCE):
            e164 = normalize(row["mobile"], CRM_REGION).e164
            if e164 is not None:
                phones.append(e164)
            yield row

    path = work / f"customers-{n}.csv"
    started = time.monotonic()
    written = write_csv(path, rows(), CUSTOMER_COLUMNS)
    seconds = time.monotonic() - started
    if written != n or not phones:
        raise BenchError(f"customer CSV: {written} rows written, {len(phones)} mobiles "
                         f"usable, {n} asked for")
    return Customers(n, path, phones, frozenset(phones), seconds)


def load_customers(url: str, customers: Customers) -> dict[str, Any]:
    """Migrate a fresh database and import the customers through the real importer."""
    upgrade(url)
    engine = make_engine(url, 2)
    step = max(customers.count // 10, CRM_BATCH)
    shown = [0]
    started = time.monotonic()

    def progress(done: int) -> None:
        if done - shown[0] >= step:
            shown[0] = done
            print(f"    {done:,} records ({time.monotonic() - started:.0f} s)", flush=True)

    try:
        report = import_file(engine, customers.csv, default_mapping(CRM_SOURCE), Rules(),
                             CRM_REGION, lambda: datetime.now(UTC), batch_size=CRM_BATCH,
                             on_progress=progress)
        seconds = time.monotonic() - started
        with engine.connect() as conn:
            stored = int(conn.execute(text("SELECT count(*) FROM customers")).scalar_one())
            numbers = int(conn.execute(text("SELECT count(*) FROM customer_phones"))
                          .scalar_one())
        vacuum_seconds = None
        if engine.dialect.name == "postgresql":
            vacuum_started = time.monotonic()
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM (ANALYZE)"))
            vacuum_seconds = time.monotonic() - vacuum_started
    finally:
        engine.dispose()
    if report.status != "done" or stored == 0:
        raise BenchError(f"customer import: status {report.status}, {stored} customers "
                         f"stored, counts {report.counts.as_dict()}")
    return {"records": report.records, "seconds": seconds,
            "rows_per_s": report.records / seconds if seconds else None,
            "counts": report.counts.as_dict(), "rejected": len(report.rejected),
            "customers_stored": stored, "phones_stored": numbers,
            "vacuum_analyze_seconds": vacuum_seconds,
            "csv_write_seconds": customers.write_seconds}


def load_customers_csv(backend: str, url: str, csv_path: str, count: int) -> dict[str, Any]:
    """``load_customers`` of a CSV written before (in a worker process), with progress."""
    print(f"  {backend}: loading {count:,} customers (importer) ...", flush=True)
    load = load_customers(url, Customers(count, Path(csv_path), [], frozenset(), 0.0))
    print(f"  {backend}: loaded {load['records']:,} records in {load['seconds']:.1f} s",
          flush=True)
    return load


def history_rows(callers: Sequence[tuple[str, str]], rng: random.Random, now: datetime,
                 ) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Incidents (``tickets``) and interactions (``branch-tlv``) for the callers, keyed by
    their ``billing`` record id: OPEN_INCIDENT_SHARE with an open incident, some closed
    ones, 0-3 past interactions (some with a promise outstanding)."""
    incidents: list[dict[str, str]] = []
    interactions: list[dict[str, str]] = []
    for _phone, external_id in callers:
        n_open = int(rng.random() < OPEN_INCIDENT_SHARE)
        for k in range(n_open + int(rng.random() < 0.3)):
            is_open = k < n_open
            opened = now - timedelta(hours=rng.uniform(1, 240))
            incidents.append({
                "id": f"T-INC-{len(incidents) + 1:08d}", "customer_id": external_id,
                "category": rng.choice(("internet", "tv", "phone line", "billing")),
                "status": "open" if is_open else "closed",
                "summary": rng.choice(("האינטרנט מתנתק כל כמה דקות",
                                       "The TV box does not start",
                                       "אין צליל חיוג בקו הביתי")),
                "branch": rng.choice(("tlv", "haifa", "")),
                "opened_at": opened.isoformat(),
                "closed_at": "" if is_open else (opened + timedelta(hours=5)).isoformat(),
                "updated_at": (opened + timedelta(minutes=30)).isoformat()})
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            started = now - timedelta(days=rng.uniform(1, 180))
            promise = rng.random() < 0.2
            interactions.append({
                "id": f"TLV-CALL-{len(interactions) + 1:08d}", "customer_id": external_id,
                "channel": "call", "direction": "in", "queue": "support",
                "agent": rng.choice(("נועה מזרחי", "Avi Ben-David")),
                "started_at": started.isoformat(),
                "ended_at": (started + timedelta(minutes=6)).isoformat(),
                "topic": rng.choice(("internet fault", "invoice question", "upgrade")),
                "outcome": rng.choice(("explained", "technician booked", "escalated")),
                "resolved": "false" if promise else "true",
                "promised_action": "call back with the technician's time" if promise else "",
                "promised_due_at": (started + timedelta(days=1)).isoformat()
                if promise else "",
                "notes": "לקוח ותיק, ביקש שיחזרו אליו אחרי 17:00"})
    return incidents, interactions


def caller_records(url: str, phones: Sequence[str]) -> list[tuple[str, str]]:
    """(E.164, the customer's ``billing`` record id) for each phone that belongs to
    exactly one loaded customer, in the order given."""
    engine = create_engine(url)
    owners: dict[str, list[int]] = collections.defaultdict(list)
    record_of: dict[int, str] = {}
    try:
        with engine.connect() as conn:
            # Two indexed look-ups (a join lets SQLite's planner scan source_records).
            for i in range(0, len(phones), 500):
                for e164, customer_id in conn.execute(
                        select(customer_phones.c.e164, customer_phones.c.customer_id)
                        .where(customer_phones.c.e164.in_(list(phones[i:i + 500])))):
                    owners[e164].append(int(customer_id))
            ids = sorted({c for found in owners.values() for c in found})
            for i in range(0, len(ids), 500):
                for customer_id, source, external_id in conn.execute(
                        select(source_records.c.customer_id, source_records.c.source,
                               source_records.c.external_id)
                        .where(source_records.c.customer_id.in_(ids[i:i + 500]))):
                    if source == CRM_SOURCE:
                        record_of[int(customer_id)] = str(external_id)
    finally:
        engine.dispose()
    return [(p, record_of[owners[p][0]]) for p in phones
            if len(owners.get(p, ())) == 1 and owners[p][0] in record_of]


def load_history(url: str, callers: Sequence[tuple[str, str]], work: Path, tag: str,
                 ) -> dict[str, Any]:
    """The callers' incidents and interactions, through the real importer."""
    now = datetime.now(UTC)
    incidents, interactions = history_rows(callers, random.Random(f"history-{tag}"), now)
    engine = make_engine(url, 2)
    out: dict[str, Any] = {}
    try:
        for kind, source, rows in (("incidents", "tickets", incidents),
                                   ("interactions", "branch-tlv", interactions)):
            path = work / f"{tag}-{kind}.csv"
            with path.open("w", encoding="utf-8", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
            mapping = default_mapping(source, kind).model_copy(
                update={"customer_source": CRM_SOURCE})
            report = import_file(engine, path, mapping, Rules(), CRM_REGION,
                                 lambda: datetime.now(UTC), batch_size=CRM_BATCH)
            if report.status != "done" or report.rejected:
                raise BenchError(f"{kind} import: status {report.status}, "
                                 f"{len(report.rejected)} rejected, e.g. "
                                 f"{report.rejected[:1]}")
            out[kind] = report.records
        with engine.connect() as conn:
            out["callers_with_open_incident"] = int(conn.execute(text(
                "SELECT count(DISTINCT customer_id) FROM incidents WHERE status = 'open'"))
                .scalar_one())
    finally:
        engine.dispose()
    return out


# ---------------------------------------------------------------- fixtures: agents


def create_agents(url: str, names: Sequence[str], queues: Sequence[str], label: str, *,
                  scrypt_n: int | None = None) -> None:
    """Agents ``names`` ("<label> <k>"), password AGENT_PASSWORD, serving ``queues``.
    ``scrypt_n``: their passwords hashed at this scrypt cost instead of the product's
    (``SCRYPT_N``, about 0.1 s of a core at creation and again at each sign-in: 1,000
    agents would take minutes to set up where signing in is not what is measured)."""
    engine = create_engine(url)
    now = datetime.now(UTC)
    hashing = (contextlib.nullcontext() if scrypt_n is None else
               mock.patch.object(agents_repo, "hash_password",
                                 functools.partial(agents_auth.hash_password, n=scrypt_n)))
    try:
        with hashing, engine.begin() as conn:
            for k, username in enumerate(names):
                agents_repo.create_agent(conn, username=username, name=f"{label} {k}",
                                         password=AGENT_PASSWORD, queues=tuple(queues),
                                         now=now)
    finally:
        engine.dispose()


def login_agents(base: str, names: Sequence[str]) -> dict[str, str]:
    """``POST /agent/login`` of each agent: username -> bearer token."""
    tokens = {}
    with httpx.Client(base_url=base, timeout=30.0) as c:
        for name in names:
            r = c.post("/agent/login", json={"username": name, "password": AGENT_PASSWORD})
            if r.status_code != 200:
                raise BenchError(f"login {name}: HTTP {r.status_code} {r.text[:200]}")
            tokens[name] = str(r.json()["token"])
    return tokens


def set_agent_states(base: str, tokens: dict[str, str], available: Collection[str]) -> None:
    """``POST /agent/state``: the agents in ``available`` available, the others offline."""
    with httpx.Client(base_url=base, timeout=30.0) as c:
        for name, token in tokens.items():
            state = "available" if name in available else "offline"
            r = c.post("/agent/state", json={"state": state},
                       headers={"Authorization": f"Bearer {token}"})
            if r.status_code != 200 or r.json().get("state") != state:
                raise BenchError(f"{name} {state}: HTTP {r.status_code} {r.text[:200]}")


# ---------------------------------------------------------------- results


def add_results_options(parser: argparse.ArgumentParser, *, no_write: bool = False) -> None:
    """``--out FILE`` (alias ``--results``): the results file the section is written to
    (default bench/results.md); with ``no_write``, ``--no-write``: printed only."""
    parser.add_argument("--out", "--results", dest="out", type=Path, default=RESULTS,
                        help="the results file whose section is written (default "
                             "bench/results.md)")
    if no_write:
        parser.add_argument("--no-write", action="store_true",
                            help="leave the results file alone (print the section)")


def update_results(section: str, path: Path = RESULTS) -> None:
    """Replace the section of ``path`` whose header is the first line of ``section`` (up to
    the next ``## `` header), else append it; the other sections are left alone."""
    header = section.split("\n", 1)[0]
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(header)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(old):
        new = pattern.sub(lambda _m: section.rstrip("\n") + "\n\n", old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")


def publish(section: str, args: argparse.Namespace) -> None:
    """Print the section and, unless ``--no-write``, write it to ``--out`` (see
    ``add_results_options``)."""
    print(section)
    if not args.no_write:
        update_results(section, args.out)


def write_raw(name: str, doc: Any, *, indent: int = 1) -> Path:
    """The raw figures as bench/out/<name>-<time>.json and <name>-latest.json; the first."""
    OUT.mkdir(exist_ok=True)
    body = json.dumps(doc, indent=indent, ensure_ascii=False, default=str) + "\n"
    stamped = OUT / f"{name}-{stamp()}.json"
    for path in (stamped, OUT / f"{name}-latest.json"):
        path.write_text(body, encoding="utf-8")
    return stamped
