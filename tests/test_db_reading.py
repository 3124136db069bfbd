"""Reads alone run without a transaction around them (issue 18 item 1): on PostgreSQL in
autocommit, so a lone read is one round trip instead of three (BEGIN, the read, ROLLBACK).
The hot ones: a console's session look-up (every agent request), its events (every wake-up
of its stream) and a routing pass with nothing to do (most passes). Writes, and a pass
that has work, still run in a transaction."""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Engine, event, literal, select
from starlette.testclient import TestClient

from ivr.agents import repository as repo
from ivr.agents.ports import RoutingPass
from ivr.core.clock import FrozenClock
from ivr.core.db import reading
from ivr.core.settings import Settings
from ivr.services import build_services
from tests.agent_fixtures import DANA, available, login
from tests.agent_flow import TwilioDriver
from tests.conftest import TOKEN


def _in_transaction(dbapi: Any) -> bool:
    """Whether the driver's connection is inside a transaction (psycopg or sqlite3)."""
    if isinstance(dbapi, psycopg.Connection):
        return dbapi.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
    return bool(dbapi.in_transaction)


def transactions(engine: Engine) -> list[bool]:
    """For each statement ``engine`` runs from now on: whether it ran in a transaction."""
    seen: list[bool] = []

    def after(conn: Any, *_args: Any) -> None:
        seen.append(_in_transaction(conn.connection.dbapi_connection))

    event.listen(engine, "after_cursor_execute", after)
    return seen


def test_a_read_alone_runs_outside_a_transaction(engine: Engine) -> None:
    seen = transactions(engine)
    with reading(engine) as conn:
        assert conn.execute(select(literal(1))).scalar_one() == 1
        assert conn.execute(select(literal(2))).scalar_one() == 2
    assert seen == [False, False]
    # What it saves on PostgreSQL: a plain connection reads inside a transaction.
    with engine.connect() as conn:
        conn.execute(select(literal(1)))
    assert seen[2] is (engine.dialect.name == "postgresql")
    # The connection goes back to the pool as it came: the next one is transactional.
    with engine.begin() as conn:
        conn.execute(select(literal(1)))
    assert seen[3] is (engine.dialect.name == "postgresql")


def test_a_session_look_up_and_an_idle_routing_pass_open_no_transaction(
        app_client: TestClient, people: dict[str, int], engine: Engine, settings: Settings,
        clock: FrozenClock) -> None:
    auth = login(app_client, "avi")
    token = auth["Authorization"].removeprefix("Bearer ")
    agents = build_services(engine, settings, clock).agents
    seen = transactions(engine)
    me = agents.session(token)
    assert me is not None and me["username"] == "avi"
    assert agents.route() == RoutingPass([], [])  # nobody waits: the probe alone
    assert seen and not any(seen)
    # A pass with work reads and locks in its transaction, and makes the offer.
    available(app_client, auth)
    with engine.begin() as conn:  # Avi is taken back for a moment: the caller waits
        repo.set_state(conn, people["avi"], "offline", clock.now())
    sid = TwilioDriver(app_client, "http://testserver", TOKEN).start(DANA, ["2"])
    with engine.begin() as conn:
        repo.set_state(conn, people["avi"], "available", clock.now())
    seen.clear()
    offers = agents.route().offers
    assert [o.call_sid for o in offers] == [sid]
    assert seen[0] is False and any(seen[1:])  # the probe alone, then the transaction
