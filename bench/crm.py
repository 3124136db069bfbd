"""Benchmark: the customer store's bulk import and the caller look-up.

Not a test. For each backend (SQLite file, PostgreSQL database created and dropped):

1. Baseline, same file, same run: the CSV loaded into a bare table of text columns with no
   index or constraint, the fastest way the database has (PostgreSQL ``COPY ... FROM STDIN
   (FORMAT csv)``; SQLite: ``csv`` module + one ``executemany`` in one transaction).
2. ``crm_sync.importer.import_file`` of the same file into a freshly migrated store, as
   ``ivr crm import`` runs it (the bulk path, worker processes chosen by the file's size):
   mapping, phone normalisation, identity resolution, golden records, phones, e-mails,
   source records with raw JSON, the run's progress: rows/s, the ratio to the baseline, and
   where the CPU went (this process, the worker processes, PostgreSQL's server processes,
   anything else on the machine) with the load average before and after.
3. A second import of the same file (every record unchanged): rows/s.
4. The serial path (``bulk=False``: every batch through ``apply_rows`` in this process, as
   before the bulk path) and the bulk path on the first ``--serial-rows`` rows, each into a
   fresh store: the before and after of the same run.
5. Caller look-up (``crm_sync.lookup.identify_caller``, what ``/twilio/voice`` runs: phone
   index, customer attributes, open incidents, last call) at the full size and in a small
   store (``--small`` customers): random known numbers, each in its own connection
   checkout; p50/p99/mean, and the ratio large/small (target: within 1.5x).

    python bench/crm.py                          # 1,000,000 and 10,000 customers, both DBs
    python bench/crm.py --rows 200000 --backends sqlite

Writes the section "## Customer store imports (issue 18 item 4)" of bench/results.md
(other sections kept) and raw JSON to bench/out/.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import harness as h  # noqa: E402  (bench/harness.py: databases, machine, results)

from crm_sync import demo  # noqa: E402
from crm_sync.identity import Rules  # noqa: E402
from crm_sync.importer import import_file  # noqa: E402
from crm_sync.lookup import identify_caller  # noqa: E402
from crm_sync.mapping import default_mapping  # noqa: E402
from crm_sync.phones import normalize  # noqa: E402
from ivr.core.db import make_engine  # noqa: E402
from ivr.core.migrate import upgrade  # noqa: E402

OUT = h.OUT
SECTION = "## Customer store imports (issue 18 item 4)"
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
TARGET_ROWS_PER_S = {"postgresql": 20_000, "sqlite": 10_000}
TARGET_LOOKUP_RATIO = 1.5


def customers_csv(rows: int) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"customers-{rows}.csv"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        demo.write_csv(tmp, demo.iter_customer_rows(rows, now=NOW, source="billing"),
                       demo.CUSTOMER_COLUMNS)
        tmp.rename(path)
    return path


def sample_numbers(path: Path, n: int, seed: int = 11) -> list[str]:
    """Known callers, as Twilio would send them (E.164)."""
    with path.open(newline="", encoding="utf-8") as fh:
        mobiles = [r["mobile"] for r in csv.DictReader(fh)]
    picked = random.Random(seed).sample(mobiles, min(n, len(mobiles)))
    return [e for e in (normalize(m, "IL").e164 for m in picked) if e]


# --- databases ----------------------------------------------------------------------------------

class Backend:
    def __init__(self, name: str, pg_admin: str) -> None:
        self.name = name
        self.pg_admin = pg_admin
        self.tmp = Path(tempfile.mkdtemp(prefix="ivr-crm-bench-"))
        self.created: list[str] = []

    def fresh(self, label: str) -> str:
        if self.name == "sqlite":
            return f"sqlite:///{self.tmp / (label + '.db')}"
        db = f"ivr_bench_{os.getpid()}_{label}_{uuid.uuid4().hex[:4]}"
        self.created.append(db)
        return h.create_pg_database(self.pg_admin, db)

    def cleanup(self) -> None:
        for db in self.created:
            h.drop_pg_database(self.pg_admin, db)
        for f in self.tmp.glob("*"):
            f.unlink()
        self.tmp.rmdir()


def baseline_load(url: str, path: Path) -> float:
    """Seconds to load the CSV into a bare table the database's fastest way."""
    columns = demo.CUSTOMER_COLUMNS
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE bare (" + ", ".join(f"{c} text" for c in columns)
                             + ")")
    started = time.perf_counter()
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            driver: Any = raw.driver_connection
            with driver.cursor() as cur, cur.copy(
                    "COPY bare FROM STDIN (FORMAT csv, HEADER true)") as copy, \
                    path.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    copy.write(chunk)
            driver.commit()
        finally:
            raw.close()
    else:
        with engine.begin() as conn, path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            next(reader)
            conn.exec_driver_sql(
                f"INSERT INTO bare VALUES ({', '.join('?' for _ in columns)})",  # noqa: S608
                [tuple(r) for r in reader])
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


class Descendants:
    """The CPU seconds of this process's descendants (the import's worker processes and
    the forkserver they are forked from), sampled while they run: they are no children
    of ours that ``getrusage`` would count, and they exit with the import."""

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Descendants:
        self._sample()
        self.base = dict(self.seen)  # already running (a forkserver of an earlier run)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def total(self) -> float:
        return sum(cpu - self.base.get(pid, 0.0) for pid, cpu in self.seen.items())

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def _sample(self) -> None:
        parents: dict[int, int] = {}
        cpu: dict[int, float] = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(proc.name)
            parents[pid] = int(fields[1])
            cpu[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        me = os.getpid()
        for pid, seconds in cpu.items():
            up, hops = parents.get(pid), 0
            while up not in (None, 0, 1, me) and hops < 8:
                up, hops = parents.get(up), hops + 1
            if up == me:
                self.seen[pid] = max(self.seen.get(pid, 0.0), seconds)


def timed_import(url: str, path: Path, *, bulk: bool = True,
                 migrate: bool = True) -> dict[str, Any]:
    """One import of the file, with where its CPU went."""
    if migrate:
        upgrade(url)
    engine = make_engine(url, 2)
    backends: set[int] = set()
    if engine.dialect.name == "postgresql":
        @event.listens_for(engine, "connect")
        def _backend(dbapi: Any, _record: Any) -> None:
            with dbapi.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                backends.add(cur.fetchone()[0])

    with Descendants() as workers, h.CpuMeter(
            [os.getpid()], postgres=engine.dialect.name == "postgresql") as meter:
        started = time.perf_counter()
        report = import_file(engine, path, default_mapping("billing"), Rules(), "IL",
                             lambda: NOW, resume=False, bulk=bulk)
        elapsed = time.perf_counter() - started
    engine.dispose()
    return {"s": elapsed, "counts": report.counts.as_dict(), "main_cpu": meter.server[0],
            "workers_cpu": workers.total(), "postgres_cpu": meter.postgres,
            "busy_cpu": meter.busy, "other_cpu": meter.other(workers.total()),
            "load_before": meter.loadavg_before[0], "load_after": meter.loadavg_after[0]}


def lookups(url: str, numbers: list[str]) -> dict[str, float]:
    engine: Engine = make_engine(url, 2)
    outcomes: dict[str, int] = {}
    for number in numbers[:200]:  # warm the caches and the connection pool
        with engine.connect() as conn:
            identify_caller(conn, number, "IL", NOW)
    samples = []
    for number in numbers:
        started = time.perf_counter()
        with engine.connect() as conn:
            match = identify_caller(conn, number, "IL", NOW)
        samples.append((time.perf_counter() - started) * 1e6)
        outcomes[match.outcome] = outcomes.get(match.outcome, 0) + 1
    engine.dispose()
    samples.sort()
    return {"n": len(samples), "p50_us": samples[len(samples) // 2],
            "p99_us": samples[int(len(samples) * 0.99)],
            "mean_us": statistics.fmean(samples), "known": outcomes.get("known", 0)}


def run_backend(name: str, rows: int, small: int, serial_rows: int, n_lookups: int,
                pg_admin: str, log: Callable[[str], None]) -> dict[str, Any]:
    backend = Backend(name, pg_admin)
    out: dict[str, Any] = {"backend": name, "rows": rows, "small": small,
                           "serial_rows": serial_rows}
    try:
        big = customers_csv(rows)
        little = customers_csv(small)
        out["baseline_s"] = baseline_load(backend.fresh("bare"), big)
        log(f"{name}: baseline {out['baseline_s']:.1f} s "
            f"({rows / out['baseline_s']:,.0f} rows/s)")
        url = backend.fresh("store")
        out["import"] = timed_import(url, big)
        log(f"{name}: import {out['import']['s']:.1f} s "
            f"({rows / out['import']['s']:,.0f} rows/s; load {out['import']['load_after']:.1f})")
        out["reimport"] = timed_import(url, big, migrate=False)
        log(f"{name}: re-import {out['reimport']['s']:.1f} s "
            f"({rows / out['reimport']['s']:,.0f} rows/s)")
        out["lookup_large"] = lookups(url, sample_numbers(big, n_lookups))
        small_url = backend.fresh("small")
        timed_import(small_url, little)
        out["lookup_small"] = lookups(small_url, sample_numbers(little, n_lookups))
        log(f"{name}: look-up p50 {out['lookup_large']['p50_us']:.0f} µs at {rows:,}, "
            f"{out['lookup_small']['p50_us']:.0f} µs at {small:,}")
        if serial_rows:
            part = customers_csv(serial_rows)
            for label, bulk in (("serial", False), ("bulk", True)):
                out[f"{label}_small"] = timed_import(backend.fresh(label), part, bulk=bulk)
                log(f"{name}: {label} path, {serial_rows:,} rows: "
                    f"{serial_rows / out[f'{label}_small']['s']:,.0f} rows/s")
    finally:
        backend.cleanup()
    return out


# --- report -------------------------------------------------------------------------------------

def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True,
                        check=False).stdout.strip() or "?"
    import sqlite3  # noqa: PLC0415

    return (f"{os.cpu_count()} CPU ({h.cpu_model()}), {mem:.1f} GiB RAM, Python "
            f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, {pg}")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISSED"


def _cpu(run: dict[str, Any], rows: int) -> str:
    """µs of CPU per record: this process, the workers, PostgreSQL, the rest; load."""
    def us(seconds: float | None) -> str:
        return "–" if seconds is None else f"{seconds / rows * 1e6:,.0f}"

    return (f"{us(run['main_cpu'])} | {us(run['workers_cpu'])} | {us(run['postgres_cpu'])} | "
            f"{us(run['other_cpu'])} | {run['load_before']:.1f} → {run['load_after']:.1f}")


def markdown(results: list[dict[str, Any]], argv: str) -> str:
    lines = [SECTION, "",
             f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `python bench/crm.py{argv}` "
             f"(git {h.git_rev()}).", "", f"Machine: {machine()}.", "",
             "File: synthetic `billing` customers (`crm_sync.demo.iter_customer_rows`: name, "
             "two phones in mixed formats, e-mail, account number, language, tier, segment, "
             "status, birth date, updated_at), CSV. Import = `ivr crm import`'s code path "
             "(`crm_sync.importer.import_file`: the bulk path, records prepared in worker "
             "processes, batches of 5,000 on PostgreSQL and 1,000 on SQLite, one transaction "
             "each) into a freshly migrated store. Baseline = the same file into a bare table "
             "of text columns, no index (PostgreSQL `COPY FROM STDIN (FORMAT csv)`; SQLite "
             "`executemany` in one transaction), same run.", "",
             "| Backend | rows | baseline s | baseline rows/s | import s | import rows/s | "
             "import / baseline time | re-import (unchanged) rows/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rows = r["rows"]
        lines.append(
            f"| {r['backend']} | {rows:,} | {r['baseline_s']:.1f} | "
            f"{rows / r['baseline_s']:,.0f} | {r['import']['s']:.1f} | "
            f"{rows / r['import']['s']:,.0f} | {r['import']['s'] / r['baseline_s']:.1f}x | "
            f"{rows / r['reimport']['s']:,.0f} |")
    lines += ["", "Where the CPU went, µs per record (this process: reading, identity "
              "resolution, writing, and SQLite's own work; the worker processes: parsing, "
              "hashing, mapping; PostgreSQL: every server process; other: the rest of the "
              "machine, i.e. unrelated work), and the 1-minute load average before → after:",
              "", "| Backend | run | rows | rows/s | this process | workers | PostgreSQL | "
              "other | load |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        runs = [("import", r["rows"], r["import"]), ("re-import", r["rows"], r["reimport"])]
        if r.get("serial_small"):
            runs += [("serial path (before)", r["serial_rows"], r["serial_small"]),
                     ("bulk path (after)", r["serial_rows"], r["bulk_small"])]
        for label, rows, run in runs:
            lines.append(f"| {r['backend']} | {label} | {rows:,} | {rows / run['s']:,.0f} | "
                         f"{_cpu(run, rows)} |")
    lines += ["", "Caller look-up (`identify_caller`: E.164 phone index, customer attributes, "
              "open incidents, last call), random known numbers, one connection checkout "
              "each:", "",
              "| Backend | customers | look-ups | known | p50 µs | p99 µs | mean µs |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        for key, size in (("lookup_small", r["small"]), ("lookup_large", r["rows"])):
            lk = r[key]
            lines.append(f"| {r['backend']} | {size:,} | {lk['n']:,} | {lk['known']:,} | "
                         f"{lk['p50_us']:.0f} | {lk['p99_us']:.0f} | {lk['mean_us']:.0f} |")
    lines += ["", "| Target | value | result |", "|---|---:|---|"]
    for r in results:
        rate = r["rows"] / r["import"]["s"]
        target = TARGET_ROWS_PER_S[r["backend"]]
        lines.append(f"| {r['backend']} import >= {target:,} rows/s ({r['rows']:,} rows) | "
                     f"{rate:,.0f} | {verdict(rate >= target)} |")
        ratio = r["lookup_large"]["p50_us"] / r["lookup_small"]["p50_us"]
        lines.append(f"| {r['backend']} look-up p50 at {r['rows']:,} within "
                     f"{TARGET_LOOKUP_RATIO}x of {r['small']:,} | {ratio:.2f}x | "
                     f"{verdict(ratio <= TARGET_LOOKUP_RATIO)} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--serial-rows", type=int, default=100_000,
                        help="rows for the serial path against the bulk path (0: skip)")
    parser.add_argument("--lookups", type=int, default=5_000)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--pg-admin-url", default=os.environ.get(
        "IVR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    h.add_results_options(parser, no_write=True)
    args = parser.parse_args()

    def log(msg: str) -> None:
        print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)

    results = [run_backend(b.strip(), args.rows, args.small, args.serial_rows, args.lookups,
                           args.pg_admin_url, log)
               for b in args.backends.split(",") if b.strip()]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "crm.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    argv = "".join(f" {a}" for a in sys.argv[1:])
    section = markdown(results, argv)
    h.publish(section, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
