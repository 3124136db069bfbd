"""How long a recording plays: the duration of a WAV or MP3 file read from its headers.

Standard library only. WAV: the ``data`` chunk's size over the ``fmt`` chunk's byte rate
(PCM, mu-law and A-law alike: any format of a constant byte rate). MP3: the MPEG audio
frames counted one by one (constant and variable bit rates alike), after an ID3v2 tag, up
to the end or an ID3v1 tag; a Xing/Info/VBRI header frame plays no audio and is not
counted. Anything else is not a recording this module can time (``None``).

``play_durations`` finds the files a menu's ``play`` URLs name (the URL's last path segment,
in the menu's ``caller_time.recordings`` folder, default ``recordings`` next to the file)
for ``ivr.menu.cost``; with the folder named explicitly, a file that is missing or cannot
be timed is a warning.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

from ivr.menu.loader import LoadedMenu, PathT, Problem, dotted
from ivr.menu.model import Prompt

MAX_BYTES = 64 * 1024 * 1024  # a recording larger than this is not read
DEFAULT_FOLDER = "recordings"


def wav_seconds(data: bytes) -> float | None:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, byte_rate, size = 12, 0, None
    while pos + 8 <= len(data):
        chunk, length = data[pos:pos + 4], int(struct.unpack_from("<I", data, pos + 4)[0])
        body = pos + 8
        if chunk == b"fmt " and length >= 16 and body + 16 <= len(data):
            byte_rate = int(struct.unpack_from("<I", data, body + 8)[0])
        elif chunk == b"data":
            size = min(length, len(data) - body)  # a header that promises more than is there
            break
        pos = body + length + (length & 1)
    if size is None or byte_rate <= 0:
        return None
    return size / byte_rate


_BITRATES = {  # kbit/s by (MPEG-1?, layer), index 1..14
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_BITRATES[(False, 3)] = _BITRATES[(False, 2)]
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def mp3_frame(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """(frame length in bytes, samples, sample rate) of the frame header at ``pos``."""
    if pos + 4 > len(data):
        return None
    h = struct.unpack_from(">I", data, pos)[0]
    version, layer_bits = (h >> 19) & 3, (h >> 17) & 3
    bitrate_index, rate_index, padding = (h >> 12) & 15, (h >> 10) & 3, (h >> 9) & 1
    if (h >> 21) != 0x7FF or version == 1 or layer_bits == 0 or bitrate_index in (0, 15) \
            or rate_index == 3:
        return None
    layer = 4 - layer_bits
    mpeg1 = version == 3
    bitrate = _BITRATES[(mpeg1, layer)][bitrate_index - 1] * 1000
    rate = _RATES[version][rate_index]
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4, 384, rate
    samples = 1152 if layer == 2 or mpeg1 else 576
    return samples // 8 * bitrate // rate + padding, samples, rate


def mp3_seconds(data: bytes) -> float | None:
    pos = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        size = 0
        for b in data[6:10]:
            size = (size << 7) | (b & 0x7F)
        pos = 10 + size + (10 if data[5] & 0x10 else 0)
    seconds, frames = 0.0, 0
    while True:
        frame = mp3_frame(data, pos)
        if frame is None:
            break
        length, samples, rate = frame
        body = data[pos + 4:pos + min(length, 64)]
        if not (frames == 0 and any(t in body for t in (b"Xing", b"Info", b"VBRI"))):
            seconds += samples / rate
        frames += 1
        pos += length
    return seconds if frames else None


def recording_seconds(path: Path) -> float | None:
    """The duration of a WAV or MP3 file, or None when it is neither (or too large)."""
    if path.stat().st_size > MAX_BYTES:
        return None
    data = path.read_bytes()
    return wav_seconds(data) if data[:4] == b"RIFF" else mp3_seconds(data)


def _urls(prompt: Prompt) -> list[tuple[PathT, str]]:
    if isinstance(prompt.play, dict):
        return [(("play", lang), url) for lang, url in prompt.play.items()]
    return [(("play",), prompt.play)] if prompt.play is not None else []


def _play_prompts(lm: LoadedMenu) -> Iterator[tuple[PathT, str]]:
    for name, node in lm.menu.nodes.items():
        for attr in ("prompt", "no_input_prompt", "invalid_prompt"):
            p = getattr(node, attr, None)
            if isinstance(p, Prompt):
                for sub, url in _urls(p):
                    yield ("nodes", name, attr, *sub), url


def play_durations(menus: Mapping[str, LoadedMenu],
                   ) -> tuple[dict[tuple[str, str], float], list[Problem]]:
    """The seconds of each (menu, URL) whose file is found, and warnings for the files of
    an explicitly named folder that are missing or cannot be timed."""
    out: dict[tuple[str, str], float] = {}
    problems: list[Problem] = []
    for mname, lm in menus.items():
        named = lm.menu.caller_time.recordings
        folder = Path(lm.path).parent / (named or DEFAULT_FOLDER)
        for path, url in _play_prompts(lm):
            file = folder / Path(unquote(urlparse(url).path)).name
            seconds = None
            why = f"no file {file}"
            if file.is_file():
                try:
                    seconds = recording_seconds(file)
                    why = f"{file} is no WAV or MP3 file this check can time"
                except OSError as exc:
                    why = f"cannot read {file}: {exc.strerror or exc}"
            if seconds is not None:
                out[(mname, url)] = seconds
            elif named is not None:
                line, col = lm.positions.of(path)
                problems.append(Problem(str(lm.path), line, col, dotted(path),
                                        f"cannot tell how long {url} plays: {why}",
                                        "warning"))
    return out, problems
