"""A phone call played against the server, the way Twilio plays it.

The simulator posts the form fields Twilio posts, signed exactly as Twilio signs them
(RequestValidator.compute_signature over the full URL and the sorted parameters), and
follows the TwiML it gets back verb by verb: <Say>/<Play> are printed, <Gather> waits for
keys or speech (scripted or typed) and posts to its action, <Enqueue>/<Dial> post their
action callbacks with the outcome chosen on the command line, <Redirect> is followed,
<Hangup> or the end of the document ends the call and a status callback is sent.
Anything Twilio would reject (an unknown verb or attribute, a non-XML answer) stops the
simulation with an error: the tests use it as a strict Twilio stand-in.
"""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import defusedxml
import defusedxml.ElementTree as SafeET
from twilio.request_validator import RequestValidator

VERB_ATTRIBUTES: dict[str, set[str]] = {
    "Say": {"voice", "language", "loop"},
    "Play": {"loop", "digits"},
    "Pause": {"length"},
    "Gather": {"action", "method", "timeout", "finishOnKey", "numDigits", "input", "language",
               "hints", "speechTimeout", "actionOnEmptyResult", "partialResultCallback",
               "profanityFilter", "speechModel", "enhanced", "bargeIn"},
    "Enqueue": {"action", "method", "waitUrl", "waitUrlMethod", "workflowSid", "maxQueueSize"},
    "Dial": {"action", "method", "timeout", "callerId", "hangupOnStar", "timeLimit", "record",
             "answerOnBridge", "ringTone"},
    "Redirect": {"method"},
    "Hangup": set(),
    "Leave": set(),
    "Reject": {"reason"},
}
DIAL_NOUNS = {"Number", "Sip", "Client", "Queue", "Conference"}
GATHER_CHILDREN = {"Say", "Play", "Pause"}


class TwimlRejected(Exception):
    """The server answered something Twilio would not accept."""


@dataclass
class Heard:
    kind: str  # say | play | pause | gather | enqueue | dial | hangup | redirect | end
    text: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class Transcript:
    call_sid: str
    heard: list[Heard] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def says(self) -> list[str]:
        return [h.text for h in self.heard if h.kind == "say"]

    def kinds(self) -> list[str]:
        return [h.kind for h in self.heard]


Input = str | None  # digits, "say:<words>", None = silence; "hangup" ends the call


class PhoneCall:
    def __init__(self, client: Any, base_url: str, auth_token: str, *,
                 from_number: str = "+972501234567", to_number: str = "+97235550100",
                 inputs: Callable[[Heard], Input] | Iterator[Input] | None = None,
                 dial_status: str = "no-answer", queue_result: str = "hangup",
                 on_hear: Callable[[Heard], None] | None = None,
                 call_sid: str | None = None, max_requests: int = 100,
                 agent_wait: float = 0.0, talk_seconds: float = 0.0,
                 accept_callback: bool = False,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """``agent_wait``: seconds to stay in a queue's wait loop (requesting the waitUrl
        again as Twilio does) until the server releases the caller for an agent with
        ``<Leave/>``; 0 answers the Enqueue action at once with ``queue_result``.
        ``talk_seconds``: how long an answered agent leg lasts. ``accept_callback``: press
        1 at the wait loop's callback offer (a ``<Gather>`` in the waitUrl's TwiML); the
        callback dialog then reads the next scripted inputs."""
        self.client = client
        self.base = base_url.rstrip("/")
        self.validator = RequestValidator(auth_token)
        self.call_sid = call_sid or "CA" + uuid.uuid4().hex
        self.account_sid = "AC" + uuid.uuid5(uuid.NAMESPACE_URL, auth_token).hex
        self.from_number = from_number
        self.to_number = to_number
        self._inputs = inputs
        self.dial_status = dial_status
        self.queue_result = queue_result
        self.on_hear = on_hear
        self.max_requests = max_requests
        self.agent_wait = agent_wait
        self.talk_seconds = talk_seconds
        self.accept_callback = accept_callback
        self.sleep = sleep
        self.transcript = Transcript(self.call_sid)

    # -- Twilio's side of the HTTP exchange

    def base_params(self, status: str = "in-progress") -> dict[str, str]:
        return {
            "AccountSid": self.account_sid, "ApiVersion": "2010-04-01",
            "CallSid": self.call_sid, "CallStatus": status, "Direction": "inbound",
            "From": self.from_number, "Caller": self.from_number,
            "To": self.to_number, "Called": self.to_number,
            "FromCountry": "IL", "ToCountry": "IL",
        }

    def post(self, url: str, params: dict[str, str]) -> Any:
        """POST like Twilio: form-encoded, signed over the full URL (an httpx-style client)."""
        if len(self.transcript.requests) >= self.max_requests:
            raise TwimlRejected(f"more than {self.max_requests} requests in one call")
        full = url if url.startswith("http") else urljoin(self.base + "/", url.lstrip("/"))
        signature = self.validator.compute_signature(full, params)
        self.transcript.requests.append((full, dict(params)))
        path = urlsplit(full)
        target = path.path + (f"?{path.query}" if path.query else "")
        return self.client.post(target, data=params,
                                headers={"X-Twilio-Signature": signature})

    def _twiml(self, response: Any) -> ET.Element:
        if response.status_code != 200:
            raise TwimlRejected(f"HTTP {response.status_code}: {response.text[:200]}")
        ctype = response.headers.get("content-type", "")
        if not ctype.startswith(("text/xml", "application/xml")):
            raise TwimlRejected(f"content type {ctype!r} is not XML")
        try:
            root: ET.Element = SafeET.fromstring(response.content)
        except (ET.ParseError, defusedxml.DefusedXmlException) as exc:
            raise TwimlRejected(f"not XML: {exc}") from None
        if root.tag != "Response":
            raise TwimlRejected(f"root element is <{root.tag}>, not <Response>")
        return root

    def hear(self, heard: Heard) -> None:
        self.transcript.heard.append(heard)
        if self.on_hear:
            self.on_hear(heard)

    def next_input(self, heard: Heard) -> Input:
        if self._inputs is None:
            return "hangup"
        if callable(self._inputs):
            return self._inputs(heard)
        return next(self._inputs, "hangup")

    # -- the call

    def run(self) -> Transcript:
        url = "/twilio/voice"
        params = self.base_params("ringing")
        while url:
            resp = self.post(url, params)
            next_url, params = self._play(self._twiml(resp), url)
            url = next_url or ""
        self.post("/twilio/status", {**self.base_params("completed"), "CallDuration": "42",
                                     "SequenceNumber": "1"})
        return self.transcript

    def _wait_loop(self, wait_url: str | None, base: dict[str, str],
                   queue_sid: str) -> tuple[str, int]:
        """Twilio's wait experience: the waitUrl's TwiML is played, then requested again,
        until it says ``<Leave/>`` (or ``agent_wait`` runs out)."""
        waited = 0.0
        rounds = 0
        while wait_url:
            wresp = self.post(wait_url, {**base, "QueuePosition": "1", "QueueSid": queue_sid,
                                         "QueueTime": str(int(waited)),
                                         "AvgQueueTime": "0", "CurrentQueueSize": "1"})
            pause = 0.0
            for w in self._twiml(wresp):
                self._check(w)
                if w.tag == "Leave":
                    self.hear(Heard("leave", "", {}))
                    return "leave", int(waited)
                if w.tag == "Gather":
                    for child in w:
                        self._check(child)
                        self._audio(child)
                    if self.accept_callback and w.get("action"):
                        self.hear(Heard("gather", "1", dict(w.attrib)))
                        answer = self._twiml(self.post(w.get("action") or "",
                                                       {**base, "Digits": "1"}))
                        if answer.find("Leave") is not None:
                            self.hear(Heard("leave", "callback", {}))
                            return "leave", int(waited)
                    continue
                self._audio(w)
                if w.tag == "Pause":
                    length = w.get("length", "1")
                    pause += float(length) if length.isdigit() else 1.0
            rounds += 1
            if waited >= self.agent_wait or rounds > self.max_requests // 2:
                break
            step = min(max(pause, 0.2), 1.0)  # the demo need not sit through whole pauses
            self.sleep(step)
            waited += step
        return self.queue_result, int(waited)

    def _answer_leg(self, nouns: list[ET.Element], base: dict[str, str],
                    leg_sid: str) -> float:
        """The dialled party answers: the noun's status callback hears ``in-progress``
        (as Twilio sends for ``statusCallbackEvent="answered"``), then they talk."""
        for n in nouns:
            callback = n.get("statusCallback")
            if callback and "answered" in n.get("statusCallbackEvent", ""):
                self.post(callback, {**base, "CallSid": leg_sid, "ParentCallSid": self.call_sid,
                                     "CallStatus": "in-progress", "Direction": "outbound-dial",
                                     "CallbackSource": "call-progress-events"})
                self.hear(Heard("answered", n.tag.lower(), dict(n.attrib)))
        if self.talk_seconds:
            self.sleep(self.talk_seconds)
        return self.talk_seconds

    def _check(self, el: ET.Element) -> None:
        allowed = VERB_ATTRIBUTES.get(el.tag)
        if allowed is None:
            raise TwimlRejected(f"<{el.tag}> is not a TwiML voice verb")
        unknown = set(el.attrib) - allowed
        if unknown:
            raise TwimlRejected(f"<{el.tag}> has attributes Twilio does not know: {unknown}")

    def _audio(self, el: ET.Element) -> None:
        if el.tag == "Say":
            if not (el.text or "").strip():
                raise TwimlRejected("<Say> without text")
            if len(el.text or "") > 4096:
                raise TwimlRejected("<Say> text over 4096 characters")
            self.hear(Heard("say", el.text or "", dict(el.attrib)))
        elif el.tag == "Play":
            self.hear(Heard("play", (el.text or "").strip(), dict(el.attrib)))
        elif el.tag == "Pause":
            self.hear(Heard("pause", el.get("length", "1"), dict(el.attrib)))

    def _play(self, root: ET.Element, current: str) -> tuple[str | None, dict[str, str]]:
        base = self.base_params()
        for el in root:
            self._check(el)
            if el.tag in ("Say", "Play", "Pause"):
                self._audio(el)
            elif el.tag == "Gather":
                for child in el:
                    if child.tag not in GATHER_CHILDREN:
                        raise TwimlRejected(f"<{child.tag}> cannot be nested in <Gather>")
                    self._check(child)
                    self._audio(child)
                timeout = el.get("timeout", "5")
                if not timeout.isdigit() or int(timeout) < 1:
                    raise TwimlRejected(f"<Gather timeout={timeout!r}> is not a positive integer")
                heard = Heard("gather", "", dict(el.attrib))
                self.hear(heard)
                got = self.next_input(heard)
                if got == "hangup":
                    return None, {}
                action = el.get("action", current)
                params = dict(base)
                if got is None:
                    if el.get("actionOnEmptyResult") != "true":
                        continue  # Twilio falls through to the next verb
                elif got.startswith("say:"):
                    params.update(SpeechResult=got[4:], Confidence="0.9")
                else:
                    params["Digits"] = got
                return action, params
            elif el.tag == "Enqueue":
                queue = (el.text or "").strip()
                if not queue or len(queue) > 64:
                    raise TwimlRejected(f"<Enqueue> queue name {queue!r} is empty or too long")
                self.hear(Heard("enqueue", queue, dict(el.attrib)))
                queue_sid = "QU" + uuid.uuid5(uuid.NAMESPACE_URL, queue).hex
                result, waited = self._wait_loop(el.get("waitUrl"), base, queue_sid)
                action_url = el.get("action")
                if action_url is None:
                    return None, {}
                return action_url, {**base, "QueueResult": result, "QueueSid": queue_sid,
                                    "QueueTime": str(waited)}
            elif el.tag == "Dial":
                nouns = list(el)
                if not nouns and not (el.text or "").strip():
                    raise TwimlRejected("<Dial> with nothing to dial")
                for n in nouns:
                    if n.tag not in DIAL_NOUNS:
                        raise TwimlRejected(f"<{n.tag}> cannot be nested in <Dial>")
                target = ", ".join(f"{n.tag.lower()}:{(n.text or '').strip()}" for n in nouns)
                self.hear(Heard("dial", target or (el.text or "").strip(), dict(el.attrib)))
                leg_sid = "CA" + uuid.uuid4().hex
                talked = 0.0
                if self.dial_status in ("completed", "answered"):
                    talked = self._answer_leg(nouns, base, leg_sid)
                action_url = el.get("action")
                if action_url is None:
                    if self.dial_status in ("completed", "answered"):
                        return None, {}
                    continue
                return action_url, {**base, "DialCallStatus": self.dial_status,
                                    "DialCallSid": leg_sid,
                                    "DialCallDuration": str(int(talked))}
            elif el.tag == "Redirect":
                self.hear(Heard("redirect", (el.text or "").strip(), dict(el.attrib)))
                return (el.text or "").strip(), dict(base)
            elif el.tag in ("Hangup", "Leave", "Reject"):
                self.hear(Heard("hangup", el.tag))
                return None, {}
        self.hear(Heard("end"))
        return None, {}
