"""What the menu costs the caller (issue 17 section 6): the seconds of speech a caller hears
before reaching each queue, transfer or hang-up, along the shortest key path, per language.

Pure: menus and the recordings' durations in (``ivr.menu.recordings`` reads those), rows
and budget warnings out. ``ivr menus check`` prints the rows and ``GET /admin/menus``
returns them; the warnings join the menus' other warnings.

The walk. A call starts at a start menu's start node (the entry menu, and any menu no
sub-menu of it reaches) in one of its languages (a caller's preferred language, or the
menu's default). From a node the caller can move:

* a menu: hears its prompt, then presses an option's key (an option may switch the
  language);
* an identify node: hears its prompt and types an account number; a caller already known
  by their number skips it (``skip_if_identified``) and hears nothing;
* a message: hears it; hours and branch nodes: any of their outcomes (the walk does not
  know the caller's attributes or the time, so the shortest of them counts); a sub-menu:
  its menu, in the caller's language when it speaks it;
* a queue, transfer or hang-up is an end: its own prompt is heard before the caller is
  queued, dialled or hung up on, and counts.

Failure paths (silence, wrong keys, a failed queue or transfer) are no key path and are
not walked: an end reached only through them has no row.

Speech time: a ``say`` text's characters (a placeholder counts ``PLACEHOLDER_CHARS``)
over the language's rate in characters a second (the menu's ``caller_time``, else
``DEFAULT_RATES``); a ``play`` file's duration when its file was found, else unknown
(the row counts such recordings). The shortest path is the fewest known seconds, then
the fewest keys; its own menu's ``caller_time.budget_seconds`` (the start menu's) is the
budget it is held to.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ivr.menu.loader import LoadedMenu, Problem
from ivr.menu.model import (
    PLACEHOLDER,
    BranchNode,
    HangupNode,
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

DEFAULT_RATES = {"he-IL": 13.0, "en-US": 15.0}  # characters a second
OTHER_RATE = 14.0
PLACEHOLDER_CHARS = 8  # what a spoken "{tier}" or "{x:time}" is counted as

EndKind = Literal["queue", "transfer", "hangup"]
Durations = Mapping[tuple[str, str], float]  # (menu, URL) -> seconds


@dataclass(frozen=True)
class Heard:
    """One prompt on the way: where, in which language, and for how long."""

    menu: str
    node: str
    seconds: float
    unknown: int = 0  # recordings whose length is not known

    def as_dict(self) -> dict[str, Any]:
        return {"menu": self.menu, "node": self.node, "seconds": round(self.seconds, 1),
                "unknown_recordings": self.unknown}


@dataclass(frozen=True)
class EndCost:
    start: str  # the menu whose start the path begins at
    language: str  # the call's language there
    menu: str  # the end node's menu and name
    node: str
    kind: EndKind
    target: str  # queue name, number / SIP address / client; "" for a hang-up
    seconds: float  # known seconds of speech heard on the way, the end's own prompt too
    unknown: int  # recordings of unknown length on the way
    keys: tuple[str, ...]  # what the caller presses
    heard: tuple[Heard, ...]
    budget: float | None

    @property
    def over_budget(self) -> bool:
        return self.budget is not None and self.seconds > self.budget

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "language": self.language, "menu": self.menu,
                "node": self.node, "kind": self.kind, "target": self.target,
                "seconds": round(self.seconds, 1), "unknown_recordings": self.unknown,
                "keys": list(self.keys), "heard": [h.as_dict() for h in self.heard],
                "budget_seconds": self.budget, "over_budget": self.over_budget}

    def line(self) -> str:
        """One line for ``ivr menus check``."""
        where = self.node if self.menu == self.start else f"{self.menu}:{self.node}"
        what = f"{self.kind} {self.target!r}" if self.target else self.kind
        keys = " ".join(self.keys) or "no key"
        extra = f" + {self.unknown} recording(s) of unknown length" if self.unknown else ""
        budget = "" if self.budget is None else (
            f"  OVER the {self.budget:g} s budget" if self.over_budget
            else f"  (budget {self.budget:g} s)")
        return (f"{self.start} {self.language}: {self.seconds:5.1f} s{extra} before {what} at "
                f"{where} [{keys}]{budget}")


def speaking_rate(menu: Menu, language: str) -> float:
    return menu.caller_time.chars_per_second.get(language) or DEFAULT_RATES.get(
        language, OTHER_RATE)


def spoken_chars(text: str) -> int:
    """Characters a voice speaks: placeholders count ``PLACEHOLDER_CHARS`` each."""
    stripped = text.strip()
    holes = PLACEHOLDER.findall(stripped)
    return len(PLACEHOLDER.sub("", stripped)) + PLACEHOLDER_CHARS * len(holes)


def prompt_seconds(prompt: Prompt | None, menu_name: str, menu: Menu, language: str,
                   durations: Durations) -> tuple[float, int]:
    """(known seconds, recordings of unknown length) of a prompt as the engine plays it in
    ``language`` (the same choice of text or recording as ``engine.render_prompt``)."""
    if prompt is None:
        return 0.0, 0
    if prompt.say is not None:
        for lang in (language, menu.default_language, *prompt.say):
            if lang in prompt.say:
                return spoken_chars(prompt.say[lang]) / speaking_rate(menu, lang), 0
    play = prompt.play
    if isinstance(play, dict):
        url = play.get(language) or play.get(menu.default_language) or next(iter(play.values()))
    else:
        assert play is not None
        url = play
    seconds = durations.get((menu_name, url))
    return (0.0, 1) if seconds is None else (seconds, 0)


State = tuple[str, str, str]  # menu, node, language


@dataclass(frozen=True)
class _Move:
    to: State
    key: str | None  # the key pressed, if any
    heard: bool  # the node's prompt is heard on this move


def _moves(menus: Mapping[str, LoadedMenu], state: State, node: Node) -> Iterator[_Move]:
    mname, _name, lang = state
    if isinstance(node, MenuNode):
        for key, opt in node.options.items():
            yield _Move((mname, opt.next, opt.language or lang), key, True)
    elif isinstance(node, MessageNode):
        yield _Move((mname, node.next, lang), None, True)
    elif isinstance(node, HoursNode):
        for target in (node.open, node.closed, node.holiday, node.emergency):
            if target:
                yield _Move((mname, target, lang), None, False)
    elif isinstance(node, BranchNode):
        for br in node.branches:
            yield _Move((mname, br.next, lang), None, False)
        yield _Move((mname, node.default, lang), None, False)
    elif isinstance(node, IdentifyNode):
        if node.skip_if_identified:
            yield _Move((mname, node.identified, lang), None, False)
        yield _Move((mname, node.identified, lang), "account", True)
    elif isinstance(node, SubmenuNode) and node.menu in menus:
        sub = menus[node.menu].menu
        yield _Move((node.menu, node.node or sub.start,
                     lang if lang in sub.languages else sub.default_language), None, False)


def _prompt_of(node: Node) -> Prompt | None:
    prompt = getattr(node, "prompt", None)
    return prompt if isinstance(prompt, Prompt) else None


def _end(node: Node) -> tuple[EndKind, str] | None:
    if isinstance(node, QueueNode):
        return "queue", node.queue
    if isinstance(node, TransferNode):
        return "transfer", node.number or node.sip or node.client or ""
    if isinstance(node, HangupNode):
        return "hangup", ""
    return None


def costs_from(menus: Mapping[str, LoadedMenu], start: str, language: str,
               durations: Durations) -> list[EndCost]:
    """Every end reachable by keys from ``start``'s start node in ``language``, each by
    its shortest path (Dijkstra over (menu, node, language))."""
    root = menus[start].menu
    budget = root.caller_time.budget_seconds
    first: State = (start, root.start, language)
    # (seconds, keys, tie-breaker, state, keys pressed, heard)
    queue: list[tuple[float, int, int, State, tuple[str, ...], tuple[Heard, ...]]] = [
        (0.0, 0, 0, first, (), ())]
    done: set[State] = set()
    ends: dict[tuple[str, str], EndCost] = {}
    counter = 0
    while queue:
        seconds, _keys, _, state, keys, heard = heapq.heappop(queue)
        if state in done:
            continue
        done.add(state)
        mname, name, lang = state
        if mname not in menus or name not in menus[mname].menu.nodes:
            continue  # a reference the checks report
        menu = menus[mname].menu
        node = menu.nodes[name]
        said, unknown = prompt_seconds(_prompt_of(node), mname, menu, lang, durations)
        here = (*heard, Heard(mname, name, said, unknown)) if said or unknown else heard
        end = _end(node)
        if end is not None:
            if (mname, name) not in ends:  # the first pop is the shortest (any language)
                ends[(mname, name)] = EndCost(
                    start, language, mname, name, end[0], end[1], seconds + said,
                    sum(h.unknown for h in here), keys, here, budget)
            continue
        for move in _moves(menus, state, node):
            if move.to in done:
                continue
            counter += 1
            cost = seconds + (said if move.heard else 0.0)
            pressed = (*keys, move.key) if move.key else keys
            heapq.heappush(queue, (cost, len(pressed), counter, move.to, pressed,
                                   here if move.heard else heard))
    return sorted(ends.values(), key=lambda e: (e.seconds, e.menu, e.node))


def start_menus(menus: Mapping[str, LoadedMenu], entry: str) -> list[str]:
    """The entry menu, then (by name) every menu no sub-menu walk from it reaches."""
    if entry not in menus:
        return sorted(menus)
    reached = {entry}
    stack = [entry]
    while stack:
        for node in menus[stack.pop()].menu.nodes.values():
            if isinstance(node, SubmenuNode) and node.menu in menus \
                    and node.menu not in reached:
                reached.add(node.menu)
                stack.append(node.menu)
    return [entry, *sorted(set(menus) - reached)]


def menu_costs(menus: Mapping[str, LoadedMenu], entry: str,
               durations: Durations) -> list[EndCost]:
    """Per start menu and per language of it, the shortest path to every end."""
    out: list[EndCost] = []
    for start in start_menus(menus, entry):
        for language in menus[start].menu.languages:
            out.extend(costs_from(menus, start, language, durations))
    return out


def budget_problems(menus: Mapping[str, LoadedMenu], costs: list[EndCost]) -> list[Problem]:
    """A warning at each end a caller reaches only after more than the budget, one per
    end and language (the path's prompts and their seconds, to see what to shorten)."""
    out: list[Problem] = []
    for c in costs:
        if not c.over_budget:
            continue
        lm = menus[c.menu]
        line, col = lm.positions.of(("nodes", c.node), key=True)
        steps = ", ".join(f"{h.node if h.menu == c.start else f'{h.menu}:{h.node}'} "
                          f"{h.seconds:.1f} s" for h in c.heard)
        keys = " ".join(c.keys) or "no key"
        what = f"{c.kind} {c.target!r}" if c.target else c.kind
        out.append(Problem(str(lm.path), line, col, f"nodes.{c.node}",
                           f"{c.language}: a caller hears {c.seconds:.1f} s of speech before "
                           f"reaching this {what} from {c.start}'s start (budget "
                           f"{c.budget:g} s); shortest path [{keys}]: {steps}", "warning"))
    return out
