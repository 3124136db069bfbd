"""Syntax errors of the admins' YAML files in words they can act on: the parser stops where
the document stops making sense, often a line or many after the mistake, and says so in its
grammar's terms. ``explain`` looks at the text the way its author wrote it (lines,
indentation, keys, quotes, brackets) for the mistakes people make — a line indented more or
less than its neighbours, a tab, an unclosed bracket or quote, a missing colon, text that
needs quotes, a second document — and names the line to change and the change. What it does
not recognise keeps the parser's words and position. Used by ``ivr.core.yamlfile``; pure.

Its size (~750 lines) is a catalogue: one small function per kind of mistake, each with
the words an admin reads (tests/test_yaml_mistakes.py asserts every message).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

# ------------------------------------------------------------------- what went wrong
#
# The parser stops where the document stops making sense, which is often a line or many
# lines after the mistake, and says so in its grammar's terms. ``_explain`` looks at the
# text the way its author wrote it (lines, indentation, keys, quotes, brackets) for the
# mistakes people make, and names the line to change and the change. What it does not
# recognise keeps the parser's words and position.

_KEY = re.compile(r"""(?P<key>[^\s#'"\[\]{},&*!|>%@`][^#]*?|"(?:[^"\\]|\\.)*"|'(?:[^']|'')*')"""
                  r"[ \t]*:(?=[ \t]|$)")
_INDICATOR = {"*": "reads `*` there as an alias", "&": "reads `&` there as an anchor",
              "!": "reads `!` there as a tag", "%": "reads `%` there as a directive",
              "@": "keeps `@` there for itself", "`": "keeps a backquote there for itself"}


@dataclass(frozen=True)
class _Line:
    """One line as its author sees it. Columns are 0-based."""

    number: int  # 1-based
    text: str
    kind: Literal["content", "blank", "comment", "inside"]  # inside: a multi-line scalar's
    indent: int  # spaces before the first character (a tab stops the count)
    dashes: tuple[int, ...]  # columns of the list markers (``- ``) that start the line
    start: int  # column of what follows them: a key, or a value
    key: str | None  # the key as written, when the line holds ``key:``
    colon: int | None  # column of that key's ``:``
    value: int | None  # column where the key's value starts (None: nothing after ``key:``)

    @property
    def col(self) -> int:
        """Column of the line's key (or value): where a sibling key starts."""
        return self.start

    @property
    def word(self) -> str:
        """What the line starts with: its key, or the first word of its text."""
        if self.key is not None:
            return self.key
        return self.text[self.start:].split(" ", 1)[0].split("\t", 1)[0]


@dataclass(frozen=True)
class _Quote:
    char: str
    start: tuple[int, int]  # (0-based line, column) of the opening quote
    end: tuple[int, int] | None  # of the closing one; None: never closed


@dataclass(frozen=True)
class _Bracket:
    char: str
    start: tuple[int, int]
    end: tuple[int, int] | None


class _Text:
    """The lines of a document with its quoted texts and ``[ ]``/``{ }`` pairs, found the
    way YAML finds them (a quote starts a quoted text only where a value or key starts;
    ``#`` after a space starts a comment; a block scalar's lines are text)."""

    def __init__(self, text: str) -> None:
        self.raw = [line.rstrip("\r") for line in text.split("\n")]
        self.quotes: list[_Quote] = []
        self.brackets: list[_Bracket] = []
        self.lines: list[_Line] = []
        self.comments: dict[int, int] = {}  # line index: column of the ``#`` of its comment
        self._scan()

    def _scan(self) -> None:
        quote: tuple[str, int, int] | None = None
        stack: list[tuple[str, int, int]] = []
        block: int | None = None  # a block scalar's lines are indented more than this
        for i, s in enumerate(self.raw):
            body = s.lstrip(" ")
            indent = len(s) - len(body)
            if block is not None and (not body.strip() or indent > block):
                self.lines.append(self._line(i, "inside"))
                continue
            block = None
            if quote is not None:
                kind: Literal["content", "blank", "comment", "inside"] = "inside"
            elif not body.strip():
                self.lines.append(self._line(i, "blank"))
                continue
            elif body.lstrip(" \t").startswith("#"):
                self.lines.append(self._line(i, "comment"))
                continue
            else:
                kind = "content"
            self.lines.append(self._line(i, kind))
            j = 0 if quote is not None else indent
            token = quote is None  # where a key or value may start
            while j < len(s):
                c = s[j]
                nxt = s[j + 1:j + 2]
                if quote is not None:
                    if quote[0] == '"' and c == "\\":
                        j += 2
                        continue
                    if c == quote[0]:
                        if quote[0] == "'" and nxt == "'":
                            j += 2
                            continue
                        self.quotes.append(_Quote(quote[0], (quote[1], quote[2]), (i, j)))
                        quote, token = None, False
                    j += 1
                    continue
                if c in " \t":
                    j += 1
                    continue
                if c == "#" and (j == 0 or s[j - 1] in " \t"):
                    self.comments[i] = j
                    break
                if token and c in "-?" and nxt in ("", " ", "\t"):
                    j += 1
                    continue
                if token and c in "\"'":
                    quote = (c, i, j)
                elif token and c in "[{":
                    stack.append((c, i, j))
                elif stack and c in "]}":
                    opened = stack.pop()
                    self.brackets.append(_Bracket(opened[0], opened[1:], (i, j)))
                    token = False
                elif token and c in "|>" and not stack:
                    block = self.lines[-1].start if self.lines[-1].kind == "content" else indent
                    break
                elif (c == ":" and (nxt in ("", " ", "\t") or (stack and nxt in ",]}"))) or (
                        stack and c == ","):
                    token = True
                else:
                    token = False
                j += 1
        if quote is not None:
            self.quotes.append(_Quote(quote[0], (quote[1], quote[2]), None))
        self.brackets.extend(_Bracket(c, (i, j), None) for c, i, j in stack)
        self.brackets.sort(key=lambda b: b.start)

    def _line(self, i: int, kind: Literal["content", "blank", "comment", "inside"]) -> _Line:
        s = self.raw[i]
        body = s.lstrip(" ")
        indent = len(s) - len(body)
        dashes: list[int] = []
        j = indent
        while s[j:j + 1] == "-" and s[j + 1:j + 2] in ("", " "):
            dashes.append(j)
            j += 1
            while s[j:j + 1] == " ":
                j += 1
        key = colon = value = None
        m = _KEY.match(s, j) if kind == "content" else None
        if m:
            key, colon = m["key"].rstrip(), m.end() - 1
            rest = s[colon + 1:]
            after = len(rest) - len(rest.lstrip(" \t"))
            if rest.strip() and not rest.lstrip(" \t").startswith("#"):
                value = colon + 1 + after
        return _Line(i + 1, s, kind, indent, tuple(dashes), j, key, colon, value)

    @property
    def step(self) -> int:
        """How many spaces the file indents a block by (the commonest step; 2 if none)."""
        steps: dict[int, int] = {}
        content = [line for line in self.lines if line.kind == "content"]
        for line, nxt in pairwise(content):
            if line.key is not None and line.value is None and nxt.indent > line.col:
                steps[nxt.indent - line.col] = steps.get(nxt.indent - line.col, 0) + 1
        return max(steps, key=lambda k: (steps[k], -k)) if steps else 2

    def content_above(self, i: int) -> list[_Line]:
        """The content lines before line index i, nearest first."""
        return [line for line in reversed(self.lines[:i]) if line.kind == "content"]


def _spaces(n: int) -> str:
    return "no spaces (at the start of the line)" if n == 0 else (
        "1 space" if n == 1 else f"{n} spaces")


def _explain(t: _Text, exc: MarkedYAMLError) -> tuple[int, int, str] | None:
    """(line, column, what to change) for a syntax error a person made, or None."""
    mark = exc.problem_mark or exc.context_mark
    if mark is None or not t.lines:
        return None
    at = (min(mark.line, len(t.lines) - 1), mark.column)
    problem, context = exc.problem or "", exc.context or ""
    for explain in (_tab, _quote_not_closed, _bracket_not_closed, _same_line, _indicator,
                    _second_document, _document_start, _missing_colon, _mapping_value,
                    _hash_key, _indentation):
        found = explain(t, at, problem, context, exc)
        if found is not None:
            return found
    return None


def _tab(t: _Text, at: tuple[int, int], problem: str, context: str,
         exc: MarkedYAMLError) -> tuple[int, int, str] | None:
    """A tab in the indentation of a line up to where the parser stopped."""
    for line in t.lines[:at[0] + 1]:
        lead = line.text[:len(line.text) - len(line.text.lstrip(" \t"))]
        if line.kind == "content" and "\t" in lead:
            return line.number, lead.index("\t") + 1, "a tab character: indent with spaces"
    if "'\\t'" in problem:
        return at[0] + 1, at[1] + 1, "a tab character: indent with spaces"
    return None


def _quote_not_closed(t: _Text, at: tuple[int, int], problem: str, context: str,
                      exc: MarkedYAMLError) -> tuple[int, int, str] | None:
    """A quote opened on an earlier line that runs on to where the parser stopped: the text
    was not closed on its own line."""
    for q in t.quotes:
        if q.start[0] < at[0] and (q.end is None or (q.end[0] == at[0] and q.end < at)):
            if q.end is None:
                what = f"`{q.char}` opened on line {q.start[0] + 1} is never closed"
            else:
                what = f"`{q.char}` opened on line {q.start[0] + 1} is not closed on that line"
            return q.start[0] + 1, q.start[1] + 1, f"{what}: end the text with `{q.char}`"
    if "escape character" in problem and exc.problem_mark is not None:
        escape = t.raw[at[0]][at[1] - 1:at[1] + 1] if at[1] >= 1 else "\\"
        return (at[0] + 1, at[1], f"`{escape}` is no escape YAML knows: write `\\\\` for a "
                "backslash inside double quotes, or put the text in single quotes")
    return None


def _bracket_not_closed(t: _Text, at: tuple[int, int], problem: str, context: str,
                        exc: MarkedYAMLError) -> tuple[int, int, str] | None:
    """A ``[`` or ``{`` that is still open where the parser stopped, not closed on its own
    line; or one closed on its line with a ``: `` inside (a text that needs quotes)."""
    if "flow" not in context and "',' or" not in problem:
        return None
    open_ = [b for b in t.brackets if b.start <= at and (b.end is None or b.end > at)]
    if not open_:
        return None
    b = open_[-1]
    if b.end is not None and b.end[0] == b.start[0]:
        if "':'" in problem and at[0] == b.start[0]:
            return _quote_the_text(t, at[0], b.start[1] + 1, at[1])
        return None
    close, what = ("]", "the list") if b.char == "[" else ("}", "it")
    hash_ = t.comments.get(b.start[0])
    if hash_ is not None and close in t.raw[b.start[0]][hash_:]:
        return (b.start[0] + 1, hash_ + 1, f"`#` after a space starts a comment, which hides "
                f"the `{close}` after it: put the text that holds `#` in quotes (\"...\")")
    return (b.start[0] + 1, b.start[1] + 1,
            f"`{b.char}` opened on line {b.start[0] + 1} is never closed: end {what} with "
            f"`{close}`")


def _text_start(s: str, start: int, stop: int) -> int:
    """The column where the value holding column ``stop`` starts, searching from ``start``:
    after the first ``: ``, ``,``, ``[`` or ``{`` before ``stop``."""
    best = start
    for j in range(start, stop):
        if s[j] in ",[{" or (s[j] == ":" and s[j + 1:j + 2] in (" ", "\t")):
            best = j + 1
            break
    while best < len(s) and s[best] in " \t":
        best += 1
    return best


def _quote_the_text(t: _Text, i: int, start: int, colon: int) -> tuple[int, int, str]:
    """A ``: `` inside a text: the text needs quotes."""
    s = t.raw[i]
    line = t.lines[i]
    begin = _text_start(s, start, colon)
    if begin == line.value:
        key = line.key
    else:
        m = _KEY.match(s, start) if start < len(s) else None
        if m is None:
            m = _KEY.search(s, start, colon)
        key = m["key"].strip() if m else None
    whose = f" of `{key}`" if key else ""
    return (i + 1, begin + 1, f"`: ` inside the text{whose}: put the whole text in quotes "
            "(\"...\")")


def _same_line(t: _Text, at: tuple[int, int], problem: str, context: str,
               exc: MarkedYAMLError) -> tuple[int, int, str] | None:
    """More text after a quoted text or a ``{...}``/``[...]`` closed on the same line: the
    text began with a quote or a bracket and needs quotes around all of it."""
    if "expected <block end>" not in problem:
        return None
    i, col = at
    line = t.lines[i]
    if col <= line.start:
        return None
    glued = re.match(r"([^\s:]+)[ \t]+[\[{]", line.key or "")
    if glued:  # `speech {en: [x]}`: the key is "speech {en"
        return (line.number, line.start + len(glued[1]) + 1,
                f"`:` missing after `{glued[1]}`")
    where = f" of `{line.key}`" if line.key else ""
    for q in reversed(t.quotes):
        if q.start[0] == i and q.end is not None and q.end[0] == i and q.end[1] < col:
            inner = "\\\"" if q.char == '"' else "''"
            return (i + 1, q.start[1] + 1, f"the quoted text{where} ends at the `{q.char}` in "
                    f"column {q.end[1] + 1}, but the line goes on: put the whole text in "
                    f"quotes, writing a `{q.char}` inside it as `{inner}`")
    for b in reversed(t.brackets):
        if b.start[0] == i and b.end is not None and b.end[0] == i and b.end[1] < col:
            reads = "a list" if b.char == "[" else "a mapping"
            return (i + 1, b.start[1] + 1, f"the text{where} starts with `{b.char}`, which "
                    f"YAML reads as {reads}: put the text in quotes")
    return None


def _indicator(t: _Text, at: tuple[int, int], problem: str, context: str,
               exc: MarkedYAMLError) -> tuple[int, int, str] | None:
    """A text or key that starts with a character YAML gives a meaning (``*``, ``&``, ``@``
    ...)."""
    i, col = at
    s = t.raw[i]
    if "alias" in context or "alias" in problem:
        char = "*"
    elif "anchor" in context:
        char = "&"
    elif "cannot start any token" in problem and s[col:col + 1] in _INDICATOR:
        char = s[col]
    else:
        return None
    mark = exc.context_mark if context.startswith("while scanning an") else exc.problem_mark
    if mark is not None and mark.line < len(t.raw):
        i, col = mark.line, mark.column
        s = t.raw[i]
    if s[col:col + 1] != char:
        found = s.rfind(char, 0, col + 1)
        col = found if found >= 0 else col
    return _needs_quotes(i, col, char)


def _needs_quotes(i: int, col: int, char: str) -> tuple[int, int, str]:
    shown = "a backquote" if char == "`" else f"`{char}`"
    return (i + 1, col + 1, f"a text or key that starts with {shown} must be in quotes "
            f"(\"{char}...\"): YAML {_INDICATOR[char]}")


def _second_document(t: _Text, at: tuple[int, int], problem: str, context: str,
                     exc: MarkedYAMLError) -> tuple[int, int, str] | None:
    if "another document" not in problem:
        return None
    return (at[0] + 1, at[1] + 1, f"`{t.raw[at[0]].strip()[:3] or '---'}` starts a second "
            "document, but the file holds one: remove this line (or what follows it)")


def _colon_after(line: _Line) -> tuple[int, int, str]:
    """The ``:`` a key needs, or the space after it."""
    s, start = line.text, line.start
    word = line.word
    glued = re.match(r"([^\s:#]+):(\S)", s[start:])
    if glued:
        return (line.number, start + len(glued[1]) + 2,
                f"a space is missing after `{glued[1]}:`")
    return line.number, start + len(word) + 1, f"`:` missing after `{word}`"


def _missing_colon(t: _Text, at: tuple[int, int], problem: str, context: str,
                   exc: MarkedYAMLError) -> tuple[int, int, str] | None:
    if "could not find expected ':'" not in problem or exc.context_mark is None:
        return None
    line = t.lines[min(exc.context_mark.line, len(t.lines) - 1)]
    if line.kind != "content" or line.key is not None:
        return None
    first = line.text[line.start:line.start + 1]
    if first in _INDICATOR:  # `*:` is an alias named ":", not a key
        return _needs_quotes(line.number - 1, line.start, first)
    return _colon_after(line)


def _plain_value(line: _Line) -> bool:
    """A key whose value is a plain (unquoted, one-line so far) text."""
    if line.value is None:
        return False
    return line.text[line.value] not in "\"'[{|>&*!#"


@dataclass(frozen=True)
class _Fix:
    """A line to re-indent (to ``indent`` spaces), and what to tell its author."""

    line: _Line
    indent: int
    message: str
    score: int | None = None  # _score's, when known already (-1: no option parses)


def _reindent(text: str, indent: int) -> str:
    return " " * indent + text.lstrip(" ")


def _score(t: _Text, fix: _Fix, error: _Line) -> int | None:
    """None if the block around the fixed line and the line the parser stopped at still
    does not parse once the line is re-indented (or has a duplicate key); else how many
    blocks in it are indented unlike the rest of the file (a ``key:`` whose next line is
    not indented by the file's step): the fewer, the likelier the fix. The block is cut at
    the line above both that is indented less than all three indentations, and about 25
    lines after the error: parsing the whole of a long file for each guess would be slow."""
    low = min(fix.indent, fix.line.indent, error.indent)
    first = min(fix.line.number, error.number) - 1
    start = next((up.number - 1 for up in t.content_above(first) if up.indent < low), 0)
    floor = t.lines[start].indent if start else -1
    end = len(t.raw)
    for line in t.lines[error.number:error.number + 25]:
        if line.kind == "content" and line.indent <= floor:
            end = line.number - 1
            break
    else:
        later = [line for line in t.lines[error.number:error.number + 25]
                 if line.kind == "content"]
        if error.number + 25 < len(t.lines) and later:
            end = later[-1].number - 1
    lines = t.raw[start:end]
    at = fix.line.number - 1 - start
    if not 0 <= at < len(lines):
        return None
    lines[at] = _reindent(lines[at], fix.indent)
    text = "\n".join(lines) + "\n"
    yaml = YAML(typ="safe", pure=True)
    yaml.allow_duplicate_keys = False
    try:
        yaml.load(text)
    except (YAMLError, ReaderError):
        return None
    except Exception:  # noqa: S110 - a value the constructor refuses parses
        pass
    content = [line for line in _Text(text).lines if line.kind == "content"]
    return sum(1 for line, nxt in pairwise(content)
               if line.key is not None and line.value is None
               and nxt.indent - line.col not in ((0, t.step) if nxt.dashes else (t.step,)))


def _best(t: _Text, error: _Line, fixes: list[_Fix | None]) -> tuple[int, int, str] | None:
    """Of the fixes under which the document parses, the one that leaves it indented most
    like the rest of the file (the first of equals); none: the first one, as a guess."""
    found = [f for f in fixes if f is not None]
    best: tuple[int, _Fix] | None = None
    for fix in found:
        score = fix.score if fix.score is not None else _score(t, fix, error)
        if score is not None and score >= 0 and (best is None or score < best[0]):
            best = (score, fix)
    chosen = best[1] if best is not None else (found[0] if found else None)
    return None if chosen is None else (chosen.line.number, chosen.line.indent + 1,
                                        chosen.message)


def _mapping_value(t: _Text, at: tuple[int, int], problem: str, context: str,
                   exc: MarkedYAMLError) -> tuple[int, int, str] | None:
    """``mapping values are not allowed here``: a ``: `` inside a text, or a ``key:`` line
    that the parser read as more of the text above it: indented more than the line above,
    the line above moved left, or the line above lacks its ``:``."""
    if "mapping values are not allowed" not in problem:
        return None
    i, col = at
    line = t.lines[i]
    if line.kind == "content" and line.colon is not None and line.colon < col:
        return _quote_the_text(t, i, line.start, col)
    above = t.content_above(i)
    if not above:
        return None
    prev = above[0]
    # A text that already ran over several lines: find where it began.
    for nearer, farther in pairwise(above):
        if nearer.key is not None or nearer.dashes:
            break
        if (_plain_value(farther) or (farther.key is None and not farther.dashes)) and (
                nearer.indent > (farther.col if farther.key is not None else -1)):
            prev = farther
            continue
        break
    if prev.key is None and not prev.dashes:
        return _colon_after(prev)
    if prev.key is not None and _plain_value(prev) and line.col > prev.col:
        ours = [_first_child(t, prev, line), _indented_more(t, line, prev)]
        theirs = _moved_in(t, prev, line)
        before = t.content_above(prev.number - 1)
        legit = prev.col in (lv.col for lv in _levels(t, prev.number - 1, dash=False))
        if before and before[0].key is not None and before[0].value is not None and (
                before[0].col == line.col > prev.col) and not before[0].dashes:
            # The lines above and below are lined up, the one between is not: that one
            # moved left, or this one right (when the one between is where keys are).
            up = before[0]
            moved = (f"line {prev.number} is indented less than the lines around it: indent "
                     f"`{prev.key}` {_spaces(line.col)} like `{up.word}` on line {up.number}")
            if not legit:
                return prev.number, prev.indent + 1, moved
            return (line.number, line.indent + 1, _indented_more(t, line, prev).message
                    + f"; or, if line {prev.number} is the one out of place, indent "
                    f"`{prev.key}` {_spaces(line.col)} like `{up.word}` on line {up.number}")
        if legit:
            return _best(t, line, [*ours, *theirs])  # the line above is where keys are
        return _best(t, line, [*theirs, *ours])
    return None


def _parent(t: _Text, line: _Line) -> _Line | None:
    """The line whose key holds this one: the nearest above whose key is indented less."""
    for up in t.content_above(line.number - 1):
        if up.col < line.col:
            return up if up.key is not None and up.value is None else None
    return None


def _indented_more(t: _Text, line: _Line, sibling: _Line) -> _Fix:
    parent = _parent(t, sibling) if not sibling.dashes else None
    fix = (f"`{line.word}` belongs under `{parent.key}` (line {parent.number}), indented"
           if parent is not None else f"indent `{line.word}`")
    return _Fix(line, sibling.col, f"line {line.number} is indented more than the line above "
                f"it: {fix} {_spaces(sibling.col)} like `{sibling.word}` on line "
                f"{sibling.number}")


def _moved_in(t: _Text, moved: _Line, after: _Line) -> list[_Fix]:
    """``moved`` (a ``key: text`` line) is indented less than the lines before and after
    it: it was moved left. Where it goes: with ``after`` when the line above it opens a
    block (it was that block's first line), else at a level of the lines above."""
    above = t.content_above(moved.number - 1)
    if moved.dashes or not above:
        return []
    up = above[0]
    shift = after.indent - moved.indent if after.dashes else after.col - moved.col
    if up.key is not None and up.value is None and after.col - up.col == t.step and (
            moved.indent <= up.indent):
        return [_Fix(moved, moved.indent + shift, f"line {moved.number} is indented less than "
                     f"the lines around it: `{moved.word}` belongs under `{up.key}` (line "
                     f"{up.number}), indented {_spaces(moved.indent + shift)} like "
                     f"`{after.word}` on line {after.number}")]
    if up.indent <= moved.indent:
        return []
    scored = [(score, lv) for lv in reversed(_levels(t, moved.number - 1, dash=False))
              if lv.col >= after.indent and lv.col > moved.col
              and (score := _score(t, _Fix(moved, lv.col, ""), after)) is not None]
    if not scored:
        return []
    least = min(score for score, _ in scored)
    valid = [lv for score, lv in scored if score == least][:2]
    said = ", or ".join(f"{_spaces(lv.col)} like `{lv.word}` on line {lv.number}"
                        for lv in valid)
    return [_Fix(moved, valid[0].col, f"line {moved.number} is indented less than the lines "
                 f"around it: indent `{moved.word}` {said}", score=least)]


def _hash_key(t: _Text, at: tuple[int, int], problem: str, context: str,
              exc: MarkedYAMLError) -> tuple[int, int, str] | None:
    """``#:``: a key ``#`` written without quotes is a comment, and its lines float."""
    if "expected <block end>" not in problem:
        return None
    first = exc.context_mark.line if exc.context_mark is not None else 0
    for line in t.lines[first:at[0]]:
        if line.kind == "comment" and re.match(r"\s*#\s*:", line.text):
            return (line.number, line.indent + 1, "the key `#` must be in quotes (\"#\": ...):"
                    " YAML reads `#` and the rest of the line as a comment")
    return None


def _levels(t: _Text, i: int, dash: bool) -> list[_Line]:
    """The lines above line index i whose key (or list marker) column a line may start at,
    deepest first: the line above, then each line indented less than the ones after it."""
    out: list[_Line] = []
    limit = 1 << 30
    for up in t.content_above(i):
        cols = ([up.col] if up.key is not None or not up.dashes else []) + list(
            reversed(up.dashes))
        for c in cols:
            if c < limit:
                is_dash = c in up.dashes
                if is_dash == dash:
                    out.append(up if not is_dash else _dash_at(up, c))
                limit = c
        if limit == 0:
            break
    return out


def _dash_at(line: _Line, col: int) -> _Line:
    """The line seen as its list marker at ``col`` (for naming: "the `-` on line n")."""
    return _Line(line.number, line.text, line.kind, col, (), col, None, None, None)


def _indentation(t: _Text, at: tuple[int, int], problem: str, context: str,
                 exc: MarkedYAMLError) -> tuple[int, int, str] | None:
    """``expected <block end>``: the line the parser stopped at is indented as no line above
    it; or the line above it is (the first line of a block, not lined up with the next), or
    a line moved left (a node at column 0) so that the lines after it no longer fit. Each
    guess is tried: the first under which the document parses is the answer."""
    if "expected <block end>" not in problem:
        return None
    line = t.lines[at[0]]
    if line.kind != "content":
        return None
    above = t.content_above(line.number - 1)
    prev = above[0] if above else None
    if prev is not None and prev.key is None and not prev.dashes and line.indent > prev.indent:
        return _colon_after(prev)  # `"1"` alone on its line, its keys below it
    dash = bool(line.dashes) and line.indent == line.dashes[0]
    levels = _levels(t, line.number - 1, dash)
    if dash and not levels:
        if prev is not None and prev.key is not None and prev.value is None:
            to = prev.col + t.step
            return (line.number, line.indent + 1, f"line {line.number} is indented "
                    f"{_spaces(line.indent)}: this list item belongs under `{prev.key}` "
                    f"(line {prev.number}), indented {_spaces(to)}")
        return (line.number, line.indent + 1, "a list item (`-`) where the lines above hold "
                "`key: value`: put the list under a key that ends with `:`")
    deeper = [lv for lv in levels if lv.col > line.indent and lv.key is not None]
    opener = next((up for up in above if up.indent < line.indent), None)
    heads = [prev, deeper[-1] if deeper else None]  # the first line of the block above ...
    if opener is not None and opener.key is not None and opener.value is None:
        heads.append(next(x for x in t.lines[opener.number:] if x.kind == "content"))
    fixes = [  # ... or the first one of the block it is in; else a line moved left
        _first_child(t, head, line) for i, head in enumerate(heads) if head not in heads[:i]]
    fixes.append(_moved_left(t, line, above))
    if line.indent not in (lv.col for lv in levels):
        fixes.append(_options(t, line, levels, dash))
    return _best(t, line, fixes)


def _options(t: _Text, line: _Line, levels: list[_Line], dash: bool) -> _Fix | None:
    """``line`` at an indentation no line above has: the nearest levels deeper and
    shallower, those under which the document parses (or both)."""
    n = line.indent
    deeper = [lv for lv in levels if lv.col > n]
    shallower = [lv for lv in levels if lv.col < n]
    options = sorted([*deeper[-1:], *shallower[:1]], key=lambda lv: (abs(lv.col - n), -lv.col))
    if not options:
        return None
    scored = [(score, lv) for lv in options
              if (score := _score(t, _Fix(line, lv.col, ""), line)) is not None]
    least = min((score for score, _ in scored), default=-1)
    valid = [lv for score, lv in scored if score == least]
    said = [f"{_spaces(lv.col)} like " + (f"the `-` on line {lv.number}" if lv.key is None
                                          and lv.text[lv.col:lv.col + 1] == "-"
                                          else f"`{lv.word}` on line {lv.number}")
            for lv in valid or options]
    what = "this list item" if dash else f"`{line.word}`"
    return _Fix(line, (valid or options)[0].col, f"line {line.number} is indented "
                f"{_spaces(n)}, which matches no line above it: indent {what} "
                f"{', or '.join(said)}", score=least)


def _first_child(t: _Text, first: _Line | None, line: _Line) -> _Fix | None:
    """``first``, the first line of a block, is not lined up with ``line`` after it."""
    if first is None or (line.dashes and not first.dashes):
        return None
    above = t.content_above(first.number - 1)
    if not above or above[0].indent >= first.indent:
        return None
    parent = above[0]
    if parent.key is None or parent.value is not None:
        return None
    shift = (line.indent - first.indent) if line.dashes else (line.col - first.col)
    new = first.indent + shift

    def usual(indent: int) -> bool:  # as the file indents a block (a list: or not at all)
        return indent - parent.col == t.step or (bool(first.dashes) and indent == parent.col)

    if shift == 0 or usual(first.indent) or not usual(new):
        return None
    what = (f"its `-` does not line up with the `-` on line {line.number}" if line.dashes
            else f"`{first.word}` does not line up with `{line.word}` on line {line.number}")
    return _Fix(first, new, f"line {first.number} is indented {_spaces(first.indent)}, so "
                f"{what}: indent it {_spaces(new)}")


def _moved_left(t: _Text, line: _Line, above: list[_Line]) -> _Fix | None:
    """A key indented less than the lines around it (a node moved to column 0): the lines
    at ``line``'s indentation went on above it (or the line above it opens a block), and
    the lines after it no longer fit."""
    n = line.col
    if line.dashes:
        return None
    mover = next((up for up in above if up.indent < n), None)
    if mover is None or mover.key is None or mover.dashes:
        return None
    before = t.content_above(mover.number - 1)
    sibling = parent = None
    for up in before:
        if up.indent < n:
            parent = up if up.key is not None and up.value is None else None
            break
        if up.col == n and up.key is not None and sibling is None:
            sibling = up
    opener = before[0] if before and before[0].key is not None and before[0].value is None \
        and n - before[0].col == t.step else None
    if sibling is None and opener is None:
        return None
    parent = parent if sibling is not None else opener
    like = sibling or line
    if mover.value is not None and before and before[0].value is not None and (
            before[0].key is not None and before[0].col >= n):
        # A `key: value` line moved left: it went with the one above it.
        return _Fix(mover, before[0].col, f"line {mover.number} is indented less than the "
                    f"lines around it: indent `{mover.key}` {_spaces(before[0].col)} like "
                    f"`{before[0].word}` on line {before[0].number}")
    # Where its own lines say it goes: a step less than they are indented.
    children = [up for up in above if up.number > mover.number]
    to = children[-1].indent - t.step if children and mover.value is None else n
    found: _Line | None = like
    if to != n:
        found = None
        for up in before:
            if up.col == to and up.key is not None:
                found = up
            elif up.indent < to:
                parent = up if up.key is not None and up.value is None else None
                if parent is None or (found is None and (
                        up is not before[0] or to - up.col != t.step)):
                    return None  # nothing at `to` under it, and it is no first line either
                break
        else:
            return None
    under = f"`{mover.key}` belongs under `{parent.key}` (line {parent.number}), " if (
        parent is not None) else f"`{mover.key}` belongs "
    like_it = f" like `{found.word}` on line {found.number}" if found is not None else ""
    return _Fix(mover, to, f"line {mover.number} is indented less than the lines around it: "
                f"{under}indented {_spaces(to)}{like_it}")


def _document_start(t: _Text, at: tuple[int, int], problem: str, context: str,
                    exc: MarkedYAMLError) -> tuple[int, int, str] | None:
    """The file's first key indented: the lines after it, at the first column, no longer
    fit."""
    if "expected '<document start>'" not in problem:
        return None
    first = next((line for line in t.lines if line.kind == "content"), None)
    line = t.lines[at[0]]
    if first is None or first.indent == 0 or line.indent >= first.indent:
        return None
    return (first.number, first.indent + 1, f"line {first.number} is indented "
            f"{_spaces(first.indent)}, but `{line.word}` on line {line.number} is not: the "
            f"file's first key sets its indentation; remove the spaces before `{first.word}`")


def explain(text: str, exc: MarkedYAMLError) -> tuple[int, int, str] | None:
    """The (line, column, message) of the change that fixes ``text``'s syntax error, or
    None when the mistake is not one this module recognises."""
    return _explain(_Text(text), exc)
