"""Twilio's part in calls that reach agents: signed posts, TwiML followed to the letter.

Works against the in-process TestClient and a live server (an httpx.Client), so the routing
tests, the browser test and the benchmark drive calls the same way.

A connected caller meets the agent either on the call's ``<Conference>`` (the default,
``IVR_CONFERENCE_CALLS``: the agent is rung in by the Participants REST, here the server's
``LocalConferences`` stand-in) or through ``<Dial><Client>`` to the agent. The driver
follows both as Twilio does: on a conference, the agent's answer is the conference's
``participant-join`` of the participant labelled ``agent``, an unanswered agent is their
participant's status callback (and the caller leaves the conference through its wait URL
or the REST redirect), and the end of the conversation is the ``<Dial action>``
(``conference-end``) with ``DialCallStatus=completed``.
"""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from twilio.request_validator import RequestValidator

ACCOUNT = "AC" + "0" * 32
QUEUE_SID = "QU" + "1" * 32


def _sid() -> str:
    return "CA" + uuid.uuid4().hex


@dataclass
class CallLeg:
    sid: str
    from_number: str
    queue: str | None = None
    enqueue_action: str | None = None
    wait_url: str | None = None
    dial_action: str | None = None
    leg_callback: str | None = None
    agent_leg_sid: str = field(default_factory=_sid)
    waited: int = 0
    last_twiml: str = ""
    #: The call's conference (its name, status callback and wait URL) once the caller was
    #: connected on one; None after a ``<Dial>`` to the agent.
    conference: str | None = None
    conference_events: str | None = None
    conference_wait: str | None = None


def conference_sid(name: str) -> str:
    """The ConferenceSid Twilio gives the conference of that name (as the stand-in does)."""
    return "CF" + uuid.uuid5(uuid.NAMESPACE_URL, name).hex


def stand_in_of(app: Any) -> Any:
    """The participants stand-in (``LocalConferences``) of an app, or None (an account SID:
    the real REST API, or the app is in another process)."""
    try:
        gateway = app.state.web.services.transfers.gateway
    except AttributeError:
        return None
    return gateway if hasattr(gateway, "ops") else None


def path_of(url: str) -> str:
    """A URL the server gave Twilio, as a path on the server the driver posts to."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class TwilioDriver:
    def __init__(self, client: Any, base_url: str, token: str, *,
                 conferences: Any = None) -> None:
        self.client = client
        self.base = base_url.rstrip("/")
        self.validator = RequestValidator(token)
        self.calls: dict[str, CallLeg] = {}
        #: The server's participants stand-in (``LocalConferences``): the agent's
        #: participant as the server created it (its CallSid, its status callback). Found
        #: on an in-process app (a TestClient's) when not given.
        self.conferences = (conferences if conferences is not None
                            else stand_in_of(getattr(client, "app", None)))
        #: Seconds of further wait rounds before a caller counts as not released
        #: (``connect``): none in process, where a request's routing pass has run when its
        #: answer returns; a real server routes after the answer is sent.
        self.patience = 0.0 if getattr(client, "app", None) is not None else 5.0

    # -- plumbing

    def post(self, url: str, params: dict[str, str]) -> str:
        full = url if url.startswith("http") else urljoin(self.base + "/", url.lstrip("/"))
        signature = self.validator.compute_signature(full, params)
        path = full[len(self.base):]
        r = self.client.post(path, data=params, headers={"X-Twilio-Signature": signature})
        if r.status_code != 200:
            raise AssertionError(f"{path}: HTTP {r.status_code} {r.text[:200]}")
        return str(r.text)

    def params(self, leg: CallLeg, **extra: str) -> dict[str, str]:
        return {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "CallSid": leg.sid,
                "CallStatus": "in-progress", "Direction": "inbound", "From": leg.from_number,
                "Caller": leg.from_number, "To": "+97235550100", "Called": "+97235550100",
                "FromCountry": "IL", "ToCountry": "IL", **extra}

    def _follow(self, leg: CallLeg, xml: str) -> ET.Element:
        leg.last_twiml = xml
        root = ET.fromstring(xml)
        if root.tag != "Response":
            raise AssertionError(f"not TwiML: {xml[:200]}")
        enqueue = root.find("Enqueue")
        if enqueue is not None:
            leg.queue = (enqueue.text or "").strip()
            leg.enqueue_action = enqueue.get("action")
            leg.wait_url = enqueue.get("waitUrl")
        dial = root.find("Dial")
        if dial is not None:
            leg.dial_action = dial.get("action")
            noun = next(iter(dial), None)
            leg.leg_callback = noun.get("statusCallback") if noun is not None else None
            leg.conference = leg.conference_events = leg.conference_wait = None
            if noun is not None and noun.tag == "Conference":
                leg.conference = (noun.text or "").strip()
                leg.conference_events = leg.leg_callback
                leg.conference_wait = noun.get("waitUrl")
        return root

    # -- the call

    def start(self, from_number: str, keys: list[str]) -> str:
        """A call comes in; the caller presses ``keys`` at each menu until a queue, and the
        queue's wait experience is requested once (the caller joins the routing queue)."""
        leg = CallLeg(_sid(), from_number)
        self.calls[leg.sid] = leg
        root = self._follow(leg, self.post("/twilio/voice",
                                           self.params(leg, CallStatus="ringing")))
        pending = list(keys)
        for _ in range(20):
            if root.find("Enqueue") is not None:
                break
            gather = root.find("Gather")
            if gather is None:
                raise AssertionError(f"the call ended before a queue: {leg.last_twiml}")
            digits = pending.pop(0) if pending else ""
            root = self._follow(leg, self.post(gather.get("action") or "",
                                               self.params(leg, Digits=digits)))
        self.wait(leg.sid)
        return leg.sid

    def wait(self, sid: str, seconds: int = 0) -> str:
        """One round of the queue's wait experience (Twilio's waitUrl)."""
        leg = self.calls[sid]
        leg.waited += seconds
        assert leg.wait_url, "not in a queue"
        xml = self.post(leg.wait_url, self.params(
            leg, QueueSid=QUEUE_SID, QueuePosition="1", QueueTime=str(leg.waited),
            AvgQueueTime="0", CurrentQueueSize="1", MaxQueueSize="100"))
        leg.last_twiml = xml
        return xml

    def connect(self, sid: str, *, patience: float | None = None) -> str:
        """The routed caller is released by the wait loop (``<Leave/>``) and Twilio requests
        the Enqueue action: the answer dials the agent (the screen-pop is pushed now).

        In process (a test client) the routing pass a request asks for has run when its
        answer returns, so one round must release the caller. A real server routes after
        the answer is sent: ``patience`` seconds of further rounds (Twilio's loop comes back
        after each pause; here every 20 ms) before the caller counts as not released
        (default: the driver's, by its client)."""
        deadline = time.monotonic() + (self.patience if patience is None else patience)
        while True:
            xml = self.wait(sid, 5)
            if ET.fromstring(xml).find("Leave") is not None:
                return self.leave(sid)
            if time.monotonic() >= deadline:
                raise AssertionError(f"the caller was not released for an agent: {xml}")
            time.sleep(0.02)

    def leave(self, sid: str) -> str:
        leg = self.calls[sid]
        assert leg.enqueue_action
        xml = self.post(leg.enqueue_action, self.params(
            leg, QueueResult="leave", QueueSid=QUEUE_SID, QueueTime=str(leg.waited)))
        root = self._follow(leg, xml)
        if root.find("Dial") is None:
            raise AssertionError(f"no <Dial> to the agent: {xml}")
        return xml

    def redirected(self, sid: str, url: str) -> str:
        """Twilio's side of a REST dequeue: the Enqueue action (QueueResult=redirected),
        then the member's new URL."""
        leg = self.calls[sid]
        assert leg.enqueue_action
        self.post(leg.enqueue_action, self.params(leg, QueueResult="redirected",
                                                  QueueSid=QUEUE_SID, QueueTime="5"))
        xml = self.post(url, self.params(leg))
        self._follow(leg, xml)
        return xml

    def agent_participant(self, sid: str) -> tuple[str, str] | None:
        """The agent's participant the server rang into the call's conference (its CallSid
        and status callback), as the stand-in recorded ``participants.create``; None when
        the driver cannot see the stand-in (a server in another process). A server rings
        once the connect's answer is sent: a live one gets the driver's ``patience``."""
        leg = self.calls[sid]
        if self.conferences is None or leg.conference is None:
            return None
        deadline = time.monotonic() + self.patience
        while True:
            adds = [op for op in list(self.conferences.ops) if op[0] == "add"
                    and op[1] == leg.conference and op[3]["label"] == "agent"]
            if adds:
                return adds[-1][2], adds[-1][3]["status_callback"]
            if time.monotonic() >= deadline:
                raise AssertionError(f"no agent participant created for {leg.conference}")
            time.sleep(0.01)

    def agent_answers(self, sid: str) -> str:
        """The agent answers: their leg's ``answered`` status callback after a ``<Dial>``;
        on a conference, the conference's ``participant-join`` of the agent's participant
        (labelled ``agent``), as Twilio posts it to the conference's status callback."""
        leg = self.calls[sid]
        assert leg.leg_callback, "no agent leg"
        if leg.conference is None:
            return self.post(leg.leg_callback, self.params(
                leg, CallSid=leg.agent_leg_sid, ParentCallSid=leg.sid,
                CallStatus="in-progress", Direction="outbound-dial",
                CallbackSource="call-progress-events"))
        participant = self.agent_participant(sid)
        if participant is not None:
            leg.agent_leg_sid = participant[0]
        return self.conference_event(sid, "participant-join", CallSid=leg.agent_leg_sid,
                                     ParticipantLabel="agent", EndConferenceOnExit="true",
                                     StartConferenceOnEnter="true")

    def conference_event(self, sid: str, event: str, **extra: str) -> str:
        """One of the call's conference status callbacks (``StatusCallbackEvent``)."""
        leg = self.calls[sid]
        assert leg.conference and leg.conference_events, "not on a conference"
        return self.post(leg.conference_events, {
            "AccountSid": ACCOUNT, "ConferenceSid": conference_sid(leg.conference),
            "FriendlyName": leg.conference, "StatusCallbackEvent": event,
            "Timestamp": "Mon, 23 Nov 2026 10:00:00 +0000", "SequenceNumber": "1",
            "CallSid": leg.sid, "Muted": "false", "Hold": "false", "Coaching": "false",
            "EndConferenceOnExit": "true", "StartConferenceOnEnter": "false", **extra})

    def agent_does_not_answer(self, sid: str, status: str = "no-answer") -> str:
        """The agent's leg ends unanswered: the answer puts the caller back in the queue,
        whose wait experience is requested again. After a ``<Dial>``: its action with
        ``DialCallStatus``. On a conference: the agent participant's status callback; the
        caller, still in the conference, is moved out by the server (the stand-in's next
        wait-URL round answers ``<Redirect>``; with the REST, ``calls(sid).update(url)``)
        to the head of the queue."""
        leg = self.calls[sid]
        if leg.conference is None:
            assert leg.dial_action
            xml = self.post(leg.dial_action, self.params(leg, DialCallStatus=status,
                                                         DialCallSid=leg.agent_leg_sid))
        else:
            participant = self.agent_participant(sid)
            if participant is None:
                raise AssertionError("an unanswered participant needs the stand-in's "
                                     "participants (pass conferences=)")
            leg.agent_leg_sid, callback = participant
            self.post(path_of(callback), self.params(
                leg, CallSid=leg.agent_leg_sid, CallStatus=status,
                Direction="outbound-api"))
            xml = self.moved(sid)
        root = self._follow(leg, xml)
        if root.find("Enqueue") is None:
            raise AssertionError(f"the caller was not put back in a queue: {xml}")
        self.wait(sid, 0)
        return xml

    def moved(self, sid: str) -> str:
        """The server moves the caller out of their conference: the TwiML they get. The
        stand-in: the next round of the wait URL answers ``<Redirect>``, followed; the REST
        (``redirects_by_rest``): the URL of the server's last ``calls(sid).update``."""
        leg = self.calls[sid]
        assert leg.conference_wait, "not on a conference"
        if getattr(self.conferences, "redirects_by_rest", False):
            urls = [op[3]["url"] for op in list(self.conferences.ops)
                    if op[0] == "redirect" and op[2] == sid]
            assert urls, "the server did not move the caller"
            return self.post(path_of(urls[-1]), self.params(leg))
        root = ET.fromstring(self.post(leg.conference_wait, self.params(leg)))
        url = root.findtext("Redirect")
        if not url:
            raise AssertionError(f"the caller was not moved: {ET.tostring(root)!r}")
        return self.post(path_of(url), self.params(leg))

    def dial_ends(self, sid: str, talked: int = 60, call_status: str = "in-progress") -> str:
        """The agent hangs up (``call_status``: the caller's, ``completed`` when they hung
        up first): Twilio requests the ``<Dial action>`` — after a ``<Dial>``, with the
        agent leg's ``DialCallStatus`` and ``DialCallSid``; on a conference,
        ``conference-end`` once the conference is over (the agent ended it on leaving)."""
        leg = self.calls[sid]
        assert leg.dial_action
        dial = {"DialCallStatus": "completed", "DialCallDuration": str(talked)}
        if leg.conference is None:
            dial["DialCallSid"] = leg.agent_leg_sid
        return self.post(leg.dial_action, self.params(leg, CallStatus=call_status, **dial))

    def hang_up(self, sid: str, talked: int = 60) -> str:
        """The conversation ends: the Dial action (``dial_ends``), then the call's final
        status."""
        leg = self.calls[sid]
        xml = self.dial_ends(sid, talked)
        self.post("/twilio/status", self.params(leg, CallStatus="completed",
                                                CallDuration=str(talked + 30),
                                                SequenceNumber="9"))
        return xml

    def caller_hangs_up(self, sid: str) -> None:
        leg = self.calls[sid]
        self.post("/twilio/status", self.params(leg, CallStatus="completed",
                                                CallDuration="40", SequenceNumber="9"))
