"""``ivr agents`` and the simulator's agent path: the README demo, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, insert

from crm_sync.models import Customer, CustomerPhone
from ivr.core.clock import SystemClock
from tests.conftest import TOKEN
from tests.test_processes import always_open, server


def ivr(database_url: str, menus_dir: Path, *argv: str, stdin: str = "",
        **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "IVR_DATABASE_URL": database_url, "IVR_MENUS_DIR": str(menus_dir),
            "IVR_TWILIO_AUTH_TOKEN": TOKEN, **env}
    return subprocess.run([sys.executable, "-m", "ivr.cli", *argv], input=stdin, env=full,
                          capture_output=True, text=True, timeout=120, check=False)


def test_add_list_passwd_and_mistakes(database_url: str, menus_dir: Path) -> None:
    out = ivr(database_url, menus_dir, "agents", "add", "noa", "--name", "נועה",
              "--queues", "billing,operator", "--number", "052-765-4321", "--password-stdin",
              stdin="correct horse\n")
    assert out.returncode == 0, out.stderr
    assert "number +972527654321" in out.stdout
    again = ivr(database_url, menus_dir, "agents", "add", "noa", "--name", "x",
                "--password-stdin", stdin="correct horse\n")
    assert (again.returncode, again.stderr.strip()) == (1, "error: an agent 'noa' exists "
                                                           "already")
    short = ivr(database_url, menus_dir, "agents", "add", "avi", "--name", "Avi",
                "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    listed = json.loads(ivr(database_url, menus_dir, "agents", "list", "--json").stdout)
    assert [(a["username"], a["queues"], a["state"]) for a in listed] == [
        ("noa", ["billing", "operator"], "offline")]
    assert "password_hash" not in listed[0]
    changed = ivr(database_url, menus_dir, "agents", "passwd", "noa", "--password-env", "PW",
                  PW="another one")
    assert changed.returncode == 0
    nobody = ivr(database_url, menus_dir, "agents", "passwd", "zed", "--password-env", "PW",
                 PW="another one")
    assert nobody.returncode == 1 and "no agent 'zed'" in nobody.stderr


@pytest.mark.slow
def test_the_readme_demo_call_reaches_the_demo_agent(database_url: str,
                                                     menus_dir: Path) -> None:
    always_open(menus_dir)
    demo = ivr(database_url, menus_dir, "agents", "demo", "--if-empty",
               IVR_DEMO_AGENT_PASSWORD="demo-password")
    assert demo.returncode == 0, demo.stderr
    assert "support-open-incidents" in demo.stdout
    engine = create_engine(database_url)
    now = SystemClock().now()
    with engine.begin() as conn:
        conn.execute(insert(Customer), {"id": 1, "name": "דנה כהן", "status": "active",
                                        "preferred_language": "he-IL", "lineage": {},
                                        "created_at": now, "updated_at": now})
        conn.execute(insert(CustomerPhone), {"customer_id": 1, "e164": "+972501234567"})
    engine.dispose()
    with server(database_url, menus_dir) as (url, _proc):
        r = httpx.post(f"{url}/agent/login", json={"username": "noa",
                                                   "password": "demo-password"})
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        assert httpx.post(f"{url}/agent/state", json={"state": "available"},
                          headers=auth).status_code == 200
        sim = ivr(database_url, menus_dir, "simulate", "--url", url, "--from",
                  "050-123-4567", "--press", "0", "--wait-for-agent", "20",
                  "--dial-status", "completed", "--talk", "0")
        assert sim.returncode == 0, sim.stderr
        assert "  ↪  an agent is free: leaving the queue" in sim.stdout
        # The caller joins the call's conference (the default), where Noa is rung in; her
        # participant joining is the answer the simulator plays.
        sid = sim.stdout.split("(CallSid ", 1)[1].split(")", 1)[0]
        assert f"  ☎  dialling conference:call-{sid} (answer: completed)" in sim.stdout
        assert "  ☏  the agent answered; talking for 0 s" in sim.stdout
        me = httpx.get(f"{url}/agent/me", headers=auth).json()
        assert (me["state"], me["current_call_sid"]) == ("wrap_up", sid)
