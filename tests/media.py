"""Real Matroska recordings, made by the tests: PyAV where it can, FFmpeg for PCMU."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import av
import pytest

from gateway.demo import write_tone, write_video
from gateway.models import Codec


def write_pcmu(path: Path, seconds: float) -> None:
    # FFmpeg muxes PCMU into Matroska only as an "unofficial" A_MS/ACM track (tag 7).
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"sine=duration={seconds}",
         "-ar", "8000", "-ac", "1", "-c:a", "pcm_mulaw", "-strict", "unofficial", str(path)],
        check=True,
    )  # fmt: skip


def write_mp3_in_matroska(path: Path) -> None:
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=duration=1",
         "-c:a", "libmp3lame", str(path)],
        check=True,
    )  # fmt: skip


def require_ffmpeg() -> None:
    if shutil.which("ffmpeg") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("ffmpeg is missing; .ci/run installs it")
        pytest.skip("needs the ffmpeg command: apt-get install ffmpeg")


def make_recordings(folder: Path) -> dict[Codec, Path]:
    """One file per codec Twilio records in, each a few seconds long."""
    files = {
        Codec.OPUS: folder / "audio.mka",
        Codec.VP8: folder / "video.mkv",
        Codec.H264: folder / "video-h264.mkv",
    }
    write_tone(files[Codec.OPUS], 3.0)
    write_video(files[Codec.VP8], 3.0)
    write_video(files[Codec.H264], 2.0, codec="libx264")
    if shutil.which("ffmpeg"):
        files[Codec.PCMU] = folder / "audio-pcmu.mka"
        write_pcmu(files[Codec.PCMU], 2.0)
    return files


def write_noisy_video(path: Path, seconds: float, fps: int = 15, bitrate: str = "4M") -> None:
    """VP8 noise a few MB long with a keyframe each second: large enough that a player
    must ask for a later range to seek, rather than reading the whole file at once."""
    width, height = 320, 240
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libvpx", rate=fps, options={"b": bitrate})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = fps
        for index in range(int(seconds * fps)):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane in frame.planes:
                plane.update(os.urandom(plane.buffer_size))
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
