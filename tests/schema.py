"""Validation of response bodies against the official Twilio Video v1 description."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SPEC = Path(__file__).resolve().parents[1].parent / "shared" / "twilio_video_v1.json"


@cache
def _spec() -> dict[str, Any]:
    return json.loads(SPEC.read_text())  # type: ignore[no-any-return]


def _to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 → JSON Schema: resolve $refs, turn `nullable` into a null type."""
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return _to_json_schema(copy.deepcopy(_spec()["components"]["schemas"][name]))
    out = {key: _to_json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if out.get("type") == "object" and "properties" in out:
        # Every property the schema names, and no other, as the helper library expects.
        out["required"] = list(out["properties"])
        out["additionalProperties"] = False
    return out


@cache
def response_schema(path: str, method: str = "get", status: str = "200") -> dict[str, Any]:
    operation = _spec()["paths"][path][method]
    schema = operation["responses"][status]["content"]["application/json"]["schema"]
    return _to_json_schema(schema)  # type: ignore[no-any-return]


def validate(body: Any, path: str) -> None:
    """Raise unless `body` is exactly what the spec's GET `path` answers."""
    jsonschema.validate(body, response_schema(path), format_checker=jsonschema.FormatChecker())


# Twilio's codes for each status: 20001 "Invalid parameter", 20003 "Authentication
# Error", 20004 "Method not allowed", 20404 "The requested resource was not found",
# 20500 "Internal Server Error", and 20000 + status for the rest of its 20xxx range.
TWILIO_CODES: dict[int, int] = {400: 20001, 401: 20003, 405: 20004}


def validate_error(body: Any, status: int, code: int | None = None) -> None:
    """Twilio's error body, with `code` or else the one Twilio gives `status`."""
    expected = code or TWILIO_CODES.get(status, 20000 + status)
    assert set(body) == {"code", "message", "more_info", "status"}, body
    assert body["status"] == status
    assert body["code"] == expected, body
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{expected}"
    assert body["message"]
