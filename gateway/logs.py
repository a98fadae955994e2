"""How `gateway serve` writes its logs: GATEWAY_LOG_FORMAT `text` (lines as on a
terminal) or `json` (one object per line, for log pipelines), at GATEWAY_LOG_LEVEL, and
each line written while a request is answered carries that request's id."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any, Final

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s [%(process)d] %(name)s %(message)s%(request)s"
# The id of the request being answered, for every log line written while it is.
CURRENT_REQUEST: Final[contextvars.ContextVar[str | None]] = contextvars.ContextVar(
    "request", default=None
)


class RequestIds(logging.Filter):
    """Gives each record the id of the request being answered, if one is."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = ident = CURRENT_REQUEST.get()
        record.request = "" if ident is None else f" request_id={ident}"
        return True


def utc_time(seconds: float) -> str:
    """RFC 3339 with milliseconds, as log pipelines parse it."""
    whole = int(seconds)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{stamp}.{int((seconds - whole) * 1000):03d}Z"


def json_line(fields: dict[str, Any]) -> str:
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")) + "\n"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": utc_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if (ident := getattr(record, "request_id", None)) is not None:
            fields["request_id"] = ident
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json_line(fields).rstrip("\n")


def configure(log_format: str, level: str) -> None:
    """The process's one handler, on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIds())
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
