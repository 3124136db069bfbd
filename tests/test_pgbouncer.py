"""PostgreSQL behind PgBouncer in transaction pooling (issue 18): the webhook and routing
cases of the PostgreSQL suite run through a PgBouncer this module starts (Debian's
``pgbouncer``), with ``IVR_DATABASE_DIRECT_URL`` naming the database for LISTEN, session
locks and migrations.

The pooler is given two server connections for many client connections, so consecutive
transactions of one client land on different server connections — what breaks a process
that prepares statements on the server (``prepared statement "_pg3_0" already exists``) or
keeps session state.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from ivr.core.db import Database, session_engine, settings_engine
from ivr.core.settings import Settings
from tests.conftest import BACKENDS, truncate_all

# The cases, run again here with the fixtures below (the pooler's URL): imported under
# their own names so that pytest collects them in this module too.
from tests.test_agent_processes import pop_latency, two_processes_route_each_call_once
from tests.test_agents import (
    test_agent_who_does_not_answer_goes_offline_and_the_caller_back_to_the_head,
    test_known_caller_reaches_an_available_agent_with_the_incident_on_screen,
    test_priority_then_longest_wait_decides_who_is_served_first,
    test_wrap_up_opens_and_closes_incidents_and_marks_promises,
)
from tests.test_webhooks import (
    test_a_retried_voice_webhook_and_status_callback_are_recognised,
    test_full_call_in_english_by_speech_to_retention,
    test_full_call_in_hebrew_reaches_billing,
    test_retried_webhook_gets_the_same_answer_and_no_double_effect,
    test_silence_three_times_goes_to_the_operator,
    test_status_callbacks_are_recorded_once,
)

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"

pytestmark = [
    pytest.mark.skipif("postgresql" not in BACKENDS, reason="IVR_TEST_DATABASES has no "
                       "postgresql (the PgBouncer cases are PostgreSQL's)"),
]

__all__ = [
    "test_a_retried_voice_webhook_and_status_callback_are_recognised",
    "test_agent_who_does_not_answer_goes_offline_and_the_caller_back_to_the_head",
    "test_full_call_in_english_by_speech_to_retention",
    "test_full_call_in_hebrew_reaches_billing",
    "test_known_caller_reaches_an_available_agent_with_the_incident_on_screen",
    "test_priority_then_longest_wait_decides_who_is_served_first",
    "test_retried_webhook_gets_the_same_answer_and_no_double_effect",
    "test_silence_three_times_goes_to_the_operator",
    "test_status_callbacks_are_recorded_once",
    "test_wrap_up_opens_and_closes_incidents_and_marks_promises",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def pgbouncer(postgres_url: str) -> Iterator[str]:
    """A PgBouncer in transaction pooling in front of the test database; its URL."""
    if not os.path.exists(PGBOUNCER):
        pytest.fail("PgBouncer is required for these tests: apt-get install -y pgbouncer "
                    "(./test.sh installs it)")
    url = make_url(postgres_url)
    # Readable by the user PgBouncer switches to (pytest's own folders are root's only).
    folder = Path(tempfile.mkdtemp(prefix="ivr-pgbouncer-"))
    folder.chmod(0o755)
    port = _free_port()
    (folder / "users.txt").write_text(f'"{url.username}" ""\n')
    (folder / "pgbouncer.ini").write_text(f"""\
[databases]
{url.database} = host={url.host} port={url.port or 5432} dbname={url.database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
default_pool_size = 2
max_client_conn = 400
ignore_startup_parameters = extra_float_digits
""")
    for f in folder.iterdir():
        f.chmod(0o644)
    command = [PGBOUNCER, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        user = "postgres" if _user_exists("postgres") else "nobody"
        command = [PGBOUNCER, "-u", user, str(folder / "pgbouncer.ini")]
    log = folder / "pgbouncer.log"
    with log.open("wb") as out:  # PgBouncer logs to stderr when not a daemon
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    pooled = url.set(port=port).render_as_string(hide_password=False)
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait(10)
                pytest.fail(f"PgBouncer did not start: {log.read_text()}")
            time.sleep(0.05)
    try:
        yield pooled
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


# ----------------------------------------------------------- the fixtures the cases take


@pytest.fixture
def database_url(pgbouncer: str, postgres_url: str) -> Iterator[str]:
    """The pooler's URL, where the cases read ``database_url``; emptied afterwards."""
    yield pgbouncer
    truncate_all(postgres_url)


@pytest.fixture
def settings(settings: Settings, postgres_url: str) -> Settings:
    return settings.model_copy(update={"database_direct_url": postgres_url})


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    """The cases' own reads and seeds go to the database directly."""
    e = create_engine(postgres_url)
    yield e
    e.dispose()


# -------------------------------------------------------------- what only the pooler shows


def test_the_pooler_shares_server_connections_between_clients(settings: Settings) -> None:
    """The set-up these cases rely on: two client connections' transactions run on the same
    server connection (else the cases above would not show what pooling breaks)."""
    engine = settings_engine(settings, 4)
    try:
        pids = set()
        with engine.connect() as a, engine.connect() as b, engine.connect() as c:
            for conn in (a, b, c) * 3:
                pids.add(conn.execute(text("SELECT pg_backend_pid()")).scalar())
                conn.commit()
        assert len(pids) <= 2
    finally:
        engine.dispose()


def test_the_same_statement_many_times_on_many_connections(settings: Settings) -> None:
    """psycopg prepares a statement on the server after 5 runs; through the pooler the next
    transaction's server connection has it already (or has not), which fails. The engine
    made for a pooler prepares nothing."""
    engine = settings_engine(settings, 4)
    try:
        for _ in range(4):
            with engine.connect() as a, engine.connect() as b:
                for conn in (a, b) * 8:
                    assert conn.execute(text("SELECT 1 + :x"), {"x": 1}).scalar() == 2
                    conn.commit()
    finally:
        engine.dispose()


def test_session_locks_take_the_direct_connection(settings: Settings,
                                                  postgres_url: str) -> None:
    engine = settings_engine(settings, 2)
    try:
        direct = session_engine(engine)
        assert direct is not engine
        assert direct.url.port == make_url(postgres_url).port
        assert session_engine(create_engine(postgres_url)).url.port == make_url(
            postgres_url).port
    finally:
        engine.dispose()


async def _step_pool_timeout(settings: Settings) -> str:
    db = Database(settings)
    pool = await db.open_async_pool()
    try:
        async with pool.connection() as conn:
            cur = await conn.execute("SHOW statement_timeout")
            row = await cur.fetchone()
            return str(row[0])
    finally:
        await pool.close()
        db.close()


def test_the_step_pool_keeps_its_statement_timeout_per_transaction(
        settings: Settings) -> None:
    import asyncio

    assert asyncio.run(_step_pool_timeout(settings)) == "3s"


def test_two_server_processes_through_the_pooler_route_each_call_once(
        pgbouncer: str, postgres_url: str, menus_dir: Path) -> None:
    try:
        two_processes_route_each_call_once(pgbouncer, postgres_url, menus_dir,
                                           IVR_DATABASE_DIRECT_URL=postgres_url)
    finally:
        truncate_all(postgres_url)


def test_a_screen_pop_crosses_processes_through_the_pooler(
        pgbouncer: str, postgres_url: str, menus_dir: Path) -> None:
    """LISTEN on the direct connection: a console on one process sees the pop of a call
    whose webhooks reach the other."""
    try:
        assert pop_latency(pgbouncer, menus_dir, 2, direct_url=postgres_url,
                           IVR_DATABASE_DIRECT_URL=postgres_url) < 1.0
    finally:
        truncate_all(postgres_url)
