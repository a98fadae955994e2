"""Authentication, and the one place errors become Twilio's error body."""

from __future__ import annotations

import hmac
import logging
from typing import Final

from aiohttp import BasicAuth, hdrs, web
from aiohttp.typedefs import Handler

from gateway.accounts import authenticate
from gateway.api.keys import ACCOUNT_SID, SETTINGS, STORE
from gateway.errors import (
    GatewayError,
    MethodNotAllowed,
    NotFound,
    RangeNotSatisfiable,
    StorageUnavailable,
    Unauthenticated,
)

log = logging.getLogger(__name__)

MORE_INFO: Final = "https://www.twilio.com/docs/errors/{code}"


def error_response(error: GatewayError) -> web.Response:
    body = {
        "code": error.code,
        "message": error.message,
        "more_info": MORE_INFO.format(code=error.code),
        "status": error.status,
    }
    response = web.json_response(body, status=error.status)
    if isinstance(error, Unauthenticated):
        response.headers[hdrs.WWW_AUTHENTICATE] = error.challenge
    elif isinstance(error, StorageUnavailable):
        response.headers[hdrs.RETRY_AFTER] = str(error.retry_after)
    elif isinstance(error, RangeNotSatisfiable):
        response.headers[hdrs.CONTENT_RANGE] = f"bytes */{error.size}"
    return response


@web.middleware
async def twilio_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as error:
        return error_response(error)
    except web.HTTPMethodNotAllowed:
        return error_response(MethodNotAllowed(f"Method {request.method} not allowed"))
    except web.HTTPNotFound:
        return error_response(NotFound(f"The requested resource {request.path} was not found"))
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unexpected error answering %s %s", request.method, request.path)
        return error_response(GatewayError("Internal Server Error"))


@web.middleware
async def basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /v1/ request acts as one account: AccountSid:AuthToken or ApiKeySid:Secret."""
    if not request.path.startswith("/v1/"):
        return await handler(request)
    header = request.headers.get(hdrs.AUTHORIZATION)
    try:
        credentials = BasicAuth.decode(header) if header else None
    except ValueError:
        credentials = None
    if credentials is None:
        raise Unauthenticated("Authentication Error - No credentials provided")
    request[ACCOUNT_SID] = await authenticate(
        request.app[STORE], credentials.login, credentials.password
    )
    return await handler(request)


@web.middleware
async def admin_bearer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """/internal/ takes the GATEWAY_ADMIN_TOKEN bearer token, and does not exist without one."""
    if not request.path.startswith("/internal/"):
        return await handler(request)
    expected = request.app[SETTINGS].admin_token
    if expected is None:
        raise NotFound(f"The requested resource {request.path} was not found")
    scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthenticated("A valid bearer token is required", challenge="Bearer")
    return await handler(request)
