"""create_app: wiring and the lifetimes of long-lived resources, nothing more."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway.api.keys import INGESTION, RECORDINGS, SENDFILE, SETTINGS, STORAGE, STORE
from gateway.api.middlewares import add_security_headers, admin_bearer, basic_auth, twilio_errors
from gateway.api.routes import ROUTES
from gateway.callbacks.delivery import DeliveryPolicy, delivering
from gateway.config import Settings
from gateway.errors import Unavailable
from gateway.ingestion import Ingestion
from gateway.instants import utc
from gateway.janitor import remove_leftovers, sweep
from gateway.recordings import Recordings
from gateway.signing import MediaLinkSigner
from gateway.storage import MediaStorage, open_storage
from gateway.store import MetadataStore, open_store

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


def _loop_sends_files(loop: asyncio.AbstractEventLoop) -> bool:
    """uvloop, for one, has no `sendfile` of its own: the abstract one only refuses."""
    return type(loop).sendfile is not asyncio.AbstractEventLoop.sendfile


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
    app = web.Application(middlewares=[twilio_errors, basic_auth, admin_bearer])
    app[SETTINGS] = settings
    signer = MediaLinkSigner(signing_keys, now)

    async def metadata_store(app: web.Application) -> AsyncIterator[None]:
        app[STORE] = store or await open_store(settings)
        yield
        if store is None:
            await app[STORE].aclose()

    async def media_storage(app: web.Application) -> AsyncIterator[None]:
        app[STORAGE] = storage or await open_storage(settings)
        # Decided once for the process, not tried and refused on every download.
        app[SENDFILE] = sendfile and _loop_sends_files(asyncio.get_running_loop())
        yield
        if storage is None:
            await app[STORAGE].aclose()

    async def use_cases(app: web.Application) -> AsyncIterator[None]:
        policy = DeliveryPolicy(
            allow=settings.callback_allow,
            timeout=settings.callback_timeout,
            backoff=settings.callback_backoff,
            attempts=settings.callback_attempts,
        )
        async with delivering(app[STORE], policy, now) as sender:
            presign = settings.media_mode == "presign"
            app[RECORDINGS] = Recordings(
                app[STORE], app[STORAGE], signer, now, presign, sender.wake
            )
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

    app.cleanup_ctx.extend([metadata_store, media_storage, use_cases, janitor])
    app.on_response_prepare.append(add_security_headers)
    app.add_routes(ROUTES)
    return app
