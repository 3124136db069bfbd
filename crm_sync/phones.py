"""Phone numbers to E.164 with the ``phonenumbers`` library, and withheld caller IDs.

Sources write the same number in many ways: ``050-123-4567``, ``+972 50 123 4567``,
``00972501234567``, ``972501234567``. ``normalize`` gives one E.164 form or a reason why not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

# What carriers put in From when the caller hides their number (Twilio passes these on).
WITHHELD = frozenset({
    "anonymous", "restricted", "unknown", "private", "unavailable", "blocked",
    "+266696687", "266696687", "+86282452253", "+7378742833", "+2562533", "+8656696687",
})

_NON_DIGITS = re.compile(r"[^\d+]")
_PERSONAL = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)
_R = phonenumbers.ValidationResult
_REASONS = {
    _R.TOO_SHORT: "too short for a phone number",
    _R.TOO_LONG: "too long for a phone number",
    _R.INVALID_LENGTH: "wrong number of digits",
    _R.INVALID_COUNTRY_CODE: "unknown country code",
}


@dataclass(frozen=True)
class Phone:
    e164: str | None
    reason: str | None = None  # why the number was rejected

    @property
    def ok(self) -> bool:
        return self.e164 is not None


def is_withheld(raw: str | None) -> bool:
    if raw is None:
        return True
    value = raw.strip().lower()
    return not value or value in WITHHELD or value.lstrip("+") in {
        w.lstrip("+") for w in WITHHELD if w.startswith("+")}


@lru_cache(maxsize=262_144)
def normalize(raw: str, region: str = "IL") -> Phone:
    """E.164 for a number written any common way, or the reason it is not a number."""
    text = raw.strip()
    if not text:
        return Phone(None, "empty phone number")
    if is_withheld(text):
        return Phone(None, f"withheld caller ID {raw!r}")
    compact = _NON_DIGITS.sub("", text)
    if not compact.strip("+"):
        return Phone(None, f"no digits in {raw!r}")
    candidates = [text]
    if not compact.startswith("+") and not compact.startswith("0"):
        # 972501234567: international digits written without + or 00.
        candidates.insert(0, "+" + compact)
    # Numbers the metadata knows to be allocated win; a number of a possible length and
    # shape is accepted too (customer data is older and newer than any metadata release).
    parsed = []
    for candidate in candidates:
        try:
            parsed.append(phonenumbers.parse(candidate, region))
        except NumberParseException:
            continue
    for number in parsed:
        if phonenumbers.is_valid_number(number):
            return Phone(phonenumbers.format_number(number, PhoneNumberFormat.E164))
    for number in parsed:
        if any(phonenumbers.is_possible_number_for_type(number, t) for t in _PERSONAL):
            return Phone(phonenumbers.format_number(number, PhoneNumberFormat.E164))
    if not parsed:
        try:
            phonenumbers.parse(text, region)
        except NumberParseException as exc:
            return Phone(None, f"not a phone number: {raw!r} ({exc._msg})")
    why = phonenumbers.is_possible_number_with_reason(parsed[-1]) if parsed else None
    detail = _REASONS.get(why, "not a possible number") if why is not None else "unparsable"
    return Phone(None, f"{detail}: {raw!r}")


def mask(e164: str | None) -> str:
    """For logs: +97250***4567."""
    if not e164:
        return "-"
    return e164[:6] + "***" + e164[-4:] if len(e164) > 10 else "***"
