"""The stand-in's called party (no account SID: the demo, ``ivr simulate``): whoever
``LocalConferences`` rings into a call's conference for a transfer (the second agent, an
outside number) or for a supervisor (monitor, barge) "picks up" here. Like
``callbacks.local_dialer`` it posts to this server's own URL what Twilio would post to the
participant's ``status_callback``, signed as Twilio signs: ``ringing``, then after
``ring_seconds`` the answer (``in-progress``, as Twilio sends for the ``answered`` event),
and ``completed`` once the participant is removed. Off the request thread: every call's
callbacks are posted by a thread of their own, after the request that rang it returned.

The first agent's own leg (the participant labelled ``agent``) is never answered here:
``ivr simulate`` plays it, with the conference's ``participant-join`` (as it plays a
``<Dial>``'s answer with ``--dial-status completed``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
from twilio.request_validator import RequestValidator

log = logging.getLogger(__name__)

#: The account the stand-in's requests name (nothing checks it: there is no account).
ACCOUNT_SID = "AC" + "0" * 32
#: What a called party answers: in-progress (picks up), or why it never did.
ANSWERS = ("in-progress", "no-answer", "busy", "failed")

Post = Callable[[str, dict[str, str], dict[str, str]], Any]


def _post_over_http(url: str, data: dict[str, str], headers: dict[str, str]) -> Any:
    with httpx.Client(timeout=10) as client:
        r = client.post(url, data=data, headers=headers)
        r.raise_for_status()
        return r


def _thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="local-party", daemon=True).start()


@dataclass
class Leg:
    call_sid: str
    to: str
    from_: str
    status_callback: str
    answered_at: float | None = None
    sequence: int = 0


class LocalParty:
    """``ring`` (a participant was created) and ``hang_up`` (it was removed).

    ``answer(to)``: what the party called ``to`` answers (default: it picks up).
    ``post``: how a callback reaches the server (default: HTTP to its URL); ``spawn``:
    where the callbacks run (default: a thread per call; tests may defer them);
    ``sleep`` and ``monotonic``: the ring and the call's duration; ``now``: the
    ``Timestamp`` of each callback."""

    def __init__(self, auth_token: str, ring_seconds: float, *,
                 answer: Callable[[str], str] = lambda _to: "in-progress",
                 post: Post = _post_over_http,
                 spawn: Callable[[Callable[[], None]], None] = _thread,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if ring_seconds < 0:
            raise ValueError("ring_seconds cannot be negative")
        self.validator = RequestValidator(auth_token)
        self.ring_seconds = ring_seconds
        self.answer = answer
        self._post = post
        self._spawn = spawn
        self._sleep = sleep
        self._monotonic = monotonic
        self._now = now
        self._legs: dict[str, Leg] = {}
        self._lock = threading.Lock()
        #: ``(CallSid, CallStatus, url)`` of every callback posted (and accepted).
        self.posted: list[tuple[str, str, str]] = []

    def ring(self, call_sid: str, *, to: str, from_: str, status_callback: str) -> None:
        leg = Leg(call_sid, to, from_, status_callback)
        with self._lock:
            self._legs[call_sid] = leg
        self._spawn(lambda: self._ring(leg))

    def hang_up(self, call_sid: str) -> None:
        """The participant was removed: an answered leg's call is ``completed``."""
        with self._lock:
            leg = self._legs.pop(call_sid, None)
        if leg is not None and leg.answered_at is not None:
            self._spawn(lambda: self._send(leg, "completed", CallDuration=str(
                int(self._monotonic() - (leg.answered_at or 0.0)))))

    # -- the called party's side, as Twilio posts it

    def _ring(self, leg: Leg) -> None:
        self._send(leg, "ringing")
        self._sleep(self.ring_seconds)
        status = self.answer(leg.to)
        if status == "in-progress":
            leg.answered_at = self._monotonic()
            self._send(leg, "in-progress")
        else:
            with self._lock:
                self._legs.pop(leg.call_sid, None)
            self._send(leg, status, CallDuration="0")

    def _send(self, leg: Leg, status: str, **extra: str) -> None:
        params = {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01",
                  "CallSid": leg.call_sid, "CallStatus": status,
                  "Direction": "outbound-api", "From": leg.from_, "Caller": leg.from_,
                  "To": leg.to, "Called": leg.to, "CallbackSource": "call-progress-events",
                  "SequenceNumber": str(leg.sequence),
                  "Timestamp": format_datetime(self._now().astimezone(UTC)), **extra}
        leg.sequence += 1
        headers = {"X-Twilio-Signature": self.validator.compute_signature(
            leg.status_callback, params)}
        try:
            self._post(leg.status_callback, params, headers)
            self.posted.append((leg.call_sid, status, leg.status_callback))
        except Exception:
            log.exception("local party: the %s callback was not taken call=%s", status,
                          leg.call_sid)
