"""A menu step's read and write, and what happens when another request answers the same
step between them. On PostgreSQL the step runs on psycopg's pool in autocommit: its read
and its conditional write are a round trip each, with no transaction around them (BEGIN and
COMMIT were two more). The write's ``WHERE step = expected`` is what keeps a step from being
answered twice, on both backends: these tests hold the write back until another answer of
the same step has been committed, and check that the first one then loses cleanly."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from ivr.calls.repository import StepStore
from tests.twilio import call_params, new_sid, signed_post


def _step_row(database_url: str, sid: str) -> tuple[int, str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            step, response = conn.execute(text(
                "SELECT step, last_response FROM calls WHERE call_sid = :s"),
                {"s": sid}).one()
    finally:
        engine.dispose()
    return int(step), str(response)


def test_a_postgresql_step_reads_outside_a_transaction(
        pg_url: str, menus_dir: Any, clock: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the step's read the pooled connection is idle, not inside a transaction: no
    BEGIN went before the read, and no COMMIT follows the write."""
    from ivr.app import create_app
    from tests.conftest import settings_for

    statuses: list[TransactionStatus] = []
    read = StepStore.aload

    async def spying(self: StepStore, aconn: Any, call_sid: str) -> Any:
        row = await read(self, aconn, call_sid)
        statuses.append(aconn.info.transaction_status)
        return row

    monkeypatch.setattr(StepStore, "aload", spying)
    with TestClient(create_app(settings_for(pg_url, menus_dir, db_pool_size=2),
                               clock)) as client:
        sid = new_sid()
        signed_post(client, "/twilio/voice", call_params(sid, "ringing"))
        answer = signed_post(client, "/twilio/gather?s=1", call_params(sid, Digits="2"))
    assert "/twilio/gather?s=2" in answer.text
    assert statuses == [TransactionStatus.IDLE]
    assert _step_row(pg_url, sid)[0] == 2


def test_a_step_answered_elsewhere_between_its_read_and_its_write_loses(
        client: TestClient, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process's answer of the same step commits after this request read the call
    and before it writes: this request's write changes nothing, and it answers with what the
    other one answered (Twilio's retry gets the same TwiML)."""
    sid = new_sid()
    signed_post(client, "/twilio/voice", call_params(sid, "ringing"))
    elsewhere = "<Response><Say>answered elsewhere</Say></Response>"

    def commit_the_other_answer() -> None:
        engine = create_engine(database_url)
        try:
            with engine.begin() as conn:
                conn.execute(text("UPDATE calls SET step = step + 1, last_response = :r "
                                  "WHERE call_sid = :s"), {"r": elsewhere, "s": sid})
        finally:
            engine.dispose()

    sync_save, async_save = StepStore.save, StepStore.asave

    def save(self: StepStore, raw: Any, *args: Any) -> bool:
        commit_the_other_answer()
        return sync_save(self, raw, *args)

    async def asave(self: StepStore, aconn: Any, *args: Any) -> bool:
        commit_the_other_answer()
        return await async_save(self, aconn, *args)

    monkeypatch.setattr(StepStore, "save", save)
    monkeypatch.setattr(StepStore, "asave", asave)
    answer = signed_post(client, "/twilio/gather?s=1", call_params(sid, Digits="2"))
    assert answer.status_code == 200
    assert answer.text == elsewhere
    assert _step_row(database_url, sid) == (2, elsewhere)
