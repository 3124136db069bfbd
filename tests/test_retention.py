"""Retention (issue 17.4): the admin's wrap-up lists, the exit interview of the retention
queue's wrap-up, the leaving-risk signal on the pop, and the leaving report — on SQLite and
PostgreSQL, with a seeded set whose answer is known."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, insert, select
from starlette.testclient import TestClient

from callbacks.models import callback_requests
from crm_sync.models import Customer, customers, interactions
from ivr.agents import repository as agent_repo
from ivr.agents.models import queue_entries
from ivr.cli import main
from ivr.core.clock import FrozenClock
from ivr.retention.config import DEFAULT_LISTS, RiskPolicy
from ivr.retention.models import exit_interviews
from ivr.retention.report import leaving_report, summarise, tenure
from ivr.retention.signals import at_risk, leaving_risk
from ivr.surveys.models import survey_responses
from tests.agent_fixtures import DANA, YOSSI, available, login
from tests.agent_flow import TwilioDriver
from tests.conftest import OPEN_TIME, TOKEN

JERUSALEM = ZoneInfo("Asia/Jerusalem")
NOW = OPEN_TIME  # Monday 23 November 2026, 10:00 in Jerusalem


# ------------------------------------------------------------------ the seeded set

def _customer(cid: int, **extra: Any) -> dict[str, Any]:
    return {"id": cid, "account_number": str(5000 + cid), "name": f"customer {cid}",
            "tier": "standard", "segment": "private", "status": "active",
            "preferred_language": "he-IL", "lineage": {}, "created_at": NOW - timedelta(
                days=800), "updated_at": NOW, **extra}


def _entry(n: int, cid: int, status: str, days_ago: float) -> dict[str, Any]:
    at = NOW - timedelta(days=days_ago)
    return {"call_sid": f"CAseed{n}", "queue": "billing", "priority": 0, "entered_at": at,
            "status": status, "customer_id": cid, "attempts": 0, "updated_at": at}


def _callback(n: int, cid: int, status: str, days_ago: float, *,
              breached: bool = False) -> dict[str, Any]:
    at = NOW - timedelta(days=days_ago)
    return {"queue": "billing", "phone": f"+97250000{n:04d}", "customer_id": cid,
            "entered_at": at, "requested_at": at, "deadline_at": at + timedelta(hours=2),
            "warn_at": at + timedelta(hours=1), "due_at": at, "status": status,
            "breached_at": at + timedelta(hours=2) if breached else None, "updated_at": at}


def _promise(n: int, cid: int, due_days_ago: float, *, kept: bool = False,
             kept_late: bool = False) -> dict[str, Any]:
    due = NOW - timedelta(days=due_days_ago)
    kept_at = due - timedelta(hours=1) if kept else due + timedelta(days=1) if kept_late \
        else None
    return {"customer_id": cid, "source": "seed", "external_id": f"P{n}", "channel": "call",
            "direction": "in", "started_at": due - timedelta(days=2),
            "promised_action": "technician calls", "promised_due_at": due,
            "promise_kept_at": kept_at}


def _interview(cid: int, *, days_ago: float, reason: str, stayed: bool | None,
               queue: str = "retention", tier: str = "standard", segment: str = "private",
               branch: str | None = "Haifa", since_days: int | None = 800,
               text: str | None = None) -> dict[str, Any]:
    at = NOW - timedelta(days=days_ago)
    return {"customer_id": cid, "call_sid": f"CAex{cid}{int(days_ago * 10)}",
            "source": "wrapup", "queue": queue, "agent": "Noa", "reason": reason,
            "reason_text": text, "stayed": stayed, "tier": tier, "segment": segment,
            "branch": branch, "recorded_at": at,
            "customer_since": at - timedelta(days=since_days) if since_days is not None
            else None}


def _survey(n: int, cid: int, *, score: int, low: bool, days_ago: float) -> dict[str, Any]:
    at = NOW - timedelta(days=days_ago)
    return {"call_sid": f"CAsurvey{n}", "kind": "agent", "survey": "csat",
            "language": "he-IL", "queue": "billing", "customer_id": cid, "status": "completed",
            "score": score, "low": low, "started_at": at, "updated_at": at}


@pytest.fixture
def seeded(engine: Engine) -> None:
    """Ten customers whose risk is known (window 90 days, threshold 2, weights of
    wrapup.yaml): see ``EXPECTED``."""
    with engine.begin() as conn:
        conn.execute(insert(Customer), [
            _customer(11), _customer(12), _customer(13), _customer(14),
            _customer(15, status="leaving", tier="premium"), _customer(16), _customer(17),
            _customer(18), _customer(19), _customer(20)])
        conn.execute(insert(queue_entries), [
            _entry(1, 11, "abandoned", 3), _entry(2, 11, "abandoned", 10),   # 11: 2 x 1
            _entry(3, 12, "abandoned", 5),                                   # 12: 1 (no)
            _entry(4, 12, "done", 5),
            _entry(5, 16, "abandoned", 120)])                                # outside
        conn.execute(insert(callback_requests), [
            _callback(1, 13, "failed", 20),                                  # 13: 2
            _callback(2, 14, "completed", 4, breached=True),                 # 14: 1 ...
            _callback(3, 16, "completed", 4)])                               # nothing
        conn.execute(insert(interactions), [
            _promise(1, 14, 1),                                              # ... + 2
            _promise(2, 17, 1, kept=True),                                   # kept: no
            _promise(3, 17, -2),                                             # not due yet
            _promise(4, 16, 3, kept_late=True)])                             # 16: 2
        conn.execute(insert(exit_interviews), [
            _interview(18, days_ago=2, reason="competitor_offer", stayed=None),  # 18: 3
            _interview(19, days_ago=2, reason="price", stayed=True),             # stayed
            _interview(20, days_ago=200, reason="moving", stayed=False)])        # outside
        conn.execute(insert(survey_responses), [
            _survey(1, 17, score=2, low=True, days_ago=10),                  # 17: 2
            _survey(2, 16, score=4, low=False, days_ago=10)])                # rated well


EXPECTED = {  # customer: (flag, score)
    11: (True, 2), 12: (False, 1), 13: (True, 2), 14: (True, 3), 15: (True, 3),
    16: (True, 2), 17: (True, 2), 18: (True, 3), 19: (False, 0), 20: (False, 0)}


def test_the_leaving_risk_of_the_seeded_customers(engine: Engine, seeded: None) -> None:
    with engine.connect() as conn:
        found = {cid: leaving_risk(conn, cid, NOW) for cid in EXPECTED}
        ranked = at_risk(conn, NOW)
    assert {cid: (r.flag, r.score) for cid, r in found.items()} == EXPECTED
    assert found[11].reasons == ("2 calls abandoned in the queue in 90 days",)
    assert found[14].reasons == ("1 promise not kept by its time",
                                 "1 callback past the promised time")
    assert found[13].reasons == ("1 callback that never got through",)
    assert found[17].reasons == ("1 call rated low in the survey",)  # its kept promise: no
    assert found[16].reasons == ("1 promise not kept by its time",)  # kept a day late
    assert found[15].reasons == ("customer status: leaving",)
    assert found[18].reasons == ("said they may leave: competitor_offer (2026-11-21)",)
    assert found[12].reasons == ("1 call abandoned in the queue in 90 days",)  # listed, no flag
    # Highest score first, then the lowest id; only customers at risk.
    assert [(p["customer_id"], p["score"]) for p in ranked] == [
        (14, 3), (15, 3), (18, 3), (11, 2), (13, 2), (16, 2), (17, 2)]
    assert ranked[1]["tier"] == "premium"


def test_the_weights_and_window_are_the_admins(engine: Engine, seeded: None) -> None:
    strict = RiskPolicy.model_validate({"window": "7d", "threshold": 5,
                                        "weights": {"abandoned_call": 5}})
    with engine.connect() as conn:
        r11 = leaving_risk(conn, 11, NOW, policy=strict)
        r13 = leaving_risk(conn, 13, NOW, policy=strict)
        chose = leaving_risk(conn, 20, NOW, chose_queues=["retention"])
    assert (r11.flag, r11.score) == (True, 5)  # only the call 3 days ago is in 7 days
    assert (r13.flag, r13.score) == (False, 0)  # its failed callback is 20 days old
    assert (chose.flag, chose.score) == (True, 3)
    assert chose.reasons[0] == "chose 'retention' in the IVR (e.g. cancel my service)"


# ------------------------------------------------------------------ the wrap-up

@pytest.fixture
def keeper(engine: Engine, people: dict[str, int], clock: FrozenClock) -> int:
    """An agent of the retention queue."""
    with engine.begin() as conn:
        return agent_repo.create_agent(
            conn, username="keeper", name="Tami Keeper", password="keeper-pw",
            queues=["retention"], reach_kind="client", reach_target="keeper", now=clock.now())


def _retention_call(app_client: TestClient, twilio: TwilioDriver, number: str) -> str:
    sid = twilio.start(number, ["3"])  # 3: "cancel my service" -> the retention queue
    assert twilio.calls[sid].queue == "retention"
    twilio.connect(sid)
    twilio.agent_answers(sid)
    twilio.hang_up(sid)
    return sid


def test_retention_wrap_up_records_the_exit_interview_and_whether_they_stayed(
        app_client: TestClient, keeper: int, engine: Engine, clock: FrozenClock) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    auth = login(app_client, "keeper")
    available(app_client, auth)
    sid = _retention_call(app_client, twilio, YOSSI)
    pop = app_client.get(f"/agent/calls/{sid}/context", headers=auth).json()
    assert pop["leaving_risk"] == {
        "flag": True, "score": 3,
        "reasons": ["chose 'retention' in the IVR (e.g. cancel my service)"]}
    url = f"/agent/calls/{sid}/wrapup"
    body = {"topic": "cancellation", "outcome": "customer kept", "resolved": True}
    # A reason not on the admin's list, and "other" without words, are refused.
    r = app_client.post(url, headers=auth, json={**body, "leaving_reason": "bored"})
    assert r.status_code == 422
    assert "'bored' is not on the list of leaving reasons" in r.text
    r = app_client.post(url, headers=auth, json={**body, "leaving_reason": "other"})
    assert (r.status_code, "say in words" in r.text) == (422, True)
    r = app_client.post(url, headers=auth, json={**body, "leaving_reason": "competitor_offer",
                                                 "leaving_text": "HOT offered 20% off",
                                                 "stayed": True})
    assert r.status_code == 201, r.text
    with engine.connect() as conn:
        row = conn.execute(select(exit_interviews)).one()
        status = conn.execute(select(customers.c.status).where(customers.c.id == 2)).scalar()
    assert (row.customer_id, row.call_sid, row.queue, row.agent, row.reason, row.reason_text,
            row.stayed, row.tier, row.source) == (
        2, sid, "retention", "Tami Keeper", "competitor_offer", "HOT offered 20% off", True,
        "standard", "wrapup")
    assert row.interaction_id is not None
    assert status == "active"  # saved: not marked leaving
    # Stayed: no signal of its own on the next call (only this call's choice of retention).
    clock.advance(minutes=30)
    available(app_client, auth)
    sid2 = _retention_call(app_client, twilio, YOSSI)
    pop = app_client.get(f"/agent/calls/{sid2}/context", headers=auth).json()
    assert pop["leaving_risk"]["score"] == 3
    r = app_client.post(f"/agent/calls/{sid2}/wrapup", headers=auth, json={
        **body, "outcome": "cancellation taken", "leaving_reason": "moving", "stayed": False})
    assert r.status_code == 201, r.text
    with engine.connect() as conn:
        status = conn.execute(select(customers.c.status).where(customers.c.id == 2)).scalar()
    assert status == "leaving"
    # The next agent sees it: status and what they said, with the weights of wrapup.yaml.
    clock.advance(minutes=30)
    available(app_client, auth)
    sid3 = _retention_call(app_client, twilio, YOSSI)
    pop = app_client.get(f"/agent/calls/{sid3}/context", headers=auth).json()
    assert pop["leaving_risk"] == {"flag": True, "score": 9, "reasons": [
        "chose 'retention' in the IVR (e.g. cancel my service)",
        "customer status: leaving", "said they may leave: moving (2026-11-23)"]}


def test_a_wrap_up_without_leaving_reason_records_no_interview(
        app_client: TestClient, people: dict[str, int], engine: Engine) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    noa = login(app_client, "dana.agent")
    available(app_client, noa)
    sid = twilio.start(DANA, ["2"])
    twilio.connect(sid)
    twilio.agent_answers(sid)
    twilio.hang_up(sid)
    r = app_client.post(f"/agent/calls/{sid}/wrapup", headers=noa, json={
        "topic": "billing", "outcome": "solved", "resolved": True, "stayed": True})
    assert r.status_code == 422  # "stayed" belongs to an exit interview
    r = app_client.post(f"/agent/calls/{sid}/wrapup", headers=noa, json={
        "topic": "billing", "outcome": "solved", "resolved": True})
    assert r.status_code == 201
    with engine.connect() as conn:
        assert conn.execute(select(exit_interviews)).all() == []


# ------------------------------------------------------------------ the lists

def test_the_console_reads_the_lists_the_admin_edits(
        settings: Any, clock: FrozenClock, people: dict[str, int], tmp_path: Path) -> None:
    from ivr.app import create_app

    path = tmp_path / "wrapup.yaml"
    good = Path("wrapup.yaml").read_text(encoding="utf-8")
    path.write_text(good, encoding="utf-8")
    quiet = settings.model_copy(update={"route_every_seconds": 0, "wrapup_file": path})
    with TestClient(create_app(quiet, clock)) as client:
        auth = login(client, "dana.agent")
        lists = client.get("/agent/retention/lists", headers=auth).json()
        assert [r["code"] for r in lists["leaving_reasons"]] == [
            r.code for r in DEFAULT_LISTS.leaving_reasons]
        assert lists["topics"][0] == "billing"
        assert lists["status"] == {"file": str(path), "source": "file", "error": None}
        # An edit is live at the next read; a mistake keeps the last good lists live.
        path.write_text(good.replace("  - billing\n", "  - billing\n  - roaming\n"),
                        encoding="utf-8")
        assert client.get("/agent/retention/lists", headers=auth).json()["topics"][:2] == [
            "billing", "roaming"]
        path.write_text(good.replace("  - code: moving\n", "  - code: Moving\n") + "\n",
                        encoding="utf-8")
        lists = client.get("/agent/retention/lists", headers=auth).json()
        assert lists["topics"][:2] == ["billing", "roaming"]
        assert lists["status"]["source"] == "last good"
        line = good.splitlines().index("  - code: moving") + 1
        assert lists["status"]["error"] == (
            f"{path}:{line}:5: leaving_reasons.5.code: a reason code is lower-case letters, "
            "digits and '_' (like 'unresolved_complaint'), got 'Moving'")
        assert client.get("/agent/retention/lists").status_code == 401


@pytest.mark.parametrize(("text", "error"), [
    ("topics: [a]\noutcomes: [b]\nleaving_reasons:\n  - code: x\n    lable: X\n",
     "w.yaml:5:5: leaving_reasons.0.lable: unknown key 'lable'; expected one of: code, "
     "label, label_he"),
    ("topics:\n  - a\n  - A\noutcomes: [b]\nleaving_reasons: [{code: x, label: X}]\n",
     "w.yaml:3:5: topics.1: topic 'a' is listed twice (first at line 2)"),
    ("topics: [a]\noutcomes: [b]\nleaving_reasons: [{code: x, label: X}]\n"
     "leaving_risk: {window: 90}\n",
     "w.yaml:4:16: leaving_risk.window: expected a number of days like '90d', got 90"),
    ("topics: [a]\noutcomes: [b]\n",
     "w.yaml:1:1: leaving_reasons: required key is missing"),
    ("topics: [a]\noutcomes: !!python/object:os.system [b]\nleaving_reasons: []\n",
     "w.yaml:2:1: outcomes: YAML tag '!!python/object:os.system' is not allowed: a "
     "wrap-up lists file holds plain text"),
])
def test_mistakes_in_the_lists_file_are_refused_where_they_are(
        tmp_path: Path, text: str, error: str) -> None:
    from ivr.retention.config import ListsError, parse_lists

    with pytest.raises(ListsError) as exc:
        parse_lists(text, Path("w.yaml"))
    assert str(exc.value).startswith(error), str(exc.value)


def test_retention_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["retention", "check", "wrapup.yaml"]) == 0
    assert capsys.readouterr().out == (
        "ok: 6 topics, 7 outcomes, 7 leaving reasons (wrapup.yaml)\n")
    bad = tmp_path / "w.yaml"
    bad.write_text("topics: [a]\noutcomes: [b]\nleaving_reasons: [{code: 1x, label: X}]\n",
                   encoding="utf-8")
    assert main(["retention", "check", str(bad)]) == 1
    assert f"{bad}:3:20: leaving_reasons.0.code:" in capsys.readouterr().err


# ------------------------------------------------------------------ the report

REPORT_ROWS = [  # what leaving customers said, and the answer the report must give
    _interview(31, days_ago=2, reason="price", stayed=True, tier="premium"),
    _interview(32, days_ago=3, reason="price", stayed=False, since_days=100),
    _interview(33, days_ago=40, reason="competitor_offer", stayed=True, segment="business",
               branch=None, since_days=2000),
    _interview(34, days_ago=41, reason="moving", stayed=None, since_days=None),
    _interview(35, days_ago=5, reason="price", stayed=False, queue="billing"),
    _interview(36, days_ago=400, reason="moving", stayed=False),  # before the period
]


def test_summarise_groups_reasons_and_counts_the_saved_rate() -> None:
    rows = REPORT_ROWS[:5]
    out = summarise(rows, ["retention"], JERUSALEM)
    assert out["total"] == 5
    assert out["reasons"] == {"price": 3, "competitor_offer": 1, "moving": 1}
    by = {d: {g["value"]: g["reasons"] for g in groups} for d, groups in out["by"].items()}
    assert by["tier"] == {"premium": {"price": 1},
                          "standard": {"price": 2, "competitor_offer": 1, "moving": 1}}
    assert by["segment"] == {"business": {"competitor_offer": 1},
                             "private": {"price": 3, "moving": 1}}
    assert by["tenure"] == {"(unknown)": {"moving": 1}, "2-5 years": {"price": 2},
                            "5+ years": {"competitor_offer": 1},
                            "under 1 year": {"price": 1}}
    assert by["branch"] == {"(unknown)": {"competitor_offer": 1},
                            "Haifa": {"price": 3, "moving": 1}}
    assert by["month"] == {"2026-10": {"competitor_offer": 1, "moving": 1},
                           "2026-11": {"price": 3}}
    # The retention queue: 31 stayed, 32 left, 33 stayed, 34 not known; 35 is billing's.
    saved = out["saved"]
    assert (saved["asked"], saved["stayed"], saved["left"], saved["unknown"],
            saved["rate"]) == (4, 2, 1, 1, 0.6667)
    assert saved["by_month"] == [
        {"month": "2026-10", "asked": 2, "stayed": 1, "left": 0, "unknown": 1, "rate": 1.0},
        {"month": "2026-11", "asked": 2, "stayed": 1, "left": 1, "unknown": 0, "rate": 0.5}]


@pytest.mark.parametrize(("days", "band"), [
    (0, "under 1 year"), (364, "under 1 year"), (365, "1-2 years"), (729, "1-2 years"),
    (730, "2-5 years"), (1824, "2-5 years"), (1825, "5+ years")])
def test_tenure_bands(days: int, band: str) -> None:
    assert tenure(NOW - timedelta(days=days), NOW) == band


def test_month_boundaries_are_the_centres(engine: Engine) -> None:
    # 30 November 22:30 UTC is 1 December 00:30 in Jerusalem.
    row = {**REPORT_ROWS[0], "recorded_at": datetime(2026, 11, 30, 22, 30, tzinfo=UTC)}
    out = summarise([row], ["retention"], JERUSALEM)
    assert [g["value"] for g in out["by"]["month"]] == ["2026-12"]


def test_leaving_report_and_its_command(
        engine: Engine, seeded: None, database_url: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(Customer), [_customer(c) for c in range(31, 37)])
        conn.execute(insert(exit_interviews), REPORT_ROWS)
        data = leaving_report(conn, DEFAULT_LISTS, NOW, JERUSALEM)
    # This month and the eleven before: 36's (400 days ago) is out, 18, 19 of the seeded
    # set are in (20's is 200 days old: in).
    assert data["since"] == "2025-12-01T00:00:00+02:00"
    assert data["total"] == 8
    assert data["reasons"] == {"price": 4, "competitor_offer": 2, "moving": 2}
    assert data["labels"]["competitor_offer"] == "A better offer elsewhere"
    saved = data["saved"]
    assert (saved["stayed"], saved["left"], saved["unknown"]) == (3, 2, 2)
    # At risk now: the seeded set's, and 32, 34, 35 of these (said they may leave, did not
    # stay, within 90 days); 33 stayed, 31 stayed, 36 spoke 400 days ago.
    assert [p["customer_id"] for p in data["at_risk"]] == [14, 15, 18, 32, 34, 35, 11, 13, 16, 17]
    monkeypatch.setenv("IVR_DATABASE_URL", database_url)
    monkeypatch.setenv("IVR_LOG_LEVEL", "WARNING")
    args = ["reports", "leaving", "--from", "2026-11-01", "--to", "2026-11-30"]
    assert main([*args, "--json"]) == 0
    tables = json.loads(capsys.readouterr().out)
    reasons = {r["code"]: r["interviews"] for r in tables["leaving_reasons"]}
    assert reasons == {"price": 4, "competitor_offer": 1}  # 18, 19, 31, 32, 35 in November
    assert tables["leaving_by_tier"] == [
        {"value": "premium", "interviews": 1, "price": 1, "competitor_offer": 0},
        {"value": "standard", "interviews": 4, "price": 3, "competitor_offer": 1}]
    assert tables["leaving_saved"][-1] == {
        "month": "all", "asked": 4, "stayed": 2, "left": 1, "unknown": 1,
        "saved_rate": 0.6667}
    assert main([*args, "--csv"]) == 0
    out = capsys.readouterr().out
    assert "# leaving_by_tier\nvalue,interviews,price,competitor_offer\npremium,1,1,0\n" in out
    assert main([*args, "--lang", "he"]) == 0
    text = capsys.readouterr().out
    assert "שיעור השימור בתורי השימור" in text and "מחיר" in text


def test_leaving_report_blocks_on_an_empty_database(engine: Engine) -> None:
    from ivr.reports.leaving import build
    from ivr.reports.model import ReportRequest

    req = ReportRequest(NOW.date() - timedelta(days=30), NOW.date(), "day", JERUSALEM, NOW)
    with engine.connect() as conn:
        blocks = build(conn, req)
    names = [b.name for b in blocks]
    assert names == ["leaving_reasons", "leaving_by_reason", "leaving_by_tier",
                     "leaving_by_segment", "leaving_by_tenure", "leaving_by_branch",
                     "leaving_by_month", "leaving_saved", "leaving_at_risk"]


def test_the_report_and_a_customers_risk_for_supervisors(
        app_client: TestClient, people: dict[str, int], seeded: None) -> None:
    boss = login(app_client, "boss")
    agent = login(app_client, "dana.agent")
    r = app_client.get("/agent/retention/report?since=2026-11-01&until=2026-11-30",
                       headers=boss)
    assert r.status_code == 200, r.text
    data = r.json()
    assert (data["total"], data["reasons"]) == (2, {"competitor_offer": 1, "price": 1})
    assert data["since"] == "2026-11-01T00:00:00+02:00"  # the centre's midnight
    assert [p["customer_id"] for p in data["at_risk"]][:3] == [14, 15, 18]
    r = app_client.get("/agent/retention/customers/14/risk", headers=boss)
    assert r.json() == {"flag": True, "score": 3, "reasons": [
        "1 promise not kept by its time", "1 callback past the promised time"]}
    assert app_client.get("/agent/retention/report", headers=agent).status_code == 403
    assert app_client.get("/agent/retention/customers/14/risk",
                          headers=agent).status_code == 403
    r = app_client.get("/agent/retention/report?since=2026-12-01&until=2026-11-01",
                       headers=boss)
    assert r.status_code == 422
