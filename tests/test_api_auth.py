"""Who may call what, outside the Twilio webhooks (their signature: ``test_signatures.py``)
and the agent API (sessions: ``test_agent_auth.py``): API tokens by role (``ivr.api_tokens``),
from the environment (plain or ``sha256:``) or from ``ivr tokens``, stored hashed.

Every route of the app is either public (``PUBLIC``, each with its reason), or has the
roles that may call it (``ROLE_RULES``), or belongs to one of the two other tests. A new
route nobody classified fails ``test_every_route_is_classified``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import create_engine, select
from starlette.testclient import TestClient

from ivr.agents.endpoints import STATIC_DIR
from ivr.app import create_app, route_paths
from ivr.auth import tokens as api_tokens
from ivr.auth.tokens import ROLES
from ivr.cli import main
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from tests.conftest import TOKEN
from tests.test_agent_auth import OPEN as AGENT_OPEN

# Deliberately public, and why. The API documentation describes routes and their token
# requirement, never data; the Twilio routes are not in it.
PUBLIC = {
    "/healthz": "liveness probe of the load balancer",
    "/readyz": "readiness probe: names the failed check, holds no data",
    "/openapi.json": "the API's schema (no data)",
    "/docs": "Swagger UI over the schema",
    "/docs/oauth2-redirect": "part of the Swagger UI",
    "/redoc": "ReDoc over the schema",
    "/agent/": "the console page (it signs in itself)",
    "/agent/login": "the agents' sign-in",
    "/agent/static": "the console's script and style",
    "/agent/i18n/messages.js": "the console's words in its languages (no data)",
    "/agent/reports/reports.css": "the reports page's style sheet (no data)",
}
# Covered elsewhere: the Twilio signature (every /twilio route) and agent sessions
# (tests/test_agent_auth.py: /agent and /supervisor).
ELSEWHERE = ("/twilio/", "/agent/", "/supervisor/")
ROLE_RULES: list[tuple[re.Pattern[str], frozenset[str]]] = [
    (re.compile(r"/admin/.+"), frozenset({"admin"})),
    (re.compile(r"/crm/customers(/.*)?"), frozenset({"admin"})),
    (re.compile(r"/crm/sources/\{[^/]+\}/records"), frozenset({"admin", "integration"})),
    (re.compile(r"/metrics"), frozenset({"admin", "metrics"})),
    # An integration says a promise was kept (callbacks.followups).
    (re.compile(r"/api/promises/\{[^/]+\}/kept"), frozenset({"admin", "integration"})),
]
TABLE = api_tokens.api_tokens
ENV = {"admin": "env-admin-token", "integration": "env-crm-token",
       "metrics": "env-metrics-token"}


def roles_of(path: str) -> frozenset[str] | None:
    for pattern, roles in ROLE_RULES:
        if pattern.fullmatch(path):
            return roles
    return None


def classify(client: TestClient) -> tuple[list[tuple[str, str, frozenset[str]]], list[str]]:
    """(method, path, roles) of every token-protected route, and the unclassified paths."""
    protected: list[tuple[str, str, frozenset[str]]] = []
    unclassified: list[str] = []
    for path, methods in route_paths(client.app):  # type: ignore[arg-type]
        if path in PUBLIC or path.startswith(ELSEWHERE):
            continue
        roles = roles_of(path)
        if roles is None:
            unclassified.append(path)
            continue
        protected.extend((m, path, roles) for m in sorted(methods) if m != "HEAD")
    return protected, unclassified


def concrete(path: str) -> str:
    return re.sub(r"\{[^/]+\}", "1", path)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=["env", "table"])
def secured(request: pytest.FixtureRequest, settings: Settings, clock: FrozenClock,
            database_url: str) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The app and one token per role: from the environment, or made in the api_tokens
    table (and then no environment token at all)."""
    update: dict[str, object] = {"route_every_seconds": 0}
    if request.param == "env":
        tokens = dict(ENV)
        update.update(admin_token=SecretStr(ENV["admin"]),
                      crm_token=SecretStr(ENV["integration"]),
                      metrics_token=SecretStr(ENV["metrics"]))
    else:
        update.update(admin_token=SecretStr(""))
        engine = create_engine(database_url)
        with engine.begin() as conn:
            tokens = {role: api_tokens.create(conn, f"test-{role}", role, clock.now())
                      for role in ROLES}
        engine.dispose()
    with TestClient(create_app(settings.model_copy(update=update), clock)) as c:
        yield c, tokens


def test_every_route_is_classified(client: TestClient) -> None:
    protected, unclassified = classify(client)
    assert unclassified == [], (
        f"routes neither public nor given roles: {unclassified}; add them to ROLE_RULES "
        "(and protect them with ivr.auth.dependencies.RequireRole) or, with a reason, to PUBLIC")
    assert {p for _m, p, _r in protected} >= {
        "/admin/menus", "/admin/menus/reload", "/crm/sources/{source}/records",
        "/crm/customers", "/crm/customers/{customer_id}", "/metrics"}
    # The agent routes open without a session are exactly the ones listed public here.
    assert {p for p in PUBLIC if p.startswith("/agent")} == AGENT_OPEN


def test_a_route_nobody_classified_is_caught(client: TestClient) -> None:
    client.app.add_api_route("/reports", lambda: {}, methods=["GET"])  # type: ignore[attr-defined]
    assert classify(client)[1] == ["/reports"]


def test_every_protected_route_needs_a_token_of_its_role(
        secured: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = secured
    protected, _ = classify(client)
    assert len(protected) >= 6
    for method, path, roles in protected:
        url = concrete(path)
        for headers in ({}, bearer("garbage"), {"Authorization": f"Basic {tokens['admin']}"},
                        bearer(tokens["admin"] + "x")):
            r = client.request(method, url, json={}, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json()["detail"].startswith("invalid or missing")
        for role in ROLES:
            r = client.request(method, url, json={}, headers=bearer(tokens[role]))
            if role in roles:
                assert r.status_code not in (401, 403), (method, path, role, r.text)
            else:
                assert r.status_code == 403, (method, path, role, r.status_code)
                assert r.json()["detail"] == (
                    f"this token's role ({role}) may not use this endpoint; it needs: "
                    + ", ".join(r for r in ROLES if r in roles))


def test_the_public_routes_need_no_token(client: TestClient) -> None:
    static = sorted(p.name for p in Path(STATIC_DIR).iterdir())
    assert static
    for path, methods in route_paths(client.app):  # type: ignore[arg-type]
        if path not in PUBLIC:
            continue
        url = f"{path}/{static[0]}" if path == "/agent/static" else path
        for method in sorted(methods or {"GET"}):
            r = client.request(method, url, json={})
            assert r.status_code not in (401, 403), (method, path, r.status_code)
            assert r.status_code < 500, (method, path, r.status_code)


def test_the_schema_marks_the_protected_routes(client: TestClient) -> None:
    schema = client.app.openapi()  # type: ignore[attr-defined]
    protected, _ = classify(client)
    for method, path, _roles in protected:
        operation = schema["paths"][path][method.lower()]
        assert operation["security"] == [{"ApiToken": []}], (method, path)
    assert schema["paths"]["/healthz"]["get"].get("security") is None


def test_env_tokens_may_be_given_as_their_sha256(settings: Settings,
                                                 clock: FrozenClock) -> None:
    hashed = Settings(_env_file=None, database_url=settings.database_url,
                      menus_dir=settings.menus_dir, watch_menus=False, twilio_auth_token=TOKEN,
                      route_every_seconds=0, db_pool_size=4,
                      admin_token="sha256:" + api_tokens.digest("let-me-in"),
                      metrics_token="sha256:" + api_tokens.digest("scraper").upper())
    assert "let-me-in" not in hashed.model_dump_json()
    with TestClient(create_app(hashed, clock)) as c:
        assert c.get("/admin/menus", headers=bearer("let-me-in")).status_code == 200
        assert c.get("/metrics", headers=bearer("scraper")).status_code == 200
        assert c.get("/admin/menus", headers=bearer("scraper")).status_code == 403
        # Knowing the configured digest is not knowing the token.
        for value in (hashed.admin_token.get_secret_value(), api_tokens.digest("let-me-in")):
            assert c.get("/admin/menus", headers=bearer(value)).status_code == 401


@pytest.mark.parametrize("value", ["sha256:abc", "sha256:" + "g" * 64,
                                   "sha256:" + "a" * 65])
def test_a_malformed_sha256_setting_is_refused_at_start(value: str) -> None:
    with pytest.raises(ValidationError, match=r"64 hex digits"):
        Settings(_env_file=None, metrics_token=value)


def test_last_use_is_noted_at_most_once_a_minute(
        settings: Settings, clock: FrozenClock, database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as conn:
        token = api_tokens.create(conn, "prometheus", "metrics", clock.now())

    def last_used() -> object:
        with engine.connect() as conn:
            return conn.execute(select(TABLE.c.last_used_at)).scalar_one()

    quiet = settings.model_copy(update={"route_every_seconds": 0})
    try:
        with TestClient(create_app(quiet, clock)) as c:
            assert last_used() is None
            start = clock.now()
            assert c.get("/metrics", headers=bearer(token)).status_code == 200
            assert last_used() == start
            clock.advance(seconds=59)
            assert c.get("/metrics", headers=bearer(token)).status_code == 200
            assert last_used() == start
            clock.advance(seconds=1)
            assert c.get("/metrics", headers=bearer(token)).status_code == 200
            assert last_used() == clock.now()
    finally:
        engine.dispose()


# -- ivr tokens


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("IVR_DATABASE_URL", database_url)
    monkeypatch.setenv("IVR_LOG_LEVEL", "WARNING")
    return database_url


def everything_stored(database_url: str) -> list[str]:
    """Every value of every api_tokens row, as text; on SQLite also the database's bytes."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        out = [str(v) for row in conn.execute(select(TABLE)) for v in row]
    engine.dispose()
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        for file in (path, path.with_name(path.name + "-wal")):
            if file.exists():
                out.append(file.read_bytes().decode("latin-1"))
    return out


def test_cli_tokens_are_shown_once_stored_hashed_and_revocable(
        cli_env: str, settings: Settings, clock: FrozenClock,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokens", "create", "--name", "prometheus", "--role", "metrics"]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("ivr_") and len(token) > 40 and "\n" not in token
    assert "shown only this once" in out.err and token not in out.err
    assert main(["tokens", "create", "--name", "billing-crm", "--role", "integration"]) == 0
    crm_token = capsys.readouterr().out.strip()

    stored = everything_stored(cli_env)
    assert api_tokens.digest(token) in stored
    for raw in (token, crm_token, token.removeprefix("ivr_")):
        assert not any(raw in value for value in stored)

    assert main(["tokens", "create", "--name", "prometheus", "--role", "admin"]) == 1
    assert "a token named 'prometheus' exists already" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["tokens", "create", "--name", "x", "--role", "root"])
    assert usage.value.code == 2
    capsys.readouterr()

    quiet = settings.model_copy(update={"route_every_seconds": 0, "admin_token": SecretStr("")})
    with TestClient(create_app(quiet, clock)) as c:
        assert c.get("/metrics", headers=bearer(token)).status_code == 200
        assert c.get("/admin/menus", headers=bearer(token)).status_code == 403
        assert c.post("/crm/sources/crm/records", json={"records": []},
                      headers=bearer(crm_token)).status_code == 200

        assert main(["tokens", "list", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [(t["name"], t["role"], t["revoked_at"]) for t in listed] == [
            ("billing-crm", "integration", None), ("prometheus", "metrics", None)]
        assert listed[1]["last_used_at"] == clock.now().isoformat()
        assert all(set(t) == {"name", "role", "created_at", "last_used_at", "revoked_at"}
                   for t in listed)

        assert main(["tokens", "revoke", "prometheus"]) == 0
        assert capsys.readouterr().out == "token 'prometheus' revoked\n"
        r = c.get("/metrics", headers=bearer(token))
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.post("/crm/sources/crm/records", json={"records": []},
                      headers=bearer(crm_token)).status_code == 200

    assert main(["tokens", "revoke", "prometheus"]) == 0
    assert capsys.readouterr().out == "token 'prometheus' was revoked already\n"
    assert main(["tokens", "revoke", "nobody"]) == 1
    assert capsys.readouterr().err == "error: no token named 'nobody'\n"
    assert main(["tokens", "list"]) == 0
    text = capsys.readouterr().out
    assert [line.split()[0] for line in text.splitlines()] == ["billing-crm", "prometheus"]
    assert "revoked" in text.splitlines()[1] and "active" in text.splitlines()[0]
    assert token not in text and crm_token not in text
