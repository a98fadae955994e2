"""Cross-origin reads (the Fetch standard's CORS protocol), for what browsers fetch
themselves: players that read a media link with fetch or MSE, draw its frames to a
canvas, or a page calling the API.

A media link is itself the credential and no cookie is involved, so by default any
origin may read it (`*`); an operator may list the origins instead. The API takes
account secrets and belongs on servers: it answers no origin unless listed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final

from aiohttp import hdrs, web

from gateway.errors import MethodNotAllowed

# The longest Chromium keeps a preflight's answer; Firefox keeps it up to a day.
PREFLIGHT_MAX_AGE: Final = 7200


@dataclass(frozen=True, slots=True)
class Cors:
    """Which origins may read a group of routes, and what their requests may carry."""

    origins: Collection[str] | None  # None: any origin
    methods: tuple[str, ...]  # what a preflight may ask for
    request_headers: tuple[str, ...]  # what requests may send beyond the safelisted ones
    exposed: tuple[str, ...] = ()  # response headers a page may read beyond the safelisted
    _any: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        # Answered to every request when any origin may read: built once.
        any_origin: dict[str, str] = {hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: "*"}
        if self.exposed:
            any_origin[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = ", ".join(self.exposed)
        object.__setattr__(self, "_any", any_origin)

    def headers(self, origin: str | None) -> dict[str, str]:
        """What an answer to a request from `origin` carries."""
        if self.origins is None:
            return self._any
        # The answer depends on Origin: caches must keep one per origin (Fetch §3.2.5).
        if origin is None or origin not in self.origins:
            return {hdrs.VARY: "Origin"}
        allowed: dict[str, str] = {hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin, hdrs.VARY: "Origin"}
        if self.exposed:
            allowed[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = ", ".join(self.exposed)
        return allowed

    def preflight(self, request: web.Request, allowed: Collection[str]) -> web.Response:
        """The answer to `OPTIONS`: 204 to a preflight for one of `methods`, and 405
        naming `allowed` to anything else, as any other method a route lacks."""
        asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_METHOD)
        if asked not in self.methods:
            raise MethodNotAllowed(request.method, allowed)
        headers = self.headers(request.headers.get(hdrs.ORIGIN))
        if hdrs.ACCESS_CONTROL_ALLOW_ORIGIN in headers:
            headers = {
                **headers,
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: ", ".join(self.methods),
                hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ", ".join(self.request_headers),
                hdrs.ACCESS_CONTROL_MAX_AGE: str(PREFLIGHT_MAX_AGE),
            }
        return web.Response(status=204, headers=headers)
