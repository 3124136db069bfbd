"""Loading customers and their history from several sources: idempotent upserts, merges across
sources, rejections with line numbers, resumable runs, and the operator's merge / unmerge."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from crm_sync import demo
from crm_sync.identity import Rules
from crm_sync.importer import Interrupted, Report, UnreadableFile, import_file
from crm_sync.lookup import identify_caller
from crm_sync.mapping import MappingError, default_mapping, load_mapping
from crm_sync.models import Customer, CustomerPhone, Incident, MergeEvent, SourceRecord
from crm_sync.store import Store, StoreError
from ivr.core.db import make_engine

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
COLUMNS = demo.CUSTOMER_COLUMNS


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    e = make_engine(database_url, 2)
    yield e
    e.dispose()


def row(id_: str, name: str = "", phone: str = "", *, mobile: str = "", email: str = "",
        account: str = "", tier: str = "", language: str = "", status: str = "",
        updated: str = "2026-11-01T10:00:00+00:00") -> dict[str, str]:
    return {"id": id_, "name": name, "phone": phone, "mobile": mobile, "email": email,
            "account_number": account, "language": language, "tier": tier, "segment": "",
            "status": status, "date_of_birth": "", "updated_at": updated}


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    demo.write_csv(path, rows, COLUMNS)
    return path


def load(engine: Engine, path: Path, source: str, kind: str = "customers",
         rules: Rules | None = None, **kw: Any) -> Report:
    return import_file(engine, path, default_mapping(source, kind), rules or Rules(), "IL",
                       lambda: NOW, **kw)


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def customer_of(engine: Engine, source: str, external_id: str) -> int | None:
    with engine.connect() as conn:
        return conn.execute(select(SourceRecord.customer_id).where(
            SourceRecord.source == source, SourceRecord.external_id == external_id)).scalar()


def snapshot(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return [
            conn.execute(select(Customer.id, Customer.name, Customer.account_number,
                                Customer.tier, Customer.lineage).order_by(Customer.id)).all(),
            conn.execute(select(CustomerPhone.customer_id, CustomerPhone.e164)
                         .order_by(CustomerPhone.customer_id, CustomerPhone.e164)).all(),
            conn.execute(select(SourceRecord.source, SourceRecord.external_id,
                                SourceRecord.customer_id, SourceRecord.content_hash)
                         .order_by(SourceRecord.id)).all(),
        ]


TLV = [
    row("T1", "Dana Cohen", "03-555-1234", mobile="050-123-4567", email="dana@example.com",
        language="he-IL"),
    row("T2", "Avi Cohen", "03-555-1234", account="100200", tier="premium"),
    row("T3", "Bad Phone", "12"),
    row("", "No Id", "050-999-9999"),
    row("T4", "Moshe Levi", mobile="052-765-4321", email="not-an-email"),
]
BILLING = [
    row("B1", "Dana Cohen", "00972501234567", account="100100", tier="premium",
        updated="2026-11-10T10:00:00+00:00"),
    row("B2", "Avi Cohen", "+972 3 555 1234", account="100200", tier="standard",
        updated="2026-11-12T10:00:00+00:00"),
]


def test_same_person_from_two_sources_is_one_customer_with_lineage(
        engine: Engine, tmp_path: Path) -> None:
    first = load(engine, write(tmp_path / "tlv.csv", TLV), "branch-tlv")
    assert (first.counts.created, first.counts.rejected) == (2, 3)
    second = load(engine, write(tmp_path / "billing.csv", BILLING), "billing")
    assert (second.counts.created, second.counts.merged) == (0, 2)
    assert count(engine, Customer) == 2
    dana = customer_of(engine, "branch-tlv", "T1")
    assert dana is not None and dana == customer_of(engine, "billing", "B1")
    with engine.connect() as conn:
        golden = conn.execute(select(Customer.account_number, Customer.tier)
                              .where(Customer.id == dana)).one()
        numbers = set(conn.execute(select(CustomerPhone.e164).where(
            CustomerPhone.customer_id == dana)).scalars())
    assert golden.account_number == "100100"
    assert golden.tier == "premium"
    assert numbers == {"+97235551234", "+972501234567"}
    # Avi's tier differs between sources: the newest wins, the other stays visible.
    avi = customer_of(engine, "billing", "B2")
    with engine.connect() as conn:
        lineage = conn.execute(select(Customer.lineage).where(Customer.id == avi)).scalar_one()
    assert [(c["value"], c["source"], c["chosen"]) for c in lineage["tier"]] == [
        ("standard", "billing", True), ("premium", "branch-tlv", False)]


def test_rejections_name_the_line_and_the_reason(engine: Engine, tmp_path: Path) -> None:
    report = load(engine, write(tmp_path / "tlv.csv", TLV), "branch-tlv")
    got = [(r.line, r.external_id, r.reason) for r in report.rejected]
    assert got == [
        (4, "T3", "bad phone in 'phone': too short for a phone number: '12'"),
        (5, None, "missing id (column 'id')"),
        (6, "T4", "bad e-mail in 'email': 'not-an-email'"),
    ]
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT line, reason FROM import_rejections ORDER BY line")
                              ).all()
    assert [line for line, _ in stored] == [4, 5, 6]


def test_importing_the_same_file_twice_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "tlv.csv", TLV)
    load(engine, path, "branch-tlv")
    before = snapshot(engine)
    again = load(engine, path, "branch-tlv")
    assert again.counts.as_dict() == {"created": 0, "updated": 0, "merged": 0, "unchanged": 2,
                                      "rejected": 3, "customers_merged": 0}
    assert snapshot(engine) == before


def test_a_changed_record_updates_the_customer(engine: Engine, tmp_path: Path) -> None:
    load(engine, write(tmp_path / "a.csv", TLV[:2]), "branch-tlv")
    changed = [row("T1", "Dana Cohen-Levi", "03-555-1234", mobile="050-123-4567",
                   email="dana@example.com", updated="2026-11-20T10:00:00+00:00"), TLV[1]]
    report = load(engine, write(tmp_path / "b.csv", changed), "branch-tlv")
    assert (report.counts.updated, report.counts.unchanged, report.counts.created) == (1, 1, 0)
    with engine.connect() as conn:
        names = conn.execute(select(Customer.name).order_by(Customer.id)).scalars().all()
    assert names == ["Dana Cohen-Levi", "Avi Cohen"]


def test_shared_landline_does_not_merge_a_family(engine: Engine, tmp_path: Path) -> None:
    family = [row("H1", "Yossi Mizrahi", "04-822-3344", account="300001"),
              row("H2", "Rivka Mizrahi", "048223344", account="300002")]
    load(engine, write(tmp_path / "family.csv", family), "branch-haifa")
    assert count(engine, Customer) == 2
    with engine.connect() as conn:
        match = identify_caller(conn, "+972 4 822 3344", "IL", NOW)
    assert match.outcome == "ambiguous"
    assert len(match.customer_ids) == 2


def test_typo_in_one_branch_is_still_the_same_person(engine: Engine, tmp_path: Path) -> None:
    load(engine, write(tmp_path / "b.csv", [row("B9", "Yehuda Ben-David", "052-333-4444",
                                                account="555001")]), "billing")
    report = load(engine, write(tmp_path / "h.csv", [row("H9", "Yehuda Ben-Dvid",
                                                         "+972523334444")]), "branch-haifa")
    assert report.counts.merged == 1
    assert count(engine, Customer) == 1


def test_a_record_linking_two_customers_merges_them(engine: Engine, tmp_path: Path) -> None:
    load(engine, write(tmp_path / "a.csv", [row("A1", "Noa Peretz", "050-111-2222")]), "branch-tlv")
    load(engine, write(tmp_path / "b.csv", [row("B1", "Noa Peretz", email="noa@example.com")]),
         "billing")
    assert count(engine, Customer) == 2
    report = load(engine, write(tmp_path / "c.csv", [
        row("K1", "Noa Peretz", "0501112222", email="noa@example.com")]), "tickets")
    assert report.counts.customers_merged == 1
    assert count(engine, Customer) == 1
    with engine.connect() as conn:
        event = conn.execute(select(MergeEvent.kind, MergeEvent.actor)).one()
    assert tuple(event) == ("merge", "import:tickets")


def test_an_id_merged_away_is_never_given_to_someone_else(engine: Engine,
                                                           tmp_path: Path) -> None:
    load(engine, write(tmp_path / "a.csv", [row("A1", "Noa Peretz", "050-111-2222"),
                                            row("A2", "Noa Peretz", email="noa@example.com")]),
         "branch-tlv")
    gone = customer_of(engine, "branch-tlv", "A2")
    load(engine, write(tmp_path / "b.csv", [row("K1", "Noa Peretz", "0501112222",
                                                email="noa@example.com")]), "tickets")
    assert customer_of(engine, "branch-tlv", "A2") != gone
    load(engine, write(tmp_path / "c.csv", [row("N1", "Ron Shapira", "052-000-1111")]),
         "billing")
    newcomer = customer_of(engine, "billing", "N1")
    assert gone is not None and newcomer is not None and newcomer > gone


def _two_people(engine: Engine, tmp_path: Path) -> tuple[int, int]:
    load(engine, write(tmp_path / "a.csv", [
        row("P1", "Dana Cohen", "050-123-4567", account="100100"),
        row("P2", "Dan Cohen", "052-987-6543")]), "branch-tlv")
    incidents = tmp_path / "inc.csv"
    demo.write_csv(incidents, [
        {"id": "I1", "customer_id": "P1", "category": "internet-down", "status": "open",
         "summary": "", "branch": "tlv", "opened_at": "2026-11-23T07:00:00+00:00",
         "closed_at": "", "updated_at": "2026-11-23T07:00:00+00:00"},
        {"id": "I2", "customer_id": "P2", "category": "billing-dispute", "status": "closed",
         "summary": "", "branch": "tlv", "opened_at": "2026-11-01T07:00:00+00:00",
         "closed_at": "2026-11-02T07:00:00+00:00", "updated_at": "2026-11-02T07:00:00+00:00"},
    ], demo.INCIDENT_COLUMNS)
    assert load(engine, incidents, "branch-tlv", "incidents").counts.created == 2
    a, b = customer_of(engine, "branch-tlv", "P1"), customer_of(engine, "branch-tlv", "P2")
    assert a is not None and b is not None and a != b
    return a, b


def test_merge_then_unmerge_restores_both(engine: Engine, tmp_path: Path) -> None:
    a, b = _two_people(engine, tmp_path)
    with engine.begin() as conn:
        Store(conn, Rules(), NOW, "operator").merge(a, b, "same person, says the agent")
    assert count(engine, Customer) == 1
    assert customer_of(engine, "branch-tlv", "P2") == a
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Incident).where(
            Incident.customer_id == a)).scalar_one() == 2
    with engine.begin() as conn:
        restored = Store(conn, Rules(), NOW, "operator").unmerge(a)
    assert count(engine, Customer) == 2
    assert customer_of(engine, "branch-tlv", "P1") == a
    assert customer_of(engine, "branch-tlv", "P2") == restored
    with engine.connect() as conn:
        owners = dict(conn.execute(select(Incident.external_id, Incident.customer_id)).all())
        names = dict(conn.execute(select(Customer.id, Customer.name)).all())
        numbers = dict(conn.execute(select(CustomerPhone.e164, CustomerPhone.customer_id)).all())
    assert owners == {"I1": a, "I2": restored}  # history follows its record
    assert names == {a: "Dana Cohen", restored: "Dan Cohen"}
    assert numbers == {"+972501234567": a, "+972529876543": restored}


def test_unmerged_customers_are_not_merged_again_by_an_import(engine: Engine,
                                                              tmp_path: Path) -> None:
    # A nameless record on a number both share would join them; the operator said no.
    load(engine, write(tmp_path / "a.csv", [row("S1", "Gil Amar", "050-444-5555"),
                                            row("S2", "Gil Amar", "+972504445555")]), "branch-tlv")
    assert count(engine, Customer) == 1
    cid = customer_of(engine, "branch-tlv", "S1")
    assert cid is not None
    with engine.begin() as conn:
        other = Store(conn, Rules(), NOW, "operator").unmerge(cid, [("branch-tlv", "S2")])
    report = load(engine, write(tmp_path / "b.csv", [row("X1", "", "0504445555")]), "billing")
    assert report.counts.customers_merged == 0
    assert count(engine, Customer) == 2
    assert customer_of(engine, "branch-tlv", "S2") == other
    assert customer_of(engine, "billing", "X1") == cid


def test_operator_mistakes_are_refused_clearly(engine: Engine, tmp_path: Path) -> None:
    a, _b = _two_people(engine, tmp_path)
    with engine.begin() as conn:
        store = Store(conn, Rules(), NOW, "operator")
        with pytest.raises(StoreError, match="no customer 999"):
            store.merge(a, 999)
        with pytest.raises(StoreError, match="no merge to undo"):
            store.unmerge(a)
        with pytest.raises(StoreError, match="holds no source record branch-tlv:P2"):
            store.unmerge(a, [("branch-tlv", "P2")])
        with pytest.raises(StoreError, match="every record"):
            store.unmerge(a, [("branch-tlv", "P1")])


def test_an_interrupted_import_resumes_without_duplicates(engine: Engine,
                                                          tmp_path: Path) -> None:
    rows = list(demo.iter_customer_rows(1200, now=NOW, source="billing"))
    path = tmp_path / "big.csv"
    demo.write_csv(path, rows, COLUMNS)

    def stop_after_first_batch(done: int) -> None:
        if done >= 500:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as stopped:
        load(engine, path, "billing", batch_size=500, on_progress=stop_after_first_batch)
    assert stopped.value.report.records == 500
    assert count(engine, SourceRecord) == 500
    resumed = load(engine, path, "billing", batch_size=500)
    assert resumed.resumed_after == 500
    assert resumed.records == 700
    assert resumed.counts.created == 1200  # the whole file's report, both parts
    assert count(engine, SourceRecord) == 1200
    assert count(engine, Customer) == 1200
    # Starting over on purpose finds everything in place.
    again = load(engine, path, "billing", batch_size=500, resume=False)
    assert (again.counts.unchanged, again.counts.created) == (1200, 0)


def test_a_ten_thousand_row_file(engine: Engine, tmp_path: Path) -> None:
    rows = list(demo.iter_customer_rows(10_000, now=NOW, source="billing"))
    rows[17]["mobile"] = "0"  # one bad row, somewhere in the middle
    rows[17]["phone"] = ""
    path = tmp_path / "ten-thousand.csv"
    demo.write_csv(path, rows, COLUMNS)
    report = load(engine, path, "billing")
    assert report.counts.created == 9_999
    assert [(r.line, r.external_id) for r in report.rejected] == [(19, rows[17]["id"])]
    assert count(engine, Customer) == 9_999
    probe = rows[5000]
    with engine.connect() as conn:
        match = identify_caller(conn, probe["mobile"], "IL", NOW)
    assert match.outcome == "known"
    assert match.customer_ids == (customer_of(engine, "billing", probe["id"]),)


def test_jsonl_with_unreadable_lines(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "push.jsonl"
    path.write_text("\n".join([
        json.dumps({"id": "J1", "name": "Lior Azulay", "phones": ["050-777-8888",
                                                                  "03-777-8888"]}),
        "{not json",
        json.dumps(["a", "list"]),
        "",
        json.dumps({"id": "J2", "name": "Tamar Gabay", "email": "tamar@example.com"}),
    ]) + "\n", encoding="utf-8")
    report = load(engine, path, "crm")
    assert report.counts.created == 2
    assert [(r.line, r.reason.split(":")[0]) for r in report.rejected] == [
        (2, "not JSON"), (3, "expected a JSON object, got list")]
    with engine.connect() as conn:
        assert identify_caller(conn, "037778888", "IL", NOW).outcome == "known"


def test_a_csv_row_with_too_many_fields_is_rejected(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,name,phone\nC1,Ok,050-121-2121\nC2,Too,050-131-3131,extra\n",
                    encoding="utf-8")
    report = load(engine, path, "x")
    assert report.counts.created == 1
    assert [(r.line, r.reason) for r in report.rejected] == [
        (3, "4 fields, the header has 3")]


def test_unknown_file_format_is_refused(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "customers.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(UnreadableFile, match="unknown format"):
        load(engine, path, "x")


def test_history_rows_for_unknown_customers_are_rejected(engine: Engine,
                                                         tmp_path: Path) -> None:
    _two_people(engine, tmp_path)
    path = tmp_path / "calls.csv"
    base = dict.fromkeys(demo.INTERACTION_COLUMNS, "")
    demo.write_csv(path, [
        {**base, "id": "C1", "customer_id": "P1", "channel": "call", "direction": "in",
         "started_at": "2026-11-23T07:05:00+00:00", "topic": "internet-down",
         "resolved": "false", "promised_action": "technician visit",
         "promised_due_at": "2026-11-24T12:00:00+00:00"},
        {**base, "id": "C2", "customer_id": "NOPE", "channel": "call",
         "started_at": "2026-11-23T07:05:00+00:00"},
        {**base, "id": "C3", "customer_id": "P2", "channel": "call",
         "started_at": "2026-11-23T07:05:00+00:00", "resolved": "maybe"},
    ], demo.INTERACTION_COLUMNS)
    report = load(engine, path, "branch-tlv", "interactions")
    assert report.counts.created == 1
    assert [(r.line, r.external_id) for r in report.rejected] == [(3, "C2"), (4, "C3")]
    assert "no customer 'NOPE'" in report.rejected[0].reason
    again = load(engine, path, "branch-tlv", "interactions")
    assert again.counts.unchanged == 1


MAPPING = """\
source: branch-tlv
id: cust_no
name: [first, last]
phones: [mobile, home]
emails: [mail]
account_number: acct
tier: {field: level, map: {gold: premium}}
seen_at: {field: updated, format: "%d/%m/%Y %H:%M", timezone: Asia/Jerusalem}
"""


def test_a_mapping_file_maps_a_foreign_layout(engine: Engine, tmp_path: Path) -> None:
    mapping_path = tmp_path / "tlv.yaml"
    mapping_path.write_text(MAPPING, encoding="utf-8")
    mapping = load_mapping(mapping_path)
    path = tmp_path / "export.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["cust_no", "first", "last", "mobile", "home", "mail", "acct",
                         "level", "updated"])
        writer.writerow(["17", "דנה", "כהן", "050-123-4567", "", "", "100-200", "gold",
                         "22/11/2026 18:30"])
    report = import_file(engine, path, mapping, Rules(), "IL", lambda: NOW)
    assert report.counts.created == 1
    with engine.connect() as conn:
        c = conn.execute(select(Customer.name, Customer.tier, Customer.account_number)).one()
    assert tuple(c) == ("דנה כהן", "premium", "100200")


@pytest.mark.parametrize(("text_", "expected"), [
    ("source: x\nid: [1\n", ":2:5: not valid YAML: `[` opened on line 2 is never closed"),
    ("source: x\nid: id\nnmae: full_name\n", ":3:1: nmae: Extra inputs are not permitted"),
    ("source: x\nid: id\ntier: {field: t, mapp: {}}\n", ":3:18: tier.mapp: Extra inputs"),
    ("kind: incidents\nsource: x\nid: id\ncustomer: c\nfields: {severity: s}\n",
     "unknown incidents field(s) ['severity']"),
    ("- a list\n", ":1:1: expected a mapping"),
])
def test_mapping_mistakes_name_file_and_line(tmp_path: Path, text_: str, expected: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text_, encoding="utf-8")
    with pytest.raises(MappingError) as err:
        load_mapping(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_demo_data_is_recognised_by_phone_in_another_format(engine: Engine,
                                                           tmp_path: Path) -> None:
    data = demo.generate(60, seed=3, now=NOW)
    for kind, per_source, columns in (
            ("customers", data.customers, demo.CUSTOMER_COLUMNS),
            ("incidents", data.incidents, demo.INCIDENT_COLUMNS)):
        for source, rows in per_source.items():
            path = tmp_path / f"{source}.{kind}.csv"
            demo.write_csv(path, rows, columns)
            load(engine, path, source, kind)
    # People in several sources are one customer each, not one per source record.
    assert count(engine, Customer) < count(engine, SourceRecord)
    with engine.connect() as conn:
        incident = conn.execute(select(Incident.customer_id).where(Incident.status == "open")
                                .limit(1)).scalar_one()
        phone = conn.execute(select(CustomerPhone.e164).where(
            CustomerPhone.customer_id == incident)).scalars().first()
        assert phone is not None
        written = "0" + phone[4:]  # +9725... -> 05...
        match = identify_caller(conn, written, "IL", NOW + timedelta(minutes=1))
    if match.outcome == "known":
        assert match.attributes["has_open_incident"] is True
    else:  # a shared family line
        assert match.outcome == "ambiguous"
        assert incident in match.customer_ids



def test_readme_examples_load(tmp_path: Path) -> None:
    """The mapping and rules files README.md shows are valid as written."""
    from crm_sync.config import load_rules

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in readme.split("```yaml\n")[1:]]
    examples = {b.splitlines()[0].removeprefix("# "): b for b in blocks
                if b.startswith("# crm/")}
    assert set(examples) == {"crm/mappings/branch-tlv.yaml",
                             "crm/mappings/tickets-incidents.yaml"}
    for name, body in examples.items():
        path = tmp_path / Path(name).name
        path.write_text(body, encoding="utf-8")
        assert load_mapping(path).source in ("branch-tlv", "tickets")
    rules_block = next(b for b in blocks if b.startswith("match_on:"))
    (tmp_path / "rules.yaml").write_text(rules_block, encoding="utf-8")
    rules = load_rules(tmp_path / "rules.yaml")
    assert rules.field_policy["tier"] == "source_priority"
    assert rules.source_priority == ("billing", "branch-tlv", "branch-haifa")


@pytest.mark.parametrize(("text_", "expected"), [
    ("match_on: [phone]\nnmae_similarity: 0.9\n", "unknown key(s) ['nmae_similarity']"),
    ("match_on: [fax]\n", "unknown match keys ['fax']"),
    ("field_policy: {tier: loudest}\n", "unknown policy 'loudest' for 'tier'"),
    ("name_similarity: 2\n", "name_similarity must be within [0, 1]"),
    ("- a\n", "expected a mapping"),
    ("match_on: [phone\n", "not valid YAML"),
])
def test_rules_mistakes_are_refused(tmp_path: Path, text_: str, expected: str) -> None:
    from crm_sync.config import load_rules

    path = tmp_path / "rules.yaml"
    path.write_text(text_, encoding="utf-8")
    with pytest.raises(MappingError, match=re.escape(expected)):
        load_rules(path)
    assert load_rules(tmp_path / "absent.yaml") == Rules()


def test_two_mapping_files_for_one_source_are_refused(tmp_path: Path) -> None:
    from crm_sync.config import Mappings

    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text("source: billing\nid: id\n", encoding="utf-8")
    with pytest.raises(MappingError, match=r"b\.yaml: source 'billing' \(customers\) is "
                                           r"already mapped by .*a\.yaml"):
        Mappings(tmp_path)


def test_an_unreadable_csv_record_does_not_stop_the_rest(engine: Engine,
                                                         tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    huge = b"x" * 200_000  # over the csv module's field limit
    path.write_bytes(b"id,name,phone\nC1,Ok,050-121-2121\nC2,Nul\x00,050-131-3131\n"
                     b"C3,Fine,050-141-4141\nC4," + huge + b",050-151-5151\n"
                     b"C5,Last,050-161-6161\n")
    report = load(engine, path, "x")
    assert report.counts.created == 3
    assert [(r.line, r.reason.split(":")[0]) for r in report.rejected] == [
        (3, "contains a NUL (0x00) character, which the database cannot store"),
        (5, "unreadable CSV")]


def test_concurrent_imports_of_the_same_people_make_no_duplicates(
        engine: Engine, tmp_path: Path) -> None:
    """Two sources loaded at once (an import and a push, or two operators): identity
    resolution runs one batch at a time, so nobody is created twice."""
    import threading

    people = list(demo.iter_customer_rows(600, now=NOW, source="billing"))
    paths = []
    for source in ("branch-tlv", "branch-haifa"):
        # Same people in the same order: the two imports meet them at the same moment.
        rows = [{**r, "id": f"{source}-{i}"} for i, r in enumerate(people)]
        paths.append((write(tmp_path / f"{source}.csv", rows), source))
    errors: list[BaseException] = []

    def run(path: Path, source: str) -> None:
        try:
            load(engine, path, source, batch_size=100)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=p) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count(engine, SourceRecord) == 1200
    assert count(engine, Customer) == 600
