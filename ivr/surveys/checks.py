"""``ivr menus check`` for ``surveys.yaml``: its mistakes in the menus' words
(``file:line:col: error: key.path: message``), and a warning for a queue no menu sends
callers to (a survey that would never run)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from ivr.core.yamlfile import YamlError, load_yaml, read_text
from ivr.surveys.policy import SurveyError, load_surveys

_WHERE = re.compile(r"^(.*?:\d+:\d+): (.*)$")


def check_surveys(path: Path, queues: Iterable[str]) -> tuple[list[str], int, int]:
    """(lines to print, errors, warnings) of a surveys file against the menus' queues."""
    try:
        surveys = load_surveys(path)
    except SurveyError as exc:
        lines = []
        for line in str(exc).splitlines():
            m = _WHERE.match(line)
            lines.append(f"{m.group(1)}: error: {m.group(2)}" if m else f"{path}: error: {line}")
        return lines, len(lines), 0
    try:
        positions = load_yaml(read_text(path), str(path)).positions
    except YamlError:  # it loaded a moment ago: the file changed under us
        return [], 0, 0
    known = set(queues)
    lines = []
    for name, survey in surveys.surveys.items():
        for i, queue in enumerate(survey.queues):
            if queue not in known:
                row, column = positions.of(("surveys", name, "queues", i))
                lines.append(f"{path}:{row}:{column}: warning: surveys.{name}.queues.{i}: no "
                             f"menu sends callers to queue '{queue}'; its survey never runs")
    return lines, 0, len(lines)
