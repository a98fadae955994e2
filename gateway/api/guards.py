"""What stands in front of each handler: the credential its route takes, and the name
its requests are logged by."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from gateway.api.cors import Cors
from gateway.api.credentials import BEARER_CHALLENGE, parse_bearer
from gateway.api.keys import (
    ACCOUNT_SID,
    AUTHENTICATOR,
    CORS_HEADERS,
    RECORDING_SID,
    ROUTE,
    SETTINGS,
)
from gateway.errors import Unauthenticated

Check = Callable[[web.Request], Awaitable[None]]
_NO_HEADERS: dict[str, str] = {}


async def basic_auth(request: web.Request) -> None:
    """The API acts as one account: AccountSid:AuthToken or ApiKeySid:Secret."""
    request[ACCOUNT_SID] = await request.app[AUTHENTICATOR](request.headers.get(hdrs.AUTHORIZATION))


async def admin_bearer(request: web.Request) -> None:
    """The recorders' API takes the GATEWAY_ADMIN_TOKEN bearer token."""
    expected = (request.app[SETTINGS].admin_token or "").encode()
    token = parse_bearer(request.headers.get(hdrs.AUTHORIZATION))
    if not expected or not hmac.compare_digest(token, expected):
        raise Unauthenticated("A valid bearer token is required", challenge=BEARER_CHALLENGE)


def guarded(
    template: str, check: Check | None, handler: Handler, cors: Cors | None = None
) -> Handler:
    """`handler`, answered only to requests that pass `check` (None: the route takes no
    credential), each named by its route template for the access log: never by its
    path, which for a media link is the link's credential. With `cors`, the answer
    (an error too) carries what lets the request's origin read it, or not."""

    names_recording = "{sid}" in template

    async def checked(request: web.Request) -> web.StreamResponse:
        request[ROUTE] = template
        if names_recording:  # for the access line
            request[RECORDING_SID] = request.match_info["sid"]
        request[CORS_HEADERS] = (
            _NO_HEADERS if cors is None else cors.headers(request.headers.get(hdrs.ORIGIN))
        )
        if check is not None:
            await check(request)
        return await handler(request)

    return checked
