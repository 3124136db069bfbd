"""Benchmark: what recognition costs the ``/twilio/voice`` webhook (issue 17.3).

Not a test. When a known caller's call starts, the call service now also works out the
recognition facts (``ivr.menu.recognition``: the birthday from the date of birth the
look-up already returns, today's and tomorrow's holiday from the cached calendar) and asks
the ``CustomerFacts`` port for the retention signals (``leaving_risk``: a few indexed
queries by customer id). This measures the whole ``/twilio/voice`` post in-process
(Starlette's TestClient: signature check, caller look-up, facts, engine, TwiML, the calls
row and the customer's history row; no network) in three arms:

* ``off``: the baseline, no recognition (the service's ``_recognise`` swapped for one that
  only drops the date of birth, as before this feature nothing was added);
* ``facts``: birthday and holiday facts, no port (``no_customer_facts``);
* ``full``: what ships: the facts and the retention signals.

Same run, same process, same database: the arms alternate call by call, so drift (the
machine's load, the tables' growth) falls on all alike. Callers are drawn from
``--customers`` seeded customers (each with a date of birth, a third with an abandoned
queue entry so the signals find rows). ``--calls`` per arm after ``--warmup`` per arm.

    python bench/recognition_cost.py                 # 300 calls per arm, both backends
    python bench/recognition_cost.py --calls 100 --backends sqlite --no-write

Writes the section "## Recognition: cost to the voice webhook (issue 17.3)" of
bench/results.md (other sections kept), raw figures to bench/out/.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from harness import (  # noqa: E402
    PG_ADMIN_URL,
    add_results_options,
    exclusive,
    git_rev,
    machine_line,
    pct,
    pg_database,
    publish,
    run,
    summary,
    write_raw,
)
from sqlalchemy import insert  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from crm_sync.models import Customer, CustomerPhone  # noqa: E402
from ivr.agents.models import queue_entries  # noqa: E402
from ivr.app import create_app  # noqa: E402
from ivr.calls.service import CallService, no_customer_facts  # noqa: E402
from ivr.core.clock import FrozenClock  # noqa: E402
from ivr.core.db import make_engine  # noqa: E402
from ivr.core.migrate import upgrade  # noqa: E402
from ivr.core.settings import Settings  # noqa: E402
from tests.twilio import call_params, new_sid, signed_post  # noqa: E402

SECTION = "## Recognition: cost to the voice webhook (issue 17.3)"
TOKEN = "bench-auth-token"
ARMS = ("off", "facts", "full")
NOW = datetime(2026, 9, 20, 7, 0, tzinfo=UTC)  # Sunday 10:00, the eve of Yom Kippur


def phone(i: int) -> str:
    return f"+97250{1000000 + i}"


def seed(url: str, customers: int) -> None:
    engine = make_engine(url, 2)
    rng = random.Random(3)
    with engine.begin() as conn:
        conn.execute(insert(Customer), [
            {"id": i, "account_number": str(100000 + i), "name": f"c{i}",
             "tier": rng.choice(("standard", "premium")), "status": "active",
             "preferred_language": rng.choice(("he-IL", "en-US")),
             "date_of_birth": date(1950, 1, 1) + timedelta(days=rng.randrange(25000)),
             "lineage": {}, "created_at": NOW, "updated_at": NOW}
            for i in range(1, customers + 1)])
        conn.execute(insert(CustomerPhone), [{"customer_id": i, "e164": phone(i)}
                                             for i in range(1, customers + 1)])
        conn.execute(insert(queue_entries), [
            {"call_sid": f"CAold{i}", "queue": "billing", "priority": 0,
             "customer_id": i, "status": "abandoned", "entered_at": NOW - timedelta(days=3),
             "ended_at": NOW - timedelta(days=3, seconds=-60),
             "updated_at": NOW - timedelta(days=3, seconds=-60)}
            for i in range(1, customers + 1, 3)])
    engine.dispose()


def measure(url: str, work: Path, calls: int, warmup: int, customers: int,
            ) -> dict[str, list[float]]:
    menus = work / "menus"
    shutil.copytree(HERE.parent / "menus", menus, ignore=shutil.ignore_patterns("*.json"))
    seed(url, customers)
    clock = FrozenClock(NOW)
    settings = Settings(_env_file=None, database_url=url, menus_dir=menus,
                        twilio_auth_token=TOKEN, watch_menus=False, db_pool_size=4,
                        route_every_seconds=0, callbacks_file=work / "no-callbacks.yaml")
    app = create_app(settings, clock)
    times: dict[str, list[float]] = {arm: [] for arm in ARMS}
    with TestClient(app) as client:
        service: CallService = app.state.web.calls
        shipped_recognise, shipped_port = service._recognise, service.customer_facts

        def none(conn: Any, attrs: dict[str, Any], bundle: Any, now: Any) -> dict[str, Any]:
            attrs.pop("date_of_birth", None)
            return {}

        rng = random.Random(17)
        for i in range(len(ARMS) * (warmup + calls)):
            arm = ARMS[i % len(ARMS)]
            service._recognise = none if arm == "off" else shipped_recognise  # type: ignore[method-assign]
            service.customer_facts = shipped_port if arm == "full" else no_customer_facts
            caller = phone(rng.randrange(1, customers + 1))
            params = call_params(new_sid(), "ringing", From=caller)
            start = time.perf_counter()
            r = signed_post(client, "/twilio/voice", params, token=TOKEN)
            elapsed = (time.perf_counter() - start) * 1000
            if r.status_code != 200 or "<Gather" not in r.text:
                raise RuntimeError(f"call {i} ({arm}): {r.status_code} {r.text[:200]}")
            eve = "Yom Kippur" in r.text or "יום כיפור" in r.text
            if eve != (arm != "off"):
                raise RuntimeError(f"call {i} ({arm}): greeting {eve}: {r.text[:300]}")
            if i >= len(ARMS) * warmup:
                times[arm].append(elapsed)
            clock.advance(seconds=1)
    return times


def median_diff(a: list[float], b: list[float], rounds: int = 2000,
                ) -> tuple[float, float, float]:
    """The difference of the medians (a - b) and its bootstrap 95% interval."""
    rng = random.Random(7)
    diffs = sorted(statistics.median(rng.choices(a, k=len(a)))
                   - statistics.median(rng.choices(b, k=len(b))) for _ in range(rounds))
    return statistics.median(a) - statistics.median(b), pct(diffs, 0.025), pct(diffs, 0.975)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="timed calls per arm")
    parser.add_argument("--warmup", type=int, default=30, help="untimed calls per arm first")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    add_results_options(parser, no_write=True)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with exclusive("recognition_cost"):
        load_before = os.getloadavg()
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            with tempfile.TemporaryDirectory(prefix="recognition-bench-") as tmp:
                work = Path(tmp)
                if backend == "sqlite":
                    url = f"sqlite:///{work / 'bench.db'}"
                    upgrade(url)
                    figures = measure(url, work, args.calls, args.warmup, args.customers)
                else:
                    with pg_database(PG_ADMIN_URL, f"ivr_recognition_bench_{os.getpid()}",
                                     migrate=True) as url:
                        figures = measure(url, work, args.calls, args.warmup, args.customers)
            load = os.getloadavg()
            results[backend] = {**figures, "load_after": load}
            print(f"{backend}: done (load average {load[0]:.2f})", file=sys.stderr)
        load_after = os.getloadavg()
    write_raw("recognition_cost", {"git": git_rev(), "machine": machine_line(),
                                   "load_before": load_before, "load_after": load_after,
                                   "results": results})
    lines = [SECTION, "",
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, git {git_rev()}, {machine_line()}. "
             f"`python bench/recognition_cost.py --calls {args.calls} --warmup "
             f"{args.warmup} --customers {args.customers}`: {args.calls} timed calls per arm "
             f"after {args.warmup} per arm of warm-up, the arms alternating call by call in "
             "one process over one database; the time of the `/twilio/voice` post of a known "
             "caller in-process (TestClient: signature, look-up, facts, engine, TwiML, the "
             "calls and history rows; no network), on the eve of Yom Kippur so the greeting "
             "is spoken. Baseline = the `off` arm of the same run (no recognition); `facts` = "
             "birthday and holiday facts; `full` = those and the retention signals "
             "(`leaving_risk`), what ships.", "",
             f"Load average before {load_before[0]:.2f} / {load_before[1]:.2f} / "
             f"{load_before[2]:.2f}, after {load_after[0]:.2f} / {load_after[1]:.2f} / "
             f"{load_after[2]:.2f} (1 / 5 / 15 min): a shared machine (other sessions' work "
             "ran at the same time, on all arms alike).", "",
             "| backend | arm | p50 ms | p90 ms | p99 ms | mean ms | p50 - off (95% CI) |",
             "|---|---|---|---|---|---|---|"]
    for backend, r in results.items():
        for arm in ARMS:
            s = summary(r[arm])
            cell = ""
            if arm != "off":
                diff, low, high = median_diff(r[arm], r["off"])
                cell = f"{diff:+.3f} ms ({low:+.3f} .. {high:+.3f})"
            lines.append(f"| {backend} | {arm} | {s['p50']:.2f} | {s['p90']:.2f} | "
                         f"{s['p99']:.2f} | {s['mean']:.2f} | {cell} |")
    lines.append("")
    publish("\n".join(lines), args)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
