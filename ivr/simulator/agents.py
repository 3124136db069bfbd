"""The agents' side of ``ivr simulate``: the console's HTTP API played from the command line,
so that a transfer can be shown without a browser (``--as-agent noa --transfer agent:avi
--transfer-mode warm``).

The agents sign in as the console does (``POST /agent/login`` with their password — the
demo's ``IVR_DEMO_AGENT_PASSWORD``), with a bearer token each: the same sessions, roles and
throttles as a browser's, against any server the simulator can reach (``--url``), and the
command needs no access to the server's database. The first agent goes available before
the call; the second (the target of ``agent:USER``, or ``--second-agent`` for a queue)
only once the caller is with the first, so that the router cannot give them the call
first. Then, on the caller's own clock (``PhoneCall.during_talk``): after ``after`` seconds
of conversation the first agent asks for the transfer; a warm one waits for the new party
to answer (the stand-in's ``LocalParty`` in the server) and hands over, joins or cancels.
Every step is said in a line. At the end each agent wraps up the call (so they are free
for the next one), goes offline and signs out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KINDS = ("queue", "agent", "external")
MODES = ("cold", "warm")
WARM_THEN = ("handover", "join", "cancel")
#: The wrap-up the simulator submits for its agents (they are free for the next call).
WRAP_UP = {"topic": "ivr simulate", "outcome": "information given", "resolved": True,
           "notes": "wrapped up by ivr simulate"}


class AgentRefused(Exception):
    """The server refused an agent's request: ``status`` and its words, ``detail``."""

    def __init__(self, message: str, status: int, detail: str) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class TransferPlan:
    kind: str  # queue | agent | external
    target: str  # a queue's name, an agent's username, an outside number's name
    mode: str = "cold"
    after: float = 5.0  # seconds of conversation before the first agent transfers
    note: str | None = None
    then: str = "handover"  # a warm transfer, once the new party answered

    @classmethod
    def parse(cls, spec: str, *, mode: str | None = None, after: float = 5.0,
              note: str | None = None, then: str | None = None) -> TransferPlan:
        """``queue:billing``, ``agent:avi``, ``external:Partner bank``; ValueError says
        what is wrong."""
        kind, _, target = spec.partition(":")
        if kind not in KINDS or not target.strip():
            raise ValueError(f"--transfer {spec!r}: expected queue:NAME, agent:USER or "
                             "external:NAME (a name of IVR_TRANSFER_NUMBERS)")
        if kind == "queue" and mode == "warm":
            raise ValueError("a transfer to a queue is always cold (nobody to consult)")
        if then is not None and mode != "warm":
            raise ValueError("--warm-then is for --transfer-mode warm")
        if after < 0:
            raise ValueError("--transfer-after cannot be negative")
        return cls(kind, target.strip(), mode or "cold", after, note or None,
                   then or "handover")


def second_agent(first: str, plan: TransferPlan | None, second: str | None) -> str | None:
    """Who the second agent is: the target of ``agent:USER``, else ``second``."""
    if plan is not None and plan.kind == "agent":
        if second not in (None, plan.target):
            raise ValueError(f"the second agent is {plan.target} (--transfer "
                             f"agent:{plan.target}), not {second}")
        second = plan.target
    if second == first:
        raise ValueError(f"{first} cannot transfer a call to themselves")
    return second


class ConsoleAgent:
    """One agent signed in to the console's API, as a browser would be (a bearer token;
    the cookie the sign-in sets is dropped, the client is shared)."""

    def __init__(self, client: Any, username: str) -> None:
        self.client = client
        self.username = username
        self.token = ""
        self.id = 0
        self.name = username

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        r = self.client.request(method, path, json=body, headers=headers)
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise AgentRefused(f"{self.username}: {method} {path}: {r.status_code} {detail}",
                               r.status_code, str(detail))
        return dict(r.json()) if r.content else {}

    def sign_in(self, password: str) -> None:
        got = self.request("POST", "/agent/login", {"username": self.username,
                                                     "password": password})
        self.client.cookies.clear()
        self.token = str(got["token"])
        me = self.me()
        self.id, self.name = int(me["id"]), str(me["name"])

    def me(self) -> dict[str, Any]:
        return self.request("GET", "/agent/me")

    def has(self, call_sid: str) -> bool:
        me = self.me()
        return bool(me["state"] == "on_call" and me["current_call_sid"] == call_sid)

    def set_state(self, state: str) -> None:
        self.request("POST", "/agent/state", {"state": state})

    def pop_line(self, call_sid: str) -> str | None:
        """The transfer line of the agent's screen-pop for the call."""
        ctx = self.request("GET", f"/agent/calls/{call_sid}/context")
        transfer = ctx.get("transfer") or {}
        return str(transfer["text"]) if transfer.get("text") else None

    def sign_out(self) -> None:
        self.request("POST", "/agent/logout")
        self.token = ""


class AgentsSide:
    """The first agent (and the second, for a transfer) on the console, acting on the
    caller's clock. ``say`` prints a line; ``sleep``: how real time passes while the
    first agent waits for a transfer's new party to answer (at most ``answer_wait``
    seconds, looking every ``poll``)."""

    def __init__(self, client: Any, password: str, first: str, *,
                 plan: TransferPlan | None = None, second: str | None = None,
                 say: Callable[[str], None] = print,
                 sleep: Callable[[float], None] = time.sleep,
                 answer_wait: float = 30.0, poll: float = 0.25) -> None:
        second = second_agent(first, plan, second)
        self.client = client
        self.password = password
        self.plan = plan
        self.first = ConsoleAgent(client, first)
        self.second = ConsoleAgent(client, second) if second else None
        self.say = say
        self.sleep = sleep
        self.answer_wait = answer_wait
        self.poll = poll
        self.phase = "waiting"  # waiting, talking, transferring, done
        self.transfer: dict[str, Any] | None = None
        self.said: set[str] = set()

    def agents(self) -> list[ConsoleAgent]:
        return [self.first, *([self.second] if self.second else [])]

    # -- before the call

    def start(self) -> None:
        """Sign the agents in; the first goes available, the second offline until the
        caller is with the first."""
        for agent in self.agents():
            agent.sign_in(self.password)
        self.first.set_state("available")
        other = self.first.me()
        if other["state"] != "available":  # work waiting for them came first
            self.first.sign_out()
            raise AgentRefused(
                f"{self.first.username} was given another call as they went available "
                f"({other['current_call_sid']}: a callback or follow-up waiting for them); "
                "take it in the console, wrap it up, and run this again", 409, "busy")
        self.say(f"{self.first.username} ({self.first.name}) signed in: available")
        if self.second is not None:
            if self.second.me()["state"] == "available":
                self.second.set_state("offline")
            self.say(f"{self.second.username} ({self.second.name}) signed in: offline "
                     f"until the caller is with {self.first.username}")

    # -- during the call (PhoneCall.during_talk)

    def tick(self, call_sid: str, seconds: float) -> None:
        if self.phase == "waiting":
            self._who_has(call_sid)
        if self.phase == "talking" and self.plan is not None and seconds >= self.plan.after:
            self._request(call_sid, seconds)
        elif self.phase == "transferring":
            self._follow(call_sid)
        elif self.phase == "queued" and self.second is not None \
                and self.second.has(call_sid):
            self._second_has(call_sid)
            self.phase = "done"

    def _who_has(self, call_sid: str) -> None:
        if not self.first.has(call_sid):
            return
        self.say(f"{self.first.name} has the call")
        self.phase = "talking" if self.plan is not None else "done"
        if self.second is not None:
            self.second.set_state("available")
            me = self.second.me()
            self.say(f"{self.second.username}: available" if me["state"] == "available"
                     else f"{self.second.username} was given another call first "
                          f"({me['current_call_sid']})")

    def _request(self, call_sid: str, seconds: float) -> None:
        plan = self.plan
        assert plan is not None
        target = str(self.second.id) if plan.kind == "agent" and self.second else plan.target
        note = f": {plan.note!r}" if plan.note else ""
        self.say(f"{self.first.username} asks for a {plan.mode} transfer to {plan.kind} "
                 f"{plan.target} after {seconds:.0f} s{note}")
        try:
            got = self.first.request("POST", f"/agent/calls/{call_sid}/transfer", {
                "kind": plan.kind, "target": target, "mode": plan.mode, "note": plan.note})
        except AgentRefused as exc:
            self.say(f"refused ({exc.status}): {exc.detail}; the caller is still with "
                     f"{self.first.name}")
            self.phase = "done"
            return
        self.transfer = got["transfer"]
        if plan.kind == "queue":
            self.say(f"the caller goes to queue {plan.target}, keeping the place they first "
                     "joined at")
            self.phase = "queued"
            return
        self.say(f"Calling {self.transfer['target_name']}… the caller is on hold")
        if self.second is not None:
            line = self.second.pop_line(call_sid)
            self.say(f"{self.second.name}'s screen-pop: {line}")
        self.phase = "transferring"

    def _state(self) -> dict[str, Any]:
        assert self.transfer is not None
        got = self.first.request("GET", f"/agent/transfers/{self.transfer['id']}")
        self.transfer = dict(got["transfer"])
        return self.transfer

    def _follow(self, call_sid: str) -> None:
        """The new party rings: the first agent waits (real time) for the answer, then
        goes on as the plan says."""
        plan = self.plan
        assert plan is not None
        t = self._state()
        waited = 0.0
        while t["state"] in ("pending", "ringing") and waited < self.answer_wait:
            self.sleep(self.poll)
            waited += self.poll
            t = self._state()
        name = t["target_name"]
        if t["state"] in ("pending", "ringing"):
            self._once(f"no answer from {name} yet; the caller is on hold")
            return
        if t["state"] == "failed":
            back = {"first-agent": f"back with {self.first.name}",
                    "queue": "back at the head of the queue"}.get(t["caller_back_to"],
                                                                   "gone")
            self.say(f"the transfer to {name} did not work ({t['reason']}): the caller is "
                     f"{back}")
            self.phase = "done"
            return
        if t["state"] == "completed":  # cold: the new party has the caller
            self.say(f"{name} answered: the caller is now with {name}")
            self.phase = "done"
            return
        if t["state"] == "consulting":
            self.say(f"{name} answered: {self.first.name} talks to {name}, the caller on "
                     "hold")
            self._then(call_sid, name)

    def _then(self, call_sid: str, name: str) -> None:
        plan = self.plan
        assert plan is not None and self.transfer is not None
        try:
            got = self.first.request("POST", f"/agent/transfers/{self.transfer['id']}/"
                                             f"{plan.then}")
        except AgentRefused as exc:
            self.say(f"{plan.then} refused ({exc.status}): {exc.detail}")
            self.phase = "done"
            return
        self.transfer = dict(got["transfer"])
        self.say({"handover": f"handed over: the caller is now with {name}",
                  "join": f"joined: the caller, {self.first.name} and {name} talk",
                  "cancel": f"canceled: the caller is back with {self.first.name}",
                  }[plan.then])
        self.phase = "done"

    def _second_has(self, call_sid: str) -> None:
        assert self.second is not None
        self.say(f"{self.second.name} has the call; the screen-pop says: "
                 f"{self.second.pop_line(call_sid)}")

    def _once(self, line: str) -> None:
        if line not in self.said:
            self.said.add(line)
            self.say(line)

    # -- after the call

    def finish(self, call_sid: str) -> None:
        """Each agent wraps up the call they had (free for the next one), goes offline and
        signs out."""
        for agent in self.agents():
            if not agent.token:
                continue
            me = agent.me()
            done = []
            if me["state"] == "wrap_up":
                try:
                    agent.request("POST", f"/agent/calls/{call_sid}/wrapup", WRAP_UP)
                    done.append("wrapped up")
                except AgentRefused as exc:
                    done.append(f"not wrapped up ({exc.detail})")
            me = agent.me()
            if me["state"] in ("reserved", "on_call"):
                # Free again, they were given the next waiting call at once: theirs now.
                done.append(f"given the next call ({me['current_call_sid']}): still signed "
                            "in, for the console")
                self.say(f"{agent.username}: {', '.join(done)}")
                continue
            if me["state"] == "available":
                agent.set_state("offline")
            agent.sign_out()
            done.append("signed out")
            self.say(f"{agent.username}: {', '.join(done)}")
