"""Who may do what on the agent API: sign-in, sessions, roles, and another agent's calls."""

from __future__ import annotations

from sqlalchemy import create_engine, select
from starlette.testclient import TestClient

from ivr.agents.models import agent_sessions
from ivr.app import route_paths
from ivr.core.clock import FrozenClock
from tests.agent_fixtures import DANA, available, login
from tests.agent_flow import TwilioDriver
from tests.conftest import TOKEN

# Every /agent route but the sign-in, the page and its static files (the interface's
# words among them) needs a session.
OPEN = {"/agent/login", "/agent/", "/agent/static", "/agent/i18n/messages.js",
        "/agent/reports/reports.css"}
# Pages a browser opens: without a session they send it to the console's sign-in (no data).
PAGES = {"/agent/reports"}


def agent_routes(client: TestClient) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for path, methods in route_paths(client.app):  # type: ignore[arg-type]
        if path.startswith(("/agent", "/supervisor")) and path not in OPEN:
            out.extend((m, path.replace("{call_sid}", "CA1")) for m in sorted(methods)
                       if m != "HEAD")
    return out


def test_every_agent_route_refuses_without_a_session(app_client: TestClient,
                                                     people: dict[str, int]) -> None:
    routes = agent_routes(app_client)
    assert len(routes) >= 7
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            r = app_client.request(method, path, json={}, headers=headers,
                                   follow_redirects=False)
            if path in PAGES:
                assert (r.status_code, r.headers["location"]) == (303, "/agent/"), path
            else:
                assert r.status_code == 401, (method, path, r.status_code)


def test_customer_data_is_never_in_an_unauthenticated_answer(
        app_client: TestClient, people: dict[str, int]) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    sid = twilio.start(DANA, ["2"])
    for path in (f"/agent/calls/{sid}/context", "/agent/supervisor", "/agent/events",
                 "/crm/customers?phone=0501234567", "/crm/customers/1"):
        r = app_client.get(path)
        assert r.status_code == 401, path
        assert "דנה" not in r.text and "1001" not in r.text


def test_wrong_password_and_unknown_user_look_the_same(app_client: TestClient,
                                                       people: dict[str, int]) -> None:
    a = app_client.post("/agent/login", json={"username": "avi", "password": "nope"})
    b = app_client.post("/agent/login", json={"username": "nobody", "password": "nope"})
    assert (a.status_code, b.status_code) == (401, 401)
    assert a.json() == b.json() == {"detail": "wrong username or password"}


def test_sessions_are_stored_hashed_expire_and_end_at_sign_out(
        app_client: TestClient, people: dict[str, int], clock: FrozenClock,
        database_url: str) -> None:
    auth = login(app_client, "avi")
    token = auth["Authorization"].split()[1]
    engine = create_engine(database_url)
    with engine.connect() as conn:
        stored = list(conn.execute(select(agent_sessions.c.token_hash)).scalars())
    engine.dispose()
    assert token not in stored and len(stored[0]) == 64
    assert app_client.get("/agent/me", headers=auth).status_code == 200
    assert app_client.post("/agent/logout", headers=auth).status_code == 204
    assert app_client.get("/agent/me", headers=auth).status_code == 401
    auth = login(app_client, "avi")
    clock.advance(hours=12, seconds=1)
    assert app_client.get("/agent/me", headers=auth).status_code == 401


def test_the_console_cookie_is_httponly_and_strict(app_client: TestClient,
                                                   people: dict[str, int]) -> None:
    r = app_client.post("/agent/login", json={"username": "avi", "password": "avi-pw"})
    cookie = r.headers["set-cookie"]
    assert "ivr_agent_session=" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert app_client.get("/agent/me").json()["username"] == "avi"  # the cookie alone


def test_an_agent_reads_only_the_calls_offered_to_them(
        app_client: TestClient, people: dict[str, int]) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    noa = login(app_client, "dana.agent")
    avi = login(app_client, "avi")
    available(app_client, noa)
    sid = twilio.start(DANA, ["2"])
    twilio.connect(sid)
    assert app_client.get(f"/agent/calls/{sid}/context", headers=noa).status_code == 200
    r = app_client.get(f"/agent/calls/{sid}/context", headers=avi)
    assert r.status_code == 404 and "דנה" not in r.text
    r = app_client.post(f"/agent/calls/{sid}/wrapup", headers=avi,
                        json={"topic": "x", "outcome": "y", "resolved": True})
    assert r.status_code == 404
    boss = login(app_client, "boss")
    assert app_client.get(f"/agent/calls/{sid}/context", headers=boss).status_code == 200


def test_supervisor_view_is_for_admins(app_client: TestClient,
                                       people: dict[str, int]) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    twilio.start(DANA, ["2"])
    avi = login(app_client, "avi")
    assert app_client.get("/agent/supervisor", headers=avi).status_code == 403
    board = app_client.get("/agent/supervisor", headers=login(app_client, "boss")).json()
    assert {a["username"] for a in board["agents"]} == {"dana.agent", "avi", "boss"}
    queue = board["queues"][0]
    assert (queue["queue"], queue["waiting"]) == ("support-open-incidents", 1)
    assert queue["calls"][0]["customer_name"] == "דנה כהן"
    assert queue["calls"][0]["priority"] == 10


def test_state_changes_an_agent_may_not_make(app_client: TestClient,
                                             people: dict[str, int]) -> None:
    avi = login(app_client, "avi")
    r = app_client.post("/agent/state", json={"state": "on_call"}, headers=avi)
    assert r.status_code == 422
    available(app_client, avi)
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    sid = twilio.start(DANA, ["2"])
    twilio.connect(sid)
    r = app_client.post("/agent/state", json={"state": "offline"}, headers=avi)
    assert r.status_code == 409 and "reserved" in r.json()["detail"]
    twilio.agent_answers(sid)
    twilio.hang_up(sid)
    r = app_client.post("/agent/state", json={"state": "available"}, headers=avi)
    assert r.status_code == 409 and "wrap-up" in r.json()["detail"]
