"""JSON log lines: one object each, with the request's id while one is answered."""

from __future__ import annotations

import json
import logging

from gateway.logs import CURRENT_REQUEST, JsonFormatter, RequestIds


def formatted(record: logging.LogRecord) -> dict[str, object]:
    RequestIds().filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    return json.loads(line)  # type: ignore[no-any-return]


def test_a_line_names_its_request_while_one_is_answered() -> None:
    record = logging.LogRecord("gateway.x", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    assert "request_id" not in formatted(record)
    token = CURRENT_REQUEST.set("abc-1")
    try:
        fields = formatted(record)
    finally:
        CURRENT_REQUEST.reset(token)
    assert fields["request_id"] == "abc-1"
    assert fields["message"] == "a b"
    assert fields["level"] == "WARNING"
    assert fields["logger"] == "gateway.x"
    assert str(fields["time"]).endswith("Z")


def test_a_traceback_stays_inside_its_line() -> None:
    try:
        raise ValueError("broken\nacross lines")
    except ValueError:
        import sys

        record = logging.LogRecord("g", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    fields = formatted(record)
    assert "ValueError: broken" in str(fields["exception"])
