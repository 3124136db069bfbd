"""Benchmark: a simulated contact-centre day with callbacks, through the real services.

Not a test (``tests/test_callback_ordering.py`` runs a small day of this simulation).
``AgentService`` and ``CallbackService`` as ``ivr worker`` builds them
(``ivr.worker.callback_services``, hold-loop gateway) run against a real database (a SQLite
file, a fresh PostgreSQL database ``ivr_cb_day_bench``) with a ``FrozenClock`` moved in steps
of ``--step`` seconds. The harness plays Twilio and the people, by calling the service
methods the webhooks call:

* a caller joins the queue (``AgentService.waiting``: the tier's SLA deadline from the time
  they joined); a caller willing to be called back polls the wait loop at 2 minutes and then
  every minute (``waiting`` with ``QueueTime``: the real expected wait and offer); when the
  offer is made they press 1 (``CallbackService.choose``), leave the queue
  (``queue_left(…, "leave")``: the dialog) and confirm their number (``dialog`` step
  ``choice``, digit 1: the request is committed), then hang up (``call_ended``);
* a caller whose patience runs out hangs up (``call_ended``: abandoned);
* every step: ``CallbackService.sweep`` (leases, warnings, breaches), ``expire_offers``,
  then ``AgentService.route`` (live calls and due callbacks in one ``routing.plan``) and
  ``deliver`` (claimed callbacks are dialled through the stand-in dialer), as the worker's
  job does;
* an offered live caller is released by the wait loop (``queue_left(…, "leave")``), the
  agent answers (``agent_leg``), talks, the dial ends (``agent_dial_ended``, ``call_ended``)
  and the agent wraps up (``wrap_up``);
* a callback dial ends as the stand-in decides, with fixed probabilities seeded per
  (number, dial number): answered by a person (``leg_status`` initiated/ringing,
  ``answered``, the agent's ``agent_leg``, talk, ``dial_ended``, ``leg_status`` completed,
  wrap-up), busy or no answer (``leg_status``), an answering machine (``answered`` with
  ``AnsweredBy=machine_start``, then ``leg_status`` completed);
* the worker crashes at noon: the first routing pass from 12:00 that claims callbacks has
  its claims committed and never dialled (the process died after the commit); a second
  worker (another owner) carries on and its sweep takes the claims over after the lease.

The same day (same callers, talk times, patience, dial outcomes) runs twice per database:
EDF, the product's ordering (priority, then SLA deadline, then join time), and FIFO for
comparison: ``ivr.agents.routing.order_key`` patched to (join time, kind, id) in this process,
and the two candidate reads (``repository.waiting``, ``callbacks.repository.due``) re-sorted
the same way from an unlimited read, so that FIFO is not pre-filtered by deadline.

    python bench/callbacks_day.py                                # 5,000 calls, both DBs
    python bench/callbacks_day.py --calls 1000 --agents 5 --backends sqlite

Figures: callbacks requested / completed / failed / lost (must be 0) / dialled twice at once
(must be 0), SLA attainment per tier (``callbacks.stats.summarise``), time to callback
p50/p90, the crash's takeover; raw JSON and a markdown summary in bench/out/.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count, pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, func, select, text

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import harness as h  # noqa: E402  (bench/harness.py: databases, machine)

from callbacks import repository as cbrepo  # noqa: E402
from callbacks.models import callback_attempts, callback_requests  # noqa: E402
from callbacks.stats import summarise  # noqa: E402
from crm_sync.wrapup import WrapUp  # noqa: E402
from ivr.agents import repository as agent_repo  # noqa: E402
from ivr.agents import routing  # noqa: E402
from ivr.agents.gateway import HoldLoopGateway  # noqa: E402
from ivr.agents.models import agent_calls, agents, queue_entries  # noqa: E402
from ivr.agents.ports import Outcome  # noqa: E402
from ivr.agents.ports import Reservation as Offer  # noqa: E402
from ivr.agents.service import AgentService  # noqa: E402
from ivr.calls.repository import insert_call  # noqa: E402
from ivr.core.clock import FrozenClock  # noqa: E402
from ivr.core.db import make_engine  # noqa: E402
from ivr.core.migrate import upgrade  # noqa: E402
from ivr.core.settings import Settings  # noqa: E402
from ivr.services import callback_services  # noqa: E402

OUT = h.OUT
ZONE = ZoneInfo("Asia/Jerusalem")
PG_ADMIN = os.environ.get("IVR_BENCH_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_DB = "ivr_cb_day_bench"
QUEUE = "support"  # callbacks.yaml's default policy: premium 15m, standard 2h
QUEUE_SID = "QU" + "0" * 32
WRAP = WrapUp(topic="support", outcome="handled", resolved=True)
OUTCOMES = ("answered", "busy", "no-answer", "machine")


@dataclass(frozen=True)
class DayConfig:
    """One simulated day. Times are local (Asia/Jerusalem) hours on ``day``."""

    calls: int = 5000
    agents: int = 20
    seed: int = 7
    day: str = "2026-11-23"  # a Monday; the centre is open 08:00-20:00
    open_hour: float = 8.0
    last_arrival_hour: float = 19.5
    end_hour: float = 20.5  # stop after this once every call in progress ended
    # (start, end, rate factor): the rest of the day is factor 1.
    bursts: tuple[tuple[float, float, float], ...] = ((11.0, 12.0, 2.5), (16.0, 17.0, 2.5))
    premium_share: float = 0.2
    callback_share: float = 0.35  # callers who accept the offer when it is made
    patience_mean_s: float = 420.0  # live callers hang up after this (exponential, >= 60 s)
    talk_mean_s: float = 140.0  # exponential, 20 s minimum
    wrap_s: tuple[int, int] = (10, 40)
    # Dial outcomes: answered by a person / busy / no answer / answering machine.
    dial_p: tuple[float, float, float, float] = (0.70, 0.10, 0.12, 0.08)
    step_s: int = 10
    crash_hour: float | None = 12.0
    lease_s: float = 60.0

    def at(self, hour: float) -> datetime:
        y, m, d = (int(x) for x in self.day.split("-"))
        base = datetime(y, m, d, tzinfo=ZONE)
        return (base + timedelta(hours=hour)).astimezone(UTC)


@dataclass(frozen=True)
class Caller:
    n: int
    at: datetime
    sid: str
    number: str
    tier: str
    wants_callback: bool
    patience_s: float
    talk_s: int
    wrap_s: int


def callers(cfg: DayConfig) -> list[Caller]:
    """The day's callers: arrival times from the piecewise rate (bursts), seeded."""
    rnd = random.Random(cfg.seed)
    cuts = sorted({cfg.open_hour, cfg.last_arrival_hour,
                   *(h for b in cfg.bursts for h in b[:2])})
    segments = []
    for a, b in pairwise(cuts):
        factor = next((f for s, e, f in cfg.bursts if s <= a < e), 1.0)
        segments.append((a, b, (b - a) * factor))
    weights = [w for _, _, w in segments]
    out = []
    for _n in range(cfg.calls):
        a, b, _ = rnd.choices(segments, weights)[0]
        hour = rnd.uniform(a, b)
        tier = "premium" if rnd.random() < cfg.premium_share else "standard"
        out.append((hour, tier, rnd.random() < cfg.callback_share,
                    max(60.0, rnd.expovariate(1 / cfg.patience_mean_s)),
                    max(20, int(rnd.expovariate(1 / cfg.talk_mean_s))),
                    rnd.randint(*cfg.wrap_s)))
    out.sort()
    return [Caller(n, cfg.at(h), f"CA{cfg.seed:04d}{n:028d}", f"+97252{n:07d}", tier, cb,
                   patience, talk, wrap)
            for n, (h, tier, cb, patience, talk, wrap) in enumerate(out)]


def dial_outcome(cfg: DayConfig, number: str, dial_no: int) -> str:
    """What the customer's phone does at their ``dial_no``-th callback: the same in every
    run of the day, whatever the order the router chose."""
    rnd = random.Random(f"{cfg.seed}|{number}|{dial_no}")
    return rnd.choices(OUTCOMES, cfg.dial_p)[0]


# ---------------------------------------------------------------------- FIFO, for comparison


def fifo_key(w: routing.Waiting) -> tuple[datetime, str, int]:
    return (w.entered_at, w.kind, w.entry_id)


@contextmanager
def ordering(mode: str) -> Iterator[None]:
    """``edf``: the product as it is. ``fifo``: the plan's order key, the candidate reads and
    the claim of a queue's next callback by join time only (in this process, for the
    comparison run)."""
    if mode == "edf":
        yield
        return
    original_key = routing.order_key
    original_heads = agent_repo.waiting_heads
    original_due = cbrepo.due
    original_claim_next = cbrepo.claim_next

    def heads(conn: Connection, per_queue: Mapping[str, int],
              free_agents: int, *, lock: bool = True) -> list[routing.Waiting]:
        rows = original_heads(conn, dict.fromkeys(per_queue, 1_000_000), free_agents,
                              lock=lock)
        free = set(conn.execute(select(agents.c.id).where(
            agents.c.state == "available", agents.c.active.is_(True))).scalars())
        out: dict[int, routing.Waiting] = {}
        for queue, n in per_queue.items():
            for w in sorted((r for r in rows if r.queue == queue), key=fifo_key)[:n]:
                out[w.entry_id] = w
        for w in rows:
            if w.preferred_agent_id in free:
                out[w.entry_id] = w
        return list(out.values())

    def due(conn: Connection, now: datetime, queues: Any, limit: int) -> list[Any]:
        rows = original_due(conn, now, queues, 1_000_000)
        return sorted(rows, key=lambda r: (r.entered_at, "callback", r.id))[:limit]

    def claim_next(conn: Connection, queue: str, now: datetime, owner: str,
                   lease_until: datetime, agent_id: int) -> Any:
        for r in due(conn, now, (queue,), 1):
            if cbrepo.update_request(conn, r.id, only_status=("pending",), status="dialing",
                                     lease_owner=owner, lease_until=lease_until,
                                     agent_id=agent_id, updated_at=now):
                return cbrepo.get(conn, r.id)
        return None

    routing.order_key = fifo_key  # type: ignore[assignment]
    agent_repo.waiting_heads = heads
    cbrepo.due = due
    cbrepo.claim_next = claim_next
    try:
        yield
    finally:
        routing.order_key = original_key
        agent_repo.waiting_heads = original_heads
        cbrepo.due = original_due
        cbrepo.claim_next = original_claim_next


# ---------------------------------------------------------------------- Twilio's side


@dataclass
class Dialled:
    sid: str
    attempt_id: int
    phone: str
    placed_at: datetime
    ended_at: datetime | None = None
    outcome: str | None = None
    picked_up: bool = False


class SimDialer:
    """Stands in for ``calls.create``: records each call; the simulation plays the rest."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.placed: list[Dialled] = []
        self.by_sid: dict[str, Dialled] = {}
        self.canceled: list[str] = []

    def place(self, to: str, from_: str, url: str, status_callback: str,
              machine_detection: bool, timeout: int) -> str:
        match = re.search(r"[?&]c=(\d+)", url)
        assert match, url
        d = Dialled(f"CA{len(self.placed) + 1:032d}", int(match.group(1)), to,
                    self.clock.now())
        self.placed.append(d)
        self.by_sid[d.sid] = d
        return d.sid

    def status(self, call_sid: str) -> str | None:
        d = self.by_sid.get(call_sid)
        return _status(d) if d is not None else None

    def find(self, to: str, from_: str, since: datetime) -> list[tuple[str, str]] | None:
        return [(d.sid, _status(d)) for d in reversed(self.placed)
                if d.phone == to and d.placed_at >= since]

    def cancel(self, call_sid: str) -> None:
        self.canceled.append(call_sid)


def _status(d: Dialled) -> str:
    """Twilio's status of a call the stand-in placed."""
    if d.ended_at is not None:
        return d.outcome if d.outcome in ("busy", "no-answer") else "completed"
    return "in-progress" if d.picked_up else "ringing"


# ---------------------------------------------------------------------- the day


@dataclass
class Sim:
    cfg: DayConfig
    engine: Engine
    settings: Settings
    clock: FrozenClock
    dialer: SimDialer
    service: Any  # AgentService with .callbacks
    agents: dict[int, dict[str, Any]] = field(default_factory=dict)
    events: list[tuple[datetime, int, Callable[[], None]]] = field(default_factory=list)
    seq: Iterator[int] = field(default_factory=count)
    state: dict[str, str] = field(default_factory=dict)  # live caller: where they are
    dials_per_phone: dict[str, int] = field(default_factory=dict)
    lost_claims: list[int] = field(default_factory=list)  # attempts the crash never dialled
    crashed_at: datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)
    busy: dict[int, str] = field(default_factory=dict)  # agent: the call they are on
    max_waiting: int = 0
    max_pending: int = 0
    # What each live caller was told about their wait when they joined: (joined at, the
    # spoken estimate in seconds: 0 = next in line, None = nobody can answer).
    told: dict[str, tuple[datetime, float | None]] = field(default_factory=dict)
    # The same callers under the estimate spoken before issue 14 (the baseline):
    # ceil(position / signed-in agents, at least one) x the mean recent handle time.
    told_before: dict[str, tuple[datetime, float | None]] = field(default_factory=dict)
    routes: int = 0
    hard: int = 0  # events queued that are not soft
    soft_seqs: set[int] = field(default_factory=set)

    def later(self, seconds: float, fn: Callable[[], None], *, soft: bool = False) -> None:
        """Run ``fn`` then. ``soft``: a caller's patience or wait-loop round, which does not
        keep the day going once everything else is over."""
        n = next(self.seq)
        heapq.heappush(self.events, (self.clock.now() + timedelta(seconds=seconds), n, fn))
        if soft:
            self.soft_seqs.add(n)
        else:
            self.hard += 1

    def bump(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    # -- live callers

    def arrive(self, c: Caller) -> None:
        with self.engine.begin() as conn:
            insert_call(conn, {
                "call_sid": c.sid, "account_sid": "AC" + "0" * 32, "from_number": c.number,
                "to_number": "+97235550100", "direction": "inbound", "status": "in-progress",
                "menu_version": "sim", "menu": "main", "node": "queue", "language": "he-IL",
                "no_input_count": 0, "invalid_count": 0, "ended": False,
                "attributes": {"tier": c.tier, "caller_outcome": "unknown"},
                "path": [], "step": 1, "created_at": self.clock.now(),
                "updated_at": self.clock.now()})
        self.service.waiting(c.sid, QUEUE, {"QueueSid": QUEUE_SID, "QueueTime": "0",
                                            "CallSid": c.sid})
        self.state[c.sid] = "waiting"
        self.bump("calls")
        heard = self.service.callbacks.spoken_wait(c.sid)
        if heard is not None:
            est, now = heard[0], self.clock.now()
            self.told[c.sid] = (now, None if est.wait is None else est.wait.total_seconds())
            with self.engine.connect() as conn:
                times = [t for t in agent_repo.recent_handle_times(conn, QUEUE)
                         if t > timedelta(0)]
            mean = (sum(times, timedelta(0)) / len(times) if times else
                    self.service.callbacks.policy(QUEUE).fallback_handle_time)
            old = math.ceil(est.position / max(est.free + est.busy, 1)) * mean
            self.told_before[c.sid] = (now, old.total_seconds())
        self.later(c.patience_s, lambda: self.abandon(c), soft=True)
        if c.wants_callback:
            self.later(120, lambda: self.poll(c, 120), soft=True)

    def poll(self, c: Caller, waited: int) -> None:
        """A round of the wait loop at ``waited`` seconds: the offer, when it is made."""
        if self.state.get(c.sid) != "waiting":
            return
        out = self.service.waiting(c.sid, QUEUE, {"QueueSid": QUEUE_SID,
                                                  "QueueTime": str(waited), "CallSid": c.sid})
        if out.twiml is None or "/twilio/callback-offer" not in out.twiml:
            self.later(60, lambda: self.poll(c, waited + 60), soft=True)
            return
        cbs = self.service.callbacks
        cbs.choose(c.sid, QUEUE, "he-IL", "1", True)
        left = self.service.queue_left(c.sid, "leave")
        assert left is not None and left.twiml and "<Gather" in left.twiml, left
        xml, _reroute = cbs.dialog(c.sid, {"q": QUEUE, "lang": "he-IL", "step": "choice"}, "1")
        assert "<Hangup" in xml, xml
        self.service.call_ended(c.sid)
        self.state[c.sid] = "callback"
        self.bump("callback_requests_made")

    def abandon(self, c: Caller) -> None:
        if self.state.get(c.sid) == "waiting":
            self.service.call_ended(c.sid)
            self.state[c.sid] = "abandoned"
            self.bump("abandoned")

    def take(self, agent_id: int, call: str) -> None:
        """The harness's own view of the agent: on a call from the offer to the wrap-up."""
        if agent_id in self.busy:
            self.bump("agent_double_booked")
        self.busy[agent_id] = call

    def wrap_up(self, agent: dict[str, Any], call: str) -> None:
        self.service.wrap_up(agent, call, WRAP)
        if self.busy.get(agent["id"]) == call:
            del self.busy[agent["id"]]

    def serve_live(self, offer: Offer, c: Caller) -> None:
        self.state[c.sid] = "connected"
        self.take(offer.agent_id, c.sid)
        out = self.service.queue_left(c.sid, "leave")  # the wait loop released them
        assert out is not None and out.twiml and "<Dial" in out.twiml, out
        self.service.agent_leg(offer.offer_id, {"CallStatus": "in-progress",
                                                "CallSid": "CA-leg-" + c.sid})
        agent = self.agents[offer.agent_id]

        def end() -> None:
            self.service.agent_dial_ended(offer.offer_id, c.sid, "completed")
            self.service.call_ended(c.sid)
            self.state[c.sid] = "done"
            self.bump("live_served")
            self.later(c.wrap_s, lambda: self.wrap_up(agent, c.sid))

        self.later(c.talk_s, end)

    # -- callbacks

    def dialled(self, d: Dialled, offer: Offer, talk_s: int, wrap_s: int) -> None:
        """Twilio's side of one callback call, as the stand-in decides it."""
        cbs = self.service.callbacks
        no = self.dials_per_phone[d.phone] = self.dials_per_phone.get(d.phone, 0) + 1
        outcome = dial_outcome(self.cfg, d.phone, no)
        d.outcome = outcome
        self.bump(f"dial_{outcome}")
        params = {"CallSid": d.sid}
        cbs.leg_status(d.attempt_id, {**params, "CallStatus": "initiated"}, Outcome())
        cbs.leg_status(d.attempt_id, {**params, "CallStatus": "ringing"}, Outcome())
        agent = self.agents[offer.agent_id]
        key = f"CB{d.attempt_id}"
        self.take(offer.agent_id, key)

        def ended(status: str) -> None:
            cbs.leg_status(d.attempt_id, {**params, "CallStatus": status}, Outcome())
            d.ended_at = self.clock.now()
            if outcome != "answered" and self.busy.get(offer.agent_id) == key:
                del self.busy[offer.agent_id]  # never reached: the agent is free again

        if outcome in ("busy", "no-answer"):
            self.later(3 if outcome == "busy" else 30, lambda: ended(outcome))
            return

        def pick_up() -> None:
            d.picked_up = True
            answered_by = "human" if outcome == "answered" else "machine_start"
            xml = cbs.answered(d.attempt_id, {**params, "CallStatus": "in-progress",
                                              "AnsweredBy": answered_by}, Outcome())
            if outcome == "machine":
                assert "<Hangup" in xml, xml
                if self.busy.get(offer.agent_id) == key:
                    del self.busy[offer.agent_id]  # the service freed the agent at once
                self.later(8, lambda: ended("completed"))
                return
            leg = re.search(r"/twilio/agent-leg\?a=(\d+)", xml)
            assert leg, xml
            self.service.agent_leg(int(leg.group(1)), {"CallStatus": "in-progress",
                                                       "CallSid": "CA-leg-" + d.sid})

            def hang_up() -> None:
                cbs.dial_ended(d.attempt_id, {**params, "DialCallStatus": "completed"},
                               Outcome())
                ended("completed")
                self.later(wrap_s, lambda: self.wrap_up(agent, key))

            self.later(talk_s, hang_up)

        self.later(random.Random(f"{self.cfg.seed}|ring|{d.phone}|{no}").randint(5, 20),
                   pick_up)

    # -- the worker's job, one pass

    def dispatch(self, by_sid: dict[str, Caller], by_number: dict[str, Caller]) -> None:
        self.service.callbacks.sweep(Outcome())
        self.service.expire_offers()
        for _ in range(10):
            offers = self.service.route().offers
            self.routes += 1
            if not offers:
                return
            live = [o for o in offers if o.placed is None]
            dials = [o for o in offers if o.placed is not None]
            for o in live:
                self.serve_live(o, by_sid[o.call_sid])
            if dials and self.crashed_at is None and self.cfg.crash_hour is not None \
                    and self.clock.now() >= self.cfg.at(self.cfg.crash_hour):
                # The worker dies after the claims' commit: nobody dials them. Another
                # worker (another owner) carries on; its sweep takes them over.
                self.crashed_at = self.clock.now()
                self.lost_claims = [o.placed.attempt_id for o in dials if o.placed]
                self.service = callback_services(self.engine, self.settings, self.clock,
                                                 gateway=HoldLoopGateway(), dialer=self.dialer)
                continue
            self.service.deliver(offers)
            placed = {d.attempt_id: d for d in self.dialer.placed[-len(dials):]} \
                if dials else {}
            for o in dials:
                assert o.placed is not None
                d = placed.get(o.placed.attempt_id)
                if d is None:
                    continue
                c = by_number[d.phone]
                self.dialled(d, o, c.talk_s, c.wrap_s)

    def backlog(self) -> None:
        with self.engine.connect() as conn:
            waiting = conn.execute(text(
                "SELECT count(*) FROM queue_entries WHERE status = 'waiting'")).scalar_one()
            pending = conn.execute(text(
                "SELECT count(*) FROM callback_requests WHERE status = 'pending'")
            ).scalar_one()
        self.max_waiting = max(self.max_waiting, int(waiting))
        self.max_pending = max(self.max_pending, int(pending))

    def run(self, day: list[Caller]) -> None:
        by_sid = {c.sid: c for c in day}
        by_number = {c.number: c for c in day}
        start, end = self.cfg.at(self.cfg.open_hour), self.cfg.at(self.cfg.end_hour)
        self.clock.set(start)
        with self.engine.begin() as conn:
            ids = [agent_repo.create_agent(
                conn, username=f"agent{i:02d}", name=f"Agent {i:02d}", password="x" * 12,
                queues=[QUEUE], now=start) for i in range(self.cfg.agents)]
        for i in ids:
            self.service.set_availability(i, "available")
            with self.engine.connect() as conn:
                me = agent_repo.me(conn, i)
            assert me is not None
            self.agents[i] = me
        pending = list(reversed(day))
        steps = 0
        while True:
            now = self.clock.now()
            while pending and pending[-1].at <= now:
                self.arrive(pending.pop())
            while self.events and self.events[0][0] <= now:
                _t, n, fn = heapq.heappop(self.events)
                if n not in self.soft_seqs:
                    self.hard -= 1
                fn()
            self.dispatch(by_sid, by_number)
            steps += 1
            if steps % max(1, 60 // self.cfg.step_s) == 0:
                self.backlog()
            if now >= end and not self.hard and not pending:
                break
            self.clock.advance(seconds=self.cfg.step_s)
        self.counts["steps"] = steps


# ---------------------------------------------------------------------- figures


#: "Told short": a spoken wait of at most this (next in line included); "waited long": at
#: least this, answered or not. The targets this benchmark checks (issue 14, item 1).
SHORT_S, LONG_S = 120.0, 300.0
TARGET_MEDIAN_ERROR_S, TARGET_SHORT_THEN_LONG = 120.0, 0.05


@dataclass
class _Truth:
    errors: list[float] = field(default_factory=list)
    callers: int = 0
    short: int = 0
    short_then_long: int = 0
    nobody: int = 0


def wait_truth(sim: Sim, live: list[Any], answered: dict[str, datetime],
               by_sid: dict[str, Caller], now: datetime,
               told_map: dict[str, tuple[datetime, float | None]] | None = None,
               ) -> dict[str, Any]:
    """The wait each caller was told on joining against the wait that followed, per tier
    and overall: the median absolute error (callers answered live), and the share of
    callers told a short wait (<= 2 min) who then waited long (>= 5 min: answered that
    late, or still waiting that long when they hung up). Callers who took a callback are
    left out (their wait ended when they chose it); "nobody can answer" is counted apart."""
    status = {e.call_sid: e.status for e in live}
    groups: dict[str, _Truth] = {}
    for sid, (joined, told) in (sim.told if told_map is None else told_map).items():
        c = by_sid.get(sid)
        if c is None or status.get(sid) == "callback":
            continue
        at = answered.get(sid)
        waited = ((at - joined).total_seconds() if at is not None
                  else (min(now, joined + timedelta(seconds=c.patience_s)) - joined)
                  .total_seconds())
        for key in ("all", c.tier):
            g = groups.setdefault(key, _Truth())
            g.callers += 1
            if told is None:
                g.nobody += 1
                continue
            if at is not None:
                g.errors.append(abs(waited - told))
            if told <= SHORT_S:
                g.short += 1
                g.short_then_long += waited >= LONG_S
    out: dict[str, Any] = {}
    for key, g in groups.items():
        errors = sorted(g.errors)
        out[key] = {
            "callers": g.callers, "answered_measured": len(errors),
            "median_abs_error_s": round(errors[len(errors) // 2], 1) if errors else None,
            "p90_abs_error_s": round(h.pct(errors, 0.9), 1) if errors else None,
            "told_short": g.short, "told_short_then_long": g.short_then_long,
            "short_then_long_share": round(g.short_then_long / g.short, 4) if g.short
            else None,
            "told_nobody_can_answer": g.nobody}
    a = out.get("all", {})
    out["targets_met"] = bool(
        a and a["median_abs_error_s"] is not None
        and a["median_abs_error_s"] <= TARGET_MEDIAN_ERROR_S
        and (a["short_then_long_share"] or 0.0) <= TARGET_SHORT_THEN_LONG)
    return out


def _overlaps(intervals: list[tuple[datetime, datetime]]) -> int:
    intervals.sort()
    return sum(1 for a, b in pairwise(intervals) if b[0] < a[1])


def figures(sim: Sim) -> dict[str, Any]:
    now = sim.clock.now()
    engine = sim.engine
    R, A = callback_requests, callback_attempts
    with engine.connect() as conn:
        reqs = list(conn.execute(select(R)))
        atts = list(conn.execute(select(A).order_by(A.c.id)))
        live = list(conn.execute(
            select(queue_entries.c.call_sid, queue_entries.c.status,
                   queue_entries.c.deadline_at, queue_entries.c.callback_id)))
        offers_expired = int(conn.execute(select(func.count()).select_from(agent_calls)
                                          .where(agent_calls.c.outcome == "expired"))
                             .scalar_one())
        answered = dict(conn.execute(
            select(agent_calls.c.call_sid, agent_calls.c.answered_at)
            .where(agent_calls.c.answered_at.is_not(None))).all())
    by_sid = {c.sid: c for c in callers(sim.cfg)}
    tiers: dict[str, list[Any]] = {}
    for r in reqs:
        tiers.setdefault(r.tier or "default", []).append(r)
    # Lost: an open request that nobody will ever act on (not pending with a future due
    # time, and not on a call in progress: none is at the end of the day).
    lost = [r.id for r in reqs if r.status in ("pending", "dialing", "connected")
            and not (r.status == "pending" and r.due_at > now)]
    # Dialled twice at once: two attempts of one request (or to one number) whose calls
    # overlap, from the database and from the dialer's own record.
    per_req: dict[int, list[tuple[datetime, datetime]]] = {}
    for a in atts:
        if a.dialed_at is not None:
            per_req.setdefault(a.request_id, []).append((a.dialed_at, a.ended_at or now))
    per_phone: dict[str, list[tuple[datetime, datetime]]] = {}
    for d in sim.dialer.placed:
        per_phone.setdefault(d.phone, []).append((d.placed_at, d.ended_at or now))
    twice_db = sum(_overlaps(v) for v in per_req.values())
    twice_dialer = sum(_overlaps(v) for v in per_phone.values())
    # The crash: each claim never dialled ended as "lost" after the lease, then its request
    # was claimed again (or closed).
    crash: dict[str, Any] = {"at": sim.crashed_at.astimezone(ZONE).strftime("%H:%M:%S")
                             if sim.crashed_at else None, "claims_never_dialled":
                             len(sim.lost_claims)}
    if sim.lost_claims:
        att = {a.id: a for a in atts}
        taken = [att[i] for i in sim.lost_claims]
        crash["outcomes"] = sorted({a.outcome for a in taken})
        crash["taken_over_after_s"] = sorted(
            {int((a.ended_at - a.claimed_at).total_seconds()) for a in taken if a.ended_at})
        later = {a.request_id for a in atts if a.request_id in {t.request_id for t in taken}
                 and a.id not in sim.lost_claims and a.dialed_at is not None}
        crash["requests_dialled_afterwards"] = len(later)
        crash["dials_of_those_requests_overlapping"] = sum(
            _overlaps(per_req.get(t.request_id, [])) for t in taken)
    # Live calls: answered by an agent by their deadline, per tier.
    live_fig: dict[str, dict[str, Any]] = {}
    for e in live:
        c = by_sid.get(e.call_sid)
        if c is None:
            continue
        f = live_fig.setdefault(c.tier, {"calls": 0, "answered": 0, "in_deadline": 0,
                                         "abandoned": 0, "to_callback": 0})
        f["calls"] += 1
        f["abandoned"] += e.status == "abandoned"
        f["to_callback"] += e.status == "callback"
        at = answered.get(e.call_sid)
        if at is not None:
            f["answered"] += 1
            f["in_deadline"] += e.deadline_at is not None and at <= e.deadline_at
    for f in live_fig.values():
        f["answered_in_deadline_share"] = round(f["in_deadline"] / f["calls"], 4) \
            if f["calls"] else None
    overall = summarise(reqs, now)
    truth = wait_truth(sim, live, answered, by_sid, now)
    truth_before = wait_truth(sim, live, answered, by_sid, now, sim.told_before)
    return {
        "wait_truth": truth, "wait_truth_before": truth_before,
        "requested": len(reqs),
        "completed": overall["completed"], "failed": overall["failed"],
        "pending_future": sum(1 for r in reqs if r.status == "pending" and r.due_at > now),
        "lost": len(lost), "lost_ids": lost[:20],
        "dialled_twice_at_once": twice_db + twice_dialer,
        "dialled_twice_db": twice_db, "dialled_twice_dialer": twice_dialer,
        "attainment": overall["attainment"], "met": overall["met"],
        "missed": overall["missed"],
        "time_to_callback_s": overall["time_to_callback_s"],
        "tiers": {t: {k: v for k, v in summarise(rs, now).items() if k != "queues"}
                  for t, rs in sorted(tiers.items())},
        "attempts": len(atts),
        "attempt_outcomes": _tally(a.outcome or "open" for a in atts),
        "dials": len(sim.dialer.placed), "dials_canceled": len(sim.dialer.canceled),
        "crash": crash, "live": live_fig, "counts": sim.counts,
        "max_waiting_live": sim.max_waiting, "max_pending_callbacks": sim.max_pending,
        "routing_passes": sim.routes, "offers_expired": offers_expired,
        "ended_at": now.astimezone(ZONE).strftime("%H:%M:%S"),
    }


def _tally(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return dict(sorted(out.items()))


# ---------------------------------------------------------------------- running


def sim_settings(url: str, lease_s: float) -> Settings:
    return Settings(_env_file=None, database_url=url, twilio_auth_token="bench-token",
                    callbacks_file=ROOT / "callbacks.yaml", watch_menus=False,
                    route_every_seconds=0, callback_caller_id="+97235550100",
                    callback_lease_seconds=lease_s, db_pool_size=4)


def simulate(url: str, cfg: DayConfig, mode: str) -> dict[str, Any]:
    """One day on a migrated, empty database at ``url``; the figures."""
    clock = FrozenClock(cfg.at(cfg.open_hour))
    settings = sim_settings(url, cfg.lease_s)
    engine = make_engine(url, pool_size=4)
    dialer = SimDialer(clock)
    service = callback_services(engine, settings, clock, gateway=HoldLoopGateway(),
                                dialer=dialer)
    assert isinstance(service, AgentService) and service.callbacks is not None
    sim = Sim(cfg, engine, settings, clock, dialer, service)
    t0 = time.perf_counter()
    try:
        with ordering(mode):
            sim.run(callers(cfg))
        result = figures(sim)
    finally:
        engine.dispose()
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["mode"] = mode
    return result


@contextmanager
def database(backend: str) -> Iterator[str]:
    """A fresh, migrated database of ``backend``; removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ivr-cb-day-") as tmp:
            url = f"sqlite:///{tmp}/day.db"
            upgrade(url)
            yield url
        return
    with h.pg_database(PG_ADMIN, PG_DB, migrate=True) as url:
        yield url


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.1f}%"


def _min(v: float | None) -> str:
    return "–" if v is None else f"{v / 60:.1f}"


def markdown(runs: list[dict[str, Any]], cfg: DayConfig, meta: dict[str, Any]) -> str:
    lines = [
        f"Run {meta['at']} UTC, `python bench/callbacks_day.py{meta['argv']}` (git "
        f"{meta['git']}); {meta['machine']}; 1-minute load average {meta['load_start']:.2f} "
        f"at the start, {meta['load_end']:.2f} at the end.",
        "",
        f"Day: {cfg.day} (Monday), {cfg.calls:,} callers from {cfg.open_hour:g}:00 to "
        f"{cfg.last_arrival_hour:g} h local, bursts {list(cfg.bursts)} (start h, end h, rate "
        f"factor), {cfg.agents} agents on queue `{QUEUE}` (callbacks.yaml default policy: "
        f"premium 15 min, standard 2 h of business time), premium share "
        f"{cfg.premium_share:.0%}, {cfg.callback_share:.0%} of callers accept a callback "
        f"when offered, patience exp. mean {cfg.patience_mean_s:g} s, talk exp. mean "
        f"{cfg.talk_mean_s:g} s, wrap-up {cfg.wrap_s[0]}-{cfg.wrap_s[1]} s, dial outcomes "
        f"answered/busy/no-answer/machine {cfg.dial_p}, clock step {cfg.step_s} s, lease "
        f"{cfg.lease_s:g} s, worker crash at {cfg.crash_hour} h, seed {cfg.seed}.",
        "",
        "| backend | order | requested | completed | failed | pending (future) | lost | "
        "dialled twice at once | attainment | premium | standard | time to callback p50 "
        "/ p90 min | live answered in deadline (premium / standard) | wall s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        t = r["tiers"]
        ttc = r["time_to_callback_s"]
        live = r["live"]
        lines.append(
            f"| {r['backend']} | {r['mode'].upper()} | {r['requested']:,} | "
            f"{r['completed']:,} | {r['failed']:,} | {r['pending_future']:,} | "
            f"**{r['lost']}** | **{r['dialled_twice_at_once']}** | {_pct(r['attainment'])} "
            f"| {_pct(t.get('premium', {}).get('attainment'))} "
            f"| {_pct(t.get('standard', {}).get('attainment'))} "
            f"| {_min(ttc['p50'])} / {_min(ttc['p90'])} "
            f"| {_pct(live.get('premium', {}).get('answered_in_deadline_share'))} / "
            f"{_pct(live.get('standard', {}).get('answered_in_deadline_share'))} "
            f"| {r['wall_s']} |")
    lines.append("")
    for r in runs:
        c = r["crash"]
        lines.append(
            f"- {r['backend']} {r['mode'].upper()}: calls {r['counts'].get('calls', 0):,}, "
            f"live served {r['counts'].get('live_served', 0):,}, abandoned "
            f"{r['counts'].get('abandoned', 0):,}; callbacks met/missed {r['met']}/"
            f"{r['missed']} (premium {_tier(r, 'premium')}, standard {_tier(r, 'standard')});"
            f" dials {r['dials']:,}, attempt outcomes {r['attempt_outcomes']}; crash at "
            f"{c['at']}: {c['claims_never_dialled']} claim(s) never dialled, ended "
            f"{c.get('outcomes')} after {c.get('taken_over_after_s')} s, "
            f"{c.get('requests_dialled_afterwards')} dialled afterwards, overlapping dials "
            f"{c.get('dials_of_those_requests_overlapping')}; agents offered a call while on "
            f"another {r['counts'].get('agent_double_booked', 0)}; dials canceled "
            f"{r['dials_canceled']}; offers expired "
            f"{r['offers_expired']}; max waiting live "
            f"{r['max_waiting_live']}, max pending callbacks {r['max_pending_callbacks']}; "
            f"day ended {r['ended_at']}.")
    lines += ["", "What callers were told about their wait on joining, against the wait that "
              f"followed (issue 14, item 1; targets: median absolute error <= "
              f"{TARGET_MEDIAN_ERROR_S / 60:g} min, told <= {SHORT_S / 60:g} min and then waited "
              f">= {LONG_S / 60:g} min <= {TARGET_SHORT_THEN_LONG:.0%}):", "",
              "| backend | order | callers | told: median / p90 abs. error min | told short "
              "| then waited long | told nobody can answer | premium median error | "
              "standard median error | targets |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r, label, key in [(r, label, key) for r in runs for label, key in
                          (("", "wait_truth"), (" (before: the old estimate)",
                                                "wait_truth_before"))]:
        t = r[key]
        a = t.get("all", {})
        lines.append(
            f"| {r['backend']} | {r['mode'].upper()}{label} | {a.get('callers', 0):,} | "
            f"{_min(a.get('median_abs_error_s'))} / {_min(a.get('p90_abs_error_s'))} | "
            f"{a.get('told_short', 0):,} | {a.get('told_short_then_long', 0):,} "
            f"({_pct(a.get('short_then_long_share'))}) | {a.get('told_nobody_can_answer', 0)}"
            f" | {_min(t.get('premium', {}).get('median_abs_error_s'))} | "
            f"{_min(t.get('standard', {}).get('median_abs_error_s'))} | "
            f"{'met' if t.get('targets_met') else '**missed**'} |")
    return "\n".join(lines)


def _tier(r: dict[str, Any], tier: str) -> str:
    t = r["tiers"].get(tier)
    return f"{t['met']}/{t['missed']} of {t['requests']}" if t else "–"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=DayConfig.calls)
    ap.add_argument("--agents", type=int, default=DayConfig.agents)
    ap.add_argument("--seed", type=int, default=DayConfig.seed)
    ap.add_argument("--step", type=int, default=DayConfig.step_s)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--modes", default="edf,fifo")
    args = ap.parse_args()
    cfg = DayConfig(calls=args.calls, agents=args.agents, seed=args.seed, step_s=args.step)
    argv = " ".join(sys.argv[1:])
    meta: dict[str, Any] = {"at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
                            "argv": f" {argv}" if argv else "", "git": h.git_rev(),
                            "machine": h.machine_line(), "load_start": os.getloadavg()[0]}
    runs = []
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            with database(backend) as url:
                r = simulate(url, cfg, mode)
            r["backend"] = backend
            runs.append(r)
            print(json.dumps({k: v for k, v in r.items() if k not in ("lost_ids",)},
                             default=str), flush=True)
    meta["load_end"] = os.getloadavg()[0]
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = h.stamp()
    (OUT / f"callbacks-day-{stamp}.json").write_text(json.dumps(
        {"config": asdict(cfg), "meta": meta, "runs": runs}, indent=2, default=str))
    md = markdown(runs, cfg, meta)
    (OUT / f"callbacks-day-{stamp}.md").write_text(md + "\n")
    print()
    print(md)
    bad = [r for r in runs if r["lost"] or r["dialled_twice_at_once"]]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
