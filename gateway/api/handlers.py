"""The Recordings resources: parse, call one use-case, serialize."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from aiohttp import hdrs, web

from gateway import sids
from gateway.api.forwarded import origin, trusted
from gateway.api.keys import ACCOUNT_SID, MEDIA_LINKS, RECORDINGS, SETTINGS
from gateway.api.query import parse_list, parse_media_link
from gateway.api.serialize import list_json, recording_json, redirect_json
from gateway.config import Settings
from gateway.errors import InvalidParameter, NotFound
from gateway.hosts import listed, parse_host


def base_url(request: web.Request) -> str:
    return base_url_of(request.app[SETTINGS], request.scheme, request.headers, request.remote)


def base_url_of(
    settings: Settings, scheme: str, headers: Mapping[str, str], peer: str | None
) -> str:
    """GATEWAY_PUBLIC_URL, or the request's own origin if its Host is allowed: a Host
    naming another site would put that site into `Location`, `redirect_to` and every
    `url`, for any cache or proxy in between to hand to other clients."""
    if settings.public_url is not None:
        return settings.public_url
    host = headers.get(hdrs.HOST, "")
    if settings.trusted_proxies and trusted(peer, settings.trusted_proxies):
        # What the client asked the proxy for, still held to GATEWAY_ALLOWED_HOSTS.
        proto, forwarded_host = origin(headers)
        scheme = proto if proto in ("http", "https") else scheme
        host = forwarded_host or host
    return _origin(scheme, host, settings.allowed_hosts)


@functools.lru_cache(maxsize=256)  # a service is reached by a few names; refusals not kept
def _origin(scheme: str, host_header: str, allowed: tuple[str, ...]) -> str:
    host, port = parse_host(host_header)
    if not listed(host, allowed):
        raise InvalidParameter(
            "Host", f"{host} is not in GATEWAY_ALLOWED_HOSTS (or set GATEWAY_PUBLIC_URL)"
        )
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def _room_sid(request: web.Request) -> str | None:
    room_sid = request.match_info.get("room_sid")
    if room_sid is not None and not sids.is_sid(room_sid, "RM"):
        raise NotFound(f"The requested resource /Rooms/{room_sid} was not found")
    return room_sid


async def list_recordings(request: web.Request) -> web.Response:
    room_sid = _room_sid(request)
    query = parse_list(request.query, room_sid)
    page = await request.app[RECORDINGS].list(
        request[ACCOUNT_SID], query.where, query.page_size, query.cursor
    )
    return web.json_response(list_json(base_url(request), request.path, query, page, room_sid))


async def fetch_recording(request: web.Request) -> web.Response:
    room_sid = _room_sid(request)
    recording = await request.app[RECORDINGS].get(
        request[ACCOUNT_SID], request.match_info["sid"], room_sid
    )
    return web.json_response(recording_json(base_url(request), recording, room_sid))


async def delete_recording(request: web.Request) -> web.Response:
    await request.app[RECORDINGS].delete(
        request[ACCOUNT_SID], request.match_info["sid"], _room_sid(request)
    )
    return web.Response(status=204)


async def redirect_to_media(request: web.Request) -> web.Response:
    room_sid = _room_sid(request)
    link = parse_media_link(request.query)
    location = await request.app[MEDIA_LINKS].issue(
        request[ACCOUNT_SID], request.match_info["sid"], room_sid, link, base_url(request)
    )
    return web.Response(
        text=redirect_json(location),
        status=302,
        content_type="application/json",
        headers={hdrs.LOCATION: location},
    )
