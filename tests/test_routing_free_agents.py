"""A routing pass reads and locks only the free agents it can offer to (issue 18 item 3).

With 1,000 agents' consoles open and most agents free, a pass read every free agent
``FOR UPDATE``: each process's router held them all for its transaction, and every other
change to an agent (a connect, a wrap-up, the other process's offer) waited for it. Now it
counts the free agents per queue in SQL and reads the few ``routing.plan`` can choose: the
first free ones of each queue concerned, and the callers' preferred agents. The offers must
be exactly those of the plan over every free agent (and the callers a pass reads:
``repository.waiting_heads``)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, delete, insert, text

from ivr.agents import repository as repo
from ivr.agents import service as agent_service
from ivr.agents.models import (
    agent_calls,
    agent_events,
    agent_state_events,
    agents,
    queue_entries,
)
from ivr.agents.routing import Free, Waiting, plan
from tests.conftest import OPEN_TIME
from tests.test_routing_heads import _agent, _entry, _route

QUEUES = ("billing", "support", "sales")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    e = create_engine(database_url)
    yield e
    e.dispose()


def _scenario(rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Agents with random queues, states and idle times; callers with random queues,
    priorities and preferred agents (some free, some not, some unknown)."""
    people = []
    for i in range(1, 31):
        a = _agent(i, sorted(rng.sample(QUEUES, rng.randint(0, 2))),
                   rng.choice(["available", "available", "on_call", "offline"]))
        a["state_since"] = OPEN_TIME - timedelta(seconds=rng.randint(0, 5000))
        people.append(a)
    callers = [_entry(i, rng.choice(QUEUES), priority=rng.choice([0, 0, 1]),
                      preferred=rng.choice([None, None, rng.randint(1, 35)]))
               for i in range(1, rng.randint(2, 14))]
    return people, callers


def _expected(engine: Engine, people: Sequence[dict[str, Any]]) -> list[tuple[str, int]]:
    """The plan over the callers a pass reads and every free agent."""
    free = [Free(int(a["id"]), frozenset(a["queues"]), a["state_since"]) for a in people
            if a["state"] == "available"]
    per_queue = Counter(q for a in free for q in a.queues)
    with engine.connect() as conn:
        waiting = repo.waiting_heads(conn, per_queue, len(free))
    return sorted((w.call_sid, a.agent_id) for w, a in plan(waiting, free))


def test_the_offers_are_the_plan_over_every_free_agent(engine: Engine,
                                                       database_url: str) -> None:
    rng = random.Random(18_3)
    checked = 0
    for _ in range(40):
        people, callers = _scenario(rng)
        with engine.begin() as conn:
            for table in (agent_events, agent_state_events, agent_calls, queue_entries,
                          agents):
                conn.execute(delete(table))
            conn.execute(insert(agents), people)
            conn.execute(insert(queue_entries), callers)
        expected = _expected(engine, people)
        assert _route(engine, database_url) == expected
        checked += bool(expected)
    assert checked > 20  # most scenarios offered something


def test_a_pass_does_not_lock_the_free_agents_it_cannot_offer_to(pg_url: str,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 ) -> None:
    """50 free support agents, one support caller: while the pass decides, another
    transaction can still lock every free agent but the longest idle one (it used to find
    all 50 locked), and the caller is offered to that one."""
    engine = create_engine(pg_url)
    try:
        people = []
        for i in range(1, 51):
            a = _agent(i, ["support"], "available")
            a["state_since"] = OPEN_TIME - timedelta(seconds=1000 + i)  # 50 idles longest
            people.append(a)
        with engine.begin() as conn:
            conn.execute(insert(agents), people)
            conn.execute(insert(queue_entries), [_entry(1, "support")])
        other = create_engine(pg_url)
        locked_by_pass: list[int] = []

        def plan_and_probe(calls: Sequence[Waiting], free: Sequence[Free],
                           ) -> list[tuple[Waiting, Free]]:
            with other.connect() as conn:  # SKIP LOCKED: what this one cannot lock
                got = set(conn.execute(text(
                    "SELECT id FROM agents WHERE state = 'available'"
                    " FOR UPDATE SKIP LOCKED")).scalars())
                conn.rollback()
            locked_by_pass.extend(sorted(set(range(1, 51)) - got))
            return plan(calls, free)

        monkeypatch.setattr(agent_service, "plan", plan_and_probe)
        try:
            offers = _route(engine, pg_url)
        finally:
            other.dispose()
        assert locked_by_pass == [50]
        assert offers == [("CA000001", 50)]
    finally:
        engine.dispose()
