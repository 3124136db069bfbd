"""What the agent API tells the console beyond the agent itself: the centre's time zone (the
console shows every time in it, whatever the browser's zone) and, on the supervisor's
board, whom each agent is talking to — the caller's name or masked number and the queue,
not a bare CallSid."""

from __future__ import annotations

from starlette.testclient import TestClient

from callbacks.policy import load_policies
from tests.agent_fixtures import DANA, available, login
from tests.agent_flow import TwilioDriver
from tests.conftest import ROOT, TOKEN


def test_the_centres_time_zone_comes_with_the_agent_and_the_board(
        app_client: TestClient, people: dict[str, int]) -> None:
    r = app_client.post("/agent/login", json={"username": "boss", "password": "boss-pw"})
    assert r.json()["agent"]["timezone"] == "Asia/Jerusalem"  # the demo menus' zone
    boss = login(app_client, "boss")
    assert app_client.get("/agent/me", headers=boss).json()["timezone"] == "Asia/Jerusalem"
    board = app_client.get("/agent/supervisor", headers=boss).json()
    assert board["timezone"] == "Asia/Jerusalem"


def test_the_board_says_who_each_agent_is_talking_to(
        app_client: TestClient, people: dict[str, int]) -> None:
    noa, avi = login(app_client, "dana.agent"), login(app_client, "avi")
    available(app_client, noa)
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    known = twilio.start(DANA, ["2"])  # Dana, identified: to Noa (support-open-incidents)
    available(app_client, avi)
    unknown = twilio.start("+972541112233", ["2", "1"])  # unknown; English, billing: Avi
    board = app_client.get("/agent/supervisor", headers=login(app_client, "boss")).json()
    calls = {a["username"]: (a["current_call_sid"], a["call"]) for a in board["agents"]}
    assert calls["dana.agent"] == (known, {"caller": "דנה כהן",
                                           "queue": "support-open-incidents",
                                           "callback": False, "held": False,
                                           "transfer": None})
    sid, call = calls["avi"]
    assert sid == unknown  # a caller we do not know: the number, masked
    assert call == {"caller": "+97254***2233", "queue": "billing", "callback": False,
                    "held": False, "transfer": None}
    assert calls["boss"] == (None, None)


def test_the_demo_centre_speaks_and_shows_times_in_one_zone(
        app_client: TestClient, people: dict[str, int]) -> None:
    """Callers hear callback times in the callback policy's zone; the console shows times in
    the menus' zone: in the demo configuration they are the same."""
    policy = load_policies(ROOT / "callbacks.yaml").default.business_hours
    boss = login(app_client, "boss")
    assert app_client.get("/agent/me", headers=boss).json()["timezone"] == policy.timezone
