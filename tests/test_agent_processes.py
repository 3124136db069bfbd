"""Several server processes on one PostgreSQL: a screen-pop reaches a console connected to
another process (LISTEN/NOTIFY), and concurrent routers never give one call to two agents.
On SQLite (one process) the in-process path is checked with a live server."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, func, insert, select

from crm_sync.models import Customer, CustomerPhone, Incident
from ivr.agents import repository as repo
from ivr.agents.models import agent_calls, agents, queue_entries
from ivr.core.clock import SystemClock
from tests.agent_flow import TwilioDriver
from tests.conftest import TOKEN
from tests.test_processes import always_open, server

pytestmark = pytest.mark.slow


def seed(engine: Engine, n_agents: int) -> None:
    now = SystemClock().now()
    with engine.begin() as conn:
        conn.execute(insert(Customer), {
            "id": 1, "account_number": "1001", "name": "דנה כהן", "tier": "premium",
            "status": "active", "preferred_language": "he-IL", "lineage": {},
            "created_at": now, "updated_at": now})
        conn.execute(insert(CustomerPhone), {"customer_id": 1, "e164": "+972501234567"})
        conn.execute(insert(Incident), {
            "customer_id": 1, "source": "branch-haifa", "external_id": "H-1",
            "status": "open", "branch": "Haifa", "summary": "תקלה באינטרנט",
            "opened_at": now - timedelta(hours=1), "last_update_at": now - timedelta(hours=1)})
        for i in range(n_agents):
            repo.create_agent(conn, username=f"agent{i}", name=f"Agent {i}",
                              password="pw", queues=["operator", "support-open-incidents"],
                              reach_target=f"agent{i}", now=now)


def sse_reader(url: str, token: str, out: queue.Queue[tuple[float, str, Any]],
               stop: threading.Event) -> None:
    """Reads a console's event stream until ``stop`` (the stream ends with the server)."""
    try:
        with httpx.Client(base_url=url, timeout=httpx.Timeout(5, read=60)) as client, \
                client.stream("GET", "/agent/events",
                              headers={"Authorization": f"Bearer {token}"}) as r:
            kind = ""
            for line in r.iter_lines():
                if stop.is_set():
                    return
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    out.put((time.monotonic(), kind, json.loads(line[6:])))
    except httpx.HTTPError as exc:
        if not stop.is_set():
            out.put((time.monotonic(), "error", repr(exc)))


def login(url: str, username: str) -> str:
    r = httpx.post(f"{url}/agent/login", json={"username": username, "password": "pw"},
                   timeout=10)
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def next_event(events: queue.Queue[tuple[float, str, Any]], kind: str,
               timeout: float = 5.0) -> tuple[float, Any]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {kind} event within {timeout} s")
        at, got, data = events.get(timeout=left)
        if got == kind:
            return at, data


def check_pop_reaches_console(console_url: str, webhook_url: str,
                              readers: list[threading.Thread]) -> float:
    token = login(console_url, "agent0")
    events: queue.Queue[tuple[float, str, Any]] = queue.Queue()
    stop = threading.Event()
    reader = threading.Thread(target=sse_reader, args=(console_url, token, events, stop),
                              daemon=True)
    reader.start()
    assert next_event(events, "state")[1]["username"] == "agent0"
    with httpx.Client(base_url=webhook_url, timeout=10) as client:
        r = client.post("/agent/state", json={"state": "available"},
                        headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        twilio = TwilioDriver(client, webhook_url, TOKEN)
        sid = twilio.start("050-123-4567", ["2"])
        sent = time.monotonic()
        twilio.connect(sid)  # a real server: a few rounds if the pass is still running
    at, pop = next_event(events, "screenpop")
    stop.set()
    readers.append(reader)
    assert pop["call_sid"] == sid
    assert pop["customer"]["name"] == "דנה כהן"
    assert pop["open_incidents"][0]["branch"] == "Haifa"
    return at - sent


def pop_latency(url: str, menus_dir: Path, processes: int, *, direct_url: str | None = None,
                **env: str) -> float:
    """One agent's console on the first server, the call's webhooks to the last.
    ``direct_url``: the database itself when ``url`` is a pooler (the test's own writes go
    there)."""
    always_open(menus_dir)
    engine = create_engine(direct_url or url)
    seed(engine, 1)
    engine.dispose()
    readers: list[threading.Thread] = []
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(server(url, menus_dir, open_files=None, **env))[0]
                for _ in range(processes)]
        latency = check_pop_reaches_console(urls[0], urls[-1], readers)
    for r in readers:
        r.join(10)
    return latency


def test_screen_pop_reaches_a_console_on_another_process(pg_url: str, menus_dir: Path) -> None:
    assert pop_latency(pg_url, menus_dir, processes=2) < 1.0


def test_screen_pop_reaches_the_console_of_one_process(database_url: str,
                                                       menus_dir: Path) -> None:
    """One process: SQLite's in-process wake-up; PostgreSQL's NOTIFY to itself."""
    assert pop_latency(database_url, menus_dir, processes=1) < 1.0


def test_two_processes_never_connect_two_agents_to_one_call(pg_url: str,
                                                            menus_dir: Path) -> None:
    two_processes_route_each_call_once(pg_url, pg_url, menus_dir)


def two_processes_route_each_call_once(url: str, direct_url: str, menus_dir: Path,
                                       **env: str) -> None:
    """40 callers and 20 agents going available across two server processes on ``url``
    (the database, or a pooler in front of ``direct_url``): 20 offers, one per agent."""
    always_open(menus_dir)
    engine = create_engine(direct_url)
    seed(engine, 20)
    fast = {"IVR_ROUTE_EVERY_SECONDS": "0.05", "IVR_DB_POOL_SIZE": "8", **env}
    with server(url, menus_dir, open_files=None, **fast) as (a, _pa), \
            server(url, menus_dir, open_files=None, **fast) as (b, _pb):
        urls = [a, b]

        def call(i: int) -> str:
            url = urls[i % 2]
            with httpx.Client(base_url=url, timeout=20) as client:
                return TwilioDriver(client, url, TOKEN).start(f"+9725400{i:05d}", ["1", "0"])

        def go_available(i: int) -> None:
            url = urls[(i + 1) % 2]
            token = login(url, f"agent{i}")
            r = httpx.post(f"{url}/agent/state", json={"state": "available"}, timeout=20,
                           headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text

        with ThreadPoolExecutor(8) as pool:
            calls = [pool.submit(call, i) for i in range(40)]
            agents_up = [pool.submit(go_available, i) for i in range(20)]
            for started in calls:
                started.result()
            for went in agents_up:
                went.result()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                offered = conn.execute(select(func.count()).select_from(queue_entries)
                                       .where(queue_entries.c.status == "offered")).scalar()
            if offered == 20:
                break
            time.sleep(0.1)
    with engine.connect() as conn:
        reserved = conn.execute(select(agents.c.id, agents.c.current_call_sid)
                                .where(agents.c.state == "reserved")).all()
        offers = conn.execute(select(agent_calls.c.call_sid, agent_calls.c.agent_id)).all()
        entries = {r.call_sid: r.agent_id for r in conn.execute(
            select(queue_entries.c.call_sid, queue_entries.c.agent_id)
            .where(queue_entries.c.status == "offered"))}
    engine.dispose()
    assert len(reserved) == 20
    assert len({r.current_call_sid for r in reserved}) == 20
    calls = [o.call_sid for o in offers]
    assert len(calls) == len(set(calls)) == 20, "a call was offered twice"
    assert entries == {r.current_call_sid: r.id for r in reserved}
