"""Callbacks: the offer in the wait loop, the dialog that takes the request, the dispatch
(one ordering with the live calls: ``routing.plan``), the callback call and its outcome,
and the timers (leases, warnings, breaches).

The promise is a ``callback_requests`` row committed before the caller hears the time by
which we call. Everything after is driven by rows with due times, so any process (an
``ivr worker``, or ``ivr serve`` with ``IVR_DISPATCH_CALLBACKS``) picks up where another
stopped.

A due callback enters the router as a ``routing.Waiting`` of kind ``callback`` with the
priority and deadline of the caller's place. When the router pairs it with a free agent,
``claim`` reserves the agent (as for a live call), moves the request to ``dialing`` with a
lease, records the attempt and pushes the screen-pop; after the commit ``dial`` places the
call (``calls.create`` through the twilio client, or the local dialer). Twilio's status
callbacks and the answer URL drive the rest:

* answered by a person: a greeting and ``<Dial>`` to the reserved agent; the agent talked
  → completed;
* answered by a machine (``AnsweredBy`` machine_* or fax): a short message with no personal
  data, then hang up; counted as an attempt that did not reach them;
* busy / no-answer / failed / canceled: retry after the back-off (at the next callable
  instant), or, with the attempts used up, ``failed`` and escalated;
* the agent did not answer: the customer hears an apology; the agent goes offline (as for
  live calls) and the request is due again at once, without using up an attempt.

Its size (~600 lines) is on purpose: claiming, dialling, the callback call's outcomes and
the timers are one state machine around ``_finish`` (the one place an attempt ends) and the
lease rules; the caller's dialog is in ``callbacks.dialog``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import Connection, Engine, select
from sqlalchemy.sql.elements import ColumnElement

from callbacks import repository as cbrepo
from callbacks import sla
from callbacks import twiml as ctw
from callbacks.dialer import Dialer
from callbacks.dialog import CallerDialog, _to_number
from callbacks.policy import Policies, Policy
from crm_sync.phones import mask
from ivr.agents import repository as repo
from ivr.agents.ports import Outcome, PlacedCall
from ivr.agents.routing import Waiting
from ivr.agents.service import ivr_path
from ivr.calls import twiml
from ivr.calls.repository import calls
from ivr.core.clock import Clock
from ivr.core.settings import Settings
from ivr.core.twilio_rest import uncertain
from ivr.menu.engine import Hangup

log = logging.getLogger(__name__)

KEY_PREFIX = "CB"  # agent-side key of an attempt: "CB<attempt id>"
NOT_REACHED = {"busy", "no-answer", "failed", "canceled"}
MACHINE = ("machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other",
           "fax")


def agent_key(attempt_id: int) -> str:
    return f"{KEY_PREFIX}{attempt_id}"


def is_callback_key(call_sid: str) -> bool:
    return call_sid.startswith(KEY_PREFIX) and call_sid[len(KEY_PREFIX):].isdigit()


LIVE = ("queued", "initiated", "ringing", "in-progress")


@dataclass(frozen=True)
class Verdict:
    """What Twilio says about a lapsed claim's call: a call status, ``none`` (no such
    call: the claim is lost) or ``unknown`` (Twilio could not be asked)."""

    status: str
    call_sid: str | None = None


class CallbackService(CallerDialog):
    def __init__(self, engine: Engine, clock: Clock, settings: Settings, policies: Policies,
                 dialer: Dialer | None, owner: str) -> None:
        self.engine = engine
        self.clock = clock
        self.settings = settings
        self.policies = policies
        self.dialer = dialer
        self.owner = owner[:64]
        #: Fields a feature adds to a callback's pop (callbacks.followups, plugged in by
        #: ivr.services): (conn, request row, now) -> fields.
        self.extra_pop: Callable[[Connection, Any, datetime], dict[str, Any]] | None = None

    def policy(self, queue: str) -> Policy:
        return self.policies.for_queue(queue)

    # ------------------------------------------------------------ dispatch

    def due_work(self, conn: Connection, now: datetime, free_per_queue: Mapping[str, int],
                 ) -> list[Waiting]:
        """Due callbacks as the router's work items (kind ``callback``): for each queue with
        free agents, its first callbacks in dispatch order, as many as it has free agents
        (one read per queue: a queue nobody is free for never hides another's)."""
        out = []
        for queue, free in sorted(free_per_queue.items()):
            for r in cbrepo.due(conn, now, (queue,), free):
                out.append(Waiting(r.id, f"callback:{r.id}", r.queue, r.priority,
                                   r.entered_at, None, r.deadline_at, "callback"))
        return out

    def due_probe(self) -> ColumnElement[bool]:
        return cbrepo.DUE_PROBE

    def claim(self, conn: Connection, item: Waiting, agent_id: int, now: datetime,
              out: Outcome) -> PlacedCall | None:
        """Reserve the agent and the next due request of the item's queue together (a
        savepoint), record the attempt, push the screen-pop. The request is taken where it
        stands at the head of the queue (``claim_next``: one statement): the item the plan
        chose, unless another process has just taken that one, and then the next in
        dispatch order. None: nothing of the queue is due any more, the agent went
        elsewhere, or now is no time to call (the request is moved to its next callable
        instant)."""
        lease = now + timedelta(seconds=self.settings.callback_lease_seconds)
        with conn.begin_nested() as sp:
            req = cbrepo.claim_next(conn, item.queue, now, self.owner, lease, agent_id)
            if req is None:
                return None
            policy = self.policy(req.queue)
            zone = ZoneInfo(req.timezone) if req.timezone else None
            later = None if sla.callable_at(now, policy, zone) else sla.next_callable(
                now, policy, zone)
            attempt = None if later else self._new_attempt(conn, req, agent_id, now)
            if attempt is None:
                sp.rollback()
        if later is not None:  # pending again (the savepoint undid the claim), due later
            cbrepo.update_request(conn, req.id, only_status=("pending",), due_at=later,
                                  updated_at=now)
        if attempt is None:
            return None
        attempt_id, key, offer_id = attempt
        out.published.append((agent_id, repo.add_event(
            conn, agent_id, "state", repo.me(conn, agent_id) or {}, now)))
        context = self.context(conn, key, now)
        context["offer_id"] = offer_id
        out.published.append((agent_id, repo.add_event(conn, agent_id, "screenpop", context,
                                                       now, key)))
        log.info("callback claimed request=%s attempt=%s agent=%s", req.id, attempt_id,
                 agent_id)
        from_number = self.settings.callback_caller_id or _to_number(conn, req.call_sid) or ""
        return PlacedCall(attempt_id, req.id, req.phone, from_number)

    def _new_attempt(self, conn: Connection, req: Any, agent_id: int, now: datetime,
                     ) -> tuple[int, str, int] | None:
        """The claimed request's attempt and the agent's offer: (attempt id, agent key,
        offer id); None when the agent went elsewhere."""
        attempt_no = cbrepo.attempt_count(conn, req.id) + 1
        attempt_id = cbrepo.new_attempt(conn, {
            "request_id": req.id, "attempt_no": attempt_no, "agent_id": agent_id,
            "claimed_by": self.owner, "claimed_at": now})
        key = agent_key(attempt_id)
        offer_id = repo.offer_agent(conn, agent_id, key, req.queue, now)
        if offer_id is None:
            return None
        cbrepo.update_attempt(conn, attempt_id, agent_key=key, offer_id=offer_id)
        cbrepo.add_event(conn, req.id, "attempt", now, {"attempt": attempt_no,
                                                        "agent_id": agent_id})
        return attempt_id, key, offer_id

    def dial(self, dials: list[PlacedCall], out: Outcome) -> None:
        """Place the claimed calls (after the claim's commit). Twilio refusing one (4xx)
        ends the attempt (``dial-error``: retried after the back-off rules); a failure that
        may have reached Twilio (timeout, dropped connection, 5xx) keeps the claim, and the
        sweep asks Twilio about it when the lease runs out. A create answered after another
        process took the claim over is canceled at once."""
        base = self.settings.public_url or ""
        for d in dials:
            try:
                if self.dialer is None:
                    raise RuntimeError("no dialer configured")
                sid = self.dialer.place(
                    d.phone, d.from_number, f"{base}{ctw.ANSWER_URL}?c={d.attempt_id}",
                    f"{base}{ctw.STATUS_URL}?c={d.attempt_id}",
                    self.settings.callback_machine_detection,
                    self.settings.agent_ring_timeout + 10)
            except Exception as exc:
                if uncertain(exc):
                    log.warning("placing a callback may have reached Twilio (%s); the lease "
                                "decides request=%s", type(exc).__name__, d.request_id)
                    continue
                log.exception("placing a callback failed request=%s", d.request_id)
                self._end_attempt(d.attempt_id, "dial-error", out, error=str(exc)[:500])
                continue
            now = self.clock.now()
            with self.engine.begin() as conn:
                kept = cbrepo.update_attempt(conn, d.attempt_id, only_open=True, call_sid=sid,
                                             dialed_at=now)
            if not kept:
                log.error("a callback's create was answered after its claim was taken "
                          "over; ending that call request=%s", d.request_id)
                try:
                    self.dialer.cancel(sid)
                except Exception:
                    log.exception("could not end the superseded callback call request=%s",
                                  d.request_id)
                continue
            log.info("callback dialled request=%s attempt=%s", d.request_id, d.attempt_id)

    # ------------------------------------------------------------ the callback call

    def _attempt(self, conn: Connection, attempt_id: int) -> tuple[Any, Any]:
        attempt = cbrepo.get_attempt(conn, attempt_id)
        req = cbrepo.get(conn, attempt.request_id) if attempt is not None else None
        return attempt, req

    def answered(self, attempt_id: int, params: dict[str, str], out: Outcome) -> str:
        """The customer picked up (the answer URL): connect the agent, or leave a short
        message on a machine."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            attempt, req = self._attempt(conn, attempt_id)
            if attempt is None or req is None or attempt.ended_at is not None \
                    or req.status not in ("dialing", "connected"):
                return ctw.message_then_hangup(req.language if req else "en-US", "gone")
            answered_by = (params.get("AnsweredBy") or "")[:32] or None
            cbrepo.update_attempt(conn, attempt.id, answered_at=now, answered_by=answered_by,
                                  call_sid=attempt.call_sid or params.get("CallSid"))
            if answered_by in MACHINE:
                self._finish(conn, req, attempt, "machine", now, out)
                return ctw.message_then_hangup(req.language, "machine")
            cbrepo.update_request(conn, req.id, only_status=("dialing",), status="connected",
                                  lease_until=None, updated_at=now)
            agent = repo.me(conn, attempt.agent_id)
            assert agent is not None
            return ctw.connect_customer(req.language, attempt.id, attempt.offer_id,
                                        agent["reach_kind"], agent["reach_target"],
                                        self.settings.agent_ring_timeout)

    def dial_ended(self, attempt_id: int, params: dict[str, str], out: Outcome) -> str:
        """The ``<Dial>`` to the agent is over: talked → done; else an apology, and the
        request is due again at once (the agent goes offline)."""
        now = self.clock.now()
        status = params.get("DialCallStatus", "failed")
        with self.engine.begin() as conn:
            attempt, req = self._attempt(conn, attempt_id)
            if attempt is None or req is None:
                return ctw.message_then_hangup("en-US", "gone")
            offer = repo.get_offer(conn, attempt.offer_id) if attempt.offer_id else None
            if attempt.ended_at is not None:
                return ctw.message_then_hangup(req.language, "gone") \
                    if attempt.outcome != "completed" else twiml.render([Hangup()], 0)
            talked = status in ("completed", "answered") and offer is not None \
                and offer.answered_at is not None
            if talked:
                self._finish(conn, req, attempt, "completed", now, out, offer=offer)
                return twiml.render([Hangup()], 0)
            self._finish(conn, req, attempt, "agent-missed", now, out, offer=offer)
            return ctw.message_then_hangup(req.language, "agent_missed")

    def leg_status(self, attempt_id: int, params: dict[str, str], out: Outcome) -> None:
        """Status callbacks of the customer's leg."""
        now = self.clock.now()
        status = params.get("CallStatus", "")
        with self.engine.begin() as conn:
            attempt, req = self._attempt(conn, attempt_id)
            if attempt is None or req is None:
                return
            if attempt.call_sid is None and params.get("CallSid"):
                cbrepo.update_attempt(conn, attempt.id, call_sid=params["CallSid"][:64])
            if attempt.ended_at is not None:
                return
            if status in ("initiated", "ringing", "queued"):
                # Twilio has the call: the claim is confirmed (no takeover while it rings).
                cbrepo.update_request(conn, req.id, only_status=("dialing",),
                                      lease_until=now + timedelta(
                                          seconds=self.settings.callback_lease_seconds),
                                      updated_at=now)
                return
            if status in NOT_REACHED or status == "completed":
                if status == "completed":
                    outcome = "hung-up" if attempt.answered_at is not None else "no-answer"
                else:
                    outcome = status
                self._finish(conn, req, attempt, outcome, now, out)

    def _end_attempt(self, attempt_id: int, outcome: str, out: Outcome,
                     error: str | None = None) -> None:
        now = self.clock.now()
        with self.engine.begin() as conn:
            attempt, req = self._attempt(conn, attempt_id)
            if attempt is not None and req is not None and attempt.ended_at is None:
                self._finish(conn, req, attempt, outcome, now, out, error=error)

    def _finish(self, conn: Connection, req: Any, attempt: Any, outcome: str, now: datetime,
                out: Outcome, *, offer: Any = None, error: str | None = None) -> None:
        """An attempt is over: the request is completed, due again, or failed."""
        if not cbrepo.update_attempt(conn, attempt.id, only_open=True, ended_at=now,
                                     outcome=outcome, error=error):
            return  # another request (a retry) finished it first
        cbrepo.add_event(conn, req.id, "attempt_end", now,
                         {"attempt": attempt.attempt_no, "outcome": outcome})
        key = attempt.agent_key
        if offer is None and attempt.offer_id:
            offer = repo.get_offer(conn, attempt.offer_id)
        if outcome == "completed":
            cbrepo.close(conn, req.id, "completed", now, completed_at=now,
                         last_outcome=outcome)
            cbrepo.add_event(conn, req.id, "completed", now,
                             {"met": now <= req.deadline_at,
                              "seconds": int((now - req.requested_at).total_seconds())})
            agent_state = "wrap_up"
        else:
            reached = outcome in ("agent-missed", "lost", "dial-error")
            attempts = req.attempts + (0 if reached else 1)
            policy = self.policy(req.queue)
            zone = ZoneInfo(req.timezone) if req.timezone else None
            if outcome in ("agent-missed", "lost"):
                nxt: datetime | None = sla.next_callable(now, policy, zone)
            elif attempts >= req.max_attempts:
                nxt = None
            else:
                nxt = sla.next_attempt_at(now, attempts, policy, zone) \
                    if attempts >= 1 else sla.next_callable(now, policy, zone)
            if nxt is None:
                cbrepo.close(conn, req.id, "failed", now, attempts=attempts,
                             last_outcome=outcome)
                cbrepo.add_event(conn, req.id, "failed", now,
                                 {"attempts": attempts, "last_outcome": outcome,
                                  "queue": req.queue})
                log.warning("callback failed after %d attempts (escalated) request=%s",
                            attempts, req.id)
                self._notify_supervisors(conn, "failed", req, now, out)
            else:
                cbrepo.release(conn, req.id, now, due_at=nxt, outcome=outcome,
                               failed_attempt=not reached)
            agent_state = "offline" if outcome == "agent-missed" else (
                "wrap_up" if offer is not None and offer.answered_at is not None
                else "available")
        if offer is not None and offer.ended_at is None:
            repo.update_offer(conn, offer.id, ended_at=now, outcome=outcome
                              if outcome != "agent-missed" else "no-answer")
        if key and attempt.agent_id is not None and repo.set_state(
                conn, attempt.agent_id, agent_state, now, reason=f"callback {outcome}",
                only_call=key):
            me = repo.me(conn, attempt.agent_id)
            out.published.append((attempt.agent_id, repo.add_event(
                conn, attempt.agent_id, "state", me or {}, now)))
            out.published.append((attempt.agent_id, repo.add_event(
                conn, attempt.agent_id, "call",
                {"call_sid": key, "status": "ended" if outcome == "completed" else "missed"},
                now, key)))
            out.reroute = out.reroute or agent_state == "available"
        out.reroute = True

    # ------------------------------------------------------------ timers

    def sweep(self, out: Outcome) -> None:
        """Leases run out, warnings and breaches due. Twilio is asked about lapsed claims
        before the transaction that acts on them (no network call while rows are locked)."""
        now = self.clock.now()
        verdicts = self._lapsed_verdicts(now)
        with self.engine.begin() as conn:
            for req in cbrepo.expired_leases(conn, now):
                attempt = cbrepo.current_attempt(conn, req.id)
                verdict = verdicts.get((req.id, attempt.id if attempt is not None else None))
                if verdict is None:
                    continue  # lapsed since the look-up: the next sweep asks about it
                self._take_over(conn, req, attempt, verdict, now, out)
            for req in cbrepo.warnings_due(conn, now):
                cbrepo.update_request(conn, req.id, warned_at=now)
                cbrepo.add_event(conn, req.id, "warning", now, _event_detail(req, now))
                log.warning("callback at risk request=%s queue=%s deadline=%s", req.id,
                            req.queue, req.deadline_at.isoformat())
                self._notify_supervisors(conn, "warning", req, now, out)
            for req in cbrepo.breaches_due(conn, now):
                cbrepo.update_request(conn, req.id, breached_at=now)
                cbrepo.add_event(conn, req.id, "breach", now, _event_detail(req, now))
                log.error("callback deadline breached request=%s queue=%s", req.id,
                          req.queue)
                self._notify_supervisors(conn, "breach", req, now, out)

    def _lapsed_verdicts(self, now: datetime) -> dict[tuple[int, int | None], Verdict]:
        """For each claim whose lease ran out: what Twilio knows of its call.

        * the attempt has a CallSid: that call's status;
        * it has none (the create's answer was lost, or the claimer died): the calls placed
          to the number from our caller ID since the claim — a live one is adopted;
        * Twilio cannot be asked (an error): ``unknown``, the lease is extended."""
        with self.engine.connect() as conn:
            lapsed = [(req, cbrepo.current_attempt(conn, req.id),
                       self.settings.callback_caller_id or _to_number(conn, req.call_sid)
                       or "") for req in cbrepo.expired_leases(conn, now, lock=False)]
        verdicts: dict[tuple[int, int | None], Verdict] = {}
        for req, attempt, from_number in lapsed:
            key = (req.id, attempt.id if attempt is not None else None)
            if attempt is None or self.dialer is None:
                verdicts[key] = Verdict("none")
                continue
            try:
                if attempt.call_sid:
                    status = self.dialer.status(attempt.call_sid)
                    verdicts[key] = (Verdict("none") if status is None
                                     else Verdict(status, attempt.call_sid))
                    continue
                found = self.dialer.find(req.phone, from_number, attempt.claimed_at)
            except Exception:
                log.exception("cannot ask Twilio about a lapsed callback claim request=%s",
                              req.id)
                verdicts[key] = Verdict("unknown")
                continue
            if not found:
                verdicts[key] = Verdict("none")
                continue
            live = next(((sid, st) for sid, st in found if st in LIVE), None)
            sid, status = live or found[0]
            verdicts[key] = Verdict(status, sid)
        return verdicts

    def _take_over(self, conn: Connection, req: Any, attempt: Any, verdict: Verdict,
                   now: datetime, out: Outcome) -> None:
        lease = now + timedelta(seconds=self.settings.callback_lease_seconds)
        if verdict.status in LIVE or verdict.status == "unknown":
            if verdict.call_sid and attempt is not None and attempt.call_sid is None:
                cbrepo.update_attempt(conn, attempt.id, call_sid=verdict.call_sid)
            cbrepo.update_request(conn, req.id, lease_until=lease, updated_at=now)
            log.info("callback claim lapsed but its call is %s; lease extended request=%s",
                     verdict.status, req.id)
            return
        log.warning("callback claim of %s expired (%s); taking it over request=%s",
                    req.lease_owner, verdict.status, req.id)
        if attempt is None:
            cbrepo.release(conn, req.id, now, due_at=now, outcome="lost", failed_attempt=False)
            return
        if verdict.call_sid and attempt.call_sid is None:
            cbrepo.update_attempt(conn, attempt.id, call_sid=verdict.call_sid)
        outcome = ("lost" if verdict.status == "none" else
                   verdict.status if verdict.status in NOT_REACHED else
                   "hung-up" if attempt.answered_at is not None else "no-answer")
        self._finish(conn, req, attempt, outcome, now, out)

    def _notify_supervisors(self, conn: Connection, kind: str, req: Any, now: datetime,
                            out: Outcome) -> None:
        payload = {"kind": kind, **_event_detail(req, now)}
        for agent_id in repo.supervisor_ids(conn):
            out.published.append((agent_id, repo.add_event(conn, agent_id, "callback",
                                                           payload, now)))

    def notify(self, client: httpx.Client) -> int:
        """POST warning, breach and failed events to ``IVR_CALLBACK_ESCALATION_URL`` (each
        once; a failure is retried on the next sweep). Returns how many were delivered."""
        if not self.settings.callback_escalation_url:
            return 0
        sent = 0
        with self.engine.begin() as conn:
            for ev in cbrepo.unnotified(conn, 50):
                try:
                    post_escalation(client, self.settings, {
                        "id": ev.id, "kind": ev.kind, "request_id": ev.request_id,
                        "at": ev.at.isoformat(), **(ev.detail or {})},
                        f"callback-event-{ev.id}")
                except httpx.HTTPError as exc:
                    log.warning("escalation webhook failed (retried later): %s", exc)
                    break
                cbrepo.mark_notified(conn, ev.id, self.clock.now())
                sent += 1
        return sent

    # ------------------------------------------------------------ the screen-pop

    def context(self, conn: Connection, key: str, now: datetime) -> dict[str, Any]:
        """The screen-pop of a callback attempt: the customer's side, the request (asked
        when, deadline, attempt), and the IVR path of the call it was asked in."""
        from crm_sync.screenpop import customer_context, empty_context  # noqa: PLC0415

        attempt = cbrepo.attempt_by_key(conn, key)
        req = cbrepo.get(conn, attempt.request_id) if attempt is not None else None
        if attempt is None or req is None:
            raise LookupError(key)
        if req.customer_id is not None:
            ctx = customer_context(conn, int(req.customer_id), now,
                                   call_sid=req.call_sid or key,
                                   repeat_window_minutes=self.settings.repeat_window_minutes)
        else:
            ctx = empty_context()
        path: list[dict[str, Any]] = []
        if req.call_sid:
            row = conn.execute(select(calls.c.path).where(calls.c.call_sid == req.call_sid)
                               ).first()
            path = list(row.path or []) if row is not None else []
        offer = repo.get_offer(conn, attempt.offer_id) if attempt.offer_id else None
        status = ("ended" if attempt.ended_at is not None else
                  "answered" if offer is not None and offer.answered_at is not None
                  else "ringing")
        ctx.update({
            "call_sid": key, "status": status, "kind": "callback",
            "caller": {"number": req.phone, "outcome": "known" if req.customer_id
                       else "unknown", "typed_account": None, "candidates": []},
            "language": req.language, "queue": req.queue, "priority": req.priority,
            "entered_queue_at": req.entered_at.isoformat(),
            "waited_seconds": int((now - req.requested_at).total_seconds()),
            "call_started_at": req.requested_at.isoformat(),
            "ivr_path": ivr_path(path),
            "callback": {"request_id": req.id, "requested_at": req.requested_at.isoformat(),
                         "deadline_at": req.deadline_at.isoformat(),
                         "seconds_left": int((req.deadline_at - now).total_seconds()),
                         "attempt": attempt.attempt_no, "max_attempts": req.max_attempts,
                         "kind": req.kind, "phone": req.phone,
                         "other_number": bool(req.caller_number
                                              and req.caller_number != req.phone)},
            "pending_callbacks": pending_callbacks(conn, req.customer_id),
        })
        if self.extra_pop is not None:  # e.g. a follow-up's "on the fault closed yesterday"
            ctx.update(self.extra_pop(conn, req, now))
        return ctx

    def owns(self, key: str) -> bool:
        """Whether an agent-side key is a callback attempt's (``CB…``)."""
        return is_callback_key(key)

    def pending_for(self, conn: Connection, customer_id: int | None) -> list[dict[str, Any]]:
        return pending_callbacks(conn, customer_id)

    def customer_id_of(self, conn: Connection, key: str) -> int | None:
        attempt = cbrepo.attempt_by_key(conn, key)
        req = cbrepo.get(conn, attempt.request_id) if attempt is not None else None
        return int(req.customer_id) if req is not None and req.customer_id is not None \
            else None

    # ------------------------------------------------------------ the supervisor

    def board(self, conn: Connection, now: datetime) -> dict[str, Any]:
        """Open callbacks with their countdowns, the ones at risk, today's attainment."""
        from callbacks.stats import summarise  # noqa: PLC0415

        rows = cbrepo.open_requests(conn)
        items = [{"id": r.id, "queue": r.queue, "status": r.status, "kind": r.kind,
                  "phone": mask(r.phone), "customer_id": r.customer_id,
                  "requested_at": r.requested_at.isoformat(),
                  "deadline_at": r.deadline_at.isoformat(),
                  "seconds_left": int((r.deadline_at - now).total_seconds()),
                  "at_risk": now >= r.warn_at, "overdue": now >= r.deadline_at,
                  "attempts": r.attempts, "due_at": r.due_at.isoformat()} for r in rows]
        zone = self.policies.default.business_hours.zone
        day = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
        today = summarise(cbrepo.requested_between(conn, day, day + timedelta(days=1)), now)
        return {"open": items, "at_risk": sum(1 for i in items if i["at_risk"]),
                "overdue": sum(1 for i in items if i["overdue"]), "today": today}


def post_escalation(client: httpx.Client, settings: Settings, event: dict[str, Any],
                    idempotency_key: str) -> None:
    """POST one event to ``IVR_CALLBACK_ESCALATION_URL`` as JSON, signed with
    ``IVR_CALLBACK_ESCALATION_SECRET`` (``X-IVR-Signature``: HMAC-SHA256 of the body) and
    an ``Idempotency-Key``; raises ``httpx.HTTPError`` when it was not taken. Callbacks and
    follow-ups (``callbacks.followups``) escalate through it."""
    url = settings.callback_escalation_url
    if not url:
        return
    secret = settings.callback_escalation_secret.get_secret_value().encode()
    body = json.dumps(event, sort_keys=True).encode()
    sig = hmac.new(secret, body, hashlib.sha256).hexdigest()
    r = client.post(url, content=body, headers={
        "Content-Type": "application/json", "X-IVR-Signature": sig,
        "Idempotency-Key": idempotency_key})
    r.raise_for_status()


def pending_callbacks(conn: Connection, customer_id: int | None) -> list[dict[str, Any]]:
    if customer_id is None:
        return []
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}
            for r in cbrepo.open_for_customer(conn, int(customer_id))]


def _event_detail(req: Any, now: datetime) -> dict[str, Any]:
    return {"request_id": req.id, "queue": req.queue, "status": req.status,
            "deadline_at": req.deadline_at.isoformat(),
            "seconds_left": int((req.deadline_at - now).total_seconds()),
            "attempts": req.attempts, "customer_id": req.customer_id}


def process_owner() -> str:
    """Who holds a claim: host, process id and a random part (a restarted process with the
    same pid is another owner)."""
    import os  # noqa: PLC0415
    import secrets  # noqa: PLC0415
    import socket  # noqa: PLC0415

    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


def build_service(engine: Engine, clock: Clock, settings: Settings, gateway: object,
                  local_url: str, dialer: Dialer | None = None) -> CallbackService | None:
    """The callback service from ``IVR_CALLBACKS_FILE`` (None, with a warning, when the
    file does not exist: no offers, no dispatch). A file with mistakes raises PolicyError.
    The dialer: the twilio client's Calls API when the gateway is Twilio's, else the local
    dialer that plays the customer against this server (the demo)."""
    from callbacks.dialer import TwilioDialer  # noqa: PLC0415
    from callbacks.local_dialer import LocalDialer  # noqa: PLC0415
    from callbacks.policy import load_policies  # noqa: PLC0415
    from ivr.agents.gateway import TwilioGateway  # noqa: PLC0415

    path = settings.callbacks_file
    if not path.exists():
        log.warning("no callback policy file %s: callbacks are off", path)
        return None
    policies = load_policies(path)
    if settings.open_at_any_hour:  # the demo's IVR_DEMO_ALWAYS_OPEN
        from callbacks.demo_hours import open_at_any_hour  # noqa: PLC0415

        policies = open_at_any_hour(policies)
    if dialer is None:
        if isinstance(gateway, TwilioGateway):
            dialer = TwilioDialer(gateway.client)
        else:
            dialer = LocalDialer(settings.public_url or local_url,
                                 settings.twilio_auth_token.get_secret_value(),
                                 settings.local_dialer_talk_seconds)
    return CallbackService(engine, clock, settings, policies, dialer, process_owner())
