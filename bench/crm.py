"""Benchmark: the customer store's bulk import and the caller look-up.

Not a test. For each backend (SQLite file, PostgreSQL database created and dropped):

1. Baseline, same file, same run: the CSV loaded into a bare table of text columns with no
   index or constraint, the fastest way the database has (PostgreSQL ``COPY ... FROM STDIN
   (FORMAT csv)``; SQLite: ``csv`` module + one ``executemany`` in one transaction).
2. ``crm_sync.importer.import_file`` of the same file into a freshly migrated store: mapping,
   phone normalisation, identity resolution, golden records, phones, e-mails, source
   records with raw JSON, the run's progress: rows/s and the ratio to the baseline.
3. A second import of the same file (every record unchanged): rows/s.
4. Caller look-up (``crm_sync.lookup.identify_caller``, what ``/twilio/voice`` runs: phone
   index, customer attributes, open incidents, last call) at the full size and in a small
   store (``--small`` customers): random known numbers, each in its own connection
   checkout; p50/p99/mean, and the ratio large/small (target: within 1.5x).

    python bench/crm.py                          # 1,000,000 and 10,000 customers, both DBs
    python bench/crm.py --rows 100000 --backends sqlite

Writes the section "## Customer store (issue 3)" of bench/results.md (other sections kept) and
raw JSON to bench/out/.
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
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine

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
SECTION = "## Customer store (issue 3)"
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
TARGET_ROWS_PER_S = 20_000
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


def timed_import(url: str, path: Path) -> tuple[float, dict[str, int]]:
    upgrade(url)
    engine = make_engine(url, 2)
    started = time.perf_counter()
    report = import_file(engine, path, default_mapping("billing"), Rules(), "IL", lambda: NOW,
                         resume=False)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, report.counts.as_dict()


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


def run_backend(name: str, rows: int, small: int, n_lookups: int,
                pg_admin: str, log: Callable[[str], None]) -> dict[str, Any]:
    backend = Backend(name, pg_admin)
    out: dict[str, Any] = {"backend": name, "rows": rows, "small": small}
    try:
        big = customers_csv(rows)
        little = customers_csv(small)
        out["baseline_s"] = baseline_load(backend.fresh("bare"), big)
        log(f"{name}: baseline {out['baseline_s']:.1f} s "
            f"({rows / out['baseline_s']:,.0f} rows/s)")
        url = backend.fresh("store")
        out["import_s"], out["import_counts"] = timed_import(url, big)
        log(f"{name}: import {out['import_s']:.1f} s ({rows / out['import_s']:,.0f} rows/s)")
        out["reimport_s"], out["reimport_counts"] = timed_import(url, big)
        log(f"{name}: re-import {out['reimport_s']:.1f} s "
            f"({rows / out['reimport_s']:,.0f} rows/s)")
        out["lookup_large"] = lookups(url, sample_numbers(big, n_lookups))
        small_url = backend.fresh("small")
        timed_import(small_url, little)
        out["lookup_small"] = lookups(small_url, sample_numbers(little, n_lookups))
        log(f"{name}: look-up p50 {out['lookup_large']['p50_us']:.0f} µs at {rows:,}, "
            f"{out['lookup_small']['p50_us']:.0f} µs at {small:,}")
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


def markdown(results: list[dict[str, Any]], argv: str) -> str:
    lines = [SECTION, "",
             f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `python bench/crm.py{argv}` "
             f"(git {h.git_rev()}).", "", f"Machine: {machine()}.", "",
             "File: synthetic `billing` customers (`crm_sync.demo.iter_customer_rows`: name, "
             "two phones in mixed formats, e-mail, account number, language, tier, segment, "
             "status, birth date, updated_at), CSV. Import = `ivr crm import`'s code path "
             "(`crm_sync.importer.import_file`, batches of 5,000, one transaction each). "
             "Baseline = the same file into a bare table of text columns, no index "
             "(PostgreSQL `COPY FROM STDIN (FORMAT csv)`; SQLite `executemany` in one "
             "transaction), same run.", "",
             "| Backend | rows | baseline s | baseline rows/s | import s | import rows/s | "
             "import / baseline time | re-import (unchanged) rows/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rows = r["rows"]
        lines.append(
            f"| {r['backend']} | {rows:,} | {r['baseline_s']:.1f} | "
            f"{rows / r['baseline_s']:,.0f} | {r['import_s']:.1f} | "
            f"{rows / r['import_s']:,.0f} | {r['import_s'] / r['baseline_s']:.1f}x | "
            f"{rows / r['reimport_s']:,.0f} |")
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
        rate = r["rows"] / r["import_s"]
        if r["backend"] == "postgresql":
            lines.append(f"| postgresql import >= {TARGET_ROWS_PER_S:,} rows/s | {rate:,.0f} | "
                         f"{verdict(rate >= TARGET_ROWS_PER_S)} |")
        ratio = r["lookup_large"]["p50_us"] / r["lookup_small"]["p50_us"]
        lines.append(f"| {r['backend']} look-up p50 at {r['rows']:,} within "
                     f"{TARGET_LOOKUP_RATIO}x of {r['small']:,} | {ratio:.2f}x | "
                     f"{verdict(ratio <= TARGET_LOOKUP_RATIO)} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--lookups", type=int, default=5_000)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--pg-admin-url", default=os.environ.get(
        "IVR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    h.add_results_options(parser, no_write=True)
    args = parser.parse_args()

    def log(msg: str) -> None:
        print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)

    results = [run_backend(b.strip(), args.rows, args.small, args.lookups, args.pg_admin_url,
                           log) for b in args.backends.split(",") if b.strip()]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "crm.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    argv = "".join(f" {a}" for a in sys.argv[1:])
    section = markdown(results, argv)
    h.publish(section, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
