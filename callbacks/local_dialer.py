"""A stand-in for Twilio's outbound calls when no Twilio account is configured (the demo):
the customer "answers" at once, the agent's leg "answers", they talk for
``IVR_LOCAL_DIALER_TALK_SECONDS``, and the call ends, each step posted to this server as the
signed webhook Twilio would send. So a callback runs end to end in the simulator and the
console without a phone network."""

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


class LocalDialer:
    def __init__(self, base_url: str, auth_token: str, talk_seconds: float,
                 sleep: object = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.validator = RequestValidator(auth_token)
        self.talk_seconds = talk_seconds
        self._sleep = sleep
        self.placed: list[dict[str, str]] = []

    def place(self, to: str, from_: str, url: str, status_callback: str,
              machine_detection: bool, timeout: int) -> str:
        sid = "CA" + uuid.uuid4().hex
        self.placed.append({"sid": sid, "to": to, "from": from_, "url": url})
        threading.Thread(target=self._play, args=(sid, to, from_, url, status_callback),
                         name=f"local-dialer-{sid[-6:]}", daemon=True).start()
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
                dial = SafeET.fromstring(xml).find("Dial")
                if dial is not None:
                    self._bridge(client, base, dial)
                self._post(client, status_url, {
                    **base, "CallStatus": "completed",
                    "CallDuration": str(int(time.monotonic() - started))})
        except Exception:
            log.exception("local dialer: the simulated call failed call=%s", sid)

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
