"""The outbound change feed: written with the change (or not at all), delivered at least once
in order per customer with back-off, signed, dead letters and replay, several workers."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, insert, select, update

from crm_sync.history import close_inbound_call, record_inbound_call
from crm_sync.models import customers
from crm_sync.outbox import (
    DeliveryPolicy,
    DeliveryStats,
    deliver,
    depth,
    emit,
    emit_many,
    failed,
    register,
    replay,
    sign,
    verify_signature,
)
from crm_sync.retry import Backoff
from crm_sync.sources import Subscriber
from crm_sync.sync_models import outbox, outbox_subscribers
from ivr.core.clock import FrozenClock
from ivr.core.db import make_engine
from tests.crm_standin import StandinSubscriber

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
SECRET = "whsec-test"
HOOKS = {"helpdesk": Subscriber(name="helpdesk", url="http://helpdesk.test/hook",
                                secret_env="IVR_TEST_HOOK_SECRET")}


@pytest.fixture
def engine(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    yield from _engine(database_url, monkeypatch)


@pytest.fixture
def pg_engine(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """PostgreSQL only: several workers or writers at once (SQLite runs one worker and has
    one writer, so its ids are in commit order anyway)."""
    yield from _engine(pg_url, monkeypatch)


def _engine(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("IVR_TEST_HOOK_SECRET", SECRET)
    e = make_engine(url, 4)
    with e.begin() as conn:
        register(conn, HOOKS.values(), NOW)
        conn.execute(insert(customers), [
            {"id": n, "status": "active", "lineage": {}, "created_at": NOW, "updated_at": NOW}
            for n in (1, 2, 3)])
    yield e
    e.dispose()


def rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(outbox).order_by(outbox.c.id)))


def drain(engine: Engine, sub: StandinSubscriber, clock: FrozenClock,
          policy: DeliveryPolicy, rounds: int = 50) -> DeliveryStats:
    """Deliver until nothing is left, moving the clock to each retry's due time (no
    sleeping)."""
    total = DeliveryStats()
    client = httpx.Client(transport=sub.transport())
    for _ in range(rounds):
        stats = deliver(engine, HOOKS, client, clock.now, policy, rand=lambda: 1.0)
        total.add(stats)
        if stats.claimed:
            continue
        with engine.connect() as conn:
            due = conn.execute(select(func.min(outbox.c.due_at))
                               .where(outbox.c.status == "pending",
                                      outbox.c.due_at > clock.now())).scalar()
        if due is None:
            return total
        clock.set(due)
    raise AssertionError("outbox never drained")


def test_a_change_that_rolls_back_emits_nothing(engine: Engine) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), engine.begin() as conn:
        record_inbound_call(conn, 1, "CA-rolled-back", "+97235550100", NOW)
        assert len(list(conn.execute(select(outbox)))) == 1  # written with the change...
        raise Boom
    assert rows(engine) == []  # ...and gone with it
    with engine.begin() as conn:
        record_inbound_call(conn, 1, "CA-kept", "+97235550100", NOW)
        record_inbound_call(conn, 1, "CA-kept", "+97235550100", NOW)  # a retried webhook
    with engine.begin() as conn:
        close_inbound_call(conn, "CA-kept", NOW + timedelta(minutes=2), [{"queue": "billing"}])
        close_inbound_call(conn, "CA-unknown", NOW, None)  # not a customer's call: nothing
    got = rows(engine)
    assert [(r.subscriber, r.kind, r.customer_id, r.status) for r in got] == [
        ("helpdesk", "interaction.created", 1, "pending"),
        ("helpdesk", "interaction.updated", 1, "pending")]
    created = json.loads(got[0].body)
    assert created["data"]["external_id"] == "CA-kept" and created["origin"] is None
    assert created["occurred_at"] == "2026-11-23T08:00:00Z"
    assert json.loads(got[1].body)["data"]["queue"] == "billing"


def test_a_subscriber_failing_three_times_gets_every_event_once_in_order(
        engine: Engine) -> None:
    clock = FrozenClock(NOW)
    sub = StandinSubscriber(SECRET.encode(), clock.now, fail_first=3)
    emitted: dict[int, list[int]] = {1: [], 2: [], 3: []}
    with engine.begin() as conn:
        for n in range(12):
            cid = 1 + n % 3
            emit(conn, customer_id=cid, kind="incident.updated", payload={"n": n}, now=NOW)
            emitted[cid].append(n)
    policy = DeliveryPolicy(batch=2, max_attempts=8, backoff=Backoff(base=2.0, cap=60.0))
    stats = drain(engine, sub, clock, policy)
    assert (stats.delivered, stats.retried, stats.dead) == (12, 3, 0)
    assert len(sub.posts) == 15 and all(p["signed"] for p in sub.posts)
    keys = [p["key"] for p in sub.accepted]
    assert len(keys) == len(set(keys)) == 12  # every event, once per idempotency key
    assert {p["event"]["id"] for p in sub.accepted} == set(keys)
    for cid, ns in emitted.items():
        assert [p["event"]["data"]["n"] for p in sub.accepted
                if p["event"]["customer_id"] == cid] == ns  # in order per customer
    # Each of the three first events failed once and went again 2 s later, same key.
    retried = [p for p in sub.posts if p["attempt"] != "1"]
    assert {p["key"] for p in retried} <= set(keys)
    assert clock.now() - NOW == timedelta(seconds=2)
    with engine.connect() as conn:
        assert depth(conn, clock.now())["undelivered"] == 0


def test_a_failing_event_holds_up_only_its_own_customer(engine: Engine) -> None:
    clock = FrozenClock(NOW)
    with engine.begin() as conn:
        emit(conn, customer_id=1, kind="incident.created", payload={"n": 1}, now=NOW)
        emit(conn, customer_id=1, kind="incident.updated", payload={"n": 2}, now=NOW)
        emit(conn, customer_id=2, kind="incident.created", payload={"n": 3}, now=NOW)
    sub = StandinSubscriber(SECRET.encode(), clock.now, fail_first=1)
    client = httpx.Client(transport=sub.transport())
    stats = deliver(engine, HOOKS, client, clock.now, DeliveryPolicy(), rand=lambda: 0.5)
    # Customer 1's first event failed: its second waits; customer 2's went through.
    assert (stats.claimed, stats.delivered, stats.retried) == (2, 1, 1)
    assert [p["event"]["data"]["n"] for p in sub.accepted] == [3]
    again = deliver(engine, HOOKS, client, clock.now, DeliveryPolicy())
    assert again.claimed == 0  # not due yet, and n=2 stays behind it
    clock.advance(seconds=1)
    deliver(engine, HOOKS, client, clock.now, DeliveryPolicy())
    deliver(engine, HOOKS, client, clock.now, DeliveryPolicy())
    assert [p["event"]["data"]["n"] for p in sub.accepted] == [3, 1, 2]


def test_dead_letters_after_the_limit_and_replay(engine: Engine) -> None:
    clock = FrozenClock(NOW)
    with engine.begin() as conn:
        emit(conn, customer_id=1, kind="interaction.created", payload={"n": 1}, now=NOW)
        emit(conn, customer_id=1, kind="interaction.updated", payload={"n": 2}, now=NOW)
        emit(conn, customer_id=2, kind="interaction.created", payload={"n": 3}, now=NOW)
    sub = StandinSubscriber(SECRET.encode(), clock.now, fail_first=3, fail_status=503)
    policy = DeliveryPolicy(max_attempts=3, backoff=Backoff(base=1.0, cap=10.0))
    stats = drain(engine, sub, clock, policy)
    # The first three posts failed (n=1 twice, n=3 once): within 3 attempts all got through.
    assert stats.dead == 0 and stats.delivered == 3
    sub.fail_first = len(sub.posts) + 100  # down for good
    with engine.begin() as conn:
        emit(conn, customer_id=3, kind="incident.created", payload={"n": 4}, now=clock.now())
        emit(conn, customer_id=3, kind="incident.updated", payload={"n": 5}, now=clock.now())
    stats = drain(engine, sub, clock, policy)
    assert stats.dead == 2  # n=4 died after 3 attempts; n=5 was then no longer held up
    with engine.connect() as conn:
        dead = failed(conn)
        assert [(d["status"], d["attempts"]) for d in dead] == [("dead", 3), ("dead", 3)]
        assert dead[0]["last_error"].startswith("HTTP 503")
        assert depth(conn, clock.now())["dead"] == 2
    sub.fail_first = 0
    sub.posts.clear()
    with engine.begin() as conn:
        assert replay(conn, clock.now(), dead[0]["id"]) == 1
        assert replay(conn, clock.now()) == 1
    drain(engine, sub, clock, policy)
    assert [p["event"]["data"]["n"] for p in sub.accepted][-2:] == [4, 5]


def test_a_client_error_is_a_dead_letter_at_once(engine: Engine) -> None:
    clock = FrozenClock(NOW)
    with engine.begin() as conn:
        emit(conn, customer_id=1, kind="incident.created", payload={}, now=NOW)
    sub = StandinSubscriber(b"wrong secret", clock.now)  # answers 401 to our signature
    stats = deliver(engine, HOOKS, httpx.Client(transport=sub.transport()), clock.now)
    assert stats.dead == 1 and rows(engine)[0].last_error.startswith("HTTP 401")


def test_connection_errors_are_retried(engine: Engine) -> None:
    clock = FrozenClock(NOW)
    with engine.begin() as conn:
        emit(conn, customer_id=1, kind="incident.created", payload={}, now=NOW)

    def refuse(_request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    client = httpx.Client(transport=httpx.MockTransport(refuse))
    stats = deliver(engine, HOOKS, client, clock.now, rand=lambda: 0.5)
    assert stats.retried == 1
    row = rows(engine)[0]
    assert (row.status, row.attempts, row.due_at) == ("pending", 1, NOW + timedelta(seconds=1))
    assert row.last_error == "ConnectError: refused"


def test_the_signature_verifies_with_the_documented_algorithm(engine: Engine) -> None:
    clock = FrozenClock(NOW)
    seen: list[httpx.Request] = []

    def keep(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    with engine.begin() as conn:
        emit(conn, customer_id=2, kind="incident.created", payload={"summary": "שלום"},
             now=NOW)
    deliver(engine, HOOKS, httpx.Client(transport=httpx.MockTransport(keep)), clock.now)
    request = seen[0]
    header = request.headers["X-IVR-Signature"]
    t, v1 = (part.split("=", 1)[1] for part in header.split(","))
    # HMAC-SHA256 over "<t>." + the raw body, hex; t is the send time in unix seconds.
    expected = hmac.new(SECRET.encode(), f"{t}.".encode() + request.content,
                        hashlib.sha256).hexdigest()
    assert (int(t), v1) == (int(NOW.timestamp()), expected)
    assert request.headers["Idempotency-Key"] == json.loads(request.content)["id"]
    assert request.headers["X-IVR-Event"] == "incident.created"
    assert json.loads(request.content)["data"] == {"summary": "שלום"}
    assert verify_signature(SECRET.encode(), header, request.content, NOW)
    assert not verify_signature(SECRET.encode(), header, request.content + b" ", NOW)
    assert not verify_signature(b"other", header, request.content, NOW)
    assert not verify_signature(SECRET.encode(), header, request.content,
                                NOW + timedelta(minutes=6))  # a replay, too late
    assert not verify_signature(SECRET.encode(), "v1=abc", request.content, NOW)
    assert sign(b"k", b"{}", 1) == "t=1,v1=" + hmac.new(b"k", b"1.{}",
                                                        hashlib.sha256).hexdigest()


def test_echo_rule_and_fan_out(engine: Engine) -> None:
    with engine.begin() as conn:
        register(conn, [*HOOKS.values(),
                        Subscriber(name="billing-crm", source="billing",
                                   url="http://billing.test/hook", secret_env="X")], NOW)
        written = emit_many(conn, [(1, "interaction.created", {"n": 1})], NOW,
                            origin="billing")
        emit(conn, customer_id=2, kind="incident.created", payload={}, now=NOW)
        with pytest.raises(ValueError, match="unknown outbox event kind"):
            emit(conn, customer_id=2, kind="customer.deleted", payload={}, now=NOW)
    assert written == 1
    got = [(r.subscriber, r.customer_id) for r in rows(engine)]
    assert sorted(got) == [("billing-crm", 2), ("helpdesk", 1), ("helpdesk", 2)]
    ids = {r.event_id for r in rows(engine) if r.customer_id == 2}
    assert len(ids) == 1  # one event, one idempotency key, for every subscriber
    with engine.begin() as conn:
        register(conn, HOOKS.values(), NOW)  # billing-crm left the file: deactivated
        assert emit_many(conn, [(3, "incident.created", {})], NOW) == 1
        active = dict(conn.execute(select(outbox_subscribers.c.name,
                                          outbox_subscribers.c.active)).all())
        report = depth(conn, NOW + timedelta(seconds=30))
    assert active == {"billing-crm": False, "helpdesk": True}
    assert report["subscribers"]["billing-crm"]["pending"] == 1
    assert report["subscribers"]["helpdesk"]["oldest_undelivered_seconds"] == 30.0
    assert report["undelivered"] == 4


def test_an_abandoned_claim_is_sent_again_after_its_lease(engine: Engine) -> None:
    clock = FrozenClock(NOW)
    with engine.begin() as conn:
        emit(conn, customer_id=1, kind="incident.created", payload={}, now=NOW)
        # A worker claimed it and died.
        conn.execute(update(outbox).values(status="sending", attempts=1,
                                           leased_until=NOW + timedelta(seconds=120)))
    sub = StandinSubscriber(SECRET.encode(), clock.now)
    client = httpx.Client(transport=sub.transport())
    assert deliver(engine, HOOKS, client, clock.now).claimed == 0
    clock.advance(seconds=121)
    assert deliver(engine, HOOKS, client, clock.now).delivered == 1
    assert sub.accepted[0]["attempt"] == "2"


def test_a_short_lease_releases_what_it_could_not_post(engine: Engine) -> None:
    clock = FrozenClock(NOW)
    with engine.begin() as conn:
        for cid in (1, 2, 3):
            emit(conn, customer_id=cid, kind="incident.created", payload={}, now=NOW)

    def slow(_request: httpx.Request) -> httpx.Response:
        clock.advance(seconds=30)
        return httpx.Response(200)

    client = httpx.Client(transport=httpx.MockTransport(slow))
    stats = deliver(engine, HOOKS, client, clock.now, DeliveryPolicy(lease=35.0))
    # 35 s lease, 10 s timeout: after the first post (30 s) another could overrun it.
    assert (stats.claimed, stats.delivered, stats.released) == (3, 1, 2)
    assert [(r.status, r.attempts) for r in rows(engine)] == [
        ("delivered", 1), ("pending", 0), ("pending", 0)]


def test_two_workers_share_the_outbox_and_keep_each_customers_order(
        pg_engine: Engine) -> None:
    engine = pg_engine
    clock = FrozenClock(NOW)
    with engine.begin() as conn:
        conn.execute(insert(customers), [
            {"id": n, "status": "active", "lineage": {}, "created_at": NOW,
             "updated_at": NOW} for n in range(4, 21)])
        emit_many(conn, [(1 + n % 20, "incident.updated", {"n": n}) for n in range(400)],
                  NOW)
    sub = StandinSubscriber(SECRET.encode(), clock.now)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            client = httpx.Client(transport=sub.transport())
            while deliver(engine, HOOKS, client, clock.now, DeliveryPolicy(batch=5)).claimed:
                pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(sub.accepted) == 400 == len({p["key"] for p in sub.accepted})
    for cid in range(1, 21):
        got = [p["event"]["data"]["n"] for p in sub.accepted if p["event"]["customer_id"] == cid]
        assert got == sorted(got) and len(got) == 20


def test_concurrent_writers_hand_out_a_customers_ids_in_commit_order(
        pg_engine: Engine) -> None:
    engine = pg_engine
    first = engine.connect()
    tx = first.begin()
    emit(first, customer_id=1, kind="incident.created", payload={"n": 1}, now=NOW)
    done = threading.Event()

    def second() -> None:
        with engine.begin() as conn:  # waits for the first writer's lock on customer 1
            emit(conn, customer_id=1, kind="incident.updated", payload={"n": 2}, now=NOW)
        done.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not done.wait(0.3)  # held until the first commits
    tx.commit()
    first.close()
    thread.join()
    got = rows(engine)
    assert [json.loads(r.body)["data"]["n"] for r in got] == [1, 2]
