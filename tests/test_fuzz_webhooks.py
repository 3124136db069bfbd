"""Fuzzing the Twilio webhooks: properly signed requests with arbitrary form fields and query
parameters, calls walked from /twilio/voice through the URLs each answer hands back, and raw
bodies that are no form at all.

Whatever comes in, the answer is a 2xx whose body is TwiML (XML with a <Response> root) or a
4xx; never a 5xx, and no exception is logged inside (a handler that falls back to the safe
queue after an exception hides a bug from the caller but not from this test).

Examples are bounded and derandomized (the same examples on every run, no .hypothesis
directory): see ``FUZZ`` below.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit
from xml.etree import ElementTree as ET

import defusedxml.ElementTree as SafeET
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from ivr.app import TWILIO_ROUTES as ROUTES
from ivr.calls.webhook import MAX_BODY
from tests.agent_fixtures import available, login
from tests.conftest import TOKEN
from tests.twilio import BASE, call_params, new_sid

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])
# A failing example with huge strings warns that its repr is large: not the failure itself.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
PATHS = [route.path for route in ROUTES]
VALIDATOR = RequestValidator(TOKEN)
Response = Any  # the test client's (httpx2's) response

# -------------------------------------------------------------------------- strategies

ANY_CHAR = st.characters(codec="utf-8")  # every code point but the surrogates: BMP and beyond
ODD = st.sampled_from([
    "", " ", "\x00", "\x00\x01\x1f\x7f", "\r\n", "\t", "%", "%zz", "%ff", "&", "=", "+", "?",
    "#", "*", "<", ">", "]]>", "&amp;", "\"'", "\\", "😀", "\U0010ffff", "\U0001f1ee\U0001f1f1",
    "\ufeff", "\u202e", "\u200f", "שלום", "٣", "１", "-1", "0", "00", "1e9", "nan", "inf",
    "²", "¹²", "9999999999", "999999999999999999999", "+972501234567", "972501234567", "+1",
    "CA" + "f" * 32,
    "CA" + "0" * 100, "None", "null", "true",
])
HUGE = st.builds(lambda c, n: c * n, ANY_CHAR, st.integers(1_000, 20_000))
TEXT = st.one_of(ODD, st.text(max_size=30), st.text(ANY_CHAR, max_size=200), HUGE)
# Query values are bounded tighter: every URL Twilio calls is one we wrote (and httpx refuses
# URLs over 64 kB).
QTEXT = st.one_of(ODD, st.text(max_size=30), st.text(ANY_CHAR, max_size=200),
                  st.builds(lambda c, n: c * n, ANY_CHAR, st.integers(100, 1_500)))
DIGITS = st.one_of(st.sampled_from(["1", "2", "3", "4", "9", "0", "#", "*", "12", "1001"]),
                   st.from_regex(r"[0-9#*]{0,20}", fullmatch=True), TEXT)
CALL_STATUS = st.one_of(st.sampled_from(["queued", "ringing", "in-progress", "completed",
                                         "busy", "failed", "no-answer", "canceled"]), TEXT)
QUEUE_RESULT = st.one_of(st.sampled_from(["bridged", "hangup", "queue-full", "error",
                                          "leave", "redirected", "system-error"]), TEXT)
DIAL_STATUS = st.one_of(st.sampled_from(["completed", "answered", "busy", "no-answer",
                                         "failed", "canceled"]), TEXT)
POSITION = st.one_of(st.integers(-5, 10**12).map(str), TEXT)
FIELDS = {"Digits": DIGITS, "SpeechResult": TEXT, "Confidence": TEXT, "From": TEXT,
          "To": TEXT, "CallSid": TEXT, "CallStatus": CALL_STATUS, "QueueResult": QUEUE_RESULT,
          "DialCallStatus": DIAL_STATUS, "QueuePosition": POSITION, "SequenceNumber": TEXT,
          "CallDuration": TEXT, "FromCountry": TEXT}
NUMBERISH = st.sampled_from(["²", "¹²", "٣", "１", "0x1", " 1", "1 "])  # digits to isdigit
STEP = st.one_of(st.integers(0, 12).map(str), NUMBERISH, QTEXT)
QUERY = st.fixed_dictionaries({}, optional={
    "s": STEP, "a": st.one_of(st.integers(0, 10**12).map(str), NUMBERISH, QTEXT),
    "c": st.one_of(st.integers(0, 10**12).map(str), NUMBERISH, QTEXT), "q": QTEXT,
    "lang": st.one_of(st.sampled_from(["he-IL", "en-US", "xx"]), QTEXT),
    "x": QTEXT,
})


@st.composite
def form(draw: st.DrawFn, base: dict[str, str] | None = None) -> dict[str, str]:
    """Twilio's form fields, some of them replaced, dropped or added at random."""
    params = dict(base if base is not None else call_params("CA" + "1" * 32))
    for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), unique=True, max_size=6)):
        params[name] = draw(FIELDS[name])
    for name in draw(st.lists(st.sampled_from(sorted(params)), unique=True, max_size=2)):
        params.pop(name, None)
    params.update(draw(st.dictionaries(st.text(ANY_CHAR, min_size=1, max_size=10), TEXT,
                                       max_size=2)))
    return params


# ---------------------------------------------------------------------------- checking


def send(client: TestClient, path: str, query: dict[str, str],
         params: dict[str, str]) -> Response:
    return signed_post(client, path, query, params)


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@contextmanager
def no_exception_logged() -> Iterator[None]:
    """Fail when anything logged an exception (``log.exception``) meanwhile."""
    handler = _Errors()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    except BaseException as exc:
        for record in handler.records:
            exc.add_note(f"logged meanwhile: {record.getMessage()}: {record.exc_info!r}")
        raise
    finally:
        root.removeHandler(handler)
    if handler.records:
        first = handler.records[0]
        assert first.exc_info is not None
        raise AssertionError(f"logged an exception: {first.getMessage()}") from first.exc_info[1]


def signed_post(client: TestClient, path: str, query: dict[str, str],
                params: dict[str, str]) -> Response:
    """POST like Twilio: the signature over the URL exactly as it is sent and the form."""
    qs = urlencode(query, quote_via=quote)
    url = str(httpx.URL(BASE + path + (f"?{qs}" if qs else "")))
    signature = VALIDATOR.compute_signature(url, params)
    target = url[len(BASE):]
    return client.post(target, data=params, headers={"X-Twilio-Signature": signature})


def twiml_or_4xx(response: Response | None, *, signed: bool = True,
                 ) -> ET.Element | None:
    """A 2xx with TwiML (the root), or a 4xx (None). Signed requests are never refused 403."""
    if response is None:
        return None
    status = response.status_code
    if 400 <= status < 500:
        assert not (signed and status == 403), response.text
        return None
    assert 200 <= status < 300, (f"HTTP {status} from {str(response.request.url)[:300]}: "
                                 f"{response.text[:300]}")
    assert response.headers["content-type"].startswith("text/xml"), response.headers
    root: ET.Element = SafeET.fromstring(response.content)
    assert root.tag == "Response", response.text[:300]
    return root


def next_urls(root: ET.Element) -> list[str]:
    """Every /twilio/ URL an answer hands Twilio: actions, wait and status callbacks, the
    redirects."""
    urls = []
    for el in root.iter():
        for attr in ("action", "waitUrl", "statusCallback", "url"):
            value = el.get(attr)
            if value:
                urls.append(value)
        if el.tag == "Redirect" and el.text:
            urls.append(el.text.strip())
    out = []
    for url in urls:
        parts = urlsplit(url)
        if parts.path.startswith("/twilio/"):
            out.append(url[url.index("/twilio/"):])
    return out


def post_url(client: TestClient, url: str, params: dict[str, str]) -> Response | None:
    parts = urlsplit(url)
    return send(client, parts.path, dict(parse_qsl(parts.query)), params)


# --------------------------------------------------------------------------------- tests


@pytest.fixture
def agent_ready(app_client: TestClient, people: dict[str, int]) -> TestClient:
    """The quiet app (no background routing) with an agent available for the calls."""
    available(app_client, login(app_client, "dana.agent"))
    return app_client


@FUZZ
@given(path=st.sampled_from(PATHS), query=QUERY, params=form())
def test_any_signed_request_to_any_route(agent_ready: TestClient, path: str,
                                         query: dict[str, str], params: dict[str, str]) -> None:
    """Every route, arbitrary fields and query parameters (mostly calls nobody started)."""
    with no_exception_logged():
        twiml_or_4xx(send(agent_ready, path, query, params))


# What Twilio would plausibly post at a step (so walks get past the menus into queues, the
# wait loop, the agent's dial), before the fuzzed fields change some of it.
OUTCOME = st.fixed_dictionaries({
    "Digits": st.sampled_from(["1", "2", "3", "0", "9", "1001", ""]),
    "QueueResult": st.sampled_from(["leave", "redirected", "bridged", "hangup", "error"]),
    "DialCallStatus": st.sampled_from(["completed", "answered", "busy", "no-answer"]),
    "QueuePosition": st.sampled_from(["1", "2"]),
})


@st.composite
def step_fields(draw: st.DrawFn) -> dict[str, str]:
    return draw(form({**call_params("CA" + "1" * 32), **draw(OUTCOME)}))


# One step of a walk: which URL of the last answer to follow (or, when the choice is 0, an
# arbitrary route with an arbitrary query instead), and the fields to post there.
STEPS = st.lists(st.tuples(st.integers(0, 9), step_fields(), st.sampled_from(PATHS), QUERY),
                 min_size=1, max_size=8)


@FUZZ
@given(start=form(), steps=STEPS)
def test_walking_calls_with_arbitrary_input(
        agent_ready: TestClient, start: dict[str, str],
        steps: list[tuple[int, dict[str, str], str, dict[str, str]]]) -> None:
    """A call starts properly, then the URLs of each answer are followed with fuzzed fields
    (the menu steps, queues, the wait loop, the agent's dial), now and then an arbitrary
    route or query in between. Every run is a new call (its CallSid is not drawn, so a
    replayed example does not meet the call it made before)."""
    call_sid = new_sid()
    with no_exception_logged():
        root = twiml_or_4xx(signed_post(agent_ready, "/twilio/voice", {},
                                        {**start, "CallSid": call_sid}))
        for choice, drawn, path, query in steps:
            fields = {**drawn, "CallSid": call_sid}
            urls = next_urls(root) if root is not None else []
            if urls and choice:
                response = post_url(agent_ready, urls[choice % len(urls)], fields)
            else:
                response = send(agent_ready, path, query, fields)
            root = twiml_or_4xx(response) or root


RAW = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from([b"%", b"%zz", b"%f", b"%ff%fe", b"%c3%28", b"%ed%a0%80", b"%00",
                              b"=", b"&", b"+", b";", b"CallSid=CA1", b"Digits=1", b"\xff",
                              b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00",
                              b"s=1", "שלום".encode()]), max_size=20).map(b"".join),
)


@FUZZ
@given(path=st.sampled_from(PATHS), body=RAW, sign=st.booleans(),
       content_type=st.sampled_from(["application/x-www-form-urlencoded", "text/plain",
                                     "multipart/form-data", "application/json"]))
def test_raw_bodies(agent_ready: TestClient, path: str, body: bytes, sign: bool,
                    content_type: str) -> None:
    """Bodies that are no proper form: invalid UTF-8, broken percent-encoding. Signed over
    what the server will read from them where that is text, else not signed at all."""
    headers = {"Content-Type": content_type}
    signed = False
    try:
        fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        fields = None
    if sign and fields is not None:
        headers["X-Twilio-Signature"] = VALIDATOR.compute_signature(BASE + path, fields)
        signed = True
    with no_exception_logged():
        twiml_or_4xx(agent_ready.post(path, content=body, headers=headers), signed=signed)


def test_a_body_over_the_limit_is_refused(client: TestClient) -> None:
    params = call_params("CA" + "2" * 32, SpeechResult="x" * MAX_BODY)
    assert signed_post(client, "/twilio/gather", {"s": "1"}, params).status_code == 413


# ------------------------------------------------------- regressions the fuzzing found


def _says_menu(response: Response) -> ET.Element:
    root = twiml_or_4xx(response)
    assert root is not None and root.find("Gather") is not None, response.text
    return root


def test_a_long_sip_caller_id_or_a_nul_still_hears_the_menu(client: TestClient,
                                                            database_url: str) -> None:
    """Caller IDs over the 64 characters of their column (a SIP URI can be) or with a NUL
    failed the call's INSERT on PostgreSQL: the caller went to the safe queue."""
    sid = new_sid()
    sip = "sip:" + "a" * 80 + "@pbx.example.com"
    params = call_params(sid, From=sip, To="+97235550100\x00", Direction="inbound" * 8)
    with no_exception_logged():
        _says_menu(signed_post(client, "/twilio/voice", {}, params))
        _says_menu(signed_post(client, "/twilio/gather", {"s": "1"}, {**params, "Digits": "9"}))


def test_a_call_sid_over_64_characters_is_the_same_call_on_every_step(
        client: TestClient) -> None:
    """The webhooks read the first 64 characters of CallSid; the call was stored under all
    of them (SQLite) or not at all (PostgreSQL), so its next step was an unknown call."""
    params = call_params("CA" + "7" * 100)
    with no_exception_logged():
        _says_menu(signed_post(client, "/twilio/voice", {}, params))
        root = twiml_or_4xx(signed_post(client, "/twilio/gather", {"s": "1"},
                                        {**params, "Digits": "1"}))
    assert root is not None
    assert "/twilio/gather?s=2" in ET.tostring(root, encoding="unicode")


@pytest.mark.parametrize("odd", ["²", "9" * 15, "-1", "\x00"])
def test_a_status_callback_with_odd_numbers_is_recorded(client: TestClient, odd: str) -> None:
    """SequenceNumber "²" passed str.isdigit and failed int() (a 503, retried for ever);
    numbers over the INTEGER column failed on PostgreSQL; a NUL status likewise."""
    sid = new_sid()
    with no_exception_logged():
        _says_menu(signed_post(client, "/twilio/voice", {}, call_params(sid)))
        for status in ("in-progress", "completed"):
            params = call_params(sid, status + odd[:1].replace("9", ""),
                                 SequenceNumber=odd, CallDuration=odd)
            twiml_or_4xx(signed_post(client, "/twilio/status", {}, params))



@pytest.mark.parametrize(("path", "query"), [
    ("/twilio/agent-dial", {"a": "²"}), ("/twilio/agent-leg", {"a": "²"}),
    ("/twilio/agent-dial", {}), ("/twilio/callback-answer", {"c": "x"}),
    ("/twilio/callback-dial", {}), ("/twilio/callback-status", {"c": "²"}),
    ("/twilio/callback", {"q": "operator", "step": "choice"}),
    ("/twilio/status", {}), ("/twilio/gather", {"s": "²"}),
])
def test_odd_ids_and_unknown_calls_answer_twiml_without_a_traceback(
        client: TestClient, path: str, query: dict[str, str]) -> None:
    params = {"CallSid": "CA\x00" + "1" * 32, "AccountSid": "AC" + "0" * 32,
              "CallStatus": "completed", "Digits": "1"}
    with no_exception_logged():
        root = twiml_or_4xx(send(client, path, query, params))
    assert root is not None  # a 2xx with TwiML: nothing for Twilio to retry
