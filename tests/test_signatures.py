"""Both of Twilio's signing schemes, the public URL behind a proxy, and turning checks off."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from ivr.app import create_app, route_paths
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from tests.twilio import call_params, new_sid, signed_post

SECRET = "shared-key-secret"
KEY_ID = "webhooks_sharedkey_01"


@pytest.fixture
def shared_client(settings: Settings, clock: FrozenClock) -> Iterator[TestClient]:
    s = Settings(_env_file=None,
                 **(settings.model_dump() | {"twilio_shared_keys": {KEY_ID: SECRET}}))
    with TestClient(create_app(s, clock)) as c:
        yield c


def _shared_post(client: TestClient, algorithm: str, secret: str = SECRET,
                 key: str = KEY_ID) -> int:
    params = call_params(new_sid(), "ringing")
    signed_with = algorithm if algorithm in ("HMAC_SHA1", "HMAC_SHA256") else "HMAC_SHA256"
    sig = RequestValidator(secret).compute_signature("http://testserver/twilio/voice", params,
                                                     signed_with)
    r = client.post("/twilio/voice", data=params, headers={
        "X-Twilio-Signature": sig,
        "X-Twilio-Webhooks-Signature-Settings": f"key={key},algorithm={algorithm}"})
    return r.status_code


@pytest.mark.parametrize("algorithm", ["HMAC_SHA1", "HMAC_SHA256"])
def test_shared_key_signatures_are_accepted(shared_client: TestClient, algorithm: str) -> None:
    assert _shared_post(shared_client, algorithm) == 200


@pytest.mark.parametrize(("secret", "key", "algorithm"), [
    ("wrong-secret", KEY_ID, "HMAC_SHA256"),
    (SECRET, "webhooks_sharedkey_unknown", "HMAC_SHA256"),
    (SECRET, KEY_ID, "HMAC_MD5"),
])
def test_bad_shared_key_signatures_are_refused(shared_client: TestClient, secret: str,
                                               key: str, algorithm: str) -> None:
    assert _shared_post(shared_client, algorithm, secret, key) == 403


def test_public_url_is_what_gets_verified(settings: Settings, clock: FrozenClock) -> None:
    s = settings.model_copy(update={"public_url": "https://ivr.example.com"})
    with TestClient(create_app(s, clock)) as c:
        params = call_params(new_sid(), "ringing")
        good = RequestValidator("test-auth-token").compute_signature(
            "https://ivr.example.com/twilio/voice", params)
        assert c.post("/twilio/voice", data=params,
                      headers={"X-Twilio-Signature": good}).status_code == 200
        # Signed for the URL the proxy forwarded to, not the one Twilio called: refused.
        assert signed_post(c, "/twilio/voice", call_params(new_sid(), "ringing")).status_code \
            == 403


def test_turning_checks_off_warns_at_every_start(settings: Settings, clock: FrozenClock,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    s = settings.model_copy(update={"validate_signatures": False})
    with caplog.at_level(logging.WARNING), TestClient(create_app(s, clock)) as c:
        r = c.post("/twilio/voice", data=call_params(new_sid(), "ringing"))
        assert r.status_code == 200
    assert any("signature validation is OFF" in m for m in caplog.messages)


def test_every_twilio_route_refuses_unsigned_requests(settings: Settings,
                                                     clock: FrozenClock) -> None:
    app = create_app(settings, clock)
    routes = [p for p, _methods in route_paths(app) if p.startswith("/twilio/")]
    assert len(routes) >= 7
    with TestClient(app) as client:
        for path in routes:
            assert client.post(path, data=call_params(new_sid())).status_code == 403, path
            assert signed_post(client, path, call_params(new_sid()), token="forged"
                               ).status_code == 403, path
