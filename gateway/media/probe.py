"""What a media file holds, read with PyAV (FFmpeg's demuxers)."""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import av

from gateway.errors import MediaRejected, StorageUnavailable
from gateway.models import Codec, Container, MediaType
from gateway.storage import MediaStorage

# FFmpeg asks for small pieces; each storage read fetches this much around them.
READ_AHEAD: Final = 1024 * 1024
# A read that takes longer than this fails the probe rather than hold its thread.
READ_TIMEOUT: Final = 60.0
# Probes wait on the event loop for storage reads, which on a local folder run in the
# loop's default executor: sharing that executor could leave no thread to read.
_PROBING: Final = ThreadPoolExecutor(max_workers=4, thread_name_prefix="probe")

_CODECS: Final = {
    "vp8": Codec.VP8,
    "h264": Codec.H264,
    "opus": Codec.OPUS,
    "pcm_mulaw": Codec.PCMU,
}
_CONTAINERS: Final = {MediaType.AUDIO: Container.MKA, MediaType.VIDEO: Container.MKV}


@dataclass(frozen=True, slots=True)
class Probe:
    container_format: Container
    codec: Codec
    type: MediaType
    duration: int


def probe(path: Path) -> Probe:
    """Blocking: call it in a worker thread."""
    return _probe(str(path), path.name)


async def probe_stored(storage: MediaStorage, key: str, size: int) -> Probe:
    """What a stored object holds, read in place: FFmpeg reads the headers, so only
    the first MiB or so of even a long recording leaves storage."""
    loop = asyncio.get_running_loop()
    stored = StoredFile(storage, key, size, loop)
    return await loop.run_in_executor(_PROBING, _probe, stored, "the upload")


def _probe(source: str | io.RawIOBase, name: str) -> Probe:
    try:
        with av.open(source, mode="r", format="matroska") as container:
            streams = [s for s in container.streams if s.type in ("audio", "video")]
            if len(streams) != 1:
                raise MediaRejected(f"{name}: a recording holds exactly one track")
            stream = streams[0]
            codec_name = stream.codec_context.codec.canonical_name
            codec = _CODECS.get(codec_name)
            if codec is None:
                raise MediaRejected(
                    f"{name}: codec {codec_name} is not one of VP8, H264, OPUS, PCMU"
                )
            # Read everything before the container closes: its streams die with it.
            media_type = MediaType(stream.type)
            seconds = _seconds(container, stream)
    except av.FFmpegError as exc:
        raise MediaRejected(f"{name}: not a Matroska file ({exc.strerror})") from None
    return Probe(_CONTAINERS[media_type], codec, media_type, _twilio_duration(seconds))


class StoredFile(io.RawIOBase):
    """A stored object as a blocking, seekable file for PyAV in a worker thread: each
    read past what it holds is a ranged storage read, run on the event loop."""

    def __init__(
        self, storage: MediaStorage, key: str, size: int, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._storage, self._key, self._size, self._loop = storage, key, size, loop
        self._position = 0
        self._held, self._held_from = b"", 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._position >= self._size:
            return 0
        offset = self._position - self._held_from
        if not 0 <= offset < len(self._held):
            end = min(self._size, self._position + max(len(buffer), READ_AHEAD))
            fetch = asyncio.run_coroutine_threadsafe(self._fetch(self._position, end), self._loop)
            try:
                self._held = fetch.result(READ_TIMEOUT)
            except TimeoutError:
                fetch.cancel()
                raise StorageUnavailable(f"no answer from storage in {READ_TIMEOUT:g} s") from None
            self._held_from, offset = self._position, 0
        piece = self._held[offset : offset + len(buffer)]
        buffer[: len(piece)] = piece
        self._position += len(piece)
        return len(piece)

    async def _fetch(self, start: int, end: int) -> bytes:
        reader = await self._storage.open(self._key, start, end)
        try:
            pieces = []
            while piece := await reader.read(end - start):
                pieces.append(piece)
            return b"".join(pieces)
        finally:
            await reader.aclose()


def _seconds(container: av.container.InputContainer, stream: av.stream.Stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _twilio_duration(seconds: float) -> int:
    # "Rounded to the nearest second. Sub-second tracks have a Duration of 1" (schema).
    if seconds <= 0:
        return 0
    return max(1, int(seconds + 0.5))
