"""Phone numbers in every format the sources use come out as one E.164 number."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_sync.phones import is_withheld, mask, normalize


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
