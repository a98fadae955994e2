"""The worker that delivers status callbacks: at least once, with backoff, never blocking.

The one place the gateway is an HTTP client of someone else's server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from gateway import __version__
from gateway.callbacks.events import is_public, request_url, signature
from gateway.errors import DatabaseUnavailable
from gateway.hosts import listed
from gateway.metrics import Metrics
from gateway.models import Callback, Delivery
from gateway.store import MetadataStore

log = logging.getLogger(__name__)

BATCH: Final = 20
POLL_SECONDS: Final = 1.0
MAX_BACKOFF: Final = 3600.0


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    allow: tuple[str, ...]  # hosts that may be called even when internal
    timeout: float
    backoff: float  # seconds before the first retry; doubled each time
    attempts: int


class _PublicOnlyResolver(ThreadedResolver):
    """Drops internal addresses of hosts the allow-list does not name, at connect time,
    so a name that resolves (or re-resolves) to an internal address is never called."""

    def __init__(self, allow: tuple[str, ...]) -> None:
        super().__init__()
        self._allow = allow

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await super().resolve(host, port, family)
        if listed(host, self._allow):
            return found
        public = [entry for entry in found if is_public(entry["host"])]
        if not public:
            raise OSError(f"{host} resolves only to internal addresses; see GATEWAY_CALLBACK_ALLOW")
        return public


class CallbackSender:
    def __init__(
        self,
        store: MetadataStore,
        session: aiohttp.ClientSession,
        policy: DeliveryPolicy,
        now: Callable[[], float],
        metrics: Metrics,
    ) -> None:
        self._store = store
        self._session = session
        self._policy = policy
        self._now = now
        self._metrics = metrics
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A callback was just written: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                while await self.deliver_due():
                    pass
                if self._metrics.enabled:  # a count a round is worth it only if it is shown
                    self._metrics.callback_backlog.set(await self._store.pending_callbacks())
            except DatabaseUnavailable:
                pass  # the store logs an outage once, not every round
            except Exception:
                log.exception("callback delivery round failed; trying again shortly")
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that lands as the wait ends, and shutdown would hang on us.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await self._wake.wait()
            self._wake.clear()

    async def deliver_due(self) -> int:
        """Try every callback that is due; how many were tried."""
        now = self._utcnow()
        lease = timedelta(seconds=self._policy.timeout + 30)
        claimed = await self._store.claim_callbacks(now, now + lease, BATCH)
        await asyncio.gather(*(self._attempt(callback) for callback in claimed))
        return len(claimed)

    async def _attempt(self, callback: Callback) -> None:
        try:
            error = await self._send(callback)
        except asyncio.CancelledError:
            # Shutting down mid-attempt: hand the event back now rather than leave it
            # leased, so another instance (or this one, restarted) sends it at once.
            await asyncio.shield(self._store.finish_callback(callback.replace(due=self._utcnow())))
            raise
        except _Refused as refused:
            error, final = str(refused), True
        else:
            final = callback.attempts >= self._policy.attempts
        now = self._utcnow()
        if error is None:
            done = callback.replace(state=Delivery.DELIVERED, delivered=now, last_error=None)
        elif final:
            log.warning("callback %s abandoned: %s", callback.id, error)
            done = callback.replace(state=Delivery.ABANDONED, last_error=error)
        else:
            wait = min(self._policy.backoff * 2 ** (callback.attempts - 1), MAX_BACKOFF)
            done = callback.replace(due=now + timedelta(seconds=wait), last_error=error)
        await self._store.finish_callback(done)
        outcome = "retrying" if done.state is Delivery.PENDING else done.state.value
        self._metrics.callback_attempted(outcome)

    async def _send(self, callback: Callback) -> str | None:
        """None once the receiver took it (2xx), else what went wrong."""
        host = urlsplit(callback.url).hostname or ""
        if _is_address(host) and not listed(host, self._policy.allow) and not is_public(host):
            raise _Refused(f"not allowed: {host} is internal; see GATEWAY_CALLBACK_ALLOW")
        account = await self._store.get_account(callback.account_sid)
        if account is None:
            raise _Refused("the account no longer exists")
        headers = {
            "X-Twilio-Signature": signature(account.auth_token, callback),
            "User-Agent": f"recording-gateway/{__version__}",
        }
        post = callback.method == "POST"
        try:
            async with self._session.request(
                callback.method,
                # encoded=True: sent exactly as signed, not re-encoded on the way out.
                URL(request_url(callback), encoded=True),
                data=callback.params if post else None,
                headers=headers,
                allow_redirects=False,  # a redirect could point anywhere
                timeout=aiohttp.ClientTimeout(total=self._policy.timeout),
            ) as response:
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"[:500]

    def _utcnow(self) -> datetime:
        return datetime.fromtimestamp(self._now(), UTC)


class _Refused(Exception):
    """A callback that must not be sent at all, so is not retried."""


def _is_address(host: str) -> bool:
    try:
        is_public(host)
    except ValueError:
        return False
    return True


@contextlib.asynccontextmanager
async def delivering(
    store: MetadataStore,
    policy: DeliveryPolicy,
    now: Callable[[], float],
    metrics: Metrics | None = None,
) -> AsyncIterator[CallbackSender]:
    """A sender whose worker runs in the background until the block ends."""
    connector = aiohttp.TCPConnector(resolver=_PublicOnlyResolver(policy.allow), limit=50)
    async with aiohttp.ClientSession(connector=connector) as session:
        sender = CallbackSender(store, session, policy, now, metrics or Metrics.off())
        worker = asyncio.create_task(sender.run())
        try:
            yield sender
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
