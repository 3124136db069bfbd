"""The survey as TwiML (the twilio package's VoiceResponse): each question is a ``<Gather>``
of one key or a few words; its action carries the survey's context in the (signed) URL,
so a survey asked after an agent call costs that webhook no database write.

URLs are relative: Twilio resolves them against the URL it just requested.
"""

from __future__ import annotations

from urllib.parse import urlencode

from twilio.twiml.voice_response import VoiceResponse

from ivr.surveys.policy import Survey
from ivr.surveys.scoring import hints

START_URL = "/twilio/survey-start"
ANSWER_URL = "/twilio/survey-answer"
#: Seconds a question waits for a key or a word.
TIMEOUT = 6

RETRY = {"he-IL": "לא הבנו את התשובה. הקישו או אמרו מספר בין 1 ל-5.",
         "en-US": "Sorry, we did not get that. Please press or say a number from 1 to 5."}
GOODBYE = {"he-IL": "תודה, להתראות.", "en-US": "Thank you. Goodbye."}


def _say(target: VoiceResponse, text: str, language: str, voice: str | None) -> None:
    kwargs = {"language": language}
    if voice:
        kwargs["voice"] = voice
    target.say(text, **kwargs)


def question(survey: Survey, language: str, index: int, context: list[tuple[str, str]],
             *, intro: bool = False, retry: bool = False, tries: int = 0,
             cache: dict[tuple[object, ...], str] | None = None) -> str:
    """Question ``index`` (after the intro, or after "please answer 1 to 5"). The document
    is rendered once per question and kind into ``cache`` (the live surveys' own, so a
    reload starts afresh) with a placeholder for the call's context."""
    key = (id(survey), language, index, intro, retry, tries)
    template = cache.get(key) if cache is not None else None
    if template is None:
        template = _question(survey, language, index, intro, retry, tries)
        if cache is not None:
            cache[key] = template
    # The action URL sits in an XML attribute: & is written &amp; there.
    return template.replace(_CONTEXT, urlencode(context).replace("&", "&amp;"))


_CONTEXT = "\ue000"  # a private-use character no prompt contains


def _question(survey: Survey, language: str, index: int, intro: bool, retry: bool,
              tries: int) -> str:
    voice = survey.voice(language)
    r = VoiceResponse()
    if intro:
        _say(r, survey.intro[language], language, voice)  # type: ignore[index]
    if retry:
        _say(r, RETRY.get(language, RETRY["en-US"]), language, voice)
    action = f"{ANSWER_URL}?{_CONTEXT}&" + urlencode([("q", str(index)), ("t", str(tries))])
    kwargs: dict[str, object] = {
        "input": "dtmf speech" if survey.speech else "dtmf",
        "num_digits": 1, "timeout": TIMEOUT, "action": action, "method": "POST",
        "action_on_empty_result": True, "language": language,
    }
    if survey.speech:
        kwargs["speech_timeout"] = "auto"
        kwargs["hints"] = ", ".join(hints(language))
    g = r.gather(**kwargs)
    _say(g, survey.questions[index].text[language], language, voice)  # type: ignore[index]
    return str(r.to_xml())


def start_redirect(context: list[tuple[str, str]]) -> str:
    """After the agent: on to the survey's own request (``survey-start``)."""
    return _REDIRECT.replace(_CONTEXT, urlencode(context).replace("&", "&amp;"))


def _redirect_template() -> str:
    r = VoiceResponse()
    r.redirect(f"{START_URL}?{_CONTEXT}", method="POST")
    return str(r.to_xml())


_REDIRECT = _redirect_template()


def thanks(survey: Survey, language: str) -> str:
    r = VoiceResponse()
    _say(r, survey.thanks[language], language, survey.voice(language))  # type: ignore[index]
    r.hangup()
    return str(r.to_xml())


def goodbye(language: str, voice: str | None = None) -> str:
    """No survey to run (none configured, a follow-up without one): a polite end."""
    r = VoiceResponse()
    _say(r, GOODBYE.get(language, GOODBYE["en-US"]), language, voice)
    r.hangup()
    return str(r.to_xml())


def hangup() -> str:
    r = VoiceResponse()
    r.hangup()
    return str(r.to_xml())
