"""SMS that confirm a time (a callback, a follow-up, a promise): Twilio Messaging through
the twilio client (``TwilioSms``), or, without an account, ``LocalSms`` (the demo's and the
tests' stand-in: the messages are kept and logged, nothing leaves the machine). The words are
pure functions of the time and the customer's language."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

_DAYS_HE = ("שני", "שלישי", "רביעי", "חמישי", "שישי", "שבת", "ראשון")


class SmsSender(Protocol):
    def send(self, to: str, from_: str, body: str) -> str:
        """Send one message; its SID."""
        ...


class TwilioSms:
    """``client.messages.create`` (Twilio Messaging)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def send(self, to: str, from_: str, body: str) -> str:
        return str(self.client.messages.create(to=to, from_=from_, body=body).sid)


class LocalSms:
    """The stand-in: every message kept in ``sent`` and logged (numbers masked)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []

    def send(self, to: str, from_: str, body: str) -> str:
        from crm_sync.phones import mask  # noqa: PLC0415

        sid = "SM" + uuid.uuid4().hex
        self.sent.append({"sid": sid, "to": to, "from": from_, "body": body})
        log.info("local SMS %s to %s: %s", sid, mask(to), body)
        return sid


def when(t: datetime, zone: ZoneInfo, language: str) -> str:
    """``Tue 8 Dec 10:00`` / ``יום שלישי 8.12 בשעה 10:00`` in the centre's zone."""
    local = t.astimezone(zone)
    if language.startswith("he"):
        return f"יום {_DAYS_HE[local.weekday()]} {local.day}.{local.month} בשעה {local:%H:%M}"
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def body(purpose: str, t: datetime, zone: ZoneInfo, language: str,
         action: str | None = None) -> str:
    """The confirmation's words: a callback by, a follow-up call at, a promise by."""
    at = when(t, zone, language)
    he = language.startswith("he")
    if purpose == "callback":
        return f"נחזור אליך עד {at}." if he else f"We will call you back by {at}."
    if purpose == "followup":
        return (f"נתקשר לוודא שהכול תקין: {at}." if he
                else f"We will call you on {at} to check that all is well.")
    what = action or ("מה שהובטח" if he else "what we promised")
    return f"הבטחנו: {what} — עד {at}." if he else f"As promised: {what}, by {at}."
