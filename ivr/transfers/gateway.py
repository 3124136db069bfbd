"""The participants of a call's conference, as Twilio's REST API changes them.

* ``TwilioConferences`` (an account SID): ``client.conferences(…).participants`` through
  the twilio package — create (by the conference's friendly name: Twilio creates the
  conference if it is not there yet), update (``hold``/``hold_url``,
  ``end_conference_on_exit``, ``muted``, ``coaching``/``call_sid_to_coach``), delete — and
  ``client.calls(CallSid).update(url=…)`` to move a caller out of the conference.
* ``LocalConferences`` (no account: the demo, the simulator, tests): the same operations
  kept in memory, taking the same arguments Twilio's API takes and refusing what it would
  refuse; a caller is moved through its conference's wait/hold URL, which the stand-in
  caller polls (the way the hold loop's ``<Leave/>`` stands in for the Queue Members REST):
  ``redirects_by_rest`` is False and the service answers ``<Redirect>`` there. With a
  ``LocalParty`` (``ivr.transfers.local_party``) whoever it rings for a transfer or a
  supervisor answers with Twilio's signed status callbacks; the first agent's own leg
  (label ``agent``) is the simulated caller's to answer.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from ivr.core.twilio_rest import twilio_client
from ivr.transfers.local_party import LocalParty

log = logging.getLogger(__name__)


class ConferenceGateway(Protocol):
    #: False: a caller leaves the conference through its wait/hold URL (the stand-in).
    redirects_by_rest: bool

    def add_participant(self, conference: str, *, to: str, from_: str, status_callback: str,
                        timeout: int, end_conference_on_exit: bool,
                        label: str, muted: bool = False) -> str:
        """Ring ``to`` into the conference (``muted``: listens only); the new leg's
        CallSid. May raise."""
        ...

    def update_participant(self, conference_sid: str, call_sid: str, **changes: Any) -> None:
        """``hold``, ``hold_url``, ``hold_method``, ``end_conference_on_exit``, ``muted``,
        ``coaching``, ``call_sid_to_coach``, as Twilio names them. May raise."""
        ...

    def remove_participant(self, conference_sid: str, call_sid: str) -> None: ...

    def redirect(self, call_sid: str, url: str) -> None:
        """Run ``url``'s TwiML on the call (it leaves its conference). May raise."""
        ...


#: The participant update parameters Twilio's API takes (the others it refuses).
UPDATABLE = {"hold", "hold_url", "hold_method", "end_conference_on_exit", "muted",
             "coaching", "call_sid_to_coach", "announce_url", "announce_method",
             "beep_on_exit", "wait_url", "wait_method"}


class TwilioConferences:
    redirects_by_rest = True

    def __init__(self, account_sid: str, auth_token: str, *, http_client: Any = None,
                 api_base_url: str | None = None) -> None:
        self.client = twilio_client(account_sid, auth_token, http_client=http_client,
                                    api_base_url=api_base_url)

    def add_participant(self, conference: str, *, to: str, from_: str, status_callback: str,
                        timeout: int, end_conference_on_exit: bool, label: str,
                        muted: bool = False) -> str:
        p = self.client.conferences(conference).participants.create(
            from_=from_, to=to, label=label, timeout=timeout, beep="false", muted=muted,
            start_conference_on_enter=True, end_conference_on_exit=end_conference_on_exit,
            status_callback=status_callback, status_callback_method="POST",
            status_callback_event=["ringing", "answered", "completed"])
        return str(p.call_sid)

    def update_participant(self, conference_sid: str, call_sid: str, **changes: Any) -> None:
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise ValueError(f"not a participant update parameter: {sorted(unknown)}")
        self.client.conferences(conference_sid).participants(call_sid).update(**changes)

    def remove_participant(self, conference_sid: str, call_sid: str) -> None:
        self.client.conferences(conference_sid).participants(call_sid).delete()

    def redirect(self, call_sid: str, url: str) -> None:
        self.client.calls(call_sid).update(url=url, method="POST")


@dataclass
class Participant:
    call_sid: str
    to: str
    label: str
    end_conference_on_exit: bool
    status_callback: str
    hold: bool = False
    hold_url: str | None = None
    muted: bool = False
    coaching: bool = False
    call_sid_to_coach: str | None = None


@dataclass
class LocalConference:
    name: str
    sid: str
    participants: dict[str, Participant] = field(default_factory=dict)


class LocalConferences:
    """The stand-in: conferences and participants in memory, every operation logged in
    ``ops`` as ``(operation, conference, call_sid, arguments)``. ``fail``: the next
    operations of those names raise (a refused or timed-out request). ``party``: who
    answers the participants it rings (none: the tests post their status callbacks)."""

    redirects_by_rest = False
    #: The first agent's participant: answered by the simulated caller, not the party.
    FIRST_AGENT = "agent"

    def __init__(self, party: LocalParty | None = None) -> None:
        self.party = party
        self.conferences: dict[str, LocalConference] = {}
        self.ops: list[tuple[str, str, str, dict[str, Any]]] = []
        self.fail: dict[str, BaseException] = {}
        self._lock = threading.Lock()

    def _failing(self, op: str) -> None:
        exc = self.fail.pop(op, None)
        if exc is not None:
            raise exc

    def conference(self, name_or_sid: str) -> LocalConference:
        with self._lock:
            for c in self.conferences.values():
                if name_or_sid in (c.name, c.sid):
                    return c
            c = LocalConference(name_or_sid, "CF" + uuid.uuid5(
                uuid.NAMESPACE_URL, name_or_sid).hex)
            self.conferences[name_or_sid] = c
            return c

    def add_participant(self, conference: str, *, to: str, from_: str, status_callback: str,
                        timeout: int, end_conference_on_exit: bool, label: str,
                        muted: bool = False) -> str:
        if not to or not from_:
            raise ValueError("participants.create needs From and To")
        self._failing("add")
        sid = "CA" + uuid.uuid4().hex
        self.conference(conference).participants[sid] = Participant(
            sid, to, label, end_conference_on_exit, status_callback, muted=muted)
        self.ops.append(("add", conference, sid, {"to": to, "from": from_, "label": label,
                                                  "timeout": timeout,
                                                  "end_conference_on_exit":
                                                      end_conference_on_exit,
                                                  "status_callback": status_callback,
                                                  "muted": muted}))
        if self.party is not None and label != self.FIRST_AGENT:
            self.party.ring(sid, to=to, from_=from_, status_callback=status_callback)
        return sid

    def update_participant(self, conference_sid: str, call_sid: str, **changes: Any) -> None:
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise ValueError(f"not a participant update parameter: {sorted(unknown)}")
        self._failing("update")
        p = self.conference(conference_sid).participants.setdefault(
            call_sid, Participant(call_sid, "", "caller", True, ""))
        for k, v in changes.items():
            if hasattr(p, k):
                setattr(p, k, v)
        self.ops.append(("update", conference_sid, call_sid, dict(changes)))

    def remove_participant(self, conference_sid: str, call_sid: str) -> None:
        self._failing("remove")
        self.conference(conference_sid).participants.pop(call_sid, None)
        self.ops.append(("remove", conference_sid, call_sid, {}))
        if self.party is not None:
            self.party.hang_up(call_sid)

    def redirect(self, call_sid: str, url: str) -> None:
        self._failing("redirect")
        self.ops.append(("redirect", "", call_sid, {"url": url}))

    def sid_of(self, name: str) -> str:
        return self.conference(name).sid
