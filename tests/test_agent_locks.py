"""Lock order on PostgreSQL: when a caller hangs up in the middle of a conversation, Twilio
sends the ``<Dial>`` action and the call's final status callback at the same moment. Both
use cases write the offer, then the queue entry, then the agent, so the second waits for
the first instead of deadlocking (found by bench/load.py: a 1 s ``DeadlockDetected`` and a
failed webhook)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select, text
from starlette.testclient import TestClient

from ivr.agents import repository as repo
from ivr.agents.models import agent_calls, queue_entries
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from tests.agent_fixtures import DANA, available, login
from tests.agent_flow import TwilioDriver
from tests.conftest import TOKEN


@pytest.fixture
def pg_settings(pg_url: str, menus_dir: Path, settings: Settings) -> Settings:
    return settings.model_copy(update={"database_url": pg_url, "route_every_seconds": 0})


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    e = create_engine(pg_url)
    yield e
    e.dispose()


def _waiting_on_a_lock(engine: Engine, deadline: float) -> bool:
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            n = conn.execute(text("SELECT count(*) FROM pg_stat_activity "
                                  "WHERE wait_event_type = 'Lock'")).scalar_one()
        if n:
            return True
        time.sleep(0.02)
    return False


def test_hang_up_mid_call_and_the_dial_action_wait_for_each_other(
        pg_settings: Settings, clock: FrozenClock, pg_engine: Engine) -> None:

    with TestClient(create_app(pg_settings, clock)) as client:
        _seed_people(pg_engine, clock)
        noa = login(client, "dana.agent")
        available(client, noa)
        twilio = TwilioDriver(client, "http://testserver", TOKEN)
        sid = twilio.start(DANA, ["2"])
        twilio.connect(sid)
        twilio.agent_answers(sid)
        service = client.app.state.web.agents  # type: ignore[attr-defined]
        with pg_engine.connect() as conn:
            offer_id = conn.execute(select(agent_calls.c.id).where(
                agent_calls.c.call_sid == sid)).scalar_one()
        # The <Dial> action's transaction has written the offer; the status callback starts.
        dial = pg_engine.connect()
        tx = dial.begin()
        repo.update_offer(dial, offer_id, ended_at=clock.now(), outcome="completed")
        errors: list[BaseException] = []

        def status_callback() -> None:
            try:
                service.call_ended(sid)
            except BaseException as exc:  # reported below
                errors.append(exc)

        worker = threading.Thread(target=status_callback)
        worker.start()
        assert _waiting_on_a_lock(pg_engine, time.monotonic() + 5), "it did not wait"
        # The <Dial> action goes on to the queue entry: with the status callback holding
        # the entry (the old order) this is where PostgreSQL detected the deadlock.
        repo.update_entry(dial, sid, status="done", updated_at=clock.now())
        tx.commit()
        dial.close()
        worker.join(10)
        assert not worker.is_alive() and errors == []
        with pg_engine.connect() as conn:
            assert conn.execute(select(queue_entries.c.status).where(
                queue_entries.c.call_sid == sid)).scalar_one() == "done"


def _seed_people(engine: Engine, clock: FrozenClock) -> None:
    from datetime import timedelta

    from sqlalchemy import insert

    from crm_sync.models import Customer, CustomerPhone, Incident

    now = clock.now()
    with engine.begin() as conn:
        conn.execute(insert(Customer), [{
            "id": 1, "account_number": "1001", "name": "דנה כהן", "tier": "premium",
            "status": "active", "preferred_language": "he-IL", "lineage": {},
            "created_at": now, "updated_at": now}])
        conn.execute(insert(CustomerPhone), [{"customer_id": 1, "e164": DANA}])
        conn.execute(insert(Incident), {
            "customer_id": 1, "source": "branch-haifa", "external_id": "H-77",
            "status": "open", "category": "internet", "branch": "Haifa", "summary": "x",
            "opened_at": now - timedelta(hours=1), "last_update_at": now})
        repo.create_agent(conn, username="dana.agent", name="Noa", password="dana.agent-pw",
                          role="agent", queues=["support-open-incidents"],
                          reach_kind="client", reach_target="dana.agent", now=now)
