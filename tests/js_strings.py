"""The string literals of a JavaScript file, for the check that the console has no
untranslated text (tests/test_i18n_console.py). A small scanner, not a parser: it skips
comments and regular expressions and yields each quoted string and each static part of a
template literal (the text between its ``${...}``), with its line."""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z_$][\w$]*")
_NUMBER = re.compile(r"\d[\w.]*")
# After these a "/" starts a regular expression, not a division.
_BEFORE_REGEX = set("(,=:[!&|?{};+-*%<>~^") | {
    "", "return", "typeof", "case", "do", "else", "in", "of", "new", "delete", "void",
    "throw", "yield", "await"}


def literals(src: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    i, n = 0, len(src)
    last = ""  # the last significant token (a value is "a")
    templates: list[int] = []  # brace depth inside each open template's ${ }

    def line(at: int) -> int:
        return src.count("\n", 0, at) + 1

    def template_part(start: int, j: int) -> int:
        """Read a template's text from j to the next ${ or closing backtick."""
        nonlocal last
        buf: list[str] = []
        while True:
            if src[j] == "\\":
                buf.append(src[j:j + 2])
                j += 2
            elif src[j] == "`":
                out.append((line(start), "".join(buf)))
                last = "a"
                return j + 1
            elif src.startswith("${", j):
                out.append((line(start), "".join(buf)))
                templates.append(0)
                last = "("
                return j + 2
            else:
                buf.append(src[j])
                j += 1

    while i < n:
        c = src[i]
        if c.isspace():
            i += 1
        elif src.startswith("//", i):
            end = src.find("\n", i)
            i = n if end < 0 else end
        elif src.startswith("/*", i):
            end = src.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c in "\"'":
            j = i + 1
            buf: list[str] = []
            while src[j] != c:
                step = 2 if src[j] == "\\" else 1
                buf.append(src[j:j + step])
                j += step
            out.append((line(i), "".join(buf)))
            i, last = j + 1, "a"
        elif c == "`":
            i = template_part(i, i + 1)
        elif c == "}" and templates and templates[-1] == 0:
            templates.pop()
            i = template_part(i, i + 1)
        elif c in "{}":
            if templates:
                templates[-1] += 1 if c == "{" else -1
            i, last = i + 1, c
        elif c == "/" and last in _BEFORE_REGEX:
            j, in_class = i + 1, False
            while in_class or src[j] != "/":
                if src[j] == "\\":
                    j += 1
                elif src[j] == "[":
                    in_class = True
                elif src[j] == "]":
                    in_class = False
                j += 1
            j += 1
            while j < n and src[j].isalpha():
                j += 1
            i, last = j, "a"
        elif m := _NAME.match(src, i):
            i, last = m.end(), m.group(0)
        elif m := _NUMBER.match(src, i):
            i, last = m.end(), "a"
        else:
            i, last = i + 1, "a" if c in ")]" else c
    return out
