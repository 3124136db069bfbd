"""A routing pass reads the heads of the queues that have free agents (issue 18): a long
queue nobody can serve holds up no other queue, and a repeat caller far back in a queue
still reaches the free agent who had them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, insert, select

from callbacks import repository as cbrepo
from ivr.agents import repository as repo
from ivr.agents.models import agent_calls, agents, queue_entries
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from ivr.services import build_services
from tests.conftest import OPEN_TIME, statements_sent

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    e = create_engine(database_url)
    yield e
    e.dispose()


def _agent(i: int, queues: list[str], state: str) -> dict[str, object]:
    return {"id": i, "username": f"a{i}", "name": f"Agent {i}", "role": "agent",
            "password_hash": "x", "queues": queues, "reach_kind": "client",
            "reach_target": f"a{i}", "state": state, "state_since": OPEN_TIME,
            "current_call_sid": None if state == "available" else f"CAbusy{i}",
            "active": True, "created_at": OPEN_TIME, "updated_at": OPEN_TIME}


def _entry(i: int, queue: str, *, priority: int = 0, preferred: int | None = None,
           ) -> dict[str, object]:
    entered = OPEN_TIME - timedelta(seconds=10_000 - i)
    return {"id": i, "call_sid": f"CA{i:06d}", "queue": queue, "priority": priority,
            "entered_at": entered, "deadline_at": entered + timedelta(hours=4),
            "status": "waiting", "attempts": 0, "updated_at": entered,
            "last_seen_at": OPEN_TIME, "preferred_agent_id": preferred}


def _route(engine: Engine, database_url: str) -> list[tuple[str, int]]:
    settings = Settings(_env_file=None, database_url=database_url,
                        callbacks_file=ROOT / "callbacks.yaml", twilio_auth_token="t",
                        watch_menus=False)
    service = build_services(engine, settings, FrozenClock(OPEN_TIME)).agents
    offers = service.route().offers
    return sorted((o.call_sid, o.agent_id) for o in offers)


def test_a_long_queue_nobody_serves_holds_up_no_other_queue(engine: Engine,
                                                            database_url: str) -> None:
    """300 premium callers of billing (no billing agent free) ahead, in routing order, of
    one support caller whose agent is free: the support caller is offered at once (a pass
    used to read the first 200 callers of all queues and stop there)."""
    with engine.begin() as conn:
        conn.execute(insert(agents), [_agent(1, ["billing"], "on_call"),
                                      _agent(2, ["support"], "available")])
        conn.execute(insert(queue_entries),
                     [_entry(i, "billing", priority=1) for i in range(1, 301)]
                     + [_entry(301, "support")])
    assert _route(engine, database_url) == [("CA000301", 2)]


def test_the_heads_of_each_queue_go_in_routing_order(engine: Engine,
                                                     database_url: str) -> None:
    """Two free support agents take the two first support callers (priority first, then
    the time they joined), not the ones behind."""
    with engine.begin() as conn:
        conn.execute(insert(agents), [_agent(1, ["support"], "available"),
                                      _agent(2, ["support"], "available")])
        conn.execute(insert(queue_entries),
                     [_entry(i, "support") for i in range(1, 50)]
                     + [_entry(50, "support", priority=1)])
    offered = [sid for sid, _ in _route(engine, database_url)]
    assert offered == ["CA000001", "CA000050"]
    with engine.connect() as conn:
        still = conn.execute(select(queue_entries.c.call_sid).where(
            queue_entries.c.status == "waiting").order_by(queue_entries.c.id)).scalars().all()
    assert len(still) == 48 and still[0] == "CA000002"


def test_a_repeat_caller_far_back_reaches_their_free_agent(engine: Engine,
                                                          database_url: str) -> None:
    """Agent 2 (free, billing only) had the caller at the back of support: the caller gets
    them even though support's head has no free agent of its own."""
    with engine.begin() as conn:
        conn.execute(insert(agents), [_agent(1, ["support"], "on_call"),
                                      _agent(2, ["billing"], "available")])
        conn.execute(insert(queue_entries),
                     [_entry(i, "support") for i in range(1, 40)]
                     + [_entry(40, "support", preferred=2)])
    assert _route(engine, database_url) == [("CA000040", 2)]


def _offer(i: int, agent_id: int, call_sid: str, answered_min: int | None,
           ) -> dict[str, object]:
    return {"id": i, "call_sid": call_sid, "agent_id": agent_id, "queue": "billing",
            "offered_at": OPEN_TIME - timedelta(minutes=30),
            "answered_at": None if answered_min is None
            else OPEN_TIME - timedelta(minutes=answered_min)}


def test_staffing_and_the_busy_agent_by_rank_read_in_sql(engine: Engine) -> None:
    """The wait estimate reads the queue's counts and one busy agent (issue 18 item 2): the
    same figures the old reading of every signed-in agent gave — queue membership exact
    (``bill`` is not ``billing``), offline and inactive agents left out, an agent offered
    their call twice counted once with the latest answer, one still being connected last."""
    rows = [_agent(1, ["billing"], "available"), _agent(2, ["billing", "support"], "on_call"),
            _agent(3, ["billing"], "wrap_up"), _agent(4, ["bill"], "on_call"),
            _agent(5, ["billing"], "offline"), _agent(6, ["support"], "available"),
            _agent(7, ["billing"], "reserved"), _agent(8, ["billing"], "on_call"),
            _agent(9, ["billing"], "on_call"), _agent(10, ["billing"], "available")]
    rows[8]["active"] = False
    offers = [_offer(1, 2, "CAbusy2", 7), _offer(2, 3, "CAbusy3", 12),
              _offer(3, 4, "CAbusy4", 30), _offer(4, 8, "CAbusy8", 20),
              _offer(5, 8, "CAbusy8", 2),  # offered the same call again: the latest answer
              _offer(6, 7, "CAbusy7", None), _offer(7, 3, "CAold", 50)]
    with engine.begin() as conn:
        conn.execute(insert(agents), rows)
        conn.execute(insert(agent_calls), offers)
    with engine.connect() as conn:
        assert repo.staffing(conn, "billing") == (2, 4)  # free 1, 10; busy 2, 3, 7, 8
        assert repo.staffing(conn, "support") == (1, 1)
        assert repo.staffing(conn, "sales") == (0, 0)
        ranks = [repo.handled_for(conn, "billing", k, OPEN_TIME) for k in range(4)]
    # Longest handled first: agent 3 (12 min), agent 2 (7), agent 8 (2: its latest
    # answer), agent 7 (being connected: 0).
    assert ranks == [timedelta(minutes=12), timedelta(minutes=7), timedelta(minutes=2),
                     timedelta(0)]


def test_a_pass_asks_its_first_question_in_one_statement(engine: Engine,
                                                         database_url: str) -> None:
    """Anyone waiting, any callback due, how many agents free: one statement. A pass with
    nothing to do (nobody waiting, or nobody free) ends there; a due callback is seen."""
    with engine.begin() as conn:
        conn.execute(insert(agents), [_agent(1, ["support"], "available")])
    sent = statements_sent(engine)
    assert _route(engine, database_url) == []
    assert len(sent) == 1  # nobody waiting, nothing due
    with engine.begin() as conn:
        conn.execute(agents.update().values(state="on_call", current_call_sid="CAbusy1"))
        conn.execute(insert(queue_entries), [_entry(1, "support")])
    sent.clear()
    assert _route(engine, database_url) == []
    assert len(sent) == 1  # a caller waits, nobody is free
    probe = repo.probe_statement(cbrepo.DUE_PROBE)
    with engine.begin() as conn:
        assert repo.probe(conn, probe, OPEN_TIME) == (True, False, 0)
        cbrepo.create(conn, {
            "queue": "support", "phone": "+972521234567", "caller_number": "+972521234567",
            "call_sid": None, "customer_id": None, "tier": "standard", "language": "he-IL",
            "priority": 0, "entered_at": OPEN_TIME, "requested_at": OPEN_TIME,
            "kind": "asap", "scheduled_for": None, "deadline_at": OPEN_TIME,
            "warn_at": OPEN_TIME, "due_at": OPEN_TIME, "status": "pending",
            "open_key": cbrepo.open_key("support", None, "+972521234567"), "attempts": 0,
            "max_attempts": 3, "updated_at": OPEN_TIME})
        conn.execute(agents.update().values(state="available", current_call_sid=None))
        assert repo.probe(conn, probe, OPEN_TIME) == (True, True, 1)
        assert repo.probe(conn, probe, OPEN_TIME - timedelta(seconds=1)) == (
            True, False, 1)
