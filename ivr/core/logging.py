"""Log setup for every ``ivr`` command: plain text or JSON lines, the call's CallSid on every
line logged while a Twilio webhook runs, and a redaction hook for customer data.

``configure(settings, redact)`` installs one stderr handler on the root logger; uvicorn's
loggers propagate to it (``ivr serve`` passes ``log_config=None``), so they share the format.
The redaction function (phone-number masking) comes from the caller: ``ivr.core`` imports
nothing else of the project.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

from ivr.core.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The CallSid of the Twilio request being handled (set by the webhook wrapper, reset after).
# Database work of the request runs in the same context (``Database.run`` copies it).
call_sid: contextvars.ContextVar[str | None] = contextvars.ContextVar("call_sid", default=None)

Redact = Callable[[str], str]


class CallSidFilter(logging.Filter):
    """Adds ``record.call_sid`` (None outside a call) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "call_sid"):
            record.call_sid = call_sid.get()
        return True


class RedactFilter(logging.Filter):
    """Rewrites the final message (and the exception text) through ``redact``. The record
    keeps the redacted text only, so every handler after this one sees the same."""

    def __init__(self, redact: Redact) -> None:
        super().__init__()
        self.redact = redact
        self._exc_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):
            return True
        message = record.getMessage()
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exc_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        record._redacted = True
        return True


# What a log line must not carry raw: C0 controls (newline, CR, tab, ESC, NUL…), DEL, C1
# controls (NEL among them), the Unicode line and paragraph separators, and the bidi
# embeddings, overrides and isolates (which reorder how the rest of a line reads).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# json.dumps already writes C0 controls as escapes; these it leaves raw.
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``,
    ``\\u2028``): one line, read as it is."""
    return _CONTROLS.sub(_escape, text)


class TextFormatter(logging.Formatter):
    """Today's format; the CallSid is appended as ``call=…`` when the message lacks it.

    A record is one line whatever its fields hold (a caller's or Twilio's text, a URL path):
    control characters are escaped in the whole line. A traceback or stack follows on lines
    of its own, each indented, so a line that starts at column 0 always starts a record:
    an exception's message cannot forge one."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        sid = getattr(record, "call_sid", None)
        if sid and sid not in line:
            line += f" call={sid}"
        return escape_controls(line)

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        out = self.formatMessage(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for block in (record.exc_text,
                      record.stack_info and self.formatStack(record.stack_info)):
            if block:
                out += "".join(f"\n  {escape_controls(line)}" for line in block.split("\n"))
        return out


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, call_sid when
    known, exception (the traceback text) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        sid = getattr(record, "call_sid", None)
        if sid:
            out["call_sid"] = sid
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # One line, whatever the values hold: json.dumps escapes newlines and the other C0
        # controls; the separators and controls it leaves raw are escaped here (\uXXXX,
        # inside strings only, so every value reads back unchanged).
        return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}",
                             json.dumps(out, ensure_ascii=False))


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def install_filters(handler: logging.Handler, redact: Redact | None = None) -> None:
    """The CallSid and (with ``redact``) redaction filters, on one handler."""
    handler.addFilter(CallSidFilter())
    if redact is not None:
        handler.addFilter(RedactFilter(redact))


def configure(settings: Settings, redact: Redact | None = None,
              stream: IO[str] | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one (stderr) in the configured format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(settings.log_format))
    install_filters(handler, redact)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # uvicorn's loggers go to the root handler (one format); their levels stay uvicorn's.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler
