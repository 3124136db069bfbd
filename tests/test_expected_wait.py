"""What a waiting caller is told about their wait is true (issue 14, item 1; story 1), on
SQLite and PostgreSQL, through signed wait-loop posts:

* an agent of the queue is free: "you are next in line", no callback offer;
* nobody can answer (no agent of the queue signed in): no promise of a short wait, "no agent
  is available right now", and the offer;
* agents busy: the estimate from their handle time so far against the queue's mean handle
  time, and the callers ahead.

Clock: Monday 2026-11-23 10:00 in Jerusalem, the demo policy (callbacks.yaml: offer over
2 minutes, fallback handle time 5 minutes)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update
from starlette.testclient import TestClient

from callbacks import twiml as ctw
from callbacks.sla import WaitEstimate
from ivr.agents.models import agent_calls, agents
from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from tests.agent_fixtures import YOSSI, available, login
from tests.agent_flow import TwilioDriver
from tests.callback_flow import RecordingDialer, gather_action, spoken
from tests.conftest import TOKEN

ROOT = Path(__file__).resolve().parents[1]


def _client(settings: Settings, clock: FrozenClock, callbacks_file: Path,
            ) -> Iterator[TestClient]:
    quiet = settings.model_copy(update={"route_every_seconds": 0,
                                        "callbacks_file": callbacks_file,
                                        "callback_caller_id": "+97235550100"})
    with TestClient(create_app(quiet, clock, dialer=RecordingDialer())) as c:
        yield c


@pytest.fixture
def client(settings: Settings, clock: FrozenClock) -> Iterator[TestClient]:
    yield from _client(settings, clock, ROOT / "callbacks.yaml")


@pytest.fixture
def twilio(client: TestClient) -> TwilioDriver:
    return TwilioDriver(client, "http://testserver", TOKEN)


def first_round(twilio: TwilioDriver, number: str, keys: list[str]) -> tuple[str, str]:
    """A caller reaches the queue; (call sid, what the first wait round says)."""
    sid = twilio.start(number, keys)
    return sid, twilio.calls[sid].last_twiml


# ------------------------------------------------------------------ an agent is free


def test_an_idle_agent_means_next_in_line_and_no_offer(
        client: TestClient, twilio: TwilioDriver, people: dict[str, int]) -> None:
    available(client, login(client, "dana.agent"))  # serves "operator", idle
    sid, xml = first_round(twilio, YOSSI, ["0"])
    words = spoken(xml)
    assert "You are next in line." in words, xml
    assert "expected wait" not in words and "minute" not in words
    assert gather_action(xml) is None  # no callback offered to a caller about to be answered
    twilio.connect(sid)  # and so it is: the next round releases the caller to her


def test_an_idle_agent_in_hebrew(client: TestClient, twilio: TwilioDriver,
                                 people: dict[str, int]) -> None:
    available(client, login(client, "dana.agent"))
    _, xml = first_round(twilio, "+972541111111", ["1", "0"])
    assert "אתם הבאים בתור." in spoken(xml) and gather_action(xml) is None


# ------------------------------------------------------------------ nobody can answer


@pytest.mark.parametrize(("keys", "nobody", "short"), [
    (["2", "0"], "No agent is available right now.", "minute"),
    (["1", "0"], "אין כרגע נציג זמין.", "דק"),
], ids=["en", "he"])
def test_nobody_signed_in_hears_no_short_promise_and_the_offer(
        client: TestClient, twilio: TwilioDriver, people: dict[str, int], keys: list[str],
        nobody: str, short: str) -> None:
    # Avi is available, but for other queues: nobody can answer "operator".
    available(client, login(client, "avi"))
    _, xml = first_round(twilio, "+972541111111", keys)
    words = spoken(xml)
    assert nobody in words, xml
    assert short not in words  # no "about one minute", no "about 5 minutes"
    assert gather_action(xml) is not None  # keep your place and be called back: press 1


# ------------------------------------------------------------------ agents busy


def _wrap_up(client: TestClient, engine: Engine, auths: dict[int, dict[str, str]],
             sid: str) -> None:
    with engine.connect() as conn:
        agent_id = conn.execute(select(agent_calls.c.agent_id)
                                .where(agent_calls.c.call_sid == sid)).scalar_one()
    r = client.post(f"/agent/calls/{sid}/wrapup", headers=auths[agent_id],
                    json={"topic": "x", "outcome": "done", "resolved": True})
    assert r.status_code == 201, r.text


def test_two_busy_agents_with_known_handle_times(
        client: TestClient, twilio: TwilioDriver, people: dict[str, int], engine: Engine,
        clock: FrozenClock) -> None:
    with engine.begin() as conn:
        conn.execute(update(agents).values(queues=["operator"]))
    auths = {people[u]: login(client, u) for u in ("dana.agent", "avi")}
    for auth in auths.values():
        available(client, auth)

    def served(number: str) -> str:
        sid = twilio.start(number, ["2", "0"])
        twilio.connect(sid)
        twilio.agent_answers(sid)
        return sid

    # Two calls handled, 3 and 5 minutes (talk, wrap-up at once): a mean of 4 minutes.
    a, b = served("+972541000001"), served("+972541000002")
    clock.advance(minutes=3)
    twilio.hang_up(a)
    _wrap_up(client, engine, auths, a)
    served("+972541000003")  # answered at 3 minutes
    clock.advance(minutes=2)
    twilio.hang_up(b)
    _wrap_up(client, engine, auths, b)
    served("+972541000004")  # answered at 5 minutes
    clock.advance(minutes=1)
    # Now both agents are busy: one 3 minutes into a call (1 minute left of the mean), the
    # other 1 minute in (3 left). Three callers join.
    said = [first_round(twilio, f"+97254200000{n}", ["2", "0"])[1] for n in (1, 2, 3)]
    first, second, third = (spoken(x) for x in said)
    assert "All our agents are busy." in first
    assert "You are next in line." in first and "about one minute" in first
    assert gather_action(said[0]) is None  # 1 minute: under the 2-minute threshold
    assert "You are next in line." not in second
    assert "about 3 minutes" in second and gather_action(said[1]) is not None
    # The third: the first caller takes the agent free in 1 minute, the second the one free
    # in 3; the third the first agent again, after a mean call: 1 + 4 = 5 minutes.
    assert "about 5 minutes" in third
    # What a measurement reads (bench/callbacks_day.py): the same estimate and words.
    service = client.app.state.web.callbacks  # type: ignore[attr-defined]
    got = service.spoken_wait(list(twilio.calls)[-1], "en-US")
    assert got == (WaitEstimate(3, 0, 2, timedelta(minutes=5)),
                   "All our agents are busy. Your expected wait is about 5 minutes.")
    assert service.spoken_wait("CA-not-waiting") is None


# ------------------------------------------------------------------ no callback policy


@pytest.fixture
def plain_client(settings: Settings, clock: FrozenClock,
                 tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(settings, clock, tmp_path / "no-callbacks.yaml")


def test_the_plain_hold_does_not_promise_an_agent_nobody_can_be(
        plain_client: TestClient, people: dict[str, int]) -> None:
    twilio = TwilioDriver(plain_client, "http://testserver", TOKEN)
    _, xml = first_round(twilio, "+972541111111", ["2", "0"])
    words = spoken(xml)
    assert "No agent is available right now." in words, xml
    assert "shortly" not in words
    available(plain_client, login(plain_client, "dana.agent"))
    _, xml = first_round(twilio, "+972541111112", ["2", "0"])
    assert "An agent will be with you shortly." in spoken(xml)


# ------------------------------------------------------------------ the words


@pytest.mark.parametrize(("seconds", "spoken"), [
    (1, 1), (20, 1), (89, 1), (90, 2), (149, 2), (150, 3), (300, 5), (1665, 28),
])
def test_minutes_are_rounded_half_up(seconds: int, spoken: int) -> None:
    assert ctw.minutes(timedelta(seconds=seconds)) == spoken  # 2:30 is "about 3", never 2


@pytest.mark.parametrize(("estimate", "en", "he"), [
    (WaitEstimate(1, 1, 0, timedelta(0)), "You are next in line.", "אתם הבאים בתור."),
    (WaitEstimate(3, 0, 0, None), "No agent is available right now.", "אין כרגע נציג זמין."),
    (WaitEstimate(1, 0, 2, timedelta(seconds=70)),
     "All our agents are busy. You are next in line. Your expected wait is about one minute.",
     "כל הנציגים שלנו עסוקים כרגע. אתם הבאים בתור. זמן ההמתנה המשוער הוא כדקה."),
    (WaitEstimate(3, 1, 1, timedelta(minutes=4)), "Your expected wait is about 4 minutes.",
     "זמן ההמתנה המשוער הוא כ-4 דקות."),
], ids=["free", "nobody", "head-all-busy", "behind-a-free-agent"])
def test_what_the_caller_is_told(estimate: WaitEstimate, en: str, he: str) -> None:
    assert ctw.wait_words(estimate, "en-US") == en
    assert ctw.wait_words(estimate, "he-IL") == he
