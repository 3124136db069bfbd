"""A routing pass that meets its match held by another transaction says so (issue 18).

On PostgreSQL a pass skips the rows another transaction holds (``SKIP LOCKED``): a caller's
own wait round updates its queue entry, an agent's request its agent row. Such a pass used
to end with nothing offered, and the caller waited for the next sweep (a second by default:
``test_screen_pop_reaches_the_console_of_one_process`` saw it). Now the pass reports the
match it could not make (``RoutingPass.contended``) and the routing loop tries again in a
moment (tests/test_routing_loop.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, insert, update

from ivr.agents.models import agents, queue_entries
from ivr.agents.ports import RoutingPass
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from ivr.services import build_services
from tests.conftest import OPEN_TIME
from tests.test_routing_heads import _agent, _entry

ROOT = Path(__file__).resolve().parents[1]


def _pass(engine: Engine, url: str) -> RoutingPass:
    settings = Settings(_env_file=None, database_url=url,
                        callbacks_file=ROOT / "callbacks.yaml", twilio_auth_token="t",
                        watch_menus=False)
    return build_services(engine, settings, FrozenClock(OPEN_TIME)).agents.route()


def _made(done: RoutingPass) -> list[tuple[str, int]]:
    return [(o.call_sid, o.agent_id) for o in done.offers]


@pytest.fixture
def pg(pg_url: str) -> Iterator[tuple[Engine, str]]:
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(insert(agents), [_agent(1, ["support"], "available")])
        conn.execute(insert(queue_entries), [_entry(1, "support")])
    yield engine, pg_url
    engine.dispose()


@pytest.mark.parametrize("held", ["the caller's entry", "the agent"])
def test_a_pass_that_meets_its_match_held_says_so(pg: tuple[Engine, str], held: str) -> None:
    engine, url = pg
    with engine.connect() as other:
        # Another transaction holds a row of the match, uncommitted: the caller's wait round
        # (its entry heard from) or the agent's own request.
        with other.begin():
            if held == "the agent":
                other.execute(update(agents).where(agents.c.id == 1)
                              .values(updated_at=OPEN_TIME))
            else:
                other.execute(update(queue_entries).where(queue_entries.c.id == 1)
                              .values(last_seen_at=OPEN_TIME))
            done = _pass(engine, url)
            assert _made(done) == []
            assert done.contended
        # committed: the next pass makes the match
        done = _pass(engine, url)
        assert _made(done) == [("CA000001", 1)]
        assert not done.contended


def test_a_pass_with_nothing_to_match_is_not_contended(database_url: str) -> None:
    """A caller of billing waits, the free agent serves support: nothing to match, nothing
    held, no retry asked for (both databases)."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(agents), [_agent(1, ["support"], "available")])
            conn.execute(insert(queue_entries), [_entry(1, "billing")])
        done = _pass(engine, database_url)
        assert _made(done) == [] and not done.contended
        with engine.begin() as conn:
            conn.execute(insert(queue_entries), [_entry(2, "support")])
        done = _pass(engine, database_url)
        assert _made(done) == [("CA000002", 1)] and not done.contended
    finally:
        engine.dispose()
