"""Read menu YAML with line numbers kept, validate it, and report problems people can act on.

Every problem names the file, the 1-based line and column, the path of the bad value
(``nodes.main.timeout``) and what was expected. YAML is parsed with ruamel.yaml's safe
round-trip loader: no object construction, positions of every key and value kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from ivr.menu.model import Menu

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

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {where}{self.message}"


@dataclass
class Positions:
    """(line, column), 1-based, of every key and value in a YAML document, by path."""

    keys: dict[PathT, tuple[int, int]] = field(default_factory=dict)
    values: dict[PathT, tuple[int, int]] = field(default_factory=dict)

    def of(self, path: PathT, *, key: bool = False) -> tuple[int, int]:
        """The position of the value (or key) at path, or of its nearest existing ancestor."""
        for cut in range(len(path), -1, -1):
            sub = path[:cut]
            first, second = (self.keys, self.values) if key or cut < len(path) else (
                self.values, self.keys)
            if sub in first:
                return first[sub]
            if sub in second:
                return second[sub]
        return (1, 1)


# An explicit tag YAML resolves itself (!!int, !!map, ...) never reaches _plain; !!str does.
_STR_TAG = "tag:yaml.org,2002:str"


class _TagError(Exception):
    def __init__(self, tag: str, path: PathT) -> None:
        super().__init__(tag)
        self.tag, self.path = tag, path


def _plain(node: Any, path: PathT, pos: Positions) -> Any:
    """Convert ruamel's round-trip containers into plain data, recording positions. A value
    with a tag of its own (``!!python/object/apply:...``, ``!custom``) is refused: the
    loader never builds objects from tags, and a menu holds plain values only."""
    tag = getattr(getattr(node, "tag", None), "value", None)
    if tag is not None:
        if tag == _STR_TAG and isinstance(node, TaggedScalar):
            return str(node.value)
        raise _TagError(tag, path)
    if isinstance(node, CommentedMap):
        pos.values.setdefault(path, (node.lc.line + 1, node.lc.col + 1))
        out: dict[Any, Any] = {}
        for key, value in node.items():
            kl, kc = node.lc.key(key)
            k: Any = key
            if isinstance(key, int) and not isinstance(key, bool):
                # Keys are what a caller presses: keep `01:` as "01", as the admin typed it.
                k = str(int(key)).zfill(getattr(key, "_width", None) or 0)
                if k in out:
                    raise _DuplicateKeyError(k, kl + 1, kc + 1)
            else:
                k = str(key)  # text, or a date such as a special day's
                if k in out:
                    raise _DuplicateKeyError(k, kl + 1, kc + 1)
            child = (*path, str(k))
            pos.keys[child] = (kl + 1, kc + 1)
            vl, vc = node.lc.value(key)
            pos.values[child] = (vl + 1, vc + 1)
            out[k] = _plain(value, child, pos)
        return out
    if isinstance(node, CommentedSeq):
        pos.values.setdefault(path, (node.lc.line + 1, node.lc.col + 1))
        items = []
        for i, value in enumerate(node):
            child = (*path, i)
            il, ic = node.lc.item(i)
            pos.keys[child] = (il + 1, ic + 1)
            items.append(_plain(value, child, pos))
        return items
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


class _DuplicateKeyError(Exception):
    def __init__(self, key: str, line: int, column: int) -> None:
        super().__init__(key)
        self.key, self.line, self.column = key, line, column


def parse_yaml(text: str, filename: str) -> tuple[Any, Positions, list[Problem]]:
    yaml = YAML(typ="rt")  # round-trip loader: safe (no arbitrary objects) and keeps positions
    yaml.allow_duplicate_keys = False
    pos = Positions()
    try:
        doc = yaml.load(text)
    except DuplicateKeyError as exc:
        mark = exc.problem_mark
        key = _duplicate_key_name(exc)
        return None, pos, [Problem(filename, mark.line + 1, mark.column + 1, "",
                                   f"duplicate key {key!r}: each key may appear only once "
                                   f"in a mapping (first defined on line "
                                   f"{exc.context_mark.line + 1})")]
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(x for x in (exc.context, exc.problem) if x)
        return None, pos, [Problem(filename, line, col, "", f"invalid YAML: {what}")]
    except ReaderError as exc:  # a character YAML does not allow (a control character)
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        return None, pos, [Problem(filename, line, column, "",
                                   f"invalid YAML: {str(exc).splitlines()[0]}")]
    except YAMLError as exc:
        return None, pos, [Problem(filename, 1, 1, "", f"invalid YAML: {exc}")]
    except ValueError as exc:  # a date YAML recognises that the calendar has not: 2026-13-01
        line, col, value = _bad_timestamp(text)
        what = f"{value!r} is no date or time ({exc})" if value is not None else str(exc)
        return None, pos, [Problem(filename, line, col, "", f"invalid YAML: {what}")]
    try:
        return _plain(doc, (), pos), pos, []
    except _DuplicateKeyError as exc:
        return None, pos, [Problem(filename, exc.line, exc.column, "",
                                   f"duplicate key {exc.key!r}: 1 and \"1\" are the same key; "
                                   "each key may appear only once in a mapping")]
    except _TagError as exc:
        line, col = pos.of(exc.path)
        shown = exc.tag.replace("tag:yaml.org,2002:", "!!")
        return None, pos, [Problem(filename, line, col, dotted(exc.path),
                                   f"YAML tag {shown!r} is not allowed: a menu holds plain "
                                   "text, numbers, lists and mappings")]


def _bad_timestamp(text: str) -> tuple[int, int, str | None]:
    """Where the first timestamp-looking scalar that is no real date or time is."""
    stack = [YAML(typ="rt").compose(text)]
    while stack:
        node = stack.pop(0)
        if isinstance(node, ScalarNode):
            if str(node.tag) == "tag:yaml.org,2002:timestamp":
                try:
                    YAML(typ="rt").load(node.value)
                except ValueError:
                    return node.start_mark.line + 1, node.start_mark.column + 1, node.value
        elif isinstance(node, MappingNode):
            stack[:0] = [part for pair in node.value for part in pair]
        elif isinstance(node, SequenceNode):
            stack[:0] = list(node.value)
    return 1, 1, None


def _duplicate_key_name(exc: DuplicateKeyError) -> str:
    problem = exc.problem or ""
    # ruamel says: found duplicate key "X" with value "Y" (original value: "Z")
    start = problem.find('"')
    end = problem.find('"', start + 1)
    return problem[start + 1:end] if start >= 0 and end > start else "?"


def dotted(path: PathT) -> str:
    return ".".join(str(p) for p in path)


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
            out.append(Problem(filename, line, col, dotted(epath), _message(err)))
        return None, sorted(set(out))
    name = menu.name or path.stem
    return LoadedMenu(name=name, path=path, text=text, menu=menu, positions=pos), []


def load_menu_file(path: Path, display: str | None = None,
                   ) -> tuple[LoadedMenu | None, list[Problem]]:
    filename = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem(filename, 1, 1, "", f"not UTF-8 text: {exc.reason}")]
    except OSError as exc:
        return None, [Problem(filename, 1, 1, "", f"cannot read file: {exc.strerror}")]
    return load_menu_text(text, path, filename)


def menu_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir()
                  if p.suffix in (".yaml", ".yml") and p.is_file() and not p.name.startswith("."))
