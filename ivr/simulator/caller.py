"""A phone call played against the server, the way Twilio plays it.

The simulator posts the form fields Twilio posts, signed exactly as Twilio signs them
(RequestValidator.compute_signature over the full URL and the sorted parameters), and
follows the TwiML it gets back verb by verb: <Say>/<Play> are printed, <Gather> waits for
keys or speech (scripted or typed) and posts to its action, <Enqueue>/<Dial> post their
action callbacks with the outcome chosen on the command line, <Redirect> is followed,
<Hangup> or the end of the document ends the call and a status callback is sent.
Anything Twilio would reject (an unknown verb or attribute, a non-XML answer) stops the
simulation with an error: the tests use it as a strict Twilio stand-in.

Time in a queue is the call's own clock (``CallClock``): each wait round lasts what its
TwiML plays (pauses, the seconds a ``<Gather>`` waits for keys, speech at about
``SPEECH_CHARS_PER_SECOND``), and the waitUrl is posted what Twilio posts — ``QueueTime``
in seconds of that clock, ``QueuePosition``, ``CurrentQueueSize`` and ``AvgQueueTime`` of
the simulated calls sharing a ``TwilioQueues``. ``speed`` plays that time faster (at 10 a
5 s pause takes 0.5 s) without changing what is reported.

On a ``<Dial><Conference>`` (checked as Twilio checks the noun) the caller plays the
stand-in's contract (no account SID, ``ivr.transfers.gateway.LocalConferences``): the
conference's status callbacks it subscribed to (the joins — the first agent's participant
labelled ``agent`` joining is their answer —, the leaves, the end), and every round, on the
call's clock, a request of the conference's waitUrl: nothing heard while talking, the hold
music while held (``hold``/``resume``), a ``<Redirect>`` followed out of the conference
(``moved``). ``during_talk`` is called before each round (the agents' side of ``ivr
simulate`` acts there). After ``talk_seconds`` the agent who has the call hangs up, the
conference ends and the ``<Dial action>`` goes on with the caller.
"""

from __future__ import annotations

import threading
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
_AMD = {"machineDetection", "amdStatusCallbackMethod", "amdStatusCallback",
        "machineDetectionTimeout", "machineDetectionSpeechThreshold",
        "machineDetectionSpeechEndThreshold", "machineDetectionSilenceTimeout"}
_CALLBACK = {"statusCallbackEvent", "statusCallback", "statusCallbackMethod"}
#: The nouns a <Dial> takes and their attributes (the twilio package's TwiML builders).
NOUN_ATTRIBUTES: dict[str, set[str]] = {
    "Number": {"sendDigits", "url", "method", "byoc"} | _CALLBACK | _AMD,
    "Sip": {"username", "password", "url", "method"} | _CALLBACK | _AMD,
    "Client": {"url", "method"} | _CALLBACK,
    "Queue": {"url", "method", "reservationSid", "postWorkActivitySid"},
    "Conference": {"muted", "beep", "startConferenceOnEnter", "endConferenceOnExit",
                   "waitUrl", "waitMethod", "maxParticipants", "record",
                   "recordingConfigurationId", "region", "coach", "trim",
                   "recordingStatusCallback", "recordingStatusCallbackMethod",
                   "recordingStatusCallbackEvent", "eventCallbackUrl", "jitterBufferSize",
                   "participantLabel"} | _CALLBACK,
}
DIAL_NOUNS = set(NOUN_ATTRIBUTES)
#: The values Twilio takes for a <Conference>'s attributes (others it refuses).
CONFERENCE_VALUES: dict[str, set[str]] = {
    "muted": {"true", "false"}, "startConferenceOnEnter": {"true", "false"},
    "endConferenceOnExit": {"true", "false"},
    "beep": {"true", "false", "onEnter", "onExit"},
    "waitMethod": {"GET", "POST"}, "statusCallbackMethod": {"GET", "POST"},
}
CONFERENCE_EVENTS = {"start", "end", "join", "leave", "mute", "hold", "modify", "speaker",
                     "announcement"}
#: The verbs a conference's waitUrl and holdUrl TwiML may hold.
CONFERENCE_WAIT_VERBS = {"Say", "Play", "Pause", "Redirect"}
GATHER_CHILDREN = {"Say", "Play", "Pause"}
# How long a waitUrl round takes to play: a <Say> about this many characters a second (a
# text-to-speech voice at its normal rate), a <Play> of unknown length this many seconds.
SPEECH_CHARS_PER_SECOND = 15.0
PLAY_SECONDS = 30.0
MAX_QUEUE_SIZE = 1000  # a Twilio queue's default maximum size


class CallClock:
    """The call's own time, in seconds since it started: ``play(s)`` lets ``s`` seconds of
    the call pass, sleeping ``s / speed`` of real time (a 5 s pause takes 0.5 s at 10)."""

    def __init__(self, speed: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.sleep = sleep
        self.elapsed = 0.0

    def play(self, seconds: float) -> None:
        if seconds > 0:
            self.sleep(seconds / self.speed)
            self.elapsed += seconds


class TwilioQueues:
    """Twilio's queues as the simulated calls sharing this object see them: the members of
    each queue in the order they joined, with their seconds in it, for the waitUrl's
    ``QueuePosition``, ``CurrentQueueSize`` and ``AvgQueueTime`` (the mean time in the queue
    of its members now, as Twilio's Queue resource computes ``average_wait_time``)."""

    def __init__(self) -> None:
        self._members: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def join(self, queue_sid: str, call_sid: str) -> None:
        with self._lock:
            self._members.setdefault(queue_sid, {})[call_sid] = 0.0

    def leave(self, queue_sid: str, call_sid: str) -> None:
        with self._lock:
            self._members.get(queue_sid, {}).pop(call_sid, None)

    def wait_params(self, queue_sid: str, call_sid: str, waited: float) -> dict[str, str]:
        """What Twilio posts to the waitUrl for this member, ``waited`` seconds in."""
        with self._lock:
            members = self._members.setdefault(queue_sid, {})
            members[call_sid] = waited
            order = list(members)
            average = sum(members.values()) / len(members)
            return {"QueueSid": queue_sid, "QueueTime": str(int(waited)),
                    "QueuePosition": str(order.index(call_sid) + 1),
                    "CurrentQueueSize": str(len(members)),
                    "AvgQueueTime": str(int(average)), "MaxQueueSize": str(MAX_QUEUE_SIZE)}


def playing_time(el: ET.Element) -> float:
    """Seconds a verb of a wait round takes to play (a <Gather>: its prompts only)."""
    if el.tag == "Say":
        return len((el.text or "").strip()) / SPEECH_CHARS_PER_SECOND
    if el.tag == "Play":
        return PLAY_SECONDS
    if el.tag == "Pause":
        length = el.get("length", "1")
        return float(length) if length.isascii() and length.isdigit() else 1.0
    if el.tag == "Gather":
        return sum(playing_time(child) for child in el)
    return 0.0


class TwimlRejected(Exception):
    """The server answered something Twilio would not accept."""


@dataclass
class Heard:
    # say | play | pause | gather | enqueue | dial | hangup | redirect | end, and on a
    # conference: answered | hold | resume | moved (a <Redirect> out of it)
    kind: str
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
                 sleep: Callable[[float], None] = time.sleep, speed: float = 1.0,
                 queues: TwilioQueues | None = None,
                 during_talk: Callable[[str, float], None] | None = None) -> None:
        """``agent_wait``: seconds of the call to stay in a queue's wait loop (requesting
        the waitUrl again as Twilio does) until the server releases the caller for an agent
        with ``<Leave/>``; 0 plays one round and answers the Enqueue action with
        ``queue_result``. ``talk_seconds``: how long an answered agent leg lasts.
        ``accept_callback``: press 1 at the wait loop's callback offer (a ``<Gather>`` in
        the waitUrl's TwiML); the callback dialog then reads the next scripted inputs.
        ``sleep`` and ``speed``: the call's clock (``CallClock``); ``queues``: Twilio's
        queues shared with other simulated calls (default: this call's own).
        ``during_talk(call_sid, seconds)``: called before each round of a conference with
        the seconds the caller has been in it (the agents' side of ``ivr simulate`` acts
        there: a transfer after so many seconds)."""
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
        self.clock = CallClock(speed, sleep)
        self.queues = queues or TwilioQueues()
        self.transcript = Transcript(self.call_sid)
        # What happened, for ``unused_options``.
        self.queued: list[str] = []
        self.offers = 0  # wait rounds that offered a callback
        self.released = False  # left the queue for an agent
        self.callback_left = False  # left the queue for the callback dialog
        self.waited = 0.0  # seconds in queues
        self.wait_said: list[str] = []  # what the wait loops said
        self.during_talk = during_talk
        self.held = False  # hearing a conference's hold music
        self._conference_sequence = 0

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
        self.post("/twilio/status", {**self.base_params("completed"),
                                     "CallDuration": str(int(self.clock.elapsed)),
                                     "SequenceNumber": "1"})
        return self.transcript

    def unused_options(self) -> list[str]:
        """Why an option of the call did nothing, one sentence each (after ``run``)."""
        notes = []
        last_said = next((h.text for h in reversed(self.transcript.heard)
                          if h.kind == "say"), "")
        if self.accept_callback and not self.callback_left:
            if not self.queued:
                why = "the call never reached a queue"
                if last_said:
                    why += f" (it ended after: {last_said!r})"
            elif self.released and not self.offers:
                why = "an agent was free (the call was released for an agent)"
            elif self.offers:
                why = "the offer was answered, but the server kept the call in the queue"
            else:
                waits = self.wait_said
                why = (f"the wait loop made no offer in {self.waited:.0f} s in the queue "
                       "(it offers one when the expected wait is over the queue's "
                       "threshold or the centre closes soon, during the offer's hours: "
                       "callbacks.yaml)" + (f"; it said {waits[-1]!r}" if waits else ""))
            notes.append(f"no callback was offered: {why}")
        if self.agent_wait and not self.released and not self.callback_left:
            if not self.queued:
                notes.append("no agent took the call: it never reached a queue")
            else:
                notes.append(f"no agent took the call in {self.waited:.0f} s in the queue "
                             "(is an agent of the queue signed in and available?)")
        return notes

    def _wait_loop(self, wait_url: str | None, base: dict[str, str],
                   queue_sid: str) -> tuple[str, int]:
        """Twilio's wait experience: the waitUrl's TwiML is played, then requested again,
        until it says ``<Leave/>`` or the caller has waited ``agent_wait`` seconds."""
        self.queues.join(queue_sid, self.call_sid)
        start = self.clock.elapsed
        try:
            result = self._rounds(wait_url, base, queue_sid, start)
        finally:
            self.queues.leave(queue_sid, self.call_sid)
            self.waited += self.clock.elapsed - start
        return result, int(self.clock.elapsed - start)

    def _rounds(self, wait_url: str | None, base: dict[str, str], queue_sid: str,
                start: float) -> str:
        rounds = 0
        while wait_url:
            waited = self.clock.elapsed - start
            wresp = self.post(wait_url, {**base, **self.queues.wait_params(
                queue_sid, self.call_sid, waited)})
            self.hear(Heard("wait", str(int(waited)), {"round": str(rounds + 1)}))
            for w in self._twiml(wresp):
                self._check(w)
                if w.tag == "Leave":
                    self.hear(Heard("leave", "", {}))
                    self.released = True
                    return "leave"
                if w.tag == "Gather":
                    for child in w:
                        self._check(child)
                        self._audio(child, waiting=True)
                    self._play_for(playing_time(w), start)
                    if w.get("action"):
                        self.offers += 1
                    if self.accept_callback and w.get("action"):
                        self.hear(Heard("gather", "1", dict(w.attrib)))
                        answer = self._twiml(self.post(w.get("action") or "",
                                                       {**base, "Digits": "1"}))
                        if answer.find("Leave") is not None:
                            self.hear(Heard("leave", "callback", {}))
                            self.callback_left = True
                            return "leave"
                        continue
                    timeout = w.get("timeout", "5")
                    self._play_for(float(timeout) if timeout.isdigit() else 5.0, start)
                    continue
                self._audio(w, waiting=True)
                self._play_for(playing_time(w), start)
            rounds += 1
            if self.clock.elapsed - start >= self.agent_wait \
                    or rounds > self.max_requests // 2:
                break
        return self.queue_result

    def _play_for(self, seconds: float, start: float) -> None:
        """Play ``seconds`` of a wait round, no further than ``agent_wait`` in the queue
        (the caller hangs up then)."""
        left = self.agent_wait - (self.clock.elapsed - start)
        self.clock.play(min(seconds, max(left, 0.0)))

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
        self.clock.play(self.talk_seconds)
        return self.talk_seconds

    # -- a call on a conference

    def _conference_event(self, conf: ET.Element, base: dict[str, str], event: str,
                          **fields: str) -> None:
        """A conference status callback, when the <Conference> asked for its kind
        (``statusCallbackEvent``: start end join leave hold …)."""
        callback = conf.get("statusCallback")
        kind = {"participant-join": "join", "participant-leave": "leave",
                "conference-start": "start", "conference-end": "end"}[event]
        if not callback or kind not in conf.get("statusCallbackEvent", "").split():
            return
        name = (conf.text or "").strip()
        self._conference_sequence += 1
        self.post(callback, {**base, "ConferenceSid": "CF" + uuid.uuid5(
            uuid.NAMESPACE_URL, name).hex, "FriendlyName": name,
            "StatusCallbackEvent": event,
            "SequenceNumber": str(self._conference_sequence), **fields})

    def _participant(self, call_sid: str, label: str | None, *,
                     ends: bool) -> dict[str, str]:
        fields = {"CallSid": call_sid, "Muted": "false", "Hold": "false",
                  "Coaching": "false", "EndConferenceOnExit": str(ends).lower(),
                  "StartConferenceOnEnter": str(label is not None).lower()}
        if label:
            fields["ParticipantLabel"] = label
        return fields

    def _conference(self, dial: ET.Element, conf: ET.Element, base: dict[str, str],
                    leg_sid: str) -> tuple[str | None, dict[str, str]]:
        """The caller in the call's conference, with the agent who answered (their
        participant, labelled ``agent``, joins it: the answer the server waits for). Every
        round the caller asks the conference's waitUrl, as the stand-in's caller does:
        silence while talking, the hold music while held, a ``<Redirect>`` out of the
        conference (a queue, the head of the queue, ...). After ``talk_seconds`` in it the
        agent who has the call hangs up: the conference ends and the ``<Dial action>``
        goes on with the caller."""
        caller_ends = conf.get("endConferenceOnExit") == "true"
        self._conference_event(conf, base, "participant-join",
                               **self._participant(self.call_sid, None, ends=caller_ends))
        self._conference_event(conf, base, "participant-join",
                               **self._participant(leg_sid, "agent", ends=True))
        self._conference_event(conf, base, "conference-start")
        self.hear(Heard("answered", "conference", dict(conf.attrib)))
        wait_url = conf.get("waitUrl")
        start = self.clock.elapsed
        self.held = False
        while (talked := self.clock.elapsed - start) < self.talk_seconds:
            if self.during_talk is not None:
                self.during_talk(self.call_sid, talked)
            if not wait_url:
                self.clock.play(self.talk_seconds - talked)
                break
            round_ = self._twiml(self.post(wait_url, dict(base)))
            for w in round_:
                self._check(w)
                if w.tag not in CONFERENCE_WAIT_VERBS:
                    raise TwimlRejected(f"<{w.tag}> is not allowed in a conference's "
                                        "waitUrl or holdUrl TwiML")
                if w.tag == "Redirect":  # the stand-in moves the caller out
                    url = (w.text or "").strip()
                    self.hear(Heard("moved", url, dict(w.attrib)))
                    self._conference_event(
                        conf, base, "participant-leave",
                        **self._participant(self.call_sid, None, ends=caller_ends),
                        ReasonParticipantLeft="participant_updated_via_api",
                        ParticipantCallStatus="in-progress")
                    if caller_ends:
                        self._conference_event(
                            conf, base, "conference-end", CallSidEndingConference=self.call_sid,
                            ReasonConferenceEnded="participant-with-end-conference-on-exit-left")
                    self.held = False
                    return url, dict(base)
            audible = any(w.tag in ("Say", "Play") for w in round_)
            if audible != self.held:
                self.held = audible
                self.hear(Heard("hold" if audible else "resume"))
            if audible:
                for w in round_:
                    self._audio(w)
            seconds = sum(playing_time(w) for w in round_) or 1.0
            self.clock.play(min(seconds, self.talk_seconds - talked))
        talked = self.clock.elapsed - start
        # The talk is over: the agent who has the call hangs up and ends the conference.
        self._conference_event(conf, base, "participant-leave",
                               **self._participant(leg_sid, "agent", ends=True),
                               ReasonParticipantLeft="participant_hung_up",
                               ParticipantCallStatus="completed")
        self._conference_event(
            conf, base, "conference-end", CallSidEndingConference=leg_sid,
            ReasonConferenceEnded="participant-with-end-conference-on-exit-left")
        self.held = False
        action_url = dial.get("action")
        if action_url is None:
            return None, {}
        return action_url, {**base, "DialCallStatus": "completed", "DialCallSid": leg_sid,
                            "DialCallDuration": str(int(talked))}

    def _check(self, el: ET.Element) -> None:
        allowed = VERB_ATTRIBUTES.get(el.tag)
        if allowed is None:
            raise TwimlRejected(f"<{el.tag}> is not a TwiML voice verb")
        unknown = set(el.attrib) - allowed
        if unknown:
            raise TwimlRejected(f"<{el.tag}> has attributes Twilio does not know: {unknown}")

    def _check_noun(self, noun: ET.Element, count: int) -> None:
        """A <Dial>'s noun as Twilio takes it: a known noun with known attributes; a
        <Conference> alone in its <Dial>, named, with values Twilio accepts."""
        allowed = NOUN_ATTRIBUTES.get(noun.tag)
        if allowed is None:
            raise TwimlRejected(f"<{noun.tag}> cannot be nested in <Dial>")
        unknown = set(noun.attrib) - allowed
        if unknown:
            raise TwimlRejected(f"<{noun.tag}> has attributes Twilio does not know: "
                                f"{unknown}")
        if noun.tag != "Conference":
            return
        if count > 1:
            raise TwimlRejected("a <Conference> must be the only noun of its <Dial>")
        if not (noun.text or "").strip():
            raise TwimlRejected("<Conference> without a name")
        for attr, values in CONFERENCE_VALUES.items():
            if attr in noun.attrib and noun.get(attr) not in values:
                raise TwimlRejected(f"<Conference {attr}={noun.get(attr)!r}>: Twilio takes "
                                    f"{sorted(values)}")
        events = set(noun.get("statusCallbackEvent", "").split()) - CONFERENCE_EVENTS
        if events:
            raise TwimlRejected(f"<Conference statusCallbackEvent>: unknown events "
                                f"{sorted(events)}")

    def _audio(self, el: ET.Element, waiting: bool = False) -> None:
        if el.tag == "Say":
            if not (el.text or "").strip():
                raise TwimlRejected("<Say> without text")
            if len(el.text or "") > 4096:
                raise TwimlRejected("<Say> text over 4096 characters")
            self.hear(Heard("say", el.text or "", dict(el.attrib)))
            if waiting:
                self.wait_said.append(el.text or "")
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
                self.queued.append(queue)
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
                    self._check_noun(n, len(nouns))
                target = ", ".join(f"{n.tag.lower()}:{(n.text or '').strip()}" for n in nouns)
                self.hear(Heard("dial", target or (el.text or "").strip(), dict(el.attrib)))
                leg_sid = "CA" + uuid.uuid4().hex
                if nouns and nouns[0].tag == "Conference" \
                        and self.dial_status in ("completed", "answered"):
                    return self._conference(el, nouns[0], base, leg_sid)
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
