"""What the ``ivr`` command prints a newcomer: the server's own address (IVR_PORT or
--port), a simulator that finds it or says how to start one, no Alembic chatter outside
``ivr migrate``, and ``ivr crm show`` piped whole, in the centre's time."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from crm_sync import demo
from ivr.cli import main
from ivr.core.settings import Settings
from tests.test_readme_commands import ROOT, demo_env, free_port, ivr, serving

WIDE_AGENT = "Tamar Friedman-Ben-Haim of the Haifa branch"
WIDE_TOPIC = "billing-dispute-about-the-last-two-invoices"


def env_on(database_url: str, folder: Path, port: int) -> dict[str, str]:
    return demo_env(folder, port, IVR_DATABASE_URL=database_url, IVR_LOG_LEVEL="INFO")


def test_serve_prints_its_port_and_simulate_reads_ivr_port(database_url: str,
                                                           tmp_path: Path) -> None:
    nobody = free_port()  # IVR_PORT: no server there
    env = env_on(database_url, tmp_path, nobody)
    port = free_port()
    with serving(tmp_path, env, "--port", str(port)) as (url, log):
        assert url == f"http://127.0.0.1:{port}"
        banner = log.read_text(encoding="utf-8")
        assert (f"serving {url} (Twilio: {url}/twilio/voice); the agent console: "
                f"{url}/agent/") in banner
        assert ":8000" not in banner
        missed = ivr(tmp_path, env, "simulate", "--press", "1")
        assert missed.returncode == 1
        assert missed.stderr.strip() == (
            f"error: no server at http://127.0.0.1:{nobody} — start one with ./run.sh, or "
            "pass --url")
        found = ivr(tmp_path, {**env, "IVR_PORT": str(port)}, "simulate", "--press", "2,1")
        assert found.returncode == 0, found.stderr
        assert f"Calling {url} from +972501234567" in found.stdout


def test_run_sh_names_no_port_of_its_own() -> None:
    """./run.sh passes --port to `ivr serve`, which prints the address: no stale :8000."""
    text = (ROOT / "run.sh").read_text(encoding="utf-8")
    assert [line for line in text.splitlines()
            if "8000" in line and not line.lstrip().startswith("#")] == []
    assert "IVR_DEMO_ALWAYS_OPEN=true" in text


def test_alembic_speaks_only_in_ivr_migrate(database_url: str, tmp_path: Path) -> None:
    env = env_on(database_url, tmp_path, free_port())
    for argv in (["crm", "sources"], ["callbacks", "list"], ["tokens", "list"]):
        listed = ivr(tmp_path, env, *argv)
        assert listed.returncode == 0, listed.stderr
        assert "alembic" not in listed.stderr, (argv, listed.stderr)
    migrated = ivr(tmp_path, env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "INFO alembic.runtime.migration: Context impl" in migrated.stderr


@pytest.fixture
def wide_customer(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  ) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("IVR_DATABASE_URL", database_url)
    monkeypatch.setenv("IVR_LOG_LEVEL", "WARNING")
    people = tmp_path / "people.csv"
    demo.write_csv(people, [{**dict.fromkeys(demo.CUSTOMER_COLUMNS, ""), "id": "T1",
                             "name": "Dana Cohen", "phone": "050-123-4567",
                             "updated_at": "2026-11-23T08:00:00+00:00"}],
                   demo.CUSTOMER_COLUMNS)
    calls = tmp_path / "calls.csv"
    with calls.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=demo.INTERACTION_COLUMNS, restval="")
        writer.writeheader()
        writer.writerow({"id": "C1", "customer_id": "T1", "channel": "call",
                         "direction": "in", "queue": "billing", "agent": WIDE_AGENT,
                         "started_at": "2026-11-23T08:00:00+00:00",
                         "ended_at": "2026-11-23T08:20:00+00:00", "topic": WIDE_TOPIC,
                         "outcome": "escalated-to-collections", "resolved": "false"})
    assert main(["crm", "import", str(people), "--source", "branch-tlv"]) == 0
    assert main(["crm", "import", str(calls), "--source", "branch-tlv", "--kind",
                 "interactions"]) == 0


def test_crm_show_piped_keeps_whole_lines_in_the_centres_time(
        wide_customer: None, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["crm", "show", "0501234567"]) == 0  # stdout is no terminal here
    lines = capsys.readouterr().out.splitlines()
    assert "times in Asia/Jerusalem" in lines
    [row] = [line for line in lines if WIDE_AGENT in line]
    # One line, nothing cut, 08:00 UTC shown as 10:00 in Jerusalem (winter, UTC+2).
    assert "2026-11-23 10:00" in row and WIDE_TOPIC in row and "escalated-to-collections" \
        in row, row
    assert not any("…" in line for line in lines), lines


def test_the_local_dialer_calls_this_server_on_ivr_port(settings: Settings) -> None:
    """Without a Twilio account the demo's callbacks are played against this server: at
    IVR_PORT (`ivr worker`, `ivr serve --workers N`), not a fixed :8000."""
    from sqlalchemy import create_engine

    from callbacks.local_dialer import LocalDialer
    from ivr.core.clock import FrozenClock
    from ivr.services import build_services
    from tests.conftest import OPEN_TIME

    engine = create_engine(settings.database_url)
    try:
        moved = settings.model_copy(update={"port": 8011, "callbacks_file":
                                            ROOT / "callbacks.yaml"})
        services = build_services(engine, moved, FrozenClock(OPEN_TIME))
        assert services.callbacks is not None
        dialer = services.callbacks.dialer
        assert isinstance(dialer, LocalDialer) and dialer.base_url == "http://127.0.0.1:8011"
    finally:
        engine.dispose()
