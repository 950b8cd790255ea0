"""How the agent and the collector write their log lines: ``text``, ``logfmt`` or ``json``.

One line per record, whatever the message holds (newlines are escaped), so that the
journal, ``grep`` and a log shipper see one event per line. Fields given with
``extra={...}`` on a logging call (``event``, ``file``, ``key``, ``reason``, …) are part
of the line in every format: appended as ``key=value`` to the text form, keys of their
own in logfmt and JSON. Shared by both sides because both choose the format the same
way (``[log] format`` in their configuration file); it imports neither.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

FORMATS = ("text", "logfmt", "json")

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_BARE = re.compile(r"[A-Za-z0-9_.:/@+,-]+")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra={...}`` fields of a record, in the order given."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _logfmt_value(value: object) -> str:
    text = "" if value is None else str(value)
    if _BARE.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + (
        f".{int(record.msecs):03d}Z"
    )


class LineFormatter(logging.Formatter):
    """One of :data:`FORMATS`; every record becomes exactly one line."""

    def __init__(self, kind: str = "text") -> None:
        if kind not in FORMATS:
            raise ValueError(f"log format {kind!r}: expected one of {', '.join(FORMATS)}")
        super().__init__()
        self.kind = kind

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        error = self.formatException(record.exc_info) if record.exc_info else ""
        fields = _fields(record)
        if self.kind == "json":
            data: dict[str, Any] = {
                "time": _timestamp(record),
                "level": record.levelname.lower(),
                "logger": record.name,
                "msg": message,
                **{
                    k: v if isinstance(v, (int, float, bool)) else str(v) for k, v in fields.items()
                },
            }
            if error:
                data["error"] = error
            return json.dumps(data, ensure_ascii=False)
        if self.kind == "logfmt":
            pairs = {
                "time": _timestamp(record),
                "level": record.levelname.lower(),
                "logger": record.name,
                "msg": message,
                **fields,
            }
            if error:
                pairs["error"] = error
            return " ".join(f"{k}={_logfmt_value(v)}" for k, v in pairs.items())
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: {message}"
        if fields:
            line += " " + " ".join(f"{k}={_logfmt_value(v)}" for k, v in fields.items())
        if error:
            line += " | " + error
        return line.replace("\r", "\\r").replace("\n", "\\n")


def configure(kind: str, level: int | str) -> None:
    """The root logger writes to stderr in ``kind`` at ``level`` (replacing any handler)."""
    handler = logging.StreamHandler()
    handler.setFormatter(LineFormatter(kind))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
