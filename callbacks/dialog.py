"""What a caller hears and says about callbacks while still on the line: the expected wait
and the offer in the wait loop, the key that leaves the queue for the dialog, and the dialog
itself (confirm the number, type another, choose a time), ending in the request committed
(dedupe by ``open_key``, abuse caps) before the caller hears the promise. The base of
``callbacks.service.CallbackService``: the dispatch, the callback call and the timers are
there."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from callbacks import repository as cbrepo
from callbacks import sla
from callbacks import twiml as ctw
from callbacks.policy import Policies, Policy
from crm_sync.phones import is_withheld, mask, normalize
from ivr.agents import repository as repo
from ivr.calls.repository import calls
from ivr.core.clock import Clock
from ivr.core.settings import Settings

log = logging.getLogger(__name__)

MAX_TRIES = 2  # a dialog step not understood this often: back to the queue




class CallerDialog:
    engine: Engine
    clock: Clock
    settings: Settings
    policies: Policies

    def policy(self, queue: str) -> Policy:
        return self.policies.for_queue(queue)

    # ------------------------------------------------------------ the wait loop

    def deadline_for(self, queue: str, tier: str | None, entered_at: datetime) -> datetime:
        """The SLA deadline of a caller's place: their tier's, from the time they joined."""
        return sla.deadline(entered_at, self.policy(queue), tier)

    def estimate(self, conn: Connection, entry: Any, now: datetime) -> sla.WaitEstimate:
        """What this waiting caller is told about their wait (``sla.expected_wait``): their
        position among the live callers and pending callbacks of the queue served before
        them, the queue's free agents, how long each busy agent's call has gone on, and the
        queue's recent handle times."""
        deadline = entry.deadline_at or entry.entered_at
        live = repo.position(conn, entry.queue, entry.priority, deadline, entry.entered_at,
                             entry.id)
        callbacks_ahead = cbrepo.ahead_in_queue(conn, entry.queue, entry.priority, deadline)
        free, busy = repo.staffing(conn, entry.queue)
        position = live + callbacks_ahead
        wait = sla.expected_wait_ranked(
            position, free, busy, lambda rank: repo.handled_for(conn, entry.queue, rank, now),
            repo.recent_handle_times(conn, entry.queue),
            self.policy(entry.queue).fallback_handle_time)
        return sla.WaitEstimate(position, free, busy, wait)

    def expected_wait(self, conn: Connection, entry: Any, now: datetime) -> timedelta | None:
        """The caller's expected wait (None: nobody can answer); see ``estimate``."""
        return self.estimate(conn, entry, now).wait

    def spoken_wait(self, call_sid: str, language: str = "en-US",
                    ) -> tuple[sla.WaitEstimate, str] | None:
        """What a caller waiting in the queue would hear about their wait now, at the
        injected clock's time: the estimate and its words, without the offer (for
        measurements: bench/callbacks_day.py). None when the call is not waiting."""
        now = self.clock.now()
        with self.engine.connect() as conn:
            entry = repo.get_entry(conn, call_sid)
            if entry is None or entry.status != "waiting":
                return None
            estimate = self.estimate(conn, entry, now)
        return estimate, ctw.wait_words(estimate, language)

    def hold(self, conn: Connection, entry: Any, language: str, params: dict[str, str],
             pause: int, now: datetime) -> str:
        """A wait round: what the caller's wait is (next in line, the expected wait, or
        nobody can answer), and the offer when the queue's policy says so."""
        policy = self.policy(entry.queue)
        queue_time = params.get("QueueTime", "0")
        seconds = int(queue_time) if queue_time.isdigit() else 0
        every = max(int(policy.offer.repeat_every.total_seconds()), pause)
        speak = seconds % every < pause
        estimate = offer = None
        if speak:
            estimate = self.estimate(conn, entry, now)
            offer = sla.offer_reason(now, estimate.wait, policy)
        return ctw.hold(language, self.settings.hold_music_url, pause, estimate=estimate,
                        offer=offer, queue=entry.queue, speak=speak)

    def choose(self, call_sid: str, queue: str, language: str, digits: str,
               holds_callers: bool) -> str:
        """The wait loop's ``<Gather>`` got a key. 1: out of Twilio's queue into the dialog
        (the place is kept: the entry is ``choosing``, which the router skips)."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            entry = repo.get_entry(conn, call_sid)
            if entry is None or entry.queue != queue:
                return ctw.redirect_wait(language, queue, None)
            if entry.status == "offered":  # an agent is on the way: no callback needed
                return ctw.leave() if holds_callers else ctw.redirect_wait(language, queue,
                                                                           None)
            if digits != "1" or entry.status != "waiting":
                return ctw.redirect_wait(language, queue, "not_understood"
                                         if digits != "1" else None)
            repo.update_entry(conn, call_sid, status="choosing", updated_at=now)
        log.info("caller chose a callback call=%s queue=%s", call_sid, queue)
        return ctw.leave()

    # ------------------------------------------------------------ the dialog

    def dialog_start(self, conn: Connection, call_sid: str, entry: Any) -> str:
        """The caller left the queue to ask for a callback (``<Enqueue action>``, leave)."""
        call = _caller(conn, call_sid)
        language = call.get("language") or "he-IL"
        return self._menu(conn, call, entry.queue, language, 0)

    def _menu(self, conn: Connection, call: dict[str, Any], queue: str, language: str,
              tries: int, note: str | None = None, times: bool | None = None) -> str:
        caller = _caller_e164(call.get("from_number"), self.settings.default_region)
        if times is None:
            times = bool(sla.time_choices(self.clock.now(), self.policy(queue)))
        return ctw.dialog_menu(language, queue, caller[-4:] if caller else None, times,
                               tries, note)

    def dialog(self, call_sid: str, query: dict[str, str], digits: str,
               ) -> tuple[str, bool]:
        """A step of the callback dialog; (TwiML, whether routing should run)."""
        now = self.clock.now()
        queue = query.get("q", "")[:64]
        language = query.get("lang", "he-IL")[:16]
        step = query.get("step", "")
        tries = int(query["n"]) if query.get("n", "").isdigit() else 0
        with self.engine.begin() as conn:
            entry = repo.get_entry(conn, call_sid)
            call = _caller(conn, call_sid)
            if entry is None or not call or entry.queue != queue:
                raise LookupError(call_sid)
            step_no = int(call.get("step") or 0)
            if entry.status == "callback":  # a retried request after the commit
                req = cbrepo.get(conn, entry.callback_id) if entry.callback_id else None
                if req is not None:
                    return self._confirmation(req, now, language, already=False), False
            if entry.status != "choosing":
                return self._back(conn, call_sid, entry, language, step_no, None, now)
            caller = _caller_e164(call.get("from_number"), self.settings.default_region)
            if step == "choice":
                if digits == "1" and caller:
                    return self._commit(conn, call, entry, caller, None, language, now)
                if digits == "2":
                    return ctw.type_number(language, queue, 0), False
                if digits == "3" and self.policy(queue).offer.scheduled:
                    if not caller:  # withheld: the number first, then the time
                        return ctw.type_number(language, queue, 0, then="time"), False
                    return self._times(conn, call, entry, caller, language, now)
                if digits == "*" or tries >= MAX_TRIES:
                    return self._back(conn, call_sid, entry, language, step_no,
                                      "keep_place", now)
                return self._menu(conn, call, queue, language, tries + 1,
                                  note=None if digits == "" else "not_understood"), False
            then = "time" if query.get("then") == "time" else ""
            if step == "number":
                phone = normalize(digits, self.settings.default_region) if digits else None
                if phone is None or not phone.ok or phone.e164 is None:
                    if tries >= MAX_TRIES:
                        return self._back(conn, call_sid, entry, language, step_no,
                                          "keep_place", now)
                    return ctw.type_number(language, queue, tries + 1, "bad_number",
                                           then=then), False
                return ctw.confirm_number(language, queue, digits, phone.e164, then), False
            if step == "confirm":
                phone_q = query.get("phone", "")
                if digits == "1" and normalize(phone_q, self.settings.default_region).ok:
                    if self.policy(queue).offer.scheduled and then == "time":
                        return self._times(conn, call, entry, phone_q, language, now)
                    return self._commit(conn, call, entry, phone_q, None, language, now)
                return ctw.type_number(language, queue, 0, then=then), False
            if step == "time":
                phone_q = query.get("phone", "") or (caller or "")
                choices = sla.time_choices(now, self.policy(queue))
                if digits.isascii() and digits.isdigit() and 1 <= int(digits) <= len(choices):
                    if not phone_q:
                        return ctw.type_number(language, queue, 0, then="time"), False
                    slot = choices[int(digits) - 1][1]
                    return self._commit(conn, call, entry, phone_q, slot, language, now)
                return self._back(conn, call_sid, entry, language, step_no,
                                  "keep_place", now)
            return self._back(conn, call_sid, entry, language, step_no, None, now)

    def _times(self, conn: Connection, call: dict[str, Any], entry: Any, phone: str,
               language: str, now: datetime) -> tuple[str, bool]:
        policy = self.policy(entry.queue)
        choices = sla.time_choices(now, policy)
        zone = policy.business_hours.zone
        options = [(name, ctw.when(slot, now, zone, language)) for name, slot in choices]
        if not options:  # no time left to offer: the menu without the choice
            return self._menu(conn, call, entry.queue, language, 0, note="no_times",
                              times=False), False
        return ctw.choose_time(language, entry.queue, options, phone), False

    def _back(self, conn: Connection, call_sid: str, entry: Any, language: str, step: int,
              note: str | None, now: datetime) -> tuple[str, bool]:
        """Back to waiting, with the place the caller had (``entered_at`` kept)."""
        if entry.status == "choosing":
            repo.update_entry(conn, call_sid, status="waiting", updated_at=now)
        return ctw.back_to_queue(language, note, entry.queue, step), True

    def _confirmation(self, req: Any, now: datetime, language: str, *, already: bool) -> str:
        zone = self.policy(req.queue).business_hours.zone
        if req.kind == "scheduled" and req.scheduled_for is not None:
            spoken = ctw.when(req.scheduled_for, now, zone, language, at=True)
            return ctw.confirmed(language, spoken, scheduled=True, already=already)
        return ctw.confirmed(language, ctw.when(req.deadline_at, now, zone, language),
                             scheduled=False, already=already)

    def _commit(self, conn: Connection, call: dict[str, Any], entry: Any, phone: str,
                slot: datetime | None, language: str, now: datetime) -> tuple[str, bool]:
        """Write the request (or update the open one), then say by when we call."""
        policy = self.policy(entry.queue)
        attrs = dict(call.get("attributes") or {})
        customer_id = attrs.get("customer_id") if attrs.get("identified") else None
        customer_id = int(customer_id) if customer_id is not None else None
        tier = attrs.get("tier")
        caller = _caller_e164(call.get("from_number"), self.settings.default_region)
        key = cbrepo.open_key(entry.queue, customer_id, phone)
        if slot is not None:
            kind, due, deadline = "scheduled", slot, sla.scheduled_deadline(slot, policy)
            warn = slot + (deadline - slot) * policy.warn_at
            place = slot
        else:
            kind = "asap"
            place = entry.entered_at
            deadline = entry.deadline_at or sla.deadline(place, policy, tier)
            warn = sla.warning_at(place, policy, tier)
            due = sla.next_callable(now, policy)
        values = {"queue": entry.queue, "phone": phone, "caller_number": caller,
                  "call_sid": call["call_sid"], "customer_id": customer_id, "tier": tier,
                  "language": language, "priority": entry.priority, "entered_at": place,
                  "requested_at": now, "kind": kind, "scheduled_for": slot,
                  "deadline_at": deadline, "warn_at": warn, "due_at": due,
                  "status": "pending", "open_key": key, "attempts": 0,
                  "max_attempts": policy.max_attempts, "updated_at": now}
        existing = cbrepo.find_open(conn, key)
        if existing is None:
            refusal = self._capped(conn, caller, phone, now, policy)
            if refusal is not None:
                log.warning("callback refused (%s) caller=%s number=%s", refusal,
                            mask(caller), mask(phone))
                return self._back(conn, call["call_sid"], entry, language,
                                  int(call.get("step") or 0), "capped", now)
            request_id = cbrepo.create(conn, values)
            if request_id is None:  # another request with that key committed just now
                existing = cbrepo.find_open(conn, key)
        if existing is not None:
            request_id = existing.id
            update = {k: values[k] for k in ("phone", "kind", "scheduled_for", "language",
                                             "call_sid", "updated_at")}
            if existing.status == "pending":
                # A new, later place never makes the promise worse: keep the earlier one.
                update.update(due_at=due if slot is not None else min(existing.due_at, due),
                              deadline_at=deadline if slot is not None
                              else min(existing.deadline_at, deadline),
                              warn_at=warn if slot is not None else min(existing.warn_at, warn),
                              entered_at=place if slot is not None
                              else min(existing.entered_at, place))
            cbrepo.update_request(conn, existing.id, **update)
            cbrepo.add_event(conn, existing.id, "updated", now, {"call_sid": call["call_sid"],
                                                                 "kind": kind})
        else:
            assert request_id is not None
            cbrepo.add_event(conn, request_id, "requested", now,
                             {"call_sid": call["call_sid"], "kind": kind,
                              "other_number": bool(caller and phone != caller)})
            if caller and phone != caller:
                log.warning("callback to a number other than the caller ID caller=%s "
                            "number=%s request=%s", mask(caller), mask(phone), request_id)
        repo.update_entry(conn, call["call_sid"], status="callback", callback_id=request_id,
                          ended_at=now, updated_at=now)
        req = cbrepo.get(conn, request_id)
        assert req is not None
        log.info("callback %s request=%s queue=%s deadline=%s",
                 "updated" if existing is not None else "requested", request_id,
                 entry.queue, req.deadline_at.isoformat())
        return self._confirmation(req, now, language, already=existing is not None), True

    def _capped(self, conn: Connection, caller: str | None, phone: str, now: datetime,
                policy: Policy) -> str | None:
        zone = policy.business_hours.zone
        local = now.astimezone(zone)
        day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        cap = self.settings.callback_daily_cap
        for number in {n for n in (caller, phone) if n}:
            if cbrepo.requests_since(conn, number, day_start) >= cap:
                return "daily cap per number"
        if caller and phone != caller and cbrepo.other_number_requests_since(
                conn, caller, day_start) >= self.settings.callback_other_number_daily_cap:
            return "daily cap of requests for another number"
        if not caller and cbrepo.requests_since(conn, phone, day_start) >= cap:
            return "daily cap per number"
        return None


def _caller(conn: Connection, call_sid: str) -> dict[str, Any]:
    row = conn.execute(select(calls.c.call_sid, calls.c.from_number, calls.c.to_number,
                              calls.c.language, calls.c.attributes, calls.c.step)
                       .where(calls.c.call_sid == call_sid)).first()
    return dict(row._mapping) if row is not None else {}


def _to_number(conn: Connection, call_sid: str | None) -> str | None:
    if not call_sid:
        return None
    row = conn.execute(select(calls.c.to_number).where(calls.c.call_sid == call_sid)).first()
    return row.to_number if row is not None else None


def _caller_e164(raw: str | None, region: str) -> str | None:
    if raw is None or is_withheld(raw):
        return None
    phone = normalize(raw, region)
    return phone.e164 if phone.ok else None




