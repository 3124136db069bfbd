"""Twilio's part in calls that reach agents: signed posts, TwiML followed to the letter.

Works against the in-process TestClient and a live server (an httpx.Client), so the routing
tests, the browser test and the benchmark drive calls the same way.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

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


class TwilioDriver:
    def __init__(self, client: Any, base_url: str, token: str) -> None:
        self.client = client
        self.base = base_url.rstrip("/")
        self.validator = RequestValidator(token)
        self.calls: dict[str, CallLeg] = {}

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

    def connect(self, sid: str) -> str:
        """The routed caller is released by the wait loop (``<Leave/>``) and Twilio requests
        the Enqueue action: the answer dials the agent (the screen-pop is pushed now)."""
        xml = self.wait(sid, 5)
        if ET.fromstring(xml).find("Leave") is None:
            raise AssertionError(f"the caller was not released for an agent: {xml}")
        return self.leave(sid)

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

    def agent_answers(self, sid: str) -> str:
        leg = self.calls[sid]
        assert leg.leg_callback, "no agent leg"
        return self.post(leg.leg_callback, self.params(
            leg, CallSid=leg.agent_leg_sid, ParentCallSid=leg.sid, CallStatus="in-progress",
            Direction="outbound-dial", CallbackSource="call-progress-events"))

    def agent_does_not_answer(self, sid: str, status: str = "no-answer") -> str:
        """The Dial to the agent ends unanswered: the answer puts the caller back in the
        queue, whose wait experience is requested again."""
        leg = self.calls[sid]
        assert leg.dial_action
        xml = self.post(leg.dial_action, self.params(leg, DialCallStatus=status,
                                                     DialCallSid=leg.agent_leg_sid))
        root = self._follow(leg, xml)
        if root.find("Enqueue") is None:
            raise AssertionError(f"the caller was not put back in a queue: {xml}")
        self.wait(sid, 0)
        return xml

    def hang_up(self, sid: str, talked: int = 60) -> str:
        """The conversation ends: the Dial action, then the call's final status."""
        leg = self.calls[sid]
        assert leg.dial_action
        xml = self.post(leg.dial_action, self.params(
            leg, DialCallStatus="completed", DialCallSid=leg.agent_leg_sid,
            DialCallDuration=str(talked)))
        self.post("/twilio/status", self.params(leg, CallStatus="completed",
                                                CallDuration=str(talked + 30),
                                                SequenceNumber="9"))
        return xml

    def caller_hangs_up(self, sid: str) -> None:
        leg = self.calls[sid]
        self.post("/twilio/status", self.params(leg, CallStatus="completed",
                                                CallDuration="40", SequenceNumber="9"))
