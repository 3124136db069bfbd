"""Semantic checks over loaded menus: what a schema cannot see.

* references to nodes, menus and schedules that do not exist;
* nodes no caller can reach (warning);
* loops a caller can never leave: every chain of automatic moves (messages, branches,
  hours, sub-menus, and the failure paths taken when a caller presses nothing or a transfer
  or queue fails) must end at a hangup; a cycle of them traps the caller;
* languages: a declared language without prompt text, a voice that cannot speak it;
* values Twilio would reject (Say text length);
* a prompt text cut short by `` #`` (YAML reads the rest of the line as a comment);
* caller attributes the IVR never sets, in a condition or a prompt's placeholder (a
  misspelt ``birthday`` would make a branch that is never taken, or a silent gap).

A sub-menu whose menu is in a file refused for its own errors is not reported as an
unknown menu: the file that refers to it gets one line saying it was not checked against
that file (``unavailable``), and the other file's errors say the rest.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ivr.menu.loader import LoadedMenu, PathT, Problem, dotted
from ivr.menu.model import (
    CALLER_ATTRIBUTES,
    MAX_AUTOMATIC_HOPS,
    PLACEHOLDER,
    PLACEHOLDER_FORMATS,
    SAY_MAX_CHARS,
    BranchNode,
    HoursNode,
    IdentifyNode,
    Menu,
    MenuNode,
    MessageNode,
    Node,
    Prompt,
    QueueNode,
    SubmenuNode,
    TransferNode,
)
from ivr.menu.voices import voice_languages

NodeRef = tuple[str, str]  # (menu name, node name)
_ATTRIBUTE = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class Edge:
    target: str
    path: PathT  # where the reference is written
    automatic: bool  # taken without the caller choosing (silence, failures, branches)


def node_edges(name: str, node: Node, menu: Menu) -> Iterator[Edge]:
    base: PathT = ("nodes", name)
    if isinstance(node, MenuNode):
        for key, opt in node.options.items():
            yield Edge(opt.next, (*base, "options", key, "next"), False)
        if node.on_failure:
            yield Edge(node.on_failure, (*base, "on_failure"), True)
        else:
            yield Edge(menu.fallback, ("fallback",), True)
    elif isinstance(node, MessageNode):
        yield Edge(node.next, (*base, "next"), True)
    elif isinstance(node, HoursNode):
        for attr in ("open", "closed", "holiday", "emergency"):
            target = getattr(node, attr)
            if target:
                yield Edge(target, (*base, attr), True)
    elif isinstance(node, BranchNode):
        for i, br in enumerate(node.branches):
            yield Edge(br.next, (*base, "branches", i, "next"), True)
        yield Edge(node.default, (*base, "default"), True)
    elif isinstance(node, IdentifyNode):
        # Both automatic: an identified caller skips the question.
        yield Edge(node.identified, (*base, "identified"), True)
        if node.failed:
            yield Edge(node.failed, (*base, "failed"), True)
        else:
            yield Edge(menu.fallback, ("fallback",), True)
    elif isinstance(node, QueueNode | TransferNode):
        if node.on_failure:
            yield Edge(node.on_failure, (*base, "on_failure"), True)
        else:
            yield Edge(menu.fallback, ("fallback",), True)


def _problem(lm: LoadedMenu, path: PathT, message: str, severity: str = "error",
             *, key: bool = False) -> Problem:
    line, col = lm.positions.of(path, key=key)
    return Problem(str(lm.path), line, col, dotted(path), message,
                   "warning" if severity == "warning" else "error")


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _prompts(name: str, node: Node) -> Iterator[tuple[PathT, Prompt]]:
    base: PathT = ("nodes", name)
    for attr in ("prompt", "no_input_prompt", "invalid_prompt"):  # every node kind's prompts
        p = getattr(node, attr, None)
        if isinstance(p, Prompt):
            yield (*base, attr), p


def not_checked(lm: LoadedMenu, path: PathT, broken: str) -> Problem:
    """``lm`` refers to a menu whose file (``broken``) has errors of its own."""
    file = str(lm.path)
    where = "above" if broken < file else "below"
    return Problem(file, *lm.positions.of(path), dotted(path),
                   f"not checked against {Path(broken).name}, which has errors (see {where})",
                   cause=broken)


def check_menu(lm: LoadedMenu, all_menus: Mapping[str, LoadedMenu],
               unavailable: Mapping[str, str] | None = None) -> list[Problem]:
    """One menu's problems; ``unavailable``: menus not loaded because their file has errors
    (menu name: that file)."""
    menu = lm.menu
    out: list[Problem] = []
    unavailable = unavailable or {}
    consequences: set[str] = set()
    known = list(menu.nodes)
    langs = set(menu.languages)

    if menu.default_language not in langs:
        out.append(_problem(lm, ("default_language",),
                            f"{menu.default_language!r} is not one of the menu's languages "
                            f"{menu.languages}"))
    for ref_attr in ("start", "fallback"):
        target = getattr(menu, ref_attr)
        if target not in menu.nodes:
            out.append(_problem(lm, (ref_attr,), f"unknown node {target!r}"
                                f"{_suggest(target, known)}"))
    for lang, voice in menu.voices.items():
        if lang not in langs:
            out.append(_problem(lm, ("voices", lang), f"voice for {lang!r}, which is not one of "
                                f"the menu's languages {menu.languages}", "warning", key=True))
            continue
        spoken = voice_languages(voice)
        if spoken is None:
            out.append(_problem(lm, ("voices", lang), f"unknown voice {voice!r}: cannot check "
                                f"that it speaks {lang}", "warning"))
        elif lang not in spoken:
            out.append(_problem(lm, ("voices", lang), f"voice {voice!r} cannot speak {lang} "
                                f"(it speaks {', '.join(sorted(spoken))})"))

    for name, node in menu.nodes.items():
        for edge in node_edges(name, node, menu):
            if edge.path != ("fallback",) and edge.target not in menu.nodes:
                out.append(_problem(lm, edge.path, f"unknown node {edge.target!r}"
                                    f"{_suggest(edge.target, known)}"))
        if isinstance(node, SubmenuNode):
            if node.menu not in all_menus and node.menu in unavailable:
                broken = unavailable[node.menu]
                if broken not in consequences:  # once per file
                    consequences.add(broken)
                    out.append(not_checked(lm, ("nodes", name, "menu"), broken))
            elif node.menu not in all_menus:
                out.append(_problem(lm, ("nodes", name, "menu"), f"unknown menu {node.menu!r}"
                                    f"{_suggest(node.menu, list(all_menus))}"))
            elif node.node is not None and node.node not in all_menus[node.menu].menu.nodes:
                others = list(all_menus[node.menu].menu.nodes)
                out.append(_problem(lm, ("nodes", name, "node"), f"menu {node.menu!r} has no "
                                    f"node {node.node!r}{_suggest(node.node, others)}"))
            else:
                missing = langs - set(all_menus[node.menu].menu.languages)
                if missing:
                    out.append(_problem(lm, ("nodes", name, "menu"),
                                        f"menu {node.menu!r} does not speak "
                                        f"{', '.join(sorted(missing))}"))
        if isinstance(node, HoursNode) and node.schedule not in menu.schedules:
            out.append(_problem(lm, ("nodes", name, "schedule"),
                                f"unknown schedule {node.schedule!r}"
                                f"{_suggest(node.schedule, list(menu.schedules))}"))
        for ppath, prompt in _prompts(name, node):
            out.extend(_check_prompt(lm, ppath, prompt, langs))
        if isinstance(node, MenuNode):
            out.extend(_check_options(lm, name, node, langs))
        out.extend(_check_conditions(lm, name, node))
    return out


def _unknown_attribute(name: str) -> str:
    """The IVR never sets it: the closest attribute it does, else the whole list."""
    suggestion = _suggest(name, list(CALLER_ATTRIBUTES))
    return f"unknown caller attribute {name!r}" + (
        suggestion or f"; expected one of: {', '.join(CALLER_ATTRIBUTES)}")


def _check_conditions(lm: LoadedMenu, name: str, node: Node) -> Iterator[Problem]:
    """A branch's or a priority rule's condition on an attribute the IVR never sets."""
    base: PathT = ("nodes", name)
    rules: list[tuple[PathT, str]] = []
    if isinstance(node, BranchNode):
        rules = [((*base, "branches", i, "when", "attribute"), br.when.attribute)
                 for i, br in enumerate(node.branches)]
    elif isinstance(node, QueueNode):
        rules = [((*base, "priority", i, "when", "attribute"), rule.when.attribute)
                 for i, rule in enumerate(node.priority)]
    for path, attribute in rules:
        if attribute not in CALLER_ATTRIBUTES:
            yield _problem(lm, path, _unknown_attribute(attribute))


def _check_prompt(lm: LoadedMenu, ppath: PathT, prompt: Prompt, langs: set[str],
                  ) -> Iterator[Problem]:
    texts = prompt.say if prompt.say is not None else (
        prompt.play if isinstance(prompt.play, dict) else None)
    kind = "say" if prompt.say is not None else "play"
    if texts is None:
        return
    for lang in sorted(langs - set(texts)):
        yield _problem(lm, (*ppath, kind), f"no {kind} text for {lang}, one of the menu's "
                       f"languages")
    for lang in sorted(set(texts) - langs):
        yield _problem(lm, (*ppath, kind, lang), f"{lang} is not one of the menu's languages "
                       f"{sorted(langs)}", "warning", key=True)
    if prompt.say is not None:
        for lang, text in prompt.say.items():
            cut = _cut_by_a_comment(lm, (*ppath, "say", lang), text)
            if cut is not None:
                yield cut
            for m in PLACEHOLDER.finditer(text):
                name, _, fmt = m.group(1).partition(":")
                if not _ATTRIBUTE.fullmatch(name) or fmt not in PLACEHOLDER_FORMATS:
                    yield _problem(lm, (*ppath, "say", lang), f"placeholder {m.group(0)!r}: "
                                   "expected {attribute} or {attribute:time}")
                elif name not in CALLER_ATTRIBUTES:
                    yield _problem(lm, (*ppath, "say", lang), f"placeholder {m.group(0)!r}: "
                                   + _unknown_attribute(name))
            if len(text) > SAY_MAX_CHARS:
                yield _problem(lm, (*ppath, "say", lang), f"text is {len(text)} characters; "
                               f"Twilio's <Say> takes at most {SAY_MAX_CHARS}")


def _cut_by_a_comment(lm: LoadedMenu, path: PathT, text: str) -> Problem | None:
    """``en-US: Press # to finish``: YAML reads `` # to finish`` as a comment and the caller
    hears "Press". A text without quotes followed, after one space, by ``#`` on its line (a
    comment an author means is set off by two spaces or more)."""
    line, col = lm.positions.of(path)
    lines = lm.text.split("\n")
    if not 1 <= line <= len(lines):
        return None
    source = lines[line - 1].rstrip("\r")
    rest = source[col - 1:]
    if rest[:1] in ("\"", "'") or not rest.startswith(text):
        return None
    after = rest[len(text):]
    if not after.startswith(" #"):
        return None
    comment = after[1:].rstrip()
    return Problem(str(lm.path), line, col, dotted(path),
                   f"the text ends before `{comment}`: YAML reads ` #` and what follows as a "
                   "comment; put the whole text in quotes (\"...\")")


def _check_options(lm: LoadedMenu, name: str, node: MenuNode, langs: set[str],
                   ) -> Iterator[Problem]:
    base: PathT = ("nodes", name, "options")
    seen: dict[tuple[str, str], str] = {}
    for key, opt in node.options.items():
        if opt.language is not None and opt.language not in langs:
            yield _problem(lm, (*base, key, "language"), f"{opt.language!r} is not one of the "
                           f"menu's languages {sorted(langs)}")
        for lang, phrases in opt.speech.items():
            for phrase in phrases:
                norm = " ".join(phrase.casefold().split())
                if (lang, norm) in seen:
                    yield _problem(lm, (*base, key, "speech", lang),
                                   f"phrase {phrase!r} is also option {seen[(lang, norm)]!r}")
                seen[(lang, norm)] = key
        if "speech" in node.input and not opt.speech:
            yield _problem(lm, (*base, key), "menu takes speech but this option has no "
                           "speech phrases; callers can only press the key", "warning", key=True)
    lengths = {len(k) for k in node.options}
    prefixes = [k for k in node.options for other in node.options
                if other != k and other.startswith(k)]
    if len(lengths) > 1 and prefixes:
        yield _problem(lm, base, f"option {prefixes[0]!r} is a prefix of a longer option; "
                       "callers must end the longer one with '#'", "warning", key=True)


def check_graph(menus: Mapping[str, LoadedMenu]) -> list[Problem]:
    """Reachability (warning) and caller traps (error) across all menus."""
    out: list[Problem] = []
    auto: dict[NodeRef, list[tuple[NodeRef, PathT]]] = {}
    every: dict[NodeRef, list[NodeRef]] = {}
    for mname, lm in menus.items():
        for name, node in lm.menu.nodes.items():
            ref = (mname, name)
            auto[ref] = []
            every[ref] = []
            targets = [(e, (mname, e.target)) for e in node_edges(name, node, lm.menu)]
            if isinstance(node, SubmenuNode) and node.menu in menus:
                entry = node.node or menus[node.menu].menu.start
                targets.append((Edge(entry, ("nodes", name, "menu"), True),
                                (node.menu, entry)))
            for edge, tref in targets:
                if tref[1] not in menus[tref[0]].menu.nodes:
                    continue
                every[ref].append(tref)
                if edge.automatic:
                    auto[ref].append((tref, edge.path))

    # Reachability from each menu's start and fallback (sub-menus are entered by reference).
    for mname, lm in menus.items():
        roots = [(mname, r) for r in (lm.menu.start, lm.menu.fallback) if r in lm.menu.nodes]
        seen: set[NodeRef] = set(roots)
        stack = list(roots)
        while stack:
            cur = stack.pop()
            for nxt in every.get(cur, []):
                if nxt not in seen and nxt[0] == mname:
                    seen.add(nxt)
                    stack.append(nxt)
        for name in lm.menu.nodes:
            if (mname, name) not in seen:
                out.append(_problem(lm, ("nodes", name), "no caller can reach this node",
                                    "warning", key=True))

    # Cycles of automatic moves: a caller who presses nothing would go round for ever.
    state: dict[NodeRef, int] = {}
    reported: set[frozenset[NodeRef]] = set()

    def visit(ref: NodeRef, trail: list[NodeRef]) -> None:
        state[ref] = 1
        trail.append(ref)
        for nxt, _path in auto.get(ref, []):
            if state.get(nxt) == 1:
                loop = [*trail[trail.index(nxt):], nxt]
                key = frozenset(loop)
                if key not in reported:
                    reported.add(key)
                    out.append(_loop_problem(menus, loop))
            elif nxt not in state:
                visit(nxt, trail)
        trail.pop()
        state[ref] = 2

    for ref in sorted(auto):
        if ref not in state:
            visit(ref, [])
    if not reported:
        out.extend(_long_chains(menus, auto))
    return out


PASS_THROUGH = (MessageNode, HoursNode, BranchNode, SubmenuNode)


def _long_chains(menus: Mapping[str, LoadedMenu],
                 auto: Mapping[NodeRef, list[tuple[NodeRef, PathT]]]) -> list[Problem]:
    """The engine walks messages, hours, branches and sub-menus in one go, at most
    MAX_AUTOMATIC_HOPS of them; a longer chain would fail at run time."""
    depth: dict[NodeRef, int] = {}

    def chain(ref: NodeRef) -> int:
        if ref not in depth:
            node = menus[ref[0]].menu.nodes[ref[1]]
            if isinstance(node, PASS_THROUGH):
                depth[ref] = 1 + max((chain(n) for n, _ in auto.get(ref, [])), default=0)
            else:
                depth[ref] = 1
        return depth[ref]

    out = []
    for ref in sorted(auto):
        if chain(ref) > MAX_AUTOMATIC_HOPS and not any(
                chain(prev) > chain(ref) for prev, targets in auto.items()
                for n, _ in targets if n == ref):
            out.append(_problem(menus[ref[0]], ("nodes", ref[1]),
                                f"{chain(ref) - 1} messages, hours, branches and sub-menus in "
                                f"a row from here; at most {MAX_AUTOMATIC_HOPS - 1} can be "
                                "played without the caller", key=True))
    return out


def _loop_problem(menus: Mapping[str, LoadedMenu], loop: list[NodeRef]) -> Problem:
    first = loop[0]
    lm = menus[first[0]]
    names = " -> ".join(n if m == first[0] else f"{m}:{n}" for m, n in loop)
    return _problem(lm, ("nodes", first[1]),
                    f"a caller who presses nothing (or whose transfer or queue fails) loops "
                    f"for ever: {names}; route a failure path to a hangup, queue or transfer "
                    f"that ends elsewhere", key=True)


def check_bundle(menus: Mapping[str, LoadedMenu],
                 unavailable: Mapping[str, str] | None = None) -> list[Problem]:
    out: list[Problem] = []
    for lm in menus.values():
        out.extend(check_menu(lm, menus, unavailable))
    out.extend(check_graph(menus))
    return sorted(set(out))


def check_leaving_reasons(menus: Mapping[str, LoadedMenu], codes: list[str],
                          source: str) -> list[Problem]:
    """Options that record a leaving reason (``leaving_reason:``) must name a code of the
    admin's list (``codes``, read from ``source``, wrapup.yaml, by the caller: ivr.retention
    is above ivr.menu)."""
    out: list[Problem] = []
    for lm in menus.values():
        for name, node in lm.menu.nodes.items():
            if not isinstance(node, MenuNode):
                continue
            for key, opt in node.options.items():
                if opt.leaving_reason is not None and opt.leaving_reason not in codes:
                    out.append(_problem(
                        lm, ("nodes", name, "options", key, "leaving_reason"),
                        f"{opt.leaving_reason!r} is not a leaving reason of {source}"
                        f"{_suggest(opt.leaving_reason, codes)}; expected one of: "
                        f"{', '.join(codes)}"))
    return sorted(set(out))
