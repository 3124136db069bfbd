"""Benchmark: transfers (issue 16) — the time from the agent's click to the caller hearing
the new party (the participants stand-in), and what moving calls onto conferences costs the
agent leg's webhooks, before (a git worktree of 1c91749, the commit before conferences) and
after (this tree with IVR_CONFERENCE_CALLS=true), in the same run.

Not a test. In-process (Starlette's TestClient on a migrated SQLite file, FrozenClock): the
figures are the server's own work per request, no network, no Twilio.

1. **Agent-leg webhooks** (``--legs``, run as a child process in each tree, alternated
   before/after/before/after): N calls from unknown callers to the ``operator`` queue, one
   agent. Untimed: the call comes in, waits, the agent goes available. Timed, per call, the
   requests Twilio makes for the agent's leg —
   before: the ``<Enqueue action>`` (leave) answering ``<Dial><Client>``, the leg's
   ``answered`` callback, the ``<Dial action>`` (completed);
   after: the ``<Enqueue action>`` answering ``<Dial><Conference>`` (its after-commit
   ``participants.create`` to the stand-in included), the ``conference-events`` join
   callback, the participant's ``answered`` callback, the ``conference-end`` ``<Dial
   action>``. Untimed again: the final status callback and the wrap-up.
2. **Click to hearing the new party** (this tree): Noa on a call, Avi available.
   *cold*: ``POST /agent/calls/{sid}/transfer`` (agent, cold) → the stand-in's new leg
   answers at once (``transfer-leg`` in-progress) → the caller is taken off hold
   (``participants(caller).update(hold=False)`` recorded by the stand-in): that instant.
   *warm*: the transfer and the answer untimed (the consult), then ``POST
   /agent/transfers/{id}/handover`` → the caller off hold.
   With Twilio the network and the participant's ringing come on top.

    .venv/bin/python bench/transfer_latency.py --calls 200
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import defusedxml.ElementTree as SafeET

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "1c91749"
TOKEN = "bench-auth-token"
ACCOUNT = "AC" + "0" * 32
QUEUE_SID = "QU" + "1" * 32


def _sid() -> str:
    return "CA" + uuid.uuid4().hex


class Driver:
    """Twilio's signed posts (only what both trees answer the same way)."""

    def __init__(self, client: Any) -> None:
        from twilio.request_validator import RequestValidator  # noqa: PLC0415

        self.client = client
        self.validator = RequestValidator(TOKEN)

    def post(self, url: str, params: dict[str, str]) -> str:
        full = url if url.startswith("http") else urljoin("http://testserver/", url.lstrip("/"))
        sig = self.validator.compute_signature(full, params)
        r = self.client.post(full[len("http://testserver"):], data=params,
                             headers={"X-Twilio-Signature": sig})
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code} {r.text[:200]}")
        return str(r.text)

    @staticmethod
    def params(sid: str, number: str, **extra: str) -> dict[str, str]:
        return {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "CallSid": sid,
                "CallStatus": "in-progress", "Direction": "inbound", "From": number,
                "Caller": number, "To": "+97235550100", "Called": "+97235550100", **extra}

    def to_queue(self, number: str, keys: list[str]) -> tuple[str, ET.Element]:
        sid = _sid()
        root = SafeET.fromstring(self.post("/twilio/voice", self.params(sid, number,
                                                                   CallStatus="ringing")))
        keys = list(keys)
        while root.find("Enqueue") is None:
            gather = root.find("Gather")
            assert gather is not None, ET.tostring(root)
            root = SafeET.fromstring(self.post(gather.get("action") or "", self.params(
                sid, number, Digits=keys.pop(0) if keys else "")))
        enqueue = root.find("Enqueue")
        assert enqueue is not None
        return sid, enqueue

    def wait(self, sid: str, number: str, enqueue: ET.Element, waited: int) -> str:
        return self.post(enqueue.get("waitUrl") or "", self.params(
            sid, number, QueueSid=QUEUE_SID, QueuePosition="1", QueueTime=str(waited),
            AvgQueueTime="0", CurrentQueueSize="1", MaxQueueSize="100"))


def _app(tmp: Path, conference: bool) -> tuple[Any, Any, Any]:
    from starlette.testclient import TestClient  # noqa: PLC0415

    from ivr.app import create_app  # noqa: PLC0415
    from ivr.core.clock import FrozenClock  # noqa: PLC0415
    from ivr.core.migrate import upgrade  # noqa: PLC0415
    from ivr.core.settings import Settings  # noqa: PLC0415

    url = f"sqlite:///{tmp / 'bench.db'}"
    upgrade(url)
    # conference_calls set either way, never the default: the "dial" arm measures the plain
    # <Dial><Client> path in this tree (conferences are the default now) against "after".
    settings = Settings(_env_file=None, database_url=url, menus_dir=Path.cwd() / "menus",
                        twilio_auth_token=TOKEN, admin_token="bench-admin",
                        watch_menus=False, route_every_seconds=0,
                        public_url="http://testserver", conference_calls=conference,
                        # The driver answers every leg itself: no stand-in party posting
                        # to a server it cannot reach (a field of trees since d53d18e).
                        **({"local_answer_seconds": None}
                           if "local_answer_seconds" in Settings.model_fields else {}))
    clock = FrozenClock(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    client = TestClient(create_app(settings, clock))
    return client, clock, url


def _agents(url: str, clock: Any, names: list[str]) -> None:
    from sqlalchemy import create_engine  # noqa: PLC0415

    from ivr.agents import repository as repo  # noqa: PLC0415

    engine = create_engine(url)
    with engine.begin() as conn:
        for n in names:
            repo.create_agent(conn, username=n, name=n.title(), password=f"{n}-pw",
                              queues=["operator", "billing"], reach_kind="client",
                              reach_target=n, now=clock.now())
    engine.dispose()


def _login(client: Any, name: str) -> dict[str, str]:
    r = client.post("/agent/login", json={"username": name, "password": f"{name}-pw"})
    client.cookies.clear()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _available(client: Any, auth: dict[str, str], state: str = "available") -> None:
    if client.get("/agent/me", headers=auth).json()["state"] != (
            "offline" if state == "available" else "available"):
        return  # already so, or reserved for the call waiting
    r = client.post("/agent/state", json={"state": state}, headers=auth)
    assert r.status_code == 200, r.text


def _wrap(client: Any, auth: dict[str, str], sid: str) -> None:
    r = client.post(f"/agent/calls/{sid}/wrapup", headers=auth, json={
        "topic": "bench", "outcome": "done", "resolved": True})
    assert r.status_code == 201, r.text


def measure_legs(calls: int, conference: bool) -> dict[str, Any]:
    """Child mode: the agent leg's webhooks in this tree (see the module's docstring)."""
    import ivr  # noqa: PLC0415

    conference = conference and "conference_calls" in __import__(
        "ivr.core.settings", fromlist=["Settings"]).Settings.model_fields
    per_call: list[float] = []
    requests = 0
    with tempfile.TemporaryDirectory() as d, _quiet():
        client, clock, url = _app(Path(d), conference)
        with client:
            _agents(url, clock, ["noa"])
            noa = _login(client, "noa")
            twilio = Driver(client)
            gateway: Any = None
            if conference:
                gateway = client.app.state.web.services.transfers.gateway
            for i in range(calls):
                number = f"+97254{i:07d}"
                sid, enqueue = twilio.to_queue(number, ["1", "0"])
                twilio.wait(sid, number, enqueue, 0)
                _available(client, noa)
                xml = twilio.wait(sid, number, enqueue, 5)
                assert SafeET.fromstring(xml).find("Leave") is not None, xml
                p = twilio.params
                t0 = time.perf_counter()
                root = SafeET.fromstring(twilio.post(enqueue.get("action") or "", p(
                    sid, number, QueueResult="leave", QueueSid=QUEUE_SID, QueueTime="5")))
                dial = root.find("Dial")
                assert dial is not None, ET.tostring(root)
                noun = dial[0]
                if conference:
                    add = gateway.ops[-1]
                    twilio.post(noun.get("statusCallback") or "", p(
                        sid, number, ConferenceSid=gateway.sid_of(noun.text or ""),
                        StatusCallbackEvent="participant-join"))
                    twilio.post(add[3]["status_callback"], p(
                        add[2], "client:noa", Direction="outbound-api"))
                    n = 4
                else:
                    twilio.post(noun.get("statusCallback") or "", p(
                        _sid(), "client:noa", ParentCallSid=sid, Direction="outbound-dial"))
                    n = 3
                end = twilio.post(dial.get("action") or "", p(
                    sid, number, DialCallStatus="completed", DialCallDuration="60"))
                per_call.append((time.perf_counter() - t0) * 1000)
                requests += n
                assert "Hangup" in end, end
                twilio.post("/twilio/status", p(sid, number, CallStatus="completed",
                                                CallDuration="90", SequenceNumber="9"))
                _wrap(client, noa, sid)
    return {"tree": str(Path(ivr.__file__).resolve().parent.parent), "conference": conference,
            "calls": calls, "requests_per_call": requests / calls,
            "ms_per_call": per_call}


class _quiet:
    """Route the app's logs away (they would cost time on stderr)."""

    def __enter__(self) -> None:
        import logging  # noqa: PLC0415

        logging.disable(logging.WARNING)

    def __exit__(self, *exc: object) -> None:
        import logging  # noqa: PLC0415

        logging.disable(logging.NOTSET)


def measure_transfers(rounds: int) -> dict[str, list[float]]:
    """This tree: click to the caller hearing the new party, cold and warm (handover)."""
    out: dict[str, list[float]] = {"cold": [], "warm": []}
    with tempfile.TemporaryDirectory() as d, _quiet():
        client, clock, url = _app(Path(d), True)
        with client:
            _agents(url, clock, ["noa", "avi"])
            noa, avi = _login(client, "noa"), _login(client, "avi")
            ids = {a["name"]: a["id"] for a in client.get(
                "/agent/transfer-targets", headers=noa).json()["agents"]}
            twilio = Driver(client)
            gateway = client.app.state.web.services.transfers.gateway
            p = twilio.params
            for i in range(rounds):
                for mode in ("cold", "warm"):
                    number = f"+97253{i:06d}{0 if mode == 'cold' else 1}"
                    sid, enqueue = twilio.to_queue(number, ["1", "0"])
                    twilio.wait(sid, number, enqueue, 0)
                    _available(client, noa)
                    twilio.wait(sid, number, enqueue, 5)
                    root = SafeET.fromstring(twilio.post(enqueue.get("action") or "", p(
                        sid, number, QueueResult="leave", QueueSid=QUEUE_SID,
                        QueueTime="5")))
                    dial = root.find("Dial")
                    assert dial is not None
                    noun = dial[0]
                    add = gateway.ops[-1]
                    twilio.post(noun.get("statusCallback") or "", p(
                        sid, number, ConferenceSid=gateway.sid_of(noun.text or ""),
                        StatusCallbackEvent="participant-join"))
                    twilio.post(add[3]["status_callback"], p(add[2], "client:noa",
                                                             Direction="outbound-api"))
                    _available(client, avi)
                    t0 = time.perf_counter()
                    r = client.post(f"/agent/calls/{sid}/transfer", headers=noa, json={
                        "kind": "agent", "target": str(ids["Avi"]), "mode": mode})
                    assert r.status_code == 202, r.text
                    tid = r.json()["transfer"]["id"]
                    leg = gateway.ops[-1] if mode == "warm" else gateway.ops[-2]
                    assert leg[0] == "add", leg
                    twilio.post(leg[3]["status_callback"], p(leg[2], "client:avi",
                                                             Direction="outbound-api"))
                    if mode == "warm":
                        t0 = time.perf_counter()
                        r = client.post(f"/agent/transfers/{tid}/handover", headers=noa)
                        assert r.status_code == 200, r.text
                    assert any(op[0] == "update" and op[2] == sid
                               and op[3] == {"hold": False} for op in gateway.ops[-3:]), \
                        gateway.ops[-3:]
                    out[mode].append((time.perf_counter() - t0) * 1000)
                    end = twilio.post(dial.get("action") or "", p(
                        sid, number, DialCallStatus="completed", DialCallDuration="60"))
                    assert "Hangup" in end, end
                    twilio.post("/twilio/status", p(sid, number, CallStatus="completed",
                                                    CallDuration="90", SequenceNumber="9"))
                    _wrap(client, noa, sid)
                    _wrap(client, avi, sid)
                    _available(client, avi, "offline")  # the next call goes to Noa
    return out


def _child(tree: Path, calls: int, conference: bool) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    r = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--legs",
                        "--calls", str(calls)] + (["--conference"] if conference else []),
                       cwd=tree, env=env, capture_output=True, text=True, check=False)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"the child in {tree} failed:\n{r.stdout[-2000:]}\n"
                           f"{r.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(line[len("BENCH_JSON "):])
    if Path(result["tree"]).resolve() != tree.resolve():
        raise RuntimeError(f"the child imported ivr from {result['tree']}, not {tree}")
    return result


def _fmt(ms: list[float]) -> str:
    from harness import summary  # noqa: PLC0415

    s = summary(ms)
    return f"{s['p50']:.1f} / {s['p99']:.1f} / {s['mean']:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2, help="before/after alternations")
    ap.add_argument("--transfers", type=int, default=100)
    ap.add_argument("--legs", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--conference", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.legs:
        print("BENCH_JSON " + json.dumps(measure_legs(args.calls, args.conference)))
        return
    sys.path.insert(0, str(ROOT))
    from harness import git_rev, machine_line, update_results  # noqa: PLC0415

    worktree = Path(tempfile.gettempdir()) / f"ivr-bench-{BEFORE}"
    if not worktree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach",
                        str(worktree), BEFORE], check=True, capture_output=True)
    load_before = os.getloadavg()
    legs: dict[str, list[float]] = {"before": [], "dial": [], "after": []}
    reqs: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, tree in (("before", worktree), ("dial", ROOT), ("after", ROOT)):
            r = _child(tree, args.calls, name == "after")
            assert r["conference"] == (name == "after"), r["conference"]
            legs[name] += r["ms_per_call"]
            reqs[name] = r["requests_per_call"]
            print(f"{name}: {statistics.median(r['ms_per_call']):.1f} ms per call "
                  f"(median of {args.calls})", flush=True)
    clicks = measure_transfers(args.transfers)
    load_after = os.getloadavg()
    b, d, a = (statistics.median(legs[k]) for k in ("before", "dial", "after"))
    title = ("## Transfers: click to hearing the new party, agent-leg webhooks before/after "
             "conferences (issue 16)")
    section = f"""{title}

`bench/transfer_latency.py --calls {args.calls} --rounds {args.rounds} --transfers \
{args.transfers}`, {machine_line()}, at {git_rev()}; in-process (TestClient, SQLite, no
network, no Twilio). **The machine is shared** with other sessions' work: load average
{load_before[0]:.2f} before and {load_after[0]:.2f} after the run (2 cores) — figures are
noisy, compare the two columns of one run only.

Agent-leg webhooks per call (ms: p50 / p99 / mean over {args.calls * args.rounds} calls,
before and after alternated {args.rounds}×):

| | requests | ms per call |
|---|---|---|
| before (`{BEFORE}`, `<Dial><Client>`) | {reqs['before']:.0f} | {_fmt(legs['before'])} |
| this tree, `IVR_CONFERENCE_CALLS=false` (`<Dial><Client>`) | {reqs['dial']:.0f} | \
{_fmt(legs['dial'])} |
| after (`<Dial><Conference>` + `participants.create` stand-in) | {reqs['after']:.0f} | \
{_fmt(legs['after'])} |

Median per call: {b:.1f} ms at `{BEFORE}`, {d:.1f} ms in this tree with `<Dial>`, {a:.1f}
ms with the conference ({(a - d) / d * 100:+.0f}% against `<Dial>` in the same tree; the
difference between `{BEFORE}` and this tree's `<Dial>` is the other features merged since
— surveys, retention, follow-ups — not the conference). The conference path makes one more
request (the conference's join callback, which records the ConferenceSid), writes a
`call_conferences` row, and hands `participants.create` to a thread after the commit.

Click to the caller hearing the new party (stand-in; ms p50 / p99 / mean over
{args.transfers}): cold (transfer + the new leg's answer) {_fmt(clicks['cold'])}; warm
(handover click) {_fmt(clicks['warm'])}. With Twilio the REST round trips (about 3 for a
cold transfer: hold, the first agent's end-on-exit, create; then the un-hold after the
answer) and the new party's ringing come on top.
"""
    print(section)
    if not args.no_write:
        update_results(section)


if __name__ == "__main__":
    main()
