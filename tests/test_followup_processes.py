"""Follow-up calls across real processes (the crash test of issue 17.2).

Two ``ivr worker`` processes on one PostgreSQL and the Twilio REST stand-in served over HTTP
(``IVR_TWILIO_API_BASE_URL``). A closed incident is due for its satisfaction call (a policy
open all week, the same day); a worker claims it and calls ``calls.create``; the stand-in
holds that create and the worker holding the claim is SIGKILLed in the middle of it:

* Twilio never got the create: after the lease the other worker asks Twilio (no call to the
  number since the claim), takes the claim over (attempt 1 ``lost``) and dials: once;
* Twilio did get it: after the lease the other worker finds the call live, adopts its
  CallSid and extends the lease: nobody dials again.

The processes use the real clock (the window is open at every hour)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, create_engine, select, update

from callbacks.followups.models import followup_attempts, followups
from callbacks.followups.policy import load_policy
from crm_sync.models import incidents
from ivr.core.clock import SystemClock
from tests.live_server import ServerThread
from tests.test_callback_processes import (
    CALLER_ID,
    DANA,
    LEASE,
    SLOW,
    FirstCreate,
    Proc,
    _alive,
    _kill,
    base_env,
    owner_pid,
    seed,
    started,
    wait_for,
    worker,
)
from tests.twilio_standin import ACCOUNT_SID, TwilioStandIn

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _open_all_week(tmp_path: Path) -> Path:
    text = (ROOT / "followups.yaml").read_text(encoding="utf-8")
    for day in ("sun", "mon", "tue", "wed", "thu"):
        text = text.replace(f'    {day}: ["10:00-18:00"]', f'    {day}: ["00:00-24:00"]')
    text = text.replace("  holidays: {country: IL}\n",
                        '    fri: ["00:00-24:00"]\n    sat: ["00:00-24:00"]\n')
    text = text.replace("delay_days: 1", "delay_days: 0")
    path = tmp_path / "followups.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_policy(path).satisfaction.delay_days == 0  # a mistake fails here
    return path


@dataclass
class Centre:
    workers: list[Proc]
    engine: Engine
    standin: TwilioStandIn

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.workers)

    def followup(self) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(followups)).one()

    def attempts(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(followup_attempts)
                                     .order_by(followup_attempts.c.id)))

    def holder(self) -> tuple[Proc, Proc]:
        pid = owner_pid(self.followup().lease_owner)
        [victim] = [w for w in self.workers if w.pid == pid]
        [other] = [w for w in self.workers if w.pid != pid]
        return victim, other


@contextmanager
def centre(database_url: str, menus_dir: Path, tmp_path: Path, standin: TwilioStandIn,
           gate: FirstCreate) -> Iterator[Centre]:
    seed(database_url)
    engine = create_engine(database_url)
    with engine.begin() as conn:  # closed yesterday: due today, now (the window is open)
        conn.execute(update(incidents).values(
            status="closed", closed_at=SystemClock().now() - timedelta(days=1)))
    with ExitStack() as stack:
        stack.callback(engine.dispose)
        api = ServerThread(cast(FastAPI, standin.app()))
        api.start()
        stack.callback(api.stop)
        stack.callback(gate.release.set)
        env = base_env(database_url, menus_dir, tmp_path,
                       IVR_PUBLIC_URL="http://127.0.0.1:9",  # no server: no status news
                       IVR_TWILIO_ACCOUNT_SID=ACCOUNT_SID,
                       IVR_TWILIO_API_BASE_URL=f"http://{api.host}:{api.port}",
                       IVR_FOLLOWUPS_FILE=str(_open_all_week(tmp_path)),
                       IVR_FOLLOWUP_LEASE_SECONDS=str(LEASE), IVR_FOLLOWUP_EVERY_S="0.2",
                       IVR_CALLBACK_EVERY_S="5")
        workers = [stack.enter_context(worker(f"worker-{i}", env, tmp_path)) for i in (1, 2)]
        for w in workers:
            started(w)
        yield Centre(workers, engine, standin)


def _claimed_and_held(c: Centre, gate: FirstCreate) -> tuple[Proc, Proc]:
    assert wait_for("a worker calls calls.create", gate.arrived.is_set, 90.0, c.logs)
    f = c.followup()
    assert f.status == "dialing"
    victim, other = c.holder()
    [attempt] = c.attempts()
    assert attempt.claimed_by == f.lease_owner and attempt.call_sid is None
    return victim, other


def test_a_worker_killed_before_twilio_got_the_create_is_taken_over_and_dialled_once(
        pg_url: str, menus_dir: Path, tmp_path: Path) -> None:
    standin, gate = TwilioStandIn(), FirstCreate()
    standin.before_create = gate.before
    with centre(pg_url, menus_dir, tmp_path, standin, gate) as c:
        victim, other = _claimed_and_held(c, gate)
        _kill(victim)
        gate.release.set()  # the held create is refused: Twilio never got it
        [created] = wait_for("the other worker dials", lambda: list(standin.created),
                             LEASE + SLOW, c.logs)
        assert (created["To"], created["From"]) == (DANA, CALLER_ID)
        assert created["Url"] == "http://127.0.0.1:9/twilio/followup-answer?a=2"
        assert created["MachineDetection"] == "Enable"
        wait_for("the dial is stored", lambda: c.attempts()[-1].call_sid, SLOW, c.logs)
        assert [(a.attempt_no, a.outcome, a.call_sid, owner_pid(a.claimed_by))
                for a in c.attempts()] == [(1, "lost", None, victim.pid),
                                           (2, None, created["sid"], other.pid)]
        # No status callback ever comes (no server): each lapsed lease asks Twilio, which
        # says the call is queued; it is never dialled again.
        time.sleep(3 * LEASE)
        assert len(standin.created) == 1, "the customer was dialled twice"
        assert standin.fetched and set(standin.fetched) == {created["sid"]}
        f = c.followup()
        assert (f.status, f.attempts) == ("dialing", 0)
        _alive(other)


def test_a_worker_killed_after_twilio_got_the_create_is_not_dialled_again(
        pg_url: str, menus_dir: Path, tmp_path: Path) -> None:
    standin, gate = TwilioStandIn(), FirstCreate()
    standin.after_create = gate.after
    with centre(pg_url, menus_dir, tmp_path, standin, gate) as c:
        victim, other = _claimed_and_held(c, gate)
        [created] = standin.created
        standin.call_status[created["sid"]] = "ringing"
        _kill(victim)
        gate.release.set()
        # After the lease the other worker asks Twilio for calls to her since the claim,
        # finds this one ringing, adopts its CallSid and keeps the claim.
        wait_for("the other worker adopts the call", lambda: c.attempts()[0].call_sid,
                 LEASE + SLOW, c.logs)
        time.sleep(3 * LEASE)
        assert len(standin.created) == 1, "the customer was dialled twice"
        [attempt] = c.attempts()
        assert (attempt.call_sid, attempt.outcome) == (created["sid"], None)
        assert c.followup().status == "dialing"
        assert standin.listed and standin.listed[0]["To"] == DANA
        _alive(other)
