"""What the fuzz tests found in this stop, pinned as plain cases (they found each only by
chance): a control character in a policy key broke the one-line ``file:line:col:`` refusal,
and the wait loop of a call whose ``/voice`` was refused logged a traceback; and later
stops: an id past the database's INTEGER was a 500 (on PostgreSQL too: 2**31 is past its
INTEGER, and the integration's promise route took any int)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from callbacks.policy import PolicyError, load_policies
from tests.agent_fixtures import login
from tests.conftest import ADMIN
from tests.twilio import call_params, new_sid, signed_post


@pytest.mark.parametrize("key", ['"\\r"', '"\\n"', '"a\\tb"', '"\\x1b[31m"'])
def test_a_control_character_in_a_policy_key_stays_on_its_line(tmp_path: Path,
                                                                key: str) -> None:
    path = tmp_path / "callbacks.yaml"
    path.write_text(f"default:\n{key}: 1\n", encoding="utf-8")
    with pytest.raises(PolicyError) as refused:
        load_policies(path)
    [line] = str(refused.value).splitlines()
    assert line.startswith(f"{path}:2:1: ")
    assert "unknown key" in line and line.isprintable()


def test_the_wait_loop_of_an_unknown_call_holds_without_a_traceback(
        client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    r = signed_post(client, "/twilio/wait?q=support", call_params(new_sid(), QueuePosition="1"))
    assert r.status_code == 200 and "<Response>" in r.text
    assert [rec.getMessage() for rec in caplog.records if rec.exc_info] == []
    assert any("wait loop of an unknown call" in rec.getMessage() for rec in caplog.records)


@pytest.mark.parametrize(("method", "path", "who"), [
    ("GET", "/agent/transfers/{}", "avi"), ("POST", "/agent/transfers/{}/cancel", "avi"),
    ("POST", "/agent/promises/{}/kept", "avi"),
    ("GET", "/agent/retention/customers/{}/risk", "boss")])
def test_an_id_past_the_database_integer_is_refused_not_a_500(
        app_client: TestClient, people: dict[str, int], method: str, path: str,
        who: str) -> None:
    """Found by tests/test_fuzz_api.py: an id past SQLite's INTEGER was an OverflowError."""
    r = app_client.request(method, path.format(2**63 + 1), headers=login(app_client, who))
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("promise_id", [2**31, 2**63 + 1, 0])
def test_an_integration_s_promise_id_past_the_integer_is_refused_not_a_500(
        app_client: TestClient, promise_id: int) -> None:
    """Found by tests/test_fuzz_api.py on PostgreSQL: ``POST /api/promises/2147483648/kept``
    reached the database (integer out of range), where the agent's route refused it."""
    r = app_client.post(f"/api/promises/{promise_id}/kept",
                        headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 422, r.text
