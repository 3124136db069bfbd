"""Routing cost against queue size (issue 18, item 2).

A routing pass and a caller's wait round (Twilio's ``waitUrl``) with 10, 1,000 and 10,000
calls waiting and 10 or 1,000 agents, on SQLite and PostgreSQL; the pass should grow no more
than 3x from the smallest set-up to the largest (indexes, not scans).

Three operations, each timed ``--repeat`` times on a FrozenClock, in-process (no HTTP: the
webhook edge is the same whatever the queue's size):

* ``pass, nobody free``: ``AgentService.route()`` with every agent busy (a new caller
  joined, a status callback came: the pass finds nothing to match);
* ``pass, one offer``: one agent goes available and ``route()`` offers them the head of a
  queue (undone outside the timing, so every repeat starts from the same state);
* ``wait round``: ``AgentService.waiting()`` for the caller at the back of the largest
  queue, speaking its position and expected wait (the round that counts the callers ahead).

``--source DIR`` runs the same measurements on another checkout (a ``git worktree`` of the
commit before the change) in the same run: each (code, database) runs in a child process
with that code first on ``PYTHONPATH``.

    python bench/routing_scale.py --source /tmp/wt-before \\
        --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

WAITING = (10, 1_000, 10_000)
AGENTS = (10, 1_000)
QUEUES = ("billing", "retention", "support", "sales", "operator")
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # a Monday, 10:00 in Jerusalem


# ------------------------------------------------------------------ the child (one code)


def seed(engine: Any, n_waiting: int, n_agents: int) -> tuple[str, int]:
    """(Imports in the functions: a child runs the code of the checkout on PYTHONPATH.)
    ``n_agents`` busy agents serving every queue, ``n_waiting`` callers spread over the
    queues (a fifth of them premium); the back caller of the first queue and an agent."""
    from sqlalchemy import delete, insert  # noqa: PLC0415

    from ivr.agents.models import agent_calls, agents, queue_entries  # noqa: PLC0415

    rng = random.Random(7)
    with engine.begin() as conn:
        for table in (agent_calls, queue_entries, agents):
            conn.execute(delete(table))
        conn.execute(insert(agents), [{
            "id": i + 1, "username": f"a{i}", "name": f"Agent {i}", "role": "agent",
            "password_hash": "x", "queues": list(QUEUES), "reach_kind": "client",
            "reach_target": f"a{i}", "state": "on_call", "state_since": NOW,
            "current_call_sid": f"CAbusy{i:06d}", "active": True,
            "created_at": NOW, "updated_at": NOW} for i in range(n_agents)])
        rows: list[dict[str, Any]] = []
        for i in range(n_waiting):
            entered = NOW - timedelta(seconds=n_waiting - i)
            priority = 1 if rng.random() < 0.2 else 0
            rows.append({
                "id": i + 1, "call_sid": f"CAwait{i:06d}", "queue": QUEUES[i % len(QUEUES)],
                "priority": priority, "entered_at": entered,
                "deadline_at": entered + timedelta(hours=1 if priority else 4),
                "status": "waiting", "attempts": 0, "updated_at": entered,
                "last_seen_at": NOW})
        for start in range(0, len(rows), 5_000):
            conn.execute(insert(queue_entries), rows[start:start + 5_000])
    back = max((r for r in rows if r["queue"] == QUEUES[0] and r["priority"] == 0),
               key=lambda r: r["entered_at"])
    return str(back["call_sid"]), 1


def child(url: str, repeat: int, code: Path) -> dict[str, Any]:
    from sqlalchemy import delete, update  # noqa: PLC0415

    from ivr.agents.models import agent_calls, agents, queue_entries  # noqa: PLC0415
    from ivr.core.clock import FrozenClock  # noqa: PLC0415
    from ivr.core.db import make_engine  # noqa: PLC0415
    from ivr.core.migrate import upgrade  # noqa: PLC0415
    from ivr.core.settings import Settings  # noqa: PLC0415
    from ivr.services import build_services  # noqa: PLC0415

    upgrade(url)
    engine = make_engine(url, 4)
    settings = Settings(_env_file=None, database_url=url,
                        callbacks_file=code / "callbacks.yaml", twilio_auth_token="t",
                        watch_menus=False)
    clock = FrozenClock(NOW)
    service = build_services(engine, settings, clock).agents
    out: dict[str, Any] = {}
    for n_agents in AGENTS:
        for n_waiting in WAITING:
            back, agent_id = seed(engine, n_waiting, n_agents)
            with engine.begin() as conn:  # fresh statistics for the planner
                if engine.dialect.name == "postgresql":
                    conn.exec_driver_sql("ANALYZE queue_entries")
                    conn.exec_driver_sql("ANALYZE agents")
                else:
                    conn.exec_driver_sql("ANALYZE")

            def nobody_free() -> None:
                offers = _offers(service.route())
                assert not offers, offers

            def free_one(agent_id: int = agent_id) -> None:
                with engine.begin() as conn:
                    conn.execute(update(agents).where(agents.c.id == agent_id).values(
                        state="available", current_call_sid=None, state_since=NOW))

            def one_offer() -> None:
                offers = _offers(service.route())
                assert len(offers) == 1, offers

            def undo(agent_id: int = agent_id) -> None:
                with engine.begin() as conn:
                    conn.execute(delete(agent_calls))
                    conn.execute(update(queue_entries)
                                 .where(queue_entries.c.status == "offered")
                                 .values(status="waiting", agent_id=None, offered_at=None,
                                         attempts=0))
                    conn.execute(update(agents).where(agents.c.id == agent_id).values(
                        state="on_call", current_call_sid=f"CAbusy{agent_id - 1:06d}"))

            def wait_round(back: str = back) -> None:
                got = service.waiting(back, QUEUES[0], {"QueueTime": "0",
                                                        "QueuePosition": "9999"})
                assert got.twiml is not None and "<Say" in got.twiml, got.twiml

            figures = {
                "pass, nobody free": timed(nobody_free, repeat),
                "pass, one offer": timed(one_offer, repeat, before=free_one, after=undo),
                "wait round": timed(wait_round, repeat),
            }
            out[f"{n_waiting}/{n_agents}"] = figures
    engine.dispose()
    return out


def _offers(done: Any) -> list[Any]:
    """A pass's reservations: ``RoutingPass.offers``, or the first of the pair that
    ``route()`` returned before it (a ``--source`` checkout of older code)."""
    return list(done.offers if hasattr(done, "offers") else done[0])


def timed(fn: Callable[[], None], repeat: int, *, before: Callable[[], None] | None = None,
          after: Callable[[], None] | None = None) -> dict[str, float]:
    for _ in range(3):  # warm-up: caches, statements, plans
        if before:
            before()
        fn()
        if after:
            after()
    ms: list[float] = []
    for _ in range(repeat):
        if before:
            before()
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1000)
        if after:
            after()
    ms.sort()
    return {"p50": round(statistics.median(ms), 3),
            "p90": round(ms[int(0.9 * (len(ms) - 1))], 3)}


# ------------------------------------------------------------------ the driver


def run_child(code: Path, url: str, repeat: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env["PYTHONPATH"] = str(code)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", url, "--code", str(code),
         "--repeat", str(repeat)],
        cwd=code, env=env, capture_output=True, text=True, check=False, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({code}, {url}):\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def table(results: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    lines = ["| code | database | waiting/agents | pass, nobody free p50 / p90 ms "
             "| pass, one offer p50 / p90 ms | wait round p50 / p90 ms |",
             "|---|---|---|---:|---:|---:|"]
    for code, by_db in results.items():
        for db, grid in by_db.items():
            for key, f in grid.items():
                cells = [f"{f[op]['p50']:.2f} / {f[op]['p90']:.2f}"
                         for op in ("pass, nobody free", "pass, one offer", "wait round")]
                lines.append(f"| {code} | {db} | {key} | " + " | ".join(cells) + " |")
    lines += ["", "Growth, largest set-up (10,000 waiting / 1,000 agents) over the smallest "
              "(10 / 10), p50 (target ≤ 3x):", "",
              "| code | database | pass, nobody free | pass, one offer | wait round |",
              "|---|---|---:|---:|---:|"]
    for code, by_db in results.items():
        for db, grid in by_db.items():
            small, large = grid["10/10"], grid["10000/1000"]
            cells = [f"{large[op]['p50'] / small[op]['p50']:.2f}x"
                     for op in ("pass, nobody free", "pass, one offer", "wait round")]
            lines.append(f"| {code} | {db} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--source", type=Path, help="another checkout to measure the same way")
    parser.add_argument("--postgres", help="an admin URL; a fresh database is made per run")
    parser.add_argument("--results", type=Path, default=HERE / "results.md")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.repeat, Path(args.code))))
        return 0

    sys.path.insert(0, str(ROOT))
    from harness import (  # noqa: PLC0415
        create_pg_database,
        drop_pg_database,
        git_rev,
        machine_line,
        stamp,
        update_results,
    )

    codes = {f"this ({git_rev()})": ROOT}
    if args.source:
        rev = subprocess.run(["git", "-C", str(args.source), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=False).stdout.strip()
        codes = {f"before ({rev})": args.source.resolve(), **codes}
    load_before = os.getloadavg()
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name, code in codes.items():
        results[name] = {}
        with tempfile.TemporaryDirectory() as tmp:
            results[name]["SQLite"] = run_child(code, f"sqlite:///{tmp}/r.db", args.repeat)
        if args.postgres:
            db = f"ivr_routing_{os.getpid()}"
            url = create_pg_database(args.postgres, db)
            try:
                results[name]["PostgreSQL"] = run_child(code, url, args.repeat)
            finally:
                drop_pg_database(args.postgres, db)
        print(json.dumps({name: results[name]}), flush=True)
    load_after = os.getloadavg()
    body = [f"`python bench/routing_scale.py {' '.join(sys.argv[1:])}`, {stamp()}, "
            f"{machine_line()}; load average {load_before[0]:.1f} before, "
            f"{load_after[0]:.1f} after. {args.repeat} timed repeats of each operation "
            "after 3 warm-ups, in-process on a FrozenClock; every agent serves the five "
            "queues, all busy but the one freed for 'one offer'; the wait round is the "
            "caller at the back of the first queue, speaking its position.", "",
            *table(results)]
    update_results("\n".join(["## Routing cost against queue size (issue 18 item 2)", "",
                               *body]), args.results)
    print("\n".join(table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
