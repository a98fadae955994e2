"""Housekeeping: media whose deletion failed, and deleted recordings past retention."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from gateway import sids
from gateway.models import Recording
from gateway.storage import MediaStorage
from gateway.store import MetadataStore

log = logging.getLogger(__name__)

BATCH: Final = 500
# An object younger than this may be an upload whose recording is being written now.
LEFTOVER_AGE: Final = timedelta(hours=1)


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


async def remove_leftovers(store: MetadataStore, storage: MediaStorage, now: datetime) -> int:
    """Delete stored objects no recording points at (left by a crash between storing
    media and recording it, or by a half-written upload): how many went.

    Media keys are `{account}/{recording}…`, so each object names the one recording
    that may claim it; anything else in the storage is not the gateway's business.
    """
    removed = 0
    async with store.sweep_lock() as mine:
        if not mine:
            return 0
        async for key, modified in storage.stored():
            if modified > now - LEFTOVER_AGE or await _is_claimed(store, key):
                continue
            log.warning("removing leftover media %s, written %s", key, modified.isoformat())
            await storage.delete(key)
            removed += 1
    return removed


async def _is_claimed(store: MetadataStore, key: str) -> bool:
    parts = key.split("/")
    if len(parts) < 2 or not sids.is_sid(parts[0], "AC"):
        return True  # not a key of ours
    sid = parts[1].lstrip(".")[:34]  # a half-written file starts with a dot
    if not sids.is_sid(sid, "RT"):
        return True
    recording = await store.get_recording(sid)
    return recording is not None and recording.media_key == key


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
