"""Proxy headers only from the proxies this deployment names, and a warning when the signed
URL is not pinned (issue 15, item 9). Without IVR_PUBLIC_URL the URL a Twilio signature is
checked against is rebuilt from the request; a request Twilio signed for another deployment
with the same auth token must not pass here because its sender says Host: other.example or
X-Forwarded-Host: other.example."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from ivr.agents.gateway import HoldLoopGateway
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.proxies import TrustedProxies
from ivr.core.settings import Settings
from tests.conftest import TOKEN
from tests.test_processes import server
from tests.twilio import call_params, new_sid

UNTRUSTED = "203.0.113.9"
PROXY = "10.1.2.3"


def post_signed_for(client: Any, signed_url: str, headers: dict[str, str]) -> int:
    """A call start signed (with this deployment's token) for ``signed_url``."""
    params = call_params(new_sid(), "ringing")
    signature = RequestValidator(TOKEN).compute_signature(signed_url, params)
    r = client.post("/twilio/voice", data=params,
                    headers={"X-Twilio-Signature": signature, **headers})
    return int(r.status_code)


@pytest.fixture
def app_from(settings: Settings, clock: FrozenClock) -> Iterator[Any]:
    """``app_from(peer, **settings)``: the app, reached from client address ``peer``."""
    clients: list[TestClient] = []

    def make(peer: str, **extra: Any) -> TestClient:
        app = create_app(settings.model_copy(update={"route_every_seconds": 0, **extra}),
                         clock)
        client = TestClient(app, client=(peer, 40000))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def test_a_request_signed_for_another_deployment_is_refused_when_the_public_url_is_set(
        app_from: Any) -> None:
    for peer in (UNTRUSTED, PROXY):
        c = app_from(peer, public_url="https://ivr.example.com", trusted_proxies=[PROXY])
        assert post_signed_for(c, "https://other.example/twilio/voice",
                               {"Host": "other.example"}) == 403
        assert post_signed_for(c, "https://other.example/twilio/voice", {
            "X-Forwarded-Host": "other.example", "X-Forwarded-Proto": "https"}) == 403
        assert post_signed_for(c, "https://ivr.example.com/twilio/voice",
                               {"Host": "other.example"}) == 200


def test_forwarded_headers_from_an_untrusted_address_are_ignored(app_from: Any) -> None:
    c = app_from(UNTRUSTED, trusted_proxies=[PROXY])
    forged = {"X-Forwarded-Host": "other.example", "X-Forwarded-Proto": "https"}
    assert post_signed_for(c, "https://other.example/twilio/voice", forged) == 403
    # What it did send is what is checked: the scheme it used and its Host.
    assert post_signed_for(c, "http://testserver/twilio/voice", forged) == 200


def test_forwarded_headers_from_a_trusted_proxy_are_the_url_twilio_called(
        app_from: Any) -> None:
    c = app_from(PROXY, trusted_proxies=["10.0.0.0/8"])
    forwarded = {"X-Forwarded-Host": "ivr.example.com", "X-Forwarded-Proto": "https",
                 "X-Forwarded-For": "54.172.60.1"}
    assert post_signed_for(c, "https://ivr.example.com/twilio/voice", forwarded) == 200
    assert post_signed_for(c, "http://testserver/twilio/voice", forwarded) == 403


def test_the_client_address_is_the_forwarded_one_only_behind_a_trusted_proxy(
        app_from: Any, people: dict[str, int]) -> None:
    """The sign-in throttle counts per client: behind a trusted proxy the address it
    forwards; from anyone else the address the connection came from."""
    behind = app_from(PROXY, trusted_proxies=[PROXY])
    for i in range(30):
        r = behind.post("/agent/login", json={"username": f"user{i}", "password": "x"},
                        headers={"X-Forwarded-For": "198.51.100.1"})
        assert r.status_code == 401
    one, other = ({"X-Forwarded-For": f"198.51.100.{n}"} for n in (1, 2))
    body = {"username": "avi", "password": "avi-pw"}
    assert behind.post("/agent/login", json=body, headers=one).status_code == 429
    assert behind.post("/agent/login", json=body, headers=other).status_code == 200

    direct = app_from(UNTRUSTED, trusted_proxies=[PROXY])
    for i in range(30):  # a forged X-Forwarded-For does not spread its failures
        r = direct.post("/agent/login", json={"username": f"user{i}", "password": "x"},
                        headers={"X-Forwarded-For": f"198.51.100.{i + 10}"})
        assert r.status_code == 401
    assert direct.post("/agent/login", json=body, headers=other).status_code == 429


@pytest.mark.parametrize(("chain", "client"), [
    ("198.51.100.7", "198.51.100.7"),
    ("198.51.100.7, 10.0.0.2", "198.51.100.7"),  # through two of ours
    ("6.6.6.6, 198.51.100.7, 10.0.0.2", "198.51.100.7"),  # the client's own claim left
    ("10.0.0.3, 10.0.0.2", "10.0.0.3"),
    ("", "10.0.0.9"),
])
def test_the_client_behind_a_chain_of_trusted_proxies(chain: str, client: str) -> None:
    assert TrustedProxies(["10.0.0.0/8"]).client("10.0.0.9", chain) == client


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    with pytest.raises(ValueError, match="not an IP address or network: 'nginx'"):
        Settings(_env_file=None, trusted_proxies="10.0.0.1, nginx")
    assert Settings(_env_file=None, trusted_proxies="10.0.0.1, 10.2.0.0/16, ::1") \
        .trusted_proxies == ["10.0.0.1", "10.2.0.0/16", "::1"]


def test_no_public_url_outside_the_demo_is_warned_at_start_up_and_in_readyz(
        settings: Settings, clock: FrozenClock, caplog: pytest.LogCaptureFixture) -> None:
    """Outside the demo's configuration (SQLite and no Twilio account SID: it answers the
    simulator, not Twilio): PostgreSQL, or an account SID."""
    cases = [(settings, not settings.is_sqlite),
             (settings.model_copy(update={"twilio_account_sid": "AC" + "1" * 32}), True),
             (settings.model_copy(update={"public_url": "https://ivr.example.com",
                                          "twilio_account_sid": "AC" + "1" * 32}), False)]
    for configured, warned in cases:
        caplog.clear()
        with caplog.at_level(logging.WARNING), TestClient(
                create_app(configured, clock, HoldLoopGateway())) as c:
            ready = c.get("/readyz")
        logged = [r.getMessage() for r in caplog.records
                  if r.getMessage().startswith("IVR_PUBLIC_URL is not set")]
        assert ready.status_code == 200  # a warning, not a failure
        assert bool(logged) == warned, (configured.database_url, logged)
        assert ("warnings" in ready.json()) == warned
        if warned:
            assert ready.json()["warnings"] == logged
            assert "set IVR_PUBLIC_URL to the URL Twilio calls" in logged[0]


@pytest.mark.slow
def test_ivr_serve_believes_no_forwarded_header_from_localhost(database_url: str,
                                                               menus_dir: Path) -> None:
    """uvicorn believes X-Forwarded-* from 127.0.0.1 by default; ``ivr serve`` turns that
    off, so only IVR_TRUSTED_PROXIES decides."""
    forged = {"Host": "other.example", "X-Forwarded-Proto": "https",
              "X-Forwarded-Host": "other.example"}
    with server(database_url, menus_dir) as (url, _proc), httpx.Client(base_url=url,
                                                                        timeout=10) as c:
        assert post_signed_for(c, "https://other.example/twilio/voice", forged) == 403
        assert post_signed_for(c, f"{url}/twilio/voice", {}) == 200
    with server(database_url, menus_dir, IVR_TRUSTED_PROXIES="127.0.0.1") as (url, _proc), \
            httpx.Client(base_url=url, timeout=10) as c:
        assert post_signed_for(c, "https://other.example/twilio/voice", forged) == 200
