"""Which source records are the same real person, and the golden record built from them.

A pure core: no database, no I/O, no clock. The importer hands in ``SourceRecord`` values (phones
already E.164 via ``crm_sync.phones.normalize``); ``cluster`` groups them into people and
``golden`` settles each field by its policy while keeping every other value in lineage.

Matching keys, strongest first: account number, e-mail, phone. A conflicting account number
vetoes every other key, for a pair and for a whole cluster (no chain of weaker links may join two
accounts). A shared phone alone merges only when the names agree or one side has no name: a
family landline does not make two people one.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from itertools import pairwise, permutations
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

Policy = Literal["newest", "source_priority"]
POLICIES: frozenset[str] = frozenset({"newest", "source_priority"})
MATCH_KEYS: tuple[str, ...] = ("account_number", "email", "phone")  # strongest first
_MAX_FUZZY_NAMES = 100  # distinct names on one number beyond which only equal names join
_MAX_PERMUTED = 4  # names with more words are compared in written and sorted order only
GOLDEN_FIELDS: tuple[str, ...] = (
    "name", "preferred_language", "tier", "segment", "status", "date_of_birth", "account_number",
)


@dataclass(frozen=True)
class SourceRecord:
    source: str  # e.g. "branch-tlv", "billing", "tickets"
    external_id: str
    seen_at: datetime  # aware; when the source last changed the record
    name: str | None = None
    phones: tuple[str, ...] = ()  # already E.164
    emails: tuple[str, ...] = ()
    account_number: str | None = None
    preferred_language: str | None = None  # e.g. "he-IL"
    tier: str | None = None
    segment: str | None = None
    status: str | None = None  # active / leaving / left
    date_of_birth: date | None = None

    def __post_init__(self) -> None:
        if self.seen_at.utcoffset() is None:
            raise ValueError(f"seen_at of {self.source}/{self.external_id} must be timezone-aware")

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.external_id)


def _newest_only() -> Mapping[str, Policy]:
    return MappingProxyType(dict.fromkeys(GOLDEN_FIELDS, "newest"))


@dataclass(frozen=True)
class Rules:
    match_on: tuple[str, ...] = MATCH_KEYS
    name_similarity: float = 0.85  # needed for a phone-only match when both names are known
    # Per golden field; a field not listed is "newest".
    field_policy: Mapping[str, Policy] = field(default_factory=_newest_only, hash=False)
    # First wins under "source_priority"; unknown sources rank last, then newest.
    source_priority: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.match_on) - set(MATCH_KEYS)
        if unknown:
            raise ValueError(f"unknown match keys {sorted(unknown)}; known: {list(MATCH_KEYS)}")
        if not 0.0 <= self.name_similarity <= 1.0:
            raise ValueError(f"name_similarity must be within [0, 1], not {self.name_similarity}")
        for name, policy in self.field_policy.items():
            if name not in GOLDEN_FIELDS:
                raise ValueError(f"unknown golden field {name!r}; known: {list(GOLDEN_FIELDS)}")
            if policy not in POLICIES:
                raise ValueError(
                    f"unknown policy {policy!r} for {name!r}; known: {sorted(POLICIES)}")


class Candidate(NamedTuple):  # a tuple: cheap to make by the million in bulk imports
    value: Any
    source: str
    external_id: str
    seen_at: datetime
    chosen: bool


@dataclass(frozen=True)
class Golden:
    fields: dict[str, Any]  # GOLDEN_FIELDS plus "phones" and "emails" (sorted unions)
    lineage: dict[str, list[Candidate]]  # per GOLDEN_FIELDS entry, winner first


# --- normalisation ------------------------------------------------------------------------------

@lru_cache(maxsize=262_144)
def _name_tokens(name: str) -> tuple[str, ...]:
    """Casefolded words, without diacritics (niqqud too) or punctuation, in written order."""
    out = []
    for ch in unicodedata.normalize("NFKD", name.casefold()):
        category = unicodedata.category(ch)
        if category.startswith("M"):  # combining marks: accents, Hebrew points
            continue
        if category == "Pd" or category.startswith("Z") or ch.isspace():
            out.append(" ")  # "Ben-David" is "Ben David"; maqaf too
        elif category.startswith(("P", "S", "C")):
            continue  # "O'Brien" is "OBrien"; geresh, gershayim
        else:
            out.append(ch)
    return tuple("".join(out).split())


def _account_key(value: str | None) -> str | None:
    if value is None:
        return None
    key = value.replace(" ", "").replace("-", "").strip().casefold()
    return key or None


def _email_keys(record: SourceRecord) -> frozenset[str]:
    return frozenset(e for e in (raw.strip().casefold() for raw in record.emails) if e)


def _phone_keys(record: SourceRecord) -> frozenset[str]:
    return frozenset(p for p in (raw.strip() for raw in record.phones) if p)


def blocking_keys(record: SourceRecord) -> list[str]:
    """Every key ``cluster`` could join ``record`` on, as it compares them (account number,
    e-mails, phones; typed by a prefix). A record sharing none of them with any other record
    is a cluster of its own, whatever the rules."""
    account = _account_key(record.account_number)
    return ([] if account is None else [f"a:{account}"]) + \
        [f"e:{e}" for e in sorted(_email_keys(record))] + \
        [f"p:{p}" for p in sorted(_phone_keys(record))]


def name_similarity(a: str, b: str) -> float:
    """Similarity in [0, 1] of two names, word order, case, accents and punctuation aside.

    The words are compared in the best order (every order of one name's words when it has up
    to ``_MAX_PERMUTED``, else written and sorted order), so "Cohen Dana" is "Dana Cohen" and
    "Kohen Dana" is close to "Dana Cohen". Symmetric. Names with nothing left to compare after
    normalisation score 0.0.
    """
    ta, tb = sorted((_name_tokens(a), _name_tokens(b)))  # symmetric by construction
    if not ta or not tb:
        return 0.0
    if sorted(ta) == sorted(tb):
        return 1.0
    if len(ta) > _MAX_PERMUTED:
        return max(_ratio(" ".join(ta), " ".join(tb)),
                   _ratio(" ".join(sorted(ta)), " ".join(sorted(tb))))
    matcher = difflib.SequenceMatcher(None, b=" ".join(tb), autojunk=False)
    best = 0.0
    for order in permutations(ta):
        matcher.set_seq1(" ".join(order))
        if matcher.real_quick_ratio() > best and matcher.quick_ratio() > best:
            best = max(best, matcher.ratio())
    return best


def _ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _quick_ratio(a: str, b: str) -> float:
    """An upper bound of ``_ratio`` for every word order (same characters either way)."""
    return difflib.SequenceMatcher(None, a, b, autojunk=False).quick_ratio()


# --- matching -----------------------------------------------------------------------------------

def _names_agree(a: SourceRecord, b: SourceRecord, threshold: float) -> bool:
    ta = _name_tokens(a.name) if a.name else ()
    tb = _name_tokens(b.name) if b.name else ()
    if not ta or not tb:
        return True  # one side has no name: the phone is all there is to go on
    # Upper bounds that hold for every word order, before the costly comparison.
    la, lb = len(" ".join(ta)), len(" ".join(tb))
    if 2 * min(la, lb) / (la + lb) < threshold:
        return False
    if _quick_ratio(" ".join(ta), " ".join(tb)) < threshold:
        return False
    return name_similarity(a.name or "", b.name or "") >= threshold


def match_reason(a: SourceRecord, b: SourceRecord, rules: Rules) -> str | None:
    """Why ``a`` and ``b`` are the same person ("account_number", "email", "phone"), or None."""
    acc_a, acc_b = _account_key(a.account_number), _account_key(b.account_number)
    if acc_a is not None and acc_b is not None and acc_a != acc_b:
        return None  # a conflicting account number vetoes every other key
    if "account_number" in rules.match_on and acc_a is not None and acc_a == acc_b:
        return "account_number"
    if "email" in rules.match_on and _email_keys(a) & _email_keys(b):
        return "email"
    if ("phone" in rules.match_on and _phone_keys(a) & _phone_keys(b)
            and _names_agree(a, b, rules.name_similarity)):
        return "phone"
    return None


class _Clusters:
    """Union-find over record indexes; a root knows its cluster's (single) account number."""

    def __init__(self, accounts: Sequence[str | None]) -> None:
        self.parent = list(range(len(accounts)))
        self.size = [1] * len(accounts)
        self.account = list(accounts)

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, i: int, j: int) -> bool:
        """Join the clusters of i and j unless that would hold two account numbers."""
        ri, rj = self.find(i), self.find(j)
        if ri == rj:
            return True
        acc_i, acc_j = self.account[ri], self.account[rj]
        if acc_i is not None and acc_j is not None and acc_i != acc_j:
            return False
        if self.size[ri] < self.size[rj]:
            ri, rj = rj, ri
        self.parent[rj] = ri
        self.size[ri] += self.size[rj]
        self.account[ri] = acc_i if acc_i is not None else acc_j
        return True


def _sorted_unique(records: Iterable[SourceRecord]) -> list[SourceRecord]:
    ordered = sorted(records, key=lambda r: r.key)
    for prev, cur in pairwise(ordered):
        if prev.key == cur.key:
            raise ValueError(f"duplicate source record {cur.source}/{cur.external_id}")
    return ordered


def _join_on_phone(members: list[int], ordered: Sequence[SourceRecord],
                   accounts: Sequence[str | None], uf: _Clusters, rules: Rules) -> None:
    """Union the records sharing one phone number that ``match_reason`` accepts."""
    names = {i: _name_tokens(ordered[i].name) if ordered[i].name else () for i in members}
    distinct = {tuple(sorted(t)) for t in names.values() if t}
    if len(distinct) > _MAX_FUZZY_NAMES:
        # A switchboard or placeholder number: comparing every pair of names would be
        # quadratic, and the number says nothing about who is calling. Only the same name
        # (word order aside) joins here; nameless records are not joined by this number.
        first_roots: dict[tuple[str, ...], list[int]] = {}
        for i in members:
            if names[i]:
                roots = first_roots.setdefault(tuple(sorted(names[i])), [])
                for root in roots:
                    uf.union(root, i)  # the guard refuses conflicting account numbers
                roots[:] = dict.fromkeys(uf.find(r) for r in [*roots, i])
        return
    for pos, i in enumerate(members):
        record = ordered[i]
        # The pair test depends on the other record's name and account only; one try per
        # (cluster, name, account) in the group is enough.
        tried: set[tuple[int, tuple[str, ...], str | None]] = set()
        for j in members[:pos]:
            root = uf.find(j)
            if root == uf.find(i):
                continue
            memo = (root, names[j], accounts[j])
            if memo in tried:
                continue
            tried.add(memo)
            if match_reason(record, ordered[j], rules) is not None:
                uf.union(i, j)


def cluster(records: Iterable[SourceRecord], rules: Rules) -> list[list[SourceRecord]]:
    """Group records into people; deterministic whatever the input order.

    Candidates come from per-key indexes (blocking), so the work grows with the records and
    the size of each shared-key group, not with all pairs. Keys are applied strongest first
    (account number, e-mail, phone), each group in the order of its smallest record, so when a
    record could join either of two account numbers the stronger and earlier link wins.
    Clusters are sorted by their smallest (source, external_id), records likewise.
    """
    ordered = _sorted_unique(records)
    accounts = [_account_key(r.account_number) for r in ordered]
    uf = _Clusters(accounts)

    if "account_number" in rules.match_on:
        first_with: dict[str, int] = {}
        for i, acc in enumerate(accounts):
            if acc is not None:
                uf.union(first_with.setdefault(acc, i), i)

    if "email" in rules.match_on:
        by_email: dict[str, list[int]] = {}
        for i, record in enumerate(ordered):
            for email in sorted(_email_keys(record)):
                by_email.setdefault(email, []).append(i)
        for members in by_email.values():
            # Same e-mail matches unless accounts conflict, which the guard refuses: trying
            # each distinct cluster in the group once is enough.
            roots: list[int] = []
            for i in members:
                for root in roots:
                    uf.union(root, i)
                roots = list(dict.fromkeys(uf.find(r) for r in [*roots, i]))

    if "phone" in rules.match_on:
        by_phone: dict[str, list[int]] = {}
        for i, record in enumerate(ordered):
            for phone in sorted(_phone_keys(record)):
                by_phone.setdefault(phone, []).append(i)
        for members in by_phone.values():
            if len(members) > 1:
                _join_on_phone(members, ordered, accounts, uf, rules)

    groups: dict[int, list[SourceRecord]] = {}
    for i, record in enumerate(ordered):
        groups.setdefault(uf.find(i), []).append(record)
    return list(groups.values())  # first-seen order of roots is sorted order of smallest keys


# --- golden record ------------------------------------------------------------------------------

def _rank_key(rules: Rules, policy: Policy) -> Callable[[Candidate], tuple[Any, ...]]:
    priority = {source: n for n, source in enumerate(rules.source_priority)}
    unknown = len(priority)

    def newest(c: Candidate) -> tuple[float, str, str]:
        return (-c.seen_at.timestamp(), c.source, c.external_id)

    def by_source(c: Candidate) -> tuple[int, float, str, str]:
        return (priority.get(c.source, unknown), *newest(c))

    return newest if policy == "newest" else by_source


def golden(records: Iterable[SourceRecord], rules: Rules) -> Golden:
    """The golden record of one person's source records, with every candidate value in lineage.

    "newest": greatest seen_at wins, ties to the smaller (source, external_id).
    "source_priority": earliest source in ``rules.source_priority`` wins (unknown sources last),
    then newest. None values are not candidates; lineage lists winner first, then the losers
    in rank order. ``phones`` and ``emails`` are the sorted unions (e-mails casefolded).
    """
    items = list(records)
    if len(items) == 1:  # the common case of a bulk import: nothing to settle
        only = items[0]
        fields = {name: getattr(only, name) for name in GOLDEN_FIELDS}
        return Golden(
            {**fields, "phones": tuple(sorted(_phone_keys(only))),
             "emails": tuple(sorted(_email_keys(only)))},
            {name: ([Candidate(value, only.source, only.external_id, only.seen_at, chosen=True)]
                    if value is not None else []) for name, value in fields.items()})
    fields = {}
    lineage: dict[str, list[Candidate]] = {}
    for name in GOLDEN_FIELDS:
        policy: Policy = rules.field_policy.get(name, "newest")
        candidates = sorted(
            (Candidate(getattr(r, name), r.source, r.external_id, r.seen_at, chosen=False)
             for r in items if getattr(r, name) is not None),
            key=_rank_key(rules, policy),
        )
        if candidates:
            winner = candidates[0]
            candidates[0] = Candidate(winner.value, winner.source, winner.external_id,
                                      winner.seen_at, chosen=True)
        fields[name] = candidates[0].value if candidates else None
        lineage[name] = candidates
    fields["phones"] = tuple(sorted(set().union(*(_phone_keys(r) for r in items))))
    fields["emails"] = tuple(sorted(set().union(*(_email_keys(r) for r in items))))
    return Golden(fields, lineage)
