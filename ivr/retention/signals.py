"""The leaving-risk signal: unanswered requests and spoken intentions, weighed.

Story 6: "a customer who rated a call badly, whose request went unanswered, or who said they
may leave, is a customer at risk: the next agent sees it, and someone calls them first."
Within the policy's window before ``now``:

* the customer's status is leaving / left (the store's golden record);
* they said they may leave (an exit interview, or an imported interaction with a leaving
  reason) and did not end up staying;
* calls they hung up on while waiting in a queue (``queue_entries`` abandoned);
* callbacks that never got through (failed) or came after their deadline (breached);
* promises not kept by their time (``interactions``: due, and not kept or kept late);
* calls they rated low in the post-call survey (``survey_responses.low``);
* on the call itself: they chose a retention queue in the IVR (``chose_queues``).

Each signal adds its weight (``wrapup.yaml`` ``leaving_risk.weights``) per occurrence (the
status, the interview and the choice once); a score of ``threshold`` or more is a
leaving-risk customer. Reads only, by customer id on indexes; ``now`` is an argument.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, literal, null, select, union_all

from callbacks.models import callback_requests
from crm_sync.models import customers, interactions
from ivr.agents.models import queue_entries
from ivr.retention.config import DEFAULT_LISTS, RiskPolicy
from ivr.retention.models import exit_interviews
from ivr.surveys.models import survey_responses

DEFAULT_POLICY = DEFAULT_LISTS.leaving_risk
LEAVING_STATUSES = ("leaving", "left")


@dataclass(frozen=True)
class LeavingRisk:
    """A customer's leaving-risk signal: ``flag`` when ``score`` reached the threshold;
    ``reasons`` in words, the strongest first."""

    flag: bool
    score: int
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"flag": self.flag, "score": self.score, "reasons": list(self.reasons)}


@dataclass
class _Facts:
    """What was found for one customer (counts, and the words of what they said)."""

    status: str | None = None
    said: tuple[str, str] | None = None  # (reason, day) of the newest statement
    abandoned: int = 0
    failed_callbacks: int = 0
    late_callbacks: int = 0
    broken_promises: int = 0
    low_scores: int = 0


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _weigh(facts: _Facts, policy: RiskPolicy, chose_queues: Iterable[str]) -> LeavingRisk:
    w = policy.weights
    days = policy.window.days
    scored: list[tuple[int, str]] = []
    for queue in chose_queues:
        scored.append((w.chose_queue, f"chose '{queue}' in the IVR (e.g. cancel my service)"))
    if facts.status in LEAVING_STATUSES:
        scored.append((w.status, f"customer status: {facts.status}"))
    if facts.said is not None:
        scored.append((w.exit_interview, f"said they may leave: {facts.said[0]} "
                       f"({facts.said[1]})"))
    if facts.broken_promises:
        scored.append((w.broken_promise * facts.broken_promises, _plural(
            facts.broken_promises, "promise", "promises") + " not kept by its time"))
    if facts.low_scores:
        scored.append((w.low_score * facts.low_scores, _plural(
            facts.low_scores, "call", "calls") + " rated low in the survey"))
    if facts.failed_callbacks:
        scored.append((w.failed_callback * facts.failed_callbacks, _plural(
            facts.failed_callbacks, "callback", "callbacks") + " that never got through"))
    if facts.late_callbacks:
        scored.append((w.late_callback * facts.late_callbacks, _plural(
            facts.late_callbacks, "callback", "callbacks") + " past the promised time"))
    if facts.abandoned:
        scored.append((w.abandoned_call * facts.abandoned, _plural(
            facts.abandoned, "call", "calls") + f" abandoned in the queue in {days} days"))
    # The choice on this call first, then by weight (a stable sort keeps the order above).
    first = [s for s in scored if s[1].startswith("chose ")]
    rest = sorted((s for s in scored if not s[1].startswith("chose ")), key=lambda s: -s[0])
    score = sum(s[0] for s in scored)
    return LeavingRisk(score >= policy.threshold, score, tuple(t for _, t in first + rest))


def leaving_risk(conn: Connection, customer_id: int, now: datetime, *,
                 policy: RiskPolicy = DEFAULT_POLICY,
                 chose_queues: Iterable[str] = ()) -> LeavingRisk:
    """The leaving-risk signal of one customer at ``now`` (``chose_queues``: retention
    queues chosen in the IVR on the call being answered)."""
    return _weigh(_facts_of(conn, customer_id, now, policy), policy, chose_queues)


def _one_counts() -> Any:
    """One customer's counts: one SELECT of scalar subqueries, built once (bind
    parameters ``cid``, ``since``, ``now``): this runs on every identified call."""
    cid: Any = bindparam("cid")
    since: Any = bindparam("since")
    now: Any = bindparam("now")
    qe, cb, it, sr = queue_entries.c, callback_requests.c, interactions.c, survey_responses.c

    def count(table: Any, *where: Any) -> Any:
        return select(func.count()).select_from(table).where(*where).scalar_subquery()

    callbacks = (cb.customer_id == cid, cb.requested_at >= since, cb.requested_at <= now)
    return select(
        select(customers.c.status).where(customers.c.id == cid).scalar_subquery(),
        count(queue_entries, qe.customer_id == cid, qe.status == "abandoned",
              qe.entered_at >= since, qe.entered_at <= now),
        count(callback_requests, *callbacks, cb.status == "failed"),
        count(callback_requests, *callbacks, cb.status != "failed",
              cb.breached_at.is_not(None)),
        count(interactions, it.customer_id == cid, *_broken(now, since)),
        count(survey_responses, sr.customer_id == cid, sr.low.is_(True),
              sr.started_at >= since, sr.started_at <= now))


def _said_query(only: Any, since: Any, now: Any) -> Any:
    """Exit interviews and interactions with a leaving reason in the window, as one
    UNION ALL: (customer, call, words, stayed, at, 1 for an interview)."""
    ex, it = exit_interviews.c, interactions.c
    return union_all(
        select(ex.customer_id, ex.call_sid, func.coalesce(ex.reason_text, ex.reason),
               ex.stayed, ex.recorded_at, literal(1))
        .where(only(ex.customer_id), ex.recorded_at >= since, ex.recorded_at <= now),
        select(it.customer_id, it.call_sid, it.leaving_reason, null(), it.started_at,
               literal(0))
        .where(only(it.customer_id), it.leaving_reason.is_not(None),
               it.started_at >= since, it.started_at <= now))


def _facts_of(conn: Connection, cid: int, now: datetime, policy: RiskPolicy) -> _Facts:
    """One customer's facts in two statements, both built once."""
    params = {"cid": cid, "since": now - policy.window, "now": now}
    row = conn.execute(_ONE_COUNTS, params).one()
    facts = _Facts(status=row[0] if row[0] in LEAVING_STATUSES else None,
                   abandoned=int(row[1]), failed_callbacks=int(row[2]),
                   late_callbacks=int(row[3]), broken_promises=int(row[4]),
                   low_scores=int(row[5]))
    found: dict[int, _Facts] = {cid: facts}
    _newest_said(conn.execute(_ONE_SAID, params).all(), found)
    return facts


def _broken(now: Any, since: Any) -> tuple[Any, ...]:
    """A promise not kept by its time: due in the window, and not kept, or kept late (the
    follow-ups feature's ``promises.broken_at`` says the same once its sweep ran; this
    reads the interaction itself, so it holds with follow-ups off too)."""
    it = interactions.c
    return (it.promised_action.is_not(None), it.promised_due_at < now,
            it.promised_due_at >= since,
            it.promise_kept_at.is_(None) | (it.promise_kept_at > it.promised_due_at))


def _facts_for(conn: Connection, ids: list[int] | None, now: datetime,
               policy: RiskPolicy) -> dict[int, _Facts]:
    """The facts of the customers ``ids`` (None: every customer with any signal)."""
    since = now - policy.window
    facts: dict[int, _Facts] = defaultdict(_Facts)

    def only(column: Any) -> Any:
        return column.in_(ids) if ids is not None else column.is_not(None)

    for cid, status in conn.execute(
            select(customers.c.id, customers.c.status)
            .where(only(customers.c.id), customers.c.status.in_(LEAVING_STATUSES))):
        facts[cid].status = status
    _said(conn, facts, only, since, now)
    for cid, n in conn.execute(
            select(queue_entries.c.customer_id, func.count())
            .where(only(queue_entries.c.customer_id), queue_entries.c.status == "abandoned",
                   queue_entries.c.entered_at >= since, queue_entries.c.entered_at <= now)
            .group_by(queue_entries.c.customer_id)):
        facts[cid].abandoned = int(n)
    cb = callback_requests.c
    for cid, status, n in conn.execute(
            select(cb.customer_id, cb.status, func.count())
            .where(only(cb.customer_id), cb.requested_at >= since, cb.requested_at <= now,
                   (cb.status == "failed") | (cb.breached_at.is_not(None)))
            .group_by(cb.customer_id, cb.status)):
        if status == "failed":
            facts[cid].failed_callbacks += int(n)
        else:
            facts[cid].late_callbacks += int(n)
    it = interactions.c
    for cid, n in conn.execute(
            select(it.customer_id, func.count())
            .where(only(it.customer_id), *_broken(now, since))
            .group_by(it.customer_id)):
        facts[cid].broken_promises = int(n)
    sr = survey_responses.c
    for cid, n in conn.execute(
            select(sr.customer_id, func.count())
            .where(only(sr.customer_id), sr.low.is_(True), sr.started_at >= since,
                   sr.started_at <= now)
            .group_by(sr.customer_id)):
        facts[cid].low_scores = int(n)
    return dict(facts)


def _said(conn: Connection, facts: dict[int, _Facts], only: Any, since: datetime,
          now: datetime) -> None:
    """The newest "I may leave" of each customer that did not end in staying: exit
    interviews, and leaving reasons of interactions no interview recorded (imports)."""
    _newest_said(conn.execute(_said_query(only, since, now)).all(), facts)


def _newest_said(rows: Sequence[Any], facts: dict[int, _Facts]) -> None:
    covered = {r[1] for r in rows if r[5] == 1 and r[1]}
    newest: dict[int, tuple[datetime, str, bool]] = {}
    for cid, call_sid, words, stayed, at, interview in rows:
        if interview == 0 and call_sid and call_sid in covered:
            continue  # the wrap-up's own interaction: its interview says more
        if cid not in newest or at > newest[cid][0]:
            newest[cid] = (at, str(words), stayed is True)
    for cid, (at, words, stayed) in newest.items():
        if not stayed:
            facts.setdefault(cid, _Facts()).said = (words, at.date().isoformat())


def at_risk(conn: Connection, now: datetime, *, policy: RiskPolicy = DEFAULT_POLICY,
            limit: int = 100) -> list[dict[str, Any]]:
    """The customers at risk now, highest score first (then the lowest id): customer id,
    name, tier, segment, score and reasons."""
    w = policy.weights
    found = _facts_for(conn, None, now, policy)
    # Scores first (tens of thousands of customers may have a signal), words for the top.
    scores = [(-score, cid) for cid, f in found.items()
              if (score := (w.status if f.status else 0) + (w.exit_interview if f.said else 0)
                  + w.broken_promise * f.broken_promises + w.low_score * f.low_scores
                  + w.failed_callback * f.failed_callbacks + w.late_callback * f.late_callbacks
                  + w.abandoned_call * f.abandoned) >= policy.threshold]
    top = [(_weigh(found[cid], policy, ()), cid) for _, cid in heapq.nsmallest(limit, scores)]
    people = {r.id: r for r in conn.execute(
        select(customers.c.id, customers.c.name, customers.c.tier, customers.c.segment)
        .where(customers.c.id.in_([cid for _, cid in top])))} if top else {}
    return [{"customer_id": cid, "name": people[cid].name if cid in people else None,
             "tier": people[cid].tier if cid in people else None,
             "segment": people[cid].segment if cid in people else None,
             "score": risk.score, "reasons": list(risk.reasons)} for risk, cid in top]


_ONE_COUNTS = _one_counts()
_ONE_SAID = _said_query(lambda column: column == bindparam("cid"), bindparam("since"),
                        bindparam("now"))
