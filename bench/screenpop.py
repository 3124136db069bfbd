"""Benchmark: screen-pop latency (issue 4) — from the connect webhook to the ``screenpop``
event arriving in the agent's console, with 100 agents connected and N customers loaded.

Not a test. Runs, in this order:

1. preparation, every backend at once (one process each): a fresh database (SQLite file in
   a temp dir; PostgreSQL database ``ivr_bench_<pid>``, created, then dropped) migrated and
   loaded with N synthetic customers through the real importer (``load_customers`` of
   bench/webhooks.py: ``crm_sync.importer.import_file``, then ``VACUUM (ANALYZE)`` on
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
``QueueResult=leave``): it answers ``<Dial>`` to the agent and writes the screen-pop in the
same transaction. Latency = the listener's clock (CLOCK_MONOTONIC, the same across
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
import csv
import fcntl
import itertools
import json
import math
import multiprocessing as mp
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # tests.agent_flow: the Twilio stand-in the tests use

import webhooks as wh  # noqa: E402  (bench/webhooks.py: servers, customer load, CPU)

from crm_sync.demo import MAX_STREAM_ROWS  # noqa: E402
from crm_sync.identity import Rules  # noqa: E402
from crm_sync.importer import import_file  # noqa: E402
from crm_sync.mapping import default_mapping  # noqa: E402
from crm_sync.models import customer_phones, source_records  # noqa: E402
from ivr.agents import repository as agents_repo  # noqa: E402
from ivr.core.db import make_engine  # noqa: E402
from tests.agent_flow import TwilioDriver  # noqa: E402

SECTION = "## Screen-pop latency (issue 4)"
TARGET_P99_MS = 100.0
AGENT_PASSWORD = "bench-agent-pw"
QUEUES = ("bench-general", "bench-incidents")
OPEN_INCIDENT_SHARE = 0.3
DRIVER_THREADS = 32
MAX_WAIT_ROUNDS = 40  # wait-URL rounds before a caller counts as never released
POP_GRACE_SECONDS = 5.0  # after the last call, for pops still on their way
DEFAULT_POP_BYTES = 2600  # the bare "before" payload; "after" uses a captured real pop

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
                    if source == wh.CRM_SOURCE:
                        record_of[int(customer_id)] = str(external_id)
    finally:
        engine.dispose()
    return [(p, record_of[owners[p][0]]) for p in phones
            if len(owners.get(p, ())) == 1 and owners[p][0] in record_of]


def load_history(url: str, callers: Sequence[tuple[str, str]], work: Path, tag: str,
                 ) -> dict[str, Any]:
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
                update={"customer_source": wh.CRM_SOURCE})
            report = import_file(engine, path, mapping, Rules(), wh.CRM_REGION,
                                 lambda: datetime.now(UTC), batch_size=wh.CRM_BATCH)
            if report.status != "done" or report.rejected:
                raise wh.BenchError(f"{kind} import: status {report.status}, "
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


def agent_names(n: int) -> list[str]:
    return [f"bench-agent-{k:03d}" for k in range(n)]


def create_agents(url: str, n: int) -> None:
    engine = create_engine(url)
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            for k, username in enumerate(agent_names(n)):
                agents_repo.create_agent(conn, username=username, name=f"Bench Agent {k}",
                                         password=AGENT_PASSWORD, queues=QUEUES, now=now)
    finally:
        engine.dispose()


def prepare(backend: str, url: str, csv_path: str, count: int, phones: list[str],
            agents: int, work: str) -> dict[str, Any]:
    """In a worker process: load the customers, the callers' history and the agents.
    Returns the load figures and the callers (E.164) usable for calls."""
    print(f"  {backend}: loading {count:,} customers (importer) ...", flush=True)
    customers = wh.Customers(count, Path(csv_path), [], frozenset(), 0.0)
    load = wh.load_customers(url, customers)
    print(f"  {backend}: loaded {load['records']:,} records in {load['seconds']:.1f} s",
          flush=True)
    callers = caller_records(url, phones)
    started = time.monotonic()
    load["history"] = load_history(url, callers, Path(work), backend)
    load["history"]["seconds"] = time.monotonic() - started
    create_agents(url, agents)
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
    """The listener process: one asyncio httpx client holding every agent's SSE stream."""
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
    def __init__(self, base: str, streams: list[tuple[str, dict[str, str]]],
                 cpu: int | None) -> None:
        ctx = mp.get_context("spawn")  # a clean interpreter: no inherited threads or pools
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=listen_main, args=(child, base, streams, cpu),
                                daemon=True)
        self.proc.start()
        if not self.conn.poll(90):
            self.close()
            raise wh.BenchError("the listener did not report within 90 s")
        what, detail = self.conn.recv()
        if what != "ready":
            self.close()
            raise wh.BenchError(f"the agents' streams did not all open: {detail}")

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def finish(self) -> tuple[list[Pop], list[str], str | None]:
        self.conn.send("stop")
        if not self.conn.poll(60):
            self.close()
            raise wh.BenchError("the listener did not hand its pops back within 60 s")
        _what, pops, errors, sample = self.conn.recv()
        self.proc.join(10)
        return [Pop(**p) for p in pops], errors, sample

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


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


def fixed_rate(n: int, rate: float, max_seconds: float, fn: Callable[[int], Sent],
               ) -> tuple[list[Sent], list[str], float]:
    """fn(0..n-1) started at ``rate`` per second in a thread pool; a call whose slot is
    past ``max_seconds`` is not started. Returns (results, errors, seconds)."""
    results: list[Sent] = []
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

    with cf.ThreadPoolExecutor(DRIVER_THREADS, thread_name_prefix="call") as pool:
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


_CLIENT = re.compile(r"<Client[^>]*>([^<]+)</Client>")


class IvrCalls:
    """Calls through the real webhooks (``TwilioDriver``) and the agents' API."""

    def __init__(self, hook_base: str, agent_base: str, tokens: dict[str, str],
                 callers: list[str]) -> None:
        limits = httpx.Limits(max_connections=DRIVER_THREADS * 2)
        self.hooks = httpx.Client(base_url=hook_base, timeout=10.0, limits=limits)
        self.api = httpx.Client(base_url=agent_base, timeout=10.0, limits=limits)
        self.hook_base = hook_base
        self.tokens = tokens
        self.callers = callers

    def close(self) -> None:
        self.hooks.close()
        self.api.close()

    def call(self, i: int) -> Sent:
        t = TwilioDriver(self.hooks, self.hook_base, wh.TOKEN)
        sid = t.start(self.callers[i % len(self.callers)], [])  # voice + first wait round
        rounds = 1
        while "<Leave" not in t.wait(sid, 5):
            if rounds == MAX_WAIT_ROUNDS:
                raise wh.BenchError(f"{sid}: not released for an agent after {rounds} rounds")
            rounds += 1
            time.sleep(0.05)
        sent = time.monotonic_ns()
        xml = t.leave(sid)  # the connect webhook: <Dial> to the agent, the pop is written
        answered = time.monotonic_ns()
        m = _CLIENT.search(xml)
        if m is None:
            raise wh.BenchError(f"{sid}: no <Client> in the connect answer: {xml[:300]}")
        agent = m.group(1).strip()
        t.agent_answers(sid)
        t.hang_up(sid, talked=60)
        r = self.api.post(f"/agent/calls/{sid}/wrapup",
                          headers={"Authorization": f"Bearer {self.tokens[agent]}"},
                          json={"topic": "bench", "outcome": "answered", "resolved": True})
        if r.status_code != 201:
            raise wh.BenchError(f"{sid}: wrap-up by {agent}: HTTP {r.status_code} "
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
            raise wh.BenchError(f"POST /pop: HTTP {r.status_code} {r.text[:200]}")
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


def pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def summary(ms: Sequence[float]) -> dict[str, float | None]:
    if not ms:
        return {k: None for k in ("p50", "p90", "p99", "max", "mean")}
    return {"p50": pct(ms, 0.50), "p90": pct(ms, 0.90), "p99": pct(ms, 0.99),
            "max": max(ms), "mean": statistics.fmean(ms)}


@dataclass
class Parts:
    """The processes of a run whose CPU is accounted."""

    servers: list[wh.Server]
    postgres: bool
    listener: Listener
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
        after.append((p.at_ns - s.answered_ns) / 1e6)
        before_answer += p.at_ns < s.answered_ns
        with_customer += p.customer
        with_incident += p.open_incidents > 0
        sizes.append(p.size)
    return {"pop_ms": summary(lat), "connect_http_ms": summary(http), "latencies_ms": lat,
            "pop_after_answer_ms": summary(after),
            "calls": len(sent), "pops": len(lat), "missing": missing, "wrong_agent": wrong,
            "duplicates": duplicates, "pop_before_http_answer": before_answer,
            "with_customer": with_customer, "with_open_incident": with_incident,
            "pop_bytes_mean": statistics.fmean(sizes) if sizes else None,
            "max_late_ms": max((s.late_ms for s in sent), default=0.0),
            "max_wait_rounds": max((s.wait_rounds for s in sent), default=0)}


def measured_phase(opt: Options, parts: Parts, n: int, rate: float, fn: Callable[[int], Sent],
                   profile_to: list[Path] | None) -> tuple[list[Sent], list[str], dict[str, Any]]:
    busy0 = wh.machine_busy_seconds()
    srv0 = [wh.cpu_seconds(s.pid) for s in parts.servers]
    pg0 = wh.postgres_cpu_seconds() if parts.postgres else None
    lis0 = wh.cpu_seconds(parts.listener.pid)
    me0 = wh.cpu_seconds(os.getpid())
    load0 = os.getloadavg()
    seconds_guess = n / rate + 5
    with contextlib.ExitStack() as stack:
        for server, out in zip(parts.servers, profile_to or [], strict=False):
            stack.enter_context(wh.profiler(server.pid, seconds_guess, out))
        waits: dict[str, Any] = {}
        stack.enter_context(pg_waits(parts.url if opt.profile else None, waits))
        sent, errors, seconds = fixed_rate(n, rate, opt.max_seconds, fn)
    busy = wh.machine_busy_seconds() - busy0
    srv = [wh.cpu_seconds(s.pid) - c for s, c in zip(parts.servers, srv0, strict=True)]
    pg1 = wh.postgres_cpu_seconds() if parts.postgres else None
    pg = pg1 - pg0 if pg0 is not None and pg1 is not None else None
    lis = wh.cpu_seconds(parts.listener.pid) - lis0
    me = wh.cpu_seconds(os.getpid()) - me0
    other = busy - sum(srv) - (pg or 0.0) - lis - me
    cpu = {"seconds": seconds, "rate": len(sent) / seconds if seconds else None,
           "server_cpu": [c / seconds for c in srv],
           "postgres_cpu": pg / seconds if pg is not None else None,
           "listener_cpu": lis / seconds, "driver_cpu": me / seconds,
           "other_cpu": max(other, 0.0) / seconds,
           "loadavg_before": load0[0], "loadavg_after": os.getloadavg()[0], **waits}
    return sent, errors, cpu


def login_all(base: str, names: list[str]) -> dict[str, str]:
    tokens = {}
    with httpx.Client(base_url=base, timeout=30.0) as c:
        for name in names:
            r = c.post("/agent/login", json={"username": name, "password": AGENT_PASSWORD})
            if r.status_code != 200:
                raise wh.BenchError(f"login {name}: HTTP {r.status_code} {r.text[:200]}")
            tokens[name] = str(r.json()["token"])
    return tokens


def set_available(base: str, tokens: dict[str, str]) -> None:
    with httpx.Client(base_url=base, timeout=30.0) as c:
        for name, token in tokens.items():
            r = c.post("/agent/state", json={"state": "available"},
                       headers={"Authorization": f"Bearer {token}"})
            if r.status_code != 200 or r.json().get("state") != "available":
                raise wh.BenchError(f"{name} available: HTTP {r.status_code} {r.text[:200]}")


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


def server_env(url: str, menus: Path, pg_pool: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env.update(IVR_DATABASE_URL=url, IVR_MENUS_DIR=str(menus),
               IVR_TWILIO_AUTH_TOKEN=wh.TOKEN, IVR_ADMIN_TOKEN=secrets.token_hex(16),
               IVR_WATCH_MENUS="false", IVR_ROUTE_EVERY_SECONDS="1",
               IVR_LOG_LEVEL="warning")
    if url.startswith("postgresql"):
        env["IVR_DB_POOL_SIZE"] = str(pg_pool)
    return env


def ivr_servers(opt: Options, backend: str, url: str) -> list[wh.Server]:
    names = ["A", "B"] if backend == "postgresql" else ["A"]
    servers = []
    for name in names:
        port = wh.free_port()
        servers.append(wh.Server(
            f"ivr serve {name} ({backend})",
            wh.pinned([wh.ivr_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
                      opt.server_cpu),
            server_env(url, opt.work / "menus", opt.pg_pool), opt.work, port,
            opt.work / f"screenpop-{backend}-{name}.log"))
    return servers


def ivr_run(opt: Options, backend: str, url: str, callers: list[str]) -> list[dict[str, Any]]:
    """One backend's servers, agents and listener; a timed phase per rate. Returns a result
    per rate."""
    servers = ivr_servers(opt, backend, url)
    name = (f"ivr, {backend}" + (" (2 processes: consoles on A, webhooks to B)"
                                 if len(servers) > 1 else " (1 process)"))
    results: list[dict[str, Any]] = []
    shared: dict[str, Any] = {"server_log": {}}
    listener: Listener | None = None
    calls: IvrCalls | None = None
    calls_made = 0
    try:
        for s in servers:
            s.start()
        agent_base = f"http://127.0.0.1:{servers[0].port}"
        hook_base = f"http://127.0.0.1:{servers[-1].port}"
        names = agent_names(opt.agents)
        print(f"  {len(names)} agents sign in ...", flush=True)
        tokens = login_all(agent_base, names)
        streams = [("/agent/events", {"Authorization": f"Bearer {tokens[n]}",
                                      "Accept": "text/event-stream"}) for n in names]
        listener = Listener(agent_base, streams, opt.client_cpu)
        set_available(agent_base, tokens)
        stream_of = {n: i for i, n in enumerate(names)}
        rng = random.Random(f"screenpop-callers-{backend}")
        order = rng.sample(callers, min(len(callers),
                                        opt.warmup_calls + opt.calls * len(opt.rates)))
        calls = IvrCalls(hook_base, agent_base, tokens, order[:opt.warmup_calls])
        print(f"  warm-up: {opt.warmup_calls} calls at {opt.rates[0]:g}/s ...", flush=True)
        w_sent, w_errors, _ = fixed_rate(opt.warmup_calls, opt.rates[0], opt.max_seconds,
                                         calls.call)
        calls_made = len(w_sent)
        parts = Parts(servers, backend == "postgresql", listener,
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
        pops, stream_errors, sample = listener.finish()
        shared.update(stream_errors=stream_errors, warmup_errors=w_errors,
                      warmup_calls=len(w_sent), sample_pop=sample)
        for rate, sent, errors, cpu, prof in phases:
            timed = {s.key for s in sent}
            r = {"name": f"{name}, {rate:g} calls/s", "backend": backend, "rate_asked": rate,
                 **match(sent, [p for p in pops if p.key in timed], stream_of),
                 "cpu": cpu, "errors": errors}
            if prof is not None:
                r["profile"] = {str(p.name): wh.summarise_profile(p, cpu["seconds"])
                                for p in prof if p.exists()}
            results.append(r)
    finally:
        if calls is not None:
            calls.close()
        if listener is not None:
            listener.close()
        for s in servers:
            s.stop()
            shared["server_log"][s.name] = dict(s.log_warnings())
            with contextlib.suppress(OSError):
                shutil.copy(s.log, OUT / s.log.name)
    shared["db_check"] = db_check(url, calls_made, opt.agents)
    for r in results:
        r.update(shared)
    return results


def bare_run(opt: Options, label: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    port = wh.free_port()
    server = wh.Server("bare SSE", wh.pinned([sys.executable, str(HERE / "bare_sse.py"),
                                              "--host", "127.0.0.1", "--port", str(port)],
                                             opt.server_cpu),
                       dict(os.environ), opt.work, port, opt.work / f"bare-sse-{label}.log")
    listener: Listener | None = None
    calls: BareCalls | None = None
    results: list[dict[str, Any]] = []
    try:
        server.start()
        base = f"http://127.0.0.1:{port}"
        streams = [(f"/events?agent={k}", {"Accept": "text/event-stream"})
                   for k in range(opt.agents)]
        listener = Listener(base, streams, opt.client_cpu)
        calls = BareCalls(base, opt.agents, payload)
        fixed_rate(opt.warmup_calls, opt.rates[0], opt.max_seconds, calls.call)
        parts = Parts([server], False, listener)
        phases = []
        for rate in opt.rates:
            sent, errors, cpu = measured_phase(opt, parts, opt.bare_calls, rate, calls.call,
                                               None)
            phases.append((rate, sent, errors, cpu))
        time.sleep(1.0)
        pops, stream_errors, _sample = listener.finish()
        size = len(json.dumps(payload, ensure_ascii=False).encode())
        for rate, sent, errors, cpu in phases:
            timed = {s.key for s in sent}
            results.append({
                "name": f"bare Starlette SSE ({label}), {rate:g} calls/s", "backend": "bare",
                "rate_asked": rate,
                **match(sent, [p for p in pops if p.key in timed],
                        {str(k): k for k in range(opt.agents)}),
                "cpu": cpu, "errors": errors, "stream_errors": stream_errors,
                "payload_bytes": size})
    finally:
        if calls is not None:
            calls.close()
        if listener is not None:
            listener.close()
        server.stop()
    return results


OUT = wh.OUT


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
    notes = []
    for r in runs:
        c = r["cpu"]
        if c["other_cpu"] > wh.NOISY:
            notes.append(f"other work on the machine used {c['other_cpu']:.0%} of a core "
                         f"during '{r['name']}': that run is suspect")
    return notes


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
              "| Target | value | result |", "|---|---:|---|"]
    for r in runs:
        ok = passed(r)
        lines.append(f"| {r['backend']} {r['rate_asked']:g}/s pop p99 < {TARGET_P99_MS:g} ms "
                     f"| {_ms(r['pop_ms']['p99'])} ms | {'PASS' if ok['p99'] else 'MISSED'} |")
        errors = len(r["errors"]) + len(r["stream_errors"])
        lines.append(f"| {r['backend']} {r['rate_asked']:g}/s errors 0 | {errors} "
                     f"| {'PASS' if ok['errors'] else 'MISSED'} |")
        lines.append(f"| {r['backend']} {r['rate_asked']:g}/s pops missing 0 | {r['missing']} "
                     f"| {'PASS' if ok['missing'] else 'MISSED'} |")
    lines.append("")
    for r in runs:
        lines.append(
            f"- {r['name']}: database check {r['db_check']['text']}; pops with a customer"
            f" {r['with_customer']:,}/{r['pops']:,}, with an open incident"
            f" {r['with_open_incident']:,}; pop before the connect answer reached the driver"
            f" {r['pop_before_http_answer']:,}/{r['pops']:,}; wait rounds before `<Leave/>`"
            f" at most {r['max_wait_rounds']}; duplicates {r['duplicates']}.")
    for note in noise([*before, *runs, *after]):
        lines.append(f"- **Noise:** {note}.")
    lines.append("")
    return "\n".join(lines)


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


@contextlib.contextmanager
def pinned_here(cpu: int | None) -> Iterator[None]:
    before = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark the agent screen-pop latency.")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=1000,
                        help="timed calls per backend and rate")
    parser.add_argument("--warmup-calls", type=int, default=100)
    parser.add_argument("--rates", default="5,20",
                        help="calls started per second, one timed phase each (comma list)")
    parser.add_argument("--bare-calls", type=int, default=500,
                        help="timed requests of the bare baseline per rate")
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="no call is started later than this in a run")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-admin-url", default=os.environ.get("IVR_BENCH_PG_URL",
                                                                 wh.PG_ADMIN_URL))
    parser.add_argument("--pg-pool", type=int, default=8,
                        help="IVR_DB_POOL_SIZE of each PostgreSQL server process: a process"
                             " opens up to 2.5x this many connections, and the shared"
                             " server's max_connections is 100")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy record --gil the servers during the timed calls "
                             "(perturbs the figures; results.md is then left alone)")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    try:
        rates = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error("--rates: numbers, e.g. 5,20")
    if unknown := set(backends) - {"sqlite", "postgresql"}:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    if not 1_000 <= args.customers <= MAX_STREAM_ROWS:
        parser.error(f"--customers must be within 1,000..{MAX_STREAM_ROWS:,}")
    needed = args.calls * len(rates) + args.warmup_calls
    if needed > args.customers // 2:
        parser.error("--customers must be at least twice --calls + --warmup-calls "
                     "(every call comes from a distinct loaded customer)")
    if not 1 <= args.agents <= 1000 or not rates or min(rates) <= 0:
        parser.error("--agents within 1..1000, --rates > 0")

    OUT.mkdir(exist_ok=True)
    lock = (OUT / "screenpop.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("error: another run of bench/screenpop.py is in progress", file=sys.stderr)
        return 2
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset")
    pg_created = False
    try:
        if args.profile and shutil.which("py-spy") is None:
            raise wh.BenchError("--profile needs py-spy: pip install py-spy")
        info = wh.machine_info()
        print(f"{info['date']}: {info['nproc']} CPU {info['cpu']}, load "
              f"{os.getloadavg()[0]:.2f}", flush=True)
        with tempfile.TemporaryDirectory(prefix="ivr-screenpop-") as tmp:
            work = Path(tmp)
            opt = Options(args.customers, args.calls, args.warmup_calls, rates,
                          args.bare_calls, args.agents, args.max_seconds, 0 if pin else None,
                          1 if pin else None, args.profile, work, args.pg_admin_url,
                          args.pg_pool)
            menus = work / "menus"
            menus.mkdir()
            (menus / "main.yaml").write_text(MENU_YAML, encoding="utf-8")
            check = subprocess.run([wh.ivr_command(), "menus", "check", str(menus)],
                                   capture_output=True, text=True, check=False, cwd=work)
            if check.returncode != 0:
                raise wh.BenchError(f"benchmark menu refused:\n{check.stdout}{check.stderr}")
            print(f"writing {args.customers:,} customers to a CSV ...", flush=True)
            customers = wh.write_customers(args.customers, work)
            rng = random.Random("screenpop-phones")
            phones = rng.sample(customers.phones, min(len(customers.phones), needed * 2))
            urls = {}
            for backend in backends:
                if backend == "sqlite":
                    urls[backend] = f"sqlite:///{work / 'screenpop.db'}"
                else:
                    urls[backend] = wh.create_pg_database(args.pg_admin_url)
                    pg_created = True
            print(f"preparing {', '.join(backends)} at once ...", flush=True)
            with cf.ProcessPoolExecutor(len(backends), mp_context=mp.get_context("fork")) \
                    as pool:
                futures = {b: pool.submit(prepare, b, urls[b], str(customers.csv),
                                          args.customers, phones, args.agents, str(work))
                           for b in backends}
                prepared = {b: f.result() for b, f in futures.items()}
            loads = {b: p["load"] for b, p in prepared.items()}
            for b, p in prepared.items():
                if len(p["callers"]) < needed:
                    raise wh.BenchError(f"{b}: only {len(p['callers'])} usable callers")
            with pinned_here(opt.client_cpu):
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
                bares = [*before, *after]
        print_summary([*before, *runs, *after])
        for r in runs:
            print_profiles(r)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        payload_out = {"machine": info, "options": {k: str(v) for k, v in opt.__dict__.items()},
                       "loads": loads, "bare": bares, "runs": runs}
        for name in (f"screenpop-{stamp}.json", "screenpop-latest.json"):
            (OUT / name).write_text(json.dumps(payload_out, indent=1,
                                               ensure_ascii=False, default=str) + "\n")
        if args.profile:
            print(f"\n--profile: results.md left alone; raw JSON and py-spy output in {OUT}")
        else:
            wh.update_results(markdown(info, opt, before, runs, after, loads))
            print(f"\nwrote {wh.RESULTS.relative_to(ROOT)} and bench/out/screenpop-{stamp}.json")
        ok = all(all(passed(r).values()) for r in runs)
        print("targets: " + ("all met" if ok else "MISSED (see the table)"))
    except (wh.BenchError, SQLAlchemyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if pg_created:
            with contextlib.suppress(Exception):
                wh.drop_pg_database(args.pg_admin_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
