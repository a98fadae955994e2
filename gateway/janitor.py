"""Housekeeping: media whose deletion failed, and deleted recordings past retention."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
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
        # Looked up a batch at a time: one query per BATCH objects, not one per object.
        batch: list[tuple[str, str, datetime]] = []
        async for key, modified in storage.stored():
            sid = _claimant(key)
            if sid is None or modified > now - LEFTOVER_AGE:
                continue
            batch.append((key, sid, modified))
            if len(batch) == BATCH:
                removed += await _remove_unclaimed(store, storage, batch)
                batch.clear()
        removed += await _remove_unclaimed(store, storage, batch)
    return removed


def _claimant(key: str) -> str | None:
    """The SID of the one recording that may claim `key`; None if the key is not ours."""
    parts = key.split("/")
    if len(parts) < 2 or not sids.is_sid(parts[0], "AC"):
        return None
    sid = parts[1].lstrip(".")[:34]  # a half-written file starts with a dot
    return sid if sids.is_sid(sid, "RT") else None


async def _remove_unclaimed(
    store: MetadataStore, storage: MediaStorage, batch: list[tuple[str, str, datetime]]
) -> int:
    if not batch:
        return 0
    claimed = await store.media_keys([sid for _, sid, _ in batch])
    removed = 0
    for key, sid, modified in batch:
        if claimed.get(sid) != key:
            log.warning("removing leftover media %s, written %s", key, modified.isoformat())
            await storage.delete(key)
            removed += 1
    return removed
