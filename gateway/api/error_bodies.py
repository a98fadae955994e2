"""The one place errors become Twilio's error body."""

from __future__ import annotations

import json
import logging
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.api.forwarded import REQUEST_ID_HEADER, identify
from gateway.api.keys import CLIENT, CORS_HEADERS, REQUEST_ID, ROUTE
from gateway.errors import BadRequest, GatewayError, MethodNotAllowed, NotFound, TooLarge
from gateway.hosts import Network
from gateway.logs import CURRENT_REQUEST
from gateway.media.headers import SECURITY_HEADERS
from gateway.metrics import Metrics

log = logging.getLogger(__name__)

MORE_INFO: Final = "https://www.twilio.com/docs/errors/{code}"


def error_body(error: GatewayError) -> str:
    body = {
        "code": error.code,
        "message": error.message,
        "more_info": MORE_INFO.format(code=error.code),
        "status": error.status,
    }
    return json.dumps(body)


def error_response(error: GatewayError) -> web.Response:
    return web.json_response(text=error_body(error), status=error.status, headers=error.headers)


def from_http(request: web.BaseRequest, exc: web.HTTPException) -> GatewayError:
    """The Twilio-shaped counterpart of an answer aiohttp chose itself."""
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(request.method, exc.allowed_methods)
    if isinstance(exc, web.HTTPNotFound):
        # A CONNECT's target is an authority, not a path: name what was asked either way.
        target = request.raw_path or request.host
        return NotFound(f"The requested resource {target} was not found")
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return TooLarge(exc.text or "The request body is too large")
    error = GatewayError(exc.reason)
    error.status, error.code = exc.status, 20000 + exc.status
    return error


def every_answer(proxies: tuple[Network, ...], metrics: Metrics) -> Middleware:
    """Every answer a handler gives or an error it raises, in Twilio's error shape where
    it is one, with the security headers and the request's id (a download sets them
    itself, as it prepares its answer before returning it). `proxies` are the trusted
    ones, GATEWAY_TRUSTED_PROXIES. Counts the requests in flight."""
    active = metrics.requests_in_flight

    @web.middleware
    async def answer(request: web.Request, handler: Handler) -> web.StreamResponse:
        forwarded_for, ident = identify(request.remote, request.headers, proxies)
        if forwarded_for is not None:
            request[CLIENT] = forwarded_for
        request[REQUEST_ID] = ident
        # Not reset after the request: the connection's next request sets its own, and
        # lines written as this one finishes still belong to it.
        CURRENT_REQUEST.set(ident)
        active.inc()
        try:
            response = await handler(request)
        except GatewayError as error:
            response = error_response(error)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            # Routing's own 404 and 405 come before any route's guard named the request.
            request.setdefault(ROUTE, "(no route)")
            response = error_response(from_http(request, exc))
        except ConnectionError:
            # The client left mid-request (an upload cut off): nothing broke here, and
            # the answer most likely reaches nobody.
            log.debug("client left during %s %s", request.method, request.get(ROUTE))
            response = error_response(
                BadRequest("The connection closed before the request was read")
            )
        except Exception:
            log.exception("unexpected error answering %s %s", request.method, request.get(ROUTE))
            response = error_response(GatewayError("Internal Server Error"))
        finally:
            active.dec()
        # Here rather than in an on_response_prepare signal, which costs every request a
        # round of awaits. A download's answer has them all already, prepared or not.
        if not response.prepared and REQUEST_ID_HEADER not in response.headers:
            headers = response.headers
            headers.update(SECURITY_HEADERS)
            headers[REQUEST_ID_HEADER] = ident
            if cors := request.get(CORS_HEADERS):
                headers.update(cors)
        return response

    return answer
