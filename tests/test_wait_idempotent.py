"""Twilio's first request to a queue's wait URL, sent many times at once (Twilio retries a
request that is slow to answer while the first is still running): one queue entry, the
same answer to every request, and nothing logged as an error (issue 15, item 7)."""

from __future__ import annotations

import logging
import threading
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from ivr.agents.models import queue_entries
from ivr.agents.service import AgentService
from tests.agent_fixtures import DANA
from tests.agent_flow import QUEUE_SID, CallLeg, TwilioDriver
from tests.conftest import TOKEN

CONCURRENT = 20


def to_the_queue(twilio: TwilioDriver, from_number: str, keys: list[str]) -> CallLeg:
    """A call walked through the menus to ``<Enqueue>``; its wait URL not requested yet."""
    leg = CallLeg("CA" + "7" * 32, from_number)
    twilio.calls[leg.sid] = leg
    root = twilio._follow(leg, twilio.post("/twilio/voice",
                                           twilio.params(leg, CallStatus="ringing")))
    pending = list(keys)
    while root.find("Enqueue") is None:
        gather = root.find("Gather")
        assert gather is not None, leg.last_twiml
        root = twilio._follow(leg, twilio.post(gather.get("action") or "", twilio.params(
            leg, Digits=pending.pop(0) if pending else "")))
    return leg


def test_concurrent_first_waits_make_one_entry_and_one_answer(
        app_client: TestClient, people: dict[str, int], engine: Engine,
        caplog: pytest.LogCaptureFixture) -> None:
    twilio = TwilioDriver(app_client, "http://testserver", TOKEN)
    leg = to_the_queue(twilio, DANA, ["2"])
    assert leg.queue == "support-open-incidents"
    service: AgentService = app_client.app.state.web.agents  # type: ignore[attr-defined]
    params = twilio.params(leg, QueueSid=QUEUE_SID, QueuePosition="1", QueueTime="0",
                           AvgQueueTime="0", CurrentQueueSize="1", MaxQueueSize="100")
    start = threading.Barrier(CONCURRENT)

    def first_wait(_: int) -> str:
        start.wait(10)
        out = service.waiting(leg.sid, leg.queue or "", dict(params))
        assert out.twiml is not None
        return out.twiml

    with caplog.at_level(logging.WARNING), ThreadPoolExecutor(CONCURRENT) as pool:
        answers = list(pool.map(first_wait, range(CONCURRENT)))

    with engine.connect() as conn:
        entries = conn.execute(select(func.count()).select_from(queue_entries).where(
            queue_entries.c.call_sid == leg.sid)).scalar_one()
        status = conn.execute(select(queue_entries.c.status).where(
            queue_entries.c.call_sid == leg.sid)).scalar_one()
    assert entries == 1
    assert status == "waiting"
    assert len(set(answers)) == 1, set(answers)
    assert ET.fromstring(answers[0]).find("Leave") is None  # nobody is free: holding
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
