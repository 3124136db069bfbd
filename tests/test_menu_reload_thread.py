"""Menus are never parsed on the event loop: a slow or hostile menu file (an alias bomb, a
huge file) must not stall the webhooks of live calls while it loads."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from starlette.testclient import TestClient

from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from ivr.menu.registry import MenuRegistry
from tests.conftest import ADMIN

AUTH = {"Authorization": f"Bearer {ADMIN}"}


def test_menus_load_off_the_event_loop_at_start_and_on_reload(
        settings: Settings, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> None:
    loop_threads: set[int] = set()
    reload_threads: list[int] = []
    original = MenuRegistry.reload

    def recording(self: MenuRegistry) -> Any:
        reload_threads.append(threading.get_ident())
        return original(self)

    monkeypatch.setattr(MenuRegistry, "reload", recording)
    app = create_app(settings, clock)

    @app.get("/_loop_thread")
    async def loop_thread() -> dict[str, int]:
        loop_threads.add(threading.get_ident())
        return {}

    with TestClient(app) as client:
        client.get("/_loop_thread")
        r = client.post("/admin/menus/reload", headers=AUTH)
        assert r.status_code == 200
        client.get("/_loop_thread")
    assert len(reload_threads) == 2  # start-up and the admin's reload
    assert len(loop_threads) == 1
    assert not loop_threads & set(reload_threads)
