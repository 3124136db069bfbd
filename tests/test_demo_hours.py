"""The demo open at any hour (IVR_DEMO_ALWAYS_OPEN): on Sunday at 05:17 in Jerusalem the
demo's call reaches the queue and is offered a callback; a production-like configuration
(PostgreSQL, or a Twilio account SID) keeps the centre's hours with the same switch on;
and the simulator says why ``--accept-callback`` did nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient

from callbacks.demo_hours import open_at_any_hour
from callbacks.policy import load_policies
from callbacks.sla import callable_at, offer_reason
from ivr.app import create_app
from ivr.cli import demo_hours_note, main
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from ivr.simulator.caller import PhoneCall
from tests.callback_flow import RecordingDialer
from tests.conftest import TOKEN
from tests.live_server import ServerThread
from tests.twilio import BASE

ROOT = Path(__file__).resolve().parents[1]
SUNDAY_0517 = datetime(2026, 12, 6, 5, 17, tzinfo=ZoneInfo("Asia/Jerusalem"))
CLOSED = "המוקד סגור כעת. שעות הפעילות: ראשון עד חמישי 8 עד 20, שישי 8 עד 13. להתראות."
UNKNOWN = "+972527654321"  # not a demo customer: asked for the language first


@pytest.fixture
def early(settings: Settings) -> Settings:
    """The demo's switch on, the repository's callbacks.yaml, no routing sweep."""
    return settings.model_copy(update={"demo_always_open": True, "route_every_seconds": 0,
                                       "callbacks_file": ROOT / "callbacks.yaml"})


def call_at_0517(settings: Settings) -> PhoneCall:
    """English (2), an agent (0), then 1 at the callback dialog: the README's callback."""
    app = create_app(settings, FrozenClock(SUNDAY_0517), dialer=RecordingDialer())
    with TestClient(app) as client:
        call = PhoneCall(client, BASE, TOKEN, from_number=UNKNOWN,
                         inputs=iter(["2", "0", "1"]), accept_callback=True,
                         sleep=lambda _s: None)
        call.run()
    return call


def test_the_demo_reaches_the_queue_and_the_offer_at_0517_on_sunday(
        early: Settings) -> None:
    call = call_at_0517(early)
    says = call.transcript.says()
    if not early.is_sqlite:  # PostgreSQL is production's database: the switch is ignored
        assert CLOSED in says, says
        assert call.queued == []
        return
    assert CLOSED not in says, says
    assert call.queued == ["operator"]
    assert call.offers == 1 and call.callback_left
    assert any("To keep your place and be called back, press 1" in s for s in says), says
    # Open around the clock: the 2-hour promise is two hours of the clock.
    assert any("call you back by 07:17" in s for s in says), says


@pytest.mark.parametrize("production", [
    {"twilio_account_sid": "AC" + "1" * 32, "public_url": BASE},
    {"demo_always_open": False},
], ids=["account-sid", "switch-off"])
def test_production_like_settings_keep_the_hours(early: Settings,
                                                 production: dict[str, object]) -> None:
    call = call_at_0517(early.model_copy(update=production))
    says = call.transcript.says()
    assert CLOSED in says, says
    assert call.queued == [] and not call.callback_left
    [note] = call.unused_options()
    assert note == ("no callback was offered: the call never reached a queue (it ended "
                    f"after: {CLOSED!r})")


def test_the_switch_takes_effect_only_in_the_demo_configuration() -> None:
    def make(**kw: object) -> Settings:
        return Settings(_env_file=None, **kw)  # type: ignore[arg-type]

    assert make(demo_always_open=True).open_at_any_hour
    assert not make().open_at_any_hour
    pg = make(demo_always_open=True, database_url="postgresql+psycopg://u@h/db")
    assert not pg.open_at_any_hour
    assert pg.demo_always_open_ignored == "the database is not SQLite"
    sid = make(demo_always_open=True, twilio_account_sid="AC" + "1" * 32)
    assert not sid.open_at_any_hour
    assert demo_hours_note(sid) == (
        "warning: IVR_DEMO_ALWAYS_OPEN is ignored: a Twilio account SID is set (a demo-only "
        "setting; the centre keeps its hours)")
    assert demo_hours_note(make(demo_always_open=True)) == (
        "demo: the centre is open at any hour (IVR_DEMO_ALWAYS_OPEN)")
    assert demo_hours_note(make()) is None


def test_the_callback_policy_is_open_around_the_clock() -> None:
    from datetime import timedelta

    policies = load_policies(ROOT / "callbacks.yaml")
    demo = open_at_any_hour(policies)
    for name in ("operator", "billing"):
        real, always = policies.for_queue(name), demo.for_queue(name)
        assert not callable_at(SUNDAY_0517, real)  # closed, and quiet hours
        assert offer_reason(SUNDAY_0517, timedelta(minutes=5), real) is None
        assert callable_at(SUNDAY_0517, always)
        assert offer_reason(SUNDAY_0517, timedelta(minutes=5), always) == "wait"
        assert always.deadline == real.deadline  # the promises are the policy's


@pytest.fixture
def closed_server(early: Settings) -> Iterator[str]:
    """A server keeping the centre's hours at 05:17 on Sunday."""
    settings = early.model_copy(update={"demo_always_open": False})
    thread = ServerThread(create_app(settings, FrozenClock(SUNDAY_0517),
                                     dialer=RecordingDialer()))
    thread.start()
    try:
        yield f"http://{thread.host}:{thread.port}"
    finally:
        thread.stop()


def test_ivr_simulate_prints_why_the_callback_option_did_nothing(
        closed_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("IVR_TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("IVR_LOG_LEVEL", "WARNING")
    assert main(["simulate", "--url", closed_server, "--press", "2,0,1",
                 "--accept-callback"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == ("note: no callback was offered: the call never reached a queue (it "
                       f"ended after: {CLOSED!r})"), out
