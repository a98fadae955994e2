"""`GET /openapi.json`: a valid OpenAPI 3 description of every route the service serves,
the Recordings paths exactly as Twilio's official description has them."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aiohttp import ClientSession
from openapi_spec_validator import validate

from gateway.api.openapi import document
from gateway.app import create_app
from gateway.config import Settings
from tests.schema import SPEC

one_backend = pytest.mark.parametrize("backends", ["sqlite+local"], indirect=True)

TWILIO_PATHS = (
    "/v1/Recordings",
    "/v1/Recordings/{Sid}",
    "/v1/Rooms/{RoomSid}/Recordings",
    "/v1/Rooms/{RoomSid}/Recordings/{Sid}",
)


def served() -> dict[str, Any]:
    return json.loads(document())  # type: ignore[no-any-return]


def shape(path: str) -> str:
    """A path template with its parameters unnamed: {sid} and {Sid} are one route."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_it_is_valid_openapi_3() -> None:
    description = served()
    assert description["openapi"].startswith("3.")
    validate(description)


def test_the_recordings_paths_are_twilios_own() -> None:
    official = json.loads(SPEC.read_text())
    description = served()
    for path in TWILIO_PATHS:
        theirs = {key: value for key, value in official["paths"][path].items() if key != "servers"}
        assert description["paths"][path] == theirs, path
        assert "servers" not in description["paths"][path]  # clients call this service
    ours = {"gateway.error"}
    for name, schema in description["components"]["schemas"].items():
        if name not in ours:
            assert schema == official["components"]["schemas"][name], name
    assert {"video.v1.recording", "video.v1.room.room_recording"} <= set(
        description["components"]["schemas"]
    )


@one_backend
async def test_every_route_the_app_serves_is_described(backends: dict[str, str]) -> None:
    settings = Settings.from_env(
        {**backends, "GATEWAY_SIGNING_KEYS": "x" * 32, "GATEWAY_ADMIN_TOKEN": "y" * 32}
    )
    app = create_app(settings, settings.signing_keys)
    # A HEAD is a GET without the body (RFC 9110 §9.3.2): described by its GET.
    routes = {
        ("get" if route.method == "HEAD" else route.method.lower(), shape(resource.canonical))
        for route in app.router.routes()
        if (resource := route.resource) is not None
    }
    described = {
        (method, shape(path))
        for path, item in served()["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "options")
    }
    assert routes - described == set()
    assert described - routes == set()


@one_backend
async def test_it_is_served_as_json(base_url: str) -> None:
    async with ClientSession() as client, client.get(f"{base_url}/openapi.json") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.json() == served()
