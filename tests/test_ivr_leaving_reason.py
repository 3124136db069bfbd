"""The IVR's leaving-reason step (issue 17.4): a menu option's ``leaving_reason`` records a
code of wrapup.yaml's list as the call's attribute; ``ivr menus check`` refuses a code that is
not on the list (file:line:col); the retention agent's pop shows the caller's answer; a
wrap-up that leaves the reason empty records the IVR's answer as an exit interview whose
outcome is not known yet — pure engine tests, then signed webhooks on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from ivr.agents import repository as agent_repo
from ivr.calls.repository import calls
from ivr.cli import main
from ivr.core.clock import FrozenClock
from ivr.menu.bundle import MenuBundle, assemble
from ivr.menu.checks import check_leaving_reasons
from ivr.menu.engine import Enqueue, Gather, Gathered, Start, StepResult, start_state, step
from ivr.menu.loader import load_menu_text
from ivr.retention.config import DEFAULT_LISTS
from ivr.retention.models import exit_interviews
from ivr.retention.service import ivr_leaving_reason
from tests.agent_fixtures import YOSSI, available, login
from tests.agent_flow import TwilioDriver
from tests.conftest import DEMO_MENUS, TOKEN
from tests.twilio import play

CODES = [r.code for r in DEFAULT_LISTS.leaving_reasons]
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

MENU = """\
languages: [en-US]
default_language: en-US
start: why
fallback: bye
nodes:
  why:
    type: menu
    max_no_input: 1
    prompt: {say: {en-US: "Why are you leaving? The price, press 1. Moving, press 2."}}
    options:
      "1": {next: keep, leaving_reason: price}
      "2": {next: keep, leaving_reason: moving}
      "3": {next: keep}
    on_failure: keep
  keep:
    type: queue
    queue: retention
  bye:
    type: hangup
"""


def _bundle(text: str = MENU) -> tuple[MenuBundle, list[str]]:
    lm, problems = load_menu_text(text, Path("/menus/main.yaml"))
    assert lm is not None, problems
    bundle, report = assemble([(Path("/menus/main.yaml"), lm, problems)], None, "main")
    assert bundle is not None, report.problems
    return bundle, [str(p) for p in check_leaving_reasons({"main": lm}, CODES, "wrapup.yaml")]


def _press(bundle: MenuBundle, digits: str | None) -> StepResult:
    state = start_state(bundle, "CA1", "main")
    first = step(bundle, state, Start(), NOW)
    assert isinstance(first, StepResult) and isinstance(first.actions[-1], Gather)
    result = step(bundle, first.state, Gathered(digits=digits), NOW)
    assert isinstance(result, StepResult)
    return result


# ------------------------------------------------------------------ the pure engine

@pytest.mark.parametrize(("digits", "code"), [("1", "price"), ("2", "moving")])
def test_the_key_records_its_leaving_reason_and_goes_on(digits: str, code: str) -> None:
    bundle, problems = _bundle()
    assert problems == []
    result = _press(bundle, digits)
    assert result.state.attributes["leaving_reason"] == code
    assert result.state.node == "keep"
    assert result.actions[-1] == Enqueue("retention", "en-US")
    chose = [p for p in result.state.path if p["event"] == "input"]
    assert chose[-1]["leaving_reason"] == code
    assert ivr_leaving_reason(list(result.state.path)) == code


@pytest.mark.parametrize("digits", ["3", None])
def test_no_reason_without_one(digits: str | None) -> None:
    # An option without a reason, and silence (on to the queue): nothing recorded.
    result = _press(_bundle()[0], digits)
    assert "leaving_reason" not in result.state.attributes
    assert result.actions[-1] == Enqueue("retention", "en-US")
    assert ivr_leaving_reason(list(result.state.path)) is None


def test_a_code_not_on_the_list_is_refused_where_it_is_written() -> None:
    _, problems = _bundle(MENU.replace("leaving_reason: moving", "leaving_reason: movng"))
    assert problems == [
        "/menus/main.yaml:12:41: error: nodes.why.options.2.leaving_reason: 'movng' is not a "
        "leaving reason of wrapup.yaml; did you mean 'moving'?; expected one of: "
        + ", ".join(CODES)]


def test_a_code_that_is_no_code_is_refused_by_the_menu_language() -> None:
    lm, problems = load_menu_text(MENU.replace("leaving_reason: price", "leaving_reason: Price!"),
                                  Path("/menus/main.yaml"))
    assert lm is None
    assert [(p.line, p.path) for p in problems] == [(11, "nodes.why.options.1.leaving_reason")]


# ------------------------------------------------------------------ `ivr menus check`

def test_menus_check_refuses_an_unknown_code_with_file_line_column(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    wrapup = tmp_path / "wrapup.yaml"
    wrapup.write_text("topics: [billing]\noutcomes: [solved]\nleaving_reasons:\n"
                      "  - {code: price, label: Price}\n  - {code: moving, label: Moving}\n",
                      encoding="utf-8")
    monkeypatch.setenv("IVR_WRAPUP_FILE", str(wrapup))
    f = tmp_path / "main.yaml"
    f.write_text(MENU, encoding="utf-8")
    assert main(["menus", "check", str(f)]) == 0
    assert capsys.readouterr().out.endswith("1 file(s) checked: 0 error(s), 0 warning(s)\n")
    # The admin's list is the one checked against: a code of the defaults is not enough.
    f.write_text(MENU.replace("leaving_reason: moving", "leaving_reason: competitor_offer"),
                 encoding="utf-8")
    assert main(["menus", "check", str(f)]) == 1
    out = capsys.readouterr().out
    assert (f"{f}:12:41: error: nodes.why.options.2.leaving_reason: 'competitor_offer' is not "
            f"a leaving reason of {wrapup}; expected one of: price, moving\n") in out
    assert out.endswith("1 file(s) checked: 1 error(s), 0 warning(s)\n")


def test_the_demo_menus_use_it_and_check_clean(capsys: pytest.CaptureFixture[str]) -> None:
    text = (DEMO_MENUS / "main.yaml").read_text(encoding="utf-8")
    assert "leaving_reason: price" in text
    assert main(["menus", "check", str(DEMO_MENUS)]) == 0
    assert capsys.readouterr().out.endswith(" checked: 0 error(s), 0 warning(s)\n")


# ------------------------------------------------------------------ calls (both databases)

def test_the_callers_answer_is_stored_with_the_call(client: TestClient, engine: Engine) -> None:
    # English, "I want to cancel", then 2: a better offer elsewhere.
    t = play(client, ["2", "say:I want to cancel my service", "2"])
    says = t.says()
    assert says[2].startswith("We are sorry to hear that. Is it the price? Press 1.")
    assert says[3] == "Thank you. A retention specialist will be with you shortly."
    assert next(h for h in t.heard if h.kind == "enqueue").text == "retention"
    with engine.connect() as conn:
        attrs = conn.execute(select(calls.c.attributes)).scalar_one()
    assert attrs["leaving_reason"] == "competitor_offer"


def test_the_hebrew_prompt_and_speech(client: TestClient, engine: Engine) -> None:
    t = play(client, ["1", "3", "say:בגלל המחיר, מחיר"])
    assert t.says()[2].startswith("חבל לנו לשמוע. בגלל המחיר הקישו 1.")
    with engine.connect() as conn:
        attrs = conn.execute(select(calls.c.attributes)).scalar_one()
    assert attrs["leaving_reason"] == "price"


@pytest.fixture
def keeper(engine: Engine, people: dict[str, int], clock: FrozenClock) -> int:
    """An agent of the retention queue."""
    with engine.begin() as conn:
        return agent_repo.create_agent(
            conn, username="keeper", name="Tami Keeper", password="keeper-pw",
            queues=["retention"], reach_kind="client", reach_target="keeper", now=clock.now())


def _answered(twilio: TwilioDriver, keys: list[str]) -> str:
    sid = twilio.start(YOSSI, keys)
    assert twilio.calls[sid].queue == "retention"
    twilio.connect(sid)
    twilio.agent_answers(sid)
    twilio.hang_up(sid)
    return sid


def test_the_pop_shows_it_and_an_empty_wrap_up_records_it(
        app_client: TestClient, keeper: int, engine: Engine, clock: FrozenClock) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    auth = login(app_client, "keeper")
    available(app_client, auth)
    sid = _answered(twilio, ["3", "4"])  # cancel; moving
    pop = app_client.get(f"/agent/calls/{sid}/context", headers=auth).json()
    assert pop["ivr_leaving_reason"] == "moving"
    # The agent leaves the reason empty: the IVR's answer is the interview, outcome not known.
    r = app_client.post(f"/agent/calls/{sid}/wrapup", headers=auth, json={
        "topic": "cancellation", "outcome": "information given", "resolved": True})
    assert r.status_code == 201, r.text
    with engine.connect() as conn:
        row = conn.execute(select(exit_interviews)).one()
    assert (row.call_sid, row.source, row.reason, row.reason_text, row.stayed, row.queue,
            row.agent, row.customer_id) == (
        sid, "ivr", "moving", None, None, "retention", "Tami Keeper", 2)
    assert row.interaction_id == r.json()["interaction_id"]


def test_the_agents_reason_wins_and_no_answer_shows_nothing(
        app_client: TestClient, keeper: int, engine: Engine, clock: FrozenClock) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    auth = login(app_client, "keeper")
    available(app_client, auth)
    sid = _answered(twilio, ["3", "1"])  # cancel; the price
    r = app_client.post(f"/agent/calls/{sid}/wrapup", headers=auth, json={
        "topic": "cancellation", "outcome": "customer kept", "resolved": True,
        "leaving_reason": "competitor_offer", "stayed": True})
    assert r.status_code == 201, r.text
    clock.advance(minutes=30)
    available(app_client, auth)
    sid2 = _answered(twilio, ["3"])  # silence at the question: on to the agent
    pop = app_client.get(f"/agent/calls/{sid2}/context", headers=auth).json()
    assert pop["ivr_leaving_reason"] is None
    r = app_client.post(f"/agent/calls/{sid2}/wrapup", headers=auth, json={
        "topic": "cancellation", "outcome": "information given", "resolved": True})
    assert r.status_code == 201, r.text
    with engine.connect() as conn:
        rows = conn.execute(select(exit_interviews.c.call_sid, exit_interviews.c.source,
                                   exit_interviews.c.reason, exit_interviews.c.stayed)).all()
    assert [tuple(r) for r in rows] == [(sid, "wrapup", "competitor_offer", True)]
