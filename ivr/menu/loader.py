"""Read menu YAML with line numbers kept, validate it, and report problems people can act on.

Every problem names the file, the 1-based line and column, the path of the bad value
(``nodes.main.timeout``) and what was expected. YAML is read by ``ivr.core.yamlfile``
(ruamel.yaml's safe round-trip loading, positions of every key and value kept; tags,
duplicate keys and anchors refused); its refusals are worded here as a menu's problems.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from ivr.core.yamlfile import Positions, YamlError, dotted, load_yaml, read_text
from ivr.menu.model import Menu

__all__ = ["LoadedMenu", "PathT", "Positions", "Problem", "dotted", "load_menu_file",
           "load_menu_text", "menu_files", "parse_yaml"]

Severity = Literal["error", "warning"]
PathT = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    column: int
    path: str
    message: str
    severity: Severity = "error"
    # A problem that follows from another file's errors: that file (as ``file`` names it).
    cause: str = ""

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {where}{self.message}"


def _menu_key(key: Any) -> str:
    """Keys are text: what a caller presses stays as the admin typed it (``01:`` is "01");
    a date (a special day's) or anything else is its text."""
    if isinstance(key, int) and not isinstance(key, bool):
        return str(int(key)).zfill(getattr(key, "_width", None) or 0)
    return str(key)


def _refusal(err: YamlError) -> Problem:
    """A refusal of ``ivr.core.yamlfile`` in the words a menu's problems have always had."""
    message, path = err.message, ""
    if err.kind == "syntax":  # explained by the kit where it recognises the mistake
        message = f"invalid YAML: {err.problem}"
    elif err.kind == "date":
        message = ("invalid YAML: " + (f"{err.value!r} is no date or time ({err.problem})"
                                       if err.value is not None else err.problem))
    elif err.kind == "same_key":
        message = (f"duplicate key {err.key!r}: 1 and \"1\" are the same key; each key may "
                   "appear only once in a mapping")
    elif err.kind == "unreadable":
        message = f"cannot read file: {err.problem}"
    elif err.kind in ("tag", "anchor"):
        path = dotted(err.path)
    return Problem(err.file, err.line, err.column, path, message)


def parse_yaml(text: str, filename: str) -> tuple[Any, Positions, list[Problem]]:
    try:
        loaded = load_yaml(text, filename, keys=_menu_key, holds="a menu")
    except YamlError as err:
        return None, Positions(), [_refusal(err)]
    return loaded.data, loaded.positions, []


_MESSAGES = {
    "missing": "required key is missing",
    "string_type": "expected text",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "dict_type": "expected a mapping (key: value lines)",
    "list_type": "expected a list",
}


def _error_path(err: Any, data: Any) -> PathT:
    """Map a pydantic error location onto the YAML document path.

    Discriminated unions and before-validators add entries (the tag, 'function-after')
    that are not keys in the document; walk the data and keep only real keys."""
    out: list[str | int] = []
    cur = data
    pending_tag: object = None  # a node's type: pydantic puts it in the location after the name
    for part in err["loc"]:
        if pending_tag is not None and part == pending_tag:
            pending_tag = None
            continue
        pending_tag = None
        in_map = isinstance(cur, dict) and (
            part in cur or (isinstance(part, str) and _int_key(cur, part)))
        if in_map:
            key = part if part in cur else int(part)
            out.append(str(part))
            cur = cur[key]
            if isinstance(cur, dict) and len(out) == 2 and out[0] == "nodes":
                pending_tag = cur.get("type")
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            out.append(part)
            cur = cur[part]
        elif err["type"] == "missing" and part == err["loc"][-1]:
            out.append(str(part))
    if err["type"] == "unknown_key":
        out.append(err["ctx"]["key"])
    elif err["type"] == "union_tag_invalid" and isinstance(cur, dict) and "type" in cur:
        out.append("type")
    return tuple(out)


def _int_key(mapping: dict[Any, Any], part: str) -> bool:
    return part.isdigit() and int(part) in mapping


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "missing":
        return _MESSAGES["missing"]
    if kind == "union_tag_invalid":
        return (f"unknown node type {err['ctx']['tag']!r}; expected one of: "
                f"{err['ctx']['expected_tags']}")
    if kind == "union_tag_not_found":
        return ("a node needs a 'type' (menu, message, hours, branch, queue, transfer, "
                "hangup, submenu, identify)")
    if kind == "literal_error":
        return f"expected one of {err['ctx']['expected']}, got {err['input']!r}"
    if kind in ("string_pattern_mismatch",):
        return f"{err['input']!r} is not valid here (expected to match {err['ctx']['pattern']})"
    if kind in ("greater_than_equal", "less_than_equal"):
        return f"{err['msg'][0].lower()}{err['msg'][1:]}, got {err['input']!r}"
    if kind in _MESSAGES:
        return f"{_MESSAGES[kind]}, got {err['input']!r}"
    return str(err["msg"])


def _node_out_of_place(err: Any, epath: PathT, data: dict[Any, Any]) -> str:
    """A node (a mapping with a ``type``) at the top of the file: its first line was moved
    to column 0 (the last node; any other one breaks the YAML, see ``ivr.core.yamlfile``)."""
    if err["type"] != "unknown_key" or len(epath) != 1:
        return ""
    value = data.get(epath[0])
    if not isinstance(value, dict) or "type" not in value:
        return ""
    return "; it looks like a node: indent it under nodes: like the other nodes"


@dataclass
class LoadedMenu:
    name: str
    path: Path
    text: str
    menu: Menu
    positions: Positions

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def load_menu_text(text: str, path: Path, display: str | None = None,
                   ) -> tuple[LoadedMenu | None, list[Problem]]:
    """Parse and validate one menu file's text (no cross-file checks)."""
    filename = display or str(path)
    data, pos, problems = parse_yaml(text, filename)
    if problems:
        return None, problems
    if not isinstance(data, dict):
        return None, [Problem(filename, 1, 1, "", "expected a menu: a mapping with "
                              "languages, start, fallback and nodes")]
    try:
        menu = Menu.model_validate(data)
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            epath = _error_path(err, data)
            line, col = pos.of(epath, key=err["type"] in ("unknown_key", "missing"))
            out.append(Problem(filename, line, col, dotted(epath),
                               _message(err) + _node_out_of_place(err, epath, data)))
        return None, sorted(set(out))
    name = menu.name or path.stem
    return LoadedMenu(name=name, path=path, text=text, menu=menu, positions=pos), []


def load_menu_file(path: Path, display: str | None = None,
                   ) -> tuple[LoadedMenu | None, list[Problem]]:
    filename = display or str(path)
    try:
        text = read_text(path, filename)
    except YamlError as err:
        return None, [_refusal(err)]
    return load_menu_text(text, path, filename)


def menu_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir()
                  if p.suffix in (".yaml", ".yml") and p.is_file() and not p.name.startswith("."))
