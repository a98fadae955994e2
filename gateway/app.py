"""create_app: wiring and the lifetimes of long-lived resources, nothing more."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway.accounts import Authenticator
from gateway.api.credentials import parse_basic
from gateway.api.error_bodies import every_answer
from gateway.api.keys import (
    AUTHENTICATOR,
    INGESTION,
    MEDIA_LINKS,
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
from gateway.recordings import Recordings
from gateway.signing import MediaLinkSigner
from gateway.storage import MediaStorage
from gateway.store import MetadataStore

log = logging.getLogger(__name__)


async def _sweep_now_and_then(
    store: MetadataStore, storage: MediaStorage, settings: Settings, now: Callable[[], float]
) -> None:
    try:
        # Half-written uploads of a process that was killed (on a local folder all of
        # them at once, as their writers are gone), then finished but unclaimed media.
        await storage.discard_unfinished("")
        await remove_leftovers(store, storage, utc(now()))
    except Unavailable:
        pass  # the backend that is down logs it, once
    except Exception:
        log.exception("looking for leftover media failed; the next start will try again")
    while True:
        await asyncio.sleep(settings.janitor_interval)
        try:
            await sweep(store, storage, settings.deleted_retention, utc(now()))
        except Unavailable:
            pass
        except Exception:
            log.exception("janitor sweep failed; the next one will try again")


def create_app(
    settings: Settings,
    signing_keys: tuple[str, ...],
    *,
    store: MetadataStore | None = None,
    storage: MediaStorage | None = None,
    now: Callable[[], float] = time.time,
    sendfile: bool = True,
) -> web.Application:
    """The application; `store` and `storage` are opened from `settings` unless given."""
    app = web.Application(middlewares=[every_answer(settings.trusted_proxies)])
    app[SETTINGS] = settings
    if store is not None:
        app[STORE] = store
    if storage is not None:
        app[STORAGE] = storage
    signer = MediaLinkSigner(signing_keys, now)

    async def backends(app: web.Application) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as opened:
            if store is None:
                app[STORE] = await opened.enter_async_context(metadata(settings))
            if storage is None:
                app[STORAGE] = await opened.enter_async_context(media(settings))
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
        async with delivering(app[STORE], policy, now) as sender:
            app[AUTHENTICATOR] = Authenticator(app[STORE], settings.credential_cache, parse_basic)
            app[RECORDINGS] = Recordings(app[STORE], app[STORAGE], now, sender.wake)
            presign = settings.media_mode == "presign"
            app[MEDIA_LINKS] = MediaLinks(app[RECORDINGS], signer, now, presign)
            app[INGESTION] = Ingestion(
                app[STORE], app[STORAGE], now, settings.callback_allow, sender.wake
            )
            yield

    async def janitor(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_sweep_now_and_then(app[STORE], app[STORAGE], settings, now))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.extend([backends, use_cases, janitor])
    add_routes(app, settings)
    return app
