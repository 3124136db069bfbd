"""``ivr simulate`` on a terminal: the call played (``PhoneCall``) with what the caller
hears printed line by line, the keys from ``--press`` or typed at a prompt, and — with
``--as-agent`` — the agents' side played over the console's API (``AgentsSide``), its lines
marked 👤. The CLI parses and maps errors to exit codes; this module plays."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ivr.simulator.agents import AgentsSide, TransferPlan
from ivr.simulator.caller import Heard, Input, PhoneCall


@dataclass(frozen=True)
class Options:
    url: str
    token: str
    from_number: str = "+972501234567"
    to_number: str = "+97235550100"
    press: str | None = None  # None: typed at the prompt
    dial_status: str = "no-answer"
    queue_result: str = "hangup"
    wait_for_agent: float = 0.0
    talk: float = 5.0
    accept_callback: bool = False
    speed: float = 1.0
    # The agents' side (--as-agent): who, their password, a transfer to make.
    as_agent: str | None = None
    second_agent: str | None = None
    plan: TransferPlan | None = None
    password: str = ""


def describe(h: Heard, opts: Options) -> str | None:
    """The line printed for what the caller hears (None: nothing to print)."""
    if h.kind == "say":
        return f"  🔊 [{h.attrs.get('language', '')}] {h.text}"
    if h.kind == "play":
        return f"  ♪ {h.text}"
    if h.kind == "pause":
        return f"  … ({h.text}s)"
    if h.kind == "wait":
        return f"  ⏳ {h.text} s in the queue"
    if h.kind == "gather":
        return (f"  ⌨  waiting for input ({h.attrs.get('input', 'dtmf')}, "
                f"{h.attrs.get('timeout', '5')}s)")
    if h.kind == "enqueue":
        waiting = (f"waiting up to {opts.wait_for_agent:g} s for an agent"
                   if opts.wait_for_agent else f"answer: {opts.queue_result}")
        return f"  ⏳ queued in '{h.text}' ({waiting})"
    if h.kind == "dial":
        return f"  ☎  dialling {h.text} (answer: {opts.dial_status})"
    if h.kind == "leave":
        return ("  ↪  leaving the queue for the callback dialog" if h.text == "callback"
                else "  ↪  an agent is free: leaving the queue")
    if h.kind == "answered":
        return f"  ☏  the agent answered; talking for {opts.talk:g} s"
    if h.kind == "hold":
        return "  ♪  on hold: the caller hears the hold music"
    if h.kind == "resume":
        return "  ☏  off hold: the caller is talking again"
    if h.kind == "moved":
        return f"  ↪  out of the conference: {h.text}"
    if h.kind in ("hangup", "end"):
        return "  ✆  call ended"
    return None


def scripted(press: str, out: Callable[[str], None]) -> Iterator[Input]:
    for raw in press.split(",") if press else []:
        item = raw.strip()
        out(f"  > {item or '(silence)'}")
        yield item or None


def typed(_h: Heard) -> Input:
    try:
        got = input("  keys (Enter = silence, 'say: words', 'q' = hang up) > ").strip()
    except EOFError:
        return "hangup"
    if got == "q":
        return "hangup"
    if got.lower().startswith("say:"):
        return "say:" + got[4:].strip()
    return got or None


def simulate(opts: Options, client: Any, out: Callable[[str], None] = print,
             sleep: Callable[[float], None] | None = None) -> PhoneCall:
    """Play the call (and the agents' side) against the server ``client`` reaches.
    Raises ``TwimlRejected`` (an answer Twilio would refuse), ``AgentRefused`` (the
    server refused an agent's step) and the client's transport errors."""

    def show(h: Heard) -> None:
        line = describe(h, opts)
        if line is not None:
            out(line)

    inputs: Callable[[Heard], Input] | Iterator[Input] = (
        scripted(opts.press, out) if opts.press is not None else typed)
    clock: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    side = None
    if opts.as_agent:
        side = AgentsSide(client, opts.password, opts.as_agent, plan=opts.plan,
                          second=opts.second_agent, say=lambda line: out(f"  👤 {line}"),
                          **clock)
    call = PhoneCall(client, opts.url, opts.token, from_number=opts.from_number,
                     to_number=opts.to_number, inputs=inputs, dial_status=opts.dial_status,
                     queue_result=opts.queue_result, on_hear=show,
                     agent_wait=opts.wait_for_agent, talk_seconds=opts.talk,
                     accept_callback=opts.accept_callback, speed=opts.speed,
                     max_requests=100 + int(opts.wait_for_agent) + int(opts.talk),
                     during_talk=side.tick if side is not None else None, **clock)
    out(f"Calling {opts.url} from {opts.from_number} (CallSid {call.call_sid})")
    if side is not None:
        side.start()
    try:
        call.run()
    except BaseException:
        if side is not None:
            with contextlib.suppress(Exception):  # the call's own error is the one to say
                side.finish(call.call_sid)
        raise
    if side is not None:
        side.finish(call.call_sid)
    notes = call.unused_options()
    if side is not None and side.plan is not None and side.transfer is None:
        on_conference = any(h.kind == "answered" and h.text == "conference"
                            for h in call.transcript.heard)
        notes.append("no transfer was made: " + (
            f"the call ended before {side.plan.after:g} s of talk (--transfer-after)"
            if on_conference and side.phase == "talking" else
            "the call never reached an agent on a conference (is IVR_CONFERENCE_CALLS "
            "on in the server?)" if not on_conference else
            f"{side.first.username} never had the call"))
    for note in notes:
        out(f"note: {note}")
    return call
