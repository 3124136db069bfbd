"""What the menu costs the caller (issue 17 section 6): seconds of speech before each queue,
transfer and hang-up along the shortest key path, per language, with known answers; the
recordings' durations from WAV and MP3 headers; the budget's warnings in ``ivr menus
check`` and ``GET /admin/menus``."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ivr.cli import main
from ivr.menu.bundle import MenuBundle, assemble, load_directory
from ivr.menu.cost import EndCost, menu_costs, spoken_chars
from ivr.menu.loader import load_menu_file, load_menu_text
from ivr.menu.recordings import mp3_seconds, recording_seconds, wav_seconds
from tests.conftest import ADMIN

# Rates of 10 (en-US) and 5 (he-IL) characters a second: ten characters are 1 s or 2 s.
MAIN = """\
languages: [en-US, he-IL]
default_language: en-US
caller_time:
  budget_seconds: 5
  chars_per_second: {en-US: 10, he-IL: 5}
schedules:
  office:
    weekly: {sun: ["08:00-18:00"]}
start: welcome
fallback: bye
nodes:
  welcome:
    type: message
    prompt: {say: {en-US: "aaaaaaaaaa", he-IL: "bbbbbbbbbb"}}
    next: hours
  hours:
    type: hours
    schedule: office
    open: who
    closed: closed
  closed:
    type: hangup
    prompt: {say: {en-US: "cccccccccc", he-IL: "ccccc"}}
  who:
    type: identify
    prompt: {say: {en-US: "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii", he-IL: "iiiii"}}
    identified: route
  route:
    type: branch
    branches:
      - when: {attribute: tier, equals: premium}
        next: vip_hello
    default: main
  vip_hello:
    type: message
    prompt: {say: {en-US: "vvvvv", he-IL: "vvvvv"}}
    next: main
  main:
    type: menu
    prompt: {say: {en-US: "dddddddddddddddddddd", he-IL: "ddddd"}}
    options:
      "1": {next: sales}
      "2": {next: deep}
      "3": {next: tech}
      "9": {next: english, language: en-US}
  sales:
    type: queue
    queue: sales
    on_failure: bye
  deep:
    type: menu
    prompt: {play: "https://audio.test/prompts/deep.wav"}
    options:
      "1": {next: agent}
  agent:
    type: transfer
    number: "+97231234567"
    prompt: {say: {en-US: "Hold on {tier}", he-IL: "rr"}}
    on_failure: bye
  tech:
    type: submenu
    menu: tech
  english:
    type: queue
    queue: english
    prompt: {say: {en-US: "eeeee", he-IL: "eeeee"}}
  bye:
    type: hangup
    prompt: {say: {en-US: "a very long goodbye that nobody reaches by a key", he-IL: "x"}}
"""

TECH = """\
languages: [en-US, he-IL]
default_language: he-IL
start: tech_menu
fallback: tech_queue
nodes:
  tech_menu:
    type: menu
    prompt: {play: {en-US: "https://audio.test/tech-en.mp3", he-IL: "https://audio.test/x.wav"}}
    options:
      "1": {next: tech_queue}
  tech_queue: {type: queue, queue: tech, on_failure: tech_bye}
  tech_bye: {type: hangup}
"""


def write_wav(path: Path, seconds: float, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))


def mp3_frame(header: int, length: int, body: bytes = b"") -> bytes:
    return struct.pack(">I", header) + body.ljust(length - 4, b"\0")


MPEG1_L3_128K_44100 = 0xFFFB9000  # frame of 144 * 128000 // 44100 = 417 bytes, 1152 samples
MPEG2_L3_64K_22050 = 0xFFF38000  # 72 * 64000 // 22050 = 208 bytes, 576 samples


def build_mp3(frames: int, header: int = MPEG1_L3_128K_44100, length: int = 417, *,
              id3: bool = True, xing: bool = True, id3v1: bool = True) -> bytes:
    out = b""
    if id3:  # an ID3v2 tag of 300 bytes (synchsafe size 0x02 0x2C)
        out += b"ID3\x04\x00\x00\x00\x00\x02\x2c" + b"\0" * 300
    if xing:
        out += mp3_frame(header, length, b"\0" * 32 + b"Xing")
    out += b"".join(mp3_frame(header, length) for _ in range(frames))
    if id3v1:
        out += b"TAG" + b"\0" * 125
    return out


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "main.yaml").write_text(MAIN, encoding="utf-8")
    (tmp_path / "tech.yaml").write_text(TECH, encoding="utf-8")
    (tmp_path / "recordings").mkdir()
    write_wav(tmp_path / "recordings" / "deep.wav", 2.5)
    (tmp_path / "recordings" / "tech-en.mp3").write_bytes(build_mp3(100))
    return tmp_path


def costs(folder: Path) -> tuple[MenuBundle, list[EndCost], list[str]]:
    bundle, report = load_directory(folder, "main")
    assert bundle is not None, report.problems
    return bundle, report.caller_time, [str(p) for p in report.warnings]


def table(rows: list[EndCost]) -> dict[tuple[str, str], tuple[float, int, str]]:
    return {(c.language, c.node): (round(c.seconds, 3), c.unknown, " ".join(c.keys))
            for c in rows}


def test_seconds_before_each_end_per_language(folder: Path) -> None:
    _bundle, rows, _warnings = costs(folder)
    tech_mp3 = 100 * 1152 / 44100  # 2.612 s
    assert table(rows) == {
        # welcome 1 s, then closed's own 1 s
        ("en-US", "closed"): (2.0, 0, ""),
        # welcome 1 + main 2 (identify skipped for a known caller, the branch's default)
        ("en-US", "sales"): (3.0, 0, "1"),
        ("en-US", "english"): (3.5, 0, "9"),
        # + deep.wav 2.5 + "Hold on " (8) and {tier} (8): 1.6 s
        ("en-US", "agent"): (7.1, 0, "2 1"),
        ("en-US", "tech_queue"): (round(3.0 + tech_mp3, 3), 0, "3 1"),
        # Hebrew: welcome 2 s, closed 1 s; main 1 s
        ("he-IL", "closed"): (3.0, 0, ""),
        ("he-IL", "sales"): (3.0, 0, "1"),
        ("he-IL", "agent"): (5.9, 0, "2 1"),
        # 9 switches to English: its queue's prompt is heard in English
        ("he-IL", "english"): (3.5, 0, "9"),
        # the sub-menu's Hebrew recording is not in the folder: unknown, counted
        ("he-IL", "tech_queue"): (3.0, 1, "3 1"),
    }


def test_the_path_shows_what_is_heard(folder: Path) -> None:
    _bundle, rows, _warnings = costs(folder)
    agent = next(c for c in rows if (c.language, c.node) == ("en-US", "agent"))
    assert [(h.menu, h.node, round(h.seconds, 2)) for h in agent.heard] == [
        ("main", "welcome", 1.0), ("main", "main", 2.0), ("main", "deep", 2.5),
        ("main", "agent", 1.6)]
    assert (agent.kind, agent.target, agent.budget, agent.over_budget) == (
        "transfer", "+97231234567", 5.0, True)
    assert agent.line() == ("main en-US:   7.1 s before transfer '+97231234567' at agent "
                            "[2 1]  OVER the 5 s budget")
    tech = next(c for c in rows if (c.language, c.node) == ("he-IL", "tech_queue"))
    assert tech.line() == ("main he-IL:   3.0 s + 1 recording(s) of unknown length before "
                           "queue 'tech' at tech:tech_queue [3 1]  (budget 5 s)")


def test_failure_paths_are_no_key_path(folder: Path) -> None:
    _bundle, rows, _warnings = costs(folder)
    assert "bye" not in {c.node for c in rows}  # reached only when a queue fails


def test_over_the_budget_is_a_warning_at_the_end_node(folder: Path) -> None:
    _bundle, _rows, warnings = costs(folder)
    main_yaml, tech_yaml = folder / "main.yaml", folder / "tech.yaml"
    assert warnings == [
        f"{main_yaml}:55:3: warning: nodes.agent: en-US: a caller hears 7.1 s of speech "
        "before reaching this transfer '+97231234567' from main's start (budget 5 s); "
        "shortest path [2 1]: welcome 1.0 s, main 2.0 s, deep 2.5 s, agent 1.6 s",
        f"{main_yaml}:55:3: warning: nodes.agent: he-IL: a caller hears 5.9 s of speech "
        "before reaching this transfer '+97231234567' from main's start (budget 5 s); "
        "shortest path [2 1]: welcome 2.0 s, main 1.0 s, deep 2.5 s, agent 0.4 s",
        f"{tech_yaml}:11:3: warning: nodes.tech_queue: en-US: a caller hears 5.6 s of speech "
        "before reaching this queue 'tech' from main's start (budget 5 s); shortest path "
        "[3 1]: welcome 1.0 s, main 2.0 s, tech:tech_menu 2.6 s"]


def test_a_caller_who_must_identify_hears_the_question(folder: Path) -> None:
    text = MAIN.replace("    identified: route\n",
                        "    identified: route\n    skip_if_identified: false\n")
    (folder / "main.yaml").write_text(text, encoding="utf-8")
    _bundle, rows, _warnings = costs(folder)
    assert table(rows)[("en-US", "sales")] == (7.0, 0, "account 1")  # + 40 characters


def test_without_a_budget_nothing_is_over(folder: Path) -> None:
    (folder / "main.yaml").write_text(MAIN.replace("  budget_seconds: 5\n", ""),
                                      encoding="utf-8")
    _bundle, rows, warnings = costs(folder)
    assert warnings == []
    assert all(c.budget is None and not c.over_budget for c in rows)


def test_default_speaking_rates_and_placeholders() -> None:
    assert spoken_chars("  Press 1.  ") == 8
    assert spoken_chars("At {open_incident_opened_at:time} for {tier}") == 8 + 8 + 5 + 3
    path = Path("m.yaml")
    text = ("languages: [he-IL, en-US, fr-FR]\ndefault_language: he-IL\nstart: q\n"
            "fallback: q\nnodes:\n  q:\n    type: queue\n    queue: q\n    on_failure: b\n"
            "    prompt: {say: {he-IL: '" + "א" * 26 + "', en-US: '" + "a" * 30 + "', "
            "fr-FR: '" + "f" * 28 + "'}}\n  b: {type: hangup}\n")
    lm, problems = load_menu_text(text, path)
    assert problems == [] and lm is not None
    rows = menu_costs({"m": lm}, "m", {})
    assert {c.language: c.seconds for c in rows} == {"he-IL": 2.0, "en-US": 2.0,
                                                     "fr-FR": 2.0}  # 13, 15 and 14 a second


# ---------------------------------------------------------------- recordings


def test_wav_duration(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", 2.5)
    assert recording_seconds(tmp_path / "a.wav") == 2.5
    write_wav(tmp_path / "b.wav", 1.0, rate=44100)
    assert recording_seconds(tmp_path / "b.wav") == 1.0


def test_mu_law_wav_duration() -> None:
    # 8 kHz mu-law (format 7): 8000 bytes a second, a "fact" chunk before the data.
    fmt = struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8)
    data = b"\xff" * 12000
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"fact" + struct.pack("<I", 4) + struct.pack("<I", 12000)
            + b"data" + struct.pack("<I", len(data)) + data)
    assert wav_seconds(b"RIFF" + struct.pack("<I", len(body)) + body) == 1.5


def test_a_wav_without_data_or_format_cannot_be_timed() -> None:
    assert wav_seconds(b"RIFF\0\0\0\0WAVE") is None
    assert wav_seconds(b"RIFX\0\0\0\0WAVE") is None


@pytest.mark.parametrize(("data", "seconds"), [
    (build_mp3(100), 100 * 1152 / 44100),
    (build_mp3(100, id3=False, xing=False, id3v1=False), 100 * 1152 / 44100),
    (build_mp3(50, MPEG2_L3_64K_22050, 208), 50 * 576 / 22050),
    # a padded frame is one byte longer
    (mp3_frame(MPEG1_L3_128K_44100 | 0x200, 418) * 10, 10 * 1152 / 44100),
])
def test_mp3_duration(data: bytes, seconds: float) -> None:
    assert mp3_seconds(data) == pytest.approx(seconds)


def test_not_an_mp3() -> None:
    assert mp3_seconds(b"just some text, no frames") is None
    assert mp3_seconds(b"") is None


def test_a_named_recordings_folder_warns_of_files_it_cannot_time(folder: Path) -> None:
    text = TECH.replace("start: tech_menu\n", "start: tech_menu\ncaller_time:\n"
                        "  recordings: sounds\n")
    (folder / "tech.yaml").write_text(text, encoding="utf-8")
    (folder / "sounds").mkdir()
    (folder / "sounds" / "x.wav").write_text("not a wav", encoding="utf-8")
    _bundle, rows, warnings = costs(folder)
    tech = folder / "tech.yaml"
    assert [w for w in warnings if w.startswith(str(tech))] == [
        f"{tech}:10:28: warning: nodes.tech_menu.prompt.play.en-US: cannot tell how long "
        f"https://audio.test/tech-en.mp3 plays: no file {folder / 'sounds' / 'tech-en.mp3'}",
        f"{tech}:10:69: warning: nodes.tech_menu.prompt.play.he-IL: cannot tell how long "
        f"https://audio.test/x.wav plays: {folder / 'sounds' / 'x.wav'} is no WAV or MP3 "
        "file this check can time"]
    assert table(rows)[("en-US", "tech_queue")] == (3.0, 1, "3 1")


# ---------------------------------------------------------------- where it is shown


def test_ivr_menus_check_prints_the_table(folder: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["menus", "check", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    first = out.index(
        "Seconds of speech before each queue, transfer and hang-up (shortest key path):")
    assert [line for line in out[:first] if line.startswith(str(folder))] == [
        f"{folder / 'main.yaml'}:55:3: warning: nodes.agent: en-US: a caller hears 7.1 s of "
        "speech before reaching this transfer '+97231234567' from main's start (budget 5 s); "
        "shortest path [2 1]: welcome 1.0 s, main 2.0 s, deep 2.5 s, agent 1.6 s",
        f"{folder / 'main.yaml'}:55:3: warning: nodes.agent: he-IL: a caller hears 5.9 s of "
        "speech before reaching this transfer '+97231234567' from main's start (budget 5 s); "
        "shortest path [2 1]: welcome 2.0 s, main 1.0 s, deep 2.5 s, agent 0.4 s",
        f"{folder / 'tech.yaml'}:11:3: warning: nodes.tech_queue: en-US: a caller hears 5.6 s "
        "of speech before reaching this queue 'tech' from main's start (budget 5 s); "
        "shortest path [3 1]: welcome 1.0 s, main 2.0 s, tech:tech_menu 2.6 s"]
    assert out[first + 1:first + 11] == [
        "  main en-US:   2.0 s before hangup at closed [no key]  (budget 5 s)",
        "  main en-US:   3.0 s before queue 'sales' at sales [1]  (budget 5 s)",
        "  main en-US:   3.5 s before queue 'english' at english [9]  (budget 5 s)",
        "  main en-US:   5.6 s before queue 'tech' at tech:tech_queue [3 1]  OVER the 5 s "
        "budget",
        "  main en-US:   7.1 s before transfer '+97231234567' at agent [2 1]  OVER the 5 s "
        "budget",
        "  main he-IL:   3.0 s before hangup at closed [no key]  (budget 5 s)",
        "  main he-IL:   3.0 s before queue 'sales' at sales [1]  (budget 5 s)",
        "  main he-IL:   3.0 s + 1 recording(s) of unknown length before queue 'tech' at "
        "tech:tech_queue [3 1]  (budget 5 s)",
        "  main he-IL:   3.5 s before queue 'english' at english [9]  (budget 5 s)",
        "  main he-IL:   5.9 s before transfer '+97231234567' at agent [2 1]  OVER the 5 s "
        "budget"]
    assert "checked: 0 error(s)" in out[-1]


def test_the_table_only_when_asked_without_caller_time(
        folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = MAIN.replace("caller_time:\n  budget_seconds: 5\n  chars_per_second: "
                        "{en-US: 10, he-IL: 5}\n", "")
    (folder / "main.yaml").write_text(text, encoding="utf-8")
    assert main(["menus", "check", str(folder / "main.yaml")]) == 0
    assert not any(line.startswith("Seconds of speech")
                   for line in capsys.readouterr().out.splitlines())
    assert main(["menus", "check", "--caller-time", str(folder / "main.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("Seconds of speech") for line in out)
    # The default rates: 15 characters a second in English, 13 in Hebrew.
    assert "  main en-US:   2.0 s before queue 'sales' at sales [1]" in out
    assert "  main he-IL:   1.2 s before queue 'sales' at sales [1]" in out


def test_the_admin_report_has_the_caller_time(client: TestClient) -> None:
    body = client.get("/admin/menus", headers={"Authorization": f"Bearer {ADMIN}"}).json()
    billing = [c for c in body["report"]["caller_time"] if c["node"] == "billing"]
    assert [(c["language"], c["seconds"], c["keys"], c["budget_seconds"], c["over_budget"])
            for c in billing] == [("he-IL", 9.2, ["1"], 30.0, False),
                                  ("en-US", 10.5, ["1"], 30.0, False)]
    assert billing[0]["heard"] == [
        {"menu": "main", "node": "main_menu", "seconds": 7.0, "unknown_recordings": 0},
        {"menu": "main", "node": "billing", "seconds": 2.2, "unknown_recordings": 0}]


def test_assemble_reports_nothing_without_an_entry_menu(folder: Path) -> None:
    parsed = [(f, *load_menu_file(f)) for f in sorted(folder.glob("*.yaml"))]
    bundle, report = assemble(parsed, None, "nope")
    assert bundle is None and report.caller_time == []


def test_a_misspelt_caller_time_key_is_an_error(folder: Path) -> None:
    (folder / "main.yaml").write_text(MAIN.replace("  budget_seconds: 5\n",
                                                   "  budget_second: 5\n"), encoding="utf-8")
    _bundle, report = load_directory(folder, "main")
    path = folder / "main.yaml"
    assert [str(p) for p in report.refused[str(path)]] == [
        f"{path}:4:3: error: caller_time.budget_second: unknown key 'budget_second'; expected "
        "one of: budget_seconds, chars_per_second, recordings"]


def test_a_speaking_rate_must_be_positive(folder: Path) -> None:
    (folder / "main.yaml").write_text(MAIN.replace("{en-US: 10, he-IL: 5}",
                                                   "{en-US: 0, he-IL: 5}"), encoding="utf-8")
    _bundle, report = load_directory(folder, "main")
    path = folder / "main.yaml"
    assert [str(p) for p in report.refused[str(path)]] == [
        f"{path}:5:29: error: caller_time.chars_per_second.en-US: Input should be greater "
        "than 0"]
