"""Benchmark: mixed traffic at a fixed arrival rate (issue 6) against real ``ivr serve``
processes, next to a bare Starlette baseline hit with the same requests at the same times.

Not a test. Per offered rate (``--rates``, calls started per second), in this order:

1. SQLite: one ``ivr serve`` process (pinned to CPU 0; the load generator to CPU 1);
2. the bare baseline: bench/bare_app.py's ``POST /twilio/gather`` (plus bench/bare_sse.py's
   ``GET /events`` for the held streams), served by uvicorn as ``ivr serve`` serves, pinned
   the same way, sent **the same requests** (the same bodies, at the same offsets from the
   start) the SQLite run sent, all to ``/twilio/gather``: what the machine, uvicorn and the
   load generator do with this traffic and no IVR code;
3. PostgreSQL, two set-ups on one database, nothing pinned (2 cores): ``postgresql-1``, one
   ``ivr serve`` process; ``postgresql``, two ``ivr serve`` processes and an ``ivr
   worker``: the load generator spreads every request round-robin over the servers (a tiny
   load balancer: ``IVR_PUBLIC_URL`` is set on both, so a request signed for the public
   URL is valid on either), and the agents' streams alternate between them (a pop written
   by one process reaches a console on the other through ``NOTIFY``/``LISTEN``).

``--ceiling`` (issue 18 item 1) takes ``--rates`` as ascending steps: each set-up runs them
in turn until its first rate with a p99 over 100 ms or any error (a failed check at the
end included); its ceiling is the rate before. The targets: SQLite >= 30 calls/s,
PostgreSQL two processes + worker >= 40, and >= 1.6x one PostgreSQL process.

Preparation, both databases at once: a fresh database (SQLite file in a temp dir;
PostgreSQL database ``ivr_load``, dropped and created again at every start, dropped at the
end), migrated and loaded with ``--customers`` synthetic customers through the real
importer, the callers' history (incidents, interactions) through it too, and the agents,
serving every benchmark queue.

The traffic (one asyncio process, aiohttp on uvloop; every Twilio request signed with
``X-Twilio-Signature`` exactly as Twilio signs it, the TwiML answers followed):

* **new calls** (``POST /twilio/voice``) start at a fixed rate, one every ``1/rate``
  seconds, from an 80% known / 20% unknown mix of callers (``Customers.callers`` of
  bench/harness.py);
* **menu steps** (``POST /twilio/gather``, the ``<Gather action>`` of the last answer) with
  keys drawn per call from ``SCRIPTS`` (billing, support — to the incidents queue when the
  caller has an open incident —, English, a silence first, two that end with a message and
  ``<Hangup/>``), each sent a "think time" (2–5 s) after the previous answer;
* **queue waits** (the ``<Enqueue waitUrl>``, first at once — kind ``join``: the caller
  joins the routing queue and a routing pass runs —, then every round's pause + 2 s for a
  spoken message — kind ``wait``); a caller who is not released within their patience (2–6
  rounds) hangs up (the ``<Enqueue action>`` with ``QueueResult=hangup``);
* a caller released for an agent (``<Leave/>``) is connected (``QueueResult=leave``:
  ``<Dial>`` to the agent, the screen-pop written); the agent's leg is answered 1 s later
  (``/twilio/agent-leg``), they talk 5–10 s, then the leg's ``completed`` and the ``<Dial
  action>`` (``/twilio/agent-dial``) arrive together; the call's final status comes with
  them when the caller hangs up (half the calls), after the action's ``<Hangup/>`` when
  the agent does; the agent posts the wrap-up 2 s after the ``<Dial action>``'s answer
  (``POST /agent/calls/{sid}/wrapup``), which makes them available again;
* **status callbacks** (``POST /twilio/status``, ``completed``) end every call;
* **agent consoles**: every agent signs in before the timed part and holds ``GET
  /agent/events`` (SSE) open throughout; half are available from the start, the other half
  **go available** (``POST /agent/state``) at times spread over the timed window, so some
  calls are routed and some callers give up.

Open loop: a request is sent at its scheduled time whether or not other requests are done;
the latency of every request is measured **from its scheduled time** (a generator running
late, or a connection pool full, counts against the figure: coordinated omission does not
hide queueing). A call's next request depends on its previous answer (the URL to post is in
the TwiML), so it is scheduled at that answer plus the script's delay, as Twilio does it;
new calls and agents going available are on a fixed schedule, and requests Twilio sends
together (the end of a conversation) go concurrently, each at its own time.
The first ``--warmup`` seconds are not timed; the window is the next ``--duration``
seconds (requests scheduled in it are the timed ones); then no new call starts and the
calls in progress finish (their requests are checked, not timed).

Errors (must be 0): a non-2xx answer, a timeout (``--timeout``), an answer that is not the
TwiML (or JSON) the request should get — among them the apology and the safe queue, which
is what the server answers when something failed inside —, an agent stream that ends or
fails. Also checked: every routed call's screen-pop reached the console of the agent its
``<Dial>`` rings, and at the end of each run — the generator signs every agent out, then the
servers stop — nothing is in flight (``IN_FLIGHT``: no call not ended, no queue entry
waiting, offered or connected, no offer open, no agent but offline, no transfer open): the
next run starts from the same state (before a run a failed run's leftovers are reset, and
the reset is reported).

    python bench/load.py                              # rates 12 and 16 calls/s, ~16 min
    python bench/load.py --ceiling --rates 20,30,40,50,60 --duration 40 --warmup 20
    python bench/load.py --rates 3 --duration 15 --customers 10000 --no-write   # a try
    python bench/load.py --serve-bare --port 8102     # the baseline server alone

Writes a dated section "## Load: mixed traffic, <date> (issue 6)" to bench/results.md
(other sections kept; ``--no-write``: printed only; ``--out FILE``: another file) and
to bench/out/ (gitignored) the raw JSON, every request of every run as CSV
(``load-<backend>-<rate>.csv``: when it was due, how late it was sent, its latency, kind,
server, CallSid) and the server logs. Servers run this checkout's code (``PYTHONPATH``), so
a clean ``git worktree`` of a commit measures that commit.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures as cf
import contextlib
import itertools
import json
import math
import multiprocessing as mp
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode
from xml.etree.ElementTree import Element

import aiohttp
import defusedxml.ElementTree as DET
import httpx
import uvloop
from sqlalchemy import create_engine, func, select, text
from twilio.request_validator import RequestValidator

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import harness as h  # noqa: E402  (bench/harness.py: servers, fixtures, CPU, results)

from crm_sync.demo import MAX_STREAM_ROWS  # noqa: E402
from ivr.agents.models import agent_calls, queue_entries  # noqa: E402
from tests.callback_flow import OPEN_ALL_WEEK  # noqa: E402

SECTION = "## Load: mixed traffic, {date} (issue 6)"
# A set-up's ceiling (issue 18 item 1): the highest offered rate whose timed requests have a
# p99 within this and no error, with nothing left in flight at the end.
TARGET_P99_MS = 100.0
#: The set-ups measured: name -> (database, ``ivr serve`` processes, an ``ivr worker`` too).
SETUPS: dict[str, tuple[str, int, bool]] = {
    "sqlite": ("sqlite", 1, False),
    "postgresql-1": ("postgresql", 1, False),
    "postgresql": ("postgresql", 2, True),
}
#: Ceiling targets, calls/s (issue 18 item 1), and two processes against one on PostgreSQL.
CEILING_TARGETS = {"sqlite": 30.0, "postgresql": 40.0}
SCALE_OUT_TARGET = 1.6
PUBLIC_URL = "https://ivr-load.example.com"  # IVR_PUBLIC_URL of every server
PG_DB = "ivr_load"
SAFE_QUEUE = "bench-safe"  # IVR_SAFE_QUEUE: an answer sending a caller here is a failure
QUEUES = ("bench-billing", "bench-support", "bench-incidents", "bench-general")
ACCOUNT = "AC" + "0" * 32
CALLED = "+97235550100"
HOLD_POLL_SECONDS = 3  # IVR_HOLD_POLL_SECONDS: one wait round
SAY_SECONDS = 2.0  # what a round's spoken message adds to its pause
THINK_SECONDS = (2.0, 5.0)  # a menu prompt heard + the keys pressed
PATIENCE_ROUNDS = (2, 6)  # wait rounds before a caller hangs up
RING_SECONDS = 1.0
TALK_SECONDS = (5.0, 10.0)
WRAP_SECONDS = 2.0
CALLER_HANGS_UP = 0.5  # share of conversations the caller ends (else the agent does)
AGENTS_PER_CALL_PER_S = 6  # default --agents = this x the rate: about half the queued
                           # callers are routed, the rest give up
CONNECTIONS = 256  # the generator's connection pool per server (open loop: not a limit)
MAX_MENU_STEPS = 8
KEEPALIVE_SECONDS = 2.0  # the generator's idle connections (uvicorn closes them after 5 s)
KINDS = ("voice", "gather", "join", "wait", "connect", "abandon", "agent-leg", "agent-dial",
         "conf-wait", "conf-event", "status", "wrapup", "available")
POP_WAIT_SECONDS = 5.0  # a conference call: the agent is the one whose console got the pop

# (weight, keys pressed at each menu, what it is). "" = silence at that menu.
SCRIPTS: tuple[tuple[int, tuple[str, ...], str], ...] = (
    (35, ("1", "1"), "billing -> queue"),
    (25, ("2",), "support -> queue (incidents queue with an open incident)"),
    (10, ("9", "2"), "English, support -> queue"),
    (10, ("", "1", "1"), "silence, then billing -> queue"),
    (10, ("1", "2"), "billing, balance message -> hangup"),
    (10, ("3",), "opening hours message -> hangup"),
)

MENU_YAML = """\
# Benchmark-only menu (written by bench/load.py). No opening hours: the same menu at any
# time of day. Two menu levels, a branch on the customer store's look-up, four queues.
description: Load benchmark menu
languages: [he-IL, en-US]
default_language: he-IL
voices:
  he-IL: Google.he-IL-Standard-A
  en-US: Polly.Joanna-Neural
start: main_menu
fallback: general
nodes:
  main_menu:
    type: menu
    input: [dtmf, speech]
    timeout: 5
    prompt:
      say:
        he-IL: "לחשבון הקישו 1. לתמיכה הקישו 2. לשעות הפעילות הקישו 3. For English, press 9."
        en-US: "For billing, press 1. For support, press 2. For our opening hours, press 3."
    no_input_prompt:
      say:
        he-IL: "לא שמענו בחירה."
        en-US: "We did not hear a choice."
    invalid_prompt:
      say:
        he-IL: "הבחירה אינה קיימת."
        en-US: "That is not one of the choices."
    on_failure: general
    options:
      "1": {next: billing_menu, speech: {he-IL: [חשבון], en-US: [billing]}}
      "2": {next: support_route, speech: {he-IL: [תמיכה], en-US: [support]}}
      "3": {next: hours_info, speech: {he-IL: [שעות], en-US: [hours]}}
      "9": {next: main_menu, language: en-US, speech: {he-IL: [אנגלית], en-US: [english]}}
  billing_menu:
    type: menu
    input: [dtmf]
    prompt:
      say:
        he-IL: "לנציג שירות הקישו 1. ליתרה הקישו 2."
        en-US: "For an agent, press 1. For your balance, press 2."
    on_failure: billing
    options:
      "1": {next: billing}
      "2": {next: balance}
  support_route:
    type: branch
    branches:
      - when: {attribute: has_open_incident, equals: true}
        next: incidents
    default: support
  billing:
    type: queue
    queue: bench-billing
    on_failure: bye
  support:
    type: queue
    queue: bench-support
    on_failure: bye
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
  balance:
    type: message
    prompt:
      say:
        he-IL: "היתרה בחשבונכם תישלח אליכם במסרון."
        en-US: "Your balance will be sent to you by text message."
    next: bye
  hours_info:
    type: message
    prompt:
      say:
        he-IL: "מוקד השירות פתוח בימים א' עד ה' בין 8 ל-20."
        en-US: "We are open Sunday to Thursday, 8 to 20."
    next: bye
  bye:
    type: hangup
    prompt:
      say:
        he-IL: "להתראות."
        en-US: "Goodbye."
"""


# Callbacks on (their SLA clock and the worker's dispatcher, as a centre runs them), open at
# every hour, but no offer in the wait loop: the callers of this mix never ask for one.
CALLBACKS_YAML = OPEN_ALL_WEEK.replace("  offer:\n    enabled: true\n",
                                      "  offer:\n    enabled: false\n")
assert CALLBACKS_YAML != OPEN_ALL_WEEK


# ---------------------------------------------------------------- the bare baseline server


def serve_bare(host: str, port: int) -> None:
    """bench/bare_app.py's routes plus bench/bare_sse.py's stream, one uvicorn process with
    the settings ``ivr serve`` uses (as both scripts run them)."""
    import bare_app  # noqa: PLC0415
    import bare_sse  # noqa: PLC0415
    import uvicorn  # noqa: PLC0415
    from starlette.applications import Starlette  # noqa: PLC0415
    from starlette.routing import Route  # noqa: PLC0415

    app = Starlette(routes=[Route("/twilio/gather", bare_app.gather, methods=["POST"]),
                            Route("/events", bare_sse.events, methods=["GET"]),
                            Route("/healthz", bare_app.healthz, methods=["GET"])])
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


# ---------------------------------------------------------------- preparation


def agent_names(n: int) -> list[str]:
    return [f"load-agent-{k:03d}" for k in range(n)]


def prepare(backend: str, url: str, csv_path: str, count: int, phones: list[str],
            agents: int, work: str) -> dict[str, Any]:
    """In a worker process: migrate, load the customers, the known callers' history and
    the agents."""
    load = h.load_customers_csv(backend, url, csv_path, count)
    callers = h.caller_records(url, phones)
    if callers:
        load["history"] = h.load_history(url, callers, Path(work), f"load-{backend}")
    h.create_agents(url, agent_names(agents), QUEUES, "Load Agent")
    return load


# ---------------------------------------------------------------- the load generator


class CallFailed(Exception):
    """A request of the call failed (recorded): the call stops there."""


@dataclass
class Req:
    kind: str
    scheduled: float  # time.monotonic() of the intended send
    sent: float
    done: float
    error: str | None
    path: str
    body: bytes
    content_type: str
    target: int  # index of the server it went to

    @property
    def latency_ms(self) -> float:
        return (self.done - self.scheduled) * 1e3


@dataclass
class Plan:
    """What a run sends: its calls (start times, callers, scripts), agents going available."""

    rate: float
    warmup: float
    duration: float
    calls: list[tuple[float, str, tuple[str, ...], int, float, bool]]  # offset, from,
    # keys, patience rounds, talk seconds, whether the caller hangs up (else the agent)
    late_agents: list[tuple[float, str]]  # offset, username: goes available then
    think: list[float]  # a pool of think times, drawn in order

    @property
    def window(self) -> tuple[float, float]:
        return self.warmup, self.warmup + self.duration


def make_plan(rate: float, warmup: float, duration: float, callers: Sequence[str],
              agents: Sequence[str], seed: str) -> Plan:
    rng = random.Random(seed)
    n = math.ceil((warmup + duration) * rate)
    weights = [w for w, _k, _d in SCRIPTS]
    calls = []
    for i in range(n):
        _w, keys, _d = rng.choices(SCRIPTS, weights)[0]
        calls.append((i / rate, callers[i % len(callers)], keys,
                      rng.randint(*PATIENCE_ROUNDS), rng.uniform(*TALK_SECONDS),
                      rng.random() < CALLER_HANGS_UP))
    late = list(agents[len(agents) // 2:])
    spread = [(warmup + duration * (k + 0.5) / max(len(late), 1), name)
              for k, name in enumerate(late)]
    think = [rng.uniform(*THINK_SECONDS) for _ in range(4096)]
    return Plan(rate, warmup, duration, calls, spread, think)


def _sid() -> str:
    return "CA" + uuid.uuid4().hex


class Invalid(Exception):
    pass


def twiml(body: str) -> Element:
    try:
        root: Element = DET.fromstring(body)
    except Exception as exc:  # defusedxml's and expat's errors alike
        raise Invalid(f"not XML: {body[:120]!r}") from exc
    if root.tag != "Response":
        raise Invalid(f"not TwiML: {body[:120]!r}")
    for enqueue in root.iter("Enqueue"):
        if (enqueue.text or "").strip() == SAFE_QUEUE:
            raise Invalid("the apology and the safe queue (a failure inside)")
    return root


def check_answer(kind: str, status: int, body: str) -> Element | None:
    """The answer's TwiML (None for the agent API's JSON); raises Invalid."""
    if kind == "wrapup":
        if status != 201 or "agent" not in json.loads(body):
            raise Invalid(f"HTTP {status} {body[:120]!r}")
        return None
    if kind == "available":
        if status != 200 or json.loads(body).get("state") not in ("available", "reserved"):
            raise Invalid(f"HTTP {status} {body[:120]!r}")
        return None
    if status != 200:
        raise Invalid(f"HTTP {status} {body[:120]!r}")
    root = twiml(body)
    if kind in ("voice", "gather"):
        if not any(root.find(v) is not None for v in ("Gather", "Enqueue", "Hangup")):
            raise Invalid(f"no Gather, Enqueue or Hangup: {body[:160]!r}")
    elif kind in ("join", "wait"):
        if root.find("Leave") is None and root.find("Pause") is None:
            raise Invalid(f"neither Leave nor a hold Pause: {body[:160]!r}")
    elif kind == "connect":
        dial = root.find("Dial")
        if dial is None or not dial.get("action") or (
                dial.find("Client") is None and dial.find("Conference") is None):
            raise Invalid(f"no <Dial action><Client> or <Conference>: {body[:160]!r}")
        conf = dial.find("Conference")
        if conf is not None and not (conf.get("statusCallback")
                                     and "join" in conf.get("statusCallbackEvent", "")):
            raise Invalid(f"a <Conference> without join events: {body[:160]!r}")
    elif kind == "agent-dial" and root.find("Hangup") is None:
        raise Invalid(f"no Hangup after the conversation: {body[:160]!r}")
    return root


def _path(url: str) -> str:
    if url.startswith(PUBLIC_URL):
        return url[len(PUBLIC_URL):]
    if url.startswith("http"):
        raise Invalid(f"an action URL on another host: {url}")
    return url if url.startswith("/") else "/" + url


@dataclass
class Pop:
    stream: str  # the agent whose console got it
    at: float


@dataclass
class Generator:
    """One run's traffic: the calls of a plan against ``bases`` (round-robin)."""

    bases: list[str]
    plan: Plan
    tokens: dict[str, str]  # username -> bearer token
    timeout: float
    replay: list[Req] | None = None  # the bare baseline: these requests, at their offsets
    start: float = 0.0
    reqs: list[Req] = field(default_factory=list)
    stream_errors: list[str] = field(default_factory=list)
    pops: dict[str, list[Pop]] = field(default_factory=lambda: collections.defaultdict(list))
    routed: dict[str, str] = field(default_factory=dict)  # CallSid -> agent dialled
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    streams_open: int = 0
    session: aiohttp.ClientSession = field(init=False, repr=False)
    streams: aiohttp.ClientSession = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.validator = RequestValidator(h.TOKEN)
        self.rr = itertools.count()
        self.think = itertools.cycle(self.plan.think)

    # -- plumbing

    async def until(self, at: float) -> None:
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def send(self, kind: str, path: str, body: bytes, content_type: str, at: float,
                   headers: dict[str, str] | None = None) -> tuple[str, float, int]:
        """POST at ``at`` (monotonic) to the next server; (text, done, status). Failures
        are recorded and raise CallFailed."""
        await self.until(at)
        target = next(self.rr) % len(self.bases)
        sent = time.monotonic()
        error: str | None = None
        body_text = ""
        status = 0
        try:
            async with self.session.post(
                    self.bases[target] + path, data=body,
                    headers={"Content-Type": content_type, **(headers or {})}) as r:
                body_text = await r.text()
                status = r.status
        except TimeoutError:
            error = f"timeout after {self.timeout:g} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        done = time.monotonic()
        if error is None and self.replay is not None:
            try:
                if status != 200:
                    raise Invalid(f"HTTP {status}")
                twiml(body_text)
            except Invalid as exc:
                error = str(exc)
        self.reqs.append(Req(kind, at, sent, done, error, path, body, content_type, target))
        if error is not None:
            raise CallFailed(error)
        return body_text, done, status

    async def twilio(self, kind: str, url: str, params: dict[str, str], at: float,
                     ) -> tuple[Element, float]:
        path = _path(url)
        signature = self.validator.compute_signature(PUBLIC_URL + path, params)
        body = urlencode(params).encode()
        text_, done, status = await self.send(kind, path, body,
                                              "application/x-www-form-urlencoded", at,
                                              {"X-Twilio-Signature": signature})
        try:
            root = check_answer(kind, status, text_)
        except Invalid as exc:
            self.reqs[-1].error = str(exc)
            raise CallFailed(str(exc)) from None
        assert root is not None
        return root, done

    async def api(self, kind: str, path: str, token: str, doc: dict[str, Any], at: float,
                  ) -> float:
        body = json.dumps(doc).encode()
        text_, done, status = await self.send(kind, path, body, "application/json", at,
                                              {"Authorization": f"Bearer {token}"})
        try:
            check_answer(kind, status, text_)
        except (Invalid, ValueError) as exc:
            self.reqs[-1].error = str(exc)
            raise CallFailed(str(exc)) from None
        return done

    # -- a call, as Twilio and the caller make it

    async def call(self, offset: float, caller: str, keys: tuple[str, ...], patience: int,
                   talk: float, caller_hangs_up: bool) -> None:
        try:
            self.outcomes[await self._call(offset, caller, keys, patience, talk,
                                           caller_hangs_up)] += 1
        except CallFailed:
            self.outcomes["failed"] += 1
        except Exception as exc:  # a bug of the generator: visible, not silent
            self.outcomes["failed"] += 1
            self.reqs.append(Req("voice", self.start + offset, time.monotonic(),
                                 time.monotonic(), f"generator: {exc!r}", "", b"", "", 0))

    async def _call(self, offset: float, caller: str, keys: tuple[str, ...], patience: int,
                    talk: float, caller_hangs_up: bool) -> str:
        sid = _sid()
        base = {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "CallSid": sid,
                "Direction": "inbound", "From": caller, "Caller": caller, "To": CALLED,
                "Called": CALLED, "FromCountry": "IL", "ToCountry": "IL"}
        live = {**base, "CallStatus": "in-progress"}
        root, done = await self.twilio("voice", "/twilio/voice",
                                       {**base, "CallStatus": "ringing"},
                                       self.start + offset)
        pending = list(keys)
        for _ in range(MAX_MENU_STEPS):
            gather = root.find("Gather")
            if root.find("Enqueue") is not None or gather is None:
                break
            digits = pending.pop(0) if pending else ""
            root, done = await self.twilio("gather", gather.get("action") or "",
                                           {**live, "Digits": digits}, done + next(self.think))
        else:
            raise self._fail("gather", f"{sid}: still in the menu after {MAX_MENU_STEPS} steps")
        enqueue = root.find("Enqueue")
        if enqueue is None:  # a message and <Hangup/>: the call ends when it is said
            await self.twilio("status", "/twilio/status",
                              {**base, "CallStatus": "completed", "CallDuration": "20",
                               "SequenceNumber": "2"}, done + SAY_SECONDS)
            return "menu only"
        queue = (enqueue.text or "").strip()
        action, wait_url = enqueue.get("action") or "", enqueue.get("waitUrl") or ""
        queue_sid = "QU" + uuid.uuid5(uuid.NAMESPACE_URL, queue).hex
        waited = 0.0
        rounds = 0
        at = done
        while True:
            # The first round puts the caller in the routing queue (and routes at once).
            root, done = await self.twilio("join" if rounds == 0 else "wait", wait_url, {
                **live, "QueueSid": queue_sid, "QueuePosition": "1",
                "QueueTime": str(int(waited)), "AvgQueueTime": "0", "CurrentQueueSize": "1",
                "MaxQueueSize": "100"}, at)
            if root.find("Leave") is not None:
                break
            rounds += 1
            pause = root.find("Pause")
            delay = float(pause.get("length") or 1) if pause is not None else 1.0
            delay += SAY_SECONDS if root.find("Say") is not None else 0.0
            waited += delay
            at = done + delay
            if rounds >= patience:  # the caller hangs up while waiting
                queued = {**live, "QueueSid": queue_sid, "QueueTime": str(int(waited))}
                await asyncio.gather(
                    self.twilio("abandon", action, {**queued, "QueueResult": "hangup"}, at),
                    self.twilio("status", "/twilio/status", {
                        **base, "CallStatus": "completed", "CallDuration": str(int(waited)),
                        "SequenceNumber": "2"}, at + 0.05))
                return "gave up waiting"
        root, done = await self.twilio("connect", action, {
            **live, "QueueResult": "leave", "QueueSid": queue_sid,
            "QueueTime": str(int(waited))}, done)
        dial = root.find("Dial")
        assert dial is not None
        conference = dial.find("Conference")
        if conference is not None:
            return await self._conference(sid, base, live, dial, conference, done, waited,
                                          talk, caller_hangs_up)
        client = dial.find("Client")
        assert client is not None
        agent = (client.text or "").strip()
        leg_cb, dial_action = client.get("statusCallback") or "", dial.get("action") or ""
        if agent not in self.tokens or not leg_cb:
            raise self._fail("connect", f"{sid}: dialled {agent!r}, leg callback {leg_cb!r}")
        self.routed[sid] = agent
        leg = {**base, "CallSid": _sid(), "ParentCallSid": sid, "Direction": "outbound-dial",
               "CallbackSource": "call-progress-events"}
        _root, done = await self.twilio("agent-leg", leg_cb, {**leg, "CallStatus": "in-progress"},
                                        done + RING_SECONDS)
        end = done + talk
        seconds = str(int(talk))
        final = {**base, "CallStatus": "completed", "CallDuration": str(int(waited + talk) + 20),
                 "SequenceNumber": "3"}
        # The agent hangs up: the <Dial> ends, its action answers <Hangup/>, then the call
        # ends (its status callback). The caller hangs up: the call is over at once, and
        # Twilio sends the <Dial action> and the call's status callback together. Either
        # way the agent leg's own "completed" comes at the same time as the action.
        ending = [
            self.twilio("agent-leg", leg_cb, {**leg, "CallStatus": "completed",
                                              "CallDuration": seconds}, end),
            self.twilio("agent-dial", dial_action, {
                **live, "DialCallStatus": "completed", "DialCallSid": leg["CallSid"],
                "DialCallDuration": seconds}, end + 0.02)]
        if caller_hangs_up:
            ending.append(self.twilio("status", "/twilio/status", final, end + 0.05))
        answers = await asyncio.gather(*ending)
        return await self._after(sid, base, agent, final, answers[1][1], caller_hangs_up)

    async def _after(self, sid: str, base: dict[str, str], agent: str, final: dict[str, str],
                     dial_done: float, caller_hangs_up: bool) -> str:
        """The end of a conversation: the call's status (if the agent hung up: after the
        action's ``<Hangup/>``), then the agent's wrap-up."""
        if not caller_hangs_up:
            await self.twilio("status", "/twilio/status", final, dial_done + 0.05)
        await self.api("wrapup", f"/agent/calls/{sid}/wrapup", self.tokens[agent],
                       {"topic": "load", "outcome": "answered", "resolved": True,
                        "notes": "בדיקת עומס"}, dial_done + WRAP_SECONDS)
        return "routed to an agent"

    async def _conference(self, sid: str, base: dict[str, str], live: dict[str, str],
                          dial: Element, conference: Element, done: float, waited: float,
                          talk: float, caller_hangs_up: bool) -> str:
        """The caller on the call's conference, as Twilio plays it: the agent rung into it
        (the participants API; without an account SID the server's stand-in) answers
        ``RING_SECONDS`` later — the conference's ``participant-join`` of the participant
        labelled ``agent`` —, they talk, then one of them leaves: ``participant-leave`` and
        ``conference-end``, and the caller's ``<Dial action>`` (``conference-end``); the
        waitUrl is played once before the agent joins. (Not sent: the agent participant's
        own status callbacks, whose URL carries the offer id only the server knows.) Twilio
        tells the agent's name only to the agent's phone; here it is the console the
        screen-pop reached (one console, or an error)."""
        name = (conference.text or "").strip()
        events_url = conference.get("statusCallback") or ""
        conf = {"AccountSid": ACCOUNT, "ConferenceSid": "CF" + uuid.uuid5(
            uuid.NAMESPACE_URL, name).hex, "FriendlyName": name, "Muted": "false",
            "Hold": "false", "Coaching": "false", "SequenceNumber": "1"}
        # Until the agent joins, the caller hears the conference's waitUrl (once: the
        # agent answers within its first round).
        await self.twilio("conf-wait", conference.get("waitUrl") or "",
                          {**live, **conf, "ConferenceSid": ""}, done)
        await self.until(done + RING_SECONDS)
        deadline = time.monotonic() + POP_WAIT_SECONDS
        while not self.pops.get(sid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        agents = {p.stream for p in self.pops.get(sid, [])}
        if len(agents) != 1:
            raise self._fail("connect", f"{sid}: conference {name!r}: the pop reached "
                                        f"{sorted(agents) or 'no console'}")
        agent = agents.pop()
        self.routed[sid] = agent
        leg = "CA" + uuid.uuid4().hex
        _root, done = await self.twilio("agent-leg", events_url, {
            **conf, "CallSid": leg, "ParticipantLabel": "agent",
            "StatusCallbackEvent": "participant-join", "EndConferenceOnExit": "true",
            "StartConferenceOnEnter": "true"}, max(done + RING_SECONDS, time.monotonic()))
        end = done + talk
        seconds = str(int(talk))
        final = {**base, "CallStatus": "completed", "CallDuration": str(int(waited + talk) + 20),
                 "SequenceNumber": "3"}
        left = sid if caller_hangs_up else leg
        ending = [
            self.twilio("conf-event", events_url, {
                **conf, "CallSid": left, "StatusCallbackEvent": "participant-leave",
                "SequenceNumber": "2"}, end),
            self.twilio("conf-event", events_url, {
                **conf, "StatusCallbackEvent": "conference-end", "SequenceNumber": "3",
                "CallSidEndingConference": left}, end + 0.01),
            self.twilio("agent-dial", dial.get("action") or "", {
                **live, **({"CallStatus": "completed"} if caller_hangs_up else {}),
                "DialCallStatus": "completed", "DialCallSid": leg,
                "DialCallDuration": seconds}, end + 0.02)]
        if caller_hangs_up:
            ending.append(self.twilio("status", "/twilio/status", final, end + 0.05))
        answers = await asyncio.gather(*ending)
        return await self._after(sid, base, agent, final, answers[2][1], caller_hangs_up)

    def _fail(self, kind: str, error: str) -> CallFailed:
        now = time.monotonic()
        self.reqs.append(Req(kind, now, now, now, error, "", b"", "", 0))
        return CallFailed(error)

    async def go_available(self, offset: float, agent: str) -> None:
        with contextlib.suppress(CallFailed):
            await self.api("available", "/agent/state", self.tokens[agent],
                           {"state": "available"}, self.start + offset)

    # -- the agents' consoles

    async def console(self, k: int, agent: str, opened: asyncio.Event,
                      count: list[int]) -> None:
        base = self.bases[k % len(self.bases)]
        if self.replay is not None:
            url, headers = f"{base}/events?agent={k}", {"Accept": "text/event-stream"}
        else:
            url = f"{base}/agent/events"
            headers = {"Accept": "text/event-stream",
                       "Authorization": f"Bearer {self.tokens[agent]}"}
        try:
            async with self.streams.get(url, headers=headers) as r:
                if r.status != 200:
                    self.stream_errors.append(f"{agent}: HTTP {r.status}")
                    return
                pending = False
                async for raw in r.content:
                    line = raw.decode().rstrip("\n")
                    if line == "event: state" and not opened.is_set():
                        count[0] += 1
                        opened.set()
                    elif line == "event: screenpop":
                        pending = True
                    elif pending and line.startswith("data: "):
                        sid = json.loads(line[6:]).get("call_sid")
                        self.pops[str(sid)].append(Pop(agent, time.monotonic()))
                        pending = False
                self.stream_errors.append(f"{agent}: the stream ended")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stream_errors.append(f"{agent}: {type(exc).__name__}: {exc}")

    # -- the run

    async def run(self, agents: Sequence[str], drain: float) -> dict[str, float]:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        # Idle connections are dropped before uvicorn's own 5 s keep-alive timeout closes
        # them: reusing one the server is closing fails the request ("Server disconnected").
        conns = aiohttp.TCPConnector(limit=CONNECTIONS * len(self.bases), limit_per_host=0,
                                     force_close=False, keepalive_timeout=KEEPALIVE_SECONDS)
        stream_conns = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conns, timeout=timeout,
                                         auto_decompress=False) as self.session, \
                aiohttp.ClientSession(connector=stream_conns,
                                      timeout=aiohttp.ClientTimeout(total=None,
                                                                    sock_read=None)) \
                as self.streams:
            opened = [asyncio.Event() for _ in agents]
            count = [0]
            readers = [asyncio.create_task(self.console(k, a, opened[k], count))
                       for k, a in enumerate(agents)]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened)), 30)
            self.streams_open = count[0]
            if count[0] != len(agents):
                self.stream_errors.append(f"only {count[0]}/{len(agents)} streams opened")
            self.start = time.monotonic() + 0.5
            if self.replay is not None:
                tasks = [asyncio.create_task(self._replay(r)) for r in self.replay]
            else:
                tasks = [asyncio.create_task(self.call(*c)) for c in self.plan.calls]
                tasks += [asyncio.create_task(self.go_available(o, a))
                          for o, a in self.plan.late_agents]
            last_start = self.start + self.plan.warmup + self.plan.duration
            _done, pending = await asyncio.wait(tasks, timeout=last_start - time.monotonic()
                                                + drain)
            for t in pending:
                t.cancel()
            if pending:
                self.stream_errors.append(f"{len(pending)} calls not finished {drain:g} s "
                                          "after the last start")
            await asyncio.sleep(1.0)  # the last pops on their way
            for t in readers:
                t.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            await asyncio.gather(*pending, return_exceptions=True)
        return {"start": self.start, "end": time.monotonic()}

    async def _replay(self, r: Req) -> None:
        with contextlib.suppress(CallFailed):
            query = r.path.partition("?")[2]
            await self.send(r.kind, "/twilio/gather" + (f"?{query}" if query else ""),
                            r.body, r.content_type, self.start + r.scheduled)


# ---------------------------------------------------------------- a measured run


@dataclass
class Options:
    rates: list[float]
    warmup: float
    duration: float
    drain: float
    customers: int
    agents: int | None
    timeout: float
    work: Path
    pg_admin: str
    pg_pool: int
    pin: bool
    write: bool


def server_env(url: str, menus: Path, pg_pool: int) -> dict[str, str]:
    return h.ivr_env(url, menus, pg_pool=pg_pool, this_checkout=True,
                     IVR_PUBLIC_URL=PUBLIC_URL, IVR_ADMIN_TOKEN=secrets.token_hex(16),
                     IVR_SAFE_QUEUE=SAFE_QUEUE, IVR_HOLD_POLL_SECONDS=str(HOLD_POLL_SECONDS),
                     IVR_ROUTE_EVERY_SECONDS="1",
                     IVR_CALLBACKS_FILE=str(menus.parent / "callbacks.yaml"))


#: What a run may not leave behind (issue 18 item 1: "every run ends with no call, queue
#: entry or agent left in flight"): name -> the count that must be 0 after the run.
IN_FLIGHT = {
    "calls not ended": "SELECT count(*) FROM calls WHERE NOT ended",
    "queue entries waiting, offered or connected":
        "SELECT count(*) FROM queue_entries WHERE status IN ('waiting', 'offered', 'connected')",
    "offers not ended": "SELECT count(*) FROM agent_calls WHERE ended_at IS NULL",
    "agents not offline": "SELECT count(*) FROM agents WHERE state <> 'offline'"
                          " OR current_call_sid IS NOT NULL",
    "transfers open": "SELECT count(*) FROM transfers WHERE state NOT IN"
                      " ('completed', 'failed', 'canceled')",
}


def in_flight(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {name: int(conn.execute(text(sql)).scalar_one())
                    for name, sql in IN_FLIGHT.items()}
    finally:
        engine.dispose()


def reset_state(url: str) -> dict[str, int]:
    """Before a run, when the one before it failed (a call that stopped at an error leaves
    its caller queued and its agent holding it): those entries abandoned, offers ended,
    agents offline. A run that passed leaves nothing to reset (``db_check``)."""
    left = in_flight(url)
    if not any(left.values()):
        return left
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE queue_entries SET status = 'abandoned'"
                              " WHERE status IN ('waiting', 'offered', 'connected')"))
            conn.execute(text("UPDATE calls SET ended = true WHERE NOT ended"))
            conn.execute(text("UPDATE agent_calls SET ended_at = offered_at,"
                              " outcome = 'expired' WHERE ended_at IS NULL"))
            conn.execute(text("UPDATE transfers SET state = 'failed' WHERE state NOT IN"
                              " ('completed', 'failed', 'canceled')"))
            conn.execute(text("UPDATE agents SET state = 'offline', current_call_sid = NULL"
                              " WHERE state <> 'offline' OR current_call_sid IS NOT NULL"))
    finally:
        engine.dispose()
    after = in_flight(url)
    if any(after.values()):
        raise h.BenchError(f"the database is not clean after the reset: {after}")
    return left


def last_offer_id(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(agent_calls.c.id), 0)))
                       .scalar_one())
    finally:
        engine.dispose()


def offer_delays(url: str, after_id: int) -> dict[str, Any]:
    """How long the run's callers waited between joining the queue and their first offer
    (the server's clock, ms): a routing pass right after the join when an agent is free;
    a pass that skipped the caller's entry (held by its wait round) used to leave it to the
    sweep, a second later. Agents all busy make waits of their own (the p99 then)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            first = (select(agent_calls.c.call_sid, func.min(agent_calls.c.offered_at)
                            .label("offered_at"))
                     .where(agent_calls.c.id > after_id, agent_calls.c.call_sid.like("CA%"))
                     .group_by(agent_calls.c.call_sid).subquery())
            rows = conn.execute(select(queue_entries.c.entered_at, first.c.offered_at)
                                .join(first, first.c.call_sid == queue_entries.c.call_sid)
                                ).all()
    finally:
        engine.dispose()
    ms = [1e3 * max(0.0, (o - e).total_seconds()) for e, o in rows
          if e is not None and o is not None]
    return {"n": len(ms), **h.summary(ms),
            "over_500ms": sum(1 for x in ms if x > 500)}


def db_check(url: str) -> dict[str, Any]:
    """After a run (servers stopped, every agent signed out): nothing in flight."""
    left = in_flight(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            calls = int(conn.execute(text("SELECT count(*) FROM calls")).scalar_one())
    finally:
        engine.dispose()
    ok = not any(left.values())
    bad = ", ".join(f"{n} {name}" for name, n in left.items() if n) or "nothing in flight"
    return {"ok": ok, "in_flight": left, "calls_in_db": calls,
            "text": f"{'ok' if ok else 'MISMATCH'}: {bad} at the end; {calls:,} calls in the"
                    " database"}


def measure(gen: Generator, agents: Sequence[str], drain: float, server_pids: list[int],
            postgres: bool) -> dict[str, Any]:
    with h.CpuMeter(server_pids, postgres=postgres, clients=[os.getpid()]) as cpu:
        times = uvloop.run(gen.run(agents, drain))
    seconds = cpu.wall
    return {"seconds": seconds, "server_cpu": [c / seconds for c in cpu.server],
            "postgres_cpu": cpu.postgres / seconds if cpu.postgres is not None else None,
            "client_cpu": cpu.clients[0] / seconds, "other_cpu": cpu.other() / seconds,
            "loadavg_before": cpu.loadavg_before, "loadavg_after": cpu.loadavg_after,
            **times}


def summarise(gen: Generator, name: str, backend: str, cpu: dict[str, Any],
              ) -> dict[str, Any]:
    plan = gen.plan
    w0, w1 = (gen.start + plan.window[0], gen.start + plan.window[1])
    timed = [r for r in gen.reqs if w0 <= r.scheduled < w1]
    ok = [r for r in timed if r.error is None]
    by_kind: dict[str, Any] = {}
    for kind in KINDS:
        lat = [r.latency_ms for r in ok if r.kind == kind]
        if lat or any(r.kind == kind for r in timed):
            by_kind[kind] = {"n": sum(r.kind == kind for r in timed),
                             **h.summary(lat)}
    errors = [f"{r.kind} {r.path[:60]}: {r.error}" for r in gen.reqs if r.error is not None]
    last_done = max((r.done for r in ok), default=w1)
    missing = wrong = 0
    for sid, agent in gen.routed.items():
        got = gen.pops.get(sid, [])
        if not got:
            missing += 1
        elif got[0].stream != agent:
            wrong += 1
    late = [r.sent - r.scheduled for r in timed]
    slices: dict[int, list[float]] = collections.defaultdict(list)
    for r in ok:
        slices[int((r.scheduled - w0) // 10)].append(r.latency_ms)
    worst = max(slices.items(), key=lambda kv: h.pct(kv[1], 0.99), default=None)
    return {"name": name, "backend": backend, "rate": plan.rate,
            "offered_rps": len(timed) / plan.duration,
            "achieved_rps": len(ok) / max(last_done - w0, plan.duration),
            "requests": len(timed), "requests_all": len(gen.reqs),
            "errors": errors, "stream_errors": gen.stream_errors,
            "overall": h.summary([r.latency_ms for r in ok]), "by_kind": by_kind,
            "send_late_ms": h.summary([1e3 * x for x in late]),
            "worst_10s": None if worst is None else
            {"from_s": 10 * worst[0], "p99": h.pct(worst[1], 0.99), "n": len(worst[1])},
            "p99_per_10s": [round(h.pct(v, 0.99), 1) for _k, v in sorted(slices.items())],
            "calls": dict(gen.outcomes), "routed": len(gen.routed), "pops_missing": missing,
            "pops_wrong_agent": wrong, "streams": gen.streams_open,
            "targets": sorted({r.target for r in gen.reqs}), "cpu": cpu}


def dump(gen: Generator, tag: str) -> None:
    """Every request of a run to bench/out/<tag>.csv: when it was due (s from the start),
    how late it was sent, its latency, kind, server, error."""
    h.OUT.mkdir(exist_ok=True)
    with (h.OUT / f"{tag}.csv").open("w", encoding="utf-8") as fh:
        fh.write("due_s,sent_late_ms,latency_ms,kind,server,call,error\n")
        for r in sorted(gen.reqs, key=lambda r: r.scheduled):
            form = dict(parse_qsl(r.body.decode())) if r.content_type.startswith(
                "application/x-www") else {}
            sid = form.get("ParentCallSid") or form.get("CallSid") or r.path.split("/")[-2:][0]
            fh.write(f"{r.scheduled - gen.start:.3f},{1e3 * (r.sent - r.scheduled):.1f},"
                     f"{r.latency_ms:.1f},{r.kind},{r.target},{sid},"
                     f"{(r.error or '')[:80]!r}\n")


@contextlib.contextmanager
def ivr_worker(env: dict[str, str], work: Path, log_name: str) -> Iterator[subprocess.Popen[bytes]]:
    """``ivr worker`` beside the servers (outbox, CRM pulls, callbacks, follow-ups, the
    reports' rollup); stopped with SIGTERM (it finishes its step), its log kept."""
    log = work / log_name
    with log.open("wb") as fh:
        proc = subprocess.Popen([h.ivr_command(), "worker"], env=env, cwd=work, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        h.OUT.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            shutil.copy(log, h.OUT / log.name)


def sign_out(base: str, tokens: dict[str, str]) -> list[str]:
    """The end of the shift: every agent goes offline (``POST /agent/state``). An agent
    still reserved, on a call or in wrap-up is refused (409): an error of the run."""
    errors = []
    with httpx.Client(base_url=base, timeout=30.0) as c:
        for name, token in tokens.items():
            r = c.post("/agent/state", json={"state": "offline"},
                       headers={"Authorization": f"Bearer {token}"})
            if r.status_code != 200:
                errors.append(f"{name}: signing out: HTTP {r.status_code} {r.text[:120]}")
    return errors


def ivr_run(opt: Options, setup: str, url: str, plan: Plan, agents: list[str],
            ) -> tuple[dict[str, Any], list[Req]]:
    backend, n, with_worker = SETUPS[setup]
    pin = opt.pin and backend == "sqlite"
    cpus: list[int | None] = [0] if pin else [None] * n
    env = server_env(url, opt.work / "menus", opt.pg_pool)
    servers = [h.ivr_server(f"ivr serve {'AB'[k]} ({setup})", env, opt.work,
                            f"load-{setup}-{'AB'[k]}-{plan.rate:g}.log", cpus[k])
               for k in range(n)]
    name = (f"ivr, {backend} ({n} process{'es' if n > 1 else ''}"
            f"{' + worker' if with_worker else ''}), {plan.rate:g} calls/s")
    reset = reset_state(url)
    if any(reset.values()):
        print(f"  reset what the run before left: {reset}", flush=True)
    offers_before = last_offer_id(url)
    with contextlib.ExitStack() as stack:
        for s in servers:
            stack.enter_context(s)
        worker = (stack.enter_context(ivr_worker(env, opt.work,
                                                 f"load-{setup}-worker-{plan.rate:g}.log"))
                  if with_worker else None)
        bases = [s.base for s in servers]
        tokens = h.login_agents(bases[0], agents)
        h.set_agent_states(bases[0], tokens, agents[:len(agents) // 2])
        gen = Generator(bases, plan, tokens, opt.timeout)
        with h.pinned_here(1 if pin else None):
            cpu = measure(gen, agents, opt.drain, [s.pid for s in servers]
                          + ([worker.pid] if worker is not None else []),
                          backend == "postgresql")
        gen.stream_errors.extend(sign_out(bases[-1], tokens))
        if worker is not None and worker.poll() is not None:
            gen.stream_errors.append(f"ivr worker exited with {worker.returncode}")
    result = summarise(gen, name, backend, cpu)
    result["setup"] = setup
    dump(gen, f"load-{setup}-{plan.rate:g}")
    result["server_log"] = {s.name: s.warnings for s in servers}
    result["db_check"] = db_check(url)
    result["offer_delay"] = offer_delays(url, offers_before)
    result["agents"] = len(agents)
    result["reset_before"] = reset
    return result, gen.reqs


def bare_run(opt: Options, plan: Plan, reqs: list[Req], agents: list[str],
             start: float) -> dict[str, Any]:
    replay = [Req(r.kind, r.scheduled - start, 0.0, 0.0, None, r.path, r.body,
                  r.content_type, 0) for r in reqs if r.body]
    with h.python_server("bare", Path(__file__).resolve(), ["--serve-bare", "--port", h.PORT],
                         opt.work, "bare.log", 0 if opt.pin else None) as server:
        gen = Generator([server.base], plan, {}, opt.timeout, replay=replay)
        with h.pinned_here(1 if opt.pin else None):
            cpu = measure(gen, agents, opt.drain, [server.pid], False)
    dump(gen, f"load-bare-{plan.rate:g}")
    return summarise(gen, f"bare Starlette (1 process), {plan.rate:g} calls/s: the "
                     "SQLite run's requests", "bare", cpu)


# ---------------------------------------------------------------- report


def _ms(x: float | None) -> str:
    return f"{x:.1f}" if x is not None else "–"


def _pct(x: float | None) -> str:
    return f"{x:.0%}" if x is not None else "–"


def n_errors(r: dict[str, Any]) -> int:
    return len(r["errors"]) + len(r["stream_errors"])


def passed(r: dict[str, Any]) -> dict[str, bool]:
    p99 = r["overall"]["p99"]
    return {"p99": p99 is not None and p99 <= TARGET_P99_MS,
            "errors": n_errors(r) == 0 and r["pops_missing"] == 0
            and r["pops_wrong_agent"] == 0 and r.get("db_check", {"ok": True})["ok"]}


def summary_table(runs: list[dict[str, Any]]) -> list[str]:
    lines = ["| Run | offered req/s | achieved req/s | timed requests | errors | p50 ms "
             "| p99 ms | max ms | calls: routed / gave up / menu only | pops missing "
             "| server CPU | PostgreSQL CPU | client CPU | other CPU | load avg (1 min) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        o, c, k = r["overall"], r["cpu"], r["calls"]
        calls = ("–" if r["backend"] == "bare" else
                 f"{k.get('routed to an agent', 0):,} / {k.get('gave up waiting', 0):,} / "
                 f"{k.get('menu only', 0):,}")
        pops = "–" if r["backend"] == "bare" else f"{r['pops_missing']}/{r['routed']}"
        lines.append(
            f"| {r['name']} | {r['offered_rps']:.1f} | {r['achieved_rps']:.1f} "
            f"| {r['requests']:,} | {n_errors(r)} | {_ms(o['p50'])} | {_ms(o['p99'])} "
            f"| {_ms(o['max'])} | {calls} | {pops} "
            f"| {' + '.join(_pct(x) for x in c['server_cpu'])} | {_pct(c['postgres_cpu'])} "
            f"| {_pct(c['client_cpu'])} | {_pct(c['other_cpu'])} "
            f"| {c['loadavg_before'][0]:.2f} → {c['loadavg_after'][0]:.2f} |")
    return lines


def kind_table(runs: list[dict[str, Any]]) -> list[str]:
    short = [r["name"].split(",")[0] + ("" if r["backend"] == "bare" else
                                        f", {r.get('setup', r['backend'])}")
             + f", {r['rate']:g}/s"
             for r in runs]
    lines = ["| kind | " + " | ".join(short) + " |",
             "|---|" + "---:|" * len(runs)]
    for kind in KINDS:
        cells = []
        for r in runs:
            k = r["by_kind"].get(kind)
            cells.append("–" if k is None else
                         f"{_ms(k['p50'])} / {_ms(k['p99'])} / {_ms(k['max'])} ({k['n']:,})")
        if any(c != "–" for c in cells):
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return lines


def ceilings(runs: list[dict[str, Any]], setups: Sequence[str]) -> dict[str, Any]:
    """Each set-up's ceiling: the highest rate it passed below its first failing one (None
    if it failed the lowest), and whether a failure stopped it (else the ceiling is at least
    the highest rate tried); the targets of issue 18 item 1."""
    out: dict[str, Any] = {}
    for setup in setups:
        mine = sorted((r for r in runs if r.get("setup") == setup), key=lambda r: r["rate"])
        ceiling, failed_at = None, None
        for r in mine:
            if all(passed(r).values()):
                ceiling = r["rate"]
            else:
                failed_at = r["rate"]
                break
        out[setup] = {"ceiling": ceiling, "failed_at": failed_at}
    targets: list[tuple[str, str, bool | None]] = []
    for setup, goal in (("sqlite", CEILING_TARGETS["sqlite"]),
                        ("postgresql", CEILING_TARGETS["postgresql"])):
        if setup in out:
            c = out[setup]["ceiling"]
            targets.append((f"{setup} ({SETUPS[setup][1]} process"
                            f"{'es + worker' if SETUPS[setup][1] > 1 else ''}) ceiling >= "
                            f"{goal:g} calls/s", _rate(out[setup]),
                            c is not None and c >= goal))
    if "postgresql" in out and "postgresql-1" in out:
        two, one = out["postgresql"]["ceiling"], out["postgresql-1"]["ceiling"]
        ratio = two / one if two and one else None
        exact = out["postgresql"]["failed_at"] is not None \
            and out["postgresql-1"]["failed_at"] is not None
        targets.append((f"postgresql 2 processes / 1 process >= {SCALE_OUT_TARGET:g}x",
                        "–" if ratio is None else f"{ratio:.2f}x" + ("" if exact else
                                                                     " (a bound)"),
                        ratio is not None and ratio >= SCALE_OUT_TARGET))
    return {"setups": out, "targets": targets}


def _rate(c: dict[str, Any]) -> str:
    if c["ceiling"] is None:
        return f"below {c['failed_at']:g} calls/s"
    return f"{c['ceiling']:g} calls/s" + ("" if c["failed_at"] is not None else
                                          " (passed every rate tried)")


def markdown(info: dict[str, Any], opt: Options, runs: list[dict[str, Any]],
             loads: dict[str, Any], argv: list[str],
             ceiling: dict[str, Any] | None = None) -> str:
    agents = sorted({int(r["agents"]) for r in runs if r.get("agents")})
    lines = [
        SECTION.format(date=info["date"]), "",
        f"`python bench/load.py {' '.join(argv)}` (git {info['git']}). Machine: "
        f"{info['nproc']} CPU ({info['cpu']}), {info['ram_gib']} GiB RAM, Python "
        f"{info['python']}, Linux {info['kernel']}; uvicorn {info['uvicorn']}, Starlette "
        f"{info['starlette']}, SQLAlchemy {info['sqlalchemy']}, aiohttp {aiohttp.__version__}"
        f" (the load generator). 1-minute load average at the start "
        f"{info['loadavg'][0]:.2f} (5 min {info['loadavg'][1]:.2f}); per run below.", "",
        f"Traffic (see the docstring of bench/load.py): new calls at a fixed rate, menu steps,"
        f" queue waits ({HOLD_POLL_SECONDS} s rounds), callers giving up after 2–6 rounds,"
        f" routed calls connected (the screen-pop), the agent leg, the `<Dial>` action,"
        f" status callbacks and the agents' wrap-ups; {'/'.join(str(a) for a in agents)}"
        " agents signed in, each holding `GET /agent/events` open, half available from the"
        " start and half going available during the window. Every Twilio request signed,"
        " every answer checked (TwiML of the right kind, not the safe-queue apology; 2xx)."
        f" {opt.customers:,} customers loaded (80% of calls from a loaded customer's mobile)."
        f" Open loop: latency from each request's scheduled send time; {opt.warmup:g} s"
        f" warm-up, {opt.duration:g} s timed window, then the calls in progress finish."
        " SQLite: one process pinned to CPU 0, the generator on CPU 1. PostgreSQL: one"
        " process, or two processes and an `ivr worker` (server CPU: A + B + worker),"
        " requests round-robin, streams alternating, nothing pinned"
        f" (`IVR_DB_POOL_SIZE={opt.pg_pool}` each). Bare: bench/bare_app.py's"
        " `/twilio/gather` (+ bench/bare_sse.py's stream) on uvicorn, pinned like SQLite,"
        " sent the SQLite run's exact requests at the same offsets.", "",
        *summary_table(runs), "",
        "Latency per kind of request, ms: p50 / p99 / max (timed requests). The bare"
        " column is the same requests (by what they stood for) answered by the bare"
        " endpoint.", "",
        *kind_table(runs), "",
        "| Target | value | result |", "|---|---:|---|",
    ]
    if ceiling is not None:
        for label, value, ok in ceiling["targets"]:
            lines.append(f"| {label} | {value} | {'PASS' if ok else 'MISSED'} |")
    for r in runs:
        if r["backend"] == "bare":
            continue
        ok = passed(r)
        lines.append(f"| {r['name']}: p99 <= {TARGET_P99_MS:g} ms | {_ms(r['overall']['p99'])}"
                     f" ms | {'PASS' if ok['p99'] else 'MISSED'} |")
        lines.append(f"| {r['name']}: errors 0 (and no pop missing, database consistent) "
                     f"| {n_errors(r)} | {'PASS' if ok['errors'] else 'MISSED'} |")
    lines.append("")
    for r in runs:
        if "db_check" in r:
            lines.append(f"- {r['name']}: database check {r['db_check']['text']}; pops"
                         f" {r['routed'] - r['pops_missing']:,}/{r['routed']:,} routed calls"
                         f" (wrong agent {r['pops_wrong_agent']}); generator sent late"
                         f" p99 {_ms(r['send_late_ms']['p99'])} ms; p99 per 10 s of the"
                         f" window: {', '.join(f'{x:g}' for x in r['p99_per_10s'])} ms;"
                         f" {_offer_delay(r)}.")
        else:
            lines.append(f"- {r['name']}: p99 per 10 s of the window: "
                         f"{', '.join(f'{x:g}' for x in r['p99_per_10s'])} ms.")
        grouped = collections.Counter(_error_kind(e) for e in r["errors"] + r["stream_errors"])
        for e, count in grouped.most_common(4):
            lines.append(f"  - {count} error{'s' if count > 1 else ''}: {e}")
        if h.noisy(r["cpu"]["other_cpu"]):
            lines.append(f"  - **Noise:** other work on the machine used "
                         f"{r['cpu']['other_cpu']:.0%} of a core during this run.")
    if loads:
        lines.append("- Customer load (not timed): " + "; ".join(
            f"{b} {ld['customers_stored']:,} customers in {ld['seconds']:.0f} s"
            for b, ld in loads.items()) + ".")
    lines.append("")
    return "\n".join(lines)


def _error_kind(error: str) -> str:
    """An error without the CallSid in its path: errors of one kind count together."""
    kind, _, rest = error.partition(" ")
    _path, _, what = rest.partition(": ")
    what = re.sub(r" for https?://\S+", "", what or rest)
    return f"{kind}: {what}"


def _offer_delay(r: dict[str, Any]) -> str:
    d = r.get("offer_delay")
    if not d or not d["n"]:
        return "no offers"
    return (f"queue join to first offer p50 / p99 / max {_ms(d['p50'])} / {_ms(d['p99'])} /"
            f" {_ms(d['max'])} ms over {d['n']:,} calls ({d['over_500ms']} over 500 ms)")


def print_summary(runs: list[dict[str, Any]]) -> None:
    print()
    for line in [*summary_table(runs), "", *kind_table(runs)]:
        print(line)
    for r in runs:
        for e in (r["errors"] + r["stream_errors"])[:8]:
            print(f"  {r['name']}: {e}")
        if "db_check" in r:
            print(f"  {r['name']}: database {r['db_check']['text']}; pops missing "
                  f"{r['pops_missing']}/{r['routed']}, wrong agent {r['pops_wrong_agent']};"
                  f" sent late p99 {_ms(r['send_late_ms']['p99'])} ms,"
                  f" max {_ms(r['send_late_ms']['max'])} ms; {_offer_delay(r)}")
        print(f"  {r['name']}: p99 per 10 s {r['p99_per_10s']}")
        for name, counts in (r.get("server_log") or {}).items():
            if counts:
                print(f"  {name} log: {counts}")


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description="Load: mixed traffic at a fixed rate.")
    parser.add_argument("--rates", default="12,16", help="calls started per second, comma list")
    parser.add_argument("--duration", type=float, default=60.0, help="timed window, s")
    parser.add_argument("--warmup", type=float, default=30.0,
                        help="untimed start, s (a call lasts up to ~50 s: the mix of"
                             " kinds settles in about 30)")
    parser.add_argument("--drain", type=float, default=60.0,
                        help="after the last call started, how long the calls may finish")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=None,
                        help=f"default: {AGENTS_PER_CALL_PER_S} x the rate")
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, s")
    parser.add_argument("--setups", default="sqlite,postgresql-1,postgresql",
                        help="sqlite (1 process), postgresql-1 (1 process), postgresql "
                             "(2 processes + ivr worker)")
    parser.add_argument("--ceiling", action="store_true",
                        help="--rates ascending: a set-up stops at its first rate with p99 "
                             f"over {TARGET_P99_MS:g} ms or an error; its ceiling is the "
                             "rate before")
    parser.add_argument("--no-bare", action="store_true")
    parser.add_argument("--pg-admin-url", default=os.environ.get("IVR_BENCH_PG_URL",
                                                                 h.PG_ADMIN_URL))
    parser.add_argument("--pg-pool", type=int, default=8)
    parser.add_argument("--no-pin", action="store_true")
    h.add_results_options(parser, no_write=True)
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=8102, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare("127.0.0.1", args.port)
        return 0
    setups = [b.strip() for b in args.setups.split(",") if b.strip()]
    try:
        rates = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error("--rates: numbers, e.g. 12,16")
    if set(setups) - set(SETUPS) or not setups:
        parser.error(f"--setups: of {', '.join(SETUPS)}")
    if args.ceiling and rates != sorted(rates):
        parser.error("--ceiling: --rates ascending")
    backends = sorted({SETUPS[s][0] for s in setups})
    if not rates or min(rates) <= 0 or args.duration <= 0 or args.warmup < 0:
        parser.error("--rates > 0, --duration > 0, --warmup >= 0")
    if not 1_000 <= args.customers <= MAX_STREAM_ROWS:
        parser.error(f"--customers within 1,000..{MAX_STREAM_ROWS:,}")
    if not args.no_bare and "sqlite" not in setups:
        parser.error("the bare baseline replays the SQLite run: add sqlite or --no-bare")
    pin = h.can_pin(args.no_pin)
    with h.exclusive("load"), contextlib.ExitStack() as dbs:
        info = h.machine_info()
        info["loadavg"] = os.getloadavg()
        print(f"{info['date']}: {info['nproc']} CPU, {info['ram_gib']} GiB, git {info['git']},"
              f" load {info['loadavg'][0]:.2f}", flush=True)
        with tempfile.TemporaryDirectory(prefix="ivr-load-") as tmp:
            work = Path(tmp)
            opt = Options(rates, args.warmup, args.duration, args.drain, args.customers,
                          args.agents, args.timeout, work, args.pg_admin_url, args.pg_pool,
                          pin, not args.no_write)
            h.write_menu(work, MENU_YAML)
            (work / "callbacks.yaml").write_text(CALLBACKS_YAML, encoding="utf-8")
            customers = h.write_customers(args.customers, work)
            rng = random.Random("load-callers")
            total = sum(math.ceil((args.warmup + args.duration) * r) for r in rates)
            callers = customers.callers(rng, total)
            known = sorted(set(callers) & customers.known)
            n_agents = max(args.agents or round(AGENTS_PER_CALL_PER_S * max(rates)), 2)
            agents = agent_names(n_agents)
            urls = {}
            for backend in backends:
                if backend == "sqlite":
                    urls[backend] = f"sqlite:///{work / 'load.db'}"
                else:
                    urls[backend] = dbs.enter_context(h.pg_database(args.pg_admin_url,
                                                                    PG_DB))
            print(f"preparing {', '.join(backends)}: {args.customers:,} customers, "
                  f"{len(known):,} callers' history, {n_agents} agents ...", flush=True)
            with cf.ProcessPoolExecutor(len(backends), mp_context=mp.get_context("fork")) \
                    as pool:
                futures = {b: pool.submit(prepare, b, urls[b], str(customers.csv),
                                          args.customers, known, n_agents, str(work))
                           for b in backends}
                loads = {b: f.result() for b, f in futures.items()}
            runs: list[dict[str, Any]] = []
            offset = 0
            going = list(setups)  # --ceiling: a set-up stops at its first failing rate
            for rate in rates:
                n = math.ceil((args.warmup + args.duration) * rate)
                mine = callers[offset:offset + n]
                offset += n
                k = args.agents or max(round(AGENTS_PER_CALL_PER_S * rate), 2)
                plan = make_plan(rate, args.warmup, args.duration, mine, agents[:k],
                                 f"load-{rate:g}")
                for setup in list(going):
                    backend = SETUPS[setup][0]
                    print(f"{setup}, {rate:g} calls/s, {k} agents: "
                          f"{args.warmup:g} + {args.duration:g} s ...", flush=True)
                    run, reqs = ivr_run(opt, setup, urls[backend], plan, agents[:k])
                    runs.append(run)
                    ok = all(passed(run).values())
                    print(f"  p50 {_ms(run['overall']['p50'])} ms, p99"
                          f" {_ms(run['overall']['p99'])} ms, errors {n_errors(run)},"
                          f" {run['db_check']['text']}; {'PASS' if ok else 'MISSED'}, load"
                          f" {os.getloadavg()[0]:.2f}", flush=True)
                    if setup == "sqlite" and not args.no_bare:
                        print(f"bare, {rate:g} calls/s (the SQLite run's requests) ...",
                              flush=True)
                        bare = bare_run(opt, plan, reqs, agents[:k], run["cpu"]["start"])
                        runs.append(bare)
                        print(f"  p50 {_ms(bare['overall']['p50'])} ms, p99 "
                              f"{_ms(bare['overall']['p99'])} ms", flush=True)
                    if args.ceiling and not ok:
                        going.remove(setup)
                if not going:
                    break
        print_summary(runs)
        raw = h.write_raw("load", {"machine": info, "argv": sys.argv[1:], "loads": loads,
                                   "runs": runs})
        hidden = ("--out", "--results")  # where the section goes is not part of the run
        shown = [a for a, prev in zip(sys.argv[1:], ["", *sys.argv[1:]], strict=False)
                 if a not in hidden and prev not in hidden
                 and not a.startswith(tuple(f"{x}=" for x in hidden))]
        section = markdown(info, opt, runs, loads, shown, ceilings(runs, setups)
                           if args.ceiling else None)
        if opt.write:
            h.update_results(section, args.out.resolve())
            print(f"\nwrote {args.out.resolve()} and {raw}")
        else:
            print("\n" + section)
        if args.ceiling:
            found = ceilings(runs, setups)
            for setup, c in found["setups"].items():
                print(f"ceiling {setup}: {_rate(c)}")
            ok = all(t[2] for t in found["targets"])
        else:
            ok = all(all(passed(r).values()) for r in runs if r["backend"] != "bare")
        print("targets: " + ("all met" if ok else "MISSED (see the table)"))
    return 0


if __name__ == "__main__":
    sys.exit(h.run(main))
