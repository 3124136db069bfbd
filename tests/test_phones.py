"""Phone numbers in every format the sources use come out as one E.164 number."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_sync.phones import (
    _normalize_fast,
    _normalize_slow,
    _valid,
    _validity,
    is_withheld,
    mask,
    normalize,
)


@pytest.mark.parametrize("raw", [
    "050-123-4567", "+972 50 123 4567", "00972501234567", "972501234567", "0501234567",
    "(050) 123 4567", "050.123.4567", "+972-50-1234567",
])
def test_one_mobile_number_in_many_formats(raw: str) -> None:
    assert normalize(raw).e164 == "+972501234567"


@pytest.mark.parametrize(("raw", "e164"), [
    ("03-555-1234", "+97235551234"),
    ("+1 415 555 2671", "+14155552671"),
    ("+44 20 7946 0958", "+442079460958"),
])
def test_landlines_and_other_countries(raw: str, e164: str) -> None:
    assert normalize(raw).e164 == e164


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "empty phone number"),
    ("abc", "no digits in 'abc'"),
    ("12345", "too short for a phone number: '12345'"),
    ("anonymous", "withheld caller ID 'anonymous'"),
    ("+266696687", "withheld caller ID '+266696687'"),
])
def test_rejections_say_why(raw: str, reason: str) -> None:
    result = normalize(raw)
    assert (result.e164, result.reason) == (None, reason)


@pytest.mark.parametrize("raw", ["anonymous", "Restricted", "+266696687", "266696687", "",
                                 None, "UNKNOWN"])
def test_withheld_caller_ids(raw: str | None) -> None:
    assert is_withheld(raw)


def test_a_real_number_is_not_withheld() -> None:
    assert not is_withheld("+972501234567")


def test_mask_keeps_the_prefix_and_last_four() -> None:
    assert mask("+972501234567") == "+97250***4567"


# Israeli mobile numbers: 05X followed by seven digits.
mobiles = st.tuples(st.sampled_from("0234589"), st.integers(0, 9_999_999)).map(
    lambda t: f"5{t[0]}{t[1]:07d}")


def _formats(national: str) -> list[str]:
    """The ways branches and billing systems write the same number."""
    return [
        "0" + national,
        f"0{national[:2]}-{national[2:5]}-{national[5:]}",
        f"+972 {national[:2]} {national[2:5]} {national[5:]}",
        "00972" + national,
        "972" + national,
        f"(0{national[:2]}) {national[2:]}",
    ]


@given(mobiles)
def test_every_format_of_a_mobile_number_is_the_same_e164(national: str) -> None:
    results = {normalize(f).e164 for f in _formats(national)}
    assert results == {"+972" + national}


@given(st.text(max_size=40))
def test_any_text_gives_a_number_or_a_reason(raw: str) -> None:
    result = normalize(raw)
    assert (result.e164 is None) != (result.reason is None)
    if result.e164 is not None:
        assert result.e164.startswith("+") and result.e164[1:].isdigit()


# The fast path (no phonenumbers.parse) must give exactly what the general path gives.

SEPARATORS = ["", "", "", " ", "-", ".", "(", ")"]


@st.composite
def written(draw: st.DrawFn, prefix: str, nsn: str) -> str:
    """prefix + nsn with a random separator (or none) after each character, and maybe before."""
    chars = prefix + nsn
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(chars) + 1,
                         max_size=len(chars) + 1))
    return seps[0] + "".join(c + sep for c, sep in zip(chars, seps[1:], strict=True))


def digits(n: int) -> st.SearchStrategy[str]:
    return st.integers(0, 10**n - 1).map(lambda i: f"{i:0{n}d}")


# National significant numbers: Israeli mobiles 05X, landlines 02/03/04/08/09, VoIP 07X;
# American, British and German ones.
NSNS = {
    "IL": st.one_of(
        st.tuples(st.sampled_from("0123456789"), digits(7)).map(lambda t: f"5{t[0]}{t[1]}"),
        st.tuples(st.sampled_from("23489"), digits(7)).map("".join),
        st.tuples(st.sampled_from("0123456789"), digits(7)).map(lambda t: f"7{t[0]}{t[1]}"),
    ),
    "US": st.tuples(st.integers(200, 999), st.integers(200, 999), digits(4)).map(
        lambda t: f"{t[0]}{t[1]}{t[2]}"),
    "GB": st.one_of(st.just("20").flatmap(lambda p: digits(8).map(p.__add__)),
                    st.sampled_from(["7", "1"]).flatmap(lambda p: digits(9).map(p.__add__))),
    "DE": st.one_of(st.integers(6, 8).flatmap(lambda n: digits(n).map("30".__add__)),
                    digits(8).map("151".__add__), digits(7).map("89".__add__)),
}
# How sources prefix them: national, +cc, international prefix + cc, bare cc, nothing.
PREFIXES = {
    "IL": ["0", "+972", "00972", "972", "", "012972", "+9720"],
    "US": ["1", "+1", "0111", "", "+", "011972"],
    "GB": ["0", "+44", "0044", "44", "", "+440"],
    "DE": ["0", "+49", "0049", "49", "", "00972"],
}


@st.composite
def regional_numbers(draw: st.DrawFn) -> tuple[str, str]:
    region = draw(st.sampled_from(sorted(NSNS)))
    prefix = draw(st.sampled_from(PREFIXES[region]))
    return draw(written(prefix, draw(NSNS[region]))), region


random_digits = st.tuples(
    st.sampled_from(["", "+", "00", "0", "+0", "972", "+972"]),
    st.text("0123456789", min_size=1, max_size=18),
).flatmap(lambda t: written(*t))


def assert_same_as_slow_path(raw: str, region: str) -> None:
    assert normalize.__wrapped__(raw, region) == _normalize_slow(raw, region)


@settings(max_examples=600)
@given(regional_numbers())
def test_fast_path_agrees_with_parse_for_the_usual_formats(case: tuple[str, str]) -> None:
    assert_same_as_slow_path(*case)


@settings(max_examples=400)
@given(random_digits, st.sampled_from(["IL", "US", "GB", "DE"]))
def test_fast_path_agrees_with_parse_for_any_digits(raw: str, region: str) -> None:
    assert_same_as_slow_path(raw, region)


@settings(max_examples=200)
@given(st.sampled_from(["0", "+972", "00972", "972"]).flatmap(
    lambda prefix: NSNS["IL"].flatmap(lambda nsn: written(prefix, nsn))))
def test_israeli_numbers_written_the_usual_ways_take_the_fast_path(raw: str) -> None:
    assert _normalize_fast(raw.strip(), "IL") is not None
    assert_same_as_slow_path(raw, "IL")


@pytest.mark.parametrize(("raw", "region"), [
    ("+378899556", "SM"),  # national prefix after the country code: parse rewrites it
    ("00378808913", "SM"),
    ("+67216443", "NF"),
    ("+2618759700", "MG"),
    ("6196729175", "CX"),  # country code of the default region written without "+"
    ("44595189", "JE"),
    ("59998304", "BQ"),
])
def test_fast_path_agrees_with_parse_where_parse_rewrites_the_digits(raw: str, region: str) -> None:
    assert_same_as_slow_path(raw, region)


@pytest.mark.parametrize(("raw", "region", "e164"), [
    ("050-123-4567", "IL", "+972501234567"),
    ("+972 50 123 4567", "IL", "+972501234567"),
    ("00972501234567", "IL", "+972501234567"),
    ("972501234567", "IL", "+972501234567"),
    ("0501234567", "IL", "+972501234567"),
    ("(050) 123 4567", "IL", "+972501234567"),
    ("03-555-1234", "IL", "+97235551234"),
    ("+1 415 555 2671", "IL", "+14155552671"),
    ("(415) 555-2671", "US", "+14155552671"),
    ("020 7946 0958", "GB", "+442079460958"),
    ("030 1234567", "DE", "+49301234567"),
])
def test_common_formats_do_not_need_phonenumbers_parse(
        raw: str, region: str, e164: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_parse(*args: object, **kwargs: object) -> phonenumbers.PhoneNumber:
        raise AssertionError("phonenumbers.parse called")

    monkeypatch.setattr(phonenumbers, "parse", no_parse)
    normalize.cache_clear()
    assert normalize(raw, region) == normalize.__wrapped__(raw, region)
    assert normalize(raw, region).e164 == e164


def test_odd_input_still_takes_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    parse = phonenumbers.parse

    def counting_parse(number: str, region: str | None = None) -> phonenumbers.PhoneNumber:
        calls.append(number)
        return parse(number, region)

    monkeypatch.setattr(phonenumbers, "parse", counting_parse)
    normalize.cache_clear()
    assert normalize("tel: 050-123-4567").e164 == "+972501234567"
    assert normalize("12345").reason == "too short for a phone number: '12345'"
    assert calls


# The fast path's validity test must be is_valid_number's, for every country code.

COUNTRY_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def _examples() -> list[phonenumbers.PhoneNumber]:
    """Every region's example number of every type: valid numbers of each kind."""
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in vars(phonenumbers.PhoneNumberType).values():
            if isinstance(kind, int):
                number = phonenumbers.example_number_for_type(region, kind)
                if number is not None and not number.italian_leading_zero:
                    found.append(number)
    return found


def test_validity_agrees_with_is_valid_number_on_every_example_number() -> None:
    examples = _examples()
    assert len(examples) > 1000
    for number in examples:
        assert _valid(number) == phonenumbers.is_valid_number(number), number
        # one digit more, one less, the last one changed: mostly invalid numbers
        nsn = str(number.national_number)
        for other in (nsn + "7", nsn[:-1], nsn[:-1] + str((int(nsn[-1]) + 5) % 10)):
            if other and other[0] != "0":
                changed = phonenumbers.PhoneNumber(country_code=number.country_code,
                                                   national_number=int(other))
                assert _valid(changed) == phonenumbers.is_valid_number(changed), changed


def test_validity_agrees_with_is_valid_number_for_any_digits() -> None:
    rng = random.Random(18)
    for code in COUNTRY_CODES:
        for size in range(2, 18):
            for _ in range(6):
                number = phonenumbers.PhoneNumber(
                    country_code=code, national_number=rng.randrange(10 ** (size - 1), 10**size))
                assert _valid(number) == phonenumbers.is_valid_number(number), number


def test_validity_of_a_code_of_several_regions_is_is_valid_number_s() -> None:
    assert _validity(1) is None and _validity(44) is None  # NANPA; GB, GG, IM, JE
    assert _validity(972) is not None
    us = phonenumbers.parse("+1 415 555 2671")
    assert _valid(us) is phonenumbers.is_valid_number(us) is True
