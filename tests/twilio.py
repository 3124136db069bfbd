"""Helpers that play Twilio's part in the tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from ivr.simulator.caller import PhoneCall, Transcript
from tests.conftest import TOKEN

BASE = "http://testserver"


def call_params(call_sid: str, status: str = "in-progress", **extra: str) -> dict[str, str]:
    """The form fields Twilio posts on an inbound voice call."""
    return {
        "AccountSid": "AC" + "0" * 32, "ApiVersion": "2010-04-01", "CallSid": call_sid,
        "CallStatus": status, "Direction": "inbound", "From": "+972501234567",
        "Caller": "+972501234567", "To": "+97235550100", "Called": "+97235550100",
        "FromCountry": "IL", "ToCountry": "IL", **extra,
    }


def new_sid() -> str:
    return "CA" + uuid.uuid4().hex


def signed_post(client: TestClient, path: str, params: dict[str, str],
                token: str = TOKEN, headers: dict[str, str] | None = None) -> Any:
    signature = RequestValidator(token).compute_signature(BASE + path, params)
    return client.post(path, data=params,
                       headers={"X-Twilio-Signature": signature, **(headers or {})})


def play(client: TestClient, inputs: Iterable[str | None], **kw: Any) -> Transcript:
    call = PhoneCall(client, BASE, TOKEN, inputs=iter(inputs), **kw)
    return call.run()
