"""Callbacks across real processes (issue 5, the crash test; issue 6's fault suite).

The crash test: two ``ivr worker`` processes and one ``ivr serve`` (which answers the
webhooks and does not dispatch callbacks) on one PostgreSQL, and the Twilio REST stand-in
served for real over HTTP (``IVR_TWILIO_API_BASE_URL``). A caller asks for a callback
through the server's webhooks, an agent goes available, a worker claims the callback and
calls ``calls.create``; the stand-in holds that create, and the worker holding the claim
is killed (SIGKILL) in the middle of it. Then:

* Twilio never got the create: after the lease the other worker takes the claim over (the
  attempt ends ``lost``, the request is due again at once) and dials; the customer is
  called once and talks to the agent;
* Twilio did get it (the call is ringing; its status callbacks reach the server, which
  learns the CallSid): after the lease the other worker asks Twilio, sees the call live and
  extends the lease; nobody dials again, and Twilio's callbacks complete the request.

The demo: one ``ivr serve`` without Twilio credentials, whose local dialer plays Twilio's
side of the callback against the server itself; the callback completes end to end.

Time: the processes use the real clock, so the menus and the callback policy are open all
week, at every hour (no holidays, no quiet hours)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, create_engine, insert, select
from starlette.responses import JSONResponse, Response

from callbacks.models import callback_attempts, callback_events, callback_requests
from callbacks.policy import load_policies
from crm_sync.models import Customer, CustomerPhone, Incident
from ivr.agents import repository as repo
from ivr.agents.models import agent_calls, agents
from ivr.core.clock import SystemClock
from tests.agent_flow import TwilioDriver
from tests.callback_flow import OPEN_ALL_WEEK, CallbackDriver, Placed
from tests.live_server import ServerThread
from tests.test_processes import always_open
from tests.twilio_standin import ACCOUNT_SID, AUTH_TOKEN, TwilioStandIn

pytestmark = pytest.mark.slow

DANA = "+972501234567"   # premium, an open incident: her call goes to support-open-incidents
YOSSI = "+972527654321"
CALLER_ID = "+97235550100"
# IVR_CALLBACK_LEASE_SECONDS: how long a claim holds without news (longer than a claim
# takes to reach calls.create on a loaded machine, or the takeover comes before the kill)
LEASE = 3.0
# Deadlines for polling (two cores shared with other suites and benchmarks: generous).
START = 90.0  # a process starting (imports, migrations, menus)
SLOW = 30.0  # a step across processes
T = TypeVar("T")


# ------------------------------------------------------------------ plumbing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], T | None], timeout: float,
             diagnose: Callable[[], str] = lambda: "") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s\n{diagnose()}")
        time.sleep(0.05)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, chars: int = 3000) -> str:
        return f"--- {self.name} (pid {self.pid}):\n" + \
            self.log.read_text(encoding="utf-8", errors="replace")[-chars:]


@contextmanager
def ivr_process(name: str, args: list[str], env: dict[str, str], logdir: Path,
                ) -> Iterator[Proc]:
    """``python -m ivr.cli ARGS`` with its output in ``logdir/NAME.log``; stopped (SIGTERM,
    then SIGKILL) at the end unless it is gone already."""
    log = logdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen([sys.executable, "-m", "ivr.cli", *args], env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        yield Proc(name, popen, log)
    finally:
        if popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(10)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(10)


def _alive(proc: Proc) -> None:
    if proc.popen.poll() is not None:
        raise AssertionError(f"{proc.name} exited with {proc.popen.returncode}\n"
                             f"{proc.tail()}")


@contextmanager
def serve(env: dict[str, str], port: int, logdir: Path) -> Iterator[tuple[str, Proc]]:
    url = f"http://127.0.0.1:{port}"
    with ivr_process(f"serve-{port}", ["serve", "--port", str(port)], env, logdir) as proc:
        def healthy() -> bool:
            _alive(proc)
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for("the server answers /healthz", healthy, START, proc.tail)
        yield url, proc


def worker(name: str, env: dict[str, str], logdir: Path) -> AbstractContextManager[Proc]:
    """``ivr worker`` with only its callbacks job; ``started`` waits until it runs."""
    return ivr_process(name, ["worker", "--no-sync", "--no-outbox"], env, logdir)


def started(proc: Proc) -> None:
    def running() -> bool:
        _alive(proc)
        return "worker: callbacks every" in proc.log.read_text(errors="replace")

    wait_for(f"{proc.name} runs its callbacks job", running, START, proc.tail)


def base_env(database_url: str, menus_dir: Path, tmp_path: Path, **extra: str,
             ) -> dict[str, str]:
    """The processes' settings: nothing from this shell's IVR_* variables leaks in."""
    policy = tmp_path / "callbacks.yaml"
    if not policy.exists():
        policy.write_text(OPEN_ALL_WEEK, encoding="utf-8")
        load_policies(policy)  # a mistake in the copy fails here, not in a process
    crm = tmp_path / "crm"  # no sources, no subscribers
    crm.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    return {**env, "IVR_DATABASE_URL": database_url, "IVR_MENUS_DIR": str(menus_dir),
            "IVR_TWILIO_AUTH_TOKEN": AUTH_TOKEN, "IVR_WATCH_MENUS": "false",
            "IVR_CALLBACKS_FILE": str(policy), "IVR_CRM_DIR": str(crm),
            "IVR_CALLBACK_CALLER_ID": CALLER_ID, "IVR_LOG_LEVEL": "info", **extra}


def seed(database_url: str) -> None:
    """``tests.agent_fixtures.people`` on the real clock: Dana (premium, an incident opened
    an hour ago at the Haifa branch), Yossi; agents dana.agent, avi and boss (admin)."""
    now = SystemClock().now()
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(insert(Customer), [
            {"id": 1, "account_number": "1001", "name": "דנה כהן", "tier": "premium",
             "status": "active", "preferred_language": "he-IL", "lineage": {},
             "created_at": now, "updated_at": now},
            {"id": 2, "account_number": "1002", "name": "Yossi Levi", "tier": "standard",
             "status": "active", "preferred_language": "en-US", "lineage": {},
             "created_at": now, "updated_at": now}])
        conn.execute(insert(CustomerPhone), [{"customer_id": 1, "e164": DANA},
                                             {"customer_id": 2, "e164": YOSSI}])
        conn.execute(insert(Incident), {
            "customer_id": 1, "source": "branch-haifa", "external_id": "H-77",
            "status": "open", "category": "internet", "branch": "Haifa",
            "summary": "האינטרנט מתנתק כל כמה דקות", "opened_at": now - timedelta(hours=1),
            "last_update_at": now - timedelta(hours=1)})
        for username, name, queues, role in (
                ("dana.agent", "Noa Mizrahi", ["support-open-incidents", "operator"], "agent"),
                ("avi", "Avi Ben-David", ["support-open-incidents", "billing"], "agent"),
                ("boss", "Rivka Supervisor", [], "admin")):
            repo.create_agent(conn, username=username, name=name,
                              password=f"{username}-pw", role=role, queues=queues,
                              reach_kind="client", reach_target=username, now=now)
    engine.dispose()


# ------------------------------------------------------------------ the product's side


def login(url: str, username: str) -> dict[str, str]:
    r = httpx.post(f"{url}/agent/login", json={"username": username,
                                               "password": f"{username}-pw"}, timeout=10)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def go_available(url: str, auth: dict[str, str]) -> None:
    r = httpx.post(f"{url}/agent/state", json={"state": "available"}, headers=auth,
                   timeout=10)
    assert r.status_code == 200, r.text


def wrap_up(url: str, auth: dict[str, str], key: str) -> dict[str, Any]:
    r = httpx.post(f"{url}/agent/calls/{key}/wrapup", headers=auth, timeout=10, json={
        "topic": "internet", "outcome": "called back", "resolved": True})
    assert r.status_code == 201, r.text
    return dict(r.json())


def ask_for_callback(client: httpx.Client, url: str) -> CallbackDriver:
    """Dana calls, waits, presses 1 at the offer and confirms her number; the confirmation
    ends the call (the request is committed before it is spoken)."""
    twilio = TwilioDriver(client, url, AUTH_TOKEN)
    cb = CallbackDriver(twilio)
    sid = twilio.start(DANA, ["2"])
    cb.accept_offer(sid)
    xml = cb.press(sid, "1")
    assert ET.fromstring(xml)[-1].tag == "Hangup", xml
    twilio.caller_hangs_up(sid)
    return cb


def placed(created: dict[str, str]) -> Placed:
    """A call the stand-in recorded, as the driver plays it."""
    return Placed(created["sid"], created["To"], created["From"], created["Url"],
                  created["StatusCallback"], created.get("MachineDetection") == "Enable")


def picks_up(cb: CallbackDriver, call: Placed) -> None:
    """Twilio fetches the answer URL (a person answered): the ``<Dial>`` to the agent."""
    xml = cb.twilio.post(call.url, cb._params(call, CallStatus="in-progress",
                                              AnsweredBy="human"))
    dial = ET.fromstring(xml).find("Dial")
    assert dial is not None, xml
    call.dial_action = dial.get("action")
    call.leg_callback = next(iter(dial)).get("statusCallback")


def talk_and_hang_up(cb: CallbackDriver, call: Placed) -> None:
    cb.agent_answers(call)
    assert ET.fromstring(cb.dial_ends(call, "completed")).find("Hangup") is not None
    cb.status(call, "completed")


def one_request(engine: Engine) -> Any:
    with engine.connect() as conn:
        [req] = conn.execute(select(callback_requests)).all()
    return req


def attempts(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(callback_attempts).order_by(callback_attempts.c.id)))


def events(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(callback_events).order_by(callback_events.c.id)))


def offers(engine: Engine) -> list[tuple[str, str | None, bool]]:
    """The agent's side of each attempt: (key, outcome, answered)."""
    with engine.connect() as conn:
        return [(o.call_sid, o.outcome, o.answered_at is not None) for o in conn.execute(
            select(agent_calls).order_by(agent_calls.c.id))]


def agent_row(engine: Engine, username: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(agents).where(agents.c.username == username)).one()


def owner_pid(owner: str | None) -> int:
    """``lease_owner`` / ``claimed_by`` is host:pid:random."""
    assert owner, "nobody holds the claim"
    return int(owner.split(":")[1])


# ------------------------------------------------------------------ the crash test


class FirstCreate:
    """Holds the first ``calls.create`` until ``release``: before Twilio records it
    (``before``: the stand-in then answers an error that nobody reads, and nothing was
    created) or after (``after``: Twilio has the call, its answer hangs)."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._seen = 0

    def _first(self) -> bool:
        with self._lock:
            self._seen += 1
            return self._seen == 1

    def before(self, form: dict[str, str]) -> Response | None:
        if not self._first():
            return None
        self.arrived.set()
        self.release.wait(60)
        return JSONResponse({"code": 20500, "message": "the client went away"}, 500)

    def after(self, created: dict[str, str]) -> None:
        if self._first():
            self.arrived.set()
            self.release.wait(60)


@dataclass
class Centre:
    url: str
    server: Proc
    workers: list[Proc]
    engine: Engine
    standin: TwilioStandIn
    client: httpx.Client

    def logs(self) -> str:
        return "\n".join(p.tail() for p in (self.server, *self.workers))

    def holder(self) -> tuple[Proc, Proc]:
        """The worker holding the request's claim, and the other one."""
        pid = owner_pid(one_request(self.engine).lease_owner)
        [victim] = [w for w in self.workers if w.pid == pid]
        [other] = [w for w in self.workers if w.pid != pid]
        return victim, other


@contextmanager
def centre(database_url: str, menus_dir: Path, tmp_path: Path, standin: TwilioStandIn,
           gate: FirstCreate) -> Iterator[Centre]:
    """The stand-in of Twilio's REST API (uvicorn in a thread), one server that answers
    the webhooks and routes live calls but leaves callbacks to the workers, two workers."""
    always_open(menus_dir)
    seed(database_url)
    with ExitStack() as stack:
        # ServerThread serves any ASGI app; it is typed for the product's FastAPI.
        api = ServerThread(cast(FastAPI, standin.app()))
        api.start()
        stack.callback(api.stop)
        stack.callback(gate.release.set)  # a failing test does not leave a create held
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = base_env(database_url, menus_dir, tmp_path,
                       IVR_PUBLIC_URL=url, IVR_TWILIO_ACCOUNT_SID=ACCOUNT_SID,
                       IVR_TWILIO_API_BASE_URL=f"http://{api.host}:{api.port}",
                       IVR_CALLBACK_LEASE_SECONDS=str(LEASE), IVR_CALLBACK_EVERY_S="0.2")
        # The workers start while the server does (two cores: start-up is most of the time).
        workers = [stack.enter_context(worker(f"worker-{i}", env, tmp_path)) for i in (1, 2)]
        _, server = stack.enter_context(serve(
            {**env, "IVR_DISPATCH_CALLBACKS": "false", "IVR_ROUTE_EVERY_SECONDS": "0.2"},
            port, tmp_path))
        for w in workers:
            started(w)
        engine = create_engine(database_url)
        stack.callback(engine.dispose)
        client = stack.enter_context(httpx.Client(base_url=url, timeout=15))
        yield Centre(url, server, workers, engine, standin, client)


def _claimed_and_held(c: Centre, gate: FirstCreate) -> tuple[Proc, Proc, Any]:
    """The agent's availability lets a worker claim the callback; its create is held."""
    assert one_request(c.engine).status == "pending"
    noa = login(c.url, "dana.agent")
    go_available(c.url, noa)
    assert wait_for("a worker calls calls.create", gate.arrived.is_set, SLOW,
                    c.logs)
    req = one_request(c.engine)
    assert req.status == "dialing"
    victim, other = c.holder()
    [attempt] = attempts(c.engine)
    assert attempt.claimed_by == req.lease_owner and attempt.agent_key == "CB1"
    assert agent_row(c.engine, "dana.agent").state == "reserved"
    return victim, other, noa


def _kill(proc: Proc) -> float:
    proc.popen.send_signal(signal.SIGKILL)
    assert proc.popen.wait(10) == -signal.SIGKILL
    return time.monotonic()


def test_a_worker_killed_before_twilio_got_the_create_is_taken_over_and_dialled_once(
        pg_url: str, menus_dir: Path, tmp_path: Path) -> None:
    standin, gate = TwilioStandIn(), FirstCreate()
    standin.before_create = gate.before
    with centre(pg_url, menus_dir, tmp_path, standin, gate) as c:
        cb = ask_for_callback(c.client, c.url)
        victim, other, noa = _claimed_and_held(c, gate)
        killed_at = _kill(victim)
        gate.release.set()  # the held create is refused: Twilio never got it
        assert standin.created == []

        # After the lease the other worker takes over and dials: one call, attempt 2.
        [created] = wait_for("the other worker dials", lambda: list(standin.created),
                             LEASE + SLOW, c.logs)
        takeover = time.monotonic() - killed_at
        req = one_request(c.engine)
        assert owner_pid(req.lease_owner) == other.pid
        assert (created["To"], created["From"]) == (DANA, CALLER_ID)
        assert created["Url"] == f"{c.url}/twilio/callback-answer?c=2"
        assert created["StatusCallback"] == f"{c.url}/twilio/callback-status?c=2"

        call = placed(created)
        cb.status(call, "initiated")
        cb.status(call, "ringing")
        picks_up(cb, call)
        talk_and_hang_up(cb, call)

        req = one_request(c.engine)
        assert (req.status, req.last_outcome, req.attempts) == ("completed", "completed", 0)
        assert req.completed_at is not None and req.open_key is None
        assert [(a.attempt_no, a.agent_key, a.outcome, a.call_sid, owner_pid(a.claimed_by))
                for a in attempts(c.engine)] == [
            (1, "CB1", "lost", None, victim.pid),
            (2, "CB2", "completed", created["sid"], other.pid)]
        kinds = [e.kind for e in events(c.engine)]
        assert kinds.count("completed") == 1 and "failed" not in kinds
        assert [e.detail["outcome"] for e in events(c.engine) if e.kind == "attempt_end"] \
            == ["lost", "completed"]
        assert len(standin.created) == 1, "the customer was dialled twice"
        assert offers(c.engine) == [("CB1", "lost", False), ("CB2", "completed", True)]

        noa_row = agent_row(c.engine, "dana.agent")
        assert (noa_row.state, noa_row.current_call_sid) == ("wrap_up", "CB2")
        done = wrap_up(c.url, noa, "CB2")
        assert done["interaction_id"] is not None
        assert done["agent"]["state"] == "available"
        _alive(other)
        _alive(c.server)
    print(f"\ntakeover: the other worker dialled {takeover:.2f} s after the kill "
          f"(lease {LEASE:g} s)")


def test_a_worker_killed_after_twilio_got_the_create_is_not_dialled_again(
        pg_url: str, menus_dir: Path, tmp_path: Path) -> None:
    standin, gate = TwilioStandIn(), FirstCreate()
    standin.after_create = gate.after
    with centre(pg_url, menus_dir, tmp_path, standin, gate) as c:
        cb = ask_for_callback(c.client, c.url)
        victim, other, noa = _claimed_and_held(c, gate)
        # Twilio has the call (its answer to the worker hangs) and starts it: the status
        # callbacks reach the server, which learns the CallSid the worker never heard.
        [created] = standin.created
        call = placed(created)
        assert call.url == f"{c.url}/twilio/callback-answer?c=1"
        cb.status(call, "initiated")
        standin.call_status[call.sid] = "ringing"
        cb.status(call, "ringing")
        [attempt] = attempts(c.engine)
        assert attempt.call_sid == call.sid
        killed_at = _kill(victim)
        gate.release.set()

        # The lease runs out twice; each time the other worker asks Twilio, hears
        # "ringing" and extends it. Nobody dials again.
        wait_for("the other worker asks Twilio twice",
                 lambda: standin.fetched.count(call.sid) >= 2, 2 * LEASE + SLOW, c.logs)
        asked = time.monotonic() - killed_at
        assert set(standin.fetched) == {call.sid}
        req = one_request(c.engine)
        assert req.status == "dialing" and len(standin.created) == 1
        assert len(attempts(c.engine)) == 1

        standin.call_status[call.sid] = "in-progress"
        picks_up(cb, call)
        talk_and_hang_up(cb, call)
        standin.call_status[call.sid] = "completed"

        req = one_request(c.engine)
        assert (req.status, req.last_outcome, req.attempts) == ("completed", "completed", 0)
        assert [(a.attempt_no, a.outcome, a.call_sid, owner_pid(a.claimed_by))
                for a in attempts(c.engine)] == [(1, "completed", call.sid, victim.pid)]
        assert [e.kind for e in events(c.engine)].count("completed") == 1
        assert len(standin.created) == 1, "the customer was dialled twice"
        assert offers(c.engine) == [("CB1", "completed", True)]
        noa_row = agent_row(c.engine, "dana.agent")
        assert (noa_row.state, noa_row.current_call_sid) == ("wrap_up", "CB1")
        assert wrap_up(c.url, noa, "CB1")["agent"]["state"] == "available"
        _alive(other)
    print(f"\nthe other worker had asked Twilio twice {asked:.2f} s after the kill "
          f"(lease {LEASE:g} s)")


# ------------------------------------------------------------------ the demo


def test_the_demo_completes_a_callback_with_the_local_dialer(
        database_url: str, menus_dir: Path, tmp_path: Path) -> None:
    """No Twilio account: the server's local dialer answers the callback, the agent's leg
    answers, they talk half a second and hang up; nobody plays Twilio's side."""
    always_open(menus_dir)
    seed(database_url)
    port = _free_port()
    env = base_env(database_url, menus_dir, tmp_path, IVR_LOCAL_DIALER_TALK_SECONDS="0.5")
    engine = create_engine(database_url)
    try:
        with serve(env, port, tmp_path) as (url, proc), \
                httpx.Client(base_url=url, timeout=15) as client:
            ask_for_callback(client, url)
            assert one_request(engine).status == "pending"
            noa = login(url, "dana.agent")
            started = time.monotonic()
            go_available(url, noa)

            def completed() -> Any:
                req = one_request(engine)
                return req if req.status == "completed" else None

            req = wait_for("the callback completes", completed, SLOW, proc.tail)
            took = time.monotonic() - started
            [attempt] = attempts(engine)
            assert (attempt.outcome, attempt.answered_by, attempt.agent_key) == (
                "completed", "human", "CB1")
            assert attempt.call_sid.startswith("CA")
            assert req.completed_at is not None and req.attempts == 0
            noa_row = agent_row(engine, "dana.agent")
            assert (noa_row.state, noa_row.current_call_sid) == ("wrap_up", "CB1")
            boss = login(url, "boss")
            board = httpx.get(f"{url}/agent/supervisor", headers=boss, timeout=10).json()
            assert board["callbacks"]["open"] == []
            assert board["callbacks"]["today"]["completed"] >= 1
            done = wrap_up(url, noa, "CB1")
            assert done["interaction_id"] is not None
            assert done["agent"]["state"] == "available"
            _alive(proc)
    finally:
        engine.dispose()
    print(f"\ndemo: available → callback completed in {took:.2f} s")
