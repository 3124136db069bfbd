"""Hot reload: a good edit goes live for new calls, calls in flight keep their version,
a broken edit is refused with its reasons and the last good menu keeps serving."""

from __future__ import annotations

import time
from pathlib import Path

from starlette.testclient import TestClient

from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.settings import Settings
from tests.conftest import ADMIN
from tests.twilio import call_params, new_sid, signed_post

AUTH = {"Authorization": f"Bearer {ADMIN}"}
OLD = "לבירורי חשבון ותשלומים הקישו 1."
NEW = "לתשלומים הקישו 1."


def _edit(menus_dir: Path, old: str, new: str) -> None:
    path = menus_dir / "main.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_good_edit_is_live_for_new_calls_and_calls_in_flight_keep_theirs(
        client: TestClient, menus_dir: Path) -> None:
    in_flight = new_sid()
    signed_post(client, "/twilio/voice", call_params(in_flight, "ringing"))
    before = client.get("/admin/menus", headers=AUTH).json()["version"]

    _edit(menus_dir, OLD, NEW)
    body = client.post("/admin/menus/reload", headers=AUTH).json()
    assert body["version"] != before
    assert body["report"]["refused"] == {}

    # The call that started before the edit still hears the old prompt.
    old = signed_post(client, "/twilio/gather?s=1", call_params(in_flight, Digits="1"))
    assert OLD in old.text
    # A new call hears the new one.
    sid = new_sid()
    signed_post(client, "/twilio/voice", call_params(sid, "ringing"))
    new = signed_post(client, "/twilio/gather?s=1", call_params(sid, Digits="1"))
    assert NEW in new.text and OLD not in new.text


def test_pinned_version_is_rebuilt_from_the_database_by_another_process(
        settings: Settings, clock: FrozenClock, menus_dir: Path) -> None:
    sid = new_sid()
    with TestClient(create_app(settings, clock)) as first:
        signed_post(first, "/twilio/voice", call_params(sid, "ringing"))
    _edit(menus_dir, OLD, NEW)
    # A new process never saw the old files; it finds the call's version in menu_versions.
    with TestClient(create_app(settings, clock)) as second:
        r = signed_post(second, "/twilio/gather?s=1", call_params(sid, Digits="1"))
    assert OLD in r.text


def test_broken_edit_is_refused_and_the_old_menu_keeps_serving(
        client: TestClient, menus_dir: Path) -> None:
    before = client.get("/admin/menus", headers=AUTH).json()["version"]
    _edit(menus_dir, "    timeout: 6\n", "    timeout: 600\n")
    body = client.post("/admin/menus/reload", headers=AUTH).json()
    file = str(menus_dir / "main.yaml")
    line = (menus_dir / "main.yaml").read_text(encoding="utf-8").splitlines().index(
        "    timeout: 600") + 1
    assert body["version"] == before
    assert body["report"]["kept_previous"] == ["main"]
    assert body["report"]["refused"] == {file: [
        f"{file}:{line}:14: error: nodes.main_menu.timeout: "
        "input should be less than or equal to 60, got 600"]}
    sid = new_sid()
    signed_post(client, "/twilio/voice", call_params(sid, "ringing"))
    r = signed_post(client, "/twilio/gather?s=1", call_params(sid, Digits="1"))
    assert OLD in r.text


def test_a_broken_new_file_does_not_stop_the_others(client: TestClient,
                                                    menus_dir: Path) -> None:
    (menus_dir / "promo.yaml").write_text("languages: [he-IL\n", encoding="utf-8")
    body = client.post("/admin/menus/reload", headers=AUTH).json()
    assert list(body["report"]["refused"]) == [str(menus_dir / "promo.yaml")]
    assert body["menus"] == ["main", "support"]


def test_reload_needs_the_admin_token(client: TestClient) -> None:
    assert client.post("/admin/menus/reload").status_code == 401
    assert client.post("/admin/menus/reload",
                       headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/admin/menus").status_code == 401


def test_saving_a_file_reloads_it_without_a_restart(settings: Settings, clock: FrozenClock,
                                                    menus_dir: Path) -> None:
    watching = settings.model_copy(update={"watch_menus": True})
    app = create_app(watching, clock)
    with TestClient(app) as c:
        before = app.state.web.menus.current.version
        _edit(menus_dir, OLD, NEW)
        # The file-system watcher runs in the server's event loop; wait (bounded) for it to
        # see the save. Saving again covers a watcher that was still starting.
        deadline = time.monotonic() + 10
        next_save = time.monotonic() + 1
        while app.state.web.menus.current.version == before and time.monotonic() < deadline:
            if time.monotonic() > next_save:
                (menus_dir / "main.yaml").touch()
                next_save += 1
            time.sleep(0.02)
        assert app.state.web.menus.current.version != before, "the saved file was not picked up"
        sid = new_sid()
        signed_post(c, "/twilio/voice", call_params(sid, "ringing"))
        r = signed_post(c, "/twilio/gather?s=1", call_params(sid, Digits="1"))
        assert NEW in r.text
