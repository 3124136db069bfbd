"""Fuzzing the JSON API with schemathesis: requests generated from the app's own OpenAPI
document (``app.openapi()``), sent in-process to the running app (the test client inside
its lifespan, no network), with valid credentials so they reach the handlers: the admin
token for /admin, /crm and /metrics, an agent's session (or a supervisor's) for /agent.

No 5xx, and every answer conforms to the schema (the documented response bodies and
content types). The event stream (/agent/events) never ends and is left out; logging out
is fuzzed last so the session serves the rest. Bounded and derandomized examples.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)
from starlette.testclient import TestClient

from tests.agent_fixtures import login
from tests.conftest import ADMIN
from tests.twilio import BASE

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.filter_too_much])
LEFT_OUT = {("GET", "/agent/events"), ("POST", "/agent/logout")}
CHECKS = [schemathesis.checks.not_a_server_error, response_schema_conformance,
          content_type_conformance]


@pytest.fixture
def api(app_client: TestClient, people: dict[str, int]) -> dict[str, Any]:
    """The app's schema, its operations, and credentials for each kind of route."""
    schema = schemathesis.openapi.from_dict(app_client.app.openapi())  # type: ignore[attr-defined]
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    return {
        "operations": {(op.method.upper(), op.path): op for op in operations},
        "admin": {"Authorization": f"Bearer {ADMIN}"},
        "agent": login(app_client, "dana.agent"),
        "supervisor": login(app_client, "boss"),
    }


def request(client: TestClient, case: Any, auth: dict[str, str]) -> Any:
    """The case sent by the test client (requests' keywords turned into httpx's)."""
    kwargs = case.as_transport_kwargs(base_url=BASE, headers=auth)
    kwargs.pop("auth", None)
    kwargs.pop("allow_redirects", None)
    if isinstance(kwargs.get("data"), bytes | str):
        kwargs["content"] = kwargs.pop("data")
    cookies = kwargs.pop("cookies", None) or {}
    if cookies:
        kwargs["headers"] = {**kwargs.get("headers", {}),
                             "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    return client.request(**kwargs, follow_redirects=False)


def send(client: TestClient, case: Any, auth: dict[str, str]) -> Any:
    response = request(client, case, auth)
    case.validate_response(response, checks=CHECKS)
    return response


def _auth(api: dict[str, Any], path: str, who: str) -> dict[str, str]:
    if path.startswith("/agent/"):
        return dict(api["agent" if who == "agent" else "supervisor"])
    return dict(api["admin"])


@FUZZ
@given(data=st.data(), who=st.sampled_from(["agent", "supervisor"]))
def test_every_json_operation(app_client: TestClient, api: dict[str, Any],
                              data: st.DataObject, who: str) -> None:
    """Each example: a few operations, each with a request schemathesis generates for it
    (valid per the schema), and the right credentials."""
    keys = sorted(k for k in api["operations"] if k not in LEFT_OUT)
    for key in data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=4),
                         label="operations"):
        case = data.draw(api["operations"][key].as_strategy(), label="case")
        send(app_client, case, _auth(api, key[1], who))


@settings(FUZZ, max_examples=10)
@given(data=st.data())
def test_operations_with_invalid_input(app_client: TestClient, api: dict[str, Any],
                                       data: st.DataObject) -> None:
    """Requests that break the schema (wrong types, missing fields): 4xx, never 5xx."""
    key = data.draw(st.sampled_from(sorted(k for k in api["operations"] if k not in LEFT_OUT)),
                    label="operation")
    strategy = api["operations"][key].as_strategy(
        generation_mode=schemathesis.GenerationMode.NEGATIVE)
    case = data.draw(strategy, label="case")
    response = request(app_client, case, _auth(api, key[1], "agent"))
    assert response.status_code < 500, (key, response.status_code, response.text[:300])


def test_logout_conforms(app_client: TestClient, api: dict[str, Any]) -> None:
    case = api["operations"][("POST", "/agent/logout")].Case()
    assert send(app_client, case, api["agent"]).status_code == 204


def test_a_customer_id_over_the_integer_column_is_a_422(app_client: TestClient) -> None:
    """Found by the fuzzing: on PostgreSQL the look-up failed with "integer out of range"
    (HTTP 500)."""
    for customer_id in (2**31, 0):
        r = app_client.get(f"/crm/customers/{customer_id}",
                           headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 422, r.text


def test_metrics_are_documented_as_text(app_client: TestClient) -> None:
    """Found by the fuzzing: /metrics answers Prometheus' text format, and its schema said
    application/json."""
    doc = app_client.app.openapi()["paths"]["/metrics"]["get"]  # type: ignore[attr-defined]
    assert list(doc["responses"]["200"]["content"]) == ["text/plain"]
    r = app_client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
