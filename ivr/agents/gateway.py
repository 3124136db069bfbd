"""How a waiting caller is taken out of the Twilio queue to be connected to an agent.

* ``TwilioGateway`` (Twilio credentials configured): the Queue Members REST resource,
  ``client.queues(QueueSid).members(CallSid).update(url=…/twilio/connect?a=OFFER)``, sent
  through the twilio package. Twilio dequeues that very caller at once and fetches the URL
  (and requests the ``<Enqueue action>`` with QueueResult=redirected, which we answer
  empty). We pick the caller ourselves instead of ``<Dial><Queue>``, which always takes
  the head of Twilio's queue, because our order is priority, then the time the caller
  first joined (kept when an agent leg fails).
* ``HoldLoopGateway`` (no credentials: the demo, the simulator): the next request to the
  caller's ``<Enqueue waitUrl>`` answers ``<Leave/>``; Twilio then requests the
  ``<Enqueue action>`` with QueueResult=leave, which answers the same connect TwiML. The
  wait loop is played in short pieces, so this costs at most a few seconds.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Gateway(Protocol):
    #: True: the caller is released by the wait loop (``<Leave/>``), not by the REST API.
    holds_callers: bool

    def dequeue(self, queue_sid: str, call_sid: str, url: str) -> None:
        """Take the caller out of the queue and run ``url``'s TwiML (may raise)."""
        ...


class HoldLoopGateway:
    holds_callers = True

    def dequeue(self, queue_sid: str, call_sid: str, url: str) -> None:
        return None


class TwilioGateway:
    holds_callers = False

    def __init__(self, account_sid: str, auth_token: str, *, http_client: Any = None,
                 api_base_url: str | None = None) -> None:
        self.client = twilio_client(account_sid, auth_token, http_client=http_client,
                                    api_base_url=api_base_url)

    def dequeue(self, queue_sid: str, call_sid: str, url: str) -> None:
        self.client.queues(queue_sid).members(call_sid).update(url=url, method="POST")


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


#: Seconds any request to Twilio's REST API may take (the twilio client has no default:
#: a hung request would stop routing in its process). Keep IVR_CALLBACK_LEASE_SECONDS
#: well above it, so a claim is not taken over while its create is still being answered.
TWILIO_HTTP_TIMEOUT = 10.0


def uncertain(exc: BaseException) -> bool:
    """Whether a failed request may still have reached Twilio: a timeout, a dropped
    connection or a 5xx (unlike a 4xx, which Twilio refused and did not act on)."""
    from twilio.base.exceptions import TwilioRestException  # noqa: PLC0415

    if isinstance(exc, TwilioRestException):
        return bool(exc.status >= 500)
    return isinstance(exc, OSError)  # requests' and socket errors (timeouts included)


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


def twilio_client(account_sid: str, auth_token: str, *, http_client: Any = None,
                  api_base_url: str | None = None) -> Any:
    """The twilio REST client; ``api_base_url`` sends its requests to a stand-in (tests,
    staging) instead of https://api.twilio.com."""
    from twilio.rest import Client  # noqa: PLC0415  (heavy import, only when used)

    if http_client is None:
        if api_base_url:
            http_client = RebasedHttpClient(api_base_url)
        else:
            from twilio.http.http_client import TwilioHttpClient  # noqa: PLC0415

            http_client = TwilioHttpClient(timeout=TWILIO_HTTP_TIMEOUT)
    return Client(account_sid, auth_token, http_client=http_client)


def RebasedHttpClient(base: str) -> Any:  # a class made on first use (twilio imports late)
    from twilio.http.http_client import TwilioHttpClient  # noqa: PLC0415

    class _Rebased(TwilioHttpClient):  # type: ignore[misc]
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            for prefix in ("https://api.twilio.com", "https://api.us1.twilio.com"):
                if url.startswith(prefix):
                    url = base.rstrip("/") + url[len(prefix):]
            return super().request(method, url, *args, **kwargs)

    return _Rebased(timeout=TWILIO_HTTP_TIMEOUT)
