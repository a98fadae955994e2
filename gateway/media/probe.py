"""What a media file holds, read with PyAV (FFmpeg's demuxers)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import av

from gateway.errors import MediaRejected
from gateway.models import Codec, Container, MediaType

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
    try:
        with av.open(str(path), format="matroska") as container:
            streams = [s for s in container.streams if s.type in ("audio", "video")]
            if len(streams) != 1:
                raise MediaRejected(f"{path.name}: a recording holds exactly one track")
            stream = streams[0]
            codec_name = stream.codec_context.codec.canonical_name
            codec = _CODECS.get(codec_name)
            if codec is None:
                raise MediaRejected(
                    f"{path.name}: codec {codec_name} is not one of VP8, H264, OPUS, PCMU"
                )
            # Read everything before the container closes: its streams die with it.
            media_type = MediaType(stream.type)
            seconds = _seconds(container, stream)
    except av.FFmpegError as exc:
        raise MediaRejected(f"{path.name}: not a Matroska file ({exc.strerror})") from None
    return Probe(_CONTAINERS[media_type], codec, media_type, _twilio_duration(seconds))


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
