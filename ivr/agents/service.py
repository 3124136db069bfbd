"""Agent use cases: sign-in, availability, queueing and routing calls to agents, the
screen-pop, the agent's leg, and the wrap-up.

Each use case is one transaction (``engine.begin()``); events for consoles are rows written
in it (see ``ivr.agents.events``). Decisions that need no I/O are pure (``routing.plan``,
``ivr.menu.engine.queue_priority``); this module loads and saves around them.

Its size (~600 lines) is on purpose: the queue's state machine (join, offer, connect, agent
leg, dial ended, caller gone, wrap-up) is one class whose transitions are conditional
updates over the same rows; routing's decision is pure in ``ivr.agents.routing``, its
dispatch in ``ivr.agents.dispatch``.

Its size (~830 lines, grown with liveness and sign-in throttling in issue 15) is the next
thing to split: sign-in and liveness into their own modules, the screen-pop and the board
beside them; kept whole in this stop to keep the concurrent work of issue 15 verifiable.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from crm_sync.models import customers
from crm_sync.phones import mask
from crm_sync.profile import search
from crm_sync.screenpop import customer_context, empty_context
from crm_sync.wrapup import CallFacts, WrapUp, record_wrap_up
from ivr.agents import repository as repo
from ivr.agents.auth import DUMMY_HASH, Hashing
from ivr.agents.events import Published
from ivr.agents.gateway import Gateway
from ivr.agents.models import agent_calls, queue_entries
from ivr.agents.ports import (
    DIAL_BRIDGE,
    NO_AFTER_CALL,
    NO_QUEUE_WORK,
    NO_WRAP_UP_CHECK,
    AfterCall,
    CallBridge,
    Outcome,
    QueueWork,
    Reservation,
    RoutingPass,
    WrapUpCheck,
)
from ivr.agents.routing import plan
from ivr.agents.twiml import connect_twiml
from ivr.calls import twiml
from ivr.calls.repository import calls, get_call
from ivr.core.clock import Clock
from ivr.core.db import reading
from ivr.core.settings import Settings
from ivr.core.twilio_rest import uncertain
from ivr.menu.engine import Enqueue, Hangup, queue_priority
from ivr.menu.model import QueueNode
from ivr.menu.registry import MenuRegistry

log = logging.getLogger(__name__)

ANSWERED = {"in-progress", "answered"}
DIAL_DONE = {"completed", "answered"}
#: The caller's CallStatus in a ``<Dial action>`` when they hung up (not on the line).
CALLER_LEFT = {"completed", "canceled"}
#: Twilio's statuses of a call that is not over yet.
CALL_LIVE = {"queued", "ringing", "in-progress"}
#: The most a wait round speaks besides its pause (the hold message or the expected wait,
#: and the callback offer's <Gather>), once a minute.
SPOKEN_SECONDS = 15


@dataclass(frozen=True)
class SignIn:
    """A sign-in whose password is being checked (``AgentService.begin_sign_in``)."""

    username: str
    address: str
    agent_id: int | None
    password_hash: str
    active: bool


class AgentError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class AgentService:
    #: How a dequeued caller meets the agent: a conference when the transfers feature is
    #: plugged in (``ivr.services``), else ``<Dial>``.
    bridge: CallBridge = DIAL_BRIDGE

    def __init__(self, engine: Engine, registry: MenuRegistry | None, clock: Clock,
                 settings: Settings, gateway: Gateway,
                 callbacks: QueueWork = NO_QUEUE_WORK,
                 after_call: AfterCall = NO_AFTER_CALL,
                 wrap_up_check: WrapUpCheck = NO_WRAP_UP_CHECK) -> None:
        self.engine = engine
        self.registry = registry
        self.clock = clock
        self.settings = settings
        self.gateway = gateway
        #: The callbacks feature plugged into the queue (``ivr.agents.ports``).
        self.callbacks = callbacks
        #: A routing pass's first question, with the callbacks' due probe (built once).
        self._probe = repo.probe_statement(callbacks.due_probe())
        #: What a caller hears after the agent hangs up (the post-call survey).
        self.after_call = after_call
        #: The wrap-up's lists, exit interview and the pop's leaving risk (retention).
        self.wrap_up_check = wrap_up_check
        #: Sign-ins' password checks, in threads of their own (``ivr.agents.auth``).
        self.hashing = Hashing(settings.login_hash_threads, settings.login_max_pending)

    # ------------------------------------------------------------ sign-in and state

    def sign_in_wait(self, username: str, address: str) -> float | None:
        """Seconds before this account or client address may try to sign in again (too many
        failures in ``IVR_LOGIN_WINDOW_SECONDS``), or None."""
        with self.engine.connect() as conn:
            return self._sign_in_wait(conn, username, address, self.clock.now())

    def _sign_in_wait(self, conn: Connection, username: str, address: str, now: datetime,
                      ) -> float | None:
        return repo.throttled_for(conn, now, timedelta(
            seconds=self.settings.login_window_seconds), [
            ("username", username, self.settings.login_max_failures),
            ("address", address, self.settings.login_max_failures_per_address)])

    def begin_sign_in(self, username: str, address: str) -> SignIn | float:
        """The first half of a sign-in (the password is checked in between, off the event
        loop: ``Hashing``). A float: seconds before this account or client address may try
        again (too many failures in ``IVR_LOGIN_WINDOW_SECONDS``). Else the stored hash to
        check against (a dummy one for an unknown user: both cost the same)."""
        with self.engine.begin() as conn:
            wait = self._sign_in_wait(conn, username, address, self.clock.now())
            if wait is not None:
                return wait
            row = repo.credentials(conn, username)
        if row is None:
            return SignIn(username, address, None, DUMMY_HASH, active=False)
        return SignIn(username, address, int(row.id), row.password_hash,
                      active=bool(row.active))

    def finish_sign_in(self, attempt: SignIn, password_ok: bool,
                       ) -> tuple[str, dict[str, Any]] | None:
        """A session for a right password of an active account (the account's failures are
        forgotten); else None, and the failure is counted for the account and the address."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            if not password_ok or attempt.agent_id is None or not attempt.active:
                repo.add_login_failure(conn, attempt.username, attempt.address, now,
                                       timedelta(seconds=self.settings.login_window_seconds))
                return None
            repo.clear_login_failures(conn, attempt.username)
            ttl = timedelta(hours=self.settings.agent_session_hours)
            token = repo.create_session(conn, attempt.agent_id, now, ttl)
            me = repo.me(conn, attempt.agent_id)
        assert me is not None
        return token, me

    def session(self, token: str) -> dict[str, Any] | None:
        with reading(self.engine) as conn:
            return repo.session_agent(conn, token, self.clock.now())

    def logout(self, token: str, agent_id: int) -> Outcome:
        now = self.clock.now()
        out = Outcome()
        with self.engine.begin() as conn:
            repo.revoke_session(conn, token, now)
            if repo.set_state(conn, agent_id, "offline", now, reason="signed out",
                              only_from=("available",)):
                self._state_event(conn, agent_id, now, out)
        return out

    def set_availability(self, agent_id: int, state: str) -> tuple[dict[str, Any], Outcome]:
        """An agent goes available or offline (not while a call is theirs)."""
        if state not in ("available", "offline"):
            raise AgentError(422, "state must be 'available' or 'offline'")
        now = self.clock.now()
        out = Outcome(reroute=state == "available")
        with self.engine.begin() as conn:
            current = repo.me(conn, agent_id)
            assert current is not None
            if current["state"] in ("reserved", "on_call"):
                raise AgentError(409, f"you are {current['state'].replace('_', ' ')}; "
                                      "finish the call first")
            if current["state"] == "wrap_up" and current["current_call_sid"]:
                raise AgentError(409, "submit the wrap-up of your last call first")
            if current["state"] != state:
                repo.set_state(conn, agent_id, state, now, reason="agent")
                self._state_event(conn, agent_id, now, out)
            me = repo.me(conn, agent_id)
        assert me is not None
        return me, out

    def set_language(self, agent_id: int, language: str | None) -> dict[str, Any]:
        """The agent's console language, kept with the agent (None: the centre's)."""
        with self.engine.begin() as conn:
            repo.set_language(conn, agent_id, language, self.clock.now())
            me = repo.me(conn, agent_id)
        assert me is not None
        return me

    def _state_event(self, conn: Connection, agent_id: int, now: datetime, out: Outcome,
                     ) -> None:
        me = repo.me(conn, agent_id)
        if me is not None:
            out.published.append((agent_id, repo.add_event(conn, agent_id, "state", me, now)))

    # ------------------------------------------------------------ queueing

    def waiting(self, call_sid: str, queue: str, params: dict[str, str]) -> Outcome:
        """Twilio's waitUrl for a queued caller: join the queue the first time, answer
        ``<Leave/>`` once an agent is reserved (hold-loop gateway), else the hold message."""
        now = self.clock.now()
        out = Outcome()
        queue_sid = params.get("QueueSid") or None
        with self.engine.begin() as conn:
            entry = repo.get_entry(conn, call_sid)
            call = get_call(conn, call_sid)
            if entry is None or entry.status in ("done", "abandoned", "callback") \
                    or entry.queue != queue:
                if call is None:
                    raise LookupError(call_sid)
                attrs = dict(call["attributes"] or {})
                customer_id = attrs.get("customer_id") if attrs.get("identified") else None
                preferred = None
                if (customer_id is not None and attrs.get("repeat_caller")
                        and attrs.get("has_open_incident")):
                    preferred = repo.last_agent_of(conn, int(customer_id))
                deadline = self.callbacks.deadline_for(queue, attrs.get("tier"), now)
                # Idempotent: of requests racing for this call's first wait (Twilio retries
                # a slow one), one joins; the others read its entry and answer the same.
                out.reroute = repo.join_queue(
                    conn, call_sid=call_sid, queue=queue, queue_sid=queue_sid,
                    priority=self._priority(call, attrs), customer_id=customer_id,
                    preferred_agent_id=preferred, now=now, deadline_at=deadline, seen=entry)
                entry = repo.get_entry(conn, call_sid)
            else:  # a wait round: the call is alive (IVR_QUEUE_SILENT_ROUNDS)
                repo.heard_from(conn, call_sid, now, queue_sid)
            status = entry.status if entry is not None else "waiting"
            language = (call or {}).get("language") or "he-IL"
            pause = self._pause()
            if status in ("offered", "choosing") and (self.gateway.holds_callers
                                                       or status == "choosing"):
                out.twiml = twiml.leave()
                return out
            if entry is not None and status == "waiting":
                held = self.callbacks.hold(conn, entry, language, params, pause, now)
                if held is not None:
                    out.twiml = held
                    return out
            nobody = repo.staffed(conn, queue) == 0  # then no "an agent will be with you"
        queue_time = params.get("QueueTime", "0")
        seconds = int(queue_time) if queue_time.isdigit() else 0
        out.twiml = twiml.hold(language, params.get("QueuePosition"),
                               self.settings.hold_music_url, pause=pause,
                               speak=seconds % 60 < pause, nobody=nobody)
        return out

    def _pause(self) -> int:
        """The pause of a wait round: short when the wait loop releases callers itself."""
        return self.settings.hold_poll_seconds if self.gateway.holds_callers else 20

    def silence(self) -> timedelta:
        """How long a live entry may go unheard of before the sweep checks it:
        ``IVR_QUEUE_SILENT_ROUNDS`` wait rounds (each the pause and up to
        ``SPOKEN_SECONDS`` of speech)."""
        return timedelta(seconds=self.settings.queue_silent_rounds
                         * (self._pause() + SPOKEN_SECONDS))

    def _priority(self, call: Mapping[str, Any], attrs: dict[str, Any]) -> int:
        if self.registry is None:
            return 0
        try:
            bundle = self.registry.get(call["menu_version"])
            node = bundle.menus[call["menu"]].menu.nodes.get(call["node"])
        except Exception:  # a version that cannot be rebuilt: default priority
            log.exception("queue priority unknown call=%s", call.get("call_sid"))
            return 0
        return queue_priority(node, attrs) if isinstance(node, QueueNode) else 0

    # ------------------------------------------------------------ routing

    def route(self) -> RoutingPass:
        """Offer waiting calls to free agents (``routing.plan``). Safe to run in several
        processes at once: rows another router holds are skipped (PostgreSQL SKIP LOCKED),
        and an offer changes a call and an agent only from the states it read. A pass that
        offers nothing while a match was there, held by another transaction (a caller's
        own wait round holds its entry; an agent's request, its row), says so
        (``contended``): the router tries again in a moment, not at the next sweep."""
        now = self.clock.now()
        offers: list[Reservation] = []
        published: Published = []
        # Index probes first, in one statement (anyone waiting, any callback due, how many
        # agents free), read alone (no transaction around it: most passes end here): with
        # nobody waiting and nothing due, no agent row is read or locked (the agents' rows
        # were most of a routing pass: issue 4). Then, in the pass's transaction, how many
        # agents are free for each queue (counted in SQL), and only the callers they can
        # take: the heads of their queues, so a pass costs the same with 10 or 10,000
        # callers waiting (issue 18, bench/routing_scale.py). Due callbacks join the same
        # plan (one ordering: priority, deadline, entry).
        with reading(self.engine) as conn:
            waiting, due, free_total = repo.probe(conn, self._probe, now)
        if not (waiting or due) or not free_total:
            return RoutingPass([], [])
        with self.engine.begin() as conn:
            per_queue = repo.free_per_queue(conn)
            calls = repo.waiting_heads(conn, per_queue, free_total) if waiting else []
            if due:
                calls = calls + self.callbacks.due_work(conn, now, per_queue)
            # A pass that comes up empty while someone waits and an agent is free reads
            # again without locks: a match there was skipped, held by another transaction.
            if not calls:
                return RoutingPass([], [], waiting and repo.skips_locked(conn) and bool(
                    repo.waiting_heads(conn, per_queue, free_total, lock=False)))
            # Only the agents the plan can choose are read (and locked): the first free ones
            # of each queue concerned, and the callers' preferred agents (issue 18 item 3:
            # with 1,000 agents free a pass locked them all).
            queues = {c.queue for c in calls}
            preferred = {c.preferred_agent_id for c in calls
                         if c.preferred_agent_id is not None}
            free = repo.free_candidates(conn, queues, preferred, len(calls))
            pairs = plan(calls, free)
            if not pairs:
                return RoutingPass([], [], repo.skips_locked(conn) and bool(plan(
                    calls, repo.free_candidates(conn, queues, preferred, len(calls),
                                                lock=False))))
            out = Outcome()
            for call, agent in pairs:
                if call.kind == "callback":
                    # A process that does not dispatch callbacks leaves the agent free for
                    # one that does (the order is kept: no later call takes the agent).
                    if not self.settings.dispatch_callbacks:
                        continue
                    # The queue's next due callback is taken (one statement): the one
                    # planned, or the next if another router has just taken that one.
                    placed = self.callbacks.claim(conn, call, agent.agent_id, now, out)
                    if placed is not None:
                        offers.append(Reservation(0, f"callback:{placed.request_id}", None,
                                                  agent.agent_id, placed))
                    continue
                offer_id = repo.offer(conn, call, agent.agent_id, now)
                if offer_id is None:
                    continue
                # The console shows "reserved" at once (the pop follows at connect).
                published.append((agent.agent_id, repo.add_event(
                    conn, agent.agent_id, "state", repo.me(conn, agent.agent_id) or {}, now)))
                entry = repo.get_entry(conn, call.call_sid)
                offers.append(Reservation(offer_id, call.call_sid, entry.twilio_queue_sid,
                                          agent.agent_id))
            published.extend(out.published)
        for o in offers:
            if o.placed is None:  # a callback's claim is logged by the callback service
                # The offered call's CallSid on the record: the pass runs after the answer
                # of the request that asked for it, outside that request's context.
                log.info("call offered to agent call=%s agent=%s offer=%s", o.call_sid,
                         o.agent_id, o.offer_id, extra={"call_sid": o.call_sid})
        return RoutingPass(offers, published)

    def needs_delivery(self, offers: list[Reservation]) -> bool:
        """Whether ``deliver`` has anything to do: a callback to dial, or callers to dequeue
        through the REST API (the hold loop releases its callers itself)."""
        return any(o.placed is not None for o in offers) or not self.gateway.holds_callers

    def deliver(self, offers: list[Reservation]) -> Outcome:
        """Hand offers to the gateway (REST: dequeue now). A failure puts the caller back
        to waiting and the agent back to available."""
        out = Outcome()
        placed = [o.placed for o in offers if o.placed is not None]
        if placed:
            self.callbacks.dial(placed, out)
        if self.gateway.holds_callers:
            return out
        base = self.settings.public_url or ""
        for o in offers:
            if o.placed is not None:
                continue
            try:
                if not o.queue_sid:
                    raise RuntimeError("no QueueSid known for the call yet")
                self.gateway.dequeue(o.queue_sid, o.call_sid,
                                     f"{base}/twilio/connect?a={o.offer_id}")
            except Exception:
                log.exception("dequeue failed; the caller keeps waiting call=%s", o.call_sid)
                self._undo_offer(o.offer_id, "failed", "available", out)
        return out

    def _undo_offer(self, offer_id: int, outcome: str, agent_state: str, out: Outcome,
                    ) -> None:
        now = self.clock.now()
        with self.engine.begin() as conn:
            offer = repo.get_offer(conn, offer_id)
            if offer is None or offer.ended_at is not None:
                return
            self._end_offer(conn, offer, outcome, agent_state, now, out, requeue=True)

    def _end_offer(self, conn: Connection, offer: Any, outcome: str, agent_state: str,
                   now: datetime, out: Outcome, *, requeue: bool, close: bool = False,
                   ) -> None:
        repo.update_offer(conn, offer.id, ended_at=now, outcome=outcome)
        if requeue:  # back to waiting, keeping the time the caller first joined
            repo.update_entry(conn, offer.call_sid, status="waiting", agent_id=None,
                              offered_at=None, connected_at=None, updated_at=now)
            out.reroute = True
        elif close:  # the caller is presumed gone
            repo.close_entry(conn, offer.call_sid, "abandoned", now)
        if repo.set_state(conn, offer.agent_id, agent_state, now, reason=outcome,
                          only_call=offer.call_sid):
            self._state_event(conn, offer.agent_id, now, out)
            out.reroute = out.reroute or agent_state == "available"

    def expire_offers(self) -> Outcome:
        """Offers whose caller never reached the connect webhook in time (the caller hung up
        as the offer was made, Twilio lost the request): caller and agent are freed. A call
        whose offers expired ``IVR_QUEUE_MAX_EXPIRED_OFFERS`` times is closed (its caller is
        presumed gone), so it cannot hold the head of the queue. Agents reserved or on a
        call that nothing backs any more are freed (``_free_stranded``)."""
        now = self.clock.now()
        out = Outcome()
        before = now - timedelta(seconds=self.settings.offer_timeout_seconds)
        with self.engine.begin() as conn:
            for offer in repo.stale_offers(conn, before):
                expired = repo.expired_offers(conn, offer.call_sid) + 1
                if expired >= self.settings.queue_max_expired_offers:
                    log.warning("offer expired %d times; the caller is presumed gone call=%s "
                                "agent=%s", expired, offer.call_sid, offer.agent_id)
                    self._end_offer(conn, offer, "expired", "available", now, out,
                                    requeue=False, close=True)
                    continue
                log.warning("offer expired call=%s agent=%s", offer.call_sid, offer.agent_id)
                self._end_offer(conn, offer, "expired", "available", now, out, requeue=True)
            self._free_stranded(conn, now, out)
        return out

    def _free_stranded(self, conn: Connection, now: datetime, out: Outcome) -> None:
        """An agent is reserved or on a call only while an open offer of that call to them
        and its queue entry (offered to them, or connected) back it. Whatever ended the call
        without freeing the agent (a status callback that never came, a request that failed
        half-way), the sweep puts them back: reserved → available, on a call → wrap-up.
        Callbacks' keys are the callback service's (its leases)."""
        for r in repo.reservations(conn):
            if self.callbacks.owns(r.current_call_sid):
                continue
            if (r.offer_id is not None and r.entry_status in ("offered", "connected")
                    and r.entry_agent_id == r.agent_id):
                continue
            answered = r.state == "on_call" or r.answered_at is not None
            state = "wrap_up" if answered else "available"
            if r.offer_id is not None:
                repo.update_offer(conn, r.offer_id, ended_at=now,
                                  outcome="completed" if answered else "canceled")
            if not repo.set_state(conn, r.agent_id, state, now, reason="call gone",
                                  only_from=(r.state,), only_call=r.current_call_sid):
                continue
            log.warning("agent %s was %s for a call that is over; now %s call=%s",
                        r.agent_id, r.state, state, r.current_call_sid)
            self._state_event(conn, r.agent_id, now, out)
            out.published.append((r.agent_id, repo.add_event(
                conn, r.agent_id, "call", {"call_sid": r.current_call_sid, "status": "ended"},
                now, r.current_call_sid)))
            out.reroute = out.reroute or state == "available"

    # ------------------------------------------------------------ liveness

    def silent_entries(self) -> list[Any]:
        """Live entries not heard of for ``silence()``: the sweep's candidates. Without an
        account to ask Twilio (the wait loop releases callers), a conversation is not one:
        it has no rhythm whose silence would tell."""
        before = self.clock.now() - self.silence()
        statuses = ("waiting", "offered") if self.gateway.holds_callers else repo.LIVE_ENTRIES
        with self.engine.connect() as conn:
            return repo.silent_entries(conn, before, statuses)

    def liveness(self, silent: list[Any]) -> list[tuple[Any, str]]:
        """For each silent entry, what is known of its call: ``live`` (Twilio says it is in
        progress), ``over`` (Twilio says it ended, or does not know it), ``presumed-gone``
        (no account to ask: a wait loop that stopped polling has no caller), ``unknown``
        (Twilio could not be asked: asked again a round later). Network only: run in a
        thread, outside any transaction."""
        verdicts: list[tuple[Any, str]] = []
        for entry in silent:
            try:
                status = self.gateway.call_status(entry.call_sid)
            except Exception as exc:
                if uncertain(exc):
                    log.warning("cannot ask Twilio about a silent queued call; asked again "
                                "a round later call=%s: %s", entry.call_sid, exc)
                    verdicts.append((entry, "unknown"))
                else:  # Twilio refused: it does not know the call
                    verdicts.append((entry, "over"))
                continue
            if status is None:
                verdicts.append((entry, "presumed-gone"))
            else:
                verdicts.append((entry, "live" if status in CALL_LIVE else "over"))
        return verdicts

    def close_silent(self, verdicts: list[tuple[Any, str]]) -> Outcome:
        """Act on ``liveness``: a call that is over (or presumed gone) is closed as its
        final status callback would have closed it (``_caller_gone``); a live one is marked
        heard of. Each only if the entry is still as silent as it was when it was read."""
        now = self.clock.now()
        before = now - self.silence()
        out = Outcome()
        with self.engine.begin() as conn:
            for entry, verdict in verdicts:
                if verdict == "live":
                    repo.keep_alive(conn, entry.call_sid, now, before)
                elif verdict == "unknown":  # asked again one round from now, not every sweep
                    repo.keep_alive(conn, entry.call_sid, before + timedelta(
                        seconds=self._pause() + SPOKEN_SECONDS), before)
                elif verdict in ("over", "presumed-gone") and self._caller_gone(
                        conn, entry.call_sid, entry.status, now, out, silent_since=before):
                    log.warning("queued call silent since %s closed (%s) call=%s",
                                entry.heard_at.isoformat(), verdict, entry.call_sid)
        return out

    # ------------------------------------------------------------ connecting

    def connect(self, call_sid: str, offer_id: int | None) -> Outcome:
        """The caller left the queue for an agent: push the screen-pop and dial the agent.
        Without a live offer the caller goes back to the queue (never a dead line)."""
        now = self.clock.now()
        out = Outcome()
        with self.engine.begin() as conn:
            offer = (repo.get_offer(conn, offer_id) if offer_id is not None
                     else repo.open_offer(conn, call_sid))
            if offer is None or offer.call_sid != call_sid or offer.ended_at is not None:
                log.warning("connect without a live offer; back to the queue call=%s", call_sid)
                out.twiml = self._requeue_twiml(conn, call_sid, now, out)
                return out
            self._dial(conn, offer, now, out)
        return out

    def _dial(self, conn: Connection, offer: Any, now: datetime, out: Outcome) -> None:
        """Connect the caller of a live offer: the screen-pop (once), then ``<Dial>``. The
        pop is written in this transaction, before the answer: an agent's events are read
        by id (``console_stream``), and a pop written later, in a transaction of its own,
        could commit after a later event of the same agent had been read (a pop lost: seen
        in bench/consoles.py, bench/results.md)."""
        agent = repo.me(conn, offer.agent_id)
        assert agent is not None
        if offer.connected_at is None:
            repo.update_offer(conn, offer.id, connected_at=now)
            repo.update_entry(conn, offer.call_sid, connected_at=now, updated_at=now,
                              last_seen_at=now)
            context = self.build_context(conn, offer.call_sid, now, offer)
            context["offer_id"] = offer.id
            # The pop itself says "ringing" (status): no separate call event.
            out.published.append((offer.agent_id, repo.add_event(
                conn, offer.agent_id, "screenpop", context, now, offer.call_sid)))
        out.twiml = self.bridge.connect(conn, offer, agent, offer.connected_at is None, now,
                                        out) or connect_twiml(
            offer.id, agent["reach_kind"], agent["reach_target"],
            self.settings.agent_ring_timeout)

    def _requeue_twiml(self, conn: Connection, call_sid: str, now: datetime,
                       out: Outcome) -> str:
        call = get_call(conn, call_sid)
        entry = repo.get_entry(conn, call_sid)
        if call is None or entry is None:
            return twiml.safe_route(self.settings.safe_queue)
        repo.update_entry(conn, call_sid, status="waiting", agent_id=None, offered_at=None,
                          connected_at=None, updated_at=now, last_seen_at=now)
        out.reroute = True
        return twiml.render([Enqueue(entry.queue, call["language"])], int(call["step"]))

    def queue_left(self, call_sid: str, result: str) -> Outcome | None:
        """The ``<Enqueue action>`` of a caller we are connecting (None: not ours, the menu
        engine decides). ``leave``: the hold loop released them, connect now;
        ``redirected``: the REST dequeue did, and Twilio runs /twilio/connect."""
        if result not in ("leave", "redirected"):
            return None
        out = Outcome()
        with self.engine.begin() as conn:  # one transaction: the offer is read once
            offer = repo.open_offer(conn, call_sid)
            if offer is None:
                entry = repo.get_entry(conn, call_sid)
                if result == "leave" and entry is not None and entry.status == "choosing":
                    dialog = self.callbacks.dialog_start(conn, call_sid, entry)
                    if dialog is not None:
                        return Outcome(dialog)
                return None
            if result == "redirected":
                return Outcome(twiml.empty())
            self._dial(conn, offer, self.clock.now(), out)
        return out

    def agent_leg(self, offer_id: int, params: dict[str, str]) -> Outcome:
        """Status callbacks of the agent's leg: answered → the agent is on the call."""
        now = self.clock.now()
        out = Outcome()
        status = params.get("CallStatus", "")
        with self.engine.begin() as conn:
            offer = repo.get_offer(conn, offer_id)
            if offer is None or offer.ended_at is not None or status not in ANSWERED:
                return out
            if offer.answered_at is None:
                repo.update_offer(conn, offer.id, answered_at=now, outcome="answered")
                repo.update_entry(conn, offer.call_sid, status="connected", updated_at=now,
                                  last_seen_at=now)
                if repo.set_state(conn, offer.agent_id, "on_call", now, reason="answered",
                                  only_call=offer.call_sid):
                    self._state_event(conn, offer.agent_id, now, out)
                out.published.append((offer.agent_id, repo.add_event(
                    conn, offer.agent_id, "call",
                    {"call_sid": offer.call_sid, "status": "answered"}, now, offer.call_sid)))
        return out

    def agent_dial_ended(self, offer_id: int, call_sid: str, dial_status: str,
                         call_status: str = "in-progress") -> Outcome:
        """The ``<Dial>`` to the agent is over (on a conference: the caller's ``<Dial>
        <Conference>``). Talked: the agent wraps up and the caller's call ends. Not
        answered, busy, failed: the caller goes back to the head of the queue and the
        agent is set offline (not available) until they say otherwise. The caller hung up
        (``call_status`` completed) while the agent's leg rang: nobody missed a call —
        closed as the caller's final status callback closes it (the agent available
        again), and never put back in the queue."""
        now = self.clock.now()
        out = Outcome()
        caller_left = call_status in CALLER_LEFT
        with self.engine.begin() as conn:
            offer = repo.get_offer(conn, offer_id)
            if offer is None or offer.call_sid != call_sid:
                out.twiml = (twiml.render([Hangup()], 0) if caller_left
                             else self._requeue_twiml(conn, call_sid, now, out))
                return out
            if offer.ended_at is not None:  # a retried request, or the final status came
                out.twiml = (self._after_agent(conn, offer, call_status, now)
                             if offer.outcome == "completed"
                             else twiml.render([Hangup()], 0) if caller_left
                             else self._requeue_twiml(conn, call_sid, now, out))
                return out
            talked = dial_status in DIAL_DONE and offer.answered_at is not None
            if not talked and caller_left and offer.answered_at is None:
                entry = repo.get_entry(conn, call_sid)
                if entry is not None and self._caller_gone(conn, call_sid, entry.status,
                                                           now, out):
                    log.info("the caller hung up while the agent's leg rang call=%s "
                             "agent=%s", call_sid, offer.agent_id)
                out.twiml = twiml.render([Hangup()], 0)
                return out
            if talked:
                repo.update_offer(conn, offer.id, ended_at=now, outcome="completed")
                repo.update_entry(conn, call_sid, status="done", ended_at=now, updated_at=now)
                if repo.set_state(conn, offer.agent_id, "wrap_up", now, reason="call ended",
                                  only_call=call_sid):
                    self._state_event(conn, offer.agent_id, now, out)
                out.published.append((offer.agent_id, repo.add_event(
                    conn, offer.agent_id, "call", {"call_sid": call_sid, "status": "ended"},
                    now, call_sid)))
                out.twiml = self._after_agent(conn, offer, call_status, now)
                return out
            outcome = dial_status if dial_status in ("busy", "failed", "canceled") \
                else "no-answer"
            log.warning("agent leg %s; caller back to the queue head call=%s agent=%s",
                        outcome, call_sid, offer.agent_id)
            out.published.append((offer.agent_id, repo.add_event(
                conn, offer.agent_id, "call", {"call_sid": call_sid, "status": "missed"},
                now, call_sid)))
            self._end_offer(conn, offer, outcome, "offline", now, out, requeue=True)
            out.twiml = self._requeue_twiml(conn, call_sid, now, out)
        return out

    def _after_agent(self, conn: Connection, offer: Any, call_status: str,
                     now: datetime) -> str:
        """After a conversation: the post-call survey for a caller still on the line
        (``AfterCall``), else the hang-up."""
        return (self.after_call.after_agent(conn, offer, call_status, now)
                or twiml.render([Hangup()], 0))

    def call_ended(self, call_sid: str) -> Outcome:
        """The caller's call is over (final status callback): a waiting entry is abandoned,
        an agent still reserved for it is freed."""
        now = self.clock.now()
        out = Outcome()
        with self.engine.begin() as conn:
            entry = repo.get_entry(conn, call_sid)
            if entry is None or entry.status in ("done", "callback", "abandoned"):
                return out
            self._caller_gone(conn, call_sid, entry.status, now, out)
        return out

    def _caller_gone(self, conn: Connection, call_sid: str, status: str, now: datetime,
                     out: Outcome, *, silent_since: datetime | None = None) -> bool:
        """Close an entry whose caller is gone: its open offer ends, a waiting (or offered)
        entry is abandoned, a connected one done, a reserved agent is available again and an
        agent on the call wraps up. ``silent_since``: only if the entry is still unheard of
        since then (the sweep; nothing changes otherwise). False when nothing changed."""
        offer = repo.open_offer(conn, call_sid)
        with conn.begin_nested() as sp:
            # Rows are written in the order every use case writes them — the offer, then the
            # queue entry, then the agent — so this and the <Dial> action Twilio sends at the
            # same moment (the caller hung up mid-call) wait for each other, never deadlock.
            if offer is not None:
                repo.update_offer(conn, offer.id, ended_at=now, outcome="completed"
                                  if offer.answered_at is not None else "canceled")
            if not repo.close_entry(conn, call_sid, "abandoned" if status != "connected"
                                    else "done", now, silent_since=silent_since,
                                    seen_status=status):
                sp.rollback()
                return False
            if offer is not None:
                if offer.answered_at is None:  # their leg was still ringing: stop it
                    self.bridge.caller_gone(conn, offer, now, out)
                state = "wrap_up" if offer.answered_at is not None else "available"
                if repo.set_state(conn, offer.agent_id, state, now, reason="caller hung up",
                                  only_call=call_sid):
                    self._state_event(conn, offer.agent_id, now, out)
                out.published.append((offer.agent_id, repo.add_event(
                    conn, offer.agent_id, "call", {"call_sid": call_sid, "status": "ended"},
                    now, call_sid)))
                out.reroute = out.reroute or state == "available"
        return True

    # ------------------------------------------------------------ the screen-pop

    def build_context(self, conn: Connection, call_sid: str, now: datetime,
                      offer: Any = None) -> dict[str, Any]:
        """The screen-pop: the customer's side (``crm_sync.screenpop``) and the call's (who
        called, what they typed, the IVR path with timings, the wait). ``offer``: the call's
        live offer when the caller has it at hand (else it is read). A callback attempt's
        key (``CB…``) gets the callback's pop."""
        if self.callbacks.owns(call_sid):
            return self.callbacks.context(conn, call_sid, now)
        full = _call_row(conn, call_sid)
        entry = repo.get_entry(conn, call_sid)
        attrs = dict(full.get("attributes") or {})
        path = list(full.get("path") or [])
        customer_id = attrs.get("customer_id") if attrs.get("identified") else None
        window = self.settings.repeat_window_minutes
        if customer_id is not None:
            ctx = customer_context(conn, int(customer_id), now, call_sid=call_sid,
                                   repeat_window_minutes=window)
        else:
            ctx = empty_context()
        outcome = attrs.get("caller_outcome") or ("known" if customer_id else "unknown")
        typed = next((p.get("digits") for p in reversed(path)
                      if p.get("event") == "identify" and p.get("digits")), None)
        candidates: list[dict[str, Any]] = []
        if outcome == "ambiguous" and full.get("from_number"):
            candidates = search(conn, phone=full["from_number"],
                                region=self.settings.default_region)
        chose = sorted({str(p["queue"]) for p in path
                        if p.get("queue") in self.settings.leaving_risk_queues})
        ctx["leaving_risk"] = self.wrap_up_check.pop_risk(
            conn, int(customer_id) if customer_id is not None else None, chose, now,
            ctx["leaving_risk"])
        entered = entry.entered_at if entry is not None else None
        if offer is None:
            offer = repo.open_offer(conn, call_sid)
        status = ("ended" if offer is None else
                  "answered" if offer.answered_at is not None else "ringing")
        ctx.update({
            "call_sid": call_sid,
            "status": status,
            "caller": {"number": full.get("from_number"), "outcome": outcome,
                       "typed_account": typed, "candidates": candidates},
            "language": full.get("language"),
            "queue": entry.queue if entry is not None else None,
            "priority": entry.priority if entry is not None else 0,
            "entered_queue_at": entered.isoformat() if entered else None,
            "waited_seconds": int((now - entered).total_seconds()) if entered else None,
            "call_started_at": full["created_at"].isoformat() if full.get("created_at")
            else None,
            "ivr_path": ivr_path(path),
            # The leaving reason the caller chose in the IVR (a code of wrapup.yaml's list).
            "ivr_leaving_reason": attrs.get("leaving_reason"),
            "pending_callbacks": self.callbacks.pending_for(conn, customer_id),
        })
        ctx.update(self.after_call.pop_fields(conn, customer_id, now))
        ctx.update(self.bridge.pop_fields(conn, call_sid, now))
        return ctx

    def context_for(self, agent: dict[str, Any], call_sid: str) -> dict[str, Any]:
        """The screen-pop of a call offered to this agent (admins: any call)."""
        now = self.clock.now()
        with self.engine.connect() as conn:
            if agent["role"] != "admin" and not repo.offered_to(conn, agent["id"], call_sid):
                raise AgentError(404, "no such call for you")
            if self.callbacks.owns(call_sid):
                if not repo.offered_to(conn, agent["id"], call_sid) and \
                        repo.offer_count(conn, call_sid) == 0:
                    raise AgentError(404, "no such call")
            elif get_call(conn, call_sid) is None:
                raise AgentError(404, "no such call")
            return self.build_context(conn, call_sid, now)

    # ------------------------------------------------------------ wrap-up

    def wrap_up(self, agent: dict[str, Any], call_sid: str, wrap: WrapUp,
                ) -> tuple[int | None, Outcome]:
        """The interaction goes into the caller's history (None: an unidentified caller,
        whose wrap-up only frees the agent)."""
        now = self.clock.now()
        out = Outcome(reroute=True)
        problem = self.wrap_up_check.refuse(wrap)
        if problem is not None:
            raise AgentError(422, problem)
        with self.engine.begin() as conn:
            offer = _answered_offer(conn, agent["id"], call_sid)
            if offer is None:
                raise AgentError(404, "no call of yours to wrap up with that CallSid")
            if offer.wrapped_up_at is not None:
                raise AgentError(409, "this call is wrapped up already")
            full = _call_row(conn, call_sid)  # one read: attributes, path, start
            attrs = dict(full.get("attributes") or {})
            customer_id = attrs.get("customer_id") if attrs.get("identified") else None
            callback = self.callbacks.owns(call_sid)
            if callback:
                customer_id = self.callbacks.customer_id_of(conn, call_sid)
            interaction_id = None
            if customer_id is not None:
                entry = None if callback else repo.get_entry(conn, call_sid)
                start = offer.answered_at or offer.offered_at
                end = offer.ended_at or now
                facts = CallFacts(
                    call_sid=call_sid, customer_id=int(customer_id),
                    agent=self.bridge.agent_label(conn, call_sid, agent["name"], now),
                    queue=offer.queue, started_at=full.get("created_at") or start,
                    ended_at=end,
                    wait_seconds=int((start - entry.entered_at).total_seconds())
                    if entry is not None else None,
                    talk_seconds=int((end - start).total_seconds()) if offer.answered_at
                    else 0,
                    ivr_path=list(full.get("path") or []),
                    branch=self.settings.branch_name,
                    direction="out" if callback else "in")
                written = record_wrap_up(conn, facts, wrap, now)
                interaction_id = written.interaction_id
                self.wrap_up_check.record(conn, facts, wrap, interaction_id, now)
            repo.update_offer(conn, offer.id, wrapped_up_at=now, interaction_id=interaction_id)
            if repo.set_state(conn, agent["id"], "available", now, reason="wrapped up",
                              only_from=("wrap_up",)):
                self._state_event(conn, agent["id"], now, out)
        return interaction_id, out

    # ------------------------------------------------------------ supervisor

    def centre_timezone(self) -> str:
        """The centre's time zone, in which the console shows every time: the entry
        menu's, whose hours the centre keeps and in which its prompts speak times."""
        registry = self.registry
        if registry is None or not registry.loaded:
            return "UTC"
        entry = registry.current.menus.get(registry.entry)
        return entry.menu.spoken_timezone() if entry is not None else "UTC"

    def board(self) -> dict[str, Any]:
        now = self.clock.now()
        with self.engine.connect() as conn:
            agents = repo.list_agents(conn)
            current = _current_calls(conn, [a["current_call_sid"] for a in agents
                                            if a["current_call_sid"]])
            for a in agents:  # who each agent is talking to, for people (not a CallSid)
                a["call"] = self._call_summary(conn, a["current_call_sid"], current)
            board: dict[str, Any] = {"agents": agents,
                                     "queues": repo.queue_board(conn, now),
                                     "timezone": self.centre_timezone(),
                                     "at": now.isoformat()}
            callbacks = self.callbacks.board(conn, now)
            if callbacks is not None:
                board["callbacks"] = callbacks
            self.bridge.board_fields(conn, board)
            return board

    def _call_summary(self, conn: Connection, call_sid: str | None,
                      current: Mapping[str, Any]) -> dict[str, Any] | None:
        """An agent's call on the supervisor's board: the caller's name (an identified
        caller) or masked number, the queue, and whether it is a callback."""
        if not call_sid:
            return None
        row = current.get(call_sid)
        name, number = (row.customer_name, row.from_number) if row is not None else (None, None)
        callback = self.callbacks.owns(call_sid)
        if callback:
            customer_id = self.callbacks.customer_id_of(conn, call_sid)
            name = conn.execute(select(customers.c.name).where(
                customers.c.id == customer_id)).scalar() if customer_id is not None else None
        return {"caller": name or (mask(number) if number else None),
                "queue": row.queue if row is not None else None, "callback": callback}


def ivr_path(path: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The IVR path for people: each step with how long the caller spent there."""
    out: list[dict[str, Any]] = []
    stamps = [datetime.fromisoformat(p["at"]) if p.get("at") else None for p in path]
    for i, p in enumerate(path):
        nxt = stamps[i + 1] if i + 1 < len(stamps) else None
        here = stamps[i]
        seconds = (round((nxt - here).total_seconds(), 1)
                   if nxt is not None and here is not None else None)
        out.append({"at": p.get("at"), "menu": p.get("menu"), "node": p.get("node"),
                    "kind": p.get("event"), "option": p.get("option"),
                    "digits": p.get("digits"), "speech": p.get("speech"),
                    "queue": p.get("queue"), "seconds": seconds})
    return out


def _call_row(conn: Connection, call_sid: str) -> dict[str, Any]:
    row = conn.execute(select(calls.c.from_number, calls.c.to_number, calls.c.created_at,
                              calls.c.language, calls.c.attributes, calls.c.path)
                       .where(calls.c.call_sid == call_sid)).first()
    return dict(row._mapping) if row is not None else {}


def _current_calls(conn: Connection, call_sids: list[str]) -> dict[str, Any]:
    """The agents' current calls, by CallSid: the latest offer's queue, the caller's
    customer name (an identified caller) and number."""
    if not call_sids:
        return {}
    latest = (select(func.max(agent_calls.c.id)).where(agent_calls.c.call_sid.in_(call_sids))
              .group_by(agent_calls.c.call_sid))
    rows = conn.execute(
        select(agent_calls.c.call_sid, agent_calls.c.queue,
               customers.c.name.label("customer_name"), calls.c.from_number)
        .select_from(agent_calls
                     .outerjoin(queue_entries, queue_entries.c.call_sid == agent_calls.c.call_sid)
                     .outerjoin(customers, customers.c.id == queue_entries.c.customer_id)
                     .outerjoin(calls, calls.c.call_sid == agent_calls.c.call_sid))
        .where(agent_calls.c.id.in_(latest)))
    return {r.call_sid: r for r in rows}


def _answered_offer(conn: Connection, agent_id: int, call_sid: str) -> Any:
    return conn.execute(select(agent_calls).where(
        agent_calls.c.agent_id == agent_id, agent_calls.c.call_sid == call_sid,
        agent_calls.c.answered_at.is_not(None)).order_by(agent_calls.c.id.desc()).limit(1)
        ).first()
