"""Benchmark: one Twilio menu step (POST /twilio/gather) against the real server.

Not a test. Runs, in this order:

1. a bare Starlette endpoint (bench/bare_app.py) answering a fixed TwiML document: the
   same-run baseline (same uvicorn settings, same requests, same load generator);
2. ``ivr serve`` on a fresh SQLite file;
3. ``ivr serve`` on a fresh PostgreSQL database (created, then dropped).

Each server is one process pinned to CPU 0; ``wrk`` (1 thread, 32 connections) is pinned
to CPU 1. The menu is a benchmark-only menu written to a temp dir: one ``menu`` node whose
options loop back to it (directly, or through a message node), so every step is a real
menu step whatever the time of day (no opening hours).

Every timed request is a distinct, validly signed ``POST /twilio/gather?s=<step>`` for a
call created beforehand with a signed ``POST /twilio/voice``: the signature check, the
call-state read, the engine step, the TwiML rendering and the optimistic state write all
run. Requests go in rounds (step 1 of every call, then step 2 of every call, ...) so a
call's next step is only sent long after its previous one was answered. Answers are
classified in the wrk script (2xx with ``<Gather``, other 2xx, non-2xx); afterwards the
database is checked: the steps the calls advanced must match the answers counted (a
replayed or out-of-order request would answer 200 without advancing).

The pool is sized from a warm-up run (rate x duration x 1.6); if it still runs dry the
timed run is repeated with a bigger pool. The bare baseline runs before and after the
IVR runs (the ratio uses their mean, leaving out a run disturbed by other work on the
machine); the CPU used by everything else on the machine is
reported per run ("other CPU"): a busy machine makes the figures worthless, and two runs
of this script at once are refused (a lock in bench/out/).

    python bench/webhooks.py                 # everything, about 2 minutes
    python bench/webhooks.py --backends sqlite --duration 10
    python bench/webhooks.py --profile       # + py-spy --gil on the server, timed runs only
    python bench/webhooks.py --customers 1000000   # issue 3: caller identification on

With ``--customers N`` (issue 3) every fresh database is migrated and loaded, before its
server starts, with N synthetic customers (``crm_sync.demo.iter_customer_rows``, one CSV
written once per run) through the real importer (``crm_sync.importer.import_file``, batches
of 20,000; the load time is recorded, it is not a target; PostgreSQL then gets a
``VACUUM (ANALYZE)``, the state autovacuum would reach soon after an import anyway). Every
``POST /twilio/voice`` of the run then comes from a caller drawn at random: 80% a loaded
customer's mobile (E.164, as Twilio sends it), 20% an unknown +97259 number, so the call
start runs the caller identification (phone index lookup + the customer's attributes) for
real. A second timed run per backend measures the call start itself: distinct signed
``POST /twilio/voice`` requests (a new CallSid each), sent at most once, in file order,
pool sized like the menu step's. Afterwards every call it created is checked in the
database: its ``attributes.caller_outcome`` must be "known" exactly when its caller is a
loaded customer's number, "unknown" otherwise; the known share is reported (about 80%).
The results go to their own section, "## Webhook with caller identification, N customers
(issue 3)"; the issue-2 section is left alone.

Needs wrk (installed with apt-get if missing and running as root), taskset, a local
PostgreSQL for the second run (--pg-admin-url; a database ivr_bench_<pid> is created and
dropped), and py-spy for --profile (pip install py-spy).

Writes bench/results.md (section "## Webhook menu step (issue 2)"; other sections kept)
and raw JSON plus server logs to bench/out/ (gitignored). With --profile the figures are
perturbed by the profiler, so results.md is left alone.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import math
import os
import random
import secrets
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import harness as h
from harness import BenchError, Customers, Server, WrkResult
from sqlalchemy import create_engine, text
from twilio.request_validator import RequestValidator

from crm_sync.demo import MAX_STREAM_ROWS

HERE = h.HERE
OUT = h.OUT
SECTION = "## Webhook menu step (issue 2)"
CRM_SECTION = "## Webhook with caller identification, {customers} customers (issue 3)"
LUA = HERE / "replay.lua"

TOKEN = h.TOKEN
PUBLIC_URL = "https://ivr-bench.example.com"  # IVR_PUBLIC_URL: what the signatures cover
CONNECTIONS = 32
THREADS = 1
# One database per run (created, then dropped): two runs at once must not drop each
# other's database (and their figures would be worthless anyway: see "other CPU").
PG_DB = f"ivr_bench_{os.getpid()}"
PG_POOL = int(os.environ.get("BENCH_PG_POOL", "32"))

TARGETS = {  # backend: (min share of bare throughput, max p99 in ms)
    "sqlite": (0.10, 25.0),
    "postgresql": (0.06, 40.0),
}
CRM_P99_MS = 25.0  # issue 3: call start and menu step, each backend, N customers loaded
CRM_REGION = h.CRM_REGION
CRM_SOURCE = h.CRM_SOURCE
CRM_BATCH = h.CRM_BATCH
KNOWN_SHARE = h.KNOWN_SHARE
DEFAULT_CALLER = "+972501234567"

MENU_YAML = """\
# Benchmark-only menu (written by bench/webhooks.py): one menu node that every option
# leads back to, directly or through a message. No opening hours: every step is a menu.
description: Benchmark menu
languages: [he-IL, en-US]
default_language: he-IL
voices:
  he-IL: Google.he-IL-Standard-A
  en-US: Polly.Joanna-Neural
start: loop
fallback: bye
nodes:
  loop:
    type: menu
    input: [dtmf, speech]
    prompt:
      say:
        he-IL: "לבירורי חשבון הקישו 1. לתמיכה טכנית הקישו 2. לנציג הקישו 0."
        en-US: "For billing, press 1. For technical support, press 2. For an agent, press 0."
    options:
      "1":
        next: loop
        speech: {he-IL: ["חשבון"], en-US: ["billing"]}
      "2":
        next: again
        speech: {he-IL: ["תמיכה"], en-US: ["support"]}
    no_input_prompt:
      say:
        he-IL: "לא שמענו בחירה."
        en-US: "We did not hear a choice."
    invalid_prompt:
      say:
        he-IL: "הבחירה אינה קיימת."
        en-US: "That is not one of the choices."
    on_failure: bye
  again:
    type: message
    prompt:
      say:
        he-IL: "חוזרים לתפריט."
        en-US: "Back to the menu."
    next: loop
  bye:
    type: hangup
    prompt:
      say:
        he-IL: "להתראות."
        en-US: "Goodbye."
"""


# ---------------------------------------------------------------- requests


def call_params(sid: str, status: str, caller: str = DEFAULT_CALLER) -> dict[str, str]:
    """The form fields Twilio posts on an inbound voice call (Israeli numbers)."""
    return {
        "AccountSid": "AC" + "0" * 32, "ApiVersion": "2010-04-01", "CallSid": sid,
        "CallStatus": status, "Direction": "inbound",
        "From": caller, "Caller": caller, "FromCountry": "IL",
        "FromCity": "", "FromState": "", "FromZip": "",
        "To": "+97235550100", "Called": "+97235550100", "ToCountry": "IL",
        "ToCity": "", "ToState": "", "ToZip": "",
        "CallerCountry": "IL", "CalledCountry": "IL",
    }


@dataclass
class Pool:
    """Calls whose sids start with CA<tag>: voice requests, then gather rounds."""

    tag: str
    calls: int
    steps: int
    sids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # 34 characters like a real CallSid: CA + tag + random + index, all hex.
        nonce = secrets.token_hex(16)[: 24 - len(self.tag)]
        self.sids = [f"CA{self.tag}{nonce}{i:08x}" for i in range(self.calls)]

    @property
    def like(self) -> str:
        return f"CA{self.tag}%"

    @property
    def requests(self) -> int:
        return self.calls * self.steps


def _line(validator: RequestValidator, path: str, params: dict[str, str]) -> str:
    signature = validator.compute_signature(PUBLIC_URL + path, params)
    return f"{path}\t{signature}\t{urlencode(params)}\n"


def write_voice(pool: Pool, path: Path, callers: Sequence[str] | None = None) -> Path:
    """One call start per call of the pool; ``callers[i]`` is call i's From (else one
    fixed number)."""
    if callers is not None and len(callers) != pool.calls:
        raise ValueError(f"{len(callers)} callers for {pool.calls} calls")
    v = RequestValidator(TOKEN)
    with path.open("w") as f:
        for i, sid in enumerate(pool.sids):
            caller = callers[i] if callers is not None else DEFAULT_CALLER
            f.write(_line(v, "/twilio/voice", call_params(sid, "ringing", caller)))
    return path


def write_gathers(pool: Pool, path: Path, callers: Sequence[str] | None = None) -> Path:
    """Round k (k = 1..steps) is step k of every call: ``?s=k``, digits 1 or 2 alternately."""
    v = RequestValidator(TOKEN)
    with path.open("w") as f:
        for k in range(1, pool.steps + 1):
            digits = "1" if k % 2 else "2"
            for i, sid in enumerate(pool.sids):
                caller = callers[i] if callers is not None else DEFAULT_CALLER
                params = call_params(sid, "in-progress", caller)
                params.update(Digits=digits, FinishedOnKey="", msg="Gather End")
                f.write(_line(v, f"/twilio/gather?s={k}", params))
    return path


# ---------------------------------------------------------------- customer store (issue 3)


def db_outcomes(url: str, pool: Pool, expected_known: dict[str, bool]) -> dict[str, Any]:
    """The calls of a call-start pool in the database, by ``attributes.caller_outcome``,
    and how many disagree with their caller (known exactly when a loaded customer's)."""
    engine = create_engine(url)
    outcome = ("attributes->>'caller_outcome'" if engine.dialect.name == "postgresql"
               else "json_extract(attributes, '$.caller_outcome')")
    try:
        with engine.connect() as conn:
            found = conn.execute(text(f"SELECT call_sid, {outcome} FROM calls "  # noqa: S608
                                      "WHERE call_sid LIKE :p"), {"p": pool.like}).all()
    finally:
        engine.dispose()
    by: collections.Counter[str] = collections.Counter()
    wrong = 0
    for sid, got in found:
        by[str(got)] += 1
        want = "known" if expected_known.get(sid) else "unknown"
        wrong += got != want
    calls = len(found)
    return {"calls": calls, "outcomes": dict(by), "known": by["known"],
            "unknown": by["unknown"], "wrong": wrong,
            "known_share": by["known"] / calls if calls else None}


# ---------------------------------------------------------------- load generator


def run_wrk(server: Server, data: Path, mode: str, duration: float,
            cpu: int | None) -> WrkResult:
    """wrk with bench/replay.lua: THREADS threads, CONNECTIONS connections."""
    return h.run_wrk(server, LUA, data, mode, duration, cpu, threads=THREADS,
                     connections=CONNECTIONS)


def run_once(server: Server, data: Path, expected: int, cpu: int | None,
             what: str) -> WrkResult:
    """Send every request of a data file once; all must be answered with a menu step."""
    r = run_wrk(server, data, "once", 600, cpu)
    if r.counts["gather"] != expected or r.errors:
        raise BenchError(f"{what}: expected {expected} menu answers, got {r.counts} "
                         f"socket errors {r.socket_errors}\n{r.raw}")
    return r


# ---------------------------------------------------------------- profiling


# Where a sample goes: the first rule whose pattern is anywhere in the stack, else the
# first leaf-most frame that matches a generic rule (py-spy sometimes truncates stacks).
STACK_RULES = [
    ("signature check (twilio RequestValidator)", ["request_validator.py"]),
    ("TwiML render (twilio VoiceResponse, ElementTree)", ["ivr/calls/twiml.py",
                                                          "twilio/twiml/"]),
    ("menu engine step", ["ivr/menu/engine.py"]),
    ("SQL SELECT call state (repository.get_call)", ["get_call (ivr/calls/repository.py"]),
    ("SQL UPDATE call state (repository.update_call)",
     ["update_call (ivr/calls/repository.py"]),
    ("transaction begin / commit / pool", ["Engine.begin", "_GeneratorContextManager.__exit__"]),
    ("request fingerprint", ["fingerprint (ivr/calls/service.py"]),
    ("form parsing (parse_qsl)", ["parse_qsl"]),
    ("body and header handling (twilio_request)", ["Request.body", "Headers.",
                                                   "twilio_request (ivr/webhooks.py"]),
    ("call service, other", ["CallService."]),
]
LEAF_RULES = [
    ("event loop / thread hand-off (asyncio, futures)", ["concurrent/futures", "asyncio/",
                                                    "threading.py", "ivr/core/db.py"]),
    ("SQLAlchemy / driver (stack truncated)", ["sqlalchemy/", "psycopg/", "json/"]),
    ("FastAPI / Starlette / OpenTelemetry checks", ["fastapi/", "starlette/", "pydantic",
                                                    "anyio/", "opentelemetry", "<frozen os>"]),
    ("uvicorn / httptools", ["uvicorn/", "httptools"]),
]


def summarise_profile(raw: Path, seconds: float) -> dict[str, Any]:
    return h.summarise_profile(raw, seconds, stack_rules=STACK_RULES, leaf_rules=LEAF_RULES)
# ---------------------------------------------------------------- the runs


@dataclass
class Options:
    duration: float
    steps: int
    warmup_calls: int
    server_cpu: int | None
    wrk_cpu: int | None
    profile: bool
    work: Path
    customers: Customers | None = None  # issue 3: loaded into every fresh database


def measured(server: Server, data: Path, mode: str, opt: Options, *, postgres: bool = False,
             profile: Path | None = None) -> dict[str, Any]:
    """One timed wrk run, with the CPU each party used (share of one core): the server,
    wrk, PostgreSQL, and everything else on the machine (noise from other work)."""
    with h.CpuMeter([server.pid], postgres=postgres) as cpu, \
            h.profiler(server.pid, opt.duration, profile):
        r = run_wrk(server, data, mode, opt.duration, opt.wrk_cpu)
    srv, kernel, pg = cpu.server[0], cpu.server_system[0], cpu.postgres
    return {"wrk": r, "server_cpu": srv / r.seconds,
            "server_kernel_share": kernel / srv if srv else None,
            "server_cpu_us_per_request": 1e6 * srv / r.requests if r.requests else None,
            "postgres_cpu": pg / r.seconds if pg is not None else None,
            "other_cpu": cpu.other(r.wrk_cpu * r.seconds) / r.seconds}


def bare_run(opt: Options, label: str) -> dict[str, Any]:
    server = h.python_server("bare", HERE / "bare_app.py",
                             ["--host", "127.0.0.1", "--port", h.PORT], opt.work,
                             f"server-bare-{label}.log", opt.server_cpu)
    pool = Pool("ff", 1000, 1)
    data = write_gathers(pool, opt.work / "bare.txt")
    with server:
        run_wrk(server, data, "cycle", 3, opt.wrk_cpu)  # warm-up
        m = measured(server, data, "cycle", opt)
    return {"name": f"bare Starlette ({label})", **m}


def db_progress(url: str, pool: Pool) -> tuple[int, int]:
    """(calls of the pool in the database, steps they advanced in total)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT count(*), coalesce(sum(step - 1), 0) FROM calls "
                                    "WHERE call_sid LIKE :p"), {"p": pool.like}).one()
    finally:
        engine.dispose()
    return int(row[0]), int(row[1])


def known_share_ok(share: float, calls: int) -> bool:
    """The known share is a binomial draw: about KNOWN_SHARE, within 4 standard errors."""
    tolerance = max(0.02, 4 * math.sqrt(KNOWN_SHARE * (1 - KNOWN_SHARE) / max(calls, 1)))
    return abs(share - KNOWN_SHARE) <= tolerance


def call_start_run(server: Server, opt: Options, backend: str, tag: str, rate: float,
                   url: str, rng: random.Random) -> dict[str, Any]:
    """Timed call starts: distinct signed POST /twilio/voice (a new CallSid each, callers
    80% loaded customers, 20% unknown), then the identification checked in the database."""
    customers = opt.customers
    assert customers is not None
    result: dict[str, Any] = {"name": f"call start, {backend}", "backend": backend,
                              "kind": "call start"}
    for attempt in range(1, 4):
        needed = math.ceil(rate * opt.duration * 1.6 * attempt) + 1000
        pool = Pool(f"{tag}c{attempt}", needed, 1)
        callers = customers.callers(rng, pool.calls)
        data = write_voice(pool, opt.work / f"{backend}-call-start-{attempt}.txt", callers)
        prof = (OUT / f"profile-{backend}-call-start.txt") if opt.profile else None
        m = measured(server, data, "timed", opt, postgres=backend == "postgresql",
                     profile=prof)
        result.update(m)
        r = m["wrk"]
        if r.counts["exhausted"] == 0:
            break
        print(f"  pool of {pool.calls} call starts ran dry; again with a bigger one",
              flush=True)
        rate = max(rate, r.rps)
    else:
        raise BenchError("the call-start pool ran dry three times")
    known = {sid: caller in customers.known
             for sid, caller in zip(pool.sids, callers, strict=True)}
    ids = db_outcomes(url, pool, known)
    answers = r.counts["gather"]
    calls = ids["calls"]
    share = ids["known_share"]
    result.update(pool_calls=pool.calls, identification=ids)
    problems = []
    if not 0 <= calls - answers <= CONNECTIONS:
        problems.append(f"{calls} calls in the database for {answers} answers")
    if ids["wrong"]:
        problems.append(f"{ids['wrong']} calls whose caller_outcome disagrees with their "
                        f"caller (outcomes {ids['outcomes']})")
    result["db_check"] = (
        ("MISMATCH: " + "; ".join(problems) + "; " if problems else "ok: ")
        + f"{calls:,} calls created for {answers:,} answers"
        + (f" (+{calls - answers} in flight at the end)" if not problems else "")
        + f"; caller_outcome known {ids['known']:,}"
        + (f" ({share:.1%})" if share is not None else "")
        + f", unknown {ids['unknown']:,}"
        + (", each as its caller" if not ids["wrong"] else ""))
    if share is None or not known_share_ok(share, calls):
        result["identification_flag"] = (
            f"{backend} call start: known callers {_pct1(share)} of {calls:,} calls, "
            f"expected about {KNOWN_SHARE:.0%}")
    if prof is not None and prof.exists():
        result["profile"] = summarise_profile(prof, opt.duration)
    return result


def ivr_run(opt: Options, backend: str, pg_admin: str) -> dict[str, Any]:
    tag = {"sqlite": "5a", "postgresql": "9b"}[backend]
    with contextlib.ExitStack() as stack:
        url = (f"sqlite:///{opt.work / 'bench.db'}" if backend == "sqlite"
               else stack.enter_context(h.pg_database(pg_admin, PG_DB)))
        return _ivr_run(opt, backend, tag, url)


def _ivr_run(opt: Options, backend: str, tag: str, url: str) -> dict[str, Any]:
    env = h.ivr_env(url, opt.work / "menus", pg_pool=PG_POOL, IVR_PUBLIC_URL=PUBLIC_URL)
    server = h.ivr_server(f"ivr serve ({backend})", env, opt.work, f"server-{backend}.log",
                          opt.server_cpu)
    result: dict[str, Any] = {"name": f"menu step, {backend}", "backend": backend}
    customers = opt.customers
    rng = random.Random(f"ivr-bench-callers-{backend}")

    def callers(pool: Pool) -> list[str] | None:
        return customers.callers(rng, pool.calls) if customers is not None else None

    if customers is not None:
        print(f"  loading {customers.count:,} customers (importer) ...", flush=True)
        result["load"] = h.load_customers(url, customers)
        load = result["load"]
        print(f"  loaded {load['records']:,} records in {load['seconds']:.1f} s "
              f"({load['rows_per_s']:,.0f} rows/s)", flush=True)
    with server:
        # Warm-up, which also sizes the timed pool: create calls, then step them.
        warm = Pool(tag + "0", opt.warmup_calls, opt.steps)
        warm_callers = callers(warm)
        wc = run_once(server, write_voice(warm, opt.work / f"{backend}-warm-voice.txt",
                                          warm_callers),
                      warm.calls, opt.wrk_cpu, "warm-up call creation")
        w = run_once(server, write_gathers(warm, opt.work / f"{backend}-warm-steps.txt",
                                           warm_callers),
                     warm.requests, opt.wrk_cpu, "warm-up steps")
        result["warmup_rps"] = w.rps
        if customers is not None:
            result["warmup_create_rps"] = wc.rps
            print("  call start ...", flush=True)
            result["call_start"] = call_start_run(server, opt, backend, tag, wc.rps, url, rng)
            print(f"  {result['call_start']['wrk'].rps:,.0f} req/s; menu step ...", flush=True)
        rate = w.rps
        for attempt in range(1, 4):
            needed = math.ceil(rate * opt.duration * 1.6 * attempt) + 2000
            timed = Pool(f"{tag}{attempt}", max(math.ceil(needed / opt.steps), 500),
                         opt.steps)
            timed_callers = callers(timed)
            c = run_once(server, write_voice(timed, opt.work / f"{backend}-voice-{attempt}.txt",
                                             timed_callers),
                         timed.calls, opt.wrk_cpu, "call creation")
            data = write_gathers(timed, opt.work / f"{backend}-steps-{attempt}.txt",
                                 timed_callers)
            prof = (OUT / f"profile-{backend}.txt") if opt.profile else None
            m = measured(server, data, "timed", opt, postgres=backend == "postgresql",
                         profile=prof)
            result.update(m)
            r = m["wrk"]
            if r.counts["exhausted"] == 0:
                break
            print(f"  pool of {timed.requests} requests ran dry; again with a bigger one",
                  flush=True)
            rate = max(rate, r.rps)
        else:
            raise BenchError("the request pool ran dry three times")
        result.update(pool_calls=timed.calls, pool_requests=timed.requests,
                      create_rps=c.rps)
        calls, advanced = db_progress(url, timed)
        result.update(db_calls=calls, db_steps_advanced=advanced)
        # Steps in flight when wrk stopped are done by the server but not counted by wrk.
        answers = r.counts["gather"]
        if calls != timed.calls or not 0 <= advanced - answers <= CONNECTIONS:
            result["db_check"] = (f"MISMATCH: {calls}/{timed.calls} calls, {advanced} steps "
                                  f"advanced vs {answers} menu answers")
        else:
            result["db_check"] = (f"ok: {advanced} steps advanced in the database for "
                                  f"{answers} menu answers (+{advanced - answers} in flight "
                                  "at the end)")
        if prof is not None and prof.exists():
            result["profile"] = summarise_profile(prof, opt.duration)
    result["server_log"] = server.warnings
    return result


# ---------------------------------------------------------------- report

def baseline(bares: list[dict[str, Any]]) -> float:
    """The bare throughput the ratios use: the mean of the bare runs the rest of the
    machine left alone; if it disturbed them all, the best of them (the ratio errs low)."""
    quiet: list[float] = [m["wrk"].rps for m in bares if not h.noisy(m["other_cpu"])]
    return sum(quiet) / len(quiet) if quiet else float(max(m["wrk"].rps for m in bares))


def verdicts(runs: list[dict[str, Any]], bare_rps: float,
             crm: bool = False) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for run in runs:
        if crm:  # issue 3: p99 and errors of the call start and the menu step
            for part in (run["call_start"], run):
                r: WrkResult = part["wrk"]
                out.append({
                    "backend": run["backend"],
                    "label": f"{run['backend']} {part.get('kind', 'menu step')}",
                    "p99": {"target": f"<= {CRM_P99_MS:g} ms", "value": f"{r.p99_ms:.1f} ms",
                            "pass": r.p99_ms <= CRM_P99_MS},
                    "errors": {"target": "0", "value": str(r.errors), "pass": r.errors == 0},
                })
            continue
        r = run["wrk"]
        share, p99 = TARGETS[run["backend"]]
        ratio = r.rps / bare_rps
        out.append({
            "backend": run["backend"],
            "throughput": {"target": f">= {share:.0%} of bare", "value": f"{ratio:.1%}",
                           "pass": ratio >= share},
            "p99": {"target": f"<= {p99:g} ms", "value": f"{r.p99_ms:.1f} ms",
                    "pass": r.p99_ms <= p99},
            "errors": {"target": "0", "value": str(r.errors), "pass": r.errors == 0},
        })
    return out


def verdict_lines(verdict: list[dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(what, check, its target/value/pass) for every check of every verdict."""
    for v in verdict:
        for key in ("throughput", "p99", "errors"):
            if key in v:
                yield v.get("label", v["backend"]), key, v[key]


def _pf(ok: bool) -> str:
    return "PASS" if ok else "MISSED"


def _pct(x: float | None) -> str:
    return f"{x:.0%}" if x is not None else "–"


def _pct1(x: float | None) -> str:
    return f"{x:.1%}" if x is not None else "–"


def rows(bares: list[dict[str, Any]],
         runs: list[dict[str, Any]]) -> list[tuple[str, WrkResult, dict[str, Any]]]:
    """Table rows: the bare runs, then per backend its call start (issue 3) and menu step."""
    parts = [*bares]
    for run in runs:
        if "call_start" in run:
            parts.append(run["call_start"])
        parts.append(run)
    return [(m["name"], m["wrk"], m) for m in parts]


def noise_notes(bares: list[dict[str, Any]], runs: list[dict[str, Any]]) -> list[str]:
    notes = []
    b0, b1 = (m["wrk"].rps for m in bares)
    drift = abs(b1 - b0) / max(b0, b1)
    if drift > 0.10:
        notes.append(f"the two bare runs differ by {drift:.0%}: the machine was not steady")
    return notes + h.noise_notes((m["name"], m["other_cpu"]) for _n, _r, m in rows(bares, runs))


def identification_flags(runs: list[dict[str, Any]]) -> list[str]:
    """Call starts whose identification went wrong or whose known share is off."""
    flags = []
    for run in runs:
        cs = run.get("call_start")
        if cs is None:
            continue
        if cs["db_check"].startswith("MISMATCH"):
            flags.append(f"{run['backend']} call start: {cs['db_check']}")
        if "identification_flag" in cs:
            flags.append(cs["identification_flag"])
    return flags


def crm_section(customers: int) -> str:
    return CRM_SECTION.format(customers=f"{customers:,}")


def markdown(info: dict[str, Any], opt: Options, bares: list[dict[str, Any]],
             runs: list[dict[str, Any]], verdict: list[dict[str, Any]]) -> str:
    bare_rps = baseline(bares)
    crm = opt.customers
    load = (
        f"wrk, {THREADS} thread, {CONNECTIONS} connections, {opt.duration:g} s timed "
        "after a warm-up; each server is one process"
        + (f" pinned to CPU {opt.server_cpu}, wrk pinned to CPU {opt.wrk_cpu}"
           if opt.server_cpu is not None else "")
        + " (PostgreSQL not pinned).")
    if crm is None:
        lines = [
            SECTION,
            "",
            f"Run {info['date']} with `python bench/webhooks.py` (git {info['git']}).",
        ]
    else:
        lines = [
            crm_section(crm.count),
            "",
            f"Run {info['date']} with `python bench/webhooks.py --customers {crm.count}` "
            f"(git {info['git']}).",
        ]
    lines += [
        "",
        f"Machine: {info['nproc']} CPU ({info['cpu']}), {info['ram_gib']} GiB RAM, "
        f"Python {info['python']}, Linux {info['kernel']}; uvicorn {info['uvicorn']}, "
        f"FastAPI {info['fastapi']}, Starlette {info['starlette']}, "
        f"SQLAlchemy {info['sqlalchemy']}, {info['wrk']}.",
        "",
    ]
    if crm is None:
        lines += [
            "Load: " + load + " Menu step = a distinct signed"
            " `POST /twilio/gather?s=N` (Digits 1 or 2) for a call created beforehand with a"
            " signed `POST /twilio/voice`, on a benchmark-only menu (one `menu` node looping to"
            " itself directly or through a `message` node); SQLite file in a temp dir,"
            " PostgreSQL database `ivr_bench_<pid>` created and dropped,"
            f" `IVR_DB_POOL_SIZE={PG_POOL}`."
            " Bare = Starlette endpoint reading the body and answering a fixed TwiML document,"
            " same uvicorn settings, same requests; run before and after, the ratio uses their"
            " mean (a run disturbed by other work on the machine left out). Errors = non-2xx"
            " + 2xx without `<Gather` + socket errors.",
        ]
    else:
        lines += [
            f"Customer store: {crm.count:,} synthetic `{CRM_SOURCE}` customers"
            " (`crm_sync.demo.iter_customer_rows`, one CSV for the run) loaded into each fresh,"
            " migrated database before its server starts, through the real importer"
            f" (`crm_sync.importer.import_file`, default mapping and identity rules, region"
            f" {CRM_REGION}, batches of {CRM_BATCH:,}); PostgreSQL then gets a"
            " `VACUUM (ANALYZE)` (what autovacuum does soon after an import). Load time, for"
            " information (not a target):",
            "",
            "| Backend | records | import s | rows/s | customers | phones | rejected "
            "| VACUUM (ANALYZE) s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for run in runs:
            ld = run["load"]
            vac = ld["vacuum_analyze_seconds"]
            lines.append(
                f"| {run['backend']} | {ld['records']:,} | {ld['seconds']:.1f} "
                f"| {ld['rows_per_s']:,.0f} | {ld['customers_stored']:,} "
                f"| {ld['phones_stored']:,} | {ld['rejected']:,} "
                f"| {f'{vac:.1f}' if vac is not None else '–'} |")
        lines += [
            "",
            "Load: " + load + " Call start = a distinct signed `POST /twilio/voice`"
            " (a new CallSid each, sent once) whose caller (`From`, E.164 as Twilio sends it)"
            f" is {KNOWN_SHARE:.0%} a loaded customer's mobile drawn at random and"
            f" {1 - KNOWN_SHARE:.0%} an unknown +97259 number: the server identifies the caller"
            " (`crm_sync.lookup.identify_caller`: phone index lookup + the customer's"
            " attributes), starts the call on the menu's start node and stores it. Menu step ="
            " a distinct signed `POST /twilio/gather?s=N` (Digits 1 or 2) for a call created"
            " beforehand the same way, on a benchmark-only menu (one `menu` node looping to"
            " itself directly or through a `message` node), as in issue 2. SQLite file in a"
            " temp dir, PostgreSQL database `ivr_bench_<pid>` created and dropped,"
            f" `IVR_DB_POOL_SIZE={PG_POOL}`. Bare = Starlette endpoint reading the body and"
            " answering a fixed TwiML document, same uvicorn settings; run before and after,"
            " the ratio uses their mean. Errors = non-2xx + 2xx without `<Gather` + socket"
            " errors.",
        ]
    lines += [
        "",
        "| Server | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | vs bare "
        "| server CPU | server µs/req (kernel) | PostgreSQL CPU | wrk CPU | other CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r, m in rows(bares, runs):
        lines.append(
            f"| {name} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p90_ms:.2f} | {r.p99_ms:.2f} "
            f"| {r.max_ms:.1f} | {r.errors} | {r.rps / bare_rps:.1%} | {_pct(m['server_cpu'])}"
            f" | {m['server_cpu_us_per_request']:.0f} ({_pct(m['server_kernel_share'])})"
            f" | {_pct(m['postgres_cpu'])} | {_pct(r.wrk_cpu)} | {_pct(m['other_cpu'])} |")
    lines += ["", "CPU columns: share of one core during the timed run; \"other\" is the rest"
              " of the machine (noise from unrelated work). Server µs/req = server CPU time per"
              " answered request, with the share spent in the kernel.", "",
              "| Target | value | result |", "|---|---:|---|"]
    for what, key, t in verdict_lines(verdict):
        lines.append(f"| {what} {key} {t['target']} | {t['value']} | {_pf(t['pass'])} |")
    lines.append("")
    for run in runs:
        if "call_start" in run:
            cs = run["call_start"]
            lines.append(f"- {run['backend']} call start: database check {cs['db_check']};"
                         f" pool {cs['pool_calls']:,} calls; warm-up"
                         f" {run['warmup_create_rps']:,.0f} call starts/s.")
        lines.append(f"- {run['backend']}{' menu step' if crm else ''}: database check "
                     f"{run['db_check']}; pool "
                     f"{run['pool_calls']:,} calls x {opt.steps} steps; warm-up "
                     f"{run['warmup_rps']:,.0f} req/s; call creation (`/twilio/voice`) "
                     f"{run['create_rps']:,.0f} req/s.")
    for flag in identification_flags(runs):
        lines.append(f"- **Identification:** {flag}.")
    for note in noise_notes(bares, runs):
        lines.append(f"- **Noise:** {note}.")
    lines.append("")
    return "\n".join(lines)


def print_table(bares: list[dict[str, Any]], runs: list[dict[str, Any]],
                verdict: list[dict[str, Any]]) -> None:
    bare_rps = baseline(bares)
    print()
    print(f"{'server':<25}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'errors':>7}"
          f"{'vs bare':>8}{'server':>8}{'µs/req':>8}{'pg':>6}{'wrk':>6}{'other':>6}"
          "  (CPU: 1 core = 100%)")
    for name, r, m in rows(bares, runs):
        print(f"{name:<25}{r.rps:>8,.0f}{r.p50_ms:>8.2f}{r.p99_ms:>8.2f}{r.max_ms:>8.1f}"
              f"{r.errors:>7}{r.rps / bare_rps:>8.1%}{_pct(m['server_cpu']):>8}"
              f"{m['server_cpu_us_per_request']:>8.0f}"
              f"{_pct(m['postgres_cpu']):>6}{_pct(r.wrk_cpu):>6}{_pct(m['other_cpu']):>6}")
    for run in runs:
        if "load" in run:
            ld = run["load"]
            print(f"  {run['backend']} customer load: {ld['records']:,} records in "
                  f"{ld['seconds']:.1f} s ({ld['rows_per_s']:,.0f} rows/s), "
                  f"{ld['customers_stored']:,} customers, {ld['rejected']} rejected")
        if "call_start" in run:
            print(f"  {run['backend']} call start database check: "
                  f"{run['call_start']['db_check']}")
        print(f"  {run['backend']} database check: {run['db_check']}")
        if run["server_log"]:
            print(f"  {run['backend']} server log warnings: {run['server_log']}")
    for flag in identification_flags(runs):
        print(f"  WARNING: {flag}")
    for note in noise_notes(bares, runs):
        print(f"  WARNING: {note}")
    print()
    width = max([11, *(len(what) for what, _k, _t in verdict_lines(verdict))])
    for what, key, t in verdict_lines(verdict):
        print(f"{_pf(t['pass']):<7} {what:<{width}} {key:<10} {t['value']:>10}  "
              f"(target {t['target']})")


def print_profile(run: dict[str, Any]) -> None:
    prof = run.get("profile")
    what = run["name"] if "kind" in run else run["backend"]
    if not prof or not prof.get("samples"):
        print(f"\npy-spy, {what}: no samples")
        return
    print(f"\npy-spy --gil, {what}: the GIL was held {prof['gil_share']:.0%} of the"
          f" time; where the GIL-holding time goes ({prof['samples']} samples):")
    for name, pct in prof["categories_pct"]:
        print(f"  {pct:5.1f}%  {name}")
    print("  top functions by self time:")
    for name, pct in prof["self_pct"][:12]:
        print(f"  {pct:5.1f}%  {name}")


def to_json(obj: Any) -> Any:
    if isinstance(obj, WrkResult):
        return dict(obj.__dict__)
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    return obj


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark the Twilio menu step webhook.")
    parser.add_argument("--duration", type=float, default=15.0, help="timed seconds per run")
    parser.add_argument("--steps", type=int, default=4, help="menu steps per call")
    parser.add_argument("--warmup-calls", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--customers", type=int, default=0, metavar="N",
                        help="issue 3: load N customers into each database (importer) and "
                             "time the call start (caller identification) too; results go "
                             "to their own section")
    parser.add_argument("--pg-admin-url", default=os.environ.get("IVR_BENCH_PG_URL",
                                                                 h.PG_ADMIN_URL),
                        help="creates and drops the database ivr_bench_<pid> there")
    parser.add_argument("--no-pin", action="store_true", help="do not pin CPUs (taskset)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy record --gil the server during the timed runs "
                             "(perturbs the figures; results.md is then left alone)")
    h.add_results_options(parser)
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if unknown := set(backends) - set(TARGETS):
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    if args.warmup_calls < 2 * CONNECTIONS:
        parser.error(f"--warmup-calls must be at least {2 * CONNECTIONS}")
    if not 0 <= args.customers <= MAX_STREAM_ROWS:
        parser.error(f"--customers must be within 0..{MAX_STREAM_ROWS:,}")

    with h.exclusive("webhooks"):
        h.ensure_wrk()
        pin = h.can_pin(args.no_pin)
        info = h.machine_info()
        print(f"{info['date']}: {info['nproc']} CPU {info['cpu']}, {info['ram_gib']} GiB, "
              f"Python {info['python']}", flush=True)
        with tempfile.TemporaryDirectory(prefix="ivr-bench-") as tmp:
            work = Path(tmp)
            opt = Options(args.duration, args.steps, args.warmup_calls,
                          0 if pin else None, 1 if pin else None, args.profile, work)
            h.write_menu(work, MENU_YAML)
            if args.customers:
                print(f"writing {args.customers:,} customers to a CSV ...", flush=True)
                opt.customers = h.write_customers(args.customers, work)
                print(f"  {opt.customers.write_seconds:.1f} s", flush=True)
            bares = []
            print("bare Starlette baseline ...", flush=True)
            bares.append(bare_run(opt, "before"))
            print(f"  {bares[0]['wrk'].rps:,.0f} req/s", flush=True)
            runs = []
            for backend in backends:
                print(f"ivr serve on {backend} ...", flush=True)
                run = ivr_run(opt, backend, args.pg_admin_url)
                print(f"  {run['wrk'].rps:,.0f} req/s"
                      + (" (menu step)" if opt.customers else ""), flush=True)
                runs.append(run)
            print("bare Starlette baseline again ...", flush=True)
            bares.append(bare_run(opt, "after"))
            print(f"  {bares[1]['wrk'].rps:,.0f} req/s", flush=True)
        bare_rps = baseline(bares)
        verdict = verdicts(runs, bare_rps, crm=opt.customers is not None)
        print_table(bares, runs, verdict)
        if opt.profile:
            for run in runs:
                if "call_start" in run:
                    print_profile(run["call_start"])
                print_profile(run)
        payload = to_json({"machine": info, "options": {
            "duration": opt.duration, "steps": opt.steps, "warmup_calls": opt.warmup_calls,
            "connections": CONNECTIONS, "threads": THREADS, "server_cpu": opt.server_cpu,
            "wrk_cpu": opt.wrk_cpu, "profile": opt.profile, "customers": args.customers},
            "bare": bares, "bare_rps": bare_rps, "runs": runs, "verdict": verdict,
            "noise": noise_notes(bares, runs), "identification": identification_flags(runs)})
        raw = h.write_raw("webhooks", payload, indent=2)
        if opt.profile:
            print(f"\n--profile: results.md left alone; raw JSON and py-spy output in {OUT}")
        else:
            h.update_results(markdown(info, opt, bares, runs, verdict), args.out)
            print(f"\nwrote {args.out} and {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(h.run(main))
