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
from typing import Any, Protocol

from ivr.core.twilio_rest import twilio_client

log = logging.getLogger(__name__)


class Gateway(Protocol):
    #: True: the caller is released by the wait loop (``<Leave/>``), not by the REST API.
    holds_callers: bool

    def dequeue(self, queue_sid: str, call_sid: str, url: str) -> None:
        """Take the caller out of the queue and run ``url``'s TwiML (may raise)."""
        ...

    def call_status(self, call_sid: str) -> str | None:
        """Twilio's status of a call (queued, ringing, in-progress, completed, busy, …);
        None when this gateway cannot ask (no account). May raise."""
        ...


class HoldLoopGateway:
    holds_callers = True

    def dequeue(self, queue_sid: str, call_sid: str, url: str) -> None:
        return None

    def call_status(self, call_sid: str) -> str | None:
        return None


class TwilioGateway:
    holds_callers = False

    def __init__(self, account_sid: str, auth_token: str, *, http_client: Any = None,
                 api_base_url: str | None = None) -> None:
        self.client = twilio_client(account_sid, auth_token, http_client=http_client,
                                    api_base_url=api_base_url)

    def dequeue(self, queue_sid: str, call_sid: str, url: str) -> None:
        self.client.queues(queue_sid).members(call_sid).update(url=url, method="POST")

    def call_status(self, call_sid: str) -> str | None:
        return str(self.client.calls(call_sid).fetch().status)
