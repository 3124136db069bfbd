"""The repeat-caller banner names what the last call was about, or nothing (issue 14, item 2):
"called 52 minutes ago about phone-line" was wrong when the call 52 minutes ago had no
topic and phone-line was a call two hours earlier. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, insert

from crm_sync.models import Customer, Interaction
from crm_sync.screenpop import customer_context
from ivr.core.clock import FrozenClock

CUSTOMER = 7


@pytest.fixture
def engine(database_url: str, clock: FrozenClock) -> Iterator[Engine]:
    e = create_engine(database_url)
    now = clock.now()
    with e.begin() as conn:
        conn.execute(insert(Customer), {
            "id": CUSTOMER, "account_number": "7007", "name": "Miriam", "tier": "standard",
            "status": "active", "preferred_language": "he-IL", "lineage": {},
            "created_at": now, "updated_at": now})
    yield e
    e.dispose()


def contact(engine: Engine, now: datetime, minutes_ago: int, topic: str | None,
            direction: str = "in", call_sid: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(insert(Interaction), {
            "customer_id": CUSTOMER, "channel": "call", "direction": direction,
            "started_at": now - timedelta(minutes=minutes_ago), "topic": topic,
            "call_sid": call_sid})


def repeat(engine: Engine, now: datetime, call_sid: str | None = None) -> dict[str, Any]:
    with engine.connect() as conn:
        ctx = customer_context(conn, CUSTOMER, now, call_sid=call_sid)
    return dict(ctx["repeat"])


def test_the_last_call_had_no_topic_so_none_is_named(engine: Engine,
                                                     clock: FrozenClock) -> None:
    now = clock.now()
    contact(engine, now, 120 * 24 * 60, "billing-dispute")
    contact(engine, now, 52 + 120, "phone-line")
    contact(engine, now, 52, None)
    got = repeat(engine, now)
    assert got == {"is_repeat": True, "minutes_since_last_call": 52, "last_topic": None,
                   "text": "called 52 minutes ago"}


def test_the_last_call_had_a_topic_so_that_one_is_named(engine: Engine,
                                                        clock: FrozenClock) -> None:
    now = clock.now()
    contact(engine, now, 120 * 24 * 60, "billing-dispute")
    contact(engine, now, 52 + 120, "phone-line")
    contact(engine, now, 52, "router-reset")
    got = repeat(engine, now)
    assert got["text"] == "called 52 minutes ago about router-reset"
    assert got["last_topic"] == "router-reset"


def test_our_later_call_out_is_not_what_they_called_about(engine: Engine,
                                                         clock: FrozenClock) -> None:
    now = clock.now()
    contact(engine, now, 30, None)                          # they called, no topic
    contact(engine, now, 10, "refund", direction="out")     # we called them since
    assert repeat(engine, now)["text"] == "called 30 minutes ago"


def test_the_call_being_answered_is_not_the_last_call(engine: Engine,
                                                      clock: FrozenClock) -> None:
    now = clock.now()
    contact(engine, now, 40, "phone-line")
    contact(engine, now, 1, None, call_sid="CA-now")  # this very call, written already
    got = repeat(engine, now, call_sid="CA-now")
    assert got["text"] == "called 40 minutes ago about phone-line"


def test_the_topic_of_a_last_call_beyond_the_recent_list_is_still_found(
        engine: Engine, clock: FrozenClock) -> None:
    now = clock.now()
    contact(engine, now, 50, "phone-line")
    for minutes in range(1, 8):  # seven calls out since: more than the pop's recent five
        contact(engine, now, minutes, f"follow-up-{minutes}", direction="out")
    assert repeat(engine, now)["text"] == "called 50 minutes ago about phone-line"
