"""The whole HTTP surface in one place, grouped by the credential each part takes."""

from __future__ import annotations

import functools
from typing import Final

from aiohttp import web

from gateway.api.cors import Cors
from gateway.api.downloads import download_media
from gateway.api.guards import Check, admin_bearer, basic_auth, guarded
from gateway.api.handlers import (
    delete_recording,
    fetch_recording,
    list_recordings,
    redirect_to_media,
)
from gateway.api.health import alive, ready
from gateway.api.internal import (
    complete_recording,
    fail_recording,
    start_recording,
    upload_media,
)
from gateway.api.openapi import openapi_json
from gateway.config import Settings

# What a request may send to ask for part of a resource, or only a changed one.
CONDITIONAL_HEADERS: Final = (
    "Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since",
)  # fmt: skip


def add_routes(app: web.Application, settings: Settings) -> None:
    # No credential: what load balancers and orchestrators probe, and what describes it all.
    _add(
        app,
        None,
        "",
        [
            web.get("/healthz", alive),
            web.get("/readyz", ready),
            web.get("/openapi.json", openapi_json, allow_head=False),
        ],
    )
    # The link is the credential: what players and browsers follow.
    _add(app, None, "", [web.get("/media/{token}", download_media)], media_cors(settings))

    # HTTP Basic as one account (AccountSid:AuthToken or ApiKeySid:Secret): applications.
    api = api_cors(settings)
    _add(
        app,
        basic_auth,
        "/v1",
        [
            # The router tries the routes under one prefix in the order they were added:
            # issuance, the busiest, first.
            web.get("/Recordings/{sid}/Media", redirect_to_media),
            web.get("/Recordings", list_recordings),
            web.get("/Recordings/{sid}", fetch_recording),
            web.delete("/Recordings/{sid}", delete_recording),
            web.get("/Rooms/{room_sid}/Recordings/{sid}/Media", redirect_to_media),
            web.get("/Rooms/{room_sid}/Recordings", list_recordings),
            web.get("/Rooms/{room_sid}/Recordings/{sid}", fetch_recording),
            web.delete("/Rooms/{room_sid}/Recordings/{sid}", delete_recording),
        ],
        api,
    )

    # The GATEWAY_ADMIN_TOKEN bearer token: recorders. Without one, this API is not there.
    if settings.admin_token is not None:
        _add(
            app,
            admin_bearer,
            "/internal/v1",
            [
                web.post("/Recordings", start_recording),
                web.put("/Recordings/{sid}/Media", upload_media),
                web.post("/Recordings/{sid}/Complete", complete_recording),
                web.post("/Recordings/{sid}/Fail", fail_recording),
            ],
        )


def media_cors(settings: Settings) -> Cors:
    return Cors(
        settings.cors_origins,
        methods=("GET", "HEAD"),
        request_headers=CONDITIONAL_HEADERS,
        exposed=("Accept-Ranges", "Content-Disposition", "Content-Length", "Content-Range", "ETag"),
    )


def api_cors(settings: Settings) -> Cors | None:
    if settings.api_cors_origins == ():
        return None
    return Cors(
        settings.api_cors_origins,
        methods=("GET", "HEAD", "DELETE"),
        request_headers=("Authorization", *CONDITIONAL_HEADERS),
        exposed=("Location",),
    )


def _add(
    app: web.Application,
    check: Check | None,
    prefix: str,
    routes: list[web.RouteDef],
    cors: Cors | None = None,
) -> None:
    # One flat table, each handler behind its own check: a sub-application or a
    # middleware would cost every request another routing step or coroutine layer.
    for route in routes:
        path = prefix + route.path
        handler = guarded(path, check, route.handler, cors)
        app.add_routes([web.RouteDef(route.method, path, handler, route.kwargs)])
    if cors is None:
        return
    # A browser's preflight carries no credentials: answered before any check.
    allowed: dict[str, set[str]] = {}
    for route in routes:
        methods = allowed.setdefault(prefix + route.path, {"OPTIONS"})
        methods.update(("GET", "HEAD") if route.method == "GET" else (route.method,))
    for path, methods in allowed.items():
        answer = functools.partial(_preflight, cors, frozenset(methods))
        app.router.add_route("OPTIONS", path, guarded(path, None, answer))


async def _preflight(cors: Cors, allowed: frozenset[str], request: web.Request) -> web.Response:
    return cors.preflight(request, allowed)
