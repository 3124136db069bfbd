"""Identity resolution: which source records are one person, and the golden record with lineage."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_sync.identity import (
    GOLDEN_FIELDS,
    Rules,
    SourceRecord,
    cluster,
    golden,
    match_reason,
    name_similarity,
)

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
RULES = Rules()


def rec(source: str, external_id: str, minutes: int = 0, **kw: Any) -> SourceRecord:
    return SourceRecord(source=source, external_id=external_id,
                        seen_at=T0 + timedelta(minutes=minutes), **kw)


def ids(clusters: list[list[SourceRecord]]) -> list[list[str]]:
    return [[f"{r.source}/{r.external_id}" for r in group] for group in clusters]


# --- name similarity ----------------------------------------------------------------------------

@pytest.mark.parametrize(("a", "b"), [
    ("Cohen Dana", "Dana Cohen"),
    ("DANA  cohen", "dana Cohen."),
    ("Zoë O'Brien", "Zoe OBrien"),
    ("Ben-David Noa", "noa ben david"),
    ("דנה כהן", "דנה כהן"),
    ("כהן דנה", "דנה כהן"),
    ("דָּנָה כֹּהֵן", "דנה כהן"),  # niqqud
])
def test_same_name_written_differently_is_identical(a: str, b: str) -> None:
    assert name_similarity(a, b) == 1.0


@pytest.mark.parametrize(("a", "b"), [
    ("Dana Cohen", "Dana Kohen"),
    ("Kohen Dana", "Dana Cohen"),
    ("Yossi Levi", "Yosi Levi"),
    ("Noa Ben-David", "Noa Ben Davidd"),
])
def test_typos_stay_above_the_threshold(a: str, b: str) -> None:
    assert name_similarity(a, b) >= RULES.name_similarity


@pytest.mark.parametrize(("a", "b"), [
    ("Dana Cohen", "Yossi Cohen"),
    ("דנה כהן", "יוסי כהן"),
    ("Dana Cohen", "Avi Levi"),
])
def test_different_people_score_low(a: str, b: str) -> None:
    assert name_similarity(a, b) < 0.7


@pytest.mark.parametrize(("a", "b"), [("", "Dana"), ("...", "Dana"), ("", "")])
def test_nothing_to_compare_scores_zero(a: str, b: str) -> None:
    assert name_similarity(a, b) == 0.0


@given(st.text(max_size=30), st.text(max_size=30))
def test_similarity_is_a_symmetric_score(a: str, b: str) -> None:
    score = name_similarity(a, b)
    assert 0.0 <= score <= 1.0
    assert score == name_similarity(b, a)


# --- pairwise matching --------------------------------------------------------------------------

@pytest.mark.parametrize(("a", "b", "reason"), [
    (rec("branch-tlv", "1", name="Dana Cohen", phones=("+972501234567",)),
     rec("branch-hfa", "9", name="Dana Kohen", phones=("+972501234567",)), "phone"),
    (rec("billing", "1", name="Dana Cohen", phones=("+972501234567",)),
     rec("tickets", "2", phones=("+972501234567",)), "phone"),  # one side has no name
    (rec("billing", "1", emails=("Dana@Example.com ",), phones=("+972501111111",)),
     rec("tickets", "2", emails=("dana@example.com",), phones=("+972502222222",)), "email"),
    (rec("billing", "1", account_number="12-345 6", name="Dana Cohen"),
     rec("tickets", "2", account_number="123456", name="Avi Levi"), "account_number"),
    (rec("billing", "1", name="Dana Cohen", phones=("+97235551234",), account_number="1"),
     rec("tickets", "2", name="Yossi Cohen", phones=("+97235551234",), account_number="2"), None),
    (rec("billing", "1", name="Dana Cohen", phones=("+97235551234",)),
     rec("tickets", "2", name="Yossi Cohen", phones=("+97235551234",)), None),
    (rec("billing", "1", emails=("d@example.com",), account_number="A-1"),
     rec("tickets", "2", emails=("d@example.com",), account_number="A-2"), None),
    (rec("billing", "1", name="Dana", emails=("a@example.com",)),
     rec("tickets", "2", name="Dana", emails=("b@example.com",)), None),
])
def test_match_reason(a: SourceRecord, b: SourceRecord, reason: str | None) -> None:
    assert match_reason(a, b, RULES) == reason
    assert match_reason(b, a, RULES) == reason


def test_only_configured_keys_are_used() -> None:
    a = rec("branch-tlv", "1", name="Dana Cohen", phones=("+972501234567",),
            emails=("dana@example.com",))
    b = rec("branch-hfa", "2", name="Dana Cohen", phones=("+972501234567",))
    no_phone = Rules(match_on=("account_number", "email"))
    assert match_reason(a, b, no_phone) is None
    assert ids(cluster([a, b], no_phone)) == [["branch-hfa/2"], ["branch-tlv/1"]]
    assert ids(cluster([a, b], RULES)) == [["branch-hfa/2", "branch-tlv/1"]]


@pytest.mark.parametrize("bad", [
    {"match_on": ("phone", "fax")},
    {"name_similarity": 1.5},
    {"field_policy": {"nickname": "newest"}},
    {"field_policy": {"tier": "loudest"}},
])
def test_bad_rules_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"unknown|within"):
        Rules(**bad)


def test_naive_timestamps_and_duplicate_records_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SourceRecord("billing", "1", seen_at=datetime(2024, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="duplicate source record billing/1"):
        cluster([rec("billing", "1"), rec("billing", "1", minutes=5)], RULES)


# --- clustering ---------------------------------------------------------------------------------

def test_same_person_across_branches_with_a_typo_is_one_cluster() -> None:
    records = [
        rec("branch-tlv", "T-17", name="Dana Cohen", phones=("+972501234567",)),
        rec("branch-hfa", "H-4", name="Dana Kohen", phones=("+972501234567", "+97248881234")),
        rec("billing", "B-1", phones=("+97248881234",)),
    ]
    assert ids(cluster(records, RULES)) == [["billing/B-1", "branch-hfa/H-4", "branch-tlv/T-17"]]


def test_shared_family_landline_keeps_two_people_apart() -> None:
    records = [
        rec("billing", "1", name="Dana Cohen", phones=("+97235551234",), account_number="1001"),
        rec("billing", "2", name="Yossi Cohen", phones=("+97235551234",), account_number="1002"),
        rec("tickets", "9", name="יוסי כהן", phones=("+97235551234",)),
        rec("tickets", "10", name="יוסי כהן", phones=("+97235551234", "+972529999999")),
    ]
    assert ids(cluster(records, RULES)) == [
        ["billing/1"], ["billing/2"], ["tickets/10", "tickets/9"]]


def test_same_email_with_different_phones_is_one_cluster() -> None:
    records = [
        rec("branch-tlv", "1", name="Dana Cohen", phones=("+972501111111",),
            emails=("dana@example.com",)),
        rec("tickets", "2", name="D. Cohen", phones=("+972502222222",),
            emails=("DANA@example.com",)),
    ]
    assert len(cluster(records, RULES)) == 1


def test_conflicting_account_numbers_veto_a_shared_email() -> None:
    records = [
        rec("billing", "1", name="Dana Cohen", emails=("family@example.com",), account_number="1"),
        rec("billing", "2", name="Dana Cohen", emails=("family@example.com",), account_number="2"),
    ]
    assert ids(cluster(records, RULES)) == [["billing/1"], ["billing/2"]]


def test_a_chain_of_weak_links_cannot_join_two_accounts() -> None:
    a = rec("billing", "A", name="Dana Cohen", phones=("+972501234567",), account_number="1")
    b = rec("tickets", "B", name="Dana Cohen", phones=("+972501234567",),
            emails=("dana@example.com",))
    c = rec("web", "C", name="Dana Levi", emails=("dana@example.com",), account_number="2")
    assert match_reason(a, b, RULES) == "phone"
    assert match_reason(b, c, RULES) == "email"
    clusters = cluster([c, b, a], RULES)
    assert len(clusters) == 2
    # The stronger link (e-mail before phone) decides where B goes.
    assert ids(clusters) == [["billing/A"], ["tickets/B", "web/C"]]


def test_same_account_number_joins_across_sources() -> None:
    records = [
        rec("billing", "1", account_number="555-123", name="Dana Cohen"),
        rec("tickets", "7", account_number="555123", name="דנה כהן"),
    ]
    assert len(cluster(records, RULES)) == 1


def test_hebrew_names_on_a_shared_phone() -> None:
    records = [
        rec("branch-tlv", "1", name="דנה כהן", phones=("+972501234567",)),
        rec("branch-hfa", "2", name="כהן דָּנָה", phones=("+972501234567",)),
        rec("branch-jlm", "3", name="יוסי כהן", phones=("+972501234567",)),
    ]
    assert ids(cluster(records, RULES)) == [["branch-hfa/2", "branch-tlv/1"], ["branch-jlm/3"]]


def test_a_switchboard_number_joins_only_equal_names() -> None:
    switchboard = ("+97239999999",)
    records = [rec("tickets", f"{i:03}", name=f"Caller {i} Number{i}", phones=switchboard)
               for i in range(150)]
    records += [rec("billing", "D1", name="Dana Cohen", phones=switchboard),
                rec("branch-tlv", "D2", name="Cohen Dana", phones=switchboard),
                rec("branch-tlv", "D3", name="Dana Kohen", phones=switchboard),
                rec("web", "X", phones=switchboard)]
    clusters = ids(cluster(records, RULES))
    assert ["billing/D1", "branch-tlv/D2"] in clusters
    assert ["branch-tlv/D3"] in clusters and ["web/X"] in clusters
    assert len(clusters) == 153


def test_empty_input() -> None:
    assert cluster([], RULES) == []


# Small pools, so that generated records collide on every key.
_record = st.builds(
    SourceRecord,
    source=st.sampled_from(["billing", "branch-tlv", "tickets"]),
    external_id=st.integers(0, 10**6).map(str),
    seen_at=st.integers(0, 1000).map(lambda m: T0 + timedelta(minutes=m)),
    name=st.none() | st.sampled_from(["Dana Cohen", "Dana Kohen", "Yossi Cohen", "דנה כהן"]),
    phones=st.lists(st.sampled_from(["+97235551234", "+972501234567", "+972529999999"]),
                    max_size=2, unique=True).map(tuple),
    emails=st.lists(st.sampled_from(["a@example.com", "b@example.com"]),
                    max_size=1).map(tuple),
    account_number=st.none() | st.sampled_from(["1", "2", "3"]),
)
_records = st.lists(_record, max_size=25, unique_by=lambda r: (r.source, r.external_id))


@settings(max_examples=200)
@given(_records, st.randoms(use_true_random=False))
def test_clusters_do_not_depend_on_input_order(records: list[SourceRecord],
                                               rnd: random.Random) -> None:
    shuffled = list(records)
    rnd.shuffle(shuffled)
    assert cluster(shuffled, RULES) == cluster(records, RULES)


@settings(max_examples=200)
@given(_records)
def test_clusters_partition_the_input_and_hold_one_account_each(
        records: list[SourceRecord]) -> None:
    clusters = cluster(records, RULES)
    flat = [r for group in clusters for r in group]
    assert sorted(flat, key=lambda r: r.key) == sorted(records, key=lambda r: r.key)
    assert [g[0].key for g in clusters] == sorted(g[0].key for g in clusters)
    for group in clusters:
        assert [r.key for r in group] == sorted(r.key for r in group)
        assert len({r.account_number for r in group} - {None}) <= 1


def _synthetic(n: int, seed: int = 7) -> list[SourceRecord]:
    rnd = random.Random(seed)
    first = ["Dana", "Yossi", "Noa", "Avi", "Maya", "דנה", "יוסי", "נועה"]
    last = ["Cohen", "Levi", "Mizrahi", "Peretz", "כהן", "לוי"]
    people = n // 3
    out = []
    for i in range(n):
        p = rnd.randrange(people)
        name = f"{first[p % len(first)]} {last[p // len(first) % len(last)]}"
        out.append(SourceRecord(
            source=rnd.choice(["billing", "branch-hfa", "branch-tlv", "tickets"]),
            external_id=str(i),
            seen_at=T0 + timedelta(minutes=i),
            name=name if rnd.random() < 0.9 else None,
            phones=(f"+9725{p:08d}",) + ((f"+9723{p // 2:07d}",) if rnd.random() < 0.3 else ()),
            emails=(f"p{p}@example.com",) if rnd.random() < 0.5 else (),
            account_number=f"A{p}" if rnd.random() < 0.5 else None,
        ))
    return out


def test_cluster_is_near_linear_on_100k_records() -> None:
    # An all-pairs comparison would take hours here; blocking by key takes a second or two.
    records = _synthetic(100_000)
    clusters = cluster(records, RULES)
    assert sum(len(g) for g in clusters) == len(records)
    assert len(records) // 4 < len(clusters) < len(records) // 2


# --- golden record ------------------------------------------------------------------------------

def _person() -> list[SourceRecord]:
    return [
        rec("billing", "B-1", minutes=0, name="Dana Cohen", tier="gold", status="active",
            account_number="1001", phones=("+972501234567",), emails=("Dana@Example.com",),
            date_of_birth=date(1985, 3, 2)),
        rec("branch-tlv", "T-17", minutes=30, name="Dana Kohen", tier="silver",
            preferred_language="he-IL", phones=("+97235551234", "+972501234567")),
        rec("tickets", "K-9", minutes=60, name="דנה כהן", status="leaving",
            emails=("dana@example.com", "d.cohen@example.com")),
    ]


def test_golden_newest_wins_with_lineage() -> None:
    result = golden(_person(), RULES)
    assert result.fields == {
        "name": "דנה כהן",
        "preferred_language": "he-IL",
        "tier": "silver",
        "segment": None,
        "status": "leaving",
        "date_of_birth": date(1985, 3, 2),
        "account_number": "1001",
        "phones": ("+97235551234", "+972501234567"),
        "emails": ("d.cohen@example.com", "dana@example.com"),
    }
    names = [(c.value, c.source, c.chosen) for c in result.lineage["name"]]
    assert names == [("דנה כהן", "tickets", True), ("Dana Kohen", "branch-tlv", False),
                     ("Dana Cohen", "billing", False)]
    assert result.lineage["segment"] == []
    assert set(result.lineage) == set(GOLDEN_FIELDS)


def test_golden_source_priority_per_field() -> None:
    rules = Rules(field_policy={"name": "source_priority", "tier": "source_priority"},
                  source_priority=("billing", "branch-tlv"))
    result = golden(_person(), rules)
    assert result.fields["name"] == "Dana Cohen"  # billing outranks the newer tickets value
    assert result.fields["tier"] == "gold"
    assert result.fields["status"] == "leaving"  # not listed: newest
    assert [(c.value, c.chosen) for c in result.lineage["name"]] == [
        ("Dana Cohen", True), ("Dana Kohen", False), ("דנה כהן", False)]
    assert [(c.value, c.chosen) for c in result.lineage["tier"]] == [
        ("gold", True), ("silver", False)]


def test_unknown_sources_rank_last_then_newest() -> None:
    rules = Rules(field_policy={"tier": "source_priority"}, source_priority=("billing",))
    records = [rec("web", "1", minutes=5, tier="bronze"), rec("crm-x", "2", minutes=9, tier="vip"),
               rec("billing", "3", minutes=0, tier="gold")]
    assert [c.value for c in golden(records, rules).lineage["tier"]] == ["gold", "vip", "bronze"]
    assert golden(records[:2], rules).fields["tier"] == "vip"


def test_newest_ties_break_by_source_then_external_id() -> None:
    records = [rec("tickets", "1", segment="b2c"), rec("billing", "9", segment="smb"),
               rec("billing", "2", segment="b2b")]
    for order in (records, records[::-1]):
        assert golden(order, RULES).fields["segment"] == "b2b"


@settings(max_examples=100)
@given(_records)
def test_lineage_has_exactly_one_winner_per_known_field(records: list[SourceRecord]) -> None:
    result = golden(records, RULES)
    for name in GOLDEN_FIELDS:
        candidates = result.lineage[name]
        assert len(candidates) == sum(getattr(r, name) is not None for r in records)
        if candidates:
            assert [c.chosen for c in candidates].count(True) == 1
            assert result.fields[name] == next(c.value for c in candidates if c.chosen)
        else:
            assert result.fields[name] is None
