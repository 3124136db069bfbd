"""Pull connector: a source CRM's HTTP API -> the customer store, incrementally.

Each endpoint of a source (``crm/sources/NAME.yaml``) is listed page by page with ``httpx``.
Every page goes through the file importer's own path (``importer.apply_rows``: the same
mapping, upsert, identity resolution and rejections) and commits in one transaction with
the run's progress (``import_runs``) and its place in the listing (``sync_cursors``: the
next page and the highest "updated since" value seen). So:

* a run that fails midway (a 500 after the retries, a crash) keeps every committed page; the
  next run resumes at the page after the last committed one, with the same "since" value,
  so nothing is fetched twice and nothing is skipped;
* a run that reaches the end moves the endpoint's cursor to the highest value it saw; the
  next run asks only for records changed since then (inclusive: records stamped exactly
  at the cursor come again and count as unchanged).

Requests time out (``timeout``), and 408/425/429/5xx answers and connection errors are
retried (``retries`` per request) after ``Retry-After`` when the server sends one (up to
``max_retry_after``), else a jittered exponential back-off. Other 4xx answers fail the run
at once. On PostgreSQL a session advisory lock per (source, kind) keeps two workers from
syncing the same endpoint at the same time.

Conflicts: a record changed here (another source's push, an operator's merge) and at the
source since the last sync is settled field by field by ``crm/rules.yaml``'s policy when the
golden record is recomputed; the losing value stays in the customer's lineage.
"""

from __future__ import annotations

import logging
import random
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Connection, Engine, insert, select, update

from crm_sync.config import Mappings
from crm_sync.identity import Rules
from crm_sync.importer import Report, Row, _merge_earlier, _save_batch, apply_rows
from crm_sync.mapping import Mapping
from crm_sync.models import import_runs as runs
from crm_sync.retry import RETRY_STATUSES, Backoff, retry_after
from crm_sync.sources import Endpoint, Paging, SourceConfig, endpoint_mapping
from crm_sync.sync_models import sync_cursors as cursors
from ivr.core.db import session_engine

log = logging.getLogger(__name__)

_LOCK_SPACE = 0x5C_0001  # pg_try_advisory_lock(space, crc32(source/kind)): one syncer each
# PostgreSQL gets ANALYZE when a run's records pass each of these: a first sync into an
# empty store otherwise keeps the plans made for empty tables (a 100,000-record first run
# measured 1.4 s per page in the e-mail look-up alone before this, autovacuum not yet by).
ANALYZE_AT = (2_000, 20_000, 200_000, 2_000_000)
_ANALYZE = {"customers": "ANALYZE customers, customer_phones, customer_emails, source_records",
            "incidents": "ANALYZE incidents", "interactions": "ANALYZE interactions"}
ERROR_TEXT = 1000


class SyncError(Exception):
    """A sync that could not finish; committed pages stay and the next run resumes."""


class SyncBusy(SyncError):
    """Another process is syncing this endpoint right now."""


Sleep = Callable[[float], None]


@dataclass
class HttpStats:
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0  # wall time inside httpx (waiting on the network and the server)


class Fetcher:
    """GETs JSON from one source with timeouts, retries, back-off and Retry-After."""

    def __init__(self, client: httpx.Client, config: SourceConfig, *,
                 now: Callable[[], datetime], sleep: Sleep = time.sleep,
                 rand: Callable[[], float] = random.random,
                 backoff: Backoff | None = None) -> None:
        self.client = client
        self.config = config
        self.now = now
        self.sleep = sleep
        self.rand = rand
        self.backoff = backoff or Backoff()
        self.headers = {"Accept": "application/json", **config.auth_headers()}
        self.timeout = httpx.Timeout(config.timeout, connect=min(5.0, config.timeout))
        self.stats = HttpStats()

    def get(self, path: str, params: dict[str, Any]) -> Any:
        url = self.config.base_url + path
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            t0 = time.perf_counter()
            self.stats.requests += 1
            try:
                response = self.client.get(url, params=params, headers=self.headers,
                                           timeout=self.timeout)
            except httpx.TransportError as exc:
                self.stats.seconds += time.perf_counter() - t0
                problem = f"{type(exc).__name__}: {exc}"
            else:
                self.stats.seconds += time.perf_counter() - t0
                if response.status_code < 300:
                    try:
                        return response.json()
                    except ValueError:
                        raise SyncError(f"GET {url}: the answer is not JSON") from None
                problem = f"HTTP {response.status_code}"
                if response.status_code not in RETRY_STATUSES:
                    raise SyncError(f"GET {url} {params}: {problem}: "
                                    f"{response.text[:200]}")
                wait = retry_after(response.headers.get("Retry-After"), self.now())
            if attempt > self.config.retries:
                raise SyncError(f"GET {url} {params}: {problem} "
                                f"(gave up after {attempt} attempts)")
            if wait is not None and wait > self.config.max_retry_after:
                raise SyncError(f"GET {url}: {problem}, asked to retry after {wait:.0f} s "
                                f"(more than max_retry_after {self.config.max_retry_after:.0f})")
            delay = wait if wait is not None else self.backoff.delay(attempt, self.rand)
            self.stats.retries += 1
            log.info("GET %s: %s; retry %d in %.1f s", url, problem, attempt, delay)
            self.sleep(delay)


# --- paging (pure) ------------------------------------------------------------------------------

def first_position(paging: Paging) -> dict[str, Any]:
    if paging.style == "page":
        return {"page": paging.first}
    if paging.style == "offset":
        return {"offset": 0}
    return {"cursor": None}


def page_params(endpoint: Endpoint, since: str | None,
                position: dict[str, Any]) -> dict[str, Any]:
    paging = endpoint.paging
    params: dict[str, Any] = dict(endpoint.params)
    if endpoint.since is not None and since is not None:
        params[endpoint.since.param] = since
    if paging.size_param:
        params[paging.size_param] = paging.size
    value = position.get(paging.style)
    if value is not None:
        params[paging.param_name] = value
    return params


def dig(body: Any, path: str) -> Any:
    """``a.b.c`` of a JSON body ("" = the body itself); None where it is missing."""
    node = body
    for part in path.split(".") if path else ():
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def next_position(paging: Paging, position: dict[str, Any], body: Any,
                  received: int) -> dict[str, Any] | None:
    """Where the next page is, or None when this page was the last."""
    if paging.style == "cursor":
        token = dig(body, paging.next)
        if token in (None, ""):
            return None
        if token == position.get("cursor"):
            raise SyncError(f"the listing's next cursor did not move ({token!r})")
        return {"cursor": token}
    if received < paging.size:
        return None
    if paging.style == "page":
        return {"page": int(position["page"]) + 1}
    return {"offset": int(position["offset"]) + received}


def _key(value: str) -> tuple[int, Any]:
    try:
        return (0, datetime.fromisoformat(value).timestamp())
    except ValueError:
        return (1, value)


def highest(current: str | None, items: list[Any], field_: str) -> str | None:
    """The highest cursor-field value of ``current`` and the page's records (timestamps
    compared as instants, other values as text)."""
    best = current
    for item in items:
        if isinstance(item, dict) and item.get(field_) not in (None, ""):
            value = str(item[field_])
            if best is None or _key(value) > _key(best):
                best = value
    return best


# --- runs ---------------------------------------------------------------------------------------

@dataclass
class SyncReport:
    source: str
    kind: str
    report: Report
    pages: int = 0
    since: str | None = None  # the cursor this run asked from
    cursor: str | None = None  # the endpoint's cursor after the run
    resumed: bool = False
    http: HttpStats = field(default_factory=HttpStats)
    seconds: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**self.report.as_dict(), "pages": self.pages, "since": self.since,
                "cursor": self.cursor, "resumed": self.resumed, "error": self.error,
                "http_requests": self.http.requests, "http_retries": self.http.retries,
                "http_seconds": round(self.http.seconds, 3),
                "seconds": round(self.seconds, 3)}


@contextmanager
def _exclusive(engine: Engine, source: str, kind: str) -> Iterator[None]:
    if engine.dialect.name != "postgresql":
        yield
        return
    key = zlib.crc32(f"{source}/{kind}".encode()) - (1 << 31)
    with session_engine(engine).connect() as conn:
        got = conn.exec_driver_sql(
            f"SELECT pg_try_advisory_lock({_LOCK_SPACE}, {key})").scalar()
        conn.commit()
        if not got:
            raise SyncBusy(f"{source} {kind}: another process is syncing it")
        try:
            yield
        finally:
            conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_LOCK_SPACE}, {key})")
            conn.commit()


def _state(conn: Connection, source: str, kind: str) -> Any:
    row = conn.execute(select(cursors).where(cursors.c.source == source,
                                             cursors.c.kind == kind)).one_or_none()
    if row is None:
        conn.execute(insert(cursors).values(source=source, kind=kind))
        row = conn.execute(select(cursors).where(cursors.c.source == source,
                                                 cursors.c.kind == kind)).one()
    return row


def _begin(conn: Connection, config: SourceConfig, endpoint: Endpoint, now: datetime,
           restart: bool) -> tuple[int, str | None, dict[str, Any], str | None, int, bool]:
    """(run id, since, next position, high water, records done, resumed)."""
    kind = endpoint.kind
    state = _state(conn, config.source, kind)
    if state.run_id is not None and not restart:
        prior = conn.execute(select(runs.c.status, runs.c.records_done)
                             .where(runs.c.id == state.run_id)).one_or_none()
        if prior is not None and prior.status in ("running", "failed", "interrupted"):
            conn.execute(update(runs).where(runs.c.id == state.run_id)
                         .values(status="running"))
            conn.execute(update(cursors).where(cursors.c.source == config.source,
                                               cursors.c.kind == kind)
                         .values(last_started_at=now))
            return (state.run_id, state.run_since,
                    dict(state.position or first_position(endpoint.paging)),
                    state.high_water, int(prior.records_done), True)
    run_id = conn.execute(insert(runs).values(
        source=config.source, kind=kind, origin=f"sync:{config.base_url}{endpoint.path}",
        fingerprint=None, status="running", records_done=0, created=0, updated=0, merged=0,
        unchanged=0, rejected=0, customers_merged=0, started_at=now)
        .returning(runs.c.id)).scalar_one()
    since = state.cursor if endpoint.since is not None else None
    position = first_position(endpoint.paging)
    conn.execute(update(cursors).where(cursors.c.source == config.source,
                                       cursors.c.kind == kind)
                 .values(run_id=run_id, run_since=since, position=position, high_water=None,
                         last_started_at=now))
    return run_id, since, position, None, 0, False


def sync_endpoint(engine: Engine, config: SourceConfig, endpoint: Endpoint, mapping: Mapping,
                  rules: Rules, region: str, fetcher: Fetcher, *,
                  restart: bool = False,
                  on_page: Callable[[SyncReport], None] | None = None,
                  stop: Callable[[], bool] | None = None) -> SyncReport:
    """Pull one endpoint to the end of its listing (or until it fails: SyncError). When
    ``stop()`` turns true (a worker shutting down) the run ends after the page it is on,
    ``interrupted``; the next run resumes it."""
    now = fetcher.now
    kind = endpoint.kind
    started = time.perf_counter()
    http_before = HttpStats(fetcher.stats.requests, fetcher.stats.retries,
                            fetcher.stats.seconds)
    with _exclusive(engine, config.source, kind):
        with engine.begin() as conn:
            run_id, since, position, high, done, resumed = _begin(conn, config, endpoint,
                                                                  now(), restart)
        report = Report(config.source, kind, run_id=run_id, resumed_after=done)
        out = SyncReport(config.source, kind, report, since=since, resumed=resumed)
        actor = f"sync:{config.source}"
        try:
            next_at: dict[str, Any] | None = position
            while next_at is not None:
                body = fetcher.get(endpoint.path, page_params(endpoint, since, next_at))
                items = dig(body, endpoint.records)
                if not isinstance(items, list):
                    raise SyncError(f"GET {config.base_url}{endpoint.path}: expected a list "
                                    f"at {endpoint.records or '(the body)'!r}, got "
                                    f"{type(items).__name__}")
                following = next_position(endpoint.paging, next_at, body, len(items))
                if endpoint.since is not None:
                    high = highest(high, items, endpoint.since.field)
                rows: list[Row] = [
                    (done + n, item if isinstance(item, dict) else
                     f"expected a JSON object, got {type(item).__name__}")
                    for n, item in enumerate(items, start=1)]
                with engine.begin() as conn:
                    if rows:
                        counts, bad = apply_rows(conn, rows, mapping, rules, region, now(),
                                                 actor)
                        _save_batch(conn, run_id, counts, bad, len(rows))
                        report.counts.add(counts)
                        report.rejected.extend(bad)
                    conn.execute(update(cursors).where(cursors.c.source == config.source,
                                                       cursors.c.kind == kind)
                                 .values(position=following, high_water=high))
                if engine.dialect.name == "postgresql" and any(
                        done < t <= done + len(rows) for t in ANALYZE_AT):
                    with engine.begin() as conn:
                        conn.exec_driver_sql(_ANALYZE[kind])
                done += len(rows)
                report.records += len(rows)
                out.pages += 1
                next_at = following
                if on_page:
                    on_page(out)
                if next_at is not None and stop is not None and stop():
                    with engine.begin() as conn:
                        conn.execute(update(runs).where(runs.c.id == run_id)
                                     .values(status="interrupted"))
                    report.status = "interrupted"
                    out.cursor = since
                    return out
        except (SyncError, httpx.HTTPError) as exc:
            message = str(exc)[:ERROR_TEXT]
            with engine.begin() as conn:
                conn.execute(update(runs).where(runs.c.id == run_id).values(status="failed"))
                conn.execute(update(cursors).where(cursors.c.source == config.source,
                                                   cursors.c.kind == kind)
                             .values(last_error=message, last_error_at=now()))
            report.status = "failed"
            out.error = message
            raise SyncError(message) from exc
        except BaseException:
            with engine.begin() as conn:
                conn.execute(update(runs).where(runs.c.id == run_id).values(status="failed"))
            raise
        finally:
            out.seconds = time.perf_counter() - started
            out.http = HttpStats(fetcher.stats.requests - http_before.requests,
                                 fetcher.stats.retries - http_before.retries,
                                 fetcher.stats.seconds - http_before.seconds)
        finished = now()
        cursor = high if high is not None else since
        with engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id)
                         .values(status="done", finished_at=finished))
            conn.execute(update(cursors).where(cursors.c.source == config.source,
                                               cursors.c.kind == kind)
                         .values(cursor=cursor, run_id=None, run_since=None, position=None,
                                 high_water=None, last_run_id=run_id,
                                 last_success_at=finished, last_error=None,
                                 last_error_at=None))
    report.status = "done"
    out.cursor = cursor
    if report.resumed_after:
        _merge_earlier(engine, report)
    return out


def sync_source(engine: Engine, config: SourceConfig, mappings: Callable[[Endpoint], Mapping],
                rules: Rules, region: str, fetcher: Fetcher, *, kind: str | None = None,
                restart: bool = False,
                stop: Callable[[], bool] | None = None) -> list[SyncReport]:
    """Every endpoint of a source in file order (customers before their history); the first
    failure stops the source (SyncError), later endpoints wait for the next run."""
    out = []
    for endpoint in config.endpoints:
        if kind is None or endpoint.kind == kind:
            if stop is not None and stop():
                break
            out.append(sync_endpoint(engine, config, endpoint, mappings(endpoint), rules,
                                     region, fetcher, restart=restart, stop=stop))
    return out


def pull(engine: Engine, config: SourceConfig, crm_dir: Path, rules: Rules, region: str,
         client: httpx.Client, *, now: Callable[[], datetime], sleep: Sleep = time.sleep,
         kind: str | None = None, restart: bool = False,
         stop: Callable[[], bool] | None = None) -> list[SyncReport]:
    """``sync_source`` with the mappings of ``crm_dir`` (what ``ivr crm sync`` and the
    worker run)."""
    configured = Mappings(crm_dir / "mappings")
    fetcher = Fetcher(client, config, now=now, sleep=sleep)
    return sync_source(engine, config,
                       lambda e: endpoint_mapping(crm_dir, config, e, configured),
                       rules, region, fetcher, kind=kind, restart=restart, stop=stop)


# --- visibility ---------------------------------------------------------------------------------

def source_status(conn: Connection, now: datetime,
                  configured: dict[str, SourceConfig] | None = None) -> list[dict[str, Any]]:
    """Every endpoint's last sync, cursor, counts of its last run and last error, with the
    sync lag (seconds since its last successful sync): the sync-lag metric."""
    rows = {(r.source, r.kind): r for r in conn.execute(select(cursors))}
    keys = list(rows)
    for config in (configured or {}).values():
        for endpoint in config.endpoints:
            if (config.source, endpoint.kind) not in rows:
                keys.append((config.source, endpoint.kind))
    run_ids = {r.last_run_id for r in rows.values() if r.last_run_id} | {
        r.run_id for r in rows.values() if r.run_id}
    run_rows = {r.id: r for r in conn.execute(select(runs).where(runs.c.id.in_(run_ids)))
                } if run_ids else {}
    out = []
    for source, kind in sorted(keys):
        state = rows.get((source, kind))
        last = run_rows.get(state.last_run_id) if state is not None and state.last_run_id \
            else None
        current = run_rows.get(state.run_id) if state is not None and state.run_id else None
        success = state.last_success_at if state is not None else None
        out.append({
            "source": source, "kind": kind,
            "configured": configured is None or source in configured,
            "cursor": state.cursor if state is not None else None,
            "last_started_at": state.last_started_at if state is not None else None,
            "last_success_at": success,
            "lag_seconds": (now - success).total_seconds() if success else None,
            "last_run": ({name: getattr(last, name) for name in (
                "id", "records_done", "created", "updated", "merged", "unchanged",
                "rejected")} if last is not None else None),
            "unfinished_run": ({"id": current.id, "status": current.status,
                                "records_done": current.records_done,
                                "next_page": state.position}
                               if current is not None and state is not None else None),
            "last_error": state.last_error if state is not None else None,
            "last_error_at": state.last_error_at if state is not None else None,
        })
    return out
