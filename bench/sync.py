"""Benchmark: CRM pull sync over HTTP, and outbox delivery.

Not a test. Servers run in their own processes on 127.0.0.1 (uvicorn):

1. Pull. The stand-in CRM (``tests/crm_standin.py``) with ``--records`` customers (the demo
   generator's billing rows, default 100,000), listed in pages of ``--page`` (500), cursor
   paging.
   a. Baseline, same run: a bare loop with one ``httpx.Client`` fetching the same pages
      (following the next cursors) and decoding the JSON, nothing else.
   b. ``crm_sync.sync.sync_endpoint`` of the same listing into a freshly migrated store, per
      backend: records/s, and its wall time split into waiting on HTTP (inside httpx:
      network and the server's own work) and our code (JSON decoding, mapping, identity
      resolution, database).
2. Outbox. ``--events`` events (default 20,000 over 2,000 customers) queued with
   ``outbox.emit_many`` for one subscriber (a bare ASGI app answering 204), delivered by
   ``outbox.deliver`` in 1 worker process, and in 2 on PostgreSQL (SQLite runs one):
   events/s. Baseline: a bare loop POSTing the same bodies to the same subscriber.

    python bench/sync.py                        # both backends
    python bench/sync.py --records 20000 --backends sqlite --no-write
    python bench/sync.py --emit-cost            # us per outbox.emit, no subscriber / one

Writes the section "## CRM sync over HTTP (issue 7)" of bench/results.md (other sections
kept) and raw JSON to bench/out/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import func, insert, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import harness as h  # noqa: E402  (bench/harness.py: servers, databases, results)

from crm_sync import demo  # noqa: E402
from crm_sync.identity import Rules  # noqa: E402
from crm_sync.mapping import default_mapping  # noqa: E402
from crm_sync.models import customers  # noqa: E402
from crm_sync.outbox import DeliveryPolicy, deliver, emit_many, register  # noqa: E402
from crm_sync.sources import SourceConfig, Subscriber  # noqa: E402
from crm_sync.sync import Fetcher, sync_endpoint  # noqa: E402
from crm_sync.sync_models import outbox  # noqa: E402
from ivr.core.db import make_engine  # noqa: E402
from ivr.core.migrate import upgrade  # noqa: E402
from tests.crm_standin import StandinCRM  # noqa: E402

OUT = h.OUT
SECTION = "## CRM sync over HTTP (issue 7)"
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
TOKEN = "bench-token"
SECRET = "bench-secret"
os.environ.setdefault("IVR_BENCH_CRM_TOKEN", TOKEN)
os.environ.setdefault("IVR_BENCH_HOOK_SECRET", SECRET)


# --- servers (run as child processes of this script) --------------------------------------------

def serve_crm(port: int, records: int) -> None:
    crm = StandinCRM(token=TOKEN)
    for row in demo.iter_customer_rows(records, now=NOW, source="billing"):
        crm.put("customers", row)
    crm._ordered("customers")  # sort once before the clock starts
    uvicorn.run(crm.asgi_app(), host="127.0.0.1", port=port, log_level="warning",
                access_log=False)


def serve_hook(port: int) -> None:
    received = {"events": 0}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        if scope["method"] == "POST":
            received["events"] += 1
            status, body = 204, b""
        else:
            status, body = 200, json.dumps(received).encode()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def server(name: str, args: list[str], work: Path) -> h.Server:
    """This script with ``args`` (``h.PORT``: its port), ready when the port accepts."""
    return h.python_server(name, Path(__file__), args, work, f"sync-{name}.log",
                           health=None, timeout=120)


# --- databases ----------------------------------------------------------------------------------

class Databases:
    def __init__(self, pg_admin: str) -> None:
        self.pg_admin = pg_admin
        self.created: list[str] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))

    def fresh(self, backend: str, label: str) -> str:
        if backend == "sqlite":
            url = f"sqlite:///{self.tmp / f'{label}.db'}"
        else:
            name = f"bench_sync_{label}_{uuid.uuid4().hex[:6]}"
            url = h.create_pg_database(self.pg_admin, name)
            self.created.append(name)
        upgrade(url)
        return url

    def cleanup(self) -> None:
        for name in self.created:
            h.drop_pg_database(self.pg_admin, name)


# --- 1. pull ------------------------------------------------------------------------------------

def source(port: int, page: int) -> SourceConfig:
    return SourceConfig.model_validate({
        "source": "billing", "base_url": f"http://127.0.0.1:{port}",
        "auth": {"env": "IVR_BENCH_CRM_TOKEN"}, "timeout": 60,
        "endpoints": [{"path": "/api/customers", "paging": {"style": "cursor", "size": page},
                       "since": {"param": "updated_since", "field": "updated_at"}}]})


def bare_pull(port: int, page: int) -> dict[str, Any]:
    """The same pages, fetched and decoded; nothing else."""
    url = f"http://127.0.0.1:{port}/api/customers"
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    records = pages = 0
    cursor: str | None = None
    t0 = time.perf_counter()
    with httpx.Client(timeout=60) as client:
        while True:
            params: dict[str, Any] = {"limit": page}
            if cursor:
                params["cursor"] = cursor
            body = client.get(url, params=params, headers=headers).json()
            records += len(body["data"])
            pages += 1
            cursor = body.get("next")
            if not cursor:
                break
    seconds = time.perf_counter() - t0
    return {"records": records, "pages": pages, "seconds": seconds,
            "records_per_s": records / seconds}


def timed_pull(url: str, port: int, page: int) -> dict[str, Any]:
    engine = make_engine(url, 2)
    config = source(port, page)
    try:
        with httpx.Client() as client:
            fetcher = Fetcher(client, config, now=lambda: datetime.now(UTC))
            t0 = time.perf_counter()
            report = sync_endpoint(engine, config, config.endpoint("customers"),
                                   default_mapping("billing"), Rules(), "IL", fetcher)
            seconds = time.perf_counter() - t0
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM source_records")).scalar_one()
    finally:
        engine.dispose()
    c = report.report.counts
    http = report.http.seconds
    return {"records": report.report.records, "pages": report.pages, "seconds": seconds,
            "records_per_s": report.report.records / seconds, "http_seconds": http,
            "http_share": http / seconds, "our_share": 1 - http / seconds,
            "created": c.created, "merged": c.merged, "rejected": c.rejected,
            "stored": stored, "requests": report.http.requests}


# --- 2. outbox ----------------------------------------------------------------------------------

def subscriber(port: int) -> Subscriber:
    return Subscriber(name="bench", url=f"http://127.0.0.1:{port}/hook",
                      secret_env="IVR_BENCH_HOOK_SECRET", timeout=30)


def queue_events(url: str, port: int, events: int, per_customer: int) -> None:
    engine = make_engine(url, 2)
    n_customers = max(1, events // per_customer)
    with engine.begin() as conn:
        conn.execute(insert(customers), [
            {"id": n, "status": "active", "lineage": {}, "created_at": NOW, "updated_at": NOW}
            for n in range(1, n_customers + 1)])
        register(conn, [subscriber(port)], NOW)
        emit_many(conn, [(1 + n % n_customers, "interaction.updated",
                          {"source": "ivr", "external_id": f"CA{n:08d}", "n": n,
                           "ended_at": NOW, "queue": "billing"})
                         for n in range(events)], NOW)
    engine.dispose()


def deliver_worker(url: str, port: int, batch: int) -> None:
    """One worker process: deliver until nothing is left; prints its stats as JSON."""
    engine = make_engine(url, 2)
    subs = {"bench": subscriber(port)}
    policy = DeliveryPolicy(batch=batch, lease=600)
    delivered = claimed = 0
    http = 0.0
    t0 = time.perf_counter()
    idle = 0
    with httpx.Client() as client:
        while True:
            stats = deliver(engine, subs, client, lambda: datetime.now(UTC), policy)
            delivered += stats.delivered
            claimed += stats.claimed
            http += stats.http_seconds
            if stats.claimed:
                continue
            with engine.connect() as conn:
                left = conn.execute(select(func.count()).select_from(outbox)
                                    .where(outbox.c.status != "delivered")).scalar_one()
            if not left:
                break
            idle += 1
            time.sleep(0.05)  # the other worker holds the last claims
    engine.dispose()
    print(json.dumps({"delivered": delivered, "claimed": claimed, "http_seconds": http,
                      "idle_rounds": idle,
                      "seconds": time.perf_counter() - t0}), flush=True)


def timed_delivery(url: str, port: int, workers: int, batch: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, __file__, "--deliver-worker", url, str(port),
                               str(batch)], cwd=ROOT, stdout=subprocess.PIPE)
             for _ in range(workers)]
    outs = [json.loads(p.communicate()[0].decode().strip().splitlines()[-1]) for p in procs]
    engine = make_engine(url, 2)
    with engine.connect() as conn:
        left = conn.execute(select(func.count()).select_from(outbox)
                            .where(outbox.c.status != "delivered")).scalar_one()
        done = conn.execute(select(func.count()).select_from(outbox)
                            .where(outbox.c.status == "delivered")).scalar_one()
        # The last delivery moment: the wall time ends there, not at the idle rounds.
        first = conn.execute(select(func.min(outbox.c.delivered_at))).scalar_one()
        last = conn.execute(select(func.max(outbox.c.delivered_at))).scalar_one()
    engine.dispose()
    wall = time.perf_counter() - t0
    span = (last - first).total_seconds() if first and last else wall
    return {"workers": workers, "delivered": done, "left": left, "span_seconds": span,
            "events_per_s": done / span if span else 0.0,
            "per_worker": [o["delivered"] for o in outs],
            "http_share": sum(o["http_seconds"] for o in outs) / sum(o["seconds"] for o in outs)}


def bare_posts(port: int, events: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/hook"
    body = json.dumps({"id": str(uuid.uuid4()), "type": "interaction.updated",
                       "customer_id": 1, "occurred_at": "2026-11-23T08:00:00Z",
                       "origin": None, "data": {"n": 1, "queue": "billing"}}).encode()
    t0 = time.perf_counter()
    with httpx.Client() as client:
        for _ in range(events):
            client.post(url, content=body, headers={"Content-Type": "application/json"})
    seconds = time.perf_counter() - t0
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds}


def emit_cost(url: str, n: int = 3000) -> dict[str, float]:
    """Microseconds per ``outbox.emit`` inside one transaction (rolled back), best of 5 and
    median, with no subscriber registered and with one."""
    import statistics  # noqa: PLC0415

    from crm_sync.outbox import emit  # noqa: PLC0415

    engine = make_engine(url, 2)
    with engine.begin() as conn:
        conn.execute(insert(customers).values(id=1, status="active", lineage={},
                                              created_at=NOW, updated_at=NOW))

    def measure() -> tuple[float, float]:
        out = []
        for _ in range(5):
            with engine.connect() as conn:
                tx = conn.begin()
                t0 = time.perf_counter()
                for i in range(n):
                    emit(conn, customer_id=1, kind="interaction.created",
                         payload={"source": "ivr", "external_id": f"CA{i}",
                                  "started_at": NOW}, now=NOW)
                out.append((time.perf_counter() - t0) / n * 1e6)
                tx.rollback()
        return min(out), statistics.median(out)

    none = measure()
    with engine.begin() as conn:
        register(conn, [subscriber(1)], NOW)
    one = measure()
    engine.dispose()
    return {"none_best_us": none[0], "none_median_us": none[1], "one_best_us": one[0],
            "one_median_us": one[1]}


# --- report -------------------------------------------------------------------------------------

def markdown(result: dict[str, Any], argv: str) -> str:
    base = result["pull_baseline"]
    lines = [SECTION, "",
             f"Run {result['at']} UTC with `python bench/sync.py{argv}` (git {h.git_rev()}). "
             f"Machine: {h.machine_line()}. Servers are separate processes on 127.0.0.1 "
             "(uvicorn); the machine has 2 cores shared by the client, the server and the "
             f"database (1-minute load average {result['load_start']:.1f} at the start, "
             f"{result['load_end']:.1f} at the end: other work was running).", "",
             f"**Pull**: {base['records']:,} records, pages of {result['page']}, cursor "
             "paging.", "",
             "| run | records/s | vs bare | wall | waiting on HTTP | our code |",
             "|---|---:|---:|---:|---:|---:|",
             f"| bare fetch loop (baseline) | {base['records_per_s']:,.0f} | 100% | "
             f"{base['seconds']:.1f} s | 100% | 0% |"]
    for backend, r in result["pull"].items():
        lines.append(f"| sync into {backend} | {r['records_per_s']:,.0f} | "
                     f"{r['records_per_s'] / base['records_per_s']:.1%} | "
                     f"{r['seconds']:.1f} s | {r['http_share']:.1%} | {r['our_share']:.1%} |")
    lines += ["", "Each sync: " + "; ".join(
        f"{b}: {r['pages']} pages, {r['requests']} requests, {r['created']:,} created, "
        f"{r['merged']:,} merged, {r['rejected']:,} rejected, {r['stored']:,} source records"
        for b, r in result["pull"].items()) + ".", "",
        f"**Outbox**: {result['events']:,} events over {result['customers']:,} customers, "
        f"one subscriber, batches of {result['batch']}.", "",
        "| run | events/s | wall | waiting on HTTP |", "|---|---:|---:|---:|",
        f"| bare POST loop (baseline) | {result['post_baseline']['events_per_s']:,.0f} | "
        f"{result['post_baseline']['seconds']:.1f} s | 100% |"]
    for key, r in result["outbox"].items():
        lines.append(f"| {key} | {r['events_per_s']:,.0f} | {r['span_seconds']:.1f} s | "
                     f"{r['http_share']:.1%} |")
    lines += ["", "Outbox check: " + "; ".join(
        f"{k}: {r['delivered']:,} delivered, {r['left']} left, per worker {r['per_worker']}"
        for k, r in result["outbox"].items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-crm":
        serve_crm(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-hook":
        serve_hook(int(sys.argv[2]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--deliver-worker":
        deliver_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--page", type=int, default=500)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--per-customer", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-admin-url", default=os.environ.get(
        "IVR_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    h.add_results_options(parser, no_write=True)
    parser.add_argument("--emit-cost", action="store_true",
                        help="only measure outbox.emit (us per call) on each backend")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if args.emit_cost:
        dbs = Databases(args.pg_admin_url)
        try:
            for backend in backends:
                cost = emit_cost(dbs.fresh(backend, "emit"))
                print(f"{backend}: emit with no subscriber {cost['none_best_us']:.0f} us "
                      f"(median {cost['none_median_us']:.0f}), with one "
                      f"{cost['one_best_us']:.0f} us (median {cost['one_median_us']:.0f})")
        finally:
            if "postgresql" in backends:
                dbs.cleanup()
        return 0

    def log(msg: str) -> None:
        print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)

    result: dict[str, Any] = {"at": f"{datetime.now(UTC):%Y-%m-%d %H:%M}", "page": args.page,
                              "load_start": os.getloadavg()[0],
                              "events": args.events, "batch": args.batch,
                              "customers": max(1, args.events // args.per_customer),
                              "pull": {}, "outbox": {}}
    dbs = Databases(args.pg_admin_url)
    stack = contextlib.ExitStack()
    crm = server("crm", ["--serve-crm", h.PORT, str(args.records)], dbs.tmp)
    hook = server("hook", ["--serve-hook", h.PORT], dbs.tmp)
    crm_port, hook_port = crm.port, hook.port
    try:
        log(f"stand-in CRM with {args.records:,} records on :{crm_port}")
        stack.enter_context(crm)
        bare_pull(crm_port, args.page)  # warm-up (server caches, connection)
        result["pull_baseline"] = bare_pull(crm_port, args.page)
        log(f"bare fetch: {result['pull_baseline']['records_per_s']:,.0f} records/s")
        for backend in backends:
            url = dbs.fresh(backend, "pull")
            r = timed_pull(url, crm_port, args.page)
            result["pull"][backend] = r
            log(f"sync into {backend}: {r['records_per_s']:,.0f} records/s, http "
                f"{r['http_share']:.1%}")
        stack.enter_context(hook)
        bare_posts(hook_port, 500)  # warm-up
        result["post_baseline"] = bare_posts(hook_port, min(args.events, 5000))
        log(f"bare POSTs: {result['post_baseline']['events_per_s']:,.0f} events/s")
        for backend in backends:
            for workers in ((1, 2) if backend == "postgresql" else (1,)):
                url = dbs.fresh(backend, f"outbox{workers}")
                queue_events(url, hook_port, args.events, args.per_customer)
                r = timed_delivery(url, hook_port, workers, args.batch)
                key = f"{backend}, {workers} worker{'s' if workers > 1 else ''}"
                result["outbox"][key] = r
                log(f"outbox {key}: {r['events_per_s']:,.0f} events/s "
                    f"({r['delivered']:,} delivered, {r['left']} left)")
    finally:
        stack.close()
        if "postgresql" in backends:
            dbs.cleanup()
    result["load_end"] = os.getloadavg()[0]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "sync.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    section = markdown(result, " " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    h.publish(section, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
