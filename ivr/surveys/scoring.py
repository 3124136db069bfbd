"""What a caller's answer to a survey question means, and what the survey does next.

Pure: (key pressed / words spoken, language) -> a score 1..5, ``invalid`` or ``none``;
(question, tries, answer) -> the next step. The spoken scale is per language; the longest
phrase heard wins ("very dissatisfied" is 1, not the 4 of "satisfied" inside it), as the
menu engine matches speech.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ivr.surveys.policy import SCALE

#: The words of each score, per language (a digit spoken as a word counts too).
PHRASES: dict[str, dict[int, tuple[str, ...]]] = {
    "en-US": {
        5: ("very satisfied", "extremely satisfied", "excellent", "very good", "five"),
        4: ("satisfied", "good", "pleased", "four"),
        3: ("neutral", "okay", "ok", "so so", "average", "three"),
        2: ("dissatisfied", "unsatisfied", "not satisfied", "bad", "poor", "two"),
        1: ("very dissatisfied", "very unsatisfied", "not satisfied at all", "very bad",
            "terrible", "awful", "one"),
    },
    "he-IL": {
        5: ("מרוצה מאוד", "מאוד מרוצה", "מרוצה מאד", "מאד מרוצה", "מצוין", "מעולה", "חמש"),
        4: ("מרוצה", "טוב", "ארבע"),
        3: ("בסדר", "ככה ככה", "סביר", "שלוש"),
        2: ("לא מרוצה", "לא טוב", "גרוע", "שתיים", "שתים"),
        1: ("מאוד לא מרוצה", "מאד לא מרוצה", "לא מרוצה בכלל", "גרוע מאוד", "נורא", "אחת",
            "אחד"),
    },
}

#: Hints for Twilio's speech recogniser: the phrases of a language.
def hints(language: str) -> list[str]:
    return [p for score in sorted(PHRASES.get(language, {}), reverse=True)
            for p in PHRASES[language][score]]


_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+")


def _normal(text: str) -> str:
    return " " + _SPACE.sub(" ", _PUNCT.sub(" ", text.lower())).strip() + " "


@dataclass(frozen=True)
class Heard:
    """A caller's answer: ``score`` (1..5) when understood."""

    kind: Literal["score", "invalid", "none"]
    score: int | None = None
    via: Literal["dtmf", "speech"] | None = None
    speech: str | None = None


def understand(digits: str | None, speech: str | None, language: str, *,
               speech_on: bool = True) -> Heard:
    """A key 1..5 is a score; any other key is invalid. Spoken words: the longest phrase of
    the language's scale heard (or a digit 1..5 said), else invalid. Nothing: none."""
    digits = (digits or "").strip()
    if digits:
        if len(digits) == 1 and digits.isdigit() and 1 <= int(digits) <= SCALE:
            return Heard("score", int(digits), "dtmf")
        return Heard("invalid", via="dtmf")
    said = (speech or "").strip()
    if not said or not speech_on:
        return Heard("none") if not said else Heard("invalid", via="speech", speech=said)
    text = _normal(said)
    best: tuple[int, int] | None = None  # (phrase length, score)
    for score, phrases in PHRASES.get(language, {}).items():
        for phrase in phrases:
            if f" {phrase} " in text and (best is None or len(phrase) > best[0]):
                best = (len(phrase), score)
    if best is None:
        numbers = [int(t) for t in text.split() if t.isdigit() and 1 <= int(t) <= SCALE]
        if len(set(numbers)) == 1:
            best = (1, numbers[0])
    if best is None:
        return Heard("invalid", via="speech", speech=said[:200])
    return Heard("score", best[1], "speech", said[:200])


@dataclass(frozen=True)
class Step:
    """What the survey does after an answer: ``ask`` question ``index`` (``retry``: the
    same question again, after "please answer 1 to 5"), or ``end`` (``completed``: every
    question answered; else the caller stopped answering)."""

    kind: Literal["ask", "end"]
    index: int = 0
    tries: int = 0
    retry: bool = False
    completed: bool = False


def next_step(index: int, tries: int, heard: Heard, questions: int, max_tries: int = 2,
              ) -> Step:
    """After question ``index`` (0-based) heard ``heard`` on try ``tries`` (0-based)."""
    if heard.kind == "score":
        if index + 1 < questions:
            return Step("ask", index + 1)
        return Step("end", completed=True)
    if tries + 1 < max_tries:
        return Step("ask", index, tries + 1, retry=heard.kind == "invalid")
    return Step("end")


def is_low(score: int, threshold: int) -> bool:
    return score <= threshold
