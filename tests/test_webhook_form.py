"""The webhook's form reader (``ivr.calls.webhook.form_fields``) gives what
``dict(urllib.parse.parse_qsl(...))`` gives, for any text; and a NUL sent as itself or as
``%00`` never reaches the handlers."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.calls.webhook import _without_nul, form_fields

# The characters that matter to a form's reading, and some that do not.
PIECES = st.sampled_from(["&", "=", "%", "+", "%2B", "%20", "%00", "%zz", "%f", "%c3%a9",
                          "%ff%fe", "%E2%82%AC", "\0", "a", "Digits", "1", "CA12", "שלום",
                          "é", " ", ";", "?", "#", "%3D", "%26"])
TEXTS = st.lists(st.one_of(PIECES, st.text(max_size=4)), max_size=24).map("".join)


@settings(max_examples=600, deadline=None)
@given(TEXTS, st.booleans())
def test_the_same_answer_as_parse_qsl(text: str, keep_blank: bool) -> None:
    assert form_fields(text, keep_blank_values=keep_blank) == dict(
        parse_qsl(text, keep_blank_values=keep_blank))


@pytest.mark.parametrize("text", [
    "", "&", "&&", "=", "a", "a=", "=b", "a=b=c", "a=1&a=2", "a+b=c+d", "%2B972=%2B972",
    "From=%2B97250&Digits=&To=", "x=%zz&y=%E2%82", "k%00=v%00", "ש=ל&a=%D7%A9",
])
def test_examples(text: str) -> None:
    for keep in (True, False):
        assert form_fields(text, keep_blank_values=keep) == dict(
            parse_qsl(text, keep_blank_values=keep))


def test_a_twilio_body() -> None:
    form = {"CallSid": "CA" + "0" * 32, "From": "+972501234567", "Digits": "", "To": "+9723",
            "CallerName": "דנה כהן", "SpeechResult": "yes & no = maybe 100%"}
    assert form_fields(urlencode(form), keep_blank_values=True) == form
    assert form_fields(urlencode(form)) == {k: v for k, v in form.items() if v}


@pytest.mark.parametrize("text", ["CallSid=CA%00x&From=%2B1", "CallSid=CA\0x&From=%2B1"])
def test_nul_is_taken_out_of_values(text: str) -> None:
    fields = _without_nul(form_fields(text, keep_blank_values=True), text)
    assert fields == {"CallSid": "CAx", "From": "+1"}


def test_a_text_without_nul_is_given_back_as_it_is() -> None:
    fields = form_fields("CallSid=CA1&From=%2B1")
    assert _without_nul(fields, "CallSid=CA1&From=%2B1") is fields
