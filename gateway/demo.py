"""Demo data for a first start: an account and a few real recordings made on the spot."""

from __future__ import annotations

import asyncio
import json
import math
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import cast

import av

from gateway.accounts import create_account
from gateway.ingestion import Ingestion
from gateway.models import Recording
from gateway.recordings import Recordings
from gateway.sids import mint


def write_tone(path: Path, seconds: float, frequency: float = 440.0) -> None:
    """An OPUS tone in Matroska, as a room's audio track is recorded. Blocking."""
    rate, frame = 48_000, 960
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libopus", rate=rate, layout="mono")
        for index in range(int(seconds * rate / frame)):
            samples = bytearray()
            for n in range(index * frame, (index + 1) * frame):
                value = int(8000 * math.sin(2 * math.pi * frequency * n / rate))
                samples += value.to_bytes(2, "little", signed=True)
            audio = av.AudioFrame(format="s16", layout="mono", samples=frame)
            audio.planes[0].update(bytes(samples))
            audio.sample_rate, audio.pts = rate, index * frame
            container.mux(stream.encode(audio))
        container.mux(stream.encode(None))


def write_video(path: Path, seconds: float, codec: str = "libvpx", fps: int = 15) -> None:
    """A moving gradient in Matroska (VP8 by default), as a video track is recorded. Blocking."""
    width, height = 160, 120
    with av.open(str(path), "w", format="matroska") as container:
        stream = cast("av.VideoStream", container.add_stream(codec, rate=fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(int(seconds * fps)):
            frame = av.VideoFrame(width, height, "yuv420p")
            luma = bytes((x + y + 4 * index) % 256 for y in range(height) for x in range(width))
            frame.planes[0].update(luma)
            for plane in frame.planes[1:]:
                plane.update(bytes([128 + index % 64]) * plane.buffer_size)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


async def seed(recordings: Recordings, credentials: Path) -> tuple[str, str, list[Recording]]:
    """The demo account (created on first call, read back after) and its recordings."""
    saved = await asyncio.to_thread(_read_saved, credentials)
    account = saved and await recordings.store.get_account(saved["account_sid"])
    if account:
        return account.sid, account.auth_token, []
    account = await create_account(recordings.store, "Demo account")
    room, alice, bob = mint("RM"), mint("PA"), mint("PA")
    made: list[Recording] = []
    with tempfile.TemporaryDirectory() as folder:
        tracks: list[tuple[str, Callable[[Path, float], None], str, float]] = [
            ("alice-audio.mka", write_tone, alice, 5.0),
            ("alice-video.mkv", write_video, alice, 5.0),
            ("bob-audio.mka", write_tone, bob, 4.0),
        ]
        for name, write, participant, seconds in tracks:
            path = Path(folder) / name
            await asyncio.to_thread(write, path, seconds)
            made.append(
                await Ingestion(recordings.store, recordings.storage).ingest(
                    path,
                    account.sid,
                    room_sid=room,
                    participant_sid=participant,
                    track_name=name.rsplit(".", 1)[0],
                )
            )
    await asyncio.to_thread(_write_secret, credentials, {"account_sid": account.sid})
    return account.sid, account.auth_token, made


def _read_saved(path: Path) -> dict[str, str] | None:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except FileNotFoundError:
        return None


def _write_secret(path: Path, content: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as out:
        json.dump(content, out)
