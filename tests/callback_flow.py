"""Twilio's part in callbacks: the wait loop's offer, the dialog, and the outbound call
(answer URL, status callbacks, the agent leg, the Dial action), as signed posts that follow
the TwiML. ``RecordingDialer`` stands in for ``calls.create``: it records each call placed
and the test plays Twilio's side of it."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime

from tests.agent_flow import QUEUE_SID, TwilioDriver

OPEN_ALL_WEEK = """\
# callbacks.yaml for tests on the real clock: open at every hour, no holidays, no quiet
# hours; otherwise the repository's policy.
default:
  business_hours:
    timezone: Asia/Jerusalem
    weekly:
{days}
  deadline: {{premium: 15m, business: 1h, standard: 2h, default: 2h}}
  scheduled_horizon: 7d
  max_attempts: 3
  retry_backoff: [2m, 10m, 30m]
  warn_at: 0.8
  fallback_handle_time: 5m
  scheduled_window: 30m
  offer:
    enabled: true
    threshold: 2m
    closing_within: 30m
    scheduled: true
    hours: ["00:00-24:00"]
    repeat_every: 1m
""".format(days="\n".join(f'      {d}: ["00:00-24:00"]'
                          for d in ("sun", "mon", "tue", "wed", "thu", "fri", "sat")))


@dataclass
class Placed:
    sid: str
    to: str
    from_: str
    url: str
    status_callback: str
    machine_detection: bool
    agent_leg_sid: str = field(default_factory=lambda: "CA" + uuid.uuid4().hex)
    dial_action: str | None = None
    leg_callback: str | None = None


class RecordingDialer:
    def __init__(self) -> None:
        self.placed: list[Placed] = []
        self.fail_next = 0
        self.statuses: dict[str, str] = {}
        self.canceled: list[str] = []

    def place(self, to: str, from_: str, url: str, status_callback: str,
              machine_detection: bool, timeout: int) -> str:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("Twilio said no (stand-in)")
        sid = "CA" + uuid.uuid4().hex
        self.placed.append(Placed(sid, to, from_, url, status_callback, machine_detection))
        return sid

    def status(self, call_sid: str) -> str | None:
        return self.statuses.get(call_sid)

    def find(self, to: str, from_: str, since: datetime) -> list[tuple[str, str]] | None:
        return [(p.sid, self.statuses.get(p.sid, "queued"))
                for p in reversed(self.placed) if p.to == to and p.from_ == from_]

    def cancel(self, call_sid: str) -> None:
        self.canceled.append(call_sid)


def gather_action(xml: str) -> str | None:
    g = ET.fromstring(xml).find("Gather")
    return g.get("action") if g is not None else None


def spoken(xml: str) -> str:
    return " ".join((s.text or "") for s in ET.fromstring(xml).iter("Say"))


class CallbackDriver:
    """Drives the caller through the offer and the dialog, and the customer's callback."""

    def __init__(self, twilio: TwilioDriver) -> None:
        self.twilio = twilio

    def accept_offer(self, sid: str) -> str:
        """Press 1 at the wait loop's offer; Twilio then requests the Enqueue action
        (QueueResult=leave): the answer is the dialog's first menu."""
        leg = self.twilio.calls[sid]
        xml = self.twilio.wait(sid, 0)
        action = gather_action(xml)
        assert action, f"no callback offer in the wait loop: {xml}"
        left = self.twilio.post(action, self.twilio.params(leg, Digits="1"))
        assert ET.fromstring(left).find("Leave") is not None, left
        assert leg.enqueue_action
        menu = self.twilio.post(leg.enqueue_action, self.twilio.params(
            leg, QueueResult="leave", QueueSid=QUEUE_SID, QueueTime=str(leg.waited)))
        leg.last_twiml = menu
        return menu

    def press(self, sid: str, digits: str) -> str:
        """Answer the dialog's current ``<Gather>``."""
        leg = self.twilio.calls[sid]
        action = gather_action(leg.last_twiml)
        assert action, f"no Gather to answer: {leg.last_twiml}"
        xml = self.twilio.post(action, self.twilio.params(leg, Digits=digits))
        self.twilio._follow(leg, xml)
        return xml

    # -- the callback call (Twilio's side of calls.create)

    def _params(self, call: Placed, **extra: str) -> dict[str, str]:
        return {"AccountSid": "AC" + "0" * 32, "ApiVersion": "2010-04-01",
                "CallSid": call.sid, "From": call.from_, "To": call.to,
                "Direction": "outbound-api", **extra}

    def status(self, call: Placed, status: str) -> str:
        return self.twilio.post(call.status_callback, self._params(call, CallStatus=status))

    def answer(self, call: Placed, answered_by: str = "human") -> str:
        self.status(call, "initiated")
        self.status(call, "ringing")
        xml = self.twilio.post(call.url, self._params(call, CallStatus="in-progress",
                                                      AnsweredBy=answered_by))
        root = ET.fromstring(xml)
        dial = root.find("Dial")
        if dial is not None:
            call.dial_action = dial.get("action")
            noun = next(iter(dial))
            call.leg_callback = noun.get("statusCallback")
        return xml

    def agent_answers(self, call: Placed) -> str:
        assert call.leg_callback
        return self.twilio.post(call.leg_callback, self._params(
            call, CallSid=call.agent_leg_sid, ParentCallSid=call.sid,
            CallStatus="in-progress", Direction="outbound-dial"))

    def dial_ends(self, call: Placed, dial_status: str = "completed") -> str:
        assert call.dial_action
        return self.twilio.post(call.dial_action, self._params(
            call, CallStatus="in-progress", DialCallStatus=dial_status,
            DialCallSid=call.agent_leg_sid, DialCallDuration="120"))
