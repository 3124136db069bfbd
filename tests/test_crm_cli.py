"""``ivr crm`` as an operator uses it: import, show, merge, unmerge, demo-data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crm_sync import demo
from ivr.cli import main

ROWS = [
    {"id": "T1", "name": "Dana Cohen", "phone": "050-123-4567", "account_number": "100100",
     "tier": "premium"},
    {"id": "T2", "name": "Dan Cohen", "phone": "052-987-6543", "account_number": "100200"},
    {"id": "T3", "name": "Broken", "phone": "12"},
]


@pytest.fixture
def crm_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no .env, no crm/ folder: defaults
    monkeypatch.setenv("IVR_DATABASE_URL", database_url)
    monkeypatch.setenv("IVR_LOG_LEVEL", "WARNING")
    path = tmp_path / "tlv.csv"
    demo.write_csv(path, [{**dict.fromkeys(demo.CUSTOMER_COLUMNS, ""), **r} for r in ROWS],
                   demo.CUSTOMER_COLUMNS)
    return path


def test_import_prints_the_report_with_rejected_lines(
        crm_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crm", "import", str(crm_env), "--source", "branch-tlv"]) == 0
    out = capsys.readouterr().out
    assert "created 2, updated 0, merged 0, unchanged 0, rejected 1" in out
    assert f"rejected {crm_env}:4: id T3: bad phone in 'phone'" in out
    assert main(["crm", "import", str(crm_env), "--source", "branch-tlv", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["unchanged"], report["rejected"]) == (2, 1)


def test_show_merge_and_unmerge(crm_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["crm", "import", str(crm_env), "--source", "branch-tlv"])
    capsys.readouterr()
    assert main(["crm", "show", "+972 50 123 4567"]) == 0
    out = capsys.readouterr().out
    assert "Dana Cohen" in out and "100100" in out and "T1" in out
    assert main(["crm", "show", "100200", "--json"]) == 0
    dan = json.loads(capsys.readouterr().out)[0]
    assert dan["name"] == "Dan Cohen"
    dana_id = 3 - dan["id"]

    assert main(["crm", "merge", str(dana_id), str(dan["id"]), "--reason", "test"]) == 0
    assert main(["crm", "show", f"#{dan['id']}", "--json"]) == 0  # follows the merge
    capsys.readouterr()
    assert main(["crm", "show", "0529876543", "--json"]) == 0
    merged = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in merged] == [dana_id]
    assert len(merged[0]["sources"]) == 2

    assert main(["crm", "unmerge", str(dana_id), "--record", "branch-tlv:T2"]) == 0
    capsys.readouterr()
    assert main(["crm", "show", "0529876543", "--json"]) == 0
    split = json.loads(capsys.readouterr().out)
    assert split[0]["name"] == "Dan Cohen" and split[0]["id"] != dana_id


def test_operator_mistakes_exit_1_with_a_reason(crm_env: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crm", "show", "050-000-0000"]) == 1
    assert "no customer" in capsys.readouterr().err
    assert main(["crm", "import", str(tmp_path / "missing.csv"), "--source", "x"]) == 1
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "m.yaml"
    bad.write_text("source: branch-tlv\nid: id\nphones: mobile\n", encoding="utf-8")
    assert main(["crm", "import", str(crm_env), "--source", "branch-tlv",
                 "--mapping", str(bad)]) == 1
    assert f"{bad}:3:1: phones: Input should be a valid list" in capsys.readouterr().err
    other = tmp_path / "other.yaml"
    other.write_text("source: billing\nid: id\n", encoding="utf-8")
    assert main(["crm", "import", str(crm_env), "--source", "branch-tlv",
                 "--mapping", str(other)]) == 1
    assert "maps source 'billing'" in capsys.readouterr().err
    assert main(["crm", "unmerge", "1", "--record", "no-colon"]) == 1
    assert "expected SOURCE:ID" in capsys.readouterr().err
    assert main(["crm", "merge", "1", "1"]) == 1
    assert "itself" in capsys.readouterr().err


def test_demo_data_loads_overlapping_sources(crm_env: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "demo"
    assert main(["crm", "demo-data", "--customers", "40", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "demo data: 40 people across 4 sources" in out
    assert "billing customers: created" in out
    assert "tickets incidents: created" in out
    assert sorted(p.name for p in out_dir.glob("billing.*.csv")) == [
        "billing.customers.csv", "billing.interactions.csv"]
    # Loading it again (dates move with the clock) makes nobody new.
    assert main(["crm", "demo-data", "--customers", "40"]) == 0
    out = capsys.readouterr().out
    again = [line for line in out.splitlines() if ", rejected " in line]
    assert len(again) == 11  # customers of 4 sources, incidents of 3, interactions of 4
    assert all(": created 0, " in line for line in again)
    assert "callers to try with `ivr simulate --from NUMBER`:" in out
    assert "has an open incident" in out


def test_a_file_in_another_encoding_is_refused_clearly_then_read(
        crm_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "old-export.csv"
    path.write_bytes("id,name,phone\nW1,דנה כהן,050-123-4567\n".encode("cp1255"))
    assert main(["crm", "import", str(path), "--source", "legacy"]) == 1
    err = capsys.readouterr().err
    assert "not utf-8-sig text" in err and "--encoding cp1255" in err
    assert main(["crm", "import", str(path), "--source", "legacy", "--encoding", "nope"]) == 1
    assert "unknown text encoding 'nope'" in capsys.readouterr().err
    assert main(["crm", "import", str(path), "--source", "legacy",
                 "--encoding", "cp1255"]) == 0
    assert "created 1" in capsys.readouterr().out
    assert main(["crm", "show", "0501234567", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "דנה כהן"
