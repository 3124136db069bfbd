"""Shared fixtures: real databases (SQLite and PostgreSQL) built by the migrations, the app
with an injected clock, and a Twilio-like client that signs every request.

Every database test runs on both backends. ``IVR_TEST_DATABASES=sqlite`` narrows a local run;
CI runs both, and an unreachable PostgreSQL is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from starlette.testclient import TestClient

from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.migrate import upgrade
from ivr.core.settings import Settings

pytest_plugins = ["tests.agent_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
DEMO_MENUS = ROOT / "menus"
TOKEN = "test-auth-token"
ADMIN = "test-admin-token"
PG_ADMIN_URL = os.environ.get("IVR_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = [b.strip() for b in os.environ.get("IVR_TEST_DATABASES",
                                              "sqlite,postgresql").split(",") if b.strip()]
# Monday 23 November 2026, 10:00 in Jerusalem: the demo centre is open.
OPEN_TIME = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
# Every table but Alembic's own, read from the database so that a new migration's tables are
# emptied between tests without a list to keep up to date.
LIST_TABLES = text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                   "AND tablename <> 'alembic_version' ORDER BY tablename")


# The slowest test files, slowest first (seconds in one full run on 2026-12-07's evening
# host, two workers, without coverage: 92, 91, 89, 87, 76, 69, 61, 61, 57, 49, 47, 46, 44,
# 43, 41, 38, 38, 37). With ``--dist loadfile`` a worker takes the next file when it has
# finished one; pytest-xdist's own order (most tests first) left these few-but-slow files
# for last, and the suite's last minutes ran on one worker while the other was idle.
# ``pytest_collection_modifyitems`` puts them first, then the rest by number of tests as
# xdist would; test.sh passes ``--no-loadscope-reorder`` so that xdist keeps this order.
SLOW_FILES = (
    "test_readme_commands.py", "test_callbacks.py", "test_agents_cli.py",
    "test_simulate_transfer.py", "test_agent_processes.py", "test_faults.py",
    "test_pgbouncer.py", "test_callback_processes.py", "test_transfers.py",
    "test_cli_output.py", "test_followup_processes.py", "test_slow_clients.py",
    "test_transfers_browser.py", "test_callback_ordering.py", "test_proxy_headers.py",
    "test_agents.py", "test_processes.py", "test_login_throttle.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow files first (``SLOW_FILES``), then files by number of tests; a file's tests
    keep their order (the sort is stable and a file's tests share their key)."""
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    counts = Counter(item.path.name for item in items)
    items.sort(key=lambda item: (rank.get(item.path.name, len(rank)),
                                 -counts[item.path.name], item.path.name))


def statements_sent(engine: Engine) -> list[str]:
    """The statements ``engine`` sends from now on (a list that grows)."""
    sent: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: sent.append(statement))
    return sent


# A table with more rows than this is emptied by TRUNCATE (``DELETE`` is row by row); below
# it, ``DELETE`` is the cheaper way: TRUNCATE gives each of 40 tables and their indexes new
# files, 180-440 ms a test on a 2-core host, against a few ms for deleting a few rows.
DELETE_UP_TO = 1000
# Tables ordered so that a table comes before every table it references, read once a database.
_DELETE_ORDER: dict[str, list[str]] = {}
_RESTART_SEQUENCES = text(
    "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, start_value, false) "
    "FROM pg_sequences WHERE schemaname = 'public'")


def _delete_order(conn: Connection) -> list[str]:
    """Every table, each before the tables it references (so deleting in this order never
    breaks a foreign key): SQLAlchemy's dependency order of the reflected tables, reversed."""
    tables = MetaData()
    tables.reflect(bind=conn)
    return [t.name for t in reversed(tables.sorted_tables) if t.name != "alembic_version"]


def truncate_all(url: str) -> None:
    """Empty every table of a PostgreSQL test database and restart its sequences, as
    ``TRUNCATE … RESTART IDENTITY`` of them all would: the tables that hold rows are emptied
    by ``DELETE`` (each before the tables it references), or by that TRUNCATE when one holds
    more than ``DELETE_UP_TO`` rows."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            if url not in _DELETE_ORDER:
                _DELETE_ORDER[url] = _delete_order(conn)
            order = _DELETE_ORDER[url]
            if not order:
                return
            # Table names are the database's own (pg_tables), not input.
            counts = conn.execute(text("SELECT " + ", ".join(  # noqa: S608
                f'(SELECT count(*) FROM (SELECT 1 FROM "{name}" LIMIT {DELETE_UP_TO + 1}) s)'  # noqa: S608
                for name in order))).one()
            if max(counts) > DELETE_UP_TO:
                names = ", ".join(f'"{name}"' for name in order)
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
                return
            for name, count in zip(order, counts, strict=True):
                if count:
                    conn.execute(text(f'DELETE FROM "{name}"'))  # noqa: S608
            conn.execute(_RESTART_SEQUENCES)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"ivr_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(f"PostgreSQL is required for the database tests ({PG_ADMIN_URL}): {exc}. "
                    "Start it, or set IVR_TEST_DATABASES=sqlite for a SQLite-only local run.")
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "ivr.db"
        shutil.copy(template, path)
        yield f"sqlite:///{path}"
        return
    url: str = request.getfixturevalue("postgres_url")
    yield url
    truncate_all(url)


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """PostgreSQL only, for what SQLite does not do (several processes or workers at once:
    SQLite is for one); emptied afterwards like ``database_url``."""
    yield postgres_url
    truncate_all(postgres_url)


@pytest.fixture
def menus_dir(tmp_path: Path) -> Path:
    """A private copy of the demo menus (tests may edit it)."""
    target = tmp_path / "menus"
    shutil.copytree(DEMO_MENUS, target, ignore=shutil.ignore_patterns("*.json"))
    return target


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(OPEN_TIME)


def settings_for(database_url: str, menus_dir: Path, **more: Any) -> Settings:
    """The tests' settings for one database (``more`` overrides any of them)."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "menus_dir": menus_dir,
        "twilio_auth_token": TOKEN,
        "admin_token": ADMIN,
        "watch_menus": False,
        "db_pool_size": 4,
        # Nobody answers the stand-in's transfer legs: the tests post those status
        # callbacks themselves (tests/test_simulate_transfer.py turns the party on).
        "local_answer_seconds": None,
    }
    return Settings(_env_file=None, **{**values, **more})


@pytest.fixture
def settings(database_url: str, menus_dir: Path) -> Settings:
    return settings_for(database_url, menus_dir)


@pytest.fixture
def client(settings: Settings, clock: FrozenClock) -> Iterator[TestClient]:
    app = create_app(settings, clock)
    with TestClient(app) as c:
        yield c
