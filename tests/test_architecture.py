"""The import arrows of ARCHITECTURE.md, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports_of(package: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in (ROOT / package.replace(".", "/")).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        out[str(path.relative_to(ROOT))] = names
    return out


@pytest.mark.parametrize(("package", "forbidden"), [
    ("ivr.core", ("ivr.menu", "ivr.calls", "ivr.webhooks", "ivr.admin", "ivr.app", "ivr.cli",
                  "ivr.signatures", "ivr.simulate", "ivr.agents")),
    ("ivr.agents", ("ivr.webhooks", "ivr.admin", "ivr.app", "ivr.cli", "ivr.crm_api")),
    ("ivr.menu", ("fastapi", "starlette", "sqlalchemy", "httpx", "ivr.calls", "ivr.webhooks",
                  "ivr.app", "ivr.core.db")),
    ("ivr.calls", ("fastapi", "starlette", "ivr.webhooks", "ivr.admin", "ivr.app", "ivr.cli")),
    ("crm_sync", ("fastapi", "starlette", "ivr.webhooks", "ivr.admin", "ivr.app", "ivr.cli",
                  "ivr.calls", "ivr.menu", "ivr.agents", "callbacks")),
    ("callbacks", ("fastapi", "starlette", "ivr.webhooks", "ivr.admin", "ivr.app", "ivr.cli",
                   "ivr.calls", "ivr.menu", "ivr.agents", "crm_sync")),
])
def test_imports_flow_one_way(package: str, forbidden: tuple[str, ...]) -> None:
    files = imports_of(package)
    assert files, f"no module found in {package}"
    for file, names in files.items():
        bad = sorted(n for n in names for f in forbidden if n == f or n.startswith(f + "."))
        assert not bad, f"{file} imports {bad}"


def test_the_routing_decision_is_pure() -> None:
    """``ivr.agents.routing`` decides from plain values: no database, web or clock."""
    tree = ast.parse((ROOT / "ivr/agents/routing.py").read_text(encoding="utf-8"))
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert modules <= {"__future__", "collections.abc", "dataclasses", "datetime"}


def test_callbacks_import_the_core_only() -> None:
    """Of the project, ``callbacks`` imports ``ivr.core`` and itself, nothing else."""
    for file, names in imports_of("callbacks").items():
        project = {n for n in names if n.split(".")[0] in ("ivr", "crm_sync")}
        bad = sorted(n for n in project if n != "ivr.core" and not n.startswith("ivr.core."))
        assert not bad, f"{file} imports {bad}"


@pytest.mark.parametrize("module", ["policy", "hours", "sla"])
def test_the_sla_core_is_pure(module: str) -> None:
    """The SLA maths decides from plain values: no database, web, clock or project module
    but its own (``now`` is an argument)."""
    tree = ast.parse((ROOT / f"callbacks/{module}.py").read_text(encoding="utf-8"))
    modules = {n.module or "." for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    allowed = {"__future__", "collections.abc", "datetime", "functools", "math", "pathlib",
               "re", "typing", "zoneinfo", "holidays", "pydantic", "pydantic_core",
               "ruamel.yaml", "ruamel.yaml.error", "ruamel.yaml.nodes", "ruamel.yaml.reader",
               "callbacks.policy", "callbacks.hours"}
    assert modules <= allowed, sorted(modules - allowed)
