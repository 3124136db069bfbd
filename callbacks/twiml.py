"""What callers hear about callbacks, as TwiML (the twilio package's VoiceResponse): the
expected wait and the offer in the wait loop, the callback dialog after the caller left the
queue, the confirmation with the time by which we call, and the callback call itself.

Texts are Hebrew for ``he-IL`` callers and English otherwise. Times are spoken in the
centre's zone: "14:30" today, "tomorrow at 09:00", else "on 03/12 at 09:00".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from twilio.twiml.voice_response import VoiceResponse

from callbacks.sla import WaitEstimate
from ivr.agents.twiml import dial_agent
from ivr.calls.twiml import QUEUE_URL, WAIT_URL, _say
from ivr.menu.engine import Say

OFFER_URL = "/twilio/callback-offer"
DIALOG_URL = "/twilio/callback"
ANSWER_URL = "/twilio/callback-answer"
CALLBACK_DIAL_URL = "/twilio/callback-dial"
STATUS_URL = "/twilio/callback-status"

HEBREW_VOICE = "Google.he-IL-Standard-A"

TEXT: dict[str, dict[str, str]] = {
    "wait": {"he": "זמן ההמתנה המשוער הוא כ-{minutes} דקות.",
             "en": "Your expected wait is about {minutes} minutes."},
    "wait_one": {"he": "זמן ההמתנה המשוער הוא כדקה.",
                 "en": "Your expected wait is about one minute."},
    "next": {"he": "אתם הבאים בתור.", "en": "You are next in line."},
    "all_busy": {"he": "כל הנציגים שלנו עסוקים כרגע.", "en": "All our agents are busy."},
    "no_agent": {"he": "אין כרגע נציג זמין.", "en": "No agent is available right now."},
    "offer": {"he": "כדי לשמור על מקומכם בתור ולקבל שיחה חוזרת, הקישו 1.",
              "en": "To keep your place and be called back, press 1."},
    "offer_closing": {"he": "המוקד נסגר בקרוב. כדי לשמור על מקומכם ולקבל שיחה חוזרת, הקישו 1.",
                      "en": "We close soon. To keep your place and be called back, press 1."},
    "hold": {"he": "תודה על סבלנותכם, נציג יענה בהקדם.",
             "en": "Thank you for waiting. An agent will be with you shortly."},
    "menu_number": {"he": "נחזור אליכם למספר המסתיים ב-{last4}. לאישור הקישו 1. "
                          "למספר אחר הקישו 2.",
                    "en": "We will call you back at the number ending in {last4}. "
                          "To confirm, press 1. To give another number, press 2."},
    "menu_withheld": {"he": "מספרכם חסוי. כדי להקיש את המספר לחזרה, הקישו 2.",
                      "en": "Your number is withheld. To type the number we should call, "
                            "press 2."},
    "menu_time": {"he": "לבחירת שעה, הקישו 3.", "en": "To choose a time, press 3."},
    "menu_back": {"he": "כדי להמשיך להמתין, הקישו כוכבית.",
                  "en": "To keep waiting, press star."},
    "type_number": {"he": "הקישו את המספר לחזרה ולאחריו סולמית.",
                    "en": "Please type the number to call, then press the pound key."},
    "confirm_number": {"he": "הקשתם {digits}. לאישור הקישו 1. להקשה מחדש הקישו 2.",
                       "en": "You typed {digits}. To confirm, press 1. "
                             "To type it again, press 2."},
    "bad_number": {"he": "המספר אינו תקין.", "en": "That number is not valid."},
    "choose_time": {"he": "{options}", "en": "{options}"},
    "later_today": {"he": "להיום בסביבות {when}, הקישו {digit}.",
                    "en": "For later today, around {when}, press {digit}."},
    "tomorrow_morning": {"he": "למחר בבוקר, {when}, הקישו {digit}.",
                         "en": "For tomorrow morning, {when}, press {digit}."},
    "tomorrow_afternoon": {"he": "למחר אחר הצהריים, {when}, הקישו {digit}.",
                           "en": "For tomorrow afternoon, {when}, press {digit}."},
    "no_times": {"he": "אין כרגע שעות לבחירה.", "en": "There are no times to choose now."},
    "confirmed": {"he": "תודה. נחזור אליכם עד {when}. אפשר לנתק. להתראות.",
                  "en": "Thank you. We will call you back by {when}. "
                        "You can hang up now. Goodbye."},
    "confirmed_at": {"he": "תודה. נחזור אליכם ב{when}. אפשר לנתק. להתראות.",
                     "en": "Thank you. We will call you back {when}. "
                           "You can hang up now. Goodbye."},
    "already": {"he": "כבר קיימת בקשה לשיחה חוזרת. עדכנו אותה.",
                "en": "You already have a callback request. We have updated it."},
    "capped": {"he": "לא נוכל לקבל היום בקשה נוספת לשיחה חוזרת מהמספר הזה. "
                     "מקומכם בתור נשמר.",
               "en": "We cannot take another callback request from this number today. "
                     "You keep your place in the queue."},
    "keep_place": {"he": "מקומכם בתור נשמר.", "en": "You keep your place in the queue."},
    "not_understood": {"he": "לא הבנו את בחירתכם.", "en": "Sorry, we did not get that."},
    "greeting": {"he": "שלום, אנחנו חוזרים אליכם ממוקד השירות. מעבירים אתכם לנציג.",
                 "en": "Hello, this is the customer service centre returning your call. "
                       "Connecting you to an agent."},
    "machine": {"he": "שלום, כאן מוקד השירות, חוזרים לשיחתכם. ננסה שוב מאוחר יותר.",
                "en": "Hello, this is the customer service centre returning your call. "
                      "We will try again later."},
    "agent_missed": {"he": "מצטערים, לא הצלחנו לחבר אתכם לנציג. נתקשר שוב בקרוב.",
                     "en": "Sorry, we could not connect you to an agent. "
                           "We will call you again shortly."},
    "gone": {"he": "הבקשה לשיחה חוזרת כבר טופלה. להתראות.",
             "en": "This callback has already been taken care of. Goodbye."},
    "today": {"he": "{hhmm}", "en": "{hhmm}"},
    "tomorrow": {"he": "מחר בשעה {hhmm}", "en": "tomorrow at {hhmm}"},
    "on_day": {"he": "{ddmm} בשעה {hhmm}", "en": "on {ddmm} at {hhmm}"},
    "at_today": {"he": "שעה {hhmm}", "en": "at {hhmm} today"},
}


def lang_key(language: str | None) -> str:
    return "he" if (language or "").lower().startswith("he") else "en"


def text(phrase: str, language: str | None, **values: object) -> str:
    return TEXT[phrase][lang_key(language)].format(**values)


def say(target: object, phrase: str, language: str | None, **values: object) -> None:
    lang = "he-IL" if lang_key(language) == "he" else "en-US"
    voice = HEBREW_VOICE if lang == "he-IL" else None
    _say(target, Say(text(phrase, language, **values), lang, voice))


def when(instant: datetime, now: datetime, zone: ZoneInfo, language: str | None,
         *, at: bool = False) -> str:
    """An instant as callers hear it, in the centre's zone."""
    local, today = instant.astimezone(zone), now.astimezone(zone).date()
    hhmm = local.strftime("%H:%M")
    if local.date() == today:
        return text("at_today" if at else "today", language, hhmm=hhmm)
    if local.date() == today + timedelta(days=1):
        return text("tomorrow", language, hhmm=hhmm)
    return text("on_day", language, hhmm=hhmm, ddmm=local.strftime("%d/%m"))


def minutes(expected: timedelta) -> int:
    """Whole minutes as spoken: half a minute and more counts up (2:30 is "about 3"), never
    under one."""
    return max(1, int(expected.total_seconds() / 60 + 0.5))


def _url(base: str, **query: str) -> str:
    return f"{base}?{urlencode(query)}"


def wait_phrases(estimate: WaitEstimate) -> list[tuple[str, dict[str, object]]]:
    """What a caller is told about their wait, as phrases of ``TEXT`` with their values:
    nobody can answer ("no agent is available right now": no time promised); an agent is
    free for them ("you are next in line", nothing more); else "all our agents are busy"
    when none is free, "you are next in line" at the head, and the expected wait."""
    wait = estimate.wait
    if wait is None:
        return [("no_agent", {})]
    if wait <= timedelta(0):
        return [("next", {})]
    out: list[tuple[str, dict[str, object]]] = []
    if estimate.free == 0:
        out.append(("all_busy", {}))
    if estimate.position <= 1:
        out.append(("next", {}))
    n = minutes(wait)
    out.append(("wait_one", {}) if n == 1 else ("wait", {"minutes": n}))
    return out


def wait_words(estimate: WaitEstimate, language: str | None) -> str:
    """The words of ``wait_phrases`` in the caller's language, as the wait loop says them."""
    return " ".join(text(p, language, **v) for p, v in wait_phrases(estimate))


def hold(language: str, music_url: str | None, pause: int, *,
         estimate: WaitEstimate | None, offer: str | None, queue: str, speak: bool) -> str:
    """A round of the wait loop: the caller's wait (``wait_phrases``) and the offer (a
    ``<Gather>``: a key press goes to the offer URL, silence falls through to the hold
    music), then music or a pause. Twilio requests the wait URL again when this document
    ends."""
    r = VoiceResponse()
    if speak:
        target: object = r
        if offer is not None:
            target = r.gather(num_digits=1, timeout=3, method="POST",
                              action=_url(OFFER_URL, q=queue, lang=language))
        if estimate is not None:
            for phrase, values in wait_phrases(estimate):
                say(target, phrase, language, **values)
        else:
            say(target, "hold", language)
        if offer is not None:
            say(target, "offer_closing" if offer == "closing" else "offer", language)
    if music_url:
        r.play(music_url)
    else:
        r.pause(length=pause)
    return str(r.to_xml())


def dialog_menu(language: str, queue: str, last4: str | None, times: bool, tries: int,
                note: str | None = None) -> str:
    r = VoiceResponse()
    if note:
        say(r, note, language)
    g = r.gather(num_digits=1, timeout=6, method="POST", action_on_empty_result=True,
                 action=_url(DIALOG_URL, q=queue, lang=language, step="choice", n=str(tries)))
    if last4:
        say(g, "menu_number", language, last4=" ".join(last4))
    else:
        say(g, "menu_withheld", language)
    if times:
        say(g, "menu_time", language)
    say(g, "menu_back", language)
    return str(r.to_xml())


def type_number(language: str, queue: str, tries: int, note: str | None = None,
                then: str = "") -> str:
    """``then=time``: after the number, the caller chooses a time (a withheld caller ID)."""
    r = VoiceResponse()
    if note:
        say(r, note, language)
    g = r.gather(finish_on_key="#", timeout=10, method="POST", action_on_empty_result=True,
                 action=_url(DIALOG_URL, q=queue, lang=language, step="number", n=str(tries),
                             then=then))
    say(g, "type_number", language)
    return str(r.to_xml())


def confirm_number(language: str, queue: str, typed: str, phone: str, then: str = "") -> str:
    r = VoiceResponse()
    g = r.gather(num_digits=1, timeout=6, method="POST", action_on_empty_result=True,
                 action=_url(DIALOG_URL, q=queue, lang=language, step="confirm",
                             phone=phone, then=then))
    say(g, "confirm_number", language, digits=" ".join(typed))
    return str(r.to_xml())


def choose_time(language: str, queue: str, options: list[tuple[str, str]], phone: str,
                ) -> str:
    """``options``: (name, spoken time) in key order 1, 2, 3."""
    r = VoiceResponse()
    g = r.gather(num_digits=1, timeout=6, method="POST", action_on_empty_result=True,
                 action=_url(DIALOG_URL, q=queue, lang=language, step="time", phone=phone))
    for key, (name, spoken) in enumerate(options, start=1):
        say(g, name, language, when=spoken, digit=key)
    say(g, "menu_back", language)
    return str(r.to_xml())


def confirmed(language: str, spoken: str, *, scheduled: bool, already: bool) -> str:
    r = VoiceResponse()
    if already:
        say(r, "already", language)
    say(r, "confirmed_at" if scheduled else "confirmed", language, when=spoken)
    r.hangup()
    return str(r.to_xml())


def back_to_queue(language: str, note: str | None, queue: str, step: int) -> str:
    """A note, then the caller's ``<Enqueue>`` again, as the menu rendered it (the same
    action and wait URLs): the queue entry kept its place meanwhile."""
    r = VoiceResponse()
    if note:
        say(r, note, language)
    r.enqueue(queue, action=f"{QUEUE_URL}?s={step}", method="POST",
              wait_url=_url(WAIT_URL, lang=language, q=queue), wait_url_method="POST")
    return str(r.to_xml())


def leave() -> str:
    r = VoiceResponse()
    r.leave()
    return str(r.to_xml())


def redirect_wait(language: str, queue: str, note: str | None) -> str:
    r = VoiceResponse()
    if note:
        say(r, note, language)
    r.redirect(_url(WAIT_URL, lang=language, q=queue), method="POST")
    return str(r.to_xml())


def connect_customer(language: str, attempt_id: int, offer_id: int, reach_kind: str,
                     target: str, timeout: int) -> str:
    """The customer answered the callback: a greeting, then ``<Dial>`` the reserved agent
    (the agent leg's status callbacks are the live calls' ``/twilio/agent-leg``)."""
    r = VoiceResponse()
    say(r, "greeting", language)
    dial_agent(r, _url(CALLBACK_DIAL_URL, c=str(attempt_id)), offer_id, reach_kind, target, timeout)
    return str(r.to_xml())


def message_then_hangup(language: str, key: str) -> str:
    r = VoiceResponse()
    say(r, key, language)
    r.hangup()
    return str(r.to_xml())
