"""Webhook use cases: start a call, take its next step, record its status.

Each use case is one database transaction (the caller of these functions commits by
leaving the ``engine.begin()`` block). The menu engine decides; this module loads and
saves the state around it and makes retried webhooks harmless.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from crm_sync.history import close_inbound_call, record_inbound_call
from crm_sync.lookup import identify_by_account, identify_caller
from ivr.calls import repository as repo
from ivr.calls import twiml
from ivr.core.clock import Clock
from ivr.menu.bundle import MenuBundle
from ivr.menu.engine import (
    AccountEntered,
    CallState,
    Event,
    Gathered,
    Start,
    StepResult,
    account_digits,
    start_state,
    step,
)
from ivr.menu.model import IdentifyNode
from ivr.menu.recognition import birthday_facts, local_today, recognition_facts
from ivr.menu.registry import MenuRegistry

log = logging.getLogger(__name__)

FINAL_STATUSES = {"completed", "busy", "failed", "no-answer", "canceled"}
# Live calls whose last written state a process keeps for their next step
# (``CallService._remember``): a process answering 1,700 steps a second, each call's next
# step some seconds after the one before, has thousands of calls in its menus at once (the
# benchmark's pool, about 12,000). A call forgotten is read again. About 2.8 KB a call in
# the demo's menus after two steps (its path grows a step at a time): 16,384 calls, ~45 MB.
WRITTEN_KEPT = 16_384

#: A port: more facts about an identified customer for the menu, read in the call's
#: transaction (connection, customer id, now) -> attributes. ``ivr/services.py`` plugs the
#: retention signals in (``leaving_risk``: the customer is a leaving risk), which sit above
#: this package in the layer order. It is asked only when a live menu reads one of the
#: attributes it gives (``customer_fact_names``): a few queries per call otherwise wasted.
CustomerFacts = Callable[[Connection, int, datetime], Mapping[str, Any]]


def no_customer_facts(conn: Connection, customer_id: int, now: datetime) -> Mapping[str, Any]:
    return {}


def fingerprint(path: str, query: str, params: Mapping[str, str]) -> str:
    h = hashlib.sha256(f"{path}?{query}".encode())
    for key in sorted(params):
        h.update(b"\0" + key.encode() + b"=" + params[key].encode())
    return h.hexdigest()


def _column(value: str | None, size: int) -> str | None:
    """A form field as its column keeps it: at most ``size`` characters and no NUL (which
    PostgreSQL text cannot hold). Twilio's own values fit; a SIP caller ID may not."""
    return None if value is None else value.replace("\0", "")[:size]


def _count(value: str | None) -> int | None:
    """A whole number Twilio sends (a sequence number, seconds): ASCII digits only ("²" is
    a digit to ``str.isdigit`` but not to ``int``) and small enough for an INTEGER column."""
    return int(value) if value and value.isascii() and value.isdigit() and len(value) < 10 \
        else None


@dataclass(frozen=True)
class Answer:
    twiml: str
    replayed: bool = False
    caller_outcome: str | None = None  # a new call: how the caller was identified


class UnknownCallError(LookupError):
    pass


class CallService:
    def __init__(self, engine: Engine, registry: MenuRegistry, clock: Clock,
                 region: str = "IL", repeat_window_minutes: int = 120,
                 always_open: bool = False, *, timezone: str = "Asia/Jerusalem",
                 customer_facts: CustomerFacts = no_customer_facts,
                 customer_fact_names: frozenset[str] = frozenset({"leaving_risk"})) -> None:
        self.engine = engine
        # Recognition (issue 17 section 3): birthdays and holidays are days of the centre's
        # time zone and of its country's calendar (the region's).
        self.timezone = timezone
        self.customer_facts = customer_facts
        self.customer_fact_names = customer_fact_names
        self._languages: dict[str, tuple[str, ...]] = {}
        self.always_open = always_open  # the demo's IVR_DEMO_ALWAYS_OPEN in effect
        self.repeat_window = repeat_window_minutes
        self.region = region
        self.registry = registry
        self.clock = clock
        self.steps = repo.StepStore(engine.dialect.name)
        # Each live call's state as this process last wrote it (``_remember``): its next
        # step is planned from it without reading the call again, and written only if the
        # row still holds it (``StepStore.save`` with ``unchanged``); else it is read.
        self._written: dict[str, dict[str, Any]] = {}
        self._written_lock = threading.Lock()

    # -- helpers

    def _state_values(self, result: StepResult, next_step: int, fp: str, xml: str,
                      ) -> dict[str, Any]:
        s = result.state
        return {
            "menu_version": s.version, "menu": s.menu, "node": s.node, "language": s.language,
            "no_input_count": s.no_input, "invalid_count": s.invalid, "ended": s.ended,
            "attributes": s.attributes, "path": list(s.path), "step": next_step,
            "last_fingerprint": fp, "last_response": xml, "updated_at": self.clock.now(),
        }

    def _bundle_languages(self, bundle: MenuBundle) -> tuple[str, ...]:
        langs = self._languages.get(bundle.version)
        if langs is None:
            langs = tuple(sorted({lang for lm in bundle.menus.values()
                                  for lang in lm.menu.languages}))
            self._languages = {bundle.version: langs}  # one live version at a time
        return langs

    def _recognise(self, conn: Connection, attrs: dict[str, Any], bundle: MenuBundle,
                   now: datetime) -> dict[str, Any]:
        """The recognition facts of a new call (``ivr.menu.recognition``): birthday,
        today's and tomorrow's holiday, and the port's customer facts (leaving risk). The
        customer's date of birth is read for the fact and not kept with the call."""
        born = attrs.pop("date_of_birth", None)
        facts = recognition_facts(now, self.timezone, self.region,
                                  self._bundle_languages(bundle), date_of_birth=born)
        if attrs.get("identified") and attrs.get("customer_id") is not None \
                and self.customer_fact_names & bundle.attributes_used:
            facts.update(self.customer_facts(conn, int(attrs["customer_id"]), now))
        return facts

    # -- use cases

    def start_call(self, params: Mapping[str, str], fp: str) -> Answer:
        sid = params["CallSid"][:64]  # as the webhooks read it on every later step
        bundle = self.registry.current
        now = self.clock.now()
        with self.engine.begin() as conn:
            # Who is calling, from the shared customer store: the menu can branch on it and
            # the agent will see it.
            match = identify_caller(conn, params.get("From"), self.region, now,
                                    self.repeat_window)
            attrs: dict[str, Any] = {"caller": params.get("From"), "called": params.get("To"),
                                     "caller_country": params.get("FromCountry"),
                                     **match.attributes}
            attrs.update(self._recognise(conn, attrs, bundle, now))
            state = start_state(bundle, sid, self.registry.entry, attrs)
            result = step(bundle, state, Start(), now, always_open=self.always_open)
            xml = twiml.render(result.actions, 1)
            values = self._state_values(result, 1, fp, xml)
            values.update(call_sid=sid, account_sid=_column(params.get("AccountSid"), 64),
                          from_number=_column(params.get("From"), 64),
                          to_number=_column(params.get("To"), 64),
                          direction=_column(params.get("Direction"), 32),
                          status=_column(params.get("CallStatus"), 32) or "ringing",
                          created_at=now)
            inserted = repo.insert_call(conn, values)
            if inserted and match.outcome == "known":  # the customer's history shows it
                record_inbound_call(conn, match.customer_ids[0], sid, values["to_number"], now)
            row = None if inserted else repo.get_call(conn, sid)
        if inserted:
            self._remember(sid, self.steps.params(sid, 0, values), values)
            return Answer(xml, caller_outcome=match.outcome)
        # The CallSid exists: Twilio retried the request (or redirected to the voice URL).
        assert row is not None
        log.info("voice webhook repeated; answering as before call=%s", sid)
        return Answer(row["last_response"] or xml, replayed=True)

    def continue_call(self, sid: str, at_step: int, event: Event, fp: str) -> Answer:
        """A call's next step on a pooled DBAPI connection (SQLite, or PostgreSQL in a
        thread). Planned from the state this process wrote last when it is the step asked
        for (no read); read from the database when it is not, or when the row has changed
        since (another process, a status callback)."""
        raw = self.engine.raw_connection()
        row: dict[str, Any] | None = None
        lost = False
        try:
            written = self._recall(sid, at_step)
            answer: Answer | None = None
            if written is not None:
                event = self._with_account(sid, written, at_step, event)
                answer, params = self._plan_params(written, sid, at_step, event, fp)
                if params is None or not self.steps.save(raw, params, written):
                    answer = None
            if answer is None:
                row = self.steps.load(raw, sid)
                event = self._with_account(sid, row, at_step, event)
                answer, params = self._plan_params(row, sid, at_step, event, fp)
                lost = params is not None and not self.steps.save(raw, params)
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        finally:
            raw.close()
        if lost:
            return self._lost_race(sid, at_step)
        self._remember(sid, params, row or written)
        return answer

    async def continue_call_async(self, pool: Any, sid: str, at_step: int, event: Event,
                                  fp: str) -> Answer:
        """The same on psycopg's async pool: PostgreSQL round trips on the event loop, no
        threads (thread hand-offs were the p99 of a step on PostgreSQL). The pool's
        connections are in autocommit (``Database.open_async_pool``): the read and the
        conditional write are a round trip each, the write taking effect only if the step is
        still the one read; planned from the state written last, the write is the step's
        only round trip."""
        row: dict[str, Any] | None = None
        lost = False
        async with pool.connection() as aconn:
            written = self._recall(sid, at_step)
            answer: Answer | None = None
            if written is not None:
                event = await self._with_account_async(sid, written, at_step, event)
                answer, params = self._plan_params(written, sid, at_step, event, fp)
                if params is None or not await self.steps.asave(aconn, params, written):
                    answer = None
            if answer is None:
                row = await self.steps.aload(aconn, sid)
                event = await self._with_account_async(sid, row, at_step, event)
                answer, params = self._plan_params(row, sid, at_step, event, fp)
                lost = params is not None and not await self.steps.asave(aconn, params)
        if lost:
            return self._lost_race(sid, at_step)
        self._remember(sid, params, row or written)
        return answer

    def _recall(self, sid: str, at_step: int) -> dict[str, Any] | None:
        """The call's state as this process wrote it last, if that is step ``at_step``;
        taken out (a step planned from it writes the next one, or reads the call)."""
        with self._written_lock:
            kept = self._written.pop(sid, None)
        if kept is None or kept["step"] != at_step:
            return None
        return self.steps.recall(kept)

    def _remember(self, sid: str, params: Mapping[str, Any] | None,
                  before: Mapping[str, Any] | None) -> None:
        """Keep what was just written for the call's next step (the last ``WRITTEN_KEPT``
        calls, the oldest forgotten first)."""
        if params is None or before is None or params["ended"]:
            return
        kept = self.steps.kept(params, before["status"])
        with self._written_lock:
            self._written[sid] = kept
            if len(self._written) > WRITTEN_KEPT:
                del self._written[next(iter(self._written))]

    def _plan_params(self, row: dict[str, Any] | None, sid: str, at_step: int, event: Event,
                     fp: str) -> tuple[Answer, dict[str, Any] | None]:
        """``_plan``, with the state to write as the step's write's bound values."""
        answer, values = self._plan(row, sid, at_step, event, fp)
        return answer, None if values is None else self.steps.params(sid, at_step, values)

    def _forget(self, sid: str) -> None:
        with self._written_lock:
            self._written.pop(sid, None)

    def _with_account(self, sid: str, row: dict[str, Any] | None, at_step: int,
                      event: Event) -> Event:
        """The event, with the customer found when it is an account number typed at an
        identify node (looked up before the engine runs: the engine does no I/O)."""
        digits = self._account_typed(row, at_step, event)
        if digits is None:
            return event
        return AccountEntered(digits, self._look_up_account(
            sid, digits, row["menu_version"] if row else None))

    async def _with_account_async(self, sid: str, row: dict[str, Any] | None, at_step: int,
                                  event: Event) -> Event:
        digits = self._account_typed(row, at_step, event)
        if digits is None:  # nearly always: a caller typing an account number is rare
            return event
        match = await asyncio.to_thread(self._look_up_account, sid, digits,
                                        row["menu_version"] if row else None)
        return AccountEntered(digits, match)

    def _account_typed(self, row: dict[str, Any] | None, at_step: int,
                       event: Event) -> str | None:
        """The account number typed at an identify node, to look up before the engine
        runs (the engine does no I/O)."""
        if row is None or at_step != row["step"] or not isinstance(event, Gathered):
            return None
        menu = self.registry.get(row["menu_version"]).menus.get(row["menu"])
        node = menu.menu.nodes.get(row["node"]) if menu else None
        return account_digits(node, event.digits) if isinstance(node, IdentifyNode) else None

    def _look_up_account(self, sid: str, digits: str, version: str | None,
                         ) -> dict[str, Any] | None:
        now = self.clock.now()
        with self.engine.begin() as conn:
            match = identify_by_account(conn, digits, now, self.repeat_window)
            if match is not None:
                record_inbound_call(conn, match["customer_id"], sid, None, now)
                # Now we know who it is: their birthday and the port's facts too.
                born = match.pop("date_of_birth", None)
                match.update(birthday_facts(born, local_today(now, self.timezone)))
                bundle = self.registry.get(version) if version else self.registry.current
                if self.customer_fact_names & bundle.attributes_used:
                    match.update(self.customer_facts(conn, int(match["customer_id"]), now))
            return match

    def _plan(self, row: dict[str, Any] | None, sid: str, at_step: int, event: Event,
              fp: str) -> tuple[Answer, dict[str, Any] | None]:
        """What to answer, and the state to write (None: nothing to write)."""
        if row is None:
            raise UnknownCallError(sid)
        if at_step != row["step"]:
            if at_step == row["step"] - 1 and fp == row["last_fingerprint"]:
                log.info("webhook retried; answering as before call=%s step=%s",
                         sid, at_step)
            else:
                log.warning("out-of-order webhook call=%s step=%s expected=%s; repeating "
                            "the last answer", sid, at_step, row["step"])
            return Answer(row["last_response"] or twiml.empty(), replayed=True), None
        bundle = self.registry.get(row["menu_version"])
        state = CallState(
            call_sid=sid, version=row["menu_version"], menu=row["menu"], node=row["node"],
            language=row["language"], no_input=row["no_input_count"],
            invalid=row["invalid_count"], attributes=dict(row["attributes"] or {}),
            path=tuple(row["path"] or ()), ended=bool(row["ended"]),
        )
        result = step(bundle, state, event, self.clock.now(), always_open=self.always_open)
        next_step = at_step + 1
        xml = twiml.render(result.actions, next_step)
        return Answer(xml), self._state_values(result, next_step, fp, xml)

    def _lost_race(self, sid: str, at_step: int) -> Answer:
        """Another process answered this very step first (a concurrent retry)."""
        with self.engine.connect() as conn:
            again = repo.get_call(conn, sid)
        log.info("webhook answered concurrently elsewhere call=%s step=%s", sid, at_step)
        return Answer((again or {}).get("last_response") or twiml.empty(), replayed=True)

    def record_status(self, params: Mapping[str, str]) -> tuple[str, str, str] | None:
        """Record a status callback once. The first final status of a known call returns
        (menu, node, status): where the call was when it ended, for the metrics."""
        sid = params["CallSid"][:64]
        status = _column(params.get("CallStatus", "unknown"), 32) or ""
        duration = _count(params.get("CallDuration"))
        final = status in FINAL_STATUSES
        self._forget(sid)  # its status changes: its next step reads the call
        with self.engine.begin() as conn:
            first_time = repo.record_status(
                conn, sid, status, _count(params.get("SequenceNumber")) or 0, params,
                self.clock.now(), duration, final)
            if final and first_time:
                row = repo.get_call(conn, sid)
                # Only an identified caller's call is in a customer's history.
                if row is not None and (row["attributes"] or {}).get("identified"):
                    close_inbound_call(conn, sid, self.clock.now(), list(row["path"] or ()))
                if row is not None:
                    return str(row["menu"]), str(row["node"]), status
        return None
