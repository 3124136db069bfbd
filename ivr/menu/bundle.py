"""A menu bundle: every menu file of a directory, checked together, with one version id.

A file refused for its own errors takes its menu out (or its last good version stays); the
files that refer to that menu are told once that they were not checked against it, not
that the menu is unknown, and an entry menu whose file was refused says so.

A call is pinned to the bundle version it started on. Versions are content hashes, so any
process can rebuild a version from its stored sources (the ``menu_versions`` table) and a
reload never breaks a call in flight.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ivr.menu.checks import check_bundle
from ivr.menu.cost import EndCost, budget_problems, menu_costs
from ivr.menu.loader import LoadedMenu, Problem, load_menu_file, load_menu_text, menu_files
from ivr.menu.model import PLACEHOLDER, BranchNode, Prompt, QueueNode
from ivr.menu.recordings import play_durations


@dataclass(frozen=True)
class MenuBundle:
    version: str
    menus: Mapping[str, LoadedMenu]

    def sources(self) -> dict[str, dict[str, str]]:
        return {name: {"file": str(lm.path), "text": lm.text} for name, lm in self.menus.items()}

    @cached_property
    def attributes_used(self) -> frozenset[str]:
        """The caller attributes its conditions test and its prompts speak (a call's edge
        skips working out a costly fact no menu reads)."""
        used: set[str] = set()
        for lm in self.menus.values():
            for node in lm.menu.nodes.values():
                if isinstance(node, BranchNode):
                    used.update(br.when.attribute for br in node.branches)
                elif isinstance(node, QueueNode):
                    used.update(rule.when.attribute for rule in node.priority)
                for attr in ("prompt", "no_input_prompt", "invalid_prompt"):
                    prompt = getattr(node, attr, None)
                    if isinstance(prompt, Prompt) and prompt.say is not None:
                        for text in prompt.say.values():
                            used.update(m.group(1).partition(":")[0]
                                        for m in PLACEHOLDER.finditer(text))
        return frozenset(used)


def bundle_version(menus: Mapping[str, LoadedMenu]) -> str:
    payload = json.dumps(sorted((n, lm.text) for n, lm in menus.items()), ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)
    kept_previous: list[str] = field(default_factory=list)
    refused: dict[str, list[Problem]] = field(default_factory=dict)
    warnings: list[Problem] = field(default_factory=list)
    fatal: str | None = None
    # The refused file that ``fatal`` follows from (the entry menu's), if it does.
    fatal_cause: str | None = None
    # What the menus cost the caller (``ivr.menu.cost``): seconds of speech before each
    # queue, transfer and hang-up, per start menu and language.
    caller_time: list[EndCost] = field(default_factory=list)

    @property
    def problems(self) -> list[Problem]:
        """Every problem once, file by file, each file's in line order."""
        return sorted({p for ps in self.refused.values() for p in ps} | set(self.warnings))

    def as_dict(self) -> dict[str, object]:
        return {
            "loaded": self.loaded,
            "kept_previous": self.kept_previous,
            "refused": {f: [str(p) for p in sorted(set(self.refused[f]))]
                        for f in sorted(self.refused)},
            "warnings": [str(p) for p in self.warnings],
            "fatal": self.fatal,
            "caller_time": [c.as_dict() for c in self.caller_time],
        }


def assemble(
    parsed: list[tuple[Path, LoadedMenu | None, list[Problem]]],
    previous: MenuBundle | None,
    entry: str,
) -> tuple[MenuBundle | None, LoadReport]:
    """Combine parsed files into a bundle: refused files keep their last good version."""
    report = LoadReport()
    candidate: dict[str, LoadedMenu] = {}
    by_file: dict[str, str] = {}
    for path, lm, problems in parsed:
        errors = [p for p in problems if p.severity == "error"]
        if lm is None or errors:
            report.refused[str(path)] = errors or problems
            continue
        if lm.name in candidate:
            report.refused[str(path)] = [Problem(
                str(path), 1, 1, "name",
                f"menu name {lm.name!r} is already used by {candidate[lm.name].path}")]
            continue
        candidate[lm.name] = lm
        by_file[str(path)] = lm.name

    def name_of(file: str) -> str:
        if file in by_file:
            return by_file[file]
        # A file that did not parse: find the menu it held last time by its path.
        if previous is not None:
            for name, lm in previous.menus.items():
                if str(lm.path) == file:
                    return name
        return Path(file).stem

    def fall_back(file: str) -> None:
        name = name_of(file)
        candidate.pop(name, None)
        if previous is not None and name in previous.menus:
            candidate[name] = previous.menus[name]
            if name not in report.kept_previous:
                report.kept_previous.append(name)

    def drop(file: str) -> None:
        name = name_of(file)
        candidate.pop(name, None)
        if name in report.kept_previous:
            report.kept_previous.remove(name)

    for file in list(report.refused):
        fall_back(file)

    # Each round refuses a file (falling back to its previous version) or drops a previous
    # version that no longer fits; a file goes through each at most once.
    def unavailable() -> dict[str, str]:
        """Menus out of the candidate because their file was refused: name, file."""
        out: dict[str, str] = {}
        for file in sorted(report.refused):
            name = name_of(file)
            if name not in candidate:
                out.setdefault(name, file)
        return out

    for _ in range(2 * len(parsed) + 2):
        problems = check_bundle(candidate, unavailable())
        errors = [p for p in problems if p.severity == "error"]
        if not errors:
            # A refused file's kept version is not the file on disk: its warnings are not.
            report.warnings = [p for p in problems
                               if p.severity == "warning" and p.file not in report.refused]
            break
        for file in sorted({p.file for p in errors}):
            if file not in report.refused:
                report.refused[file] = [p for p in errors if p.file == file]
                fall_back(file)
            else:
                drop(file)
    else:  # pragma: no cover - the bound above is a proof, not a case
        report.fatal = "menus could not be made consistent"
        return None, report
    report.loaded = sorted(n for n in candidate if n not in report.kept_previous)
    if entry not in candidate:
        cause = unavailable().get(entry)
        if cause is not None:
            report.fatal = f"entry menu {entry!r} is not loaded: {Path(cause).name} has errors"
            report.fatal_cause = cause
        else:
            report.fatal = (f"entry menu {entry!r} is not loaded (menus available: "
                            f"{', '.join(sorted(candidate)) or 'none'})")
        return None, report
    durations, unknown = play_durations(candidate)
    report.caller_time = menu_costs(candidate, entry, durations)
    report.warnings = sorted({*report.warnings, *(
        p for p in (*unknown, *budget_problems(candidate, report.caller_time))
        if p.file not in report.refused)})
    return MenuBundle(bundle_version(candidate), dict(candidate)), report


def load_directory(directory: Path, entry: str, previous: MenuBundle | None = None,
                   ) -> tuple[MenuBundle | None, LoadReport]:
    if not directory.is_dir():
        report = LoadReport(fatal=f"menu directory {directory} does not exist")
        return None, report
    parsed = []
    for path in menu_files(directory):
        lm, problems = load_menu_file(path)
        parsed.append((path, lm, problems))
    return assemble(parsed, previous, entry)


def bundle_from_sources(sources: Mapping[str, Mapping[str, str]]) -> MenuBundle:
    """Rebuild a stored version exactly (it was checked when it went live)."""
    menus: dict[str, LoadedMenu] = {}
    for name, src in sources.items():
        lm, problems = load_menu_text(src["text"], Path(src["file"]))
        if lm is None:
            raise ValueError(f"stored menu {name!r} no longer parses: {problems[0]}")
        menus[name] = lm
    return MenuBundle(bundle_version(menus), menus)
