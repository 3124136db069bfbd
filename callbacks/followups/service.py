"""Follow-ups: the satisfaction call after a closed incident and the call after a low
survey score, with the callback machinery's guarantees.

A follow-up is a ``followups`` row written before anything is scheduled (``due_at``: the
first window interval of ``followups.yaml`` on the next business day with room under the
customer's daily cap). The worker's sweep (``sweep``, then ``dial`` after its commit):

* finds incidents closed since the last look (wrap-up, CRM sync or API: whatever closed
  them, the ``incidents`` row says so) and schedules one follow-up per incident;
* takes due follow-ups (SKIP LOCKED): outside the window → moved to its next opening; the
  customer called us since the incident closed → ``skipped``; mode ``agent`` → handed to the
  callback queue as a ``callback_requests`` row of kind ``followup`` (``queued``: the
  callback service reserves an agent, dials, and pops "follow-up on the fault closed
  yesterday"); mode ``survey`` → claimed (``dialing``, a lease, an attempt row) and dialled
  after the commit with ``calls.create`` (machine detection on), its answer URL
  ``/twilio/followup-answer`` redirecting a person to the survey's entry URL;
* leases that ran out: Twilio is asked about the attempt's call (as for callbacks) — live →
  the lease is extended, none → the claim is lost and made again (never dialled twice);
* callback requests of handed-over follow-ups that ended → completed / failed.

Attempts that did not reach the customer (busy, no-answer, failed, a machine) are retried
after the policy's back-off at the window's next opening; with the attempts used up the
follow-up is ``failed`` and escalated (supervisors' consoles, the escalation webhook).

Promises and SMS are in ``callbacks.followups.promises`` and run in the same sweep.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import Connection, Engine
from twilio.twiml.voice_response import VoiceResponse

from callbacks import repository as cbrepo
from callbacks.dialer import Dialer
from callbacks.followups import repository as frepo
from callbacks.followups import sms as smsmod
from callbacks.followups.models import followups as F
from callbacks.followups.policy import FollowUpPolicy, first_slot, next_open
from callbacks.followups.promises import PromiseDesk
from callbacks.followups.sms import SmsSender
from callbacks.service import LIVE, MACHINE, NOT_REACHED, Verdict, post_escalation
from crm_sync.phones import mask
from ivr.agents import repository as arepo
from ivr.agents.ports import Outcome
from ivr.calls.repository import calls
from ivr.core.calendar import is_open
from ivr.core.clock import Clock
from ivr.core.settings import Settings
from ivr.core.twilio_rest import uncertain
from ivr.surveys.twiml import START_URL

log = logging.getLogger(__name__)

ANSWER_URL = "/twilio/followup-answer"
STATUS_URL = "/twilio/followup-status"
SURVEY_URL = START_URL  # the survey's entry for a satisfaction call
LOOKBACK = timedelta(days=3)  # incidents closed further back are not followed up


@dataclass(frozen=True)
class Dial:
    """A claimed survey follow-up to place after the commit."""

    attempt_id: int
    followup_id: int
    phone: str
    from_number: str


@dataclass
class Swept:
    dials: list[Dial] = field(default_factory=list)
    out: Outcome = field(default_factory=Outcome)


def relative_day(then: datetime, now: datetime, zone: Any) -> str:
    """``today`` / ``yesterday`` / ``on Thu 3 Dec`` in the centre's zone."""
    a, b = then.astimezone(zone).date(), now.astimezone(zone).date()
    days = (b - a).days
    if days == 0:
        return "today"
    if days == 1:
        return "yesterday"
    local = then.astimezone(zone)
    return f"on {local:%a} {local.day} {local:%b}"


class FollowUpService:
    def __init__(self, engine: Engine, clock: Clock, settings: Settings,
                 policy: FollowUpPolicy, dialer: Dialer | None, sms: SmsSender | None,
                 owner: str, callback_max_attempts: int = 3) -> None:
        self.engine = engine
        self.clock = clock
        self.settings = settings
        self.policy = policy
        self.dialer = dialer
        self.sms = sms
        self.owner = owner[:64]
        self.callback_max_attempts = callback_max_attempts
        self.promises = PromiseDesk(policy)

    @property
    def zone(self) -> Any:
        return self.policy.window.zone

    def from_number(self) -> str:
        return self.settings.followup_caller_id or self.settings.callback_caller_id

    # ------------------------------------------------------------ scheduling

    def _taken(self, conn: Connection, customer_id: int | None) -> Any:
        zone = self.zone

        def taken(day: Any) -> int:
            if customer_id is None:
                return 0
            start = datetime(day.year, day.month, day.day, tzinfo=zone)
            return frepo.taken_on(conn, customer_id, start, start + timedelta(days=1))
        return taken

    def schedule_incident(self, conn: Connection, incident: Any, now: datetime, *,
                          at_once: bool = False) -> int | None:
        """One satisfaction follow-up for a closed incident (None: one exists, or the
        policy does not want it: then a ``skipped`` row keeps the scan from asking again).
        ``at_once``: due now if the window is open (the demo), not the next business day."""
        p = self.policy
        phone, lang = frepo.customer_contact(conn, int(incident.customer_id))
        closed = incident.closed_at
        due, deadline = (next_open(p, now) if at_once else
                         first_slot(p, closed, now, self._taken(conn, incident.customer_id)))
        what = (incident.category or "incident").replace("_", " ")
        values = {
            "kind": "satisfaction", "source_key": f"incident:{incident.id}",
            "incident_id": incident.id, "customer_id": incident.customer_id,
            "phone": phone, "language": lang or "he-IL", "mode": p.satisfaction.mode,
            "queue": p.satisfaction.queue, "reason": f"the {what}",
            "about_call_sid": frepo.last_call_before(conn, int(incident.customer_id), closed),
            "since_at": closed, "created_at": now, "due_at": due, "deadline_at": deadline,
            "status": "pending", "max_attempts": p.dialing.max_attempts, "updated_at": now}
        skip = None if p.wants(incident.category) else "not_in_policy"
        skip = skip or (None if phone else "no_phone")
        if skip:
            values.update(status="skipped", last_outcome=skip, closed_at=now)
        fid = frepo.create(conn, values)
        if fid is None:
            return None
        frepo.add_event(conn, "skipped" if skip else "scheduled", now,
                        {"due_at": due.isoformat(), "incident_id": incident.id,
                         "reason": skip}, followup_id=fid)
        if not skip and p.sms.followups and phone:
            frepo.queue_sms(conn, "followup", fid, phone,
                            smsmod.body("followup", due, self.zone, lang or "he-IL"), now)
        return None if skip else fid

    def open_from_low_score(self, conn: Connection, low: Any) -> None:
        """The survey's ``OpenFollowUp`` port (``ivr.surveys.ports``): a low score opens a
        follow-up, in the survey answer's transaction (database work only)."""
        p = self.policy.low_csat
        if not p.enabled or (low.followup_id is not None and not p.again_after_followup):
            return
        now = low.at
        phone, lang = (frepo.customer_contact(conn, int(low.customer_id))
                       if low.customer_id is not None else (None, None))
        if phone is None:
            row = conn.execute(calls.select().where(calls.c.call_sid == low.call_sid)).first()
            phone = row.from_number if row is not None else None
        due, deadline = next_open(self.policy, now)
        fid = frepo.create(conn, {
            "kind": "low_csat", "source_key": f"survey:{low.response_id}",
            "customer_id": low.customer_id, "phone": phone,
            "language": lang or low.language, "mode": p.mode, "queue": low.queue or p.queue,
            "reason": f"a call rated {low.score}/5", "about_call_sid": low.about_call_sid,
            "since_at": now, "created_at": now, "due_at": due, "deadline_at": deadline,
            "status": "pending" if phone else "skipped",
            "last_outcome": None if phone else "no_phone",
            "closed_at": None if phone else now,
            "max_attempts": self.policy.dialing.max_attempts, "updated_at": now})
        if fid is not None:
            frepo.add_event(conn, "scheduled" if phone else "skipped", now,
                            {"due_at": due.isoformat(), "response_id": low.response_id,
                             "score": low.score}, followup_id=fid)

    # ------------------------------------------------------------ the sweep

    def sweep(self) -> Swept:
        """One pass of every timer (one transaction; no network inside)."""
        now = self.clock.now()
        swept = Swept()
        verdicts = self._lapsed_verdicts(now)
        with self.engine.begin() as conn:
            for inc in frepo.closed_incidents_without_followup(conn, now - LOOKBACK):
                self.schedule_incident(conn, inc, now)
            for f in frepo.expired_leases(conn, now):  # first: a lost claim is due at once
                attempt = frepo.current_attempt(conn, f.id)
                verdict = verdicts.get((f.id, attempt.id if attempt is not None else None))
                if verdict is not None:
                    self._take_over(conn, f, attempt, verdict, now, swept.out)
            for f in frepo.due(conn, now):
                self._due(conn, f, now, swept)
            for r in frepo.queued_closed(conn):
                done = r.status == "completed"
                frepo.close(conn, r.id, "completed" if done else "failed", now,
                            completed_at=r.completed_at if done else None,
                            last_outcome=r.last_outcome)
                frepo.add_event(conn, "completed" if done else "failed", now,
                                {"via": "callback", "outcome": r.last_outcome},
                                followup_id=r.id)
                if not done:
                    self._supervisors(conn, "failed", {"followup_id": r.id}, now, swept.out)
            self.promises.sweep(conn, now, swept.out, self._supervisors)
            if self.policy.sms.callbacks:
                self._callback_sms(conn, now)
        return swept

    def _due(self, conn: Connection, f: Any, now: datetime, swept: Swept) -> None:
        if not is_open(self.policy.window, now):
            due, _ = next_open(self.policy, now)
            frepo.update_followup(conn, f.id, only_status=("pending",), due_at=due,
                                  updated_at=now)
            return
        if (f.kind == "satisfaction" and self.policy.satisfaction.skip_if_called
                and f.customer_id is not None
                and frepo.called_since(conn, int(f.customer_id), f.since_at)):
            frepo.close(conn, f.id, "skipped", now, last_outcome="called_since")
            frepo.add_event(conn, "skipped", now, {"reason": "called_since"},
                            followup_id=f.id)
            return
        if f.mode == "agent":
            self._hand_over(conn, f, now)
            return
        with conn.begin_nested() as sp:
            lease = now + timedelta(seconds=self.settings.followup_lease_seconds)
            if not frepo.claim(conn, f.id, self.owner, lease, now):
                sp.rollback()
                return
            attempt_no = frepo.attempt_count(conn, f.id) + 1
            attempt_id = frepo.new_attempt(conn, {
                "followup_id": f.id, "attempt_no": attempt_no, "claimed_by": self.owner,
                "claimed_at": now})
            frepo.add_event(conn, "attempt", now, {"attempt": attempt_no}, followup_id=f.id)
        swept.dials.append(Dial(attempt_id, f.id, f.phone, self.from_number()))

    def _hand_over(self, conn: Connection, f: Any, now: datetime) -> None:
        """A task for an agent: a callback request of kind ``followup`` in the queue (the
        callback service claims, dials and pops it), created with the status change."""
        deadline = f.deadline_at if f.deadline_at > now else now + timedelta(hours=2)
        key = f"{f.queue}|followup:{f.id}"[:128]
        with conn.begin_nested() as sp:
            if not frepo.update_followup(conn, f.id, only_status=("pending",),
                                         status="queued", updated_at=now):
                sp.rollback()
                return
            request_id = cbrepo.create(conn, {
                "queue": f.queue, "phone": f.phone, "caller_number": None,
                "call_sid": f.about_call_sid, "customer_id": f.customer_id, "tier": None,
                "language": f.language, "priority": 0, "entered_at": now,
                "requested_at": now, "kind": "followup", "deadline_at": deadline,
                "warn_at": now + (deadline - now) * 0.8, "due_at": now, "status": "pending",
                "open_key": key, "max_attempts": f.max_attempts, "updated_at": now})
            if request_id is None:
                sp.rollback()
                return
            frepo.update_followup(conn, f.id, callback_request_id=request_id)
            cbrepo.add_event(conn, request_id, "requested", now, {"followup_id": f.id})
            frepo.add_event(conn, "queued", now, {"callback_request_id": request_id},
                            followup_id=f.id)

    # ------------------------------------------------------------ dialling

    def dial(self, dials: list[Dial], out: Outcome) -> None:
        """Place the claimed survey calls (after the claim's commit); as callbacks: a
        refusal ends the attempt, an uncertain failure leaves the claim to the lease."""
        base = self.settings.public_url or ""
        for d in dials:
            try:
                if self.dialer is None:
                    raise RuntimeError("no dialer configured")
                sid = self.dialer.place(
                    d.phone, d.from_number, f"{base}{ANSWER_URL}?a={d.attempt_id}",
                    f"{base}{STATUS_URL}?a={d.attempt_id}",
                    self.policy.dialing.machine_detection, self.policy.dialing.ring_seconds)
            except Exception as exc:
                if uncertain(exc):
                    log.warning("placing a follow-up may have reached Twilio (%s); the lease "
                                "decides followup=%s", type(exc).__name__, d.followup_id)
                    continue
                log.exception("placing a follow-up failed followup=%s", d.followup_id)
                self._end_attempt(d.attempt_id, "dial-error", out, error=str(exc)[:500])
                continue
            with self.engine.begin() as conn:
                kept = frepo.update_attempt(conn, d.attempt_id, only_open=True, call_sid=sid,
                                            dialed_at=self.clock.now())
            if not kept:
                log.error("a follow-up's create was answered after its claim was taken "
                          "over; ending that call followup=%s", d.followup_id)
                try:
                    self.dialer.cancel(sid)
                except Exception:
                    log.exception("could not end the superseded follow-up call")
                continue
            log.info("follow-up dialled followup=%s attempt=%s to=%s", d.followup_id,
                     d.attempt_id, mask(d.phone))

    def _attempt(self, conn: Connection, attempt_id: int) -> tuple[Any, Any]:
        attempt = frepo.get_attempt(conn, attempt_id)
        f = frepo.get(conn, attempt.followup_id) if attempt is not None else None
        return attempt, f

    def survey_url(self, f: Any) -> str:
        query = {"followup": str(f.id), "lang": f.language}
        if f.about_call_sid:
            query["about"] = f.about_call_sid
        if f.customer_id is not None:
            query["customer"] = str(f.customer_id)
        if f.queue:
            query["queue"] = f.queue
        if self.policy.satisfaction.survey:
            query["survey"] = self.policy.satisfaction.survey
        return f"{self.settings.public_url or ''}{SURVEY_URL}?{urlencode(query)}"

    def answered(self, attempt_id: int, params: dict[str, str], out: Outcome) -> str:
        """The customer picked up: a person goes to the survey; a machine hears a short
        message with no personal data (the attempt did not reach them)."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            attempt, f = self._attempt(conn, attempt_id)
            if attempt is None or f is None or attempt.ended_at is not None \
                    or f.status not in ("dialing", "connected"):
                return _say_hangup("he-IL", "gone")
            answered_by = (params.get("AnsweredBy") or "")[:32] or None
            frepo.update_attempt(conn, attempt.id, answered_at=now, answered_by=answered_by,
                                 call_sid=attempt.call_sid or params.get("CallSid"))
            if answered_by in MACHINE:
                self._finish(conn, f, attempt, "machine", now, out)
                return _say_hangup(f.language, "machine")
            frepo.update_followup(conn, f.id, only_status=("dialing",), status="connected",
                                  lease_until=None, updated_at=now)
            response = VoiceResponse()
            response.redirect(self.survey_url(f), method="POST")
            return str(response)

    def leg_status(self, attempt_id: int, params: dict[str, str], out: Outcome) -> None:
        now = self.clock.now()
        status = params.get("CallStatus", "")
        with self.engine.begin() as conn:
            attempt, f = self._attempt(conn, attempt_id)
            if attempt is None or f is None:
                return
            if attempt.call_sid is None and params.get("CallSid"):
                frepo.update_attempt(conn, attempt.id, call_sid=params["CallSid"][:64])
            if attempt.ended_at is not None:
                return
            if status in ("initiated", "ringing", "queued"):
                frepo.update_followup(conn, f.id, only_status=("dialing",),
                                      lease_until=now + timedelta(
                                          seconds=self.settings.followup_lease_seconds),
                                      updated_at=now)
                return
            if status in NOT_REACHED:
                self._finish(conn, f, attempt, status, now, out)
            elif status == "completed":
                self._finish(conn, f, attempt, "completed" if attempt.answered_at is not None
                             else "no-answer", now, out)

    def _end_attempt(self, attempt_id: int, outcome: str, out: Outcome,
                     error: str | None = None) -> None:
        now = self.clock.now()
        with self.engine.begin() as conn:
            attempt, f = self._attempt(conn, attempt_id)
            if attempt is not None and f is not None and attempt.ended_at is None:
                self._finish(conn, f, attempt, outcome, now, out, error=error)

    def _finish(self, conn: Connection, f: Any, attempt: Any, outcome: str, now: datetime,
                out: Outcome, *, error: str | None = None) -> None:
        """An attempt is over: the follow-up is completed, due again, or failed."""
        if not frepo.update_attempt(conn, attempt.id, only_open=True, ended_at=now,
                                    outcome=outcome, error=error):
            return
        frepo.add_event(conn, "attempt_end", now, {"attempt": attempt.attempt_no,
                                                   "outcome": outcome}, followup_id=f.id)
        if outcome == "completed":
            frepo.close(conn, f.id, "completed", now, completed_at=now, last_outcome=outcome)
            frepo.add_event(conn, "completed", now, {"attempt": attempt.attempt_no},
                            followup_id=f.id)
            return
        if outcome == "lost":
            frepo.release(conn, f.id, now, due_at=now, outcome=outcome, failed_attempt=False)
            return
        used = int(f.attempts) + 1
        if used >= f.max_attempts:
            frepo.update_followup(conn, f.id, attempts=used)
            frepo.close(conn, f.id, "failed", now, last_outcome=outcome)
            detail = {"followup_id": f.id, "followup_kind": f.kind, "attempts": used,
                      "customer_id": f.customer_id, "outcome": outcome}
            frepo.add_event(conn, "failed", now, detail, followup_id=f.id)
            self._supervisors(conn, "failed", detail, now, out)
            return
        due, _ = next_open(self.policy, now + self.policy.backoff_after(attempt.attempt_no))
        frepo.release(conn, f.id, now, due_at=due, outcome=outcome, failed_attempt=True)

    # ------------------------------------------------------------ leases

    def _lapsed_verdicts(self, now: datetime) -> dict[tuple[int, int | None], Verdict]:
        """For each claim whose lease ran out, what Twilio knows of its call (the
        callbacks' rule: its CallSid's status; without one, the calls to the number since
        the claim; ``unknown`` when Twilio cannot be asked)."""
        with self.engine.connect() as conn:
            lapsed = [(f, frepo.current_attempt(conn, f.id))
                      for f in frepo.expired_leases(conn, now, lock=False)]
        verdicts: dict[tuple[int, int | None], Verdict] = {}
        for f, attempt in lapsed:
            key = (f.id, attempt.id if attempt is not None else None)
            if attempt is None or self.dialer is None:
                verdicts[key] = Verdict("none")
                continue
            try:
                if attempt.call_sid:
                    status = self.dialer.status(attempt.call_sid)
                    verdicts[key] = (Verdict("none") if status is None
                                     else Verdict(status, attempt.call_sid))
                    continue
                found = self.dialer.find(f.phone, self.from_number(), attempt.claimed_at)
            except Exception:
                log.exception("cannot ask Twilio about a lapsed follow-up claim")
                verdicts[key] = Verdict("unknown")
                continue
            if not found:
                verdicts[key] = Verdict("none")
                continue
            live = next(((sid, st) for sid, st in found if st in LIVE), None)
            sid, status = live or found[0]
            verdicts[key] = Verdict(status, sid)
        return verdicts

    def _take_over(self, conn: Connection, f: Any, attempt: Any, verdict: Verdict,
                   now: datetime, out: Outcome) -> None:
        if verdict.status in LIVE or verdict.status == "unknown":
            if verdict.call_sid and attempt is not None and attempt.call_sid is None:
                frepo.update_attempt(conn, attempt.id, call_sid=verdict.call_sid)
            frepo.update_followup(conn, f.id, lease_until=now + timedelta(
                seconds=self.settings.followup_lease_seconds), updated_at=now)
            return
        log.warning("follow-up claim of %s expired (%s); taking it over followup=%s",
                    f.lease_owner, verdict.status, f.id)
        if attempt is None:
            frepo.release(conn, f.id, now, due_at=now, outcome="lost", failed_attempt=False)
            return
        if verdict.call_sid and attempt.call_sid is None:
            frepo.update_attempt(conn, attempt.id, call_sid=verdict.call_sid)
        outcome = ("lost" if verdict.status == "none" else
                   verdict.status if verdict.status in NOT_REACHED else
                   "completed" if attempt.answered_at is not None else "no-answer")
        self._finish(conn, f, attempt, outcome, now, out)

    # ------------------------------------------------------------ escalation, SMS

    def _supervisors(self, conn: Connection, kind: str, detail: dict[str, Any],
                     now: datetime, out: Outcome) -> None:
        payload = {"kind": kind, **detail}
        for agent_id in arepo.supervisor_ids(conn):
            out.published.append((agent_id, arepo.add_event(conn, agent_id, "followup",
                                                            payload, now)))

    def _callback_sms(self, conn: Connection, now: datetime) -> None:
        for r in frepo.callbacks_without_sms(conn, now - timedelta(hours=1)):
            at = r.scheduled_for if r.kind == "scheduled" and r.scheduled_for else \
                r.deadline_at
            frepo.queue_sms(conn, "callback", r.id, r.phone,
                            smsmod.body("callback", at, self.zone, r.language), now)

    def send_sms(self) -> int:
        """Send queued SMS, each at most once: ``sending`` is committed before Twilio is
        asked; a sender that dies leaves it ``unknown`` (never sent again)."""
        if self.sms is None:
            return 0
        now = self.clock.now()
        with self.engine.begin() as conn:
            frepo.sms_stale(conn, now)
            rows = frepo.sms_pending(conn)
            for r in rows:
                frepo.update_sms(conn, r.id, status="sending",
                                 lease_until=now + timedelta(minutes=5))
        sent = 0
        for r in rows:
            try:
                sid = self.sms.send(r.phone, self.from_number(), r.body)
            except Exception as exc:
                log.warning("SMS not sent sms=%s: %s", r.id, exc)
                with self.engine.begin() as conn:
                    frepo.update_sms(conn, r.id, only_status="sending", status="failed",
                                     error=str(exc)[:500])
                continue
            with self.engine.begin() as conn:
                frepo.update_sms(conn, r.id, only_status="sending", status="sent", sid=sid,
                                 sent_at=self.clock.now())
            sent += 1
        return sent

    def notify(self, client: httpx.Client) -> int:
        """Warning, broken and failed events to the escalation webhook (the callbacks'
        ``IVR_CALLBACK_ESCALATION_URL``, signed the same way), each once."""
        if not self.settings.callback_escalation_url:
            return 0
        sent = 0
        with self.engine.begin() as conn:
            for ev in frepo.unnotified(conn):
                subject = ({"followup_id": ev.followup_id} if ev.followup_id is not None
                           else {"promise_id": ev.promise_id})
                try:
                    post_escalation(client, self.settings, {
                        **(ev.detail or {}), "id": ev.id, "kind": f"followup.{ev.kind}"
                        if ev.followup_id is not None else f"promise.{ev.kind}",
                        "at": ev.at.isoformat(), **subject}, f"followup-event-{ev.id}")
                except httpx.HTTPError as exc:
                    log.warning("escalation webhook failed (retried later): %s", exc)
                    break
                frepo.mark_notified(conn, ev.id, self.clock.now())
                sent += 1
        return sent

    def run_once(self, client: httpx.Client | None = None) -> Swept:
        """The worker's pass: the sweep, the dials after its commit, SMS, escalations."""
        swept = self.sweep()
        self.dial(swept.dials, swept.out)
        self.send_sms()
        if client is not None:
            self.notify(client)
        return swept

    # ------------------------------------------------------------ the pop, the board

    def pop_fields(self, conn: Connection, req: Any, now: datetime) -> dict[str, Any]:
        """Added to a callback's pop when the callback is a follow-up (``kind
        followup``): ``followup: {id, kind, text: "follow-up on the fault closed
        yesterday", incident_id, since}``."""
        if req.kind != "followup":
            return {}
        f = conn.execute(F.select().where(F.c.callback_request_id == req.id)).first()
        if f is None:
            return {}
        when = relative_day(f.since_at, now, self.zone)
        text = (f"Follow-up on {f.reason} closed {when}" if f.kind == "satisfaction"
                else f"Follow-up on {f.reason} {when}")
        return {"followup": {"id": f.id, "kind": f.kind, "text": text,
                             "incident_id": f.incident_id, "since": f.since_at.isoformat()}}

    def board(self, conn: Connection, now: datetime) -> dict[str, Any]:
        """The supervisor view: open follow-ups, promises at risk and broken."""
        rows = frepo.list_followups(conn, status="open", limit=200)
        items = [{"id": r.id, "kind": r.kind, "mode": r.mode, "status": r.status,
                  "queue": r.queue, "customer_id": r.customer_id,
                  "phone": mask(r.phone) if r.phone else None,
                  "due_at": r.due_at.isoformat(), "deadline_at": r.deadline_at.isoformat(),
                  "overdue": now >= r.deadline_at, "attempts": r.attempts} for r in rows]
        return {"followups": items, "promises": self.promises.board(conn, now)}


def _say_hangup(language: str, what: str) -> str:
    he = language.startswith("he")
    words = {
        "machine": ("שלום, התקשרנו לבדוק שהכול תקין. נשמח לשמוע ממך.",
                    "Hello, we called to check that all is well. We will try again."),
        "gone": ("תודה, להתראות.", "Thank you, goodbye."),
    }[what]
    response = VoiceResponse()
    response.say(words[0] if he else words[1], language="he-IL" if he else "en-US")
    response.hangup()
    return str(response)


def build_service(engine: Engine, clock: Clock, settings: Settings, gateway: object,
                  local_url: str, dialer: Dialer | None = None,
                  sms: SmsSender | None = None) -> FollowUpService | None:
    """The follow-up service from ``IVR_FOLLOWUPS_FILE`` (None, logged, when the file does
    not exist). A file with mistakes raises PolicyError. Dialer and SMS: the twilio client's
    Calls and Messages APIs when the gateway is Twilio's, else the local stand-ins (the
    demo: the local dialer plays the customer against this server)."""
    from callbacks.dialer import TwilioDialer  # noqa: PLC0415
    from callbacks.followups.policy import load_policy  # noqa: PLC0415
    from callbacks.followups.sms import LocalSms, TwilioSms  # noqa: PLC0415
    from callbacks.local_dialer import LocalDialer  # noqa: PLC0415
    from callbacks.service import process_owner  # noqa: PLC0415
    from ivr.agents.gateway import TwilioGateway  # noqa: PLC0415

    path = settings.followups_file
    if not path.exists():
        log.info("no follow-up policy file %s: follow-ups are off", path)
        return None
    policy = load_policy(path)
    if settings.open_at_any_hour:  # the demo's IVR_DEMO_ALWAYS_OPEN: the window too
        from callbacks.demo_hours import EVERY_DAY  # noqa: PLC0415
        from callbacks.policy import BusinessHours  # noqa: PLC0415

        policy = policy.model_copy(update={"window": BusinessHours.model_validate({
            "timezone": policy.window.timezone,
            "weekly": {day: ["00:00-24:00"] for day in EVERY_DAY}})})
    if dialer is None:
        if isinstance(gateway, TwilioGateway):
            dialer = TwilioDialer(gateway.client)
        else:
            dialer = LocalDialer(settings.public_url or local_url,
                                 settings.twilio_auth_token.get_secret_value(),
                                 settings.local_dialer_talk_seconds)
    if sms is None:
        sms = TwilioSms(gateway.client) if isinstance(gateway, TwilioGateway) else LocalSms()
    return FollowUpService(engine, clock, settings, policy, dialer, sms, process_owner())
