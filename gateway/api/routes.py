"""The whole HTTP surface in one place, grouped by the credential each part takes."""

from __future__ import annotations

from aiohttp import web

from gateway.api.downloads import download_media
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
from gateway.api.middlewares import admin_bearer, basic_auth
from gateway.config import Settings


def add_routes(app: web.Application, settings: Settings) -> None:
    # No credential: what load balancers and orchestrators probe.
    app.add_routes([web.get("/healthz", alive), web.get("/readyz", ready)])
    # The link is the credential: what players and browsers follow.
    app.add_routes([web.get("/media/{token}", download_media)])

    # HTTP Basic as one account (AccountSid:AuthToken or ApiKeySid:Secret): applications.
    api = web.Application(middlewares=[basic_auth])
    api.add_routes(
        [
            web.get("/Recordings", list_recordings),
            web.get("/Recordings/{sid}", fetch_recording),
            web.delete("/Recordings/{sid}", delete_recording),
            web.get("/Recordings/{sid}/Media", redirect_to_media),
            web.get("/Rooms/{room_sid}/Recordings", list_recordings),
            web.get("/Rooms/{room_sid}/Recordings/{sid}", fetch_recording),
            web.delete("/Rooms/{room_sid}/Recordings/{sid}", delete_recording),
            web.get("/Rooms/{room_sid}/Recordings/{sid}/Media", redirect_to_media),
        ]
    )
    app.add_subapp("/v1", api)

    # The GATEWAY_ADMIN_TOKEN bearer token: recorders. Without one, this API is not there.
    if settings.admin_token is not None:
        recorders = web.Application(middlewares=[admin_bearer])
        recorders.add_routes(
            [
                web.post("/Recordings", start_recording),
                web.put("/Recordings/{sid}/Media", upload_media),
                web.post("/Recordings/{sid}/Complete", complete_recording),
                web.post("/Recordings/{sid}/Fail", fail_recording),
            ]
        )
        app.add_subapp("/internal/v1", recorders)
