"""Fixtures and helpers for the agent tests: an app without the background sweep, two
customers (one with an incident opened at another branch an hour ago) and three agents."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, insert
from starlette.testclient import TestClient

from crm_sync.models import Customer, CustomerPhone, Incident
from ivr.agents import repository as repo
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings

DANA = "+972501234567"   # דנה כהן: an open fault opened at the Haifa branch an hour ago
YOSSI = "+972527654321"  # no history


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    e = create_engine(database_url)
    yield e
    e.dispose()


@pytest.fixture
def app_client(settings: Settings, clock: FrozenClock) -> Iterator[TestClient]:
    quiet = settings.model_copy(update={"route_every_seconds": 0})
    with TestClient(create_app(quiet, clock)) as c:
        yield c


@pytest.fixture
def people(engine: Engine, clock: FrozenClock) -> dict[str, int]:
    now = clock.now()
    with engine.begin() as conn:
        conn.execute(insert(Customer), [
            {"id": 1, "account_number": "1001", "name": "דנה כהן", "tier": "premium",
             "status": "active", "preferred_language": "he-IL", "lineage": {},
             "created_at": now, "updated_at": now},
            {"id": 2, "account_number": "1002", "name": "Yossi Levi", "tier": "standard",
             "status": "active", "preferred_language": "en-US", "lineage": {},
             "created_at": now, "updated_at": now}])
        conn.execute(insert(CustomerPhone), [{"customer_id": 1, "e164": DANA},
                                             {"customer_id": 2, "e164": YOSSI}])
        conn.execute(insert(Incident), {
            "customer_id": 1, "source": "branch-haifa", "external_id": "H-77",
            "status": "open", "category": "internet", "branch": "Haifa",
            "summary": "האינטרנט מתנתק כל כמה דקות", "opened_at": now - timedelta(hours=1),
            "last_update_at": now - timedelta(hours=1)})
        ids = {}
        for username, name, queues, role in (
                ("dana.agent", "Noa Mizrahi", ["support-open-incidents", "operator"], "agent"),
                ("avi", "Avi Ben-David", ["support-open-incidents", "billing"], "agent"),
                ("boss", "Rivka Supervisor", [], "admin")):
            ids[username] = repo.create_agent(
                conn, username=username, name=name, password=f"{username}-pw", role=role,
                queues=queues, reach_kind="client", reach_target=username, now=now)
    return ids


def login(client: TestClient, username: str) -> dict[str, str]:
    r = client.post("/agent/login", json={"username": username, "password": f"{username}-pw"})
    assert r.status_code == 200, r.text
    client.cookies.clear()  # each test agent uses its bearer token, not the shared jar
    return {"Authorization": f"Bearer {r.json()['token']}"}


def available(client: TestClient, auth: dict[str, str]) -> dict[str, Any]:
    r = client.post("/agent/state", json={"state": "available"}, headers=auth)
    assert r.status_code == 200, r.text
    return dict(r.json())
