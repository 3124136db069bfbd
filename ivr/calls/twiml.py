"""Render engine actions as TwiML with the twilio package's VoiceResponse.

Action URLs are relative: Twilio resolves them against the URL it just requested, so they
stay right behind any proxy. Each carries the call's step number (``s``), which makes a
retried request recognisable.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from twilio.twiml.voice_response import VoiceResponse

from ivr.menu.engine import Action, Dial, Enqueue, Gather, Hangup, Play, Say

GATHER_URL = "/twilio/gather"
MENU_DIAL_URL = "/twilio/dial"
QUEUE_URL = "/twilio/queue"
WAIT_URL = "/twilio/wait"

APOLOGY = (
    Say("מצטערים, אירעה תקלה. מעבירים אתכם לנציג.", "he-IL", "Google.he-IL-Standard-A"),
    Say("Sorry, something went wrong. Connecting you to an agent.", "en-US", None),
)


def _say(target: Any, action: Say) -> None:
    """Add a <Say> to a VoiceResponse or a nested verb (Gather)."""
    kwargs = {"language": action.language}
    if action.voice:
        kwargs["voice"] = action.voice
    target.say(action.text, **kwargs)


# Rendering is cached per action list with a placeholder for the step number, which is
# the only part that changes from call to call (ElementTree serialisation is the costliest
# part of a menu step otherwise). U+E000 is a private-use character no prompt contains.
_STEP = "\ue000"


def render(actions: Iterable[Action], step: int) -> str:
    return _template(tuple(actions)).replace(_STEP, str(step))


@functools.lru_cache(maxsize=4096)
def _template(actions: tuple[Action, ...]) -> str:
    step = _STEP
    r = VoiceResponse()
    for action in actions:
        if isinstance(action, Say):
            _say(r, action)
        elif isinstance(action, Play):
            r.play(action.url)
        elif isinstance(action, Gather):
            kwargs: dict[str, object] = {
                "input": " ".join(action.input),
                "action": f"{GATHER_URL}?s={step}",
                "method": "POST",
                "timeout": action.timeout,
                "action_on_empty_result": True,
                "language": action.language,
            }
            if action.num_digits is not None:
                kwargs["num_digits"] = action.num_digits
            if action.finish_on_key != "#":
                kwargs["finish_on_key"] = action.finish_on_key
            if "speech" in action.input:
                kwargs["speech_timeout"] = "auto"
                if action.hints:
                    kwargs["hints"] = ", ".join(action.hints)
            g = r.gather(**kwargs)
            for p in action.prompts:
                if isinstance(p, Say):
                    _say(g, p)
                else:
                    g.play(p.url)
        elif isinstance(action, Enqueue):
            r.enqueue(action.queue, action=f"{QUEUE_URL}?s={step}", method="POST",
                      wait_url=f"{WAIT_URL}?"
                      + urlencode({"lang": action.language, "q": action.queue}),
                      wait_url_method="POST")
        elif isinstance(action, Dial):
            dial_kwargs: dict[str, object] = {"action": f"{MENU_DIAL_URL}?s={step}",
                                              "method": "POST", "timeout": action.timeout}
            if action.caller_id:
                dial_kwargs["caller_id"] = action.caller_id
            d = r.dial(**dial_kwargs)
            getattr(d, action.kind)(action.target)
        elif isinstance(action, Hangup):
            r.hangup()
    return str(r.to_xml())


def safe_route(queue: str) -> str:
    """The answer when something failed inside: apologise, then a queue agents always serve."""
    r = VoiceResponse()
    for s in APOLOGY:
        _say(r, s)
    r.enqueue(queue)
    return str(r.to_xml())


def empty() -> str:
    return str(VoiceResponse().to_xml())


def leave() -> str:
    """Out of the queue now (an agent is ready): Twilio requests the Enqueue action."""
    r = VoiceResponse()
    r.leave()
    return str(r.to_xml())


def hold(language: str, position: str | None, music_url: str | None,
         pause: int = 20, speak: bool = True, nobody: bool = False) -> str:
    """The wait experience while queued (Twilio loops this document). ``speak``: the hold
    message this round (it is spoken about once a minute, not on every short round).
    ``nobody``: no agent of the queue is signed in, so no agent is promised "shortly"."""
    r = VoiceResponse()
    if not speak:
        if music_url:
            r.play(music_url)
        else:
            r.pause(length=pause)
        return str(r.to_xml())
    if language == "he-IL":
        text = ("אין כרגע נציג זמין. הישארו על הקו ונענה כשיתפנה נציג." if nobody
                else "תודה על סבלנותכם, נציג יענה בהקדם.")
        if position and position.isdigit():
            text = f"מקומכם בתור: {position}. " + text
        _say(r, Say(text, "he-IL", "Google.he-IL-Standard-A"))
    else:
        text = ("No agent is available right now. Please stay on the line; we will "
                "answer when an agent is free." if nobody
                else "Thank you for waiting. An agent will be with you shortly.")
        if position and position.isdigit():
            text = f"You are number {position} in the queue. " + text
        _say(r, Say(text, "en-US", None))
    if music_url:
        r.play(music_url)
    else:
        r.pause(length=pause)
    return str(r.to_xml())
