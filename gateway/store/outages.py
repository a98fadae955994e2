"""A database that does not answer is an outage, not a bug: 503 with Retry-After for the
request, and one log line when it begins and one when it ends, not one per request."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType

from gateway.errors import DatabaseUnavailable

log = logging.getLogger(__name__)


class OutageWatch:
    def __init__(self, is_outage: Callable[[BaseException], bool], what: str = "database") -> None:
        self._is_outage = is_outage  # the driver's own sense of "could not reach it"
        self._what = what
        self._since: float | None = None

    def watching(self) -> OutageWatch:
        """Around one database operation: its outage raises DatabaseUnavailable. A plain
        context manager rather than a generator's: it is around every lookup."""
        return self

    def __enter__(self) -> None:
        pass

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None:
            if self._since is not None:
                log.warning(
                    "%s available again, after %.1fs", self._what, time.monotonic() - self._since
                )
                self._since = None
            return
        if not isinstance(error, Exception) or not self._is_outage(error):
            return
        if self._since is None:
            self._since = time.monotonic()
            log.warning(
                "%s unavailable (%s: %s); answering 503 until it answers again",
                self._what,
                type(error).__name__,
                error,
            )
        raise DatabaseUnavailable("The database is not answering; try again shortly") from None
