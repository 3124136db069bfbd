"""Transfers: the connected call on a conference, hold and resume, and transfers to a queue,
a named agent or an outside number, cold or warm — with one promise: a transfer that fails
brings the caller back to a person (the first agent if still there, else the head of the
queue they first joined), and the caller hears why.

Every use case is one transaction, like the agents' (``ivr.agents.service``); requests to
Twilio (``ConferenceGateway``) are made outside any transaction: a transfer is written
(``pending``) first, then Twilio is asked, then the answer is written. A process killed in
between leaves a ``pending`` row that ``sweep`` rolls back after
``IVR_TRANSFER_PENDING_SECONDS`` (and a leg Twilio did create for it is removed when its
status callback comes).

The agents' rows: a call has one key holder (``agents.current_call_sid`` is unique: one
call is never offered to two agents). The second agent of a transfer is reserved (and on
the consult) without the key; the key moves to them when the first agent leaves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection

from callbacks.service import CallbackService
from ivr.agents import repository as agents_repo
from ivr.agents.ports import Outcome
from ivr.agents.service import AgentError, AgentService
from ivr.calls.repository import get_call
from ivr.core.calendar import is_open
from ivr.core.twilio_rest import uncertain
from ivr.transfers import repository as repo
from ivr.transfers import twiml as tx_twiml
from ivr.transfers.gateway import ConferenceGateway

log = logging.getLogger(__name__)

ANSWERED = {"in-progress", "answered"}
NOT_REACHED = {"no-answer", "busy", "failed", "canceled"}
#: What the caller hears when a transfer failed and they go back to the queue's head.
WHY = {"no-answer": "no-answer", "busy": "busy", "failed": "failed", "canceled": "no-answer",
       "hung-up": "hung-up", "rest-failed": "failed", "interrupted": "failed"}


class TransferError(AgentError):
    """A refusal the console shows as it is (status and sentence)."""


@dataclass(frozen=True)
class Targets:
    queues: list[dict[str, Any]]
    agents: list[dict[str, Any]]
    external: list[dict[str, Any]]


def _reach(kind: str, target: str) -> str:
    """A Twilio ``To`` for an agent's reach (a Client identity, a number, a SIP URI)."""
    if kind == "client":
        return f"client:{target}"
    return target


def conference_name(call_sid: str) -> str:
    return f"call-{call_sid}"


class TransferService:
    def __init__(self, agents: AgentService, gateway: ConferenceGateway, base_url: str,
                 callbacks: CallbackService | None = None) -> None:
        #: The callbacks feature: its policies' business hours say whether a queue is open
        #: (a transfer to a closed queue offers the caller a callback).
        self.callbacks = callbacks
        self.agents = agents
        self.engine = agents.engine
        self.clock = agents.clock
        self.settings = agents.settings
        self.gateway = gateway
        #: Where Twilio reaches this server (participants' status callbacks need it whole).
        self.base = base_url.rstrip("/")

    # ------------------------------------------------------------ the bridge (agents port)

    def connect(self, conn: Connection, offer: Any, agent: dict[str, Any], first: bool,
                now: datetime, out: Outcome) -> str | None:
        """The caller joins the call's conference; the agent is rung into it as a
        participant after the commit (``first``: once per offer)."""
        if not self.settings.conference_calls:
            return None
        call_sid = str(offer.call_sid)
        name = conference_name(call_sid)
        repo.put_conference(conn, call_sid, name, now)
        repo.update_conference(conn, call_sid, now, held_at=None)
        if first:
            from_ = repo.caller_id(conn, call_sid)
            out.after.append(self._ring_first_agent(
                call_sid, int(offer.id), _reach(agent["reach_kind"], agent["reach_target"]),
                from_))
        return tx_twiml.caller_conference(name, call_sid)

    def _ring_first_agent(self, call_sid: str, offer_id: int, to: str, from_: str,
                          ) -> Callable[[], Outcome]:
        def ring() -> Outcome:
            try:
                leg = self.gateway.add_participant(
                    conference_name(call_sid), to=to, from_=from_,
                    status_callback=f"{self.base}/twilio/conference-agent?a={offer_id}",
                    timeout=self.settings.agent_ring_timeout, end_conference_on_exit=True,
                    label="agent")
            except Exception:
                log.exception("the agent could not be rung into the conference; the caller "
                              "goes back to the head of the queue call=%s", call_sid)
                return Outcome(then=[partial(self.first_leg, offer_id,
                                             {"CallStatus": "failed"})])
            return Outcome(then=[partial(self._rung, call_sid, offer_id, leg)])
        return ring

    def _rung(self, call_sid: str, offer_id: int, leg: str) -> Outcome:
        """The agent's participant is ringing: its leg is noted on the conference, unless
        the caller hung up while Twilio was being asked (``caller_gone`` did not know the leg
        yet, so nobody removed it): then it is removed, and must not ring on."""
        out = Outcome()
        with self.engine.begin() as conn:
            offer = agents_repo.get_offer(conn, offer_id)
            conf = repo.conference(conn, call_sid)
            gone = offer is None or (offer.ended_at is not None
                                     and offer.answered_at is None)
            if not gone:
                repo.update_conference(conn, call_sid, self.clock.now(), agent_leg_sid=leg)
        if gone and conf is not None:
            out.after.append(self._remove(self._conf_sid(conf), leg))
        return out

    def caller_gone(self, conn: Connection, offer: Any, now: datetime, out: Outcome,
                    ) -> None:
        """The caller hung up while the agent's participant rang (the caller's final status
        callback, their conference's ``<Dial action>``, or the liveness sweep said so): the
        participant is removed after the commit. Twilio ends a ``<Dial>``ed leg with its
        caller, but not a participant's call: the agent's phone would ring on, and an agent
        who answered would be alone in the conference."""
        conf = repo.conference(conn, str(offer.call_sid))
        if conf is not None and conf.agent_leg_sid:
            out.after.append(self._remove(self._conf_sid(conf), conf.agent_leg_sid))

    def pop_fields(self, conn: Connection, call_sid: str, now: datetime) -> dict[str, Any]:
        """The pop's (and the context's) transfer fields. A call on a conference: ``held``,
        ``held_at`` and its ``open_transfer`` (so a console that reloads finds them). A
        transferred call: ``transfer`` — who transferred it, from where, after how long,
        and the note ("transferred by Noa from billing after 4 min: <note>")."""
        fields: dict[str, Any] = {}
        conf = repo.conference(conn, call_sid)
        if conf is not None:
            fields["held"] = conf.held_at is not None
            fields["held_at"] = conf.held_at.isoformat() if conf.held_at else None
            open_ = repo.open_transfer(conn, call_sid)
            fields["open_transfer"] = self._body(conn, open_.id) if open_ else None
        t = repo.last_transfer(conn, call_sid)
        if t is None or t.state in ("failed", "canceled"):
            return fields
        by = repo.agent_row(conn, int(t.from_agent_id))
        by_name = by.name if by is not None else "?"
        minutes = max(1, round(t.after_seconds / 60))
        text = f"transferred by {by_name} from {t.from_queue or '?'} after {minutes} min"
        if t.note:
            text += f": {t.note}"
        fields["transfer"] = {"id": t.id, "by": by_name, "from_queue": t.from_queue,
                              "after_seconds": t.after_seconds, "note": t.note,
                              "mode": t.mode, "text": text}
        return fields

    # ------------------------------------------------------------ the caller's webhooks

    def first_leg(self, offer_id: int, params: dict[str, str]) -> Outcome:
        """Status callbacks of an agent leg rung into the conference by ``connect``:
        answered → the agent is on the call (the agents' own bookkeeping); not reached →
        the caller goes back to the head of the queue (the agent goes offline, as after an
        unanswered ``<Dial>``); hung up while a transfer is open → the transfer goes on
        without them."""
        status = params.get("CallStatus", "")
        if status in ANSWERED:
            out = self.agents.agent_leg(offer_id, {**params, "CallStatus": "in-progress"})
            leg = params.get("CallSid")
            if leg:
                with self.engine.begin() as conn:
                    offer = agents_repo.get_offer(conn, offer_id)
                    if offer is not None and offer.ended_at is None:
                        repo.update_conference(conn, offer.call_sid, self.clock.now(),
                                               agent_leg_sid=leg)
            return out
        with self.engine.connect() as conn:
            offer = agents_repo.get_offer(conn, offer_id)
        if offer is None or offer.ended_at is not None:
            return Outcome()
        if offer.answered_at is None and status in NOT_REACHED | {"completed"}:
            # Never reached: the agents' own ending of an unanswered leg (the offer ends,
            # the agent goes offline, the caller's entry waits at the head again), and the
            # caller is moved out of the conference back to the queue.
            call_sid = str(offer.call_sid)
            ended = self.agents.agent_dial_ended(
                offer_id, call_sid, status if status in NOT_REACHED else "no-answer")
            ended.twiml = None
            with self.engine.begin() as conn:
                self._redirect(conn, call_sid, tx_twiml.back_url(call_sid, "no-answer"),
                               self.clock.now(), ended)
            return ended
        if status == "completed":
            return self._first_agent_left(offer)
        return Outcome()

    def _first_agent_left(self, offer: Any) -> Outcome:
        """The first agent's leg ended (hung up, browser closed) while a transfer is open:
        ringing or consulting, the transfer goes on (the caller is on hold, not dropped)."""
        now = self.clock.now()
        out = Outcome()
        with self.engine.begin() as conn:
            t = repo.open_transfer(conn, offer.call_sid)
            if t is None or int(t.from_agent_id) != int(offer.agent_id):
                return out
            log.warning("the first agent left during the transfer; it goes on call=%s "
                        "transfer=%s state=%s", t.call_sid, t.id, t.state)
            self._release_first(conn, t, now, out)
            if t.state in ("consulting", "joined"):
                self._complete(conn, t, now, out)
        return out

    def conference_end(self, call_sid: str, params: dict[str, str]) -> Outcome:
        """The caller's ``<Dial><Conference>`` ended (the conference is over: the agent who
        had the call hung up, or the caller did). An open transfer fails (the caller is
        gone, or nobody is left), then the agents' own ending of the current offer."""
        now = self.clock.now()
        out = Outcome()
        with self.engine.begin() as conn:
            t = repo.open_transfer(conn, call_sid)
            if t is not None:
                self._fail(conn, t, "abandoned", now, out, caller_gone=True)
            offers = repo.open_offers(conn, call_sid)
        if not offers:  # nobody of the centre has the call (an outside number had it)
            out.twiml = tx_twiml.hangup()
            return out
        ended = self.agents.agent_dial_ended(
            int(offers[-1].id), call_sid, params.get("DialCallStatus", "completed"),
            params.get("CallStatus", "in-progress"))
        ended.published.extend(out.published)
        ended.after.extend(out.after)
        return ended

    def conference_event(self, call_sid: str, params: dict[str, str]) -> Outcome:
        """A conference status callback: note Twilio's ConferenceSid (participants are
        updated and removed by it); the agent's participant joining (``participant-join``
        of the participant labelled ``agent``) is their answer, as the leg's own
        ``answered`` callback is (whichever comes first counts)."""
        sid = params.get("ConferenceSid")
        offer = None
        with self.engine.begin() as conn:
            row = repo.conference(conn, call_sid)
            if row is not None and sid and row.conference_sid != sid:
                repo.update_conference(conn, call_sid, self.clock.now(), conference_sid=sid)
            if (row is not None and params.get("StatusCallbackEvent") == "participant-join"
                    and params.get("ParticipantLabel") == "agent"):
                offer = agents_repo.open_offer(conn, call_sid)
        if offer is None or offer.answered_at is not None:
            return Outcome()
        return self.first_leg(int(offer.id), {**params, "CallStatus": "in-progress"})

    def waiting_in_conference(self, call_sid: str) -> str:
        """The caller's conference wait/hold URL: the stand-in delivers a pending redirect
        here; else the hold music in the caller's language. Without an account SID the
        stand-in caller also asks while it talks to someone (that is how a redirect reaches
        it): then a bare ``<Pause>`` of the hold round's length, nothing to hear. Twilio
        itself asks only before the conference starts and while the caller is held."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            url = repo.take_redirect(conn, call_sid, now)
            call = get_call(conn, call_sid) or {}
            talking = (url is None and not self.gateway.redirects_by_rest
                       and self._talking(conn, call_sid))
        if url is not None:
            return tx_twiml.redirect(url)
        if talking:
            return tx_twiml.talking(self.settings.hold_poll_seconds)
        return tx_twiml.hold(str(call.get("language") or "he-IL"),
                             self.settings.hold_music_url, self.settings.hold_poll_seconds)

    @staticmethod
    def _talking(conn: Connection, call_sid: str) -> bool:
        """The caller is not held and someone has them: an agent who answered, or the
        outside number a transfer handed them to."""
        conf = repo.conference(conn, call_sid)
        if conf is None or conf.held_at is not None:
            return False
        if any(o.answered_at is not None for o in repo.open_offers(conn, call_sid)):
            return True
        t = repo.last_transfer(conn, call_sid)
        return t is not None and t.kind == "external" and t.state == "completed"

    def back_to_queue(self, call_sid: str, why: str) -> tuple[str, Outcome]:
        """A caller whose transfer failed, back at the head of their queue (their first
        place kept): they hear why, then wait."""
        now = self.clock.now()
        out = Outcome()
        with self.engine.begin() as conn:
            call = get_call(conn, call_sid)
            entry = agents_repo.get_entry(conn, call_sid)
            if call is None or entry is None:
                return tx_twiml.safe(self.settings.safe_queue), out
            if entry.status not in ("waiting", "offered"):
                agents_repo.update_entry(conn, call_sid, status="waiting", agent_id=None,
                                         offered_at=None, connected_at=None, updated_at=now,
                                         last_seen_at=now)
                out.reroute = True
        return tx_twiml.back(str(call["language"] or "he-IL"), why, entry.queue,
                             int(call["step"])), out

    def enter_queue(self, transfer_id: int) -> tuple[str, Outcome]:
        """The caller of a queue transfer reached the target queue (Twilio ran the
        redirect): the move is written now (the first agent wraps up), whatever the
        transfer's state — the caller is here and must be served."""
        now = self.clock.now()
        out = Outcome(reroute=True)
        with self.engine.begin() as conn:
            t = repo.get_transfer(conn, transfer_id)
            if t is None:
                return tx_twiml.safe(self.settings.safe_queue), out
            call = get_call(conn, t.call_sid) or {}
            entry = agents_repo.get_entry(conn, t.call_sid)
            if t.state != "completed":
                for offer in repo.open_offers(conn, t.call_sid):
                    repo.end_offer(conn, offer.id, now, "transferred")
                agents_repo.update_entry(conn, t.call_sid, queue=t.target, status=(
                    "choosing" if t.reason == "closed" else "waiting"), agent_id=None,
                    offered_at=None, connected_at=None, twilio_queue_sid=None,
                    updated_at=now, last_seen_at=now)
                self._release_first(conn, t, now, out)
                repo.move_transfer(conn, t.id, now, state="completed", ended_at=now)
                self._event(conn, t.id, now, out)
                repo.update_conference(conn, t.call_sid, now, held_at=None,
                                       agent_leg_sid=None)
            lang = str(call.get("language") or "he-IL")
            step = int(call.get("step") or 0)
            queue = entry.queue if entry is not None and t.state == "completed" else t.target
        return tx_twiml.enqueue(lang, queue, step), out

    # ------------------------------------------------------------ hold and resume

    def _my_call(self, conn: Connection, agent: dict[str, Any], call_sid: str) -> Any:
        me = agents_repo.me(conn, agent["id"])
        if me is None or me["current_call_sid"] != call_sid:
            raise TransferError(404, "no call of yours with that CallSid")
        if me["state"] != "on_call":
            raise TransferError(409, "you are not on this call yet")
        conf = repo.conference(conn, call_sid)
        if conf is None:
            raise TransferError(409, "this call is not on a conference (IVR_CONFERENCE_CALLS "
                                     "is off): it cannot be held or transferred")
        if not conf.conference_sid and self.gateway.redirects_by_rest:
            raise TransferError(409, "the call's conference has not started yet; try again "
                                     "in a moment")
        return conf

    def _conf_sid(self, conf: Any) -> str:
        return str(conf.conference_sid or conf.name)

    def _hold_url(self, call_sid: str) -> str:
        return f"{self.base}/twilio/conference-wait?c={call_sid}"

    def hold(self, agent: dict[str, Any], call_sid: str, held: bool,
             ) -> tuple[dict[str, Any], Outcome]:
        """Hold (the caller hears the hold music of the queue in their language) or resume.
        Twilio is asked first: a refusal changes nothing (502)."""
        with self.engine.connect() as conn:
            conf = self._my_call(conn, agent, call_sid)
            if repo.open_transfer(conn, call_sid) is not None:
                raise TransferError(409, "a transfer of this call is in progress: cancel it "
                                         "to take the caller back")
            if held and conf.held_at is not None:
                raise TransferError(409, "the caller is on hold already")
            if not held and conf.held_at is None:
                raise TransferError(409, "the caller is not on hold")
        try:
            self._hold_caller(conf, call_sid, held)
        except Exception as exc:
            log.exception("hold/resume refused by Twilio call=%s", call_sid)
            raise TransferError(502, "Twilio did not take the change; the caller is as "
                                     "before") from exc
        now = self.clock.now()
        out = Outcome()
        with self.engine.begin() as conn:
            repo.update_conference(conn, call_sid, now, held_at=now if held else None)
            body = self._hold_event(conn, agent["id"], call_sid, now if held else None, now,
                                    out)
        return body, out

    def _hold_caller(self, conf: Any, call_sid: str, held: bool) -> None:
        changes: dict[str, Any] = {"hold": held}
        if held:
            changes.update(hold_url=self._hold_url(call_sid), hold_method="POST")
        self.gateway.update_participant(self._conf_sid(conf), call_sid, **changes)

    def _hold_event(self, conn: Connection, agent_id: int, call_sid: str,
                    held_at: datetime | None, now: datetime, out: Outcome) -> dict[str, Any]:
        body = {"call_sid": call_sid, "held": held_at is not None,
                "held_at": held_at.isoformat() if held_at else None}
        out.published.append((agent_id, agents_repo.add_event(conn, agent_id, "hold", body,
                                                              now, call_sid)))
        return body

    # ------------------------------------------------------------ targets

    def targets(self, agent: dict[str, Any]) -> dict[str, Any]:
        """Queues (open or closed now, callers waiting, agents free), agents (available
        ones first) and the admin's outside numbers."""
        now = self.clock.now()
        with self.engine.connect() as conn:
            board = agents_repo.queue_board(conn, now)
            people = agents_repo.list_agents(conn)
        names = sorted({q for a in people for q in (a.get("queues") or [])}
                       | {str(q.get("queue") or q.get("name")) for q in board})
        waiting = {str(q.get("queue") or q.get("name")): q for q in board}
        queues = []
        for name in names:
            row = waiting.get(name, {})
            queues.append({"name": name, "open": self._queue_open(name, now),
                           "waiting": int(row.get("waiting") or 0),
                           "available_agents": sum(1 for a in people
                                                   if a["state"] == "available"
                                                   and name in (a.get("queues") or []))})
        others = [{"id": a["id"], "name": a["name"], "state": a["state"],
                   "queues": list(a.get("queues") or []),
                   "available": a["state"] == "available"}
                  for a in people if a["id"] != agent["id"] and a.get("active", True)
                  and (a.get("queues") or a["state"] == "available")]
        others.sort(key=lambda a: (not a["available"], a["name"]))
        external = [{"name": k, "number": v}
                    for k, v in sorted(self.settings.transfer_numbers.items())]
        return {"queues": queues, "agents": others, "external": external}

    def _queue_open(self, queue: str, now: datetime) -> bool:
        """Whether a queue's hours (its callback policy's business hours) are open now."""
        if self.callbacks is None:
            return True
        try:
            return bool(is_open(self.callbacks.policy(queue).business_hours, now))
        except Exception:
            log.exception("queue hours unknown; counted open queue=%s", queue)
            return True

    # ------------------------------------------------------------ transfer

    def transfer(self, agent: dict[str, Any], call_sid: str, kind: str, target: str,
                 mode: str, note: str | None) -> tuple[dict[str, Any], Outcome]:
        """Write the transfer (``pending``), ask Twilio, write the answer. A refusal up
        front changes nothing; a failure of Twilio's brings the caller back to the first
        agent (502)."""
        now = self.clock.now()
        out = Outcome()
        if kind == "queue":
            mode = "cold"
        with self.engine.begin() as conn:
            conf = self._my_call(conn, agent, call_sid)
            if repo.open_transfer(conn, call_sid) is not None:
                raise TransferError(409, "a transfer of this call is already in progress")
            offer = agents_repo.open_offer(conn, call_sid)
            entry = agents_repo.get_entry(conn, call_sid)
            from_queue = entry.queue if entry is not None else (offer.queue if offer else None)
            started = (offer.answered_at or offer.offered_at) if offer is not None else now
            values: dict[str, Any] = {
                "call_sid": call_sid, "kind": kind, "mode": mode, "note": note or None,
                "from_agent_id": agent["id"], "from_queue": from_queue, "state": "pending",
                "after_seconds": int((now - started).total_seconds()), "created_at": now,
                "updated_at": now}
            if kind == "queue":
                if target not in {q["name"] for q in self.targets(agent)["queues"]}:
                    raise TransferError(404, f"no queue named {target!r}")
                closed = not self._queue_open(target, now)
                values.update(target=target, target_name=target,
                              reason="closed" if closed else None)
            elif kind == "agent":
                other = repo.agent_row(conn, int(target)) if target.isdigit() else None
                if other is None or not other.active:
                    raise TransferError(404, "no such agent")
                if other.id == agent["id"]:
                    raise TransferError(422, "you cannot transfer a call to yourself")
                if other.state != "available":
                    what = {"on_call": "is on a call", "reserved": "is taking a call",
                            "wrap_up": "is wrapping up a call",
                            "offline": "is offline"}.get(other.state, other.state)
                    raise TransferError(409, f"{other.name} {what}")
                values.update(target=str(other.id), target_name=other.name,
                              to_agent_id=other.id)
            else:
                numbers = self.settings.transfer_numbers
                name = next((k for k, v in numbers.items() if target in (k, v)), None)
                if name is None:
                    raise TransferError(404, "that number is not in the list of outside "
                                             "numbers (IVR_TRANSFER_NUMBERS)")
                values.update(target=numbers[name], target_name=name)
            transfer_id = repo.add_transfer(conn, **values)
            if kind == "agent":
                to_offer = repo.reserve_agent(conn, int(values["to_agent_id"]), call_sid,
                                              from_queue or "", now)
                if to_offer is None:
                    raise TransferError(409, f"{values['target_name']} is no longer "
                                             "available")
                repo.move_transfer(conn, transfer_id, now, to_offer_id=to_offer)
                self.agents._state_event(conn, int(values["to_agent_id"]), now, out)
                self._pop_second(conn, transfer_id, now, out)
            self._event(conn, transfer_id, now, out)
            from_ = repo.caller_id(conn, call_sid)
            if kind == "queue" and not self.gateway.redirects_by_rest:
                repo.update_conference(conn, call_sid, now,
                                       pending_redirect=tx_twiml.enter_url(transfer_id))
        # Twilio, outside any transaction (the transfer is on record: a crash here leaves
        # a pending row for the sweep).
        try:
            leg = self._ask_twilio(conf, call_sid, kind, mode, transfer_id, values, from_)
        except Exception as exc:
            log.exception("transfer refused by Twilio; the caller stays with the first agent "
                          "call=%s transfer=%s", call_sid, transfer_id)
            undo = Outcome()
            with self.engine.begin() as conn:
                t = repo.get_transfer(conn, transfer_id)
                self._fail(conn, t, "rest-failed", self.clock.now(), undo)
            out.published.extend(undo.published)
            out.after.extend(undo.after)
            detail = ("Twilio did not answer in time" if uncertain(exc)
                      else "Twilio refused the transfer")
            err = TransferError(502, f"{detail}; the caller is back with you")
            err.outcome = out  # type: ignore[attr-defined]
            raise err from exc
        now = self.clock.now()
        with self.engine.begin() as conn:
            # The row is changed first, then read: a status callback of the new leg that
            # came before Twilio's answer to participants.create (an answer within the
            # request's round trip) is in it, and nothing changes it while we hold it.
            if repo.move_transfer(conn, transfer_id, now, only_from=("pending",),
                                  state="ringing", leg_sid=leg):
                if kind != "queue":
                    repo.update_conference(conn, call_sid, now, held_at=now)
                    self._hold_event(conn, agent["id"], call_sid, now, now, out)
                t = repo.get_transfer(conn, transfer_id)
                if mode == "cold" and kind != "queue":
                    self._release_first(conn, t, now, out)
                if t.answered_at is not None:  # it answered already
                    self._answered(conn, t, t.leg_sid or leg, now, out)
                elif t.reason is not None and kind != "queue":  # it failed already
                    self._not_reached(conn, t, t.reason, now, out)
                else:
                    self._event(conn, transfer_id, now, out)
            body = self._body(conn, transfer_id)
        return body, out

    def _ask_twilio(self, conf: Any, call_sid: str, kind: str, mode: str, transfer_id: int,
                    values: dict[str, Any], from_: str) -> str | None:
        conf_sid = self._conf_sid(conf)
        if kind == "queue":
            if self.gateway.redirects_by_rest:
                self.gateway.redirect(call_sid, f"{self.base}{tx_twiml.enter_url(transfer_id)}")
            return None
        # The caller waits on hold; the first agent's leaving no longer ends the conference.
        self._hold_caller(conf, call_sid, True)
        if conf.agent_leg_sid:
            self.gateway.update_participant(conf_sid, conf.agent_leg_sid,
                                            end_conference_on_exit=False)
        if kind == "agent":
            with self.engine.connect() as conn:
                other = repo.agent_row(conn, int(values["to_agent_id"]))
            to = _reach(other.reach_kind, other.reach_target)
        else:
            to = str(values["target"])
        leg = self.gateway.add_participant(
            conference_name(call_sid), to=to, from_=from_,
            status_callback=f"{self.base}/twilio/transfer-leg?t={transfer_id}",
            timeout=self.settings.agent_ring_timeout, end_conference_on_exit=False,
            label=f"transfer-{transfer_id}")
        if mode == "cold" and conf.agent_leg_sid:
            self.gateway.remove_participant(conf_sid, conf.agent_leg_sid)
        return leg

    # ------------------------------------------------------------ the new party's leg

    def transfer_leg(self, transfer_id: int, params: dict[str, str]) -> Outcome:
        """Status callbacks of the new party's leg: answered → consulting (warm) or done
        (cold); not reached, declined, or hung up during the consult → the transfer fails
        and the caller goes back to a person."""
        status = params.get("CallStatus", "")
        leg = params.get("CallSid")
        now = self.clock.now()
        out = Outcome()
        with self.engine.begin() as conn:
            t = repo.get_transfer(conn, transfer_id)
            if t is None:
                return out
            if t.state in ("failed", "canceled") and status in ANSWERED and leg:
                # A leg of a transfer already rolled back (the sweep, a cancel): dropped.
                conf = repo.conference(conn, t.call_sid)
                if conf is not None:
                    out.after.append(self._remove(self._conf_sid(conf), leg))
                return out
            reached = status in ANSWERED
            if t.state == "pending" and (reached or status in NOT_REACHED | {"completed"}):
                # Before Twilio's answer to participants.create was written (the leg
                # answered or failed within the request's round trip): noted, and
                # ``transfer`` goes on from it once it has (the first agent may still hold
                # the call's key, and a cold transfer has not released them yet).
                early: dict[str, Any] = ({"answered_at": now} if reached
                                         else {"reason": self._why_not(t, status)})
                if repo.move_transfer(conn, t.id, now, only_from=("pending",),
                                      leg_sid=leg or t.leg_sid, **early):
                    return out
                t = repo.get_transfer(conn, t.id)  # ``transfer`` wrote it meanwhile
            if t.state == "ringing" and reached:
                self._answered(conn, t, leg or t.leg_sid, now, out)
                return out
            if t.state == "ringing" and status in NOT_REACHED | {"completed"}:
                self._not_reached(conn, t, self._why_not(t, status), now, out)
                return out
            if t.state in ("consulting", "joined") and status == "completed":
                self._fail(conn, t, "hung-up", now, out)
        return out

    @staticmethod
    def _why_not(t: Any, status: str) -> str:
        """Why a new leg that never answered failed (``busy`` from an agent: declined)."""
        if status == "busy" and t.kind == "agent":
            return "declined"
        return status if status in NOT_REACHED else "no-answer"

    def _answered(self, conn: Connection, t: Any, leg: str | None, now: datetime,
                  out: Outcome) -> None:
        """The new party answered: consulting (warm), or the call is theirs (cold, or the
        first agent already left)."""
        repo.move_transfer(conn, t.id, now, state="consulting",
                           answered_at=t.answered_at or now, leg_sid=leg or t.leg_sid)
        if t.to_offer_id is not None:
            agents_repo.update_offer(conn, t.to_offer_id, answered_at=now,
                                     outcome="answered")
            if repo.set_agent(conn, int(t.to_agent_id), "on_call", now, "answered",
                              t.call_sid, key=None, only_from=("reserved",)):
                self.agents._state_event(conn, int(t.to_agent_id), now, out)
            out.published.append((int(t.to_agent_id), agents_repo.add_event(
                conn, int(t.to_agent_id), "call",
                {"call_sid": t.call_sid, "status": "answered"}, now, t.call_sid)))
        t = repo.get_transfer(conn, t.id)
        first = repo.agent_row(conn, int(t.from_agent_id))
        first_gone = first is None or first.current_call_sid != t.call_sid
        if t.mode == "cold" or first_gone:
            self._complete(conn, t, now, out)
        else:
            self._event(conn, t.id, now, out)

    def _not_reached(self, conn: Connection, t: Any, reason: str, now: datetime,
                     out: Outcome) -> None:
        self._fail(conn, repo.get_transfer(conn, t.id), reason, now, out)

    # ------------------------------------------------------------ the first agent's choices

    def act(self, agent: dict[str, Any], transfer_id: int, action: str,
            ) -> tuple[dict[str, Any], Outcome]:
        """``join`` (all three talk), ``handover`` (the first agent leaves), ``cancel`` (the
        new party is dropped, the caller is back with the first agent)."""
        now = self.clock.now()
        out = Outcome()
        with self.engine.begin() as conn:
            t = repo.get_transfer(conn, transfer_id)
            if t is None or int(t.from_agent_id) != int(agent["id"]):
                raise TransferError(404, "no transfer of yours with that id")
            allowed = {"join": ("consulting",), "handover": ("consulting", "joined"),
                       "cancel": ("pending", "ringing", "consulting", "joined")}[action]
            if t.state not in allowed:
                raise TransferError(409, f"the transfer is {t.state}: it cannot be "
                                         f"{'joined' if action == 'join' else action + 'ed'}")
            conf = repo.conference(conn, t.call_sid)
        assert conf is not None
        conf_sid = self._conf_sid(conf)
        if action == "cancel":
            return self._cancel(transfer_id, conf_sid, out)
        try:
            if action == "join":
                self._hold_caller(conf, t.call_sid, False)
            elif action == "handover":
                if t.state == "consulting":
                    self._hold_caller(conf, t.call_sid, False)
                if t.leg_sid:
                    self.gateway.update_participant(conf_sid, t.leg_sid,
                                                    end_conference_on_exit=True)
                if conf.agent_leg_sid:
                    self.gateway.remove_participant(conf_sid, conf.agent_leg_sid)
        except Exception as exc:
            log.exception("%s refused by Twilio transfer=%s", action, transfer_id)
            raise TransferError(502, f"Twilio did not take the {action}; the transfer "
                                     "is as before") from exc
        now = self.clock.now()
        with self.engine.begin() as conn:
            t = repo.get_transfer(conn, transfer_id)
            if action == "join" and t.state == "consulting":
                repo.move_transfer(conn, t.id, now, state="joined")
                repo.update_conference(conn, t.call_sid, now, held_at=None)
                self._hold_event(conn, int(t.from_agent_id), t.call_sid, None, now, out)
                self._event(conn, t.id, now, out)
            elif action == "handover" and t.state in ("consulting", "joined"):
                self._release_first(conn, t, now, out)
                self._complete(conn, t, now, out, unhold=False)
            body = self._body(conn, transfer_id)
        return body, out

    def _cancel(self, transfer_id: int, conf_sid: str, out: Outcome,
                ) -> tuple[dict[str, Any], Outcome]:
        """The cancel is written first, then the new leg is removed (after the commit): the
        leg's ``completed`` status callback finds the transfer canceled, not a party that
        hung up during the consult. It goes on whatever Twilio answers: the caller comes
        back to the first agent."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            t = repo.get_transfer(conn, transfer_id)
            if t.state in repo.OPEN:
                self._fail(conn, t, "canceled", now, out, state="canceled", drop_leg=False)
                if t.leg_sid:  # before the caller is taken off hold
                    out.after.insert(0, self._remove(conf_sid, t.leg_sid))
            body = self._body(conn, transfer_id)
        return body, out

    def get(self, agent: dict[str, Any], transfer_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            t = repo.get_transfer(conn, transfer_id)
            if t is None or (agent["role"] != "admin" and agent["id"] not in (
                    t.from_agent_id, t.to_agent_id)):
                raise TransferError(404, "no such transfer")
            return self._body(conn, transfer_id)

    # ------------------------------------------------------------ the sweep

    def sweep(self) -> Outcome:
        """Transfers written but never confirmed (the process died between writing one
        and Twilio's answer): rolled back — the caller back with the first agent (or the
        queue's head when the first agent is gone). A leg Twilio did create for one is
        removed when its status callback comes (``transfer_leg``)."""
        now = self.clock.now()
        out = Outcome()
        before = now - timedelta(seconds=self.settings.transfer_pending_seconds)
        with self.engine.begin() as conn:
            for t in repo.stale_pending(conn, before):
                log.warning("transfer never confirmed; rolled back call=%s transfer=%s",
                            t.call_sid, t.id)
                self._fail(conn, t, "interrupted", now, out)
        return out

    # ------------------------------------------------------------ shared steps

    def _release_first(self, conn: Connection, t: Any, now: datetime, out: Outcome) -> None:
        """The first agent leaves the call: their offer ends (``transferred``), they wrap
        up (the call's key is given up for the second agent)."""
        for offer in repo.open_offers(conn, t.call_sid):
            if int(offer.agent_id) == int(t.from_agent_id):
                repo.end_offer(conn, offer.id, now, "transferred")
        if repo.set_agent(conn, int(t.from_agent_id), "wrap_up", now, "transferred",
                          t.call_sid, key=None, only_from=("on_call", "reserved")):
            self.agents._state_event(conn, int(t.from_agent_id), now, out)
            out.published.append((int(t.from_agent_id), agents_repo.add_event(
                conn, int(t.from_agent_id), "call",
                {"call_sid": t.call_sid, "status": "transferred"}, now, t.call_sid)))

    def _complete(self, conn: Connection, t: Any, now: datetime, out: Outcome, *,
                  unhold: bool = True) -> None:
        """The new party has the call: the caller off hold, the second agent holds the
        call's key, the queue entry is theirs, the transfer is completed."""
        conf = repo.conference(conn, t.call_sid)
        if t.to_agent_id is not None:
            if repo.set_agent(conn, int(t.to_agent_id), "on_call", now, "transferred",
                              t.call_sid, key=t.call_sid, only_from=("on_call", "reserved")):
                self.agents._state_event(conn, int(t.to_agent_id), now, out)
            agents_repo.update_entry(conn, t.call_sid, agent_id=t.to_agent_id, updated_at=now,
                                     last_seen_at=now)
        else:  # an outside number: the call leaves the centre's agents
            for offer in repo.open_offers(conn, t.call_sid):
                repo.end_offer(conn, offer.id, now, "transferred")
        repo.move_transfer(conn, t.id, now, state="completed", ended_at=now)
        repo.update_conference(conn, t.call_sid, now, held_at=None,
                               agent_leg_sid=t.leg_sid)
        if conf is not None and (unhold or t.mode == "cold"):
            out.after.append(self._unhold(conf, t.call_sid, t.leg_sid))
        self._event(conn, t.id, now, out)

    def _fail(self, conn: Connection, t: Any, reason: str, now: datetime, out: Outcome, *,
              state: str = "failed", caller_gone: bool = False, drop_leg: bool = True,
              ) -> None:
        """End a transfer that did not happen; the caller goes back to a person: the first
        agent if still on the call, else the head of the queue they first joined."""
        if t is None or t.state not in repo.OPEN:
            return
        conf = repo.conference(conn, t.call_sid)
        if t.to_offer_id is not None:
            agents_repo.update_offer(conn, t.to_offer_id, ended_at=now, outcome=(
                "no-answer" if reason == "no-answer" else "canceled"))
            # An agent who did not answer goes offline (as after an unanswered <Dial>);
            # one who declined or was dropped is free again.
            after = "offline" if reason == "no-answer" else "available"
            if repo.set_agent(conn, int(t.to_agent_id), after, now, f"transfer {reason}",
                              t.call_sid, key=None, only_from=("reserved", "on_call")):
                self.agents._state_event(conn, int(t.to_agent_id), now, out)
                out.reroute = out.reroute or after == "available"
        first = repo.agent_row(conn, int(t.from_agent_id))
        first_here = first is not None and first.current_call_sid == t.call_sid \
            and first.state == "on_call"
        back = None if caller_gone else ("first-agent" if first_here else "queue")
        repo.move_transfer(conn, t.id, now, only_from=repo.OPEN, state=state,
                           reason=reason if state == "failed" else None,
                           caller_back_to=back, ended_at=now)
        if conf is not None and drop_leg and t.leg_sid and (
                t.state in ("consulting", "joined") or t.answered_at is not None):
            out.after.append(self._remove(self._conf_sid(conf), t.leg_sid))
        if back == "first-agent" and conf is not None:
            repo.update_conference(conn, t.call_sid, now, held_at=None)
            self._hold_event(conn, int(t.from_agent_id), t.call_sid, None, now, out)
            if t.kind != "queue":
                out.after.append(self._unhold(conf, t.call_sid, conf.agent_leg_sid))
        elif back == "queue":
            for offer in repo.open_offers(conn, t.call_sid):
                repo.end_offer(conn, offer.id, now, "transferred")
            agents_repo.update_entry(conn, t.call_sid, status="waiting", agent_id=None,
                                     offered_at=None, connected_at=None, updated_at=now,
                                     last_seen_at=now)
            self._redirect(conn, t.call_sid, tx_twiml.back_url(t.call_sid, WHY.get(
                reason, "no-answer")), now, out)
            out.reroute = True
        self._event(conn, t.id, now, out)

    def _redirect(self, conn: Connection, call_sid: str, path: str, now: datetime,
                  out: Outcome) -> None:
        """Move the caller out of the conference to ``path``: Twilio's REST API after the
        commit, or the stand-in's next wait/hold request."""
        if self.gateway.redirects_by_rest:
            url = f"{self.base}{path}"

            def go() -> Outcome:
                try:
                    self.gateway.redirect(call_sid, url)
                except Exception:
                    log.exception("the caller could not be moved call=%s url=%s", call_sid,
                                  url)
                return Outcome()
            out.after.append(go)
        else:
            repo.update_conference(conn, call_sid, now, pending_redirect=path)

    def _unhold(self, conf: Any, call_sid: str, agent_leg: str | None,
                ) -> Callable[[], Outcome]:
        """Take the caller off hold; ``agent_leg`` (who has the call now) ends the
        conference again when they leave."""
        conf_sid = self._conf_sid(conf)

        def go() -> Outcome:
            try:
                self.gateway.update_participant(conf_sid, call_sid, hold=False)
                if agent_leg:
                    self.gateway.update_participant(conf_sid, agent_leg,
                                                    end_conference_on_exit=True)
            except Exception:
                log.exception("the caller could not be taken off hold call=%s", call_sid)
            return Outcome()
        return go

    def _remove(self, conf_sid: str, leg: str) -> Callable[[], Outcome]:
        def go() -> Outcome:
            try:
                self.gateway.remove_participant(conf_sid, leg)
            except Exception:
                log.exception("a transfer leg could not be removed leg=%s", leg)
            return Outcome()
        return go

    def _body(self, conn: Connection, transfer_id: int) -> dict[str, Any]:
        t = repo.get_transfer(conn, transfer_id)
        first = repo.agent_row(conn, int(t.from_agent_id))
        second = repo.agent_row(conn, int(t.to_agent_id)) if t.to_agent_id else None
        return {"id": t.id, "call_sid": t.call_sid, "kind": t.kind, "mode": t.mode,
                "target": t.target, "target_name": t.target_name, "state": t.state,
                "reason": t.reason, "note": t.note,
                "from_agent": {"id": first.id, "name": first.name} if first else None,
                "to_agent": {"id": second.id, "name": second.name} if second else None,
                "from_queue": t.from_queue, "created_at": t.created_at.isoformat(),
                "updated_at": t.updated_at.isoformat(), "caller_back_to": t.caller_back_to}

    def _event(self, conn: Connection, transfer_id: int, now: datetime, out: Outcome) -> None:
        """A ``transfer`` event to the first agent and to the target agent."""
        body = {"transfer": self._body(conn, transfer_id)}
        t = body["transfer"]
        for who in {t["from_agent"]["id"] if t["from_agent"] else None,
                    t["to_agent"]["id"] if t["to_agent"] else None} - {None}:
            assert who is not None
            out.published.append((who, agents_repo.add_event(conn, who, "transfer", body,
                                                             now, t["call_sid"])))

    # ------------------------------------------------------------ the second agent's pop

    def _pop_second(self, conn: Connection, transfer_id: int, now: datetime, out: Outcome,
                    ) -> None:
        """The second agent's screen-pop: the usual pop plus who transferred it, from
        where, after how long, and the note (``pop_fields``)."""
        t = repo.get_transfer(conn, transfer_id)
        ctx = self.agents.build_context(conn, t.call_sid, now)
        ctx["offer_id"] = t.to_offer_id
        ctx["status"] = "ringing"
        out.published.append((int(t.to_agent_id), agents_repo.add_event(
            conn, int(t.to_agent_id), "screenpop", ctx, now, t.call_sid)))

    # ------------------------------------------------------------ the history

    def agent_label(self, conn: Connection, call_sid: str, agent: str, now: datetime,
                    ) -> str:
        """The interaction's ``agent`` of a transferred call: both legs with how long
        each lasted, and the transfer — "Noa Mizrahi 4 min → Avi Ben-David 6 min (warm
        transfer)" — so the history shows one call, not two strangers. Each agent's
        wrap-up writes it (the later one with both legs ended)."""
        done = [t for t in repo.call_transfers(conn, call_sid) if t.state == "completed"]
        legs = repo.answered_legs(conn, call_sid)
        if not done or len(legs) < 2:
            return agent
        parts = []
        for leg in legs:
            seconds = ((leg.ended_at or now) - leg.answered_at).total_seconds()
            parts.append(f"{leg.name} {max(1, round(seconds / 60))} min")
        last = done[-1]
        how = (f"to {last.target_name}" if last.kind != "agent" else f"{last.mode}")
        label = " → ".join(parts) + f" ({how} transfer)"
        return label if len(label) <= 128 else label[:127] + "…"

    # ------------------------------------------------------------ the supervisor

    def listen_in(self, supervisor: dict[str, Any], call_sid: str, barge: bool,
                  ) -> tuple[dict[str, Any], Outcome]:
        """A supervisor joins a call's conference as a participant: muted (monitor: they
        hear caller and agent) or not (barge: all hear them)."""
        with self.engine.connect() as conn:
            conf = repo.conference(conn, call_sid)
            entry = agents_repo.get_entry(conn, call_sid)
            if conf is None or entry is None or entry.status != "connected":
                raise TransferError(404, "no connected call on a conference with that CallSid")
            if not conf.conference_sid and self.gateway.redirects_by_rest:
                raise TransferError(409, "the call's conference has not started yet")
            me = repo.agent_row(conn, int(supervisor["id"]))
            from_ = repo.caller_id(conn, call_sid)
        try:
            leg = self.gateway.add_participant(
                conference_name(call_sid), to=_reach(me.reach_kind, me.reach_target),
                from_=from_, status_callback=f"{self.base}/twilio/conference-events?c="
                f"{call_sid}", timeout=self.settings.agent_ring_timeout,
                end_conference_on_exit=False, label="barge" if barge else "monitor",
                muted=not barge)
        except Exception as exc:
            log.exception("supervisor could not join call=%s", call_sid)
            raise TransferError(502, "Twilio did not add you to the call") from exc
        log.info("supervisor %s %s call=%s", supervisor["id"],
                 "barged into" if barge else "monitors", call_sid)
        return {"call_sid": call_sid, "mode": "barge" if barge else "monitor",
                "leg_sid": leg}, Outcome()

    # ------------------------------------------------------------ the supervisor's board

    def board_fields(self, conn: Connection, board: dict[str, Any]) -> None:
        """Each agent's call on the supervisor's board gains ``held`` and ``transfer``."""
        agents = board.get("agents") or []
        held = repo.held_calls(conn, [a["current_call_sid"] for a in agents
                                      if a.get("current_call_sid")])
        open_ = repo.open_by_agent(conn, [int(a["id"]) for a in agents])
        for a in agents:
            if a.get("call") is None:
                continue
            t = open_.get(int(a["id"]))
            a["call"]["held"] = a.get("current_call_sid") in held
            a["call"]["transfer"] = None if t is None else {
                "id": t.id, "state": t.state, "mode": t.mode, "kind": t.kind,
                "target_name": t.target_name}
