"""The admin's YAML files (menus, ``callbacks.yaml``, ``crm/*.yaml``): one way to read them,
one way to refuse them.

``load_yaml`` parses with ruamel.yaml's round-trip composer and constructor (safe: no
object is ever built from a tag) and returns plain data (dict, list, str, int, float,
bool, None, dates) with the 1-based position of every key and value (``Positions``).
Whatever it refuses is a ``YamlError`` whose ``str()`` is ``file:line:col: a.b: message``
(the path of the bad value, then what was expected), with the parts kept apart so that a
loader can word the message its own way:

* ``syntax``: not YAML; also a character YAML does not allow (``\\x08``), a second
  document, an alias to no anchor. The parser says where it gave up and in its own terms
  ("while parsing a block mapping expected <block end>, but found '<block mapping
  start>'"); the refusal says what the person who wrote the file did and where, in the
  line they must change: a line indented more (or less) than its neighbours, a node moved
  to column 0, a tab, a ``[`` or a quote never closed, a ``:`` missing after a key, a
  ``: `` or a leading ``*``, ``{``, ``@`` ... in a text that needs quotes (``problem``;
  the parser's words stay in ``context`` and ``parser``). See "What went wrong" below;
* ``date``: a scalar YAML reads as a date or time that the calendar has not (2026-13-01);
* ``duplicate``: a key written twice in one mapping (``same_key``: two keys that the
  loader's ``keys`` function reads as one, such as a menu's ``1`` and ``"1"``);
* ``tag``: a value (or key) with an explicit tag of its own: ``!!python/object/apply:``,
  ``!custom``, ``!!str {a: 1}``. ``!!str`` on a scalar is plain text and passes; tags YAML
  resolves itself (``!!int 5``, ``!!map``) leave no trace in the data and pass;
* ``anchor``: any anchor (``&name``), hence any alias (``*name``) and merge key (``<<:``).
  The bound on alias expansion ("billion laughs") is the simplest one: none at all. These
  files are small and written by hand, so nothing is lost. The anchor is found on the
  composed node tree, where an alias is the shared node itself (nothing is expanded yet),
  before anything is constructed or walked, and is reported where it is defined;
* ``unreadable`` / ``encoding``: ``read_text`` could not read the file, or it is not UTF-8.

Order: syntax errors first (the whole document is composed), then anchors, then what the
constructor refuses (duplicates, dates), then tags and same keys in document order.
The core imports nothing from the project.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from ivr.core.yaml_explain import explain

KeyPath = tuple[Any, ...]  # the keys (as in the data) and list indices down to a value
Kind = Literal["unreadable", "encoding", "syntax", "date", "duplicate", "same_key", "tag",
               "anchor"]


def dotted(path: KeyPath) -> str:
    return ".".join(str(p) for p in path)


class YamlError(ValueError):
    """A refused file: ``file:line:col: a.b: message`` (no ``a.b: `` when there is no path).

    ``problem`` is the bare finding in words the file's author can act on (a syntax error
    or a duplicate key explained, the date's error, the strerror, the tag, the anchor's
    name ...), what a loader shows after "not valid YAML: "; ``context`` and ``parser``
    are ruamel's own context and problem of a syntax error or duplicate key, ``key``
    the duplicated key, ``first_line`` where it was first defined, ``value`` the scalar
    that is no date, ``key_at`` the (line, column) of the key or list item that holds a
    tagged value (None at the top of the document)."""

    def __init__(self, file: str, line: int, column: int, message: str, *, kind: Kind,
                 path: KeyPath = (), problem: str = "", context: str | None = None,
                 parser: str = "", key: str | None = None, first_line: int | None = None,
                 value: str | None = None, key_at: tuple[int, int] | None = None) -> None:
        self.file, self.line, self.column, self.message = file, line, column, message
        self.kind, self.path, self.problem, self.context = kind, path, problem, context
        self.parser = parser
        self.key, self.first_line, self.value, self.key_at = key, first_line, value, key_at
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{dotted(self.path)}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"

    @property
    def what(self) -> str:
        """The parser's own words for a syntax error (context and problem), as one sentence."""
        return " ".join(x for x in (self.context, self.parser) if x)


@dataclass
class Positions:
    """(line, column), 1-based, of every key and value in a YAML document, by path. A list
    item's position is under ``keys`` (where the item starts)."""

    keys: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    values: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def of(self, path: KeyPath, *, key: bool = False) -> tuple[int, int]:
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


@dataclass(frozen=True)
class Loaded:
    data: Any
    positions: Positions


def read_text(path: Path, file: str | None = None) -> str:
    """A file's text; ``unreadable`` or ``encoding`` (at 1:1) when it cannot be had."""
    file = file or str(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(file, 1, 1, f"not UTF-8 text: {exc.reason}", kind="encoding",
                        problem=exc.reason) from None
    except OSError as exc:
        raise YamlError(file, 1, 1, f"cannot read: {exc.strerror}", kind="unreadable",
                        problem=str(exc.strerror)) from None


def _scalar(node: Any) -> Any:
    """ruamel's scalar types (ScalarFloat, ScalarInt, LiteralScalarString ...) as Python's."""
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


# Documents read before, by their text and how they were read: a file read again unchanged
# (a reload after a save that changed another file, a second process's services, each
# test's app) is not parsed again. Parsing is ruamel's pure-Python composer: 40 ms for the
# demo's main menu on a quiet 2-core host, where a copy of the answer takes 0.2 ms.
# Only documents that load are kept, and only the last ``_KEPT``.
_KEPT = 32
_read: OrderedDict[tuple[str, str, Callable[[Any], Any], str], Loaded] = OrderedDict()
_read_lock = threading.Lock()


def load_yaml(text: str, file: str, *, keys: Callable[[Any], Any] = _scalar,
              holds: str = "this file") -> Loaded:
    """Plain data and positions of one YAML document, or a ``YamlError``.

    ``keys`` turns each mapping key (after the tag check; ruamel's own object, so a
    number's ``_width`` is there) into the data's key; two keys it makes equal are a
    ``same_key`` refusal. ``holds`` names the file in the tag refusal ("a menu").

    The same text read the same way again gives an equal answer of its own (callers may
    change it) without parsing it again."""
    key = (text, file, keys, holds)
    with _read_lock:
        known = _read.get(key)
        if known is not None:
            _read.move_to_end(key)
    if known is None:
        known = _parse(text, file, keys, holds)
        with _read_lock:
            _read[key] = known
            while len(_read) > _KEPT:
                _read.popitem(last=False)
    return Loaded(copy.deepcopy(known.data),
                  Positions(dict(known.positions.keys), dict(known.positions.values)))


def _parse(text: str, file: str, keys: Callable[[Any], Any], holds: str) -> Loaded:
    yaml = YAML(typ="rt")  # round-trip: safe (plain data only) and keeps positions
    yaml.allow_duplicate_keys = False
    try:
        node = yaml.compose(text)
    except (YAMLError, ValueError) as exc:
        raise _refusal(exc, file, text, None) from None
    raw = None
    if node is not None:
        _refuse_anchors(node, file)
        try:
            raw = yaml.constructor.construct_document(node)
        except (YAMLError, ValueError) as exc:
            raise _refusal(exc, file, text, node) from None
    positions = Positions()
    return Loaded(_Walk(file, keys, holds, positions).plain(raw, ()), positions)


def _refusal(exc: Exception, file: str, text: str, node: Node | None) -> YamlError:
    """What ruamel raised, as a YamlError."""
    if isinstance(exc, DuplicateKeyError):
        mark = exc.problem_mark
        name = _duplicate_key_name(exc)
        first = _first_defined(node, exc.context_mark, name)
        what = (f"duplicate key {name!r}: each key may appear only once in a mapping (first "
                f"defined on line {first})")
        return YamlError(file, mark.line + 1, mark.column + 1, what, kind="duplicate",
                         key=name, first_line=first, problem=what, context=exc.context,
                         parser=exc.problem or "")
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return _syntax(file, line, col, exc.problem or "", exc.context,
                       explain(text, exc))
    if isinstance(exc, ReaderError):  # a character YAML does not allow (a control one)
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return _syntax(file, line, column, str(exc).splitlines()[0], None, (
            line, column, f"an invisible control character (U+{code:04X}) that YAML does not "
            "allow: delete it (retype the text around it)"))
    if isinstance(exc, YAMLError):
        return _syntax(file, 1, 1, str(exc), None, None)
    # A ValueError: a date YAML recognises that the calendar has not (2026-13-01).
    line, col, value = _bad_timestamp(node)
    what = f"{value!r} is no date or time ({exc})" if value is not None else str(exc)
    return YamlError(file, line, col, f"not valid YAML: {what}", kind="date",
                     problem=str(exc), value=value)


def _syntax(file: str, line: int, column: int, parser: str, context: str | None,
            explained: tuple[int, int, str] | None) -> YamlError:
    """A syntax error: explained (at the line to change) when a mistake people make is
    recognised, else in the parser's words where it gave up."""
    said = " ".join(x for x in (context, parser) if x)
    if explained is not None:
        line, column, said = explained
    return YamlError(file, line, column, f"not valid YAML: {said}", kind="syntax",
                     problem=said, context=context, parser=parser)


def _refuse_anchors(root: Node, file: str) -> None:
    """The first anchor in document order (it comes before any alias to it): refused."""
    stack: list[tuple[Node, KeyPath]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if getattr(node, "anchor", None):
            mark = node.start_mark
            raise YamlError(file, mark.line + 1, mark.column + 1,
                            f"YAML anchor '&{node.anchor}' is not allowed: write the value "
                            "out where it is used (anchors, aliases and merge keys are "
                            "refused)", kind="anchor", path=path, problem=str(node.anchor))
        children: list[tuple[Node, KeyPath]] = []
        if isinstance(node, MappingNode):
            for key, value in node.value:
                name = key.value if isinstance(key, ScalarNode) else "?"
                children += [(key, (*path, name)), (value, (*path, name))]
        elif isinstance(node, SequenceNode):
            children = [(item, (*path, i)) for i, item in enumerate(node.value)]
        stack.extend(reversed(children))


def _bad_timestamp(root: Node | None) -> tuple[int, int, str | None]:
    """Where the first timestamp-looking scalar that is no real date or time is."""
    stack = [root]
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


def _first_defined(root: Node | None, mapping: Any, name: str) -> int:
    """The line of the first ``name`` key of the mapping that starts at ``mapping`` (ruamel
    marks the mapping, not the key's first place)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, MappingNode):
            if (node.start_mark.line, node.start_mark.column) == (mapping.line, mapping.column):
                for key, _ in node.value:
                    if isinstance(key, ScalarNode) and key.value == name:
                        return int(key.start_mark.line) + 1
            stack.extend(part for pair in node.value for part in pair)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return int(mapping.line) + 1


def _duplicate_key_name(exc: DuplicateKeyError) -> str:
    problem = exc.problem or ""
    # ruamel says: found duplicate key "X" with value "Y" (original value: "Z")
    start = problem.find('"')
    end = problem.find('"', start + 1)
    return problem[start + 1:end] if start >= 0 and end > start else "?"


# An explicit tag YAML resolves itself (!!int, !!map, ...) leaves no trace; !!str does.
_STR_TAG = "tag:yaml.org,2002:str"


def _tag(node: Any) -> str | None:
    tag = getattr(getattr(node, "tag", None), "value", None)
    return None if tag is None else str(tag)


def _at(zero_based: tuple[int, int] | None, fallback: tuple[int, int]) -> tuple[int, int]:
    """ruamel's 0-based (line, column) as 1-based, or ``fallback`` (where the container is)
    when ruamel kept none."""
    return (zero_based[0] + 1, zero_based[1] + 1) if zero_based else fallback


@dataclass
class _Walk:
    file: str
    keys: Callable[[Any], Any]
    holds: str
    pos: Positions

    def refuse_tag(self, tag: str, path: KeyPath, at: tuple[int, int],
                   key_at: tuple[int, int] | None) -> YamlError:
        shown = tag.replace("tag:yaml.org,2002:", "!!")
        return YamlError(self.file, at[0], at[1],
                         f"YAML tag {shown!r} is not allowed: {self.holds} holds plain text, "
                         "numbers, lists and mappings", kind="tag", path=path, problem=shown,
                         key_at=key_at)

    def plain(self, node: Any, path: KeyPath) -> Any:
        """ruamel's round-trip containers as plain data, positions recorded on the way."""
        tag = _tag(node)
        if tag is not None:
            if tag == _STR_TAG and isinstance(node, TaggedScalar):
                return str(node.value)
            raise self.refuse_tag(tag, path, self.pos.of(path), self.pos.keys.get(path))
        if isinstance(node, CommentedMap):
            here = (node.lc.line + 1, node.lc.col + 1)
            self.pos.values.setdefault(path, here)
            out: dict[Any, Any] = {}
            for key, value in node.items():
                where = node.lc.key(key)  # None in an !!omap: ruamel keeps no positions there
                at = _at(where, here)
                k = self.key(key, path, at)
                child = (*path, k)
                if k in out:
                    raise YamlError(self.file, *at, f"duplicate key {k!r}: two keys read as "
                                    "one; each key may appear only once in a mapping",
                                    kind="same_key", path=child, key=str(k), problem=str(k))
                if where is not None:
                    self.pos.keys[child] = at
                    self.pos.values[child] = _at(node.lc.value(key), here)
                out[k] = self.plain(value, child)
            return out
        if isinstance(node, CommentedSeq):
            here = (node.lc.line + 1, node.lc.col + 1)
            self.pos.values.setdefault(path, here)
            items = []
            for i, value in enumerate(node):
                child = (*path, i)
                where = node.lc.item(i)
                if where is not None:
                    self.pos.keys[child] = _at(where, here)
                items.append(self.plain(value, child))
            return items
        return _scalar(node)

    def key(self, key: Any, path: KeyPath, at: tuple[int, int]) -> Any:
        tag = _tag(key)
        if tag is not None:
            if tag == _STR_TAG and isinstance(key, TaggedScalar):
                key = str(key.value)
            else:
                name = key.value if isinstance(key, TaggedScalar) else "?"
                raise self.refuse_tag(tag, (*path, name), at, at)
        return self.keys(key)


class StrictConfig(BaseModel):
    """The base of a config file's models (callbacks.yaml, surveys.yaml, wrapup.yaml):
    frozen, and an unknown key is refused with the keys that are allowed (a typo reads
    ``unknown key 'promt'; expected one of: …`` at its ``file:line:col``)."""

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = sorted(cls.model_fields)
            for key in data:
                if key not in allowed:
                    raise PydanticCustomError(
                        "unknown_key", "unknown key '{key}'; expected one of: {allowed}",
                        {"key": str(key), "allowed": ", ".join(allowed)})
        return data
