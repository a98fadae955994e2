"""The whole HTTP surface in one list."""

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

ROUTES = [
    web.get("/v1/Recordings", list_recordings),
    web.get("/v1/Recordings/{sid}", fetch_recording),
    web.delete("/v1/Recordings/{sid}", delete_recording),
    web.get("/v1/Recordings/{sid}/Media", redirect_to_media),
    web.get("/v1/Rooms/{room_sid}/Recordings", list_recordings),
    web.get("/v1/Rooms/{room_sid}/Recordings/{sid}", fetch_recording),
    web.delete("/v1/Rooms/{room_sid}/Recordings/{sid}", delete_recording),
    web.get("/v1/Rooms/{room_sid}/Recordings/{sid}/Media", redirect_to_media),
    web.get("/media/{token}", download_media),
    web.post("/internal/v1/Recordings", start_recording),
    web.put("/internal/v1/Recordings/{sid}/Media", upload_media),
    web.post("/internal/v1/Recordings/{sid}/Complete", complete_recording),
    web.post("/internal/v1/Recordings/{sid}/Fail", fail_recording),
    web.get("/healthz", alive),
    web.get("/readyz", ready),
]
