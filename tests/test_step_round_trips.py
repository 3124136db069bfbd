"""A menu step's read and write, and what happens when another request answers the same
step between them. On PostgreSQL the step runs on psycopg's pool in autocommit: its read
and its conditional write are a round trip each, with no transaction around them (BEGIN and
COMMIT were two more). The write's ``WHERE step = expected`` is what keeps a step from being
answered twice, on both backends: these tests hold the write back until another answer of
the same step has been committed, and check that the first one then loses cleanly.

A process plans a call's next step from the state it wrote last, without reading the call
(``CallService._remember``); the write then also requires the call's ``status`` and
``ended`` unchanged, and when it changes nothing the step reads the call after all."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from ivr.calls import service as service_module
from ivr.calls.repository import StepStore
from tests.twilio import call_params, new_sid, signed_post


def _call_state(database_url: str, sid: str) -> tuple[int, str, bool, str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            step, response, ended, status = conn.execute(text(
                "SELECT step, last_response, ended, status FROM calls WHERE call_sid = :s"),
                {"s": sid}).one()
    finally:
        engine.dispose()
    return int(step), str(response), bool(ended), str(status)


def _write(database_url: str, statement: str, params: dict[str, Any]) -> None:
    """A change to the calls table committed from outside the app (another process)."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement), params)
    finally:
        engine.dispose()


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
    settings = settings_for(pg_url, menus_dir, db_pool_size=2)
    sid = new_sid()
    with TestClient(create_app(settings, clock)) as client:
        signed_post(client, "/twilio/voice", call_params(sid, "ringing"))
    # Another process takes the step: it has not written this call, so it reads it.
    with TestClient(create_app(settings, clock)) as client:
        answer = signed_post(client, "/twilio/gather?s=1", call_params(sid, Digits="2"))
    assert "/twilio/gather?s=2" in answer.text
    assert statuses == [TransactionStatus.IDLE]
    assert _call_state(pg_url, sid)[0] == 2


def test_a_step_answered_elsewhere_between_its_read_and_its_write_loses(
        client: TestClient, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process's answer of the same step commits after this request read the call
    and before it writes: this request's write changes nothing, and it answers with what the
    other one answered (Twilio's retry gets the same TwiML)."""
    sid = new_sid()
    signed_post(client, "/twilio/voice", call_params(sid, "ringing"))
    elsewhere = "<Response><Say>answered elsewhere</Say></Response>"

    def commit_the_other_answer() -> None:
        _write(database_url, "UPDATE calls SET step = step + 1, last_response = :r "
               "WHERE call_sid = :s", {"r": elsewhere, "s": sid})

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
    assert _call_state(database_url, sid)[:2] == (2, elsewhere)


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The CallSids whose state a step reads from the database, from now on."""
    reads: list[str] = []
    load, aload = StepStore.load, StepStore.aload

    def counting(self: StepStore, raw: Any, call_sid: str) -> Any:
        reads.append(call_sid)
        return load(self, raw, call_sid)

    async def acounting(self: StepStore, aconn: Any, call_sid: str) -> Any:
        reads.append(call_sid)
        return await aload(self, aconn, call_sid)

    monkeypatch.setattr(StepStore, "load", counting)
    monkeypatch.setattr(StepStore, "aload", acounting)
    return reads


def test_a_process_takes_the_next_step_from_what_it_wrote_without_reading(
        client: TestClient, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The call started here and every step was written here: no step reads the call, and
    each answer is the one written (and the menu goes where it goes when the call is read:
    tests/test_webhooks.py's state_survives_a_new_app_instance)."""
    reads = _count_reads(monkeypatch)
    sid = new_sid()
    signed_post(client, "/twilio/voice", call_params(sid, "ringing"))
    first = signed_post(client, "/twilio/gather?s=1", call_params(sid, Digits="2"))
    assert "/twilio/gather?s=2" in first.text
    assert _call_state(database_url, sid)[:2] == (2, first.text)
    second = signed_post(client, "/twilio/gather?s=2", call_params(sid, Digits="1"))
    assert "Transferring you to billing." in second.text
    assert _call_state(database_url, sid)[:2] == (3, second.text)
    assert reads == []
    # Twilio's retry of the step just answered: planned from step 3, it is not that step;
    # the call is read and the answer repeated.
    retry = signed_post(client, "/twilio/gather?s=2", call_params(sid, Digits="1"))
    assert retry.text == second.text
    assert reads == [sid]


def test_a_status_written_elsewhere_makes_the_step_read_the_call(
        client: TestClient, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process recorded the call's end (``record_status``: status and ended, the
    step unchanged) after this one wrote its state. The step planned from that state writes
    nothing; the call is read, and its end stays recorded."""
    reads = _count_reads(monkeypatch)
    sid = new_sid()
    signed_post(client, "/twilio/voice", call_params(sid, "ringing"))
    _write(database_url, "UPDATE calls SET status = 'completed', ended = :t "
           "WHERE call_sid = :s", {"t": True, "s": sid})
    answer = signed_post(client, "/twilio/gather?s=1", call_params(sid, Digits="2"))
    assert answer.status_code == 200
    assert reads == [sid]
    step, _response, ended, status = _call_state(database_url, sid)
    assert (ended, status) == (True, "completed")
    assert step == 2


def test_a_status_callback_here_makes_the_next_step_read_the_call(
        client: TestClient, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A status callback this process records forgets the state it kept for the call: the
    next step reads the call first and writes once (no write planned from what was kept,
    which the changed status would refuse)."""
    reads = _count_reads(monkeypatch)
    writes: list[str] = []
    save, asave = StepStore.save, StepStore.asave

    def counting(self: StepStore, raw: Any, params: Any, *args: Any) -> bool:
        writes.append(params["sid"])
        return save(self, raw, params, *args)

    async def acounting(self: StepStore, aconn: Any, params: Any, *args: Any) -> bool:
        writes.append(params["sid"])
        return await asave(self, aconn, params, *args)

    monkeypatch.setattr(StepStore, "save", counting)
    monkeypatch.setattr(StepStore, "asave", acounting)
    sid = new_sid()
    signed_post(client, "/twilio/voice", call_params(sid, "ringing"))
    assert signed_post(client, "/twilio/status",
                       call_params(sid, "in-progress", SequenceNumber="1")).status_code == 200
    answer = signed_post(client, "/twilio/gather?s=1", call_params(sid, Digits="2"))
    assert "/twilio/gather?s=2" in answer.text
    assert reads == writes == [sid]
    assert _call_state(database_url, sid)[::3] == (2, "in-progress")


def test_a_process_keeps_the_last_calls_it_wrote_and_reads_the_ones_it_forgot(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a process keeps is bounded (``WRITTEN_KEPT`` calls, a flood of calls cannot
    grow it): the call written longest ago is forgotten first, and its next step reads it."""
    monkeypatch.setattr(service_module, "WRITTEN_KEPT", 2)
    reads = _count_reads(monkeypatch)
    sids = [new_sid() for _ in range(3)]
    for sid in sids:
        signed_post(client, "/twilio/voice", call_params(sid, "ringing"))
    for sid in reversed(sids):
        answer = signed_post(client, "/twilio/gather?s=1", call_params(sid, Digits="2"))
        assert "/twilio/gather?s=2" in answer.text
    assert reads == [sids[0]]
