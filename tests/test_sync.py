"""Pull sync against the stand-in CRM (httpx MockTransport): full and incremental runs, the
three paging styles, 429 / 503 / connection errors retried, a 500 midway resumed with no
duplicates and no gaps, rejections and history through the importer's path, conflicts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select, text

from crm_sync.config import Mappings
from crm_sync.identity import Rules
from crm_sync.importer import import_batch
from crm_sync.mapping import default_mapping
from crm_sync.models import Customer, Interaction, SourceRecord
from crm_sync.outbox import register
from crm_sync.sources import (
    ConfigError,
    SourceConfig,
    Subscriber,
    endpoint_mapping,
    load_source,
    load_sources,
    load_subscribers,
)
from crm_sync.sync import (
    Fetcher,
    SyncBusy,
    SyncError,
    next_position,
    page_params,
    source_status,
    sync_endpoint,
    sync_source,
)
from crm_sync.sync_models import OutboxEvent, SyncCursor
from ivr.core.clock import FrozenClock
from ivr.core.db import make_engine
from tests.crm_standin import Fault, StandinCRM, customer, stamp

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
TOKEN_ENV = "IVR_TEST_STANDIN_TOKEN"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    e = make_engine(database_url, 2)
    yield e
    e.dispose()


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "s3cret")


def source(style: str = "cursor", size: int = 10, *, kinds: tuple[str, ...] = ("customers",),
           name: str = "billing", retries: int = 3) -> SourceConfig:
    return SourceConfig.model_validate({
        "source": name, "base_url": "http://crm.test", "retries": retries,
        "auth": {"env": TOKEN_ENV},
        "endpoints": [{"kind": k, "path": f"/api/{k}",
                       "paging": {"style": style, "size": size},
                       "since": {"param": "updated_since", "field": "updated_at"}}
                      for k in kinds]})


class Harness:
    """A stand-in CRM, a clock and a recorded sleep (no real waiting)."""

    def __init__(self, engine: Engine, config: SourceConfig | None = None) -> None:
        self.engine = engine
        self.crm = StandinCRM()
        self.clock = FrozenClock(NOW)
        self.slept: list[float] = []
        self.config = config or source()
        self.rules = Rules()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds=seconds)

    def fetcher(self) -> Fetcher:
        client = httpx.Client(transport=self.crm.transport())
        return Fetcher(client, self.config, now=self.clock.now, sleep=self.sleep,
                       rand=lambda: 0.5)

    def run(self, kind: str = "customers", **kw: Any) -> Any:
        endpoint = self.config.endpoint(kind)
        mapping = default_mapping(self.config.source, kind)
        return sync_endpoint(self.engine, self.config, endpoint, mapping, self.rules, "IL",
                             self.fetcher(), **kw)


def stored(engine: Engine, source_: str = "billing") -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(SourceRecord.external_id)
                                 .where(SourceRecord.source == source_)
                                 .order_by(SourceRecord.external_id)).scalars())


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def test_first_full_sync_then_only_changes_travel(engine: Engine) -> None:
    h = Harness(engine)
    for n in range(1, 26):
        h.crm.put("customers", customer(n, stamp(n)))
    first = h.run()
    assert (first.report.counts.created, first.pages, first.report.status) == (25, 3, "done")
    assert first.since is None and first.cursor == stamp(25)
    assert "updated_since" not in h.crm.requests[0]
    assert len(stored(engine)) == 25

    h.crm.requests.clear()
    h.crm.put("customers", customer(3, stamp(40), name="Person Three"))
    h.crm.put("customers", customer(7, stamp(41), tier="premium"))
    h.crm.put("customers", customer(26, stamp(42)))
    second = h.run()
    # Inclusive cursor: C25 (stamped exactly at it) comes again and is unchanged.
    assert [r["updated_since"] for r in h.crm.requests] == [stamp(25)]
    c = second.report.counts
    assert (c.created, c.updated, c.unchanged, second.pages) == (1, 2, 1, 1)
    assert second.cursor == stamp(42)
    with engine.connect() as conn:
        state = conn.execute(select(SyncCursor.__table__)).one()
        name = conn.execute(select(Customer.name).join(
            SourceRecord, SourceRecord.customer_id == Customer.id)
            .where(SourceRecord.external_id == "C3")).scalar_one()
    assert (state.cursor, state.run_id, state.last_error) == (stamp(42), None, None)
    assert name == "Person Three"

    h.crm.requests.clear()
    third = h.run()  # nothing changed: one request, one record (the one at the cursor)
    assert (third.report.counts.unchanged, len(h.crm.requests)) == (1, 1)


@pytest.mark.parametrize(("style", "records", "requests"), [
    ("page", 30, 4),  # 10 + 10 + 10, then an empty page 4 ends it
    ("page", 25, 3),  # the short page ends it
    ("offset", 30, 4),
    ("offset", 7, 1),
    ("cursor", 30, 3),  # the body's next is null on the last page
    ("cursor", 0, 1),
])
def test_paging_styles_fetch_every_record_once(engine: Engine, style: str, records: int,
                                               requests: int) -> None:
    h = Harness(engine, source(style))
    for n in range(1, records + 1):
        h.crm.put("customers", customer(n, stamp(n)))
    report = h.run()
    assert len(h.crm.requests) == requests
    assert report.report.counts.created == records
    assert stored(engine) == sorted(f"C{n}" for n in range(1, records + 1))
    if style == "page":
        assert [r["page"] for r in h.crm.requests] == [str(p) for p in range(1, requests + 1)]
    if style == "offset":
        assert [r["offset"] for r in h.crm.requests] == [
            str(10 * p) for p in range(requests)]


def test_429_honours_retry_after_and_5xx_and_connection_errors_back_off(
        engine: Engine) -> None:
    h = Harness(engine)
    for n in range(1, 26):
        h.crm.put("customers", customer(n, stamp(n)))
    h.crm.script = {2: Fault(429, {"Retry-After": "7"}),
                    4: Fault(503),
                    5: Fault(0, error=httpx.ConnectError)}
    report = h.run()
    # 429 waited what the server asked; the 503 and the refused connection backed off with
    # jitter (rand 0.5): 0.25 s after the first failure, 0.5 s after the second.
    assert h.slept == [7.0, 0.25, 0.5]
    assert (report.report.counts.created, report.http.retries) == (25, 3)
    assert len(h.crm.requests) == 6
    assert h.crm.requests[1] == h.crm.requests[2]  # the same page asked again


def test_retry_after_as_an_http_date_and_too_long_a_wait(engine: Engine) -> None:
    h = Harness(engine)
    h.crm.put("customers", customer(1, stamp(1)))
    h.crm.script = {1: Fault(503, {"Retry-After": "Mon, 23 Nov 2026 08:00:30 GMT"})}
    h.run()
    assert h.slept == [30.0]
    h.crm.script = {len(h.crm.requests) + 1: Fault(429, {"Retry-After": "3600"})}
    with pytest.raises(SyncError, match="asked to retry after 3600 s"):
        h.run()


def test_a_500_midway_keeps_committed_pages_and_the_next_run_resumes_without_gaps(
        engine: Engine) -> None:
    h = Harness(engine)
    for n in range(1, 51):
        h.crm.put("customers", customer(n, stamp(n)))
    h.crm.script = {3: Fault(500), 4: Fault(500), 5: Fault(500), 6: Fault(500)}
    with pytest.raises(SyncError, match=r"HTTP 500 \(gave up after 4 attempts\)"):
        h.run()
    assert len(stored(engine)) == 20  # pages 1 and 2 committed
    failed_page = h.crm.requests[2]
    with engine.connect() as conn:
        status = source_status(conn, h.clock.now())
        state = conn.execute(select(SyncCursor.__table__)).one()
    assert status[0]["last_error"].startswith("GET http://crm.test/api/customers")
    assert status[0]["unfinished_run"]["records_done"] == 20
    assert state.cursor is None and state.position == {"cursor": failed_page["cursor"]}

    h.crm.requests.clear()
    resumed = h.run()
    # The run picks up at the page that failed: nothing asked twice, nothing skipped.
    assert h.crm.requests[0] == failed_page
    assert len(h.crm.requests) == 3
    assert resumed.resumed and resumed.report.resumed_after == 20
    assert resumed.report.counts.created == 50  # the whole run, both parts
    assert stored(engine) == sorted(f"C{n}" for n in range(1, 51))
    assert count(engine, Customer) == 50
    with engine.connect() as conn:
        runs = conn.execute(text("SELECT status, records_done FROM import_runs")).all()
        state = conn.execute(select(SyncCursor.__table__)).one()
    assert [tuple(r) for r in runs] == [("done", 50)]
    assert state.cursor == stamp(50) and state.last_error is None


def test_restart_starts_the_listing_over(engine: Engine) -> None:
    h = Harness(engine)
    for n in range(1, 16):
        h.crm.put("customers", customer(n, stamp(n)))
    h.crm.down = Fault(500)
    with pytest.raises(SyncError):
        h.run()
    h.crm.down = None
    h.crm.requests.clear()
    report = h.run(restart=True)
    assert "cursor" not in h.crm.requests[0] and not report.resumed
    assert report.report.counts.created == 15


def test_a_4xx_fails_at_once_and_a_bad_body_is_refused(engine: Engine) -> None:
    h = Harness(engine)
    h.crm.script = {1: Fault(404)}
    with pytest.raises(SyncError, match="HTTP 404"):
        h.run()
    assert h.slept == []
    h.crm.token = "other"
    with pytest.raises(SyncError, match="HTTP 401"):
        h.run()

    def garbage(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"not": "a list"}})

    fetcher = Fetcher(httpx.Client(transport=httpx.MockTransport(garbage)), h.config,
                      now=h.clock.now, sleep=h.sleep)
    with pytest.raises(SyncError, match="expected a list at 'data', got dict"):
        sync_endpoint(engine, h.config, h.config.endpoint("customers"),
                      default_mapping("billing"), Rules(), "IL", fetcher)

    def not_json(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>")

    fetcher = Fetcher(httpx.Client(transport=httpx.MockTransport(not_json)), h.config,
                      now=h.clock.now, sleep=h.sleep)
    with pytest.raises(SyncError, match="not JSON"):
        sync_endpoint(engine, h.config, h.config.endpoint("customers"),
                      default_mapping("billing"), Rules(), "IL", fetcher)


def test_rejections_history_and_no_echo_to_the_source(engine: Engine) -> None:
    h = Harness(engine, source(kinds=("customers", "interactions")))
    h.crm.put("customers", customer(1, stamp(1)))
    h.crm.put("customers", customer(2, stamp(2), phone="12", email=""))
    h.crm.put("interactions", {"id": "I1", "customer_id": "C1", "channel": "call",
                               "started_at": stamp(3), "updated_at": stamp(3)})
    h.crm.put("interactions", {"id": "I2", "customer_id": "C9", "channel": "call",
                               "started_at": stamp(4), "updated_at": stamp(4)})
    with engine.begin() as conn:
        register(conn, [Subscriber(name="billing", url="http://billing.test/hook",
                                   secret_env="X"),
                        Subscriber(name="helpdesk", url="http://helpdesk.test/hook",
                                   secret_env="X")], NOW)
    reports = sync_source(engine, h.config, lambda e: default_mapping("billing", e.kind),
                          Rules(), "IL", h.fetcher())
    customers, history = reports
    assert [str(r) for r in customers.report.rejected] == [
        "line 2 (id C2): bad phone in 'phone': too short for a phone number: '12'"]
    assert [str(r) for r in history.report.rejected] == [
        "line 2 (id I2): no customer 'C9' in source 'billing' (import its customers first)"]
    assert count(engine, Interaction) == 1
    with engine.connect() as conn:
        events = conn.execute(select(OutboxEvent.subscriber, OutboxEvent.kind,
                                     OutboxEvent.origin)).all()
        reasons = conn.execute(text("SELECT reason FROM import_rejections")).scalars().all()
    # The pulled interaction goes to the other subscriber, never back to billing.
    assert [tuple(e) for e in events] == [("helpdesk", "interaction.created", "billing")]
    assert len(reasons) == 2


@pytest.mark.parametrize(("policy", "tier", "loser"), [
    ("newest", "gold", "silver"),
    ("source_priority", "silver", "gold"),
])
def test_a_record_changed_here_and_at_the_source_follows_the_field_policy(
        engine: Engine, policy: str, tier: str, loser: str) -> None:
    h = Harness(engine)
    h.rules = Rules(field_policy={"tier": policy}, source_priority=("billing", "branch"))  # type: ignore[dict-item]
    h.crm.put("customers", customer(1, stamp(1), account_number="A-1", tier="bronze"))
    h.run()
    # Changed here (the branch pushes the same account, newer) and at the source (older).
    import_batch(engine, [{"id": "B1", "name": "Person 1", "account_number": "A-1",
                           "tier": "gold", "updated_at": stamp(30)}],
                 default_mapping("branch"), h.rules, "IL", NOW)
    h.crm.put("customers", customer(1, stamp(20), account_number="A-1", tier="silver"))
    h.run()
    with engine.connect() as conn:
        golden = conn.execute(select(Customer.tier, Customer.lineage)).one()
    assert count(engine, Customer) == 1
    assert golden.tier == tier
    assert [(c["value"], c["chosen"]) for c in golden.lineage["tier"]] == [
        (tier, True), (loser, False)]


def test_pure_paging_helpers() -> None:
    config = source("page", 5)
    endpoint = config.endpoint("customers")
    assert page_params(endpoint, "2026-01-01", {"page": 2}) == {
        "updated_since": "2026-01-01", "limit": 5, "page": 2}
    assert next_position(endpoint.paging, {"page": 2}, {}, 5) == {"page": 3}
    assert next_position(endpoint.paging, {"page": 2}, {}, 4) is None
    cursor = source("cursor").endpoint("customers").paging
    with pytest.raises(SyncError, match="did not move"):
        next_position(cursor, {"cursor": "x"}, {"next": "x"}, 10)


def test_only_one_process_syncs_an_endpoint_at_a_time(pg_url: str) -> None:
    """PostgreSQL: an advisory lock per endpoint (SQLite runs one worker)."""
    import zlib

    engine = make_engine(pg_url, 2)
    try:
        h = Harness(engine)
        key = zlib.crc32(b"billing/customers") - (1 << 31)
        with engine.connect() as holder:
            holder.exec_driver_sql(f"SELECT pg_advisory_lock({0x5C_0001}, {key})")
            with pytest.raises(SyncBusy):
                h.run()
            holder.exec_driver_sql(f"SELECT pg_advisory_unlock({0x5C_0001}, {key})")
    finally:
        engine.dispose()


# --- configuration --------------------------------------------------------------------------

def write(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


GOOD = """\
base_url: https://crm.example.com/v2
auth: {env: IVR_TEST_STANDIN_TOKEN}
every: 60
endpoints:
  - path: /customers
    paging: {style: cursor, size: 500}
    since: {param: updated_since, field: updated_at}
  - kind: incidents
    path: /tickets
    records: result.items
    paging: {style: offset, size_param: per_page}
    mapping: {id: ticket, customer: cust, fields: {opened_at: created}}
"""


def test_source_files_load_and_mistakes_name_file_line_and_column(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "sources"
    write(folder / "billing.yaml", GOOD)
    configs = load_sources(folder)
    billing = configs["billing"]
    assert billing.every == 60 and billing.endpoints[1].records == "result.items"
    assert billing.auth_headers() == {"Authorization": "Bearer s3cret"}
    history = endpoint_mapping(tmp_path, billing, billing.endpoints[1], Mappings(tmp_path))
    assert history.kind == "incidents" and history.source == "billing"

    bad = write(folder / "tickets.yaml", GOOD.replace("style: offset", "style: pages")
                .replace("https://", "ftp://"))
    with pytest.raises(ConfigError) as err:
        load_source(bad)
    assert str(err.value).splitlines() == [
        f"{bad}:1:1: base_url: Value error, expected an http:// or https:// URL",
        f"{bad}:11:14: endpoints.1.paging.style: Input should be 'page', 'offset' or "
        "'cursor'"]
    broken = write(folder / "broken.yaml", "base_url: [\n")
    with pytest.raises(ConfigError, match=rf"^{broken}:1:11: not valid YAML: `\[` opened on "
                       "line 1 is never closed"):
        load_source(broken)
    monkeypatch.delenv(TOKEN_ENV)
    with pytest.raises(ConfigError, match=f"environment variable {TOKEN_ENV}"):
        billing.auth_headers()


def test_subscriber_file_mistakes(tmp_path: Path) -> None:
    assert load_subscribers(tmp_path / "missing.yaml") == []
    path = write(tmp_path / "subscribers.yaml", """\
subscribers:
  - {name: billing, url: "https://b.example/hook", secret_env: B_SECRET}
  - name: billing
    url: https://c.example/hook
    secret_env: C_SECRET
""")
    with pytest.raises(ConfigError) as err:
        load_subscribers(path)
    assert str(err.value) == f"{path}:3:5: subscribers.1.name: 'billing' is listed twice"
    write(path, "subscribers:\n  - {name: x, url: nowhere, secret_env: S, retries: 2}\n")
    with pytest.raises(ConfigError) as err:
        load_subscribers(path)
    assert str(err.value).splitlines() == [
        f"{path}:2:15: subscribers.0.url: Value error, expected an http:// or https:// URL",
        f"{path}:2:44: subscribers.0.retries: Extra inputs are not permitted"]


def test_status_lists_configured_sources_never_synced(engine: Engine) -> None:
    config = source(kinds=("customers", "incidents"))
    with engine.connect() as conn:
        rows = source_status(conn, NOW, {"billing": config})
    assert [(r["source"], r["kind"], r["last_success_at"]) for r in rows] == [
        ("billing", "customers", None), ("billing", "incidents", None)]


def test_lag_is_the_time_since_the_last_success(engine: Engine) -> None:
    h = Harness(engine)
    h.crm.put("customers", customer(1, stamp(1)))
    h.run()
    with engine.connect() as conn:
        rows = source_status(conn, NOW + timedelta(minutes=5))
    assert rows[0]["lag_seconds"] == 300.0
    assert rows[0]["last_run"]["created"] == 1


# --- the command line and the worker --------------------------------------------------------

SOURCE_FILE = f"""\
base_url: http://crm.test
auth: {{env: {TOKEN_ENV}}}
every: 60
retries: 1
endpoints:
  - path: /api/customers
    paging: {{style: cursor, size: 10}}
    since: {{param: updated_since, field: updated_at}}
  - kind: interactions
    path: /api/interactions
    paging: {{style: page, size: 10}}
    since: {{param: updated_since, field: updated_at}}
"""


@pytest.fixture
def crm_dir(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IVR_DATABASE_URL", database_url)
    monkeypatch.setenv("IVR_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("IVR_TEST_HOOK_SECRET", "whsec")
    write(tmp_path / "crm" / "sources" / "billing.yaml", SOURCE_FILE)
    write(tmp_path / "crm" / "subscribers.yaml", """\
subscribers:
  - {name: helpdesk, url: "http://helpdesk.test/hook", secret_env: IVR_TEST_HOOK_SECRET}
""")
    return tmp_path / "crm"


def standin_with_people() -> StandinCRM:
    crm = StandinCRM()
    for n in range(1, 13):
        crm.put("customers", customer(n, stamp(n)))
    crm.put("interactions", {"id": "I1", "customer_id": "C1", "channel": "call",
                             "started_at": stamp(20), "updated_at": stamp(20)})
    return crm


def test_crm_sync_and_sources_commands(crm_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from crm_sync import cli as crm_cli
    from ivr.cli import main

    crm = standin_with_people()
    monkeypatch.setattr(crm_cli, "http_client",
                        lambda: httpx.Client(transport=crm.transport()))
    assert main(["crm", "sources"]) == 0
    assert "never" in capsys.readouterr().out
    assert main(["crm", "sync", "billing"]) == 0
    out = capsys.readouterr().out
    assert "http://crm.test/api/customers: customers from billing: done" in out
    assert "created 12, updated 0, merged 0, unchanged 0, rejected 0" in out
    assert f"2 page(s), 2 request(s); cursor - -> {stamp(12)}" in out
    assert main(["crm", "sync", "billing", "--kind", "customers", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [(r["kind"], r["unchanged"], r["since"]) for r in again] == [
        ("customers", 1, stamp(12))]
    assert main(["crm", "sources", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["kind"], r["cursor"]) for r in rows] == [
        ("customers", stamp(12)), ("interactions", stamp(20))]
    crm.down = Fault(503)
    assert main(["crm", "sync", "billing"]) == 1
    err = capsys.readouterr().err
    assert "HTTP 503 (gave up after 2 attempts)" in err and "run the same command again" in err
    assert main(["crm", "sources"]) == 0
    assert "HTTP 503" in capsys.readouterr().out
    assert main(["crm", "sync", "nowhere"]) == 1
    assert "no source 'nowhere'" in capsys.readouterr().err
    assert main(["crm", "sync", "billing", "--kind", "incidents"]) == 1
    assert "has no incidents endpoint" in capsys.readouterr().err


def test_crm_outbox_command_shows_depth_failures_and_replays(
        crm_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from crm_sync.models import customers
    from crm_sync.outbox import emit
    from ivr.cli import main

    assert main(["crm", "outbox"]) == 0  # registers the subscriber file
    assert "helpdesk: 0 pending" in capsys.readouterr().out
    engine = make_engine(os.environ["IVR_DATABASE_URL"], 2)
    with engine.begin() as conn:
        conn.execute(customers.insert().values(id=5, status="active", lineage={},
                                               created_at=NOW, updated_at=NOW))
        emit(conn, customer_id=5, kind="incident.created", payload={}, now=NOW)
        conn.execute(text("UPDATE outbox SET status = 'dead', attempts = 8, "
                          "last_error = 'HTTP 500: boom'"))
    engine.dispose()
    assert main(["crm", "outbox", "--failed"]) == 0
    out = capsys.readouterr().out
    assert "1 dead" in out and "#1 dead incident.created customer 5 to helpdesk: 8 " \
        "attempt(s), HTTP 500: boom" in out
    assert main(["crm", "outbox", "--json", "--failed"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dead"] == 1 and report["failed"][0]["id"] == 1
    assert main(["crm", "outbox", "--replay", "1"]) == 0
    assert main(["crm", "outbox", "--replay", "1"]) == 1  # no longer dead
    assert "is not a dead letter" in capsys.readouterr().err
    assert main(["crm", "outbox", "--replay-dead"]) == 0
    assert "0 dead letter(s) queued again" in capsys.readouterr().out


def test_worker_syncs_on_schedule_delivers_and_stops_on_sigterm(
        crm_dir: Path) -> None:
    import signal

    from crm_sync.outbox import depth
    from ivr.core.settings import Settings
    from ivr.worker import Worker, build_jobs
    from tests.crm_standin import StandinSubscriber

    crm = standin_with_people()
    clock = FrozenClock(NOW)
    hook = StandinSubscriber(b"whsec", clock.now)

    def route(request: httpx.Request) -> httpx.Response:
        return (crm.handle if request.url.host == "crm.test" else hook.handle)(request)

    settings = Settings(_env_file=None, crm_dir=crm_dir)
    engine = make_engine(settings.database_url, 2)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds=seconds)

    worker = Worker([], clock, sleep)
    worker.jobs, closing = build_jobs(engine, settings, clock, sleep=sleep,
                                      stop=worker.stopping.is_set,
                                      transport=httpx.MockTransport(route))
    assert [(j.name, j.every) for j in worker.jobs] == [("sync:billing", 60.0),
                                                        ("outbox", 1.0)]
    worker.run(max_ticks=3)
    # Tick 1 pulled both endpoints (3 requests), and the outbox job posted the pulled
    # interaction (its origin is billing; helpdesk is another system).
    assert len(crm.requests) == 3 and slept == [1.0, 1.0]
    assert [p["event"]["type"] for p in hook.accepted] == ["interaction.created"]
    clock.advance(seconds=58)
    worker.run(max_ticks=1)  # 60 s after the first: the source again
    assert len(crm.requests) == 5
    with engine.connect() as conn:
        assert depth(conn, clock.now())["undelivered"] == 0
    clock.advance(days=8)
    worker.jobs[0].next_at = clock.now() + timedelta(hours=1)
    worker.run(max_ticks=1)  # a week later the delivered event is purged
    with engine.connect() as conn:
        assert depth(conn, clock.now())["subscribers"]["helpdesk"]["delivered"] == 0

    # A failing job is logged and tried again after its interval; SIGTERM stops the loop.
    worker.jobs[1].run = lambda: 1 / 0 > 0
    worker.jobs[1].next_at = None
    with worker.signals():
        assert worker.tick() == 1.0 and worker.jobs[1].failures == 1
        os.kill(os.getpid(), signal.SIGTERM)
        worker.run()
    assert worker.stopping.is_set()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    for c in closing:
        c.close()
    engine.dispose()


def test_worker_command_refuses_bad_configuration(
        crm_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ivr.cli import main

    write(crm_dir / "subscribers.yaml", "subscribers:\n  - {name: x}\n")
    assert main(["worker", "--once", "--no-sync"]) == 1
    assert "subscribers.yaml:2:5: subscribers.0.url: Field required" in \
        capsys.readouterr().err
    assert main(["worker", "--once", "--no-sync", "--no-outbox", "--no-callbacks"]) == 1
    assert "nothing to do" in capsys.readouterr().err


def test_a_long_first_run_refreshes_postgresql_statistics(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from crm_sync import sync

    monkeypatch.setattr(sync, "ANALYZE_AT", (15,))
    h = Harness(engine)
    for n in range(1, 31):
        h.crm.put("customers", customer(n, stamp(n)))
    assert h.run().report.counts.created == 30
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            analysed = conn.execute(text(
                "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'customers'")
            ).scalar()
        assert analysed is not None


def test_worker_command_runs_its_jobs_once(crm_dir: Path) -> None:
    from ivr.cli import main

    # The outbox is empty, so the subscriber is never called; --once: one round, exit 0.
    assert main(["worker", "--once", "--no-sync"]) == 0
    assert main(["crm", "outbox", "--json"]) == 0  # registered by the worker's start


def test_readme_source_and_subscriber_examples_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## CRM sync over HTTP", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in section.split("```yaml\n")[1:]]
    source_text = next(b for b in blocks if "base_url:" in b)
    subscribers_text = next(b for b in blocks if b.startswith("subscribers:"))
    config = load_source(write(tmp_path / "crm" / "sources" / "billing.yaml", source_text))
    assert [e.kind for e in config.endpoints] == ["customers", "incidents"]
    assert config.endpoints[0].paging.next == "meta.next"
    monkeypatch.setenv("BILLING_CRM_TOKEN", "t")
    assert config.auth_headers()["Authorization"] == "Bearer t"
    inline = endpoint_mapping(tmp_path / "crm", config, config.endpoints[1],
                              Mappings(tmp_path / "crm" / "mappings"))
    assert (inline.kind, inline.source) == ("incidents", "billing")
    (hook,) = load_subscribers(write(tmp_path / "crm" / "subscribers.yaml", subscribers_text))
    assert (hook.name, hook.echo_source, hook.secret_env) == (
        "helpdesk", "helpdesk", "HELPDESK_HOOK_SECRET")
