"""The routing decision alone (``ivr.agents.routing.plan``): a pure function."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ivr.agents.routing import Free, Waiting, plan

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def call(n: int, queue: str = "support", priority: int = 0, waited: int = 0,
         preferred: int | None = None) -> Waiting:
    return Waiting(n, f"CA{n}", queue, priority, T0 - timedelta(seconds=waited), preferred)


def agent(n: int, *queues: str, idle: int = 0) -> Free:
    return Free(n, frozenset(queues or ("support",)), T0 - timedelta(seconds=idle))


def pairs(calls: list[Waiting], agents: list[Free]) -> list[tuple[int, int]]:
    return [(c.entry_id, a.agent_id) for c, a in plan(calls, agents)]


@pytest.mark.parametrize(("calls", "agents", "expected"), [
    # one agent: the longest-waiting call
    ([call(1, waited=10), call(2, waited=30)], [agent(7)], [(2, 7)]),
    # priority before waiting time
    ([call(1, waited=300), call(2, priority=5, waited=1)], [agent(7)], [(2, 7)]),
    # equal priority and time: the entry that joined first (lower id)
    ([call(2, waited=5), call(1, waited=5)], [agent(7)], [(1, 7)]),
    # the agent idle longest takes the first call
    ([call(1, waited=9), call(2, waited=1)], [agent(7, idle=5), agent(8, idle=50)],
     [(1, 8), (2, 7)]),
    # an agent only takes calls of their queues; a call nobody serves does not block others
    ([call(1, "billing", waited=99), call(2, waited=1)], [agent(7)], [(2, 7)]),
    # no free agent: nothing
    ([call(1)], [], []),
    # no call: nothing
    ([], [agent(7)], []),
    # the preferred agent (who handled the repeat caller) when free, even outside the queue
    ([call(1, waited=60), call(2, "retention", waited=1, preferred=8)],
     [agent(7, idle=100), agent(8, "billing", idle=1)], [(1, 7), (2, 8)]),
    # preferred agent busy (not free): anyone of the queue, in the usual order
    ([call(1, waited=10, preferred=99)], [agent(7)], [(1, 7)]),
    # more calls than agents: the first ones in order, one each
    ([call(i, waited=100 - i) for i in range(1, 6)], [agent(7), agent(8, idle=1)],
     [(1, 8), (2, 7)]),
])
def test_plan(calls: list[Waiting], agents: list[Free], expected: list[tuple[int, int]]
              ) -> None:
    assert pairs(calls, agents) == expected


def test_a_preferred_agent_taken_by_an_earlier_call_leaves_the_next_one_to_others() -> None:
    calls = [call(1, priority=9, waited=1, preferred=8), call(2, waited=50, preferred=8)]
    assert pairs(calls, [agent(7), agent(8)]) == [(1, 8), (2, 7)]


def test_no_agent_gets_two_calls_and_no_call_two_agents() -> None:
    calls = [call(i, "support" if i % 2 else "billing", priority=i % 3, waited=i)
             for i in range(1, 40)]
    agents = [agent(100 + i, "support", "billing", idle=i) for i in range(15)]
    result = plan(calls, agents)
    assert len(result) == 15
    assert len({c.entry_id for c, _ in result}) == 15
    assert len({a.agent_id for _, a in result}) == 15


# Found by mutation testing (tests/mutation.sh): the SLA deadline orders the calls.

def waiting(n: int, waited: int, deadline_in: int | None, kind: str = "call") -> Waiting:
    deadline = None if deadline_in is None else T0 + timedelta(seconds=deadline_in)
    return Waiting(n, f"CA{n}", "support", 0, T0 - timedelta(seconds=waited), None, deadline,
                   kind)


@pytest.mark.parametrize(("calls", "expected"), [
    # the earlier deadline first, though the other caller joined earlier
    ([waiting(1, waited=60, deadline_in=1800), waiting(2, waited=10, deadline_in=600)],
     [(2, 7)]),
    # a due callback and a live call, ordered by their deadlines alike
    ([waiting(1, waited=60, deadline_in=1800),
      waiting(2, waited=10, deadline_in=600, kind="callback")], [(2, 7)]),
    # no deadline: the time joined stands in for it
    ([waiting(1, waited=60, deadline_in=None), waiting(2, waited=10, deadline_in=600)],
     [(1, 7)]),
    ([waiting(1, waited=60, deadline_in=-120), waiting(2, waited=600, deadline_in=None)],
     [(2, 7)]),
])
def test_the_earliest_deadline_goes_first(calls: list[Waiting],
                                          expected: list[tuple[int, int]]) -> None:
    assert pairs(calls, [agent(7)]) == expected
    assert pairs(calls[::-1], [agent(7)]) == expected
