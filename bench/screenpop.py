"""Benchmark: screen-pop latency (issue 4) — from the connect webhook to the ``screenpop``
event arriving in the agent's console, with 100 agents connected and N customers loaded.

Not a test. Runs, in this order:

1. preparation, every backend at once (one process each): a fresh database (SQLite file in
   a temp dir; PostgreSQL database ``ivr_bench_<pid>``, created, then dropped) migrated and
   loaded with N synthetic customers through the real importer (``load_customers`` of
   bench/harness.py: ``crm_sync.importer.import_file``, then ``VACUUM (ANALYZE)`` on
   PostgreSQL); then, for the customers who will call, their history through the same
   importer (incidents from ``tickets`` — 30% of callers have an open one, which sends them
   to the incidents queue — and past interactions from ``branch-tlv``, some with a promise
   outstanding), so the pop runs the real customer-store queries; then 100 agents
   (``ivr.agents.repository.create_agent``) serving both benchmark queues;
2. the bare baseline (bench/bare_sse.py): the same SSE client and the same driver, against a
   bare Starlette app whose ``POST /pop`` hands a JSON document of a real pop's size to the
   agent's stream in-process: the floor for "HTTP request -> SSE event" on this machine;
3. SQLite: one ``ivr serve``; consoles and webhooks both go to it;
4. PostgreSQL: two ``ivr serve`` processes on one database; the 100 consoles connect to
   process A, every Twilio webhook goes to process B, so each pop crosses processes
   (``NOTIFY`` in B's connect transaction, A's ``LISTEN`` connection wakes the console);
   bench/consoles.py (1,000 consoles) spreads the consoles and the calls over both
   (``Options.spread``) and reads the streams in several listener processes;
5. the bare baseline again (its payload now a pop captured in step 3 or 4).

Each measured run: the agents sign in (``POST /agent/login``), open ``GET /agent/events``
(100 concurrent streams, read by one asyncio httpx process: the listener), and go
available. Then calls are started at a fixed rate (a warm-up of ``--warmup-calls``, then
``--calls`` timed at each of ``--rates`` calls per second, default 5 and 20, on the same
servers: 100 agents with 5-minute calls take about 0.3 calls/s, so both are peaks), each
driven by ``tests.agent_flow.TwilioDriver``
(signed posts exactly as Twilio sends them, TwiML followed) in a thread pool: the call
comes in from a loaded customer's mobile (``POST /twilio/voice``: identification, the
benchmark menu sends it straight to a queue), its wait URL is requested (the caller joins
the routing queue; the router reserves the longest-idle free agent at once), the next wait
round answers ``<Leave/>``, then **the connect webhook** (the ``<Enqueue>`` action with
``QueueResult=leave``): it answers ``<Dial>`` — the call's ``<Conference>``, the agent rung
in by the participants API (the server's stand-in here), or ``<Dial><Client>`` with
``IVR_CONFERENCE_CALLS=false`` — and writes the screen-pop in the same transaction; the
agent is the ``<Client>``, or on a conference read from the database after the answer
(``IvrCalls.agent_of``). Latency = the listener's clock (CLOCK_MONOTONIC, the same across
processes) when the ``event: screenpop`` line arrives on that agent's stream minus the
driver's clock just before the connect webhook was sent. Then the agent answers (agent-leg
callback), the call ends (``<Dial>`` action + final status callback) and the agent posts the
wrap-up (``POST /agent/calls/{sid}/wrapup``), which makes them available again.

Checked per run: every connect webhook answered ``<Dial>`` (errors: 0), every call's pop
arrived on the stream of the agent the ``<Dial>`` rings (missing, wrong agent: 0), and the
database holds one screenpop event per call and every agent available at the end.

The servers are pinned to CPU 0 (``taskset``), the listener and the driver to CPU 1,
PostgreSQL is not pinned. The CPU used by everything else on the machine during each
timed run is reported ("other CPU"), and the load average before and after.

    python bench/screenpop.py                      # 1,000,000 customers, both backends
    python bench/screenpop.py --customers 20000    # a quick run of the harness
    python bench/screenpop.py --profile            # + py-spy on the servers (results.md
                                                   #   left alone)

Writes the section "## Screen-pop latency (issue 4)" of bench/results.md (other sections
kept) and raw JSON plus server logs to bench/out/ (gitignored).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures as cf
import contextlib
import itertools
import json
import multiprocessing as mp
import os
import random
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # tests.agent_flow: the Twilio stand-in the tests use

import harness as h  # noqa: E402  (bench/harness.py: servers, fixtures, CPU, results)

from crm_sync.demo import MAX_STREAM_ROWS  # noqa: E402
from ivr.core.server import raise_open_files_limit  # noqa: E402
from tests.agent_flow import TwilioDriver  # noqa: E402

SECTION = "## Screen-pop latency (issue 4)"
TARGET_P99_MS = 100.0
QUEUES = ("bench-general", "bench-incidents")
OPEN_INCIDENT_SHARE = h.OPEN_INCIDENT_SHARE
DRIVER_THREADS = 32
MAX_WAIT_ROUNDS = 40  # wait-URL rounds before a caller counts as never released
POP_GRACE_SECONDS = 5.0  # after the last call, for pops still on their way
DEFAULT_POP_BYTES = 2600  # the bare "before" payload; "after" uses a captured real pop
PG_DB = f"ivr_bench_{os.getpid()}"  # created, then dropped

MENU_YAML = """\
# Benchmark-only menu (written by bench/screenpop.py): every call goes straight to a queue,
# by whether the caller has an open incident (the customer store's look-up at call start).
description: Screen-pop benchmark menu
languages: [he-IL, en-US]
default_language: he-IL
voices:
  he-IL: Google.he-IL-Standard-A
  en-US: Polly.Joanna-Neural
start: route
fallback: bye
nodes:
  route:
    type: branch
    branches:
      - when: {attribute: has_open_incident, equals: true}
        next: incidents
    default: general
  incidents:
    type: queue
    queue: bench-incidents
    priority:
      - when: {attribute: tier, equals: premium}
        priority: 10
    on_failure: bye
  general:
    type: queue
    queue: bench-general
    on_failure: bye
  bye:
    type: hangup
    prompt:
      say:
        he-IL: "להתראות."
        en-US: "Goodbye."
"""


# ---------------------------------------------------------------- preparation


def agent_names(n: int) -> list[str]:
    return [f"bench-agent-{k:03d}" for k in range(n)]


def prepare(backend: str, url: str, csv_path: str, count: int, phones: list[str],
            agents: int, work: str, scrypt_n: int | None = None) -> dict[str, Any]:
    """In a worker process: load the customers, the callers' history and the agents
    (``scrypt_n``: see ``harness.create_agents``). Returns the load figures and the callers
    (E.164) usable for calls."""
    load = h.load_customers_csv(backend, url, csv_path, count)
    callers = h.caller_records(url, phones)
    started = time.monotonic()
    load["history"] = h.load_history(url, callers, Path(work), backend)
    load["history"]["seconds"] = time.monotonic() - started
    h.create_agents(url, agent_names(agents), QUEUES, "Bench Agent", scrypt_n=scrypt_n)
    return {"load": load, "callers": [p for p, _ in callers]}


# ---------------------------------------------------------------- the listener


@dataclass
class Pop:
    key: str | None  # the call's CallSid
    stream: int  # index of the agent whose stream it came on
    at_ns: int
    size: int  # bytes of the event's data
    customer: bool
    open_incidents: int


def listen_main(conn: Connection, base: str, streams: list[tuple[str, dict[str, str]]],
                cpu: int | None) -> None:
    """The listener process: one asyncio httpx client holding every agent's SSE stream (its
    soft limit on open files raised to the hard one: a stream is a descriptor)."""
    raise_open_files_limit()
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    asyncio.run(_listen(conn, base, streams))


async def _listen(conn: Connection, base: str,
                  streams: list[tuple[str, dict[str, str]]]) -> None:
    pops: list[Pop] = []
    errors: list[str] = []
    sample: dict[int, str] = {}  # data size -> one pop's data (the baseline's payload)
    ready: set[int] = set()
    all_ready = asyncio.Event()
    limits = httpx.Limits(max_connections=len(streams) + 4,
                          max_keepalive_connections=len(streams) + 4)
    timeout = httpx.Timeout(10.0, read=None)

    async def one(idx: int, path: str, headers: dict[str, str]) -> None:
        try:
            async with client.stream("GET", path, headers=headers) as r:
                if r.status_code != 200:
                    errors.append(f"stream {idx}: HTTP {r.status_code}")
                    return
                pending: int | None = None
                async for line in r.aiter_lines():
                    if line == "event: screenpop":
                        pending = time.monotonic_ns()
                    elif line == "event: state" and idx not in ready:
                        ready.add(idx)
                        if len(ready) == len(streams):
                            all_ready.set()
                    elif pending is not None and line.startswith("data: "):
                        data = json.loads(line[6:])
                        size = len(line[6:].encode())
                        pops.append(Pop(data.get("call_sid"), idx, pending, size,
                                        bool(data.get("customer")),
                                        len(data.get("open_incidents") or ())))
                        sample.setdefault(size, line[6:])
                        pending = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            errors.append(f"stream {idx}: {type(exc).__name__}: {exc}")

    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:
        tasks = [asyncio.create_task(one(i, p, h)) for i, (p, h) in enumerate(streams)]
        try:
            await asyncio.wait_for(all_ready.wait(), 60)
            conn.send(("ready", len(ready)))
        except TimeoutError:
            conn.send(("not ready", f"{len(ready)}/{len(streams)} streams opened; {errors}"))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # "stop"
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    sizes = sorted(sample)
    conn.send(("done", [p.__dict__ for p in pops], errors,
               sample[sizes[len(sizes) // 2]] if sizes else None))


class Listener:
    """A listener process holding ``streams`` (paths under ``base``, or absolute URLs); the
    pops it hands back carry stream indices from ``first`` on (several listeners share one
    numbering)."""

    def __init__(self, base: str, streams: list[tuple[str, dict[str, str]]],
                 cpu: int | None, first: int = 0) -> None:
        self.first = first
        ctx = mp.get_context("spawn")  # a clean interpreter: no inherited threads or pools
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=listen_main, args=(child, base, streams, cpu),
                                daemon=True)
        self.proc.start()
        if not self.conn.poll(90):
            self.close()
            raise h.BenchError("the listener did not report within 90 s")
        what, detail = self.conn.recv()
        if what != "ready":
            self.close()
            raise h.BenchError(f"the agents' streams did not all open: {detail}")

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def finish(self) -> tuple[list[Pop], list[str], str | None]:
        self.conn.send("stop")
        if not self.conn.poll(60):
            self.close()
            raise h.BenchError("the listener did not hand its pops back within 60 s")
        _what, pops, errors, sample = self.conn.recv()
        self.proc.join(10)
        return ([Pop(**{**p, "stream": p["stream"] + self.first}) for p in pops], errors,
                sample)

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


def start_listeners(base: str, streams: list[tuple[str, dict[str, str]]], processes: int,
                    cpu: int | None) -> list[Listener]:
    """``streams`` split into ``processes`` listener processes (contiguous slices), started
    one after the other; every stream open when this returns."""
    size = -(-len(streams) // processes)
    listeners: list[Listener] = []
    try:
        for first in range(0, len(streams), size):
            listeners.append(Listener(base, streams[first:first + size], cpu, first))
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def finish_listeners(listeners: list[Listener]) -> tuple[list[Pop], list[str], str | None]:
    """Every listener's pops and errors together (stream indices global); a sample pop."""
    pops: list[Pop] = []
    errors: list[str] = []
    sample: str | None = None
    for listener in listeners:
        p, e, s = listener.finish()
        pops += p
        errors += e
        sample = sample or s
    return pops, errors, sample


# ---------------------------------------------------------------- the driver


@dataclass
class Sent:
    index: int
    key: str  # CallSid
    agent: str  # who the <Dial> rings (username), or the bare stream's index
    sent_ns: int
    answered_ns: int
    late_ms: float  # how late the call started against its slot in the schedule
    wait_rounds: int = 0
    other_cpu: float | None = None  # other work's share of a core in the call's second


def fixed_rate(n: int, rate: float, max_seconds: float, fn: Callable[[int], Sent],
               ) -> tuple[list[Sent], list[str], float]:
    """fn(0..n-1) started at ``rate`` per second by DRIVER_THREADS threads."""
    return h.fixed_rate(n, rate, max_seconds, fn, DRIVER_THREADS)


_CLIENT = re.compile(r"<Client[^>]*>([^<]+)</Client>")


class IvrCalls:
    """Calls through the real webhooks (``TwilioDriver``) and the agents' API. Call ``i``
    is served by ``hook_bases[i % len]`` (every webhook of it), its wrap-up posted to
    ``agent_bases[i % len]``.

    The agent a call reaches: after ``<Dial><Client>`` the client's name; on the call's
    ``<Conference>`` (the default, ``IVR_CONFERENCE_CALLS``) the server rings the agent in by
    the participants API, which Twilio tells no one else, so it is read from the database
    (the call's queue entry) after the connect answer, outside the timed part."""

    def __init__(self, hook_bases: list[str], agent_bases: list[str],
                 tokens: dict[str, str], callers: list[str], url: str) -> None:
        # Two connections at most: the PostgreSQL server's max_connections is shared.
        self.engine = create_engine(url, pool_size=2, max_overflow=0, pool_timeout=60)
        limits = httpx.Limits(max_connections=DRIVER_THREADS * 2)
        self.hooks = [httpx.Client(base_url=b, timeout=10.0, limits=limits)
                      for b in hook_bases]
        self.api = [httpx.Client(base_url=b, timeout=10.0, limits=limits)
                    for b in agent_bases]
        self.hook_bases = hook_bases
        self.tokens = tokens
        self.callers = callers

    def close(self) -> None:
        for c in [*self.hooks, *self.api]:
            c.close()
        self.engine.dispose()

    def agent_of(self, sid: str, xml: str) -> str:
        m = _CLIENT.search(xml)
        if m is not None:
            return m.group(1).strip()
        if "<Conference" not in xml:
            raise h.BenchError(f"{sid}: neither <Client> nor <Conference> in the connect "
                               f"answer: {xml[:300]}")
        with self.engine.connect() as conn:
            agent = conn.execute(text(
                "SELECT a.username FROM queue_entries q JOIN agents a ON a.id = q.agent_id"
                " WHERE q.call_sid = :sid"), {"sid": sid}).scalar()
        if agent is None:
            raise h.BenchError(f"{sid}: on a conference, but no agent holds its entry")
        return str(agent)

    def call(self, i: int) -> Sent:
        k = i % len(self.hooks)
        t = TwilioDriver(self.hooks[k], self.hook_bases[k], h.TOKEN)
        sid = t.start(self.callers[i % len(self.callers)], [])  # voice + first wait round
        rounds = 1
        while "<Leave" not in t.wait(sid, 5):
            if rounds == MAX_WAIT_ROUNDS:
                raise h.BenchError(f"{sid}: not released for an agent after {rounds} rounds")
            rounds += 1
            time.sleep(0.05)
        sent = time.monotonic_ns()
        xml = t.leave(sid)  # the connect webhook: <Dial> to the agent, the pop is written
        answered = time.monotonic_ns()
        agent = self.agent_of(sid, xml)
        t.agent_answers(sid)
        t.hang_up(sid, talked=60)
        api = self.api[i % len(self.api)]
        r = api.post(f"/agent/calls/{sid}/wrapup",
                     headers={"Authorization": f"Bearer {self.tokens[agent]}"},
                     json={"topic": "bench", "outcome": "answered", "resolved": True})
        if r.status_code != 201:
            raise h.BenchError(f"{sid}: wrap-up by {agent}: HTTP {r.status_code} "
                                f"{r.text[:200]}")
        return Sent(i, sid, agent, sent, answered, 0.0, rounds)


class BareCalls:
    """The baseline: one POST /pop per call, to stream ``i % agents``."""

    def __init__(self, base: str, agents: int, payload: dict[str, Any]) -> None:
        self.client = httpx.Client(base_url=base, timeout=10.0,
                                   limits=httpx.Limits(max_connections=DRIVER_THREADS * 2))
        self.agents = agents
        self.payload = payload
        self.nonce = secrets.token_hex(8)
        self.serial = itertools.count()  # keys stay distinct across phases

    def close(self) -> None:
        self.client.close()

    def call(self, i: int) -> Sent:
        sid = f"CA{self.nonce}{next(self.serial):024x}"
        body = json.dumps({**self.payload, "call_sid": sid}, ensure_ascii=False).encode()
        stream = i % self.agents
        sent = time.monotonic_ns()
        r = self.client.post(f"/pop?agent={stream}", content=body,
                             headers={"Content-Type": "application/json"})
        answered = time.monotonic_ns()
        if r.status_code != 200 or "<Dial" not in r.text:
            raise h.BenchError(f"POST /pop: HTTP {r.status_code} {r.text[:200]}")
        return Sent(i, sid, str(stream), sent, answered, 0.0)


def synthetic_payload(size: int) -> dict[str, Any]:
    """A pop-shaped JSON document of about ``size`` bytes (the bare run before any real pop
    was seen)."""
    doc: dict[str, Any] = {"call_sid": "", "status": "ringing",
                           "customer": {"id": 1, "name": "דנה כהן", "tier": "premium"},
                           "interactions": [], "open_incidents": [], "notes": ""}
    doc["notes"] = "x" * max(0, size - len(json.dumps(doc, ensure_ascii=False).encode()))
    return doc


# ---------------------------------------------------------------- a measured run


summary = h.summary


@dataclass
class Parts:
    """The processes of a run whose CPU is accounted."""

    servers: list[h.Server]
    postgres: bool
    listeners: list[Listener]
    url: str | None = None  # the database (PostgreSQL wait sampling with --profile)


@contextlib.contextmanager
def pg_waits(url: str | None, into: dict[str, Any]) -> Iterator[None]:
    """With --profile on PostgreSQL: what the database's non-idle backends are doing, sampled
    every 50 ms (``pg_stat_activity``: state and wait event), e.g. lock waits."""
    if url is None:
        yield
        return
    stop = threading.Event()
    counts: collections.Counter[str] = collections.Counter()
    samples = [0]

    def sample() -> None:
        engine = create_engine(url, poolclass=NullPool)
        query = text("SELECT state, coalesce(wait_event_type, 'on CPU'),"
                     " coalesce(wait_event, '') FROM pg_stat_activity"
                     " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                     " AND state <> 'idle' AND query NOT LIKE 'LISTEN%'")
        try:
            with engine.connect() as conn:
                while not stop.wait(0.05):
                    samples[0] += 1
                    for state, kind, event in conn.execute(query):
                        counts[f"{state} / {kind} {event}".strip()] += 1
                    conn.rollback()
        finally:
            engine.dispose()

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
        into["pg_activity"] = {"samples": samples[0], "backends_by_state": dict(
            counts.most_common(20))}


def match(sent: list[Sent], pops: list[Pop], stream_of: dict[str, int]) -> dict[str, Any]:
    by_key: dict[str | None, list[Pop]] = collections.defaultdict(list)
    for p in pops:
        by_key[p.key].append(p)
    lat: list[float] = []
    other: list[float | None] = []  # other work's CPU in each call's second (as ``lat``)
    http: list[float] = []
    after: list[float] = []  # pop arrival minus the connect answer's (negative: before)
    missing = wrong = duplicates = before_answer = 0
    with_customer = with_incident = 0
    sizes: list[int] = []
    for s in sent:
        http.append((s.answered_ns - s.sent_ns) / 1e6)
        got = by_key.get(s.key, [])
        duplicates += max(0, len(got) - 1)
        if not got:
            missing += 1
            continue
        p = got[0]
        if p.stream != stream_of.get(s.agent):
            wrong += 1
        lat.append((p.at_ns - s.sent_ns) / 1e6)
        other.append(s.other_cpu)
        after.append((p.at_ns - s.answered_ns) / 1e6)
        before_answer += p.at_ns < s.answered_ns
        with_customer += p.customer
        with_incident += p.open_incidents > 0
        sizes.append(p.size)
    return {"pop_ms": summary(lat), "connect_http_ms": summary(http), "latencies_ms": lat,
            "other_cpu_by_call": other,
            "pop_after_answer_ms": summary(after),
            "calls": len(sent), "pops": len(lat), "missing": missing, "wrong_agent": wrong,
            "duplicates": duplicates, "pop_before_http_answer": before_answer,
            "with_customer": with_customer, "with_open_incident": with_incident,
            "pop_bytes_mean": statistics.fmean(sizes) if sizes else None,
            "max_late_ms": max((s.late_ms for s in sent), default=0.0),
            "max_wait_rounds": max((s.wait_rounds for s in sent), default=0)}


def measured_phase(opt: Options, parts: Parts, n: int, rate: float, fn: Callable[[int], Sent],
                   profile_to: list[Path] | None) -> tuple[list[Sent], list[str], dict[str, Any]]:
    seconds_guess = n / rate + 5
    with contextlib.ExitStack() as stack:
        cpu = stack.enter_context(h.CpuMeter([s.pid for s in parts.servers],
                                             postgres=parts.postgres,
                                             clients=[*(li.pid for li in parts.listeners),
                                                      os.getpid()]))
        for server, out in zip(parts.servers, profile_to or [], strict=False):
            stack.enter_context(h.profiler(server.pid, seconds_guess, out))
        waits: dict[str, Any] = {}
        stack.enter_context(pg_waits(parts.url if opt.profile else None, waits))
        noise = stack.enter_context(h.NoiseSampler(
            [*(s.pid for s in parts.servers), *(li.pid for li in parts.listeners),
             os.getpid()], postgres=parts.postgres))
        sent, errors, seconds = fixed_rate(n, rate, opt.max_seconds, fn)
    *lis, me = cpu.clients
    # Other work's share of a core during each call's second (None: outside the samples).
    for s in sent:
        s.other_cpu = noise.share_at(s.sent_ns / 1e9)
    return sent, errors, {
        "seconds": seconds, "rate": len(sent) / seconds if seconds else None,
        "server_cpu": [c / seconds for c in cpu.server],
        "postgres_cpu": cpu.postgres / seconds if cpu.postgres is not None else None,
        "listener_cpu": sum(lis) / seconds, "listener_cpu_each": [c / seconds for c in lis],
        "driver_cpu": me / seconds,
        "other_cpu": cpu.other() / seconds, "loadavg_before": cpu.loadavg_before[0],
        "loadavg_after": cpu.loadavg_after[0], **waits}


def db_check(url: str, calls: int, agents: int) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            pops = int(conn.execute(text(
                "SELECT count(*) FROM agent_events WHERE kind = 'screenpop'")).scalar_one())
            available = int(conn.execute(text(
                "SELECT count(*) FROM agents WHERE state = 'available'")).scalar_one())
    finally:
        engine.dispose()
    ok = pops == calls and available == agents
    return {"ok": ok, "screenpop_events": pops, "calls": calls, "agents_available": available,
            "agents": agents,
            "text": f"{'ok' if ok else 'MISMATCH'}: {pops:,} screenpop events for {calls:,} "
                    f"calls; {available}/{agents} agents available at the end"}


@dataclass
class Options:
    customers: int
    calls: int
    warmup_calls: int
    rates: list[float]
    bare_calls: int
    agents: int
    max_seconds: float
    server_cpu: int | None
    client_cpu: int | None
    profile: bool
    work: Path
    pg_admin: str
    pg_pool: int
    # bench/consoles.py: consoles spread over both PostgreSQL processes (agent k on process
    # k % 2) and every call's webhooks to one of them in turn, instead of consoles on A and
    # webhooks to B; the agents' streams read by this many listener processes.
    spread: bool = False
    listeners: int = 1
    idle_seconds: float = 0.0  # server CPU measured this long with the consoles idle


MEMORY_SETTLE_SECONDS = 2.0  # after the last stream opened, before its memory is read


class MemoryWatch:
    """Each server's resident memory (``VmRSS``) and open descriptors before the consoles
    connect, with them connected (``connected``, after a settle), and after the timed calls
    (``end``); the listeners' too. ``figures``: all of it, and the memory per console of each
    server that holds consoles (connected − before, over its consoles)."""

    def __init__(self, servers: list[h.Server]) -> None:
        self.servers = servers
        self.figures: dict[str, Any] = {"before": self._servers()}

    def _servers(self) -> dict[str, dict[str, int]]:
        return {s.name: h.process_memory(s.pid) for s in self.servers}

    def connected(self, listeners: list[Listener], consoles: dict[str, int]) -> None:
        time.sleep(MEMORY_SETTLE_SECONDS)
        now = self._servers()
        before = self.figures["before"]
        self.figures.update(
            connected=now, consoles=consoles,
            listeners=[h.process_memory(li.pid) for li in listeners],
            kib_per_console={name: (now[name]["rss_kib"] - before[name]["rss_kib"]) / n
                             for name, n in consoles.items() if n})

    def idle(self, seconds: float) -> None:
        """Each server's CPU (share of a core) over ``seconds`` with the consoles connected
        and no call (0: not measured)."""
        if seconds <= 0:
            return
        with h.CpuMeter([s.pid for s in self.servers]) as cpu:
            time.sleep(seconds)
        self.figures["idle_cpu"] = {s.name: c / cpu.wall
                                    for s, c in zip(self.servers, cpu.server, strict=True)}
        self.figures["idle_other_cpu"] = cpu.other() / cpu.wall

    def end(self) -> None:
        self.figures["end"] = self._servers()


def ivr_servers(opt: Options, backend: str, url: str) -> list[h.Server]:
    env = h.ivr_env(url, opt.work / "menus", pg_pool=opt.pg_pool,
                    IVR_ADMIN_TOKEN=secrets.token_hex(16), IVR_ROUTE_EVERY_SECONDS="1")
    return [h.ivr_server(f"ivr serve {name} ({backend})", env, opt.work,
                         f"screenpop-{backend}-{name}.log", opt.server_cpu)
            for name in (["A", "B"] if backend == "postgresql" else ["A"])]


def ivr_run(opt: Options, backend: str, url: str, callers: list[str]) -> list[dict[str, Any]]:
    """One backend's servers, agents and listener; a timed phase per rate. Returns a result
    per rate."""
    servers = ivr_servers(opt, backend, url)
    spread = opt.spread and len(servers) > 1
    name = f"ivr, {backend}" + (" (1 process)" if len(servers) == 1 else
                                " (2 processes: consoles and webhooks on both)" if spread else
                                " (2 processes: consoles on A, webhooks to B)")
    results: list[dict[str, Any]] = []
    shared: dict[str, Any] = {}
    calls_made = 0
    with contextlib.ExitStack() as stack:
        for s in servers:
            stack.enter_context(s)
        agent_base = servers[0].base
        console_servers = servers if spread else servers[:1]
        names = agent_names(opt.agents)
        print(f"  {len(names)} agents sign in ...", flush=True)
        tokens = h.login_agents(agent_base, names)
        streams = [(f"{console_servers[k % len(console_servers)].base}/agent/events",
                    {"Authorization": f"Bearer {tokens[n]}", "Accept": "text/event-stream"})
                   for k, n in enumerate(names)]
        print(f"  {len(streams)} consoles connect ...", flush=True)
        memory = MemoryWatch(servers)
        listeners = start_listeners(agent_base, streams, opt.listeners, opt.client_cpu)
        for listener in listeners:
            stack.callback(listener.close)
        memory.connected(listeners, {s.name: len(streams[k::len(console_servers)])
                                     for k, s in enumerate(console_servers)})
        h.set_agent_states(agent_base, tokens, tokens)
        memory.idle(opt.idle_seconds)
        stream_of = {n: i for i, n in enumerate(names)}
        rng = random.Random(f"screenpop-callers-{backend}")
        order = rng.sample(callers, min(len(callers),
                                        opt.warmup_calls + opt.calls * len(opt.rates)))
        calls = IvrCalls([s.base for s in servers] if spread else [servers[-1].base],
                         [s.base for s in console_servers], tokens, order[:opt.warmup_calls],
                         url)
        stack.callback(calls.close)
        print(f"  warm-up: {opt.warmup_calls} calls at {opt.rates[0]:g}/s ...", flush=True)
        w_sent, w_errors, _ = fixed_rate(opt.warmup_calls, opt.rates[0], opt.max_seconds,
                                         calls.call)
        calls_made = len(w_sent)
        parts = Parts(servers, backend == "postgresql", listeners,
                      url if backend == "postgresql" else None)
        phases = []
        offset = opt.warmup_calls
        for rate in opt.rates:
            calls.callers = order[offset:offset + opt.calls]
            offset += opt.calls
            prof = ([OUT / f"profile-screenpop-{backend}-{s.name.split()[2]}-{rate:g}.txt"
                     for s in servers] if opt.profile else None)
            print(f"  timed: {opt.calls} calls at {rate:g}/s ...", flush=True)
            sent, errors, cpu = measured_phase(opt, parts, opt.calls, rate, calls.call, prof)
            calls_made += len(sent)
            phases.append((rate, sent, errors, cpu, prof))
            time.sleep(2.0)  # the last calls' wrap-ups, before the next phase starts
        time.sleep(POP_GRACE_SECONDS)
        memory.end()
        pops, stream_errors, sample = finish_listeners(listeners)
        shared.update(stream_errors=stream_errors, warmup_errors=w_errors,
                      warmup_calls=len(w_sent), sample_pop=sample, memory=memory.figures)
        for rate, sent, errors, cpu, prof in phases:
            timed = {s.key for s in sent}
            r = {"name": f"{name}, {rate:g} calls/s", "backend": backend, "rate_asked": rate,
                 **match(sent, [p for p in pops if p.key in timed], stream_of),
                 "cpu": cpu, "errors": errors}
            if prof is not None:
                r["profile"] = {str(p.name): h.summarise_profile(p, cpu["seconds"])
                                for p in prof if p.exists()}
            results.append(r)
    shared["server_log"] = {s.name: s.warnings for s in servers}
    shared["db_check"] = db_check(url, calls_made, opt.agents)
    for r in results:
        r.update(shared)
    return results


def bare_run(opt: Options, label: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    server = h.python_server("bare SSE", HERE / "bare_sse.py",
                             ["--host", "127.0.0.1", "--port", h.PORT], opt.work,
                             f"bare-sse-{label}.log", opt.server_cpu)
    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(server).base
        streams = [(f"/events?agent={k}", {"Accept": "text/event-stream"})
                   for k in range(opt.agents)]
        memory = MemoryWatch([server])
        listeners = start_listeners(base, streams, opt.listeners, opt.client_cpu)
        for listener in listeners:
            stack.callback(listener.close)
        memory.connected(listeners, {server.name: len(streams)})
        memory.idle(opt.idle_seconds)
        calls = BareCalls(base, opt.agents, payload)
        stack.callback(calls.close)
        fixed_rate(opt.warmup_calls, opt.rates[0], opt.max_seconds, calls.call)
        parts = Parts([server], False, listeners)
        phases = []
        for rate in opt.rates:
            sent, errors, cpu = measured_phase(opt, parts, opt.bare_calls, rate, calls.call,
                                               None)
            phases.append((rate, sent, errors, cpu))
        time.sleep(1.0)
        memory.end()
        pops, stream_errors, _sample = finish_listeners(listeners)
        size = len(json.dumps(payload, ensure_ascii=False).encode())
        for rate, sent, errors, cpu in phases:
            timed = {s.key for s in sent}
            results.append({
                "name": f"bare Starlette SSE ({label}), {rate:g} calls/s", "backend": "bare",
                "rate_asked": rate,
                **match(sent, [p for p in pops if p.key in timed],
                        {str(k): k for k in range(opt.agents)}),
                "cpu": cpu, "errors": errors, "stream_errors": stream_errors,
                "payload_bytes": size, "memory": memory.figures})
    return results


OUT = h.OUT


# ---------------------------------------------------------------- report


def _ms(x: float | None) -> str:
    return f"{x:.1f}" if x is not None else "–"


def _pct(x: float | None) -> str:
    return f"{x:.0%}" if x is not None else "–"


def passed(run: dict[str, Any]) -> dict[str, bool]:
    p99 = run["pop_ms"]["p99"]
    return {"p99": p99 is not None and p99 < TARGET_P99_MS,
            "errors": not run["errors"] and not run["stream_errors"],
            "missing": run["missing"] == 0 and run["wrong_agent"] == 0}


def noise(runs: list[dict[str, Any]]) -> list[str]:
    return h.noise_notes((r["name"], r["cpu"]["other_cpu"]) for r in runs)


def table(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| Run | pops/calls | calls/s | pop p50 ms | p90 | p99 | max "
        "| connect HTTP p50 / p99 ms | pop − answer p50 / p99 ms "
        "| errors | missing | pop bytes | server CPU | PostgreSQL CPU | client CPU "
        "| other CPU | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        p, h, a, c = r["pop_ms"], r["connect_http_ms"], r["pop_after_answer_ms"], r["cpu"]
        errors = len(r["errors"]) + len(r["stream_errors"])
        lines.append(
            f"| {r['name']} | {r['pops']:,}/{r['calls']:,} | {c['rate']:.1f} | {_ms(p['p50'])} "
            f"| {_ms(p['p90'])} | {_ms(p['p99'])} | {_ms(p['max'])} "
            f"| {_ms(h['p50'])} / {_ms(h['p99'])} "
            f"| {_ms(a['p50'])} / {_ms(a['p99'])} | {errors} "
            f"| {r['missing']} (+{r['wrong_agent']} wrong agent) "
            f"| {r['pop_bytes_mean'] or 0:,.0f} "
            f"| {' + '.join(_pct(x) for x in c['server_cpu'])} | {_pct(c['postgres_cpu'])} "
            f"| {_pct(c['listener_cpu'] + c['driver_cpu'])} | {_pct(c['other_cpu'])} "
            f"| {c['loadavg_before']:.2f} → {c['loadavg_after']:.2f} |")
    return lines


def markdown(info: dict[str, Any], opt: Options, before: list[dict[str, Any]],
             runs: list[dict[str, Any]], after: list[dict[str, Any]],
             loads: dict[str, dict[str, Any]]) -> str:
    lines = [
        SECTION, "",
        f"Run {info['date']} with `python bench/screenpop.py --customers {opt.customers}"
        f" --calls {opt.calls} --rates {','.join(f'{r:g}' for r in opt.rates)}`"
        f" (git {info['git']}).", "",
        f"Machine: {info['nproc']} CPU ({info['cpu']}), {info['ram_gib']} GiB RAM, "
        f"Python {info['python']}, Linux {info['kernel']}; uvicorn {info['uvicorn']}, "
        f"FastAPI {info['fastapi']}, Starlette {info['starlette']}, "
        f"SQLAlchemy {info['sqlalchemy']}, httpx {httpx.__version__}.", "",
        "What is measured: the time from the driver sending the connect webhook (the"
        " `<Enqueue>` action with `QueueResult=leave`, signed as Twilio signs it) to the"
        " `event: screenpop` line of that call arriving on the stream of the agent its"
        " `<Dial>` rings, both clocks CLOCK_MONOTONIC on this machine. In between: the"
        " signature check, `AgentService.connect` (offer, queue entry, the pop's context:"
        " call state, the customer, phones, the last interactions, open incidents, promises,"
        " last inbound/outbound, the IVR path; the event rows) in one transaction, the"
        " commit, then the wake-up of the console (PostgreSQL: `NOTIFY` → the other"
        " process's `LISTEN` connection; SQLite: in-process), its read of the new event rows,"
        " and the SSE write. Calls are started at a fixed rate; each is a full call (voice,"
        " wait rounds, connect, agent leg answered, hang-up, final status, the agent's"
        " wrap-up), so the servers carry the whole call flow around each pop, not the pop"
        " alone.", "",
        f"Setup: {opt.agents} agents signed in, each with its `GET /agent/events` stream open"
        " (one asyncio httpx client process for all of them) and available, serving both"
        f" benchmark queues; {opt.customers:,} customers loaded through the real importer;"
        " callers are distinct loaded customers' mobiles, their history (incidents,"
        " interactions) imported through the importer too, "
        f"{OPEN_INCIDENT_SHARE:.0%} of them with an open incident (routed to the incidents"
        f" queue). {opt.warmup_calls} warm-up calls, then {opt.calls:,} timed calls at each"
        f" rate ({', '.join(f'{r:g}' for r in opt.rates)} calls/s; the bare baseline"
        f" {opt.bare_calls:,} per rate). Servers pinned to CPU {opt.server_cpu}, listener"
        f" and driver to CPU {opt.client_cpu}, PostgreSQL not pinned. PostgreSQL runs two"
        " `ivr serve` processes on one database: consoles on A, every webhook to B (the"
        " cross-process path); SQLite one process. `IVR_ROUTE_EVERY_SECONDS=1`;"
        f" `IVR_DB_POOL_SIZE={opt.pg_pool}` per PostgreSQL process (the shared server's"
        " `max_connections` is 100 and other work uses it too)."
        " Baseline: the same listener and driver against bench/bare_sse.py, a bare Starlette"
        " app whose `POST /pop` hands the body (a JSON document of a real pop's size) to the"
        " agent's stream in the same process — the floor of \"HTTP request → SSE event\""
        " here; run before the IVR runs (a synthetic payload) and after (a captured real"
        " pop).", "",
        "Customer load, for information (not a target):", "",
        "| Backend | customers | import s | rows/s | incidents | interactions "
        "| callers with an open incident |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for backend, ld in loads.items():
        h = ld["history"]
        lines.append(f"| {backend} | {ld['customers_stored']:,} | {ld['seconds']:.1f} "
                     f"| {ld['rows_per_s']:,.0f} | {h['incidents']:,} | {h['interactions']:,} "
                     f"| {h['callers_with_open_incident']:,} |")
    lines += ["", *table([*before, *runs, *after]), "",
              "CPU columns: share of one core during the timed calls (server: each process;"
              " client: listener + driver); \"other\" is the rest of the machine (work"
              " unrelated to the benchmark); load avg: 1-minute load average before → after"
              " the timed calls. Pop − answer: the pop's arrival minus the connect webhook's answer"
              " at the driver (negative: the pop came first). Missing = a call whose `<Dial>`"
              " was answered but whose pop never reached that agent's stream.", "",
              *targets(runs), "", *notes([*before, *runs, *after]), ""]
    return "\n".join(lines)


def targets(runs: list[dict[str, Any]]) -> list[str]:
    """The targets table: pop p99, errors and missing pops of each IVR run."""
    lines = ["| Target | value | result |", "|---|---:|---|"]
    for r in runs:
        ok = passed(r)
        lines.append(f"| {r['backend']} {r['rate_asked']:g}/s pop p99 < {TARGET_P99_MS:g} ms "
                     f"| {_ms(r['pop_ms']['p99'])} ms | {'PASS' if ok['p99'] else 'MISSED'} |")
        errors = len(r["errors"]) + len(r["stream_errors"])
        lines.append(f"| {r['backend']} {r['rate_asked']:g}/s errors 0 | {errors} "
                     f"| {'PASS' if ok['errors'] else 'MISSED'} |")
        lines.append(f"| {r['backend']} {r['rate_asked']:g}/s pops missing 0 | {r['missing']} "
                     f"| {'PASS' if ok['missing'] else 'MISSED'} |")
    return lines


def notes(runs: list[dict[str, Any]]) -> list[str]:
    """A line per IVR run (its database check, pops' contents, duplicates) and the noise
    warnings of every run."""
    lines = []
    for r in runs:
        if "db_check" not in r:
            continue
        lines.append(
            f"- {r['name']}: database check {r['db_check']['text']}; pops with a customer"
            f" {r['with_customer']:,}/{r['pops']:,}, with an open incident"
            f" {r['with_open_incident']:,}; pop before the connect answer reached the driver"
            f" {r['pop_before_http_answer']:,}/{r['pops']:,}; wait rounds before `<Leave/>`"
            f" at most {r['max_wait_rounds']}; duplicates {r['duplicates']}.")
    for note in noise(runs):
        lines.append(f"- **Noise:** {note}.")
    return lines


def print_summary(runs: list[dict[str, Any]]) -> None:
    print()
    for line in table(runs):
        print(line)
    for r in runs:
        for what in ("errors", "stream_errors", "warmup_errors"):
            for e in (r.get(what) or [])[:5]:
                print(f"  {r['name']} {what}: {e}")
        if "db_check" in r:
            print(f"  {r['name']}: database {r['db_check']['text']}")
        for name, counts in (r.get("server_log") or {}).items():
            if counts:
                print(f"  {name} log: {counts}")
    for note in noise(runs):
        print(f"  WARNING: {note}")


def print_profiles(run: dict[str, Any]) -> None:
    activity = run["cpu"].get("pg_activity")
    if activity:
        print(f"\nPostgreSQL backends not idle, {activity['samples']} samples every 50 ms:")
        for what, count in activity["backends_by_state"].items():
            print(f"  {count / max(activity['samples'], 1):6.2f}  {what}")
    for name, prof in (run.get("profile") or {}).items():
        if not prof.get("samples"):
            print(f"\npy-spy {name}: no samples")
            continue
        print(f"\npy-spy --gil {name}: GIL held {prof['gil_share']:.0%}; top self time:")
        for fn, share in prof["self_pct"][:15]:
            print(f"  {share:5.1f}%  {fn}")
        print("  top inclusive:")
        for fn, share in prof["inclusive_pct"][:25]:
            print(f"  {share:5.1f}%  {fn}")


def measure(opt: Options, backends: list[str], scrypt_n: int | None = None,
            ) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]],
                       list[dict[str, Any]], list[dict[str, Any]]]:
    """The whole benchmark in ``opt.work``: the databases prepared, the bare baseline, each
    backend's IVR runs, the bare baseline again. Returns (machine info, the customer loads,
    bare before, IVR runs, bare after)."""
    needed = opt.calls * len(opt.rates) + opt.warmup_calls
    with contextlib.ExitStack() as dbs:
        info = h.machine_info()
        print(f"{info['date']}: {info['nproc']} CPU {info['cpu']}, load "
              f"{os.getloadavg()[0]:.2f}", flush=True)
        work = opt.work
        h.write_menu(work, MENU_YAML)
        print(f"writing {opt.customers:,} customers to a CSV ...", flush=True)
        customers = h.write_customers(opt.customers, work)
        rng = random.Random("screenpop-phones")
        phones = rng.sample(customers.phones, min(len(customers.phones), needed * 2))
        urls = {}
        for backend in backends:
            if backend == "sqlite":
                urls[backend] = f"sqlite:///{work / 'screenpop.db'}"
            else:
                urls[backend] = dbs.enter_context(h.pg_database(opt.pg_admin, PG_DB))
        print(f"preparing {', '.join(backends)} at once ...", flush=True)
        with cf.ProcessPoolExecutor(len(backends), mp_context=mp.get_context("fork")) \
                as pool:
            futures = {b: pool.submit(prepare, b, urls[b], str(customers.csv),
                                      opt.customers, phones, opt.agents, str(work), scrypt_n)
                       for b in backends}
            prepared = {b: f.result() for b, f in futures.items()}
        loads = {b: p["load"] for b, p in prepared.items()}
        for b, p in prepared.items():
            if len(p["callers"]) < needed:
                raise h.BenchError(f"{b}: only {len(p['callers'])} usable callers")
        with h.pinned_here(opt.client_cpu):
            print("bare SSE baseline ...", flush=True)
            before = bare_run(opt, "before", synthetic_payload(DEFAULT_POP_BYTES))
            runs: list[dict[str, Any]] = []
            sample: str | None = None
            for backend in backends:
                print(f"ivr serve on {backend} ...", flush=True)
                for run in ivr_run(opt, backend, urls[backend],
                                   prepared[backend]["callers"]):
                    sample = run.pop("sample_pop") or sample
                    runs.append(run)
                    print(f"  {run['name']}: pop p50 {_ms(run['pop_ms']['p50'])} ms,"
                          f" p99 {_ms(run['pop_ms']['p99'])} ms", flush=True)
            print("bare SSE baseline again ...", flush=True)
            payload = json.loads(sample) if sample else synthetic_payload(DEFAULT_POP_BYTES)
            after = bare_run(opt, "after", payload)
    return info, loads, before, runs, after


def add_options(parser: argparse.ArgumentParser, *, customers: int, rates: str,
                agents: int, backends: str) -> None:
    """The options of a screen-pop run (this script's and bench/consoles.py's), with the
    defaults given."""
    parser.add_argument("--customers", type=int, default=customers)
    parser.add_argument("--calls", type=int, default=1000,
                        help="timed calls per backend and rate")
    parser.add_argument("--warmup-calls", type=int, default=100)
    parser.add_argument("--rates", default=rates,
                        help="calls started per second, one timed phase each (comma list)")
    parser.add_argument("--bare-calls", type=int, default=500,
                        help="timed requests of the bare baseline per rate")
    parser.add_argument("--agents", type=int, default=agents)
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="no call is started later than this in a run")
    parser.add_argument("--backends", default=backends)
    parser.add_argument("--pg-admin-url", default=os.environ.get("IVR_BENCH_PG_URL",
                                                                 h.PG_ADMIN_URL))
    parser.add_argument("--pg-pool", type=int, default=8,
                        help="IVR_DB_POOL_SIZE of each PostgreSQL server process: a process"
                             " opens up to 2.5x this many connections, and the shared"
                             " server's max_connections is 100")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy record --gil the servers during the timed calls "
                             "(perturbs the figures; results.md is then left alone)")
    h.add_results_options(parser)


def checked_options(parser: argparse.ArgumentParser, args: argparse.Namespace,
                    ) -> tuple[list[str], list[float]]:
    """The backends and rates of ``add_options``' arguments; a usage error if they, the
    customers, calls or agents do not fit."""
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    try:
        rates = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error("--rates: numbers, e.g. 5,20")
    if unknown := set(backends) - {"sqlite", "postgresql"}:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    if not 1_000 <= args.customers <= MAX_STREAM_ROWS:
        parser.error(f"--customers must be within 1,000..{MAX_STREAM_ROWS:,}")
    if args.calls * len(rates) + args.warmup_calls > args.customers // 2:
        parser.error("--customers must be at least twice --calls + --warmup-calls "
                     "(every call comes from a distinct loaded customer)")
    if not 1 <= args.agents <= 1000 or not rates or min(rates) <= 0:
        parser.error("--agents within 1..1000, --rates > 0")
    return backends, rates


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark the agent screen-pop latency.")
    add_options(parser, customers=1_000_000, rates="5,20", agents=100,
                backends="sqlite,postgresql")
    args = parser.parse_args()
    backends, rates = checked_options(parser, args)

    pin = h.can_pin(args.no_pin)
    with h.exclusive("screenpop"):
        if args.profile and shutil.which("py-spy") is None:
            raise h.BenchError("--profile needs py-spy: pip install py-spy")
        with tempfile.TemporaryDirectory(prefix="ivr-screenpop-") as tmp:
            opt = Options(args.customers, args.calls, args.warmup_calls, rates,
                          args.bare_calls, args.agents, args.max_seconds, 0 if pin else None,
                          1 if pin else None, args.profile, Path(tmp), args.pg_admin_url,
                          args.pg_pool)
            info, loads, before, runs, after = measure(opt, backends)
        bares = [*before, *after]
        print_summary([*before, *runs, *after])
        for r in runs:
            print_profiles(r)
        raw = h.write_raw("screenpop", {
            "machine": info, "options": {k: str(v) for k, v in opt.__dict__.items()},
            "loads": loads, "bare": bares, "runs": runs})
        if args.profile:
            print(f"\n--profile: results.md left alone; raw JSON and py-spy output in {OUT}")
        else:
            h.update_results(markdown(info, opt, before, runs, after, loads), args.out)
            print(f"\nwrote {args.out} and {raw}")
        ok = all(all(passed(r).values()) for r in runs)
        print("targets: " + ("all met" if ok else "MISSED (see the table)"))
    return 0


if __name__ == "__main__":
    sys.exit(h.run(main))
