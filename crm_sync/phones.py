"""Phone numbers to E.164 with the ``phonenumbers`` library, and withheld caller IDs.

Sources write the same number in many ways: ``050-123-4567``, ``+972 50 123 4567``,
``00972501234567``, ``972501234567``. ``normalize`` gives one E.164 form or a reason why not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

# What carriers put in From when the caller hides their number (Twilio passes these on).
WITHHELD = frozenset({
    "anonymous", "restricted", "unknown", "private", "unavailable", "blocked",
    "+266696687", "266696687", "+86282452253", "+7378742833", "+2562533", "+8656696687",
})

# Keep phonenumbers' compiled metadata patterns (a bounded set) instead of looking each one up
# in re's cache on every use: a quarter off is_valid_number, which every number goes through.
phonenumbers.enable_pattern_cache()

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


_WITHHELD_DIGITS = frozenset(w.lstrip("+") for w in WITHHELD if w.startswith("+"))


def is_withheld(raw: str | None) -> bool:
    if raw is None:
        return True
    value = raw.strip().lower()
    return not value or value in WITHHELD or value.lstrip("+") in _WITHHELD_DIGITS


@lru_cache(maxsize=262_144)
def normalize(raw: str, region: str = "IL") -> Phone:
    """E.164 for a number written any common way, or the reason it is not a number."""
    text = raw.strip()
    if not text:
        return Phone(None, "empty phone number")
    if is_withheld(text):
        return Phone(None, f"withheld caller ID {raw!r}")
    fast = _normalize_fast(text, region)
    return fast if fast is not None else _parse(raw, text, region)


def _normalize_slow(raw: str, region: str = "IL") -> Phone:
    """``normalize`` without the cache and the fast path: what the fast path must agree with."""
    text = raw.strip()
    if not text:
        return Phone(None, "empty phone number")
    if is_withheld(text):
        return Phone(None, f"withheld caller ID {raw!r}")
    return _parse(raw, text, region)


def _parse(raw: str, text: str, region: str) -> Phone:
    """The general path: ``phonenumbers.parse`` every reading of the number, pick the best."""
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


# The fast path. phonenumbers.parse + is_valid_number cost ~25 µs a number; a bulk import
# sees millions. Numbers written the common ways (separators " -.()", an optional leading
# "+", digits) are read here by the same rules parse applies, and is_valid_number decides.
# Whenever a rule of parse could make it read the digits differently (a national prefix it
# might strip, a leading zero, an unknown country code, ...) or the number is not valid, the
# fast path answers None and _parse decides, so the result is always the one _parse gives.
_SEPARATORS = str.maketrans("", "", " -.()")
_PLUS_DIGITS = re.compile(r"\+?[0-9]+")
_DIGIT_ALTERNATIVES = re.compile(r"[0-9]+(?:\|[0-9]+)*")
_MAX_PARSE_INPUT = 250  # phonenumbers.parse rejects longer strings
_MIN_NSN, _MAX_NSN = 2, 17  # phonenumbers' bounds on the national significant number
_COUNTRY_CODES = {str(cc): cc for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}


@dataclass(frozen=True)
class _Region:
    """What parse needs of the default region to read a number without "+"."""

    country_code: int
    country_digits: str
    international_prefix: re.Pattern[str] | None
    # national_prefix_for_parsing when it is plain digits ("0", "0|180020") with no transform
    # rule; otherwise the compiled pattern, and a number it matches goes the slow way.
    national_prefixes: tuple[str, ...]
    national_prefix_pattern: re.Pattern[str] | None
    general_pattern: re.Pattern[str] | None
    possible_lengths: frozenset[int]


@lru_cache(maxsize=64)
def _region(region: str) -> _Region | None:
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return None  # parse refuses numbers without "+" for it
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if meta is None or meta.country_code is None:
        return None
    prefix = meta.national_prefix_for_parsing or ""
    plain = bool(_DIGIT_ALTERNATIVES.fullmatch(prefix)) and not meta.national_prefix_transform_rule
    general = meta.general_desc
    pattern = general.national_number_pattern if general is not None else None
    lengths = frozenset(general.possible_length) if general is not None else frozenset()
    local = frozenset(general.possible_length_local_only) if general is not None else frozenset()
    return _Region(
        country_code=meta.country_code,
        country_digits=str(meta.country_code),
        international_prefix=re.compile(meta.international_prefix)
        if meta.international_prefix else None,
        national_prefixes=tuple(prefix.split("|")) if prefix and plain else (),
        national_prefix_pattern=re.compile(prefix) if prefix and not plain else None,
        general_pattern=re.compile(pattern) if pattern else None,
        possible_lengths=lengths - local - {-1},
    )


@cache
def _national_prefix_of(country_code: int) -> re.Pattern[str] | None:
    """national_prefix_for_parsing of the metadata parse uses for numbers with this code."""
    meta = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, phonenumbers.region_code_for_country_code(country_code))
    prefix = meta.national_prefix_for_parsing if meta is not None else None
    return re.compile(prefix) if prefix else None


def _international(digits: str) -> phonenumbers.PhoneNumber | None:
    """The number parse makes of "+" + digits (or of digits after an international prefix),
    or None when parse might make something else of it (or fail)."""
    if len(digits) <= _MIN_NSN or digits[0] == "0":
        return None
    for size in (1, 2, 3):  # parse takes the shortest known country code
        country_code = _COUNTRY_CODES.get(digits[:size])
        if country_code is not None:
            break
    else:
        return None
    nsn = digits[size:]
    if not _MIN_NSN <= len(nsn) <= _MAX_NSN or nsn[0] == "0":
        return None  # too short/long, or leading zeros (italian_leading_zero)
    prefix = _national_prefix_of(country_code)
    if prefix is not None and prefix.match(nsn):
        return None  # parse may strip a national prefix after the country code
    return phonenumbers.PhoneNumber(country_code=country_code, national_number=int(nsn))


def _national(digits: str, region: _Region) -> phonenumbers.PhoneNumber | None:
    """The number parse makes of digits without "+" in the default region, or None when
    parse might make something else of it."""
    idd = region.international_prefix.match(digits) if region.international_prefix else None
    if idd is not None:  # 00972..., or 012/013/... in Israel
        return _international(digits[idd.end():])
    if digits.startswith(region.country_digits):
        return None  # parse may take these digits as the country code
    nsn = digits
    if region.national_prefix_pattern is not None and region.national_prefix_pattern.match(digits):
        return None
    for prefix in region.national_prefixes:
        if digits.startswith(prefix):
            nsn = digits[len(prefix):]
            # parse strips the prefix when the rest is a viable number of a possible length;
            # otherwise it keeps it, and that is for the slow path.
            if (region.general_pattern is None or not region.general_pattern.fullmatch(nsn)
                    or len(nsn) not in region.possible_lengths):
                return None
            break
    if not _MIN_NSN <= len(nsn) <= _MAX_NSN or nsn[0] == "0":
        return None
    return phonenumbers.PhoneNumber(country_code=region.country_code, national_number=int(nsn))


def _e164(number: phonenumbers.PhoneNumber) -> Phone:
    # format_number(number, E164) is "+" + country code + national significant number, and
    # with no leading zeros (the fast path never builds one) that is str(national_number).
    return Phone(f"+{number.country_code}{number.national_number}")


def _normalize_fast(text: str, region: str) -> Phone | None:
    """What _parse gives for a number written a common way; None to ask _parse."""
    if len(text) > _MAX_PARSE_INPUT:
        return None
    digits = text.translate(_SEPARATORS)
    if not _PLUS_DIGITS.fullmatch(digits):
        return None
    if digits[0] == "+":
        candidates = [_international(digits[1:])]
    else:
        default = _region(region)
        if default is None:
            return None
        candidates = [_national(digits, default)]
        if digits[0] != "0":
            # 972501234567: _parse reads it as "+" + digits first, then in the default region.
            candidates.insert(0, _international(digits))
    # The same choice as _parse makes, over the same numbers: the first valid one, else the
    # first possible personal one. A number the fast path cannot vouch for (None) could be
    # parse's choice or change it, unless an earlier one is valid.
    for number in candidates:
        if number is None:
            return None
        if phonenumbers.is_valid_number(number):
            return _e164(number)
    for number in candidates:
        if number is not None and any(
                phonenumbers.is_possible_number_for_type(number, t) for t in _PERSONAL):
            return _e164(number)
    return None  # _parse words the reason


def mask(e164: str | None) -> str:
    """For logs: +97250***4567."""
    if not e164:
        return "-"
    return e164[:6] + "***" + e164[-4:] if len(e164) > 10 else "***"
