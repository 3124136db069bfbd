"""A stand-in for Twilio's outbound calls when no Twilio account is configured (the demo):
the customer "answers" at once, the agent's leg "answers", they talk for
``IVR_LOCAL_DIALER_TALK_SECONDS``, and the call ends, each step posted to this server as the
signed webhook Twilio would send. So a callback runs end to end in the simulator and the
console without a phone network. A call whose answer is no ``<Dial>`` (a follow-up's survey)
is followed verb by verb: a ``<Redirect>`` is fetched, a ``<Gather>`` is answered with the
next of ``keys`` (then ``5``), until the TwiML ends or hangs up."""

from __future__ import annotations

import logging
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime
from urllib.parse import urljoin

import defusedxml.ElementTree as SafeET
import httpx
from twilio.request_validator import RequestValidator

log = logging.getLogger(__name__)

MAX_STEPS = 12  # TwiML documents followed in one simulated call


class LocalDialer:
    def __init__(self, base_url: str, auth_token: str, talk_seconds: float,
                 sleep: object = time.sleep, keys: tuple[str, ...] = ()) -> None:
        self.base_url = base_url.rstrip("/")
        self.validator = RequestValidator(auth_token)
        self.talk_seconds = talk_seconds
        self._sleep = sleep
        self.placed: list[dict[str, str]] = []
        #: What the customer presses at each ``<Gather>`` of a call (then ``5``).
        self.keys = keys
        #: The simulated calls' threads (the demo command waits for them).
        self.threads: list[threading.Thread] = []

    def place(self, to: str, from_: str, url: str, status_callback: str,
              machine_detection: bool, timeout: int) -> str:
        sid = "CA" + uuid.uuid4().hex
        self.placed.append({"sid": sid, "to": to, "from": from_, "url": url})
        thread = threading.Thread(target=self._play, args=(sid, to, from_, url, status_callback),
                                  name=f"local-dialer-{sid[-6:]}", daemon=True)
        self.threads.append(thread)
        thread.start()
        return sid

    def status(self, call_sid: str) -> str | None:
        return None

    def find(self, to: str, from_: str, since: datetime) -> list[tuple[str, str]] | None:
        return None  # nothing to ask: a claim that lapsed is simply made again

    def cancel(self, call_sid: str) -> None:
        return None

    # -- the customer's side, as Twilio would post it

    def _post(self, client: httpx.Client, url: str, params: dict[str, str]) -> str:
        full = urljoin(self.base_url + "/", url)
        signature = self.validator.compute_signature(full, params)
        r = client.post(full, data=params, headers={"X-Twilio-Signature": signature})
        r.raise_for_status()
        return r.text

    def _play(self, sid: str, to: str, from_: str, url: str, status_url: str) -> None:
        base = {"CallSid": sid, "AccountSid": "AC" + "0" * 32, "From": from_, "To": to,
                "Direction": "outbound-api", "ApiVersion": "2010-04-01"}
        started = time.monotonic()
        try:
            with httpx.Client(timeout=10) as client:
                for status in ("initiated", "ringing"):
                    self._post(client, status_url, {**base, "CallStatus": status})
                xml = self._post(client, url, {**base, "CallStatus": "in-progress",
                                               "AnsweredBy": "human"})
                self._follow(client, base, xml, urljoin(self.base_url + "/", url))
                self._post(client, status_url, {
                    **base, "CallStatus": "completed",
                    "CallDuration": str(int(time.monotonic() - started))})
        except Exception:
            log.exception("local dialer: the simulated call failed call=%s", sid)

    def _follow(self, client: httpx.Client, base: dict[str, str], xml: str,
                url: str) -> None:
        """The customer's side of the answer: ``<Dial>`` is bridged; ``<Redirect>`` and
        ``<Gather>`` are followed (relative URLs resolved against the document's)."""
        keys = list(self.keys)
        for _ in range(MAX_STEPS):
            root = SafeET.fromstring(xml)
            dial = root.find("Dial")
            if dial is not None:
                self._bridge(client, base, dial)
                return
            redirect, gather = root.find("Redirect"), root.find("Gather")
            if redirect is not None and (redirect.text or "").strip():
                url = urljoin(url, (redirect.text or "").strip())
                xml = self._post(client, url, {**base, "CallStatus": "in-progress"})
            elif gather is not None and gather.get("action"):
                url = urljoin(url, gather.get("action") or "")
                xml = self._post(client, url, {**base, "CallStatus": "in-progress",
                                               "Digits": keys.pop(0) if keys else "5"})
            else:
                return

    def _bridge(self, client: httpx.Client, base: dict[str, str], dial: ET.Element) -> None:
        leg = "CA" + uuid.uuid4().hex
        for noun in dial:
            callback = noun.get("statusCallback")
            if callback:
                self._post(client, callback, {**base, "CallSid": leg,
                                              "ParentCallSid": base["CallSid"],
                                              "CallStatus": "in-progress",
                                              "Direction": "outbound-dial"})
        self._sleep(self.talk_seconds)  # type: ignore[operator]
        action = dial.get("action")
        if action:
            self._post(client, action, {**base, "CallStatus": "in-progress",
                                        "DialCallStatus": "completed", "DialCallSid": leg,
                                        "DialCallDuration": str(int(self.talk_seconds))})
