"""Logging for every process: plain lines or JSON lines (LOG_FORMAT=json), never personal data.

`PrivacyFilter` sits on the handler, so every record that reaches the output passes it, whichever
logger (ours, aiogram's, aiohttp's, SQLAlchemy's) made it. It renders the message with its
arguments, the exception and the stack once, masks mobile and ID numbers in the result
(138****5678, 110101********123X) and stores the masked text back in the record; a formatter then
has nothing unmasked left to print. It also stamps the id of the update being handled, taken from
a context variable that the update middleware (bot/metrics.py) sets, so a log line can be traced
to the update that caused it across tasks.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
from typing import TextIO

from models.questions import mask_sensitive

current_update_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("update_id", default=None)

# mask_sensitive covers digits as they are stored; people also write +86 138 1234 5678 or 138-1234-5678.
_SPACED_MOBILE = re.compile(r"(?<![\d+])(?:\+?86[\s-]?)?(1[3-9]\d)[\s-]?\d{4}[\s-]?(\d{4})(?!\d)")
_FORMATTER = logging.Formatter()


def mask(text: str) -> str:
    return _SPACED_MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", mask_sensitive(text))


class PrivacyFilter(logging.Filter):
    """Masks the finished message, exception and stack text in place; adds `update_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "update_id"):
            record.update_id = current_update_id.get()
        if getattr(record, "_masked", False):
            return True  # a second handler on the same record: already done
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the line
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        # The traceback objects still hold the raw values (frame locals): drop them, keep the text.
        record.exc_info = None
        record._masked = True
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, update_id when known, exc when any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        update_id = getattr(record, "update_id", None)
        if update_id is not None:
            entry["update_id"] = update_id
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(update)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        update_id = getattr(record, "update_id", None)
        record.update = f" [update {update_id}]" if update_id is not None else ""
        return super().format(record)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is now (it may be swapped, e.g. under test capture)."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def make_handler(fmt: str = "plain", stream: TextIO | None = None) -> logging.Handler:
    handler: logging.Handler = StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.addFilter(PrivacyFilter())
    handler.setFormatter(JsonFormatter() if fmt.strip().lower() == "json" else PlainFormatter())
    return handler


def setup_logging(level: str = "INFO", fmt: str = "plain") -> None:
    root = logging.getLogger()
    # Replace only our own handler on a second call; leave handlers others installed alone.
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, StderrHandler)]
    root.addHandler(make_handler(fmt))
    root.setLevel(level.upper())
    # aiogram writes "Update id=… is handled. Duration …" at INFO for every update: a line per
    # update, each masked and formatted, says nothing /metrics does not (updates, handler latency).
    # Shown with LOG_LEVEL=DEBUG; its warnings and errors always are.
    logging.getLogger("aiogram.event").setLevel(
        logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING
    )
