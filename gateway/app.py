"""create_app: wiring and the lifetimes of long-lived resources, nothing more."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web

from gateway.accounts import Authenticator
from gateway.api.credentials import parse_basic
from gateway.api.error_bodies import every_answer
from gateway.api.keys import (
    AUTHENTICATOR,
    INGESTION,
    MEDIA_LINKS,
    METRICS,
    RECORDINGS,
    SENDFILE,
    SETTINGS,
    STORAGE,
    STORE,
)
from gateway.api.routes import add_routes
from gateway.backends import media, metadata
from gateway.callbacks.delivery import DeliveryPolicy, delivering
from gateway.config import Settings
from gateway.errors import Unavailable
from gateway.ingestion import Ingestion
from gateway.instants import utc
from gateway.janitor import remove_leftovers, sweep
from gateway.media_links import MediaLinks
from gateway.metrics import Metrics
from gateway.recordings import Recordings
from gateway.signing import MediaLinkSigner
from gateway.storage import MediaStorage
from gateway.store import MetadataStore

log = logging.getLogger(__name__)


async def _sweep_now_and_then(
    store: MetadataStore,
    storage: MediaStorage,
    settings: Settings,
    now: Callable[[], float],
    metrics: Metrics,
) -> None:
    try:
        # Half-written uploads of a process that was killed (on a local folder all of
        # them at once, as their writers are gone), then finished but unclaimed media.
        await storage.discard_unfinished("")
        metrics.leftovers_removed(await remove_leftovers(store, storage, utc(now())))
    except Unavailable:
        pass  # the backend that is down logs it, once
    except Exception:
        log.exception("looking for leftover media failed; the next start will try again")
    while True:
        await asyncio.sleep(settings.janitor_interval)
        try:
            metrics.sweep_done(await sweep(store, storage, settings.deleted_retention, utc(now())))
        except Unavailable:
            pass
        except Exception:
            log.exception("janitor sweep failed; the next one will try again")


@contextlib.asynccontextmanager
async def _in_background(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """`work` runs as a task while the block does, and is cancelled as it ends."""
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(
    settings: Settings,
    signing_keys: tuple[str, ...],
    *,
    store: MetadataStore | None = None,
    storage: MediaStorage | None = None,
    now: Callable[[], float] = time.time,
    sendfile: bool = True,
    metrics: Metrics | None = None,
) -> web.Application:
    """The application; `store` and `storage` are opened from `settings` unless given,
    and so is what it counts (GATEWAY_METRICS_ADDRESS)."""
    metrics = Metrics.for_settings(settings) if metrics is None else metrics
    app = web.Application(middlewares=[every_answer(settings.trusted_proxies, metrics)])
    app[SETTINGS] = settings
    app[METRICS] = metrics
    if store is not None:
        app[STORE] = metrics.timed_store(store)
    if storage is not None:
        app[STORAGE] = metrics.timed_storage(storage)
    signer = MediaLinkSigner(signing_keys, now)

    async def backends(app: web.Application) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as opened:
            if store is None:
                opened_store = await opened.enter_async_context(metadata(settings))
                app[STORE] = metrics.timed_store(opened_store)
            if storage is None:
                opened_storage = await opened.enter_async_context(media(settings))
                app[STORAGE] = metrics.timed_storage(opened_storage)
            # Decided once for the process, not asked of the storage on every download.
            app[SENDFILE] = sendfile and app[STORAGE].serves_files
            yield

    async def use_cases(app: web.Application) -> AsyncIterator[None]:
        policy = DeliveryPolicy(
            allow=settings.callback_allow,
            timeout=settings.callback_timeout,
            backoff=settings.callback_backoff,
            attempts=settings.callback_attempts,
        )
        async with delivering(app[STORE], policy, now, metrics) as sender:
            app[AUTHENTICATOR] = Authenticator(app[STORE], settings.credential_cache, parse_basic)
            app[RECORDINGS] = Recordings(app[STORE], app[STORAGE], now, sender.wake)
            presign = settings.media_mode == "presign"
            app[MEDIA_LINKS] = MediaLinks(app[RECORDINGS], signer, now, presign, metrics)
            app[INGESTION] = Ingestion(
                app[STORE], app[STORAGE], now, settings.callback_allow, sender.wake, metrics
            )
            yield

    async def counting(app: web.Application) -> AsyncIterator[None]:
        if not metrics.enabled:
            yield
            return
        async with _in_background(metrics.flush_now_and_then()):
            yield

    async def janitor(app: web.Application) -> AsyncIterator[None]:
        sweeping = _sweep_now_and_then(app[STORE], app[STORAGE], settings, now, metrics)
        async with _in_background(sweeping):
            yield

    app.cleanup_ctx.extend([counting, backends, use_cases, janitor])
    add_routes(app, settings)
    return app
