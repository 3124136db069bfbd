"""The synthetic customer-store data: deterministic, overlapping sources, messy on purpose."""

from __future__ import annotations

import csv
import difflib
import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crm_sync.demo import (
    CUSTOMER_COLUMNS,
    INCIDENT_COLUMNS,
    INCIDENT_SOURCES,
    INTERACTION_COLUMNS,
    SOURCES,
    DemoData,
    generate,
    iter_customer_rows,
    write_csv,
    write_jsonl,
)
from crm_sync.phones import normalize

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
PEOPLE = 2000
HEBREW = re.compile(r"[\u0590-\u05ff]")
PREFIXES = {"branch-tlv": "TLV-", "branch-haifa": "HFA-", "billing": "B-", "tickets": "T-"}

Row = dict[str, str]


@pytest.fixture(scope="module")
def data() -> DemoData:
    return generate(PEOPLE, seed=11, now=NOW)


def e164(raw: str) -> str | None:
    return normalize(raw, "IL").e164


def is_bad(row: Row) -> bool:
    phones_bad = any(row[c] and e164(row[c]) is None for c in ("phone", "mobile"))
    return not row["id"] or phones_bad or bool(row["email"] and "@" not in row["email"])


def good_rows(data: DemoData, source: str) -> list[Row]:
    return [r for r in data.customers[source] if not is_bad(r)]


def moment(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.utcoffset() == timedelta(0), text
    return value


def test_same_seed_same_data() -> None:
    one = generate(300, seed=3, now=NOW)
    assert one == generate(300, seed=3, now=NOW)
    assert one != generate(300, seed=4, now=NOW)
    stream = list(iter_customer_rows(300, seed=3, now=NOW))
    assert stream == list(iter_customer_rows(300, seed=3, now=NOW))
    assert stream != list(iter_customer_rows(300, seed=4, now=NOW))


def test_counts_columns_and_unique_ids(data: DemoData) -> None:
    assert data.people == PEOPLE
    assert set(data.customers) == set(SOURCES)
    assert len(data.customers["billing"]) == PEOPLE  # billing knows everyone
    for source, low, high in (("branch-tlv", 0.4, 0.6), ("branch-haifa", 0.4, 0.6),
                              ("tickets", 0.2, 0.4)):
        assert low * PEOPLE < len(data.customers[source]) < high * PEOPLE, source
    for source, rows in data.customers.items():
        ids = [r["id"] for r in rows if r["id"]]
        assert len(ids) == len(set(ids)), source
        assert all(i.startswith(PREFIXES[source]) for i in ids), source
        for row in rows:
            assert tuple(row) == CUSTOMER_COLUMNS
            assert all(isinstance(v, str) for v in row.values())
            assert moment(row["updated_at"]) < NOW
            assert row["status"] in {"active", "leaving", "left"}
            assert row["tier"] in {"standard", "premium", "business"}
            assert row["segment"] in {"consumer", "smb"}
            assert row["language"] in {"he-IL", "en-US", ""}
    statuses = [r["status"] for r in data.customers["billing"]]
    assert statuses.count("active") > 0.8 * PEOPLE
    assert all(r["account_number"] for r in good_rows(data, "billing"))


def test_one_phone_written_differently_across_sources(data: DemoData) -> None:
    # Account numbers tell people apart; the same number must come in different spellings.
    written: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    rows_of: dict[str, int] = defaultdict(int)
    for source in SOURCES:
        for row in good_rows(data, source):
            if row["account_number"] and row["phone"]:
                number = e164(row["phone"])
                assert number is not None
                written[row["account_number"]][number].add(row["phone"])
                rows_of[row["account_number"]] += 1
    several = [acc for acc, n in rows_of.items() if n > 1]
    assert len(several) > PEOPLE // 3
    assert all(len(written[acc]) == 1 for acc in several)  # one person, one phone number
    spelled = [acc for acc in several if len(next(iter(written[acc].values()))) > 1]
    assert len(spelled) > 0.6 * len(several)
    styles = {re.sub(r"\d", "d", raw) for numbers in written.values()
              for forms in numbers.values() for raw in forms}
    # 050-123-4567, +972 50 123 4567, 00972501234567, 972501234567, 0501234567
    assert {"ddd-ddd-dddd", "+ddd dd ddd dddd", "d" * 14, "d" * 12, "d" * 10} <= styles


def test_hebrew_and_english_names(data: DemoData) -> None:
    names = [r["name"] for r in data.customers["billing"]]
    hebrew = [n for n in names if HEBREW.search(n)]
    assert 0.5 < len(hebrew) / len(names) < 0.7
    assert all(re.fullmatch(r"[A-Za-z]+( [A-Za-z]+)+", n) for n in names if n not in hebrew)
    for row in data.customers["billing"]:
        if HEBREW.search(row["name"]):
            assert row["language"] == "he-IL"


def test_some_rows_are_bad_and_normalize_rejects_their_phones(data: DemoData) -> None:
    rows = [r for rs in data.customers.values() for r in rs]
    bad = [r for r in rows if is_bad(r)]
    assert 0.003 < len(bad) / len(rows) < 0.03
    assert any(not r["id"] for r in bad)
    assert any(r["email"] and "@" not in r["email"] for r in bad)
    short = [r["phone"] for r in bad if len(re.sub(r"\D", "", r["phone"])) < 7]
    assert short
    assert all(not normalize(raw, "IL").ok for raw in short)
    for row in rows:  # everything else imports cleanly
        if row not in bad:
            assert row["phone"] or row["mobile"]
            for column in ("phone", "mobile"):
                assert not row[column] or e164(row[column]), row


def test_family_landline_shared_by_different_people(data: DemoData) -> None:
    by_phone: dict[str, list[Row]] = defaultdict(list)
    for row in good_rows(data, "billing"):
        number = e164(row["phone"])
        assert number is not None
        by_phone[number].append(row)
    shared = [rows for rows in by_phone.values() if len(rows) > 1]
    assert len(shared) >= PEOPLE // 100 // 2
    for rows in shared:  # no accidental collisions: every shared number is a family's
        assert len({r["account_number"] for r in rows}) == len(rows)
        assert len({r["name"].split()[0] for r in rows}) == len(rows)
        assert len({tuple(r["name"].split()[1:]) for r in rows}) == 1
        assert len({e164(r["mobile"]) for r in rows if r["mobile"]}) == sum(
            1 for r in rows if r["mobile"])


def test_a_few_branch_names_have_a_typo(data: DemoData) -> None:
    billing = {r["account_number"]: r for r in good_rows(data, "billing")}
    compared = typos = 0
    for source in ("branch-tlv", "branch-haifa"):
        for row in good_rows(data, source):
            other = billing.get(row["account_number"])
            if other is None:
                continue
            compared += 1
            if row["name"] != other["name"]:
                typos += 1
                assert difflib.SequenceMatcher(None, row["name"], other["name"]).ratio() > 0.75
                assert e164(row["mobile"] or row["phone"]) == e164(
                    other["mobile"] or other["phone"])
    assert compared > PEOPLE // 2
    assert 0.005 < typos / compared < 0.06


def test_incidents_reference_their_source_and_some_are_open_and_recent(
        data: DemoData) -> None:
    assert set(data.incidents) == set(INCIDENT_SOURCES)
    assert "billing" not in data.incidents
    everything = [i for rows in data.incidents.values() for i in rows]
    for source, incidents in data.incidents.items():
        assert incidents, source
        ids = {r["id"] for r in good_rows(data, source)}
        assert len({i["id"] for i in incidents}) == len(incidents)
        for incident in incidents:
            assert tuple(incident) == INCIDENT_COLUMNS
            assert incident["customer_id"] in ids
            assert incident["branch"] in {"tlv", "haifa", ""}
            opened = moment(incident["opened_at"])
            assert opened <= moment(incident["updated_at"]) <= NOW
            if incident["status"] == "open":
                assert incident["closed_at"] == ""
            else:
                assert incident["status"] == "closed"
                assert opened <= moment(incident["closed_at"]) <= NOW
    assert {i["branch"] for i in data.incidents["branch-haifa"]} == {"haifa"}
    still_open = [i for i in everything if i["status"] == "open"]
    assert 0.15 < len(still_open) / len(everything) < 0.35
    recent = [i for i in still_open if NOW - moment(i["opened_at"]) < timedelta(hours=3)]
    assert len(recent) >= 10


def test_interactions_reference_their_source_and_some_are_recent(data: DemoData) -> None:
    assert set(data.interactions) == set(SOURCES)
    everything = [i for rows in data.interactions.values() for i in rows]
    for source, interactions in data.interactions.items():
        ids = {r["id"] for r in good_rows(data, source)}
        assert len({i["id"] for i in interactions}) == len(interactions)
        for act in interactions:
            assert tuple(act) == INTERACTION_COLUMNS
            assert act["customer_id"] in ids
            assert act["channel"] in {"call", "callback", "ticket", "email"}
            assert act["direction"] in {"in", "out"}
            assert act["queue"] in {"support", "billing", "sales"}
            assert act["resolved"] in {"true", "false"}
            assert bool(act["promised_action"]) == bool(act["promised_due_at"])
            started = moment(act["started_at"])
            assert started <= NOW
            if act["ended_at"]:
                assert started <= moment(act["ended_at"]) <= NOW
            if act["promised_due_at"]:
                assert moment(act["promised_due_at"]) > started
    day = [i for i in everything if NOW - moment(i["started_at"]) < timedelta(days=1)]
    assert len(day) > 0.05 * len(everything)
    assert any(i["promised_due_at"] and moment(i["promised_due_at"]) > NOW for i in day)
    assert any(HEBREW.search(i["notes"]) for i in everything)


def test_iter_customer_rows_yields_exactly_n_unique_rows() -> None:
    rows = list(iter_customer_rows(5000, seed=5, now=NOW, source="branch-haifa"))
    assert len(rows) == 5000
    assert len({r["id"] for r in rows}) == 5000
    assert all(r["id"].startswith("HFA-") and tuple(r) == CUSTOMER_COLUMNS for r in rows)
    mobiles = [e164(r["mobile"]) for r in rows]
    assert None not in mobiles
    assert len(set(mobiles)) == 5000
    accounts = [r["account_number"] for r in rows if r["account_number"]]
    assert len(accounts) == len(set(accounts))
    assert all(moment(r["updated_at"]) < NOW for r in rows)
    assert any(HEBREW.search(r["name"]) for r in rows)
    assert list(iter_customer_rows(0, now=NOW)) == []


def test_bad_arguments_are_refused() -> None:
    naive = datetime(2026, 11, 23, 8, 0)  # noqa: DTZ001 (the point of the test)
    with pytest.raises(ValueError, match="timezone-aware"):
        generate(10, now=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        next(iter_customer_rows(10, now=naive))
    with pytest.raises(ValueError, match="between"):
        generate(-1, now=NOW)
    with pytest.raises(ValueError, match="unknown source"):
        next(iter_customer_rows(10, now=NOW, source="crm"))
    empty = generate(0, now=NOW)
    assert empty.people == 0
    assert all(not rows for rows in empty.customers.values())


def test_write_csv_round_trips(data: DemoData, tmp_path: Path) -> None:
    path = tmp_path / "billing.csv"
    rows = data.customers["billing"][:300]
    assert write_csv(path, iter(rows), CUSTOMER_COLUMNS) == 300
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(CUSTOMER_COLUMNS)
    with path.open(encoding="utf-8", newline="") as fh:
        assert list(csv.DictReader(fh)) == rows
    assert write_csv(tmp_path / "none.csv", [], INCIDENT_COLUMNS) == 0
    assert (tmp_path / "none.csv").read_text(encoding="utf-8").strip() == ",".join(
        INCIDENT_COLUMNS)


def test_write_jsonl_round_trips(data: DemoData, tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    rows = data.interactions["tickets"][:300]
    assert write_jsonl(path, iter(rows)) == 300
    text = path.read_text(encoding="utf-8")
    assert [json.loads(line) for line in text.splitlines()] == rows
    assert HEBREW.search(text)  # kept as UTF-8, not \u escapes
