"""TwiML of calls on a conference (the twilio package's VoiceResponse): the caller joins the
call's conference, hears the hold music while held, goes to a transfer's queue, or back to
the head of their queue hearing why a transfer did not happen."""

from __future__ import annotations

from twilio.twiml.voice_response import VoiceResponse

from ivr.calls import twiml
from ivr.menu.engine import Enqueue, Hangup, Say

CONFERENCE_END_URL = "/twilio/conference-end"
CONFERENCE_EVENTS_URL = "/twilio/conference-events"
CONFERENCE_WAIT_URL = "/twilio/conference-wait"

#: What the caller hears when a transfer did not happen and they wait at the queue's head.
BACK: dict[str, dict[str, str]] = {
    "he-IL": {"no-answer": "הנציג אינו זמין כרגע. אתם הבאים בתור.",
              "busy": "הנציג אינו זמין כרגע. אתם הבאים בתור.",
              "failed": "לא הצלחנו להעביר את השיחה. אתם הבאים בתור.",
              "hung-up": "השיחה עם הנציג הסתיימה. אתם הבאים בתור."},
    "en-US": {"no-answer": "The agent is not available. You are next in line.",
              "busy": "The agent is not available. You are next in line.",
              "failed": "We could not transfer your call. You are next in line.",
              "hung-up": "The agent's line ended. You are next in line."},
}


def caller_conference(name: str, call_sid: str) -> str:
    """The caller joins the call's conference. The caller does not start it (they hear the
    wait URL, our hold music, until an agent joins) and ends it when they hang up; agents
    never end it by leaving while a transfer is open (their participants say so), so the
    caller never drops when an agent leaves. The ``<Dial action>`` is requested when the
    caller's conference is over (the agent who has the call hung up)."""
    r = VoiceResponse()
    d = r.dial(action=f"{CONFERENCE_END_URL}?c={call_sid}", method="POST")
    d.conference(name, start_conference_on_enter=False, end_conference_on_exit=True,
                 beep=False, wait_url=f"{CONFERENCE_WAIT_URL}?c={call_sid}",
                 wait_method="POST",
                 status_callback=f"{CONFERENCE_EVENTS_URL}?c={call_sid}",
                 status_callback_event="start end join leave hold",
                 status_callback_method="POST")
    return str(r.to_xml())


def hold(language: str, music_url: str | None, pause: int) -> str:
    """Hold music (the queue's) in the caller's language, played in short rounds (the
    stand-in delivers a redirect on the next one)."""
    return twiml.hold(language, None, music_url, pause=pause)


def talking(pause: int) -> str:
    """The stand-in caller's wait-URL round while it talks to someone: nothing to hear."""
    r = VoiceResponse()
    r.pause(length=pause)
    return str(r.to_xml())


def redirect(url: str) -> str:
    r = VoiceResponse()
    r.redirect(url, method="POST")
    return str(r.to_xml())


def hangup() -> str:
    return twiml.render([Hangup()], 0)


def safe(queue: str) -> str:
    return twiml.safe_route(queue)


def enter_url(transfer_id: int) -> str:
    return f"/twilio/transfer-enter?t={transfer_id}"


def back_url(call_sid: str, why: str) -> str:
    return f"/twilio/transfer-back?c={call_sid}&why={why}"


def enqueue(language: str, queue: str, step: int) -> str:
    return twiml.render([Enqueue(queue, language)], step)


def back(language: str, why: str, queue: str, step: int) -> str:
    lines = BACK.get(language, BACK["en-US"])
    text = lines.get(why, lines["failed"])
    voice = "Google.he-IL-Standard-A" if language == "he-IL" else None
    return twiml.render([Say(text, language if language in BACK else "en-US", voice),
                         Enqueue(queue, language)], step)
