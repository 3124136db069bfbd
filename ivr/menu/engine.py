"""The menu engine: a pure function (bundle, call state, event, now) -> (state, actions).

No HTTP, no database: the webhook layer loads the state, calls ``step`` and renders the
actions to TwiML. Automatic nodes (messages, hours, branches, sub-menus) are walked through
in one step; the engine stops at the first node that needs the caller or Twilio (a menu
gathering input, a queue, a transfer, a hangup).

Its size (~540 lines) is on purpose: the one pure step function with every node kind, its
actions and events (the vocabulary TwiML rendering reads) in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from ivr.core.calendar import hours_status
from ivr.menu.bundle import MenuBundle
from ivr.menu.model import (
    MAX_AUTOMATIC_HOPS,
    PLACEHOLDER,
    BranchNode,
    Condition,
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

MAX_DIGITS = 32
MAX_SPEECH = 512

# ---------------------------------------------------------------- state and events


@dataclass(frozen=True)
class CallState:
    call_sid: str
    version: str
    menu: str
    node: str
    language: str
    no_input: int = 0
    invalid: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)
    path: tuple[dict[str, Any], ...] = ()
    ended: bool = False


@dataclass(frozen=True)
class Start:
    pass


@dataclass(frozen=True)
class Gathered:
    digits: str | None = None
    speech: str | None = None
    confidence: float | None = None


@dataclass(frozen=True)
class DialEnded:
    status: str  # Twilio DialCallStatus


@dataclass(frozen=True)
class QueueEnded:
    result: str  # Twilio QueueResult


@dataclass(frozen=True)
class AccountEntered:
    """Digits typed at an identify node, already looked up by the caller of ``step``
    (the engine does no I/O): the customer's attributes, or None when not found."""

    digits: str
    match: dict[str, Any] | None


Event = Start | Gathered | DialEnded | QueueEnded | AccountEntered

# ---------------------------------------------------------------- actions


@dataclass(frozen=True)
class Say:
    text: str
    language: str
    voice: str | None


@dataclass(frozen=True)
class Play:
    url: str


Audio = Say | Play


@dataclass(frozen=True)
class Gather:
    prompts: tuple[Audio, ...]
    input: tuple[str, ...]
    timeout: int
    num_digits: int | None
    finish_on_key: str
    language: str
    hints: tuple[str, ...]


@dataclass(frozen=True)
class Enqueue:
    queue: str
    language: str


@dataclass(frozen=True)
class Dial:
    kind: Literal["number", "sip", "client"]
    target: str
    timeout: int
    caller_id: str | None


@dataclass(frozen=True)
class Hangup:
    pass


Action = Say | Play | Gather | Enqueue | Dial | Hangup


@dataclass(frozen=True)
class StepResult:
    state: CallState
    actions: tuple[Action, ...]


class EngineError(Exception):
    """The menu cannot go on (a reference that does not exist, an endless loop)."""


# ---------------------------------------------------------------- helpers


def _now_iso(now: datetime) -> str:
    return now.isoformat(timespec="milliseconds")


def _menu(bundle: MenuBundle, name: str) -> Menu:
    try:
        return bundle.menus[name].menu
    except KeyError:
        raise EngineError(f"menu {name!r} is not in version {bundle.version}") from None


def fill(text: str, attributes: dict[str, Any], zone: str, language: str | None = None,
         ) -> str:
    """A prompt's ``{attribute}`` placeholders with the caller's values (``{x:time}``: an
    ISO timestamp as HH:MM in ``zone``; a value given per language, like a holiday's name,
    in ``language``); a value the caller does not have is left out."""
    if "{" not in text:
        return text

    def one(m: re.Match[str]) -> str:
        name, _, fmt = m.group(1).partition(":")
        value = attributes.get(name)
        if isinstance(value, dict):
            value = value.get(language) if language is not None else None
        if value is None or value == "":
            return ""
        if fmt == "time":
            try:
                at = datetime.fromisoformat(str(value))
            except ValueError:
                return ""
            if at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
            return at.astimezone(ZoneInfo(zone)).strftime("%H:%M")
        return str(value)

    return PLACEHOLDER.sub(one, text)


def _node(menu: Menu, name: str) -> Node:
    try:
        return menu.nodes[name]
    except KeyError:
        raise EngineError(f"node {name!r} does not exist") from None


def render_prompt(prompt: Prompt | None, menu: Menu, language: str) -> tuple[Audio, ...]:
    if prompt is None:
        return ()
    if prompt.say is not None:
        # The checker insists on text for every language; should one be missing anyway,
        # speak another language's text in that language's own voice.
        for lang in (language, menu.default_language, *prompt.say):
            if lang in prompt.say:
                return (Say(text=prompt.say[lang], language=lang,
                            voice=menu.voices.get(lang)),)
    play = prompt.play
    if isinstance(play, dict):  # per-language recordings
        url = play.get(language) or play.get(menu.default_language) or next(iter(play.values()))
        return (Play(url),)
    assert play is not None
    return (Play(play),)


def _gather(node: MenuNode, menu: Menu, language: str, lead: tuple[Audio, ...]) -> Gather:
    keys = list(node.options)
    longest = max(len(k) for k in keys)
    uses_hash = any("#" in k for k in keys)
    if longest == 1:
        num_digits: int | None = 1
    else:
        num_digits = longest if all(len(k) == longest for k in keys) else None
    hints: list[str] = []
    if "speech" in node.input:
        for opt in node.options.values():
            hints.extend(opt.speech.get(language, ()))
            if opt.language and opt.language != language:  # "English" at a Hebrew prompt
                hints.extend(opt.speech.get(opt.language, ()))
    return Gather(
        prompts=(*lead, *render_prompt(node.prompt, menu, language)),
        input=tuple(node.input),
        timeout=node.timeout,
        num_digits=num_digits,
        finish_on_key="" if uses_hash else "#",
        language=language,
        hints=tuple(hints),
    )


def _account_gather(node: IdentifyNode, menu: Menu, language: str,
                    lead: tuple[Audio, ...]) -> Gather:
    return Gather(prompts=(*lead, *render_prompt(node.prompt, menu, language)),
                  input=("dtmf",), timeout=node.timeout, num_digits=None, finish_on_key="#",
                  language=language, hints=())


def account_digits(node: IdentifyNode, digits: str | None) -> str | None:
    """The account number a caller typed, if it has a plausible length."""
    typed = (digits or "").strip().rstrip("#")
    if typed.isdigit() and node.min_digits <= len(typed) <= node.max_digits:
        return typed
    return None


_WORD = re.compile(r"[\w']+", re.UNICODE)


def _normalise(text: str) -> str:
    return " ".join(_WORD.findall(text.casefold()))


def match_option(node: MenuNode, language: str, digits: str | None, speech: str | None,
                 ) -> str | None:
    if digits:
        key = digits.strip()
        if key in node.options:
            return key
        if key.endswith("#") and key[:-1] in node.options:
            return key[:-1]
    if speech:
        # The longest phrase heard wins ("go back to the main menu" is the main-menu option,
        # not the "back" one); phrases of the call's language first, then of any language
        # (a caller may answer "English" to a Hebrew language-choice prompt).
        said = f" {_normalise(speech)} "
        for languages in ((language,), None):
            best: tuple[int, str] | None = None
            for key, opt in node.options.items():
                for lang, phrases in opt.speech.items():
                    if languages is not None and lang not in languages:
                        continue
                    for phrase in phrases:
                        norm = _normalise(phrase)
                        if norm and f" {norm} " in said and (best is None or
                                                              len(norm) > best[0]):
                            best = (len(norm), key)
            if best is not None:
                return best[1]
    return None


def condition_holds(cond: Condition, attributes: dict[str, Any]) -> bool:
    present = cond.attribute in attributes and attributes[cond.attribute] is not None
    value = attributes.get(cond.attribute)
    if cond.exists is not None:
        return present == cond.exists
    if not present:
        return False
    if isinstance(value, dict):  # a text per language (a holiday's name): any of them
        return any(condition_holds(cond, {cond.attribute: v}) for v in value.values())
    if cond.equals is not None:
        return bool(value == cond.equals)
    if cond.in_ is not None:
        return value in cond.in_
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    if cond.at_least is not None:
        return number >= cond.at_least
    if cond.at_most is not None:
        return number <= cond.at_most
    return False


# ---------------------------------------------------------------- the step function


class _Walk:
    def __init__(self, bundle: MenuBundle, state: CallState, now: datetime,
                 always_open: bool = False) -> None:
        self.bundle = bundle
        self.state = state
        self.now = now
        self.always_open = always_open
        self.actions: list[Action] = []
        self.path: list[dict[str, Any]] = list(state.path)

    def log(self, kind: str, **extra: Any) -> None:
        entry = {"at": _now_iso(self.now), "menu": self.state.menu, "node": self.state.node,
                 "event": kind}
        entry.update({k: v for k, v in extra.items() if v is not None})
        self.path.append(entry)

    def result(self) -> StepResult:
        zone = _menu(self.bundle, self.state.menu).spoken_timezone()
        attrs = self.state.attributes

        def filled(a: Action) -> Action:
            if isinstance(a, Say) and "{" in a.text:
                return replace(a, text=fill(a.text, attrs, zone, a.language))
            if isinstance(a, Gather) and any(isinstance(p, Say) and "{" in p.text
                                             for p in a.prompts):
                return replace(a, prompts=tuple(
                    replace(p, text=fill(p.text, attrs, zone, p.language))
                    if isinstance(p, Say) else p
                    for p in a.prompts))
            return a

        return StepResult(replace(self.state, path=tuple(self.path)),
                          tuple(filled(a) for a in self.actions))

    def goto(self, node: str, menu: str | None = None) -> None:
        self.state = replace(self.state, node=node, menu=menu or self.state.menu,
                             no_input=0, invalid=0)
        self.enter()

    def failure(self, node: MenuNode | QueueNode | TransferNode, reason: str) -> None:
        menu = _menu(self.bundle, self.state.menu)
        self.log("failure", reason=reason)
        self.goto(node.on_failure or menu.fallback)

    def enter(self) -> None:
        """Walk automatic nodes until one needs the caller or Twilio."""
        for _ in range(MAX_AUTOMATIC_HOPS):
            menu = _menu(self.bundle, self.state.menu)
            node = _node(menu, self.state.node)
            lang = self.state.language
            if isinstance(node, MessageNode):
                self.log("message")
                self.actions.extend(render_prompt(node.prompt, menu, lang))
                self.state = replace(self.state, node=node.next)
            elif isinstance(node, HoursNode):
                outcome, why = (("open", "demo: open at any hour") if self.always_open
                                else hours_status(menu.schedules[node.schedule], self.now))
                target = {"open": node.open, "closed": node.closed,
                          "holiday": node.holiday or node.closed,
                          "emergency": node.emergency or node.closed}[outcome]
                self.log("hours", outcome=outcome, reason=why)
                self.state = replace(self.state, node=target)
            elif isinstance(node, BranchNode):
                target = node.default
                for br in node.branches:
                    if condition_holds(br.when, self.state.attributes):
                        target = br.next
                        break
                self.log("branch", to=target)
                self.state = replace(self.state, node=target)
            elif isinstance(node, SubmenuNode):
                sub = _menu(self.bundle, node.menu)
                self.log("submenu", to=node.menu)
                language = lang if lang in sub.languages else sub.default_language
                self.state = replace(self.state, menu=node.menu, node=node.node or sub.start,
                                     language=language)
            elif isinstance(node, IdentifyNode):
                if node.skip_if_identified and self.state.attributes.get("identified"):
                    self.log("identify", outcome="already")
                    self.state = replace(self.state, node=node.identified)
                    continue
                self.log("prompt")
                self.actions.append(_account_gather(node, menu, lang, ()))
                return
            elif isinstance(node, MenuNode):
                self.log("prompt")
                self.actions.append(_gather(node, menu, lang, ()))
                return
            elif isinstance(node, QueueNode):
                self.log("queue", queue=node.queue)
                self.actions.extend(render_prompt(node.prompt, menu, lang))
                self.actions.append(Enqueue(node.queue, lang))
                return
            elif isinstance(node, TransferNode):
                kind: Literal["number", "sip", "client"]
                if node.number:
                    kind, target = "number", node.number
                elif node.sip:
                    kind, target = "sip", node.sip
                else:
                    kind, target = "client", node.client or ""
                self.log("transfer", to=kind)
                self.actions.extend(render_prompt(node.prompt, menu, lang))
                self.actions.append(Dial(kind, target, node.timeout, node.caller_id))
                return
            elif isinstance(node, HangupNode):
                self.log("hangup")
                self.actions.extend(render_prompt(node.prompt, menu, lang))
                self.actions.append(Hangup())
                self.state = replace(self.state, ended=True)
                return
        raise EngineError(f"more than {MAX_AUTOMATIC_HOPS} automatic moves without input")

    # -- events at the current node

    def on_account(self, node: IdentifyNode, digits: str | None,
                   match: dict[str, Any] | None) -> None:
        if match is not None:
            self.log("identify", outcome="account", digits=f"***{(digits or '')[-2:]}")
            # Now we know who it is: speak their language, as for a caller known by number.
            preferred = match.get("preferred_language")
            language = (preferred if preferred in _menu(self.bundle, self.state.menu).languages
                        else self.state.language)
            self.state = replace(self.state, attributes={**self.state.attributes, **match},
                                 language=language)
            self.goto(node.identified)
            return
        count = self.state.invalid + 1
        self.state = replace(self.state, invalid=count)
        self.log("identify", outcome="not_found", count=count)
        menu = _menu(self.bundle, self.state.menu)
        lead = render_prompt(node.invalid_prompt, menu, self.state.language)
        if count >= node.max_attempts:
            # The caller hears that the number was not found, then whatever comes next.
            self.actions.extend(lead)
            self.log("failure", reason="not_identified")
            self.goto(node.failed or menu.fallback)
            return
        self.actions.append(_account_gather(node, menu, self.state.language, lead))

    def leg_ended(self, node: QueueNode | TransferNode, kind: str, field: str, outcome: str,
                  done: bool) -> None:
        """A queue or transfer is over: the call ends if it reached someone, otherwise the
        caller goes to the node's failure path (never a dead line)."""
        if done:
            self.log(f"{kind}_done", **{field: outcome})
            self.actions.append(Hangup())
            self.state = replace(self.state, ended=True)
        else:
            self.log(f"{kind}_failed", **{field: outcome})
            self.failure(node, outcome or ("failed" if kind == "transfer" else "error"))

    def on_gathered(self, node: MenuNode, ev: Gathered) -> None:
        menu = _menu(self.bundle, self.state.menu)
        lang = self.state.language
        digits = (ev.digits or "")[:MAX_DIGITS] or None
        speech = (ev.speech or "")[:MAX_SPEECH] or None
        if digits is None and speech is None:
            count = self.state.no_input + 1
            self.state = replace(self.state, no_input=count)
            self.log("no_input", count=count)
            if count >= node.max_no_input:
                self.failure(node, "no_input")
                return
            lead = render_prompt(node.no_input_prompt, menu, lang)
            self.actions.append(_gather(node, menu, lang, lead))
            return
        key = match_option(node, lang, digits, speech)
        if key is None:
            count = self.state.invalid + 1
            self.state = replace(self.state, invalid=count)
            self.log("invalid", digits=digits, speech=speech, count=count)
            if count >= node.max_invalid:
                self.failure(node, "invalid")
                return
            lead = render_prompt(node.invalid_prompt, menu, lang)
            self.actions.append(_gather(node, menu, lang, lead))
            return
        option = node.options[key]
        self.log("input", digits=digits, speech=speech, confidence=ev.confidence, option=key,
                 leaving_reason=option.leaving_reason)
        if option.language:
            self.state = replace(self.state, language=option.language)
        if option.leaving_reason:  # the caller's answer to "why do you want to leave?"
            self.state = replace(self.state, attributes={
                **self.state.attributes, "leaving_reason": option.leaving_reason})
        self.goto(option.next)


DIAL_OK = {"completed", "answered"}
QUEUE_DONE = {"bridged", "hangup", "redirected", "bridging-in-process"}


def queue_priority(node: QueueNode, attributes: dict[str, Any]) -> int:
    """A caller's priority in a queue: the highest of the matching rules, else 0."""
    matching = [r.priority for r in node.priority if condition_holds(r.when, attributes)]
    return max(matching) if matching else 0


def step(bundle: MenuBundle, state: CallState, event: Event, now: datetime, *,
         always_open: bool = False) -> StepResult:
    """``always_open``: every hours node answers open (the demo's IVR_DEMO_ALWAYS_OPEN)."""
    walk = _Walk(bundle, state, now, always_open)
    if isinstance(event, Start):
        walk.enter()
        return walk.result()
    menu = _menu(bundle, state.menu)
    node = _node(menu, state.node)
    if state.ended:
        walk.actions.append(Hangup())
    elif isinstance(event, Gathered) and isinstance(node, MenuNode):
        walk.on_gathered(node, event)
    elif isinstance(event, AccountEntered) and isinstance(node, IdentifyNode):
        walk.on_account(node, event.digits, event.match)
    elif isinstance(event, Gathered) and isinstance(node, IdentifyNode):
        walk.on_account(node, event.digits, None)  # nothing plausible typed: not found
    elif isinstance(event, DialEnded) and isinstance(node, TransferNode):
        walk.leg_ended(node, "transfer", "status", event.status, event.status in DIAL_OK)
    elif isinstance(event, QueueEnded) and isinstance(node, QueueNode):
        walk.leg_ended(node, "queue", "result", event.result, event.result in QUEUE_DONE)
    else:
        # An event that does not belong to this node (a stale or out-of-order request):
        # repeat what the caller should be hearing now rather than guessing.
        walk.log("resume", got=type(event).__name__)
        walk.enter()
    return walk.result()


def start_state(bundle: MenuBundle, call_sid: str, entry: str,
                attributes: dict[str, Any] | None = None) -> CallState:
    """A new call at the entry menu's start, speaking the caller's preferred language when
    the customer store knows it and the menu speaks it (nobody asks a known caller)."""
    menu = _menu(bundle, entry)
    attrs = dict(attributes or {})
    preferred = attrs.get("preferred_language")
    language = preferred if preferred in menu.languages else menu.default_language
    return CallState(call_sid=call_sid, version=bundle.version, menu=entry, node=menu.start,
                     language=language, attributes=attrs)
