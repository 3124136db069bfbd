"""How a callback's customer is called: ``TwilioDialer`` (``calls.create`` through the twilio
client) or, without an account, the demo's ``callbacks.local_dialer``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol


class Dialer(Protocol):
    """How a callback's customer is called."""

    def place(self, to: str, from_: str, url: str, status_callback: str,
              machine_detection: bool, timeout: int) -> str:
        """Start the call (Twilio fetches ``url`` when it is answered); its CallSid."""
        ...

    def status(self, call_sid: str) -> str | None:
        """Twilio's status of a call we placed (queued, ringing, in-progress, completed,
        busy, no-answer, failed, canceled), None if it cannot be told."""
        ...

    def find(self, to: str, from_: str, since: datetime) -> list[tuple[str, str]] | None:
        """Calls placed to ``to`` from ``from_`` since ``since`` as (CallSid, status),
        newest first; None if this dialer cannot tell (then nothing is assumed)."""
        ...

    def cancel(self, call_sid: str) -> None:
        """End a call we placed (ringing: canceled; answered: completed)."""
        ...



class TwilioDialer:
    """``client.calls.create`` with status callbacks for every step of the call, and
    answering machine detection (``AnsweredBy`` arrives with the answer URL's request)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def place(self, to: str, from_: str, url: str, status_callback: str,
              machine_detection: bool, timeout: int) -> str:
        kwargs: dict[str, Any] = {
            "to": to, "from_": from_, "url": url, "method": "POST", "timeout": timeout,
            "status_callback": status_callback, "status_callback_method": "POST",
            "status_callback_event": ["initiated", "ringing", "answered", "completed"]}
        if machine_detection:
            kwargs["machine_detection"] = "Enable"
        call = self.client.calls.create(**kwargs)
        return str(call.sid)

    def status(self, call_sid: str) -> str | None:
        return str(self.client.calls(call_sid).fetch().status)

    def find(self, to: str, from_: str, since: datetime) -> list[tuple[str, str]] | None:
        found = []
        for call in self.client.calls.list(to=to, from_=from_, limit=20):
            created = getattr(call, "date_created", None)
            if created is None or created >= since - timedelta(seconds=5):
                found.append((str(call.sid), str(call.status)))
        return found

    def cancel(self, call_sid: str) -> None:
        call = self.client.calls(call_sid)
        status = str(call.fetch().status)
        if status in ("queued", "ringing"):
            call.update(status="canceled")
        elif status == "in-progress":
            call.update(status="completed")
