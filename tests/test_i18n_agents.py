"""Each agent's console language (issue 17.5): kept with the agent, set by
``ivr agents add --language`` or the console's switch, the centre's when not chosen."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from ivr.agents import cli as agents_cli
from ivr.agents.models import agents
from ivr.cli import build_parser
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from tests.agent_fixtures import login


def test_an_agent_chooses_the_console_language_and_keeps_it(
        app_client: TestClient, people: dict[str, int], engine: Engine) -> None:
    auth = login(app_client, "avi")
    assert app_client.get("/agent/me", headers=auth).json()["language"] == "en"  # the centre's
    r = app_client.post("/agent/language", json={"language": "he"}, headers=auth)
    assert r.status_code == 200, r.text
    assert (r.json()["language"], r.json()["timezone"]) == ("he", "Asia/Jerusalem")
    with engine.connect() as conn:
        assert conn.execute(select(agents.c.language).where(
            agents.c.username == "avi")).scalar_one() == "he"
    again = login(app_client, "avi")  # a new sign-in, another console: still Hebrew
    assert app_client.get("/agent/me", headers=again).json()["language"] == "he"
    assert app_client.get("/agent/me", headers=login(app_client, "boss")).json()[
        "language"] == "en"
    refused = app_client.post("/agent/language", json={"language": "fr"}, headers=auth)
    assert refused.status_code == 422
    assert app_client.post("/agent/language", json={"language": "en"}).status_code == 401


def test_an_agent_who_has_not_chosen_has_the_centres_language(
        settings: Settings, clock: FrozenClock, people: dict[str, int]) -> None:
    from ivr.app import create_app

    hebrew = settings.model_copy(update={"route_every_seconds": 0, "interface_language": "he"})
    with TestClient(create_app(hebrew, clock)) as client:
        r = client.post("/agent/login", json={"username": "avi", "password": "avi-pw"})
        assert r.json()["agent"]["language"] == "he"
        script = client.get("/agent/i18n/messages.js").text
        assert '"default":"he"' in script


def test_agents_add_with_a_language(settings: Settings, engine: Engine, clock: FrozenClock,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW", "correct horse")
    for argv in (["agents", "add", "noa", "--name", "נועה", "--language", "he",
                  "--password-env", "PW"],
                 ["agents", "add", "ben", "--name", "Ben", "--password-env", "PW"]):
        assert agents_cli.run(settings, build_parser().parse_args(argv), clock) == 0
    with engine.connect() as conn:
        assert dict(conn.execute(select(agents.c.username, agents.c.language)).all()) == {
            "noa": "he", "ben": None}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["agents", "add", "x", "--name", "X", "--language", "fr",
                                   "--password-env", "PW"])
