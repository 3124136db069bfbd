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
# (Newer phonenumbers releases have it; pyproject allows older ones.)
_enable_pattern_cache = getattr(phonenumbers, "enable_pattern_cache", None)
if _enable_pattern_cache is not None:
    _enable_pattern_cache()

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


# The fast path. phonenumbers.parse + is_valid_number cost ~25 µs a number and a bulk import
# sees millions. Numbers written the common ways (digits, an optional leading "+", the
# separators " -.()") are read here by the rules parse applies, then judged by the same
# is_valid_number / is_possible_number_for_type calls as in _parse. Whenever a rule of parse
# could read the digits differently (a national prefix it may strip, leading zeros, an unknown
# country code, ...) or no reading is acceptable, the fast path answers None and _parse
# decides, so normalize gives exactly what _parse gives (tests/test_phones.py checks this).
_MAX_PARSE_INPUT = 250  # phonenumbers.parse rejects longer strings
_MIN_NSN, _MAX_NSN = 2, 17  # its bounds on a national significant number
_DIGIT_ALTERNATIVES = re.compile(r"[0-9]+(?:\|[0-9]+)*")


def _country_code_by_head() -> dict[str, tuple[int, int]]:
    """First three digits -> (country code, its length), the code parse extracts: the
    shortest prefix that is a known country code."""
    codes = {str(cc): cc for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
    table = {}
    for head in map(str, range(100, 1000)):
        for size in (1, 2, 3):
            if head[:size] in codes:
                table[head] = (codes[head[:size]], size)
                break
    return table


_COUNTRY_CODE_BY_HEAD = _country_code_by_head()
_NationalPrefix = tuple[tuple[str, ...], re.Pattern[str] | None]


def _national_prefix(meta: phonenumbers.PhoneMetadata | None) -> _NationalPrefix:
    """national_prefix_for_parsing as plain digit strings ("0", "0|180020") when it is that and
    has no transform rule, else as a pattern."""
    prefix = meta.national_prefix_for_parsing if meta is not None else None
    if not prefix or meta is None:
        return (), None
    if _DIGIT_ALTERNATIVES.fullmatch(prefix) and not meta.national_prefix_transform_rule:
        return tuple(prefix.split("|")), None
    return (), re.compile(prefix)


@cache
def _national_prefix_after(country_code: int) -> _NationalPrefix:
    """The national prefix parse may strip after this country code (its main region's)."""
    return _national_prefix(phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, phonenumbers.region_code_for_country_code(country_code)))


@dataclass(frozen=True)
class _Region:
    """What parse uses of the default region to read digits written without "+"."""

    country_code: int
    country_digits: str
    main: bool  # the main region of its country code (parse then keeps using its metadata)
    international_prefix: re.Pattern[str] | None
    national_prefix: _NationalPrefix
    general_pattern: re.Pattern[str] | None
    too_long: frozenset[int]  # lengths _test_number_length calls TOO_LONG
    prefix_strip: frozenset[int]  # lengths at which parse keeps a number stripped of the prefix


@lru_cache(maxsize=64)
def _region(region: str) -> _Region | None:
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return None  # parse refuses numbers without "+" for it
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if meta is None or meta.country_code is None or meta.general_desc is None:
        return None
    general = meta.general_desc
    lengths, local = general.possible_length, general.possible_length_local_only
    if not lengths:
        return None
    # _test_number_length(n, meta) for the general description, by len(n):
    too_long = frozenset(n for n in range(_MAX_PARSE_INPUT + 1)
                         if n not in local and n > lengths[-1])
    possible = frozenset(n for n in range(_MAX_PARSE_INPUT + 1)
                         if n not in local and (n == lengths[0] or n in lengths[1:]))
    return _Region(
        country_code=meta.country_code,
        country_digits=str(meta.country_code),
        main=phonenumbers.region_code_for_country_code(meta.country_code) == region,
        international_prefix=re.compile(meta.international_prefix)
        if meta.international_prefix else None,
        national_prefix=_national_prefix(meta),
        general_pattern=re.compile(general.national_number_pattern)
        if general.national_number_pattern else None,
        too_long=too_long,
        # parse strips unless the result is TOO_SHORT, IS_POSSIBLE_LOCAL_ONLY or INVALID_LENGTH
        prefix_strip=too_long | possible,
    )


def _international(digits: str) -> phonenumbers.PhoneNumber | None:
    """What parse makes of "+" + digits (or of the digits after an international prefix),
    or None when it may make something else of them or fail."""
    if len(digits) <= _MIN_NSN:
        return None
    found = _COUNTRY_CODE_BY_HEAD.get(digits[:3])  # no entry: starts with 0 or no known code
    if found is None:
        return None
    country_code, size = found
    nsn = digits[size:]
    if not _MIN_NSN <= len(nsn) <= _MAX_NSN or nsn[0] == "0":
        return None  # too short or long, or leading zeros (italian_leading_zero)
    plain, pattern = _national_prefix_after(country_code)
    if nsn.startswith(plain) or (pattern is not None and pattern.match(nsn)):
        return None  # parse may strip it as a national prefix
    return phonenumbers.PhoneNumber(country_code=country_code, national_number=int(nsn))


def _viable(digits: str, region: _Region) -> bool:
    """_match_national_number(digits, general_desc, False)."""
    pattern = region.general_pattern
    return pattern is not None and pattern.fullmatch(digits) is not None


def _strip_national_prefix(digits: str, region: _Region) -> str | None:
    """The digits _maybe_strip_national_prefix_carrier_code leaves, None when unsure."""
    plain, pattern = region.national_prefix
    if pattern is not None:
        return None if digits and pattern.match(digits) else digits
    for prefix in plain:  # the first alternative that matches, as re would take it
        if digits.startswith(prefix):
            rest = digits[len(prefix):]
            # kept only if the digits were viable with the prefix and are not without it
            return rest if _viable(rest, region) or not _viable(digits, region) else digits
    return digits


def _national(digits: str, region: _Region) -> phonenumbers.PhoneNumber | None:
    """What parse makes of digits written without "+" in the default region, or None when it
    may make something else of them or fail."""
    idd = region.international_prefix.match(digits) if region.international_prefix else None
    if idd is not None:  # 00972..., or 012/013/... in Israel
        return _international(digits[idd.end():])
    nsn = digits
    if digits.startswith(region.country_digits):
        # 97250...: parse takes 972 for the country code if the rest looks like a number and
        # the whole does not, or the whole is too long.
        rest = _strip_national_prefix(digits[len(region.country_digits):], region)
        if rest is None:
            return None
        if ((not _viable(digits, region) and _viable(rest, region))
                or len(digits) in region.too_long):
            if not region.main:
                return None  # parse goes on with the main region's metadata
            nsn = rest
    if len(nsn) < _MIN_NSN:
        return None
    stripped = _strip_national_prefix(nsn, region)
    if stripped is None:
        return None
    if len(stripped) in region.prefix_strip:
        nsn = stripped
    if not _MIN_NSN <= len(nsn) <= _MAX_NSN or nsn[0] == "0":
        return None  # parse fails, or leading zeros (italian_leading_zero)
    return phonenumbers.PhoneNumber(country_code=region.country_code, national_number=int(nsn))


_Desc = tuple[frozenset[int], re.Pattern[str]]  # possible lengths (empty: any), pattern
_TYPE_DESCS = ("mobile", "fixed_line", "premium_rate", "toll_free", "shared_cost", "voip",
               "personal_number", "pager", "uan", "voicemail")


def _desc(desc: phonenumbers.PhoneNumberDesc | None) -> _Desc | None:
    """_is_number_matching_desc's test of one description, None where it is always False."""
    if desc is None or not desc.national_number_pattern:
        return None
    return frozenset(desc.possible_length), re.compile(desc.national_number_pattern)


@cache
def _validity(country_code: int) -> tuple[_Desc, tuple[_Desc, ...]] | None:
    """What is_valid_number tests of a number of a country code that has one region: its
    general description, then any number type's (UNKNOWN is the only invalid type, so the
    order of the types does not matter; mobile, the usual one, goes first). None: ask
    is_valid_number (a code shared by several regions, where it first picks the region)."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if not regions or len(regions) != 1:
        return None
    meta = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, regions[0].upper())
    if meta is None or (regions[0] != phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY and
                        phonenumbers.country_code_for_valid_region(regions[0]) != country_code):
        return None
    general = _desc(meta.general_desc)
    if general is None:
        return None
    names = [n for n in _TYPE_DESCS
             if not (n == "mobile" and meta.same_mobile_and_fixed_line_pattern)]
    descs = tuple(d for d in (_desc(getattr(meta, n)) for n in names) if d is not None)
    return general, descs


def _valid(number: phonenumbers.PhoneNumber) -> bool:
    """phonenumbers.is_valid_number for the numbers the fast path builds (no leading zeros),
    with each pattern compiled once and the usual types tried first: a third of the cost."""
    tests = _validity(number.country_code) if not number.italian_leading_zero else None
    if tests is None:
        return phonenumbers.is_valid_number(number)
    nsn = str(number.national_number)
    general, types = tests
    return _matches(nsn, general) and any(_matches(nsn, desc) for desc in types)


def _matches(nsn: str, desc: _Desc) -> bool:
    """_is_number_matching_desc: a possible length (when any are given) and the pattern."""
    lengths, pattern = desc
    return (not lengths or len(nsn) in lengths) and pattern.fullmatch(nsn) is not None


def _possible(number: phonenumbers.PhoneNumber) -> bool:
    return any(phonenumbers.is_possible_number_for_type(number, t) for t in _PERSONAL)


def _e164(number: phonenumbers.PhoneNumber) -> Phone:
    # format_number(number, E164) is "+" + country code + national significant number, and
    # without leading zeros (the fast path builds none) that is str(national_number).
    return Phone(f"+{number.country_code}{number.national_number}")


def _normalize_fast(text: str, region: str) -> Phone | None:
    """What _parse gives for a number written a common way, or None: ask _parse."""
    if len(text) > _MAX_PARSE_INPUT:
        return None
    digits = (text.replace(" ", "").replace("-", "").replace(".", "")
              .replace("(", "").replace(")", ""))
    plus = digits.startswith("+")
    if plus:
        digits = digits[1:]
    if not (digits.isascii() and digits.isdigit()):
        return None
    if plus:
        number = _international(digits)
    else:
        default = _region(region)
        if default is None:
            return None
        if digits[0] != "0":
            # 972501234567: _parse reads "+" + digits first, then the digits in the default
            # region, and takes the first valid reading, else the first possible one.
            first = _international(digits)
            if first is None:
                return None
            if _valid(first):
                return _e164(first)
            second = _national(digits, default)
            if second is None:
                return None
            if _valid(second):
                return _e164(second)
            for number in (first, second):
                if _possible(number):
                    return _e164(number)
            return None
        number = _national(digits, default)
    if number is None:
        return None
    if _valid(number) or _possible(number):
        return _e164(number)
    return None  # _parse words the reason


def mask(e164: str | None) -> str:
    """For logs: +97250***4567."""
    if not e164:
        return "-"
    return e164[:6] + "***" + e164[-4:] if len(e164) > 10 else "***"
