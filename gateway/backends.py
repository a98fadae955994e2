"""Opening the backends a process uses, and closing them, for the app and every command:
each takes exactly what it needs, and an `async with` closes it in reverse order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.config import Settings
from gateway.storage import MediaStorage, open_storage
from gateway.store import MetadataStore, open_store


@asynccontextmanager
async def metadata(settings: Settings) -> AsyncIterator[MetadataStore]:
    store = await open_store(settings)  # opening migrates
    try:
        yield store
    finally:
        await store.aclose()


@asynccontextmanager
async def media(settings: Settings) -> AsyncIterator[MediaStorage]:
    storage = await open_storage(settings)
    try:
        yield storage
    finally:
        await storage.aclose()
