"""Every failure a caller can see, each with its HTTP status and Twilio error code.

Use-cases raise these; `gateway.api.middlewares` is the one place that turns
them into Twilio's error body.
"""

from __future__ import annotations


class GatewayError(Exception):
    status: int = 500
    code: int = 20500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(GatewayError):
    status, code = 400, 20001

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"Invalid parameter {name}: {problem}")
        self.name = name


class Unauthenticated(GatewayError):
    status, code = 401, 20003

    def __init__(self, message: str, challenge: str = 'Basic realm="Twilio API"') -> None:
        super().__init__(message)
        self.challenge = challenge  # the WWW-Authenticate header


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


class Conflict(GatewayError):
    """The recording is not in a state that allows this step."""

    status, code = 409, 20409


class RangeNotSatisfiable(GatewayError):
    status, code = 416, 20416

    def __init__(self, size: int) -> None:
        super().__init__(f"The requested range is not within the {size} bytes of media")
        self.size = size


class MediaRejected(GatewayError):
    """A file offered for ingest that is not a recording we can serve."""

    status, code = 400, 53_000


class StorageUnavailable(GatewayError):
    status, code = 503, 20503

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigError(Exception):
    """A setting that stops start-up; the message names the variable."""


class MediaMissing(NotFound):
    """Storage has no object where the metadata says media is."""
