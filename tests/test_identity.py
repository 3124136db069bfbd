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
    Candidate,
    Golden,
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
    # the same name on two different numbers is not a phone match
    (rec("billing", "1", name="Dana Cohen", phones=("+972501111111",)),
     rec("tickets", "2", name="Dana Cohen", phones=("+972502222222",)), None),
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


# --- found by mutation testing (tests/mutation.sh): behaviour that changed code kept passing ---

@pytest.mark.parametrize(("a", "b", "score"), [
    # Five words and more: the better of written and sorted order (not every order).
    ("Maria Jose Garcia Lopez Fernandez", "Maria Jose Garcia Lopez Hernandez", 32 / 33),
    ("Ana Maria de la Cruz", "Cruz de la Ana Mariah", 40 / 41),
    # Four words: every order of the words, so one that is neither written nor sorted.
    ("Avi Ben Haim Cohen", "Haim Kohen Avi Ben", 17 / 18),
])
def test_similarity_of_long_names(a: str, b: str, score: float) -> None:
    assert name_similarity(a, b) == score
    assert name_similarity(b, a) == score


# Part of Hubert Blaine Wolfeschlegelsteinhausenbergerdorff Sr.'s surname: 200 characters and
# more, where difflib's "autojunk" heuristic would drop frequent letters from the comparison.
LONG = ("Wolfeschlegelsteinhausenbergerdorffwelchevoralternwarengewissenhaftschaferswessen"
        "schafewarenwohlgepflegeundsorgfaltigkeitbeschutzenvonangreifendurchihrraubgierig"
        "feindewelchevoralternzwolftausendjahres")


@pytest.mark.parametrize(("a", "b", "score"), [
    (f"Hubert Blaine {LONG} Sr", f"Hubert Blaine {LONG} Jr", 216 / 217),
    (f"Adolph Blaine Charles David Earl Frederick {LONG}",
     f"Adolph Blaine Charles David Earl Friedrich {LONG}", 241 / 243),
])
def test_similarity_of_very_long_names_compares_every_letter(a: str, b: str,
                                                             score: float) -> None:
    assert name_similarity(a, b) == score


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_similarity_thresholds_at_the_bounds_are_allowed(threshold: float) -> None:
    assert Rules(name_similarity=threshold).name_similarity == threshold


def test_a_name_exactly_at_the_threshold_agrees() -> None:
    # "dana" against "dana b": 2 * 4 / 10 = 0.8, the length bound and the score alike.
    a = rec("billing", "1", name="Dana", phones=("+972501234567",))
    b = rec("tickets", "2", name="Dana B", phones=("+972501234567",))
    assert name_similarity("Dana", "Dana B") == 0.8
    assert match_reason(a, b, Rules(name_similarity=0.8)) == "phone"
    assert match_reason(a, b, Rules(name_similarity=0.81)) is None


def test_records_that_share_no_key_stay_apart() -> None:
    records = [
        rec("acc", "1", account_number="1"),
        rec("acc", "2", account_number="2"),
        rec("acc", "3", account_number="2"),
        rec("mail", "1", name="Dana Cohen", emails=("a@example.com",)),
        rec("mail", "2", name="Dana Cohen", emails=("b@example.com",)),
        rec("mail", "3", name="Dana Cohen", emails=("b@example.com",)),
        rec("tel", "1", name="Avi Levi", phones=("+972501111111",)),
        rec("tel", "2", name="Avi Levi", phones=("+972502222222",)),
        rec("tel", "3", name="Avi Levi", phones=("+972502222222",)),
    ]
    assert ids(cluster(records, RULES)) == [
        ["acc/1"], ["acc/2", "acc/3"], ["mail/1"], ["mail/2", "mail/3"],
        ["tel/1"], ["tel/2", "tel/3"]]


def test_a_hundred_names_on_one_number_are_still_compared_fuzzily() -> None:
    # _MAX_FUZZY_NAMES is 100: at 100 distinct names a typo still joins; at 101 it does not.
    shared = ("+97239999999",)
    for others, joined in ((98, True), (99, False)):
        records = [rec("tickets", f"{i:03}", name=f"Caller {i} Number{i}", phones=shared)
                   for i in range(others)]
        records += [rec("billing", "D1", name="Dana Cohen", phones=shared),
                    rec("branch-tlv", "D3", name="Dana Kohen", phones=shared)]
        assert (["billing/D1", "branch-tlv/D3"] in ids(cluster(records, RULES))) is joined


def test_many_names_on_their_own_numbers_do_not_make_a_switchboard() -> None:
    # 101 distinct names, each on a number of its own: the same name on two numbers
    # still does not join (only a number shared by over 100 names is a switchboard).
    records = [rec("tickets", f"{i:03}", name=f"Caller {i} Number{i}",
                   phones=(f"+9725000{i:05}",)) for i in range(101)]
    records += [rec("billing", "D1", name="Dana Cohen", phones=("+972501111111",)),
                rec("branch-tlv", "D2", name="Dana Cohen", phones=("+972502222222",))]
    clusters = ids(cluster(records, RULES))
    assert ["billing/D1"] in clusters and ["branch-tlv/D2"] in clusters
    assert len(clusters) == 103


def test_a_phone_group_tries_every_other_cluster() -> None:
    phone = ("+97235551234",)
    # billing/3 is already with billing/1 (the e-mail); billing/2 is still to be tried.
    records = [
        rec("billing", "1", name="Avi Levi", phones=phone, emails=("family@example.com",)),
        rec("billing", "2", name="Dana Cohen", phones=phone),
        rec("billing", "3", name="Dana Cohen", phones=phone, emails=("family@example.com",)),
    ]
    assert ids(cluster(records, RULES)) == [["billing/1", "billing/2", "billing/3"]]
    # billing/1 and billing/2 (one cluster, one name) are tried once, then billing/3.
    records = [
        rec("billing", "1", name="Avi Levi", phones=phone),
        rec("billing", "2", name="Avi Levi", phones=phone),
        rec("billing", "3", name="Dana Cohen", phones=phone),
        rec("billing", "4", name="Dana Cohen", phones=phone),
    ]
    assert ids(cluster(records, RULES)) == [["billing/1", "billing/2"], ["billing/3", "billing/4"]]


def test_golden_of_a_single_record() -> None:
    only = rec("billing", "B-1", minutes=5, name="Dana Cohen", tier="gold",
               phones=(" +972501234567",), emails=("Dana@Example.com",))
    seen = T0 + timedelta(minutes=5)
    assert golden([only], RULES) == Golden(
        {"name": "Dana Cohen", "preferred_language": None, "tier": "gold", "segment": None,
         "status": None, "date_of_birth": None, "account_number": None,
         "phones": ("+972501234567",), "emails": ("dana@example.com",)},
        {"name": [Candidate("Dana Cohen", "billing", "B-1", seen, chosen=True)],
         "preferred_language": [], "tier": [Candidate("gold", "billing", "B-1", seen, True)],
         "segment": [], "status": [], "date_of_birth": [], "account_number": []})


def test_golden_lineage_names_each_candidates_record() -> None:
    assert golden(_person(), RULES).lineage["tier"] == [
        Candidate("silver", "branch-tlv", "T-17", T0 + timedelta(minutes=30), chosen=True),
        Candidate("gold", "billing", "B-1", T0, chosen=False)]
