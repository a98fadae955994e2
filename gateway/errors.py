"""Every failure a caller can see, each with its HTTP status, Twilio error code and the
response headers it needs.

Use-cases raise these; `gateway.api.error_bodies` is the one place that turns them into
Twilio's error body.
"""

from __future__ import annotations

from collections.abc import Iterable


class GatewayError(Exception):
    status: int = 500
    code: int = 20500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def headers(self) -> dict[str, str]:
        """What the answer must carry besides the body (RFC 9110 names them per status)."""
        return {}


class InvalidParameter(GatewayError):
    status, code = 400, 20001

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"Invalid parameter {name}: {problem}")
        self.name = name
        self.problem = problem


class BadRequest(GatewayError):
    """A request that cannot be read at all: its line, headers or body are malformed."""

    status, code = 400, 20001


class Unauthenticated(GatewayError):
    status, code = 401, 20003

    def __init__(self, message: str, challenge: str = 'Basic realm="Twilio API"') -> None:
        # Basic for the API, Bearer for the recorders' API (RFC 9110 §11.6.1).
        super().__init__(message)
        self.challenge = challenge

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self.challenge}  # RFC 9110 §15.5.2


class LinkRefused(GatewayError):
    """A media link that is tampered with, or signed with a key we do not hold."""

    status, code = 403, 20403


class LinkExpired(LinkRefused):
    def __init__(self, expired_at: int) -> None:
        super().__init__(f"This media link expired at {expired_at} (Unix time)")
        self.expired_at = expired_at


class NotFound(GatewayError):
    status, code = 404, 20404


class MethodNotAllowed(GatewayError):
    status, code = 405, 20004

    def __init__(self, method: str, allowed: Iterable[str]) -> None:
        super().__init__(f"Method {method} not allowed")
        self.allowed = tuple(sorted(allowed))

    @property
    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allowed)}  # RFC 9110 §15.5.6: a 405 MUST list them


class Conflict(GatewayError):
    """The recording is not in a state that allows this step."""

    status, code = 409, 20409


class TooLarge(GatewayError):
    status, code = 413, 20413


class RangeNotSatisfiable(GatewayError):
    status, code = 416, 20416

    def __init__(self, size: int, validators: dict[str, str] | None = None) -> None:
        super().__init__(f"The requested range is not within the {size} bytes of media")
        self.size = size
        self.validators = validators or {}

    @property
    def headers(self) -> dict[str, str]:
        return {**self.validators, "Content-Range": f"bytes */{self.size}"}  # RFC 9110 §14.4


class MediaRejected(GatewayError):
    """A file offered for ingest that is not a recording we can serve."""

    status, code = 400, 53_000


class Unavailable(GatewayError):
    """A backend this request needs does not answer now; worth retrying shortly."""

    status, code = 503, 20503

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}  # RFC 9110 §10.2.3


class StorageUnavailable(Unavailable):
    pass


class DatabaseUnavailable(Unavailable):
    pass


class ConfigError(Exception):
    """A setting that stops start-up; the message names the variable."""


class MediaMissing(NotFound):
    """Storage has no object where the metadata says media is."""
