"""Benchmark: 1,000 agents' consoles connected (issue 18 item 3) — screen-pop latency at
10 calls/s with every agent's ``GET /agent/events`` stream open, spread across two
``ivr serve`` processes, and the memory each connected console costs a process.

Not a test. The flow and the measurement are bench/screenpop.py's (``screenpop.measure``:
read its docstring for what a call is and what the latency is), with:

* 1,000 agents (``--agents``), each signed in with its console stream open and available;
* PostgreSQL: two ``ivr serve`` processes on one database; agent k's console is on process
  k % 2 (500 each) and call i's webhooks all go to process i % 2 (its wrap-up too), so half
  the pops are written by the process holding the console and half cross to the other one
  (``NOTIFY`` → its ``LISTEN`` connection, one per process); SQLite: one process, all 1,000
  consoles (``--backends`` to leave it out);
* the streams read by ``--listeners`` (2) asyncio httpx processes, 500 streams each (the
  load generator; its CPU is reported per process, with the driver's);
* the bare baseline (bench/bare_sse.py: HTTP request → SSE event with no IVR code) with the
  same 1,000 streams, the same listeners and driver, before the IVR runs and after them;
* memory: each server's ``VmRSS`` (/proc/PID/status) before the consoles connect and 2 s
  after the last one opened; per console = the difference over the consoles that process
  holds. Also its open descriptors then, and its soft limit on open files;
* the servers start with a soft limit on open files of ``--server-nofile`` (1,024, a common
  default; the hard limit is this machine's): ``ivr serve`` raises its own to the hard limit
  (``ivr.core.server.raise_open_files_limit``), as do the bare server and the listeners, so
  a process holding 1,000 streams is not refused at descriptor 1,024;
* the agents' passwords hashed at a cheap scrypt cost (``harness.create_agents``): 1,000
  sign-ins at the product's cost would take minutes of setup, and sign-in is not measured.

Nothing is pinned by default: bench/screenpop.py pins the servers to CPU 0 and its clients to
CPU 1, which leaves the two PostgreSQL processes one core between them — at 1,000 consoles
and 10 calls/s they needed 0.7–0.9 of it, and any other work landing there stalled them
(``--pin`` does it all the same). The machine's load average (1, 5, 15 min) is recorded at
the start and end of the whole run, and the 1-minute one before and after each timed phase;
other work's CPU is sampled every second (``harness.NoiseSampler``), and the latency is
given again for the calls made in seconds when other work used less than a quarter of a
core ("quiet seconds").

    .venv/bin/python bench/consoles.py                          # the figures in results.md
    .venv/bin/python bench/consoles.py --backends postgresql --calls 300   # quicker
    .venv/bin/python bench/consoles.py --out /tmp/r.md          # results elsewhere
    PATH=.venv/bin:$PATH .venv/bin/python bench/consoles.py --profile   # + py-spy on the
                                                                # servers (results left alone)

Writes the section "## Consoles: 1,000 agents connected (issue 18 item 3)" of
bench/results.md (other sections kept) and raw JSON plus server logs to bench/out/.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import harness as h
import screenpop as sp  # bench/screenpop.py: the flow, the listener, the driver, the table

SECTION = "## Consoles: 1,000 agents connected (issue 18 item 3)"
SCRYPT_N = 16  # the bench agents' password hashes (the product's is 16,384)
LOADED = 2.5  # a 1-minute load average above this (2 cores): figures taken under load
QUIET = 0.25  # other work's share of a core under which a second counts as quiet
BUSY_LISTENER = 0.7  # a listener process above this share of a core may be the bottleneck


def _mib(kib: float) -> str:
    return f"{kib / 1024:,.1f}"


def memory_table(runs: list[dict[str, Any]]) -> list[str]:
    """A row per process of each distinct set of servers (a backend's runs share theirs)."""
    lines = ["| Run | process | consoles | RSS before MiB | with consoles MiB | per console KiB "
             "| after the calls MiB | descriptors with consoles | open files soft limit "
             "| CPU, consoles idle |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    seen: set[str] = set()
    for r in runs:
        mem = r.get("memory")
        label = r["name"].rsplit(",", 1)[0]
        if not mem or label in seen:
            continue
        seen.add(label)
        for proc, before in mem["before"].items():
            now, end = mem["connected"][proc], mem["end"][proc]
            per = mem["kib_per_console"].get(proc)
            idle = mem.get("idle_cpu", {}).get(proc)
            lines.append(
                f"| {label} | {proc} | {mem['consoles'].get(proc, 0):,} "
                f"| {_mib(before['rss_kib'])} | {_mib(now['rss_kib'])} "
                f"| {f'{per:.1f}' if per is not None else '–'} | {_mib(end['rss_kib'])} "
                f"| {now['fds']:,} | {now['nofile_soft']:,} "
                f"| {f'{idle:.1%}' if idle is not None else '–'} |")
        for k, li in enumerate(mem["listeners"]):
            lines.append(f"| {label} | listener {k + 1} (client) | – | – "
                         f"| {_mib(li['rss_kib'])} | – | – | {li['fds']:,} "
                         f"| {li['nofile_soft']:,} | – |")
    return lines


def figures_table(runs: list[dict[str, Any]]) -> list[str]:
    """The headline: pop p50 / p95 / p99 of each run, and the server memory per console."""
    lines = ["| Run | pop p50 ms | p95 | p99 | target p99 < 100 ms | memory per console KiB "
             "(each server process) |", "|---|---:|---:|---:|---|---|"]
    for r in runs:
        p = r["pop_ms"]
        per = (r.get("memory") or {}).get("kib_per_console") or {}
        target = ("–" if r["backend"] == "bare" else
                  "PASS" if all(sp.passed(r).values()) else "MISSED")
        lines.append(f"| {r['name']} | {sp._ms(p['p50'])} | {sp._ms(p.get('p95'))} "
                     f"| {sp._ms(p['p99'])} | {target} "
                     f"| {', '.join(f'{v:.1f}' for v in per.values()) or '–'} |")
    return lines


def quiet_table(runs: list[dict[str, Any]]) -> list[str]:
    """The pop latency of the calls made in quiet seconds (other work under ``QUIET`` of a
    core) and in the others."""
    lines = [f"| Run | quiet seconds (other < {QUIET:.0%}): pops, p50 / p99 ms "
             "| busy seconds: pops, p50 / p99 ms |", "|---|---:|---:|"]
    for r in runs:
        pairs = list(zip(r["latencies_ms"], r.get("other_cpu_by_call") or [], strict=False))
        quiet = [ms for ms, other in pairs if other is not None and other < QUIET]
        busy = [ms for ms, other in pairs if other is None or other >= QUIET]
        cells = []
        for part in (quiet, busy):
            s = sp.summary(part)
            cells.append(f"{len(part):,}, {sp._ms(s['p50'])} / {sp._ms(s['p99'])}")
        lines.append(f"| {r['name']} | {cells[0]} | {cells[1]} |")
    return lines


def client_table(runs: list[dict[str, Any]]) -> list[str]:
    lines = ["| Run | listener processes, CPU each | driver CPU | client total |",
             "|---|---|---:|---:|"]
    for r in runs:
        c = r["cpu"]
        each = " + ".join(f"{x:.0%}" for x in c["listener_cpu_each"])
        lines.append(f"| {r['name']} | {each} | {c['driver_cpu']:.0%} "
                     f"| {c['listener_cpu'] + c['driver_cpu']:.0%} |")
    return lines


def busy_listeners(runs: list[dict[str, Any]]) -> list[str]:
    return [f"{r['name']}: a listener process used {max(r['cpu']['listener_cpu_each']):.0%} of"
            " a core" for r in runs
            if max(r["cpu"]["listener_cpu_each"], default=0.0) > BUSY_LISTENER]


def loaded(runs: list[dict[str, Any]]) -> list[str]:
    return [r["name"] for r in runs
            if max(r["cpu"]["loadavg_before"], r["cpu"]["loadavg_after"]) > LOADED]


def markdown(info: dict[str, Any], opt: sp.Options, command: str,
             load: tuple[tuple[float, ...], tuple[float, ...]], server_nofile: int,
             before: list[dict[str, Any]], runs: list[dict[str, Any]],
             after: list[dict[str, Any]]) -> str:
    every = [*before, *runs, *after]
    start, end = (", ".join(f"{x:.2f}" for x in triple) for triple in load)
    under = loaded(every)
    lines = [
        SECTION, "",
        f"Run {info['date']} with `{command}` (git {info['git']}).", "",
        f"Machine: {info['nproc']} CPU ({info['cpu']}), {info['ram_gib']} GiB RAM, "
        f"Python {info['python']}, Linux {info['kernel']}; uvicorn {info['uvicorn']}, "
        f"Starlette {info['starlette']}, SQLAlchemy {info['sqlalchemy']}.", "",
        f"Load average (1, 5, 15 min): {start} at the start of the run, {end} at its end; per"
        " timed phase in the table's last column (1 min, before → after). "
        + (f"**Taken under load** (above {LOADED:g} during: {'; '.join(under)})."
           if under else f"Never above {LOADED:g} during a timed phase."), "",
        "What is measured: the screen-pop latency of bench/screenpop.py (the connect webhook"
        " sent → that call's `event: screenpop` line on the stream of the agent its `<Dial>`"
        f" rings; see \"Screen-pop latency (issue 4)\"), now with {opt.agents:,} consoles"
        " connected: on PostgreSQL two `ivr serve` processes, agent k's console on process"
        " k % 2 and call i's webhooks (and wrap-up) on process i % 2, so half the pops cross"
        " processes (`NOTIFY` → the other process's one `LISTEN` connection) and half are"
        " woken in the process that wrote them; on SQLite one process with every console."
        f" {opt.warmup_calls} warm-up calls, then {opt.calls:,} timed calls at each rate"
        f" ({', '.join(f'{r:g}' for r in opt.rates)} calls/s), each a whole call (voice,"
        " wait rounds, connect, agent leg, hang-up, wrap-up). The streams are read by"
        f" {opt.listeners} listener processes ({-(-opt.agents // opt.listeners):,} streams"
        " each, asyncio + httpx), the calls driven by 32 threads of this process; "
        + (f"servers pinned to CPU {opt.server_cpu}, listeners and driver to CPU"
           f" {opt.client_cpu}, PostgreSQL not pinned." if opt.server_cpu is not None else
           "nothing pinned (two server processes on one core would have one core between"
           " them).")
        + f" {opt.customers:,} customers loaded;"
        f" `IVR_DB_POOL_SIZE={opt.pg_pool}` per PostgreSQL process;"
        " `IVR_ROUTE_EVERY_SECONDS=1`. Baseline, in the same run: the same listeners and"
        f" driver against bench/bare_sse.py holding the same {opt.agents:,} streams (before"
        " the IVR runs with a synthetic pop-sized payload, after them with a captured pop).",
        "",
        *figures_table(every), "",
        *sp.table(every), "",
        "CPU columns: share of one core during the timed calls (server: each process; client:"
        " listeners + driver); \"other\" is the rest of the machine. Pop − answer: the pop's"
        " arrival minus the connect answer's at the driver.", "",
        "The same pops split by what other work on the machine used in the second each call"
        " was made (sampled every second):", "",
        *quiet_table(every), "",
        "**Memory per connected console** (VmRSS before the consoles connected, and 2 s after"
        " the last of them opened; per console = the difference over the consoles the"
        " process holds). Last column: the server's CPU (share of a core) over"
        f" {opt.idle_seconds:g} s with every console connected, every agent available and no"
        " call — what holding the consoles costs (their 15 s heartbeats, the routing sweep"
        " every second):", "",
        *memory_table(every), "",
        f"Open files: the servers were started with a soft limit of {server_nofile:,} (a"
        " common default); the column shows the limit each process ran with. A process"
        " holding its consoles needs a descriptor each (the column before it).", "",
        "**The load generator's CPU** (share of one core during the timed calls"
        + (f"; the listeners and the driver share CPU {opt.client_cpu}):"
           if opt.client_cpu is not None else "):"), "",
        *client_table(every), "",
        *sp.targets(runs), "",
        *sp.notes(every),
    ]
    for note in busy_listeners(every):
        lines.append(f"- **Client:** {note}: the listener may be what limits the figures.")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Screen-pop latency and memory with 1,000 agents' consoles connected.")
    sp.add_options(parser, customers=100_000, rates="10", agents=1000,
                   backends="postgresql,sqlite")
    parser.add_argument("--listeners", type=int, default=2,
                        help="listener processes the agents' streams are split over")
    parser.add_argument("--idle-seconds", type=float, default=32.0,
                        help="server CPU measured this long with the consoles connected and"
                             " no call (two of the consoles' 15 s heartbeats)")
    parser.add_argument("--server-nofile", type=int, default=1024,
                        help="the soft limit on open files the servers are started with")
    parser.set_defaults(no_pin=True)
    parser.add_argument("--pin", dest="no_pin", action="store_false",
                        help="servers on CPU 0, listeners and driver on CPU 1 (as"
                             " bench/screenpop.py); default: nothing pinned")
    args = parser.parse_args()
    backends, rates = sp.checked_options(parser, args)
    if args.listeners < 1:
        parser.error("--listeners ≥ 1")

    # The servers (started by this process) inherit this soft limit; the listeners raise
    # theirs; this process (the driver) holds about a hundred connections.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    server_nofile = args.server_nofile if hard == resource.RLIM_INFINITY else min(
        args.server_nofile, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (server_nofile, hard))
    command = shlex.join(["python", "bench/consoles.py", *sys.argv[1:]])
    pin = h.can_pin(args.no_pin)
    load_start = os.getloadavg()
    with h.exclusive("consoles"), tempfile.TemporaryDirectory(prefix="ivr-consoles-") as tmp:
        opt = sp.Options(args.customers, args.calls, args.warmup_calls, rates,
                         args.bare_calls, args.agents, args.max_seconds, 0 if pin else None,
                         1 if pin else None, args.profile, Path(tmp), args.pg_admin_url,
                         args.pg_pool, spread=True, listeners=args.listeners,
                         idle_seconds=args.idle_seconds)
        info, loads, before, runs, after = sp.measure(opt, backends, SCRYPT_N)
    load_end = os.getloadavg()
    every = [*before, *runs, *after]
    sp.print_summary(every)
    for r in runs:
        sp.print_profiles(r)
    print()
    for line in [*figures_table(every), "", *quiet_table(every), "", *memory_table(every), "",
                 *client_table(every)]:
        print(line)
    raw = h.write_raw("consoles", {
        "machine": info, "command": command, "load": [load_start, load_end],
        "options": {k: str(v) for k, v in opt.__dict__.items()}, "loads": loads,
        "bare": [*before, *after], "runs": runs})
    if args.profile:
        print(f"\n--profile: {args.out} left alone; raw JSON and py-spy output in {h.OUT}")
    else:
        h.update_results(markdown(info, opt, command, (load_start, load_end), server_nofile,
                                  before, runs, after), args.out)
        print(f"\nwrote {args.out} and {raw}")
    ok = all(all(sp.passed(r).values()) for r in runs)
    print("targets: " + ("all met" if ok else "MISSED (see the table)"))
    return 0


if __name__ == "__main__":
    sys.exit(h.run(main))
