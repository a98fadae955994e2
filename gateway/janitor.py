"""Housekeeping: media whose deletion failed, and deleted recordings past retention."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from gateway.models import Recording
from gateway.storage import MediaStorage
from gateway.store import MetadataStore

log = logging.getLogger(__name__)

BATCH: Final = 500


@dataclass(frozen=True, slots=True)
class Sweep:
    ran: bool  # False when another instance was sweeping
    media_deleted: int = 0
    media_failed: int = 0
    purged: int = 0


async def forget_media(store: MetadataStore, storage: MediaStorage, deleted: Recording) -> bool:
    """Delete a deleted recording's media and note it gone; False if storage refused.

    What is not noted gone stays on the janitor's list, so a failure is retried.
    """
    if deleted.media_key is None:
        return True
    try:
        await storage.delete(deleted.media_key)
    except Exception:
        log.exception(
            "media %s of deleted %s stays for a later sweep", deleted.media_key, deleted.sid
        )
        return False
    await store.update_recording(deleted.replace(media_key=None), expected=deleted)
    return True


async def sweep(
    store: MetadataStore, storage: MediaStorage, retention: float, now: datetime
) -> Sweep:
    async with store.sweep_lock() as mine:
        if not mine:
            return Sweep(ran=False)
        done = failed = 0
        for recording in await store.deleted_with_media(BATCH):
            if await forget_media(store, storage, recording):
                done += 1
            else:
                failed += 1
        purged = await store.purge_deleted(now - timedelta(seconds=retention))
    if done or failed or purged:
        log.info("janitor: %d media deleted, %d failed, %d purged", done, failed, purged)
    return Sweep(True, done, failed, purged)


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
