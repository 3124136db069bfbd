"""The customer store over HTTP: a CRM pushes records, the agent console looks customers up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from tests.conftest import ADMIN

INTEGRATION = "crm-push-token"
PUSH = {"Authorization": f"Bearer {INTEGRATION}"}
READ = {"Authorization": f"Bearer {ADMIN}"}
RECORDS = [
    {"id": "C1", "name": "Dana Cohen", "phone": "050-123-4567", "account_number": "100100",
     "tier": "premium"},
    {"id": "C2", "name": "Avi Levi", "phone": "12"},
    "not an object",
    {"id": "C3", "name": "Avi Levi", "phones": ["052-222-3333"], "email": "avi@example.com"},
]


@pytest.fixture
def api(settings: Settings, clock: FrozenClock, tmp_path: Path) -> Iterator[TestClient]:
    settings = settings.model_copy(update={"crm_token": SecretStr(INTEGRATION),
                                           "crm_dir": tmp_path / "crm"})
    with TestClient(create_app(settings, clock)) as c:
        yield c


def test_push_needs_the_integration_or_admin_token(api: TestClient) -> None:
    url = "/crm/sources/crm/records"
    assert api.post(url, json={"records": []}).status_code == 401
    assert api.post(url, json={"records": []},
                    headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert api.post(url, json={"records": []}, headers=PUSH).status_code == 200
    assert api.post(url, json={"records": []}, headers=READ).status_code == 200


def test_reading_customers_needs_the_admin_token(api: TestClient) -> None:
    assert api.get("/crm/customers/1").status_code == 401
    # The integration token is valid but may only push: forbidden, not unauthenticated.
    assert api.get("/crm/customers?phone=0501234567", headers=PUSH).status_code == 403


def test_a_pushed_batch_is_upserted_with_a_report(api: TestClient) -> None:
    got = api.post("/crm/sources/crm/records", json={"records": RECORDS}, headers=PUSH)
    assert got.status_code == 200
    report = got.json()
    assert (report["created"], report["rejected"]) == (2, 2)
    assert [(r["line"], r["external_id"]) for r in report["rejections"]] == [
        (1, "C2"), (2, None)]
    again = api.post("/crm/sources/crm/records", json={"records": RECORDS}, headers=PUSH).json()
    assert (again["created"], again["unchanged"]) == (0, 2)


def test_agent_finds_a_customer_by_phone_in_any_format(api: TestClient) -> None:
    api.post("/crm/sources/crm/records", json={"records": RECORDS}, headers=PUSH)
    found = api.get("/crm/customers", params={"phone": "+972 50 123 4567"},
                    headers=READ).json()["customers"]
    assert [c["name"] for c in found] == ["Dana Cohen"]
    by_account = api.get("/crm/customers", params={"account": "100-100"},
                         headers=READ).json()["customers"]
    assert [c["id"] for c in by_account] == [found[0]["id"]]
    by_name = api.get("/crm/customers", params={"name": "levi"}, headers=READ).json()
    assert [c["name"] for c in by_name["customers"]] == ["Avi Levi"]
    doc = api.get(f"/crm/customers/{found[0]['id']}", headers=READ).json()
    assert doc["phones"] == ["+972501234567"]
    assert doc["tier"] == "premium"
    assert [(s["source"], s["external_id"]) for s in doc["sources"]] == [("crm", "C1")]
    assert api.get("/crm/customers", headers=READ).status_code == 422
    assert api.get("/crm/customers/999", headers=READ).status_code == 404


def test_a_merged_customer_id_redirects_to_the_survivor(api: TestClient) -> None:
    api.post("/crm/sources/crm/records", json={"records": [
        {"id": "A", "name": "Noa Peretz", "phone": "050-111-2222"},
        {"id": "B", "name": "Noa Peretz", "email": "noa@example.com"}]}, headers=PUSH)
    ids = sorted(c["id"] for c in api.get("/crm/customers", params={"name": "noa"},
                                          headers=READ).json()["customers"])
    assert len(ids) == 2
    report = api.post("/crm/sources/tickets/records", json={"records": [
        {"id": "K", "name": "Noa Peretz", "phone": "0501112222",
         "email": "noa@example.com"}]}, headers=PUSH).json()
    assert report["customers_merged"] == 1
    moved = api.get(f"/crm/customers/{ids[1]}", headers=READ, follow_redirects=False)
    assert moved.status_code == 308
    assert moved.headers["location"] == f"/crm/customers/{ids[0]}"
    doc = api.get(f"/crm/customers/{ids[1]}", headers=READ).json()
    assert doc["id"] == ids[0]
    assert len(doc["sources"]) == 3


def test_pushed_incidents_use_the_source_mapping_file(api: TestClient, tmp_path: Path) -> None:
    mappings = tmp_path / "crm" / "mappings"
    mappings.mkdir(parents=True)
    (mappings / "tickets-incidents.yaml").write_text(
        "kind: incidents\nsource: tickets\nid: ticket\ncustomer: cust\n"
        "customer_source: crm\nfields: {category: type, opened_at: opened, status: state}\n",
        encoding="utf-8")
    api.post("/crm/sources/crm/records", json={"records": RECORDS}, headers=PUSH)
    report = api.post("/crm/sources/tickets/records", headers=PUSH, json={
        "kind": "incidents", "records": [
            {"ticket": "T-1", "cust": "C1", "type": "internet-down", "state": "open",
             "opened": "2026-11-23T07:00:00+00:00"}]}).json()
    assert report["created"] == 1, report
    dana = api.get("/crm/customers", params={"account": "100100"},
                   headers=READ).json()["customers"][0]
    doc = api.get(f"/crm/customers/{dana['id']}", headers=READ).json()
    assert doc["open_incidents"] == 1
    assert doc["incidents"][0]["category"] == "internet-down"


def test_a_broken_mapping_file_is_reported_not_guessed(api: TestClient,
                                                       tmp_path: Path) -> None:
    mappings = tmp_path / "crm" / "mappings"
    mappings.mkdir(parents=True)
    (mappings / "bad.yaml").write_text("source: crm\nid: id\nnmae: x\n", encoding="utf-8")
    got = api.post("/crm/sources/crm/records", json={"records": RECORDS}, headers=PUSH)
    assert got.status_code == 500
    assert "bad.yaml:3:1: nmae" in got.json()["detail"]


def test_a_large_push_is_taken_whole(api: TestClient) -> None:
    """On SQLite in slices of 1,000 (one transaction each, short write locks); the report
    covers the whole batch either way."""
    from datetime import UTC, datetime

    from crm_sync import demo

    records = list(demo.iter_customer_rows(2_500, now=datetime(2026, 11, 23, tzinfo=UTC)))
    records[1_700]["id"] = ""  # one bad record in the second slice
    got = api.post("/crm/sources/billing/records", json={"records": records}, headers=PUSH)
    report = got.json()
    assert (report["created"], report["rejected"]) == (2_499, 1)
    assert [(r["line"], r["reason"]) for r in report["rejections"]] == [
        (1_700, "missing id (column 'id')")]
    again = api.post("/crm/sources/billing/records", json={"records": records},
                     headers=PUSH).json()
    assert (again["unchanged"], again["created"]) == (2_499, 0)
