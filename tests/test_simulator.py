"""The simulator's wait loop is Twilio's: what the waitUrl is posted (QueueTime in seconds
of the call, QueuePosition, CurrentQueueSize, AvgQueueTime, MaxQueueSize, QueueSid), time
that passes as the TwiML plays (pauses, a Gather's timeout, speech), and a speed factor
that plays it faster without changing what is reported."""

from __future__ import annotations

import itertools

from starlette.testclient import TestClient

from ivr.simulator.caller import (
    SPEECH_CHARS_PER_SECOND,
    PhoneCall,
    TwilioQueues,
)
from tests.conftest import TOKEN
from tests.twilio import BASE

WAIT_FIELDS = {"QueueSid", "QueueTime", "QueuePosition", "CurrentQueueSize", "AvgQueueTime",
               "MaxQueueSize"}


def wait_requests(call: PhoneCall) -> list[dict[str, str]]:
    return [p for url, p in call.transcript.requests if "/twilio/wait" in url]


def billing_call(client: TestClient, wait: float, **kw: object) -> PhoneCall:
    """An unknown caller: English (2), billing (1); nobody serves billing, so the expected
    wait is the policy's fallback (5 minutes) and the callback is offered."""
    call = PhoneCall(client, BASE, TOKEN, inputs=iter(["2", "1"]), agent_wait=wait,
                     **kw)  # type: ignore[arg-type]
    call.run()
    return call


def test_the_wait_url_is_posted_what_twilio_posts(client: TestClient) -> None:
    slept: list[float] = []
    call = billing_call(client, 30, sleep=slept.append)
    posts = wait_requests(call)
    assert len(posts) >= 3
    for p in posts:
        assert set(p) >= WAIT_FIELDS, set(p)
        assert p["CallSid"] == call.call_sid and p["QueueSid"].startswith("QU")
        assert (p["QueuePosition"], p["CurrentQueueSize"], p["MaxQueueSize"]) == (
            "1", "1", "1000")
        assert p["AvgQueueTime"] == p["QueueTime"]  # the only member: its own time
    times = [int(p["QueueTime"]) for p in posts]
    # The first round speaks the wait and the offer (a Gather waiting 3 s), then pauses 5 s;
    # every later round is a 5 s pause: QueueTime counts those seconds, not rounds.
    first = (sum(len(s) for s in call.wait_said) / SPEECH_CHARS_PER_SECOND) + 3 + 5
    assert times[0] == 0 and times[1] == int(first)
    assert all(b - a == 5 for a, b in itertools.pairwise(times[1:])), times
    # The caller hangs up at 30 s in the queue; the Enqueue action says so.
    action = next(p for url, p in call.transcript.requests if "/twilio/queue" in url)
    assert (action["QueueResult"], action["QueueTime"]) == ("hangup", "30")
    assert sum(slept) == 30


def test_the_offer_is_spoken_once_a_minute_not_five_rounds_running(
        client: TestClient) -> None:
    call = billing_call(client, 150, sleep=lambda _s: None)
    offered_at = [int(p["QueueTime"]) for p in wait_requests(call)
                  if int(p["QueueTime"]) % 60 < 5]
    assert [t // 60 for t in offered_at] == [0, 1, 2], offered_at  # at 0, 60–64, 120–124
    assert call.offers == 3
    offers = [s for s in call.wait_said if "press 1" in s]
    assert len(offers) == 3, call.wait_said


def test_speed_plays_the_wait_faster_and_reports_the_same_times(
        client: TestClient) -> None:
    real: list[float] = []
    fast: list[float] = []
    slow_call = billing_call(client, 40, sleep=real.append)
    fast_call = billing_call(client, 40, sleep=fast.append, speed=10)
    assert [p["QueueTime"] for p in wait_requests(fast_call)] == [
        p["QueueTime"] for p in wait_requests(slow_call)]
    assert 5.0 in real and 0.5 in fast  # a 5 s pause takes 0.5 s at 10
    assert abs(sum(fast) - sum(real) / 10) < 1e-9


def test_callers_sharing_a_queue_see_their_position_and_the_queue_size() -> None:
    queues = TwilioQueues()
    queues.join("QU1", "CA-first")
    queues.join("QU1", "CA-second")
    assert queues.wait_params("QU1", "CA-first", 40)["QueuePosition"] == "1"
    second = queues.wait_params("QU1", "CA-second", 10)
    assert (second["QueuePosition"], second["CurrentQueueSize"], second["AvgQueueTime"],
            second["QueueTime"]) == ("2", "2", "25", "10")
    queues.leave("QU1", "CA-first")  # released for an agent
    after = queues.wait_params("QU1", "CA-second", 15)
    assert (after["QueuePosition"], after["CurrentQueueSize"], after["AvgQueueTime"]) == (
        "1", "1", "15")


def test_the_simulator_says_why_no_callback_was_offered(client: TestClient) -> None:
    """Nobody is waiting long in a queue the policy has no offer for: the option did
    nothing, and the simulator says why instead of staying silent."""
    call = PhoneCall(client, BASE, TOKEN, inputs=iter(["2", "1"]), accept_callback=True,
                     agent_wait=0, sleep=lambda _s: None)
    call.run()
    assert call.callback_left  # the offer was made and taken: nothing to explain
    assert call.unused_options() == []
    hungup = PhoneCall(client, BASE, TOKEN, inputs=iter([]), accept_callback=True,
                       sleep=lambda _s: None)
    hungup.run()
    [note] = hungup.unused_options()
    assert note.startswith("no callback was offered: the call never reached a queue")
