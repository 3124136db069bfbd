"""The import arrows of ARCHITECTURE.md, checked on the source: the layers, the pure cores,
and no import cycle between any two modules of the product."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ivr", "crm_sync", "callbacks")

#: The features' inner modules, lowest first: a module may import its own feature and the
#: features before it, never one after it (``ivr.core`` is below them all).
FEATURES = ("ivr.core", "ivr.i18n", "ivr.auth", "crm_sync", "ivr.menu", "ivr.calls",
            "ivr.agents", "ivr.surveys", "callbacks", "ivr.transfers", "ivr.retention",
            "ivr.reports", "ivr.observability")
#: Edge modules: routes, commands and worker jobs. They sit above the composition root.
EDGE_NAMES = {"endpoints", "webhooks", "webhook", "cli", "tasks", "dependencies"}
ROOT_MODULE = "ivr.services"  # the composition root
ASSEMBLERS = {"ivr.app", "ivr.cli", "ivr.worker"}  # mount routes, commands, jobs


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def graph() -> dict[str, set[str]]:
    """Every product module and the product modules it imports (anywhere in the file,
    function-level imports included)."""
    modules = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    out: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            for target in targets:
                t = target
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and modules[t].name != "__init__.py":
                    found.add(t)
        out[name] = found
    return out


def is_edge(module: str) -> bool:
    return (module.rpartition(".")[2] in EDGE_NAMES or module.startswith("ivr.simulator")
            or module in ASSEMBLERS) and module not in ("ivr.core.jobs",)


def feature_of(module: str) -> str | None:
    for f in sorted(FEATURES, key=len, reverse=True):
        if module == f or module.startswith(f + "."):
            return f
    return None


def test_the_graph_is_read() -> None:
    g = graph()
    assert {"ivr.app", "ivr.services", "callbacks.service", "ivr.agents.service",
            "crm_sync.store", "ivr.core.db"} <= set(g)
    assert "callbacks.service" in g["ivr.services"]


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components over the module graph: every one is a single
    module."""
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert cycles == []


def test_inner_modules_import_only_lower_features() -> None:
    """A feature's models, repository, service, … import the core, their own feature and
    the features below it; never an edge, the composition root or a feature above."""
    bad = []
    for module, imports in graph().items():
        own = feature_of(module)
        if own is None or is_edge(module):
            continue
        rank = FEATURES.index(own)
        for t in imports:
            other = feature_of(t)
            if is_edge(t) or t == ROOT_MODULE or other is None \
                    or FEATURES.index(other) > rank:
                bad.append(f"{module} -> {t}")
    assert sorted(bad) == []


def test_the_composition_root_builds_from_inner_modules() -> None:
    assert not [t for t in graph()[ROOT_MODULE] if is_edge(t)]


def test_nothing_imports_the_assemblers() -> None:
    """``ivr.app``, ``ivr.cli`` and ``ivr.worker`` mount each feature's routes, commands and
    jobs; no module of a feature reaches back into them (the CLI may start the server and the
    worker)."""
    bad = [f"{m} -> {t}" for m, imports in graph().items() for t in imports
           if t in ASSEMBLERS and m not in ASSEMBLERS]
    assert bad == []


@pytest.mark.parametrize(("package", "forbidden"), [
    ("ivr.core", ("fastapi", "starlette", "ivr.menu", "ivr.calls", "ivr.agents", "ivr.auth",
                  "ivr.services", "crm_sync", "callbacks")),
    ("crm_sync", ("starlette", "ivr.calls", "ivr.menu", "ivr.agents", "callbacks")),
])
def test_lower_packages_do_not_reach_up(package: str, forbidden: tuple[str, ...]) -> None:
    for module, imports in graph().items():
        if not (module == package or module.startswith(package + ".")):
            continue
        if package == "crm_sync" and is_edge(module):
            continue  # the CRM's routes and commands use the web kit and the services
        names = imports | raw_imports(module)
        bad = sorted(n for n in names for f in forbidden if n == f or n.startswith(f + "."))
        assert not bad, f"{module} imports {bad}"


def raw_imports(module: str) -> set[str]:
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


PURE_MENU = ("model", "loader", "checks", "bundle", "engine", "hours", "voices", "registry")


@pytest.mark.parametrize("module", PURE_MENU)
def test_the_menu_core_is_pure(module: str) -> None:
    """The menu language and engine: no web, no database, no HTTP client."""
    names = raw_imports(f"ivr.menu.{module}")
    bad = sorted(n for n in names for f in ("fastapi", "starlette", "sqlalchemy", "httpx",
                                            "ivr.calls", "ivr.core.db", "ivr.services")
                 if n == f or n.startswith(f + "."))
    assert not bad


def test_the_routing_decision_is_pure() -> None:
    """``ivr.agents.routing`` decides from plain values: no database, web or clock."""
    assert raw_imports("ivr.agents.routing") <= {"__future__", "collections.abc",
                                                 "dataclasses", "datetime"}


@pytest.mark.parametrize("module", ["policy", "hours", "sla"])
def test_the_sla_core_is_pure(module: str) -> None:
    """The SLA maths decides from plain values: no database, web, clock or project module
    but its own and the pure core kits (``now`` is an argument)."""
    modules = raw_imports(f"callbacks.{module}")
    allowed = {"__future__", "collections.abc", "datetime", "math", "pathlib",
               "re", "typing", "zoneinfo", "holidays", "pydantic", "pydantic_core",
               "callbacks.policy", "ivr.core.yamlfile", "ivr.core.calendar"}
    assert modules <= allowed, sorted(modules - allowed)


def test_the_agents_queue_does_not_know_callbacks() -> None:
    """Callbacks plug into the queue through ``ivr.agents.ports``: no module of
    ``ivr.agents`` imports ``callbacks``."""
    bad = [f"{m} -> {t}" for m, imports in graph().items() if m.startswith("ivr.agents")
           for t in imports if t.startswith("callbacks")]
    assert bad == []
