"""Which S3 server can stand in for the real one under load: a 1 KiB range of a large
object, read with a warm aiobotocore client, from moto's server and from SeaweedFS.
moto reads the whole object for every range, so its range costs what the object weighs."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiobotocore.session import get_session

from benchmarks.harness import moto_server, seaweedfs_server

MIB: Final = 1024 * 1024
RANGE: Final = 1024


@dataclass(frozen=True, slots=True)
class RangeTimes:
    server: str
    object_mib: int
    ranges: int
    median_ms: float
    p90_ms: float
    max_ms: float


async def time_ranges(endpoint: str, server: str, object_mib: int, ranges: int) -> RangeTimes:
    bucket, key = "range-probe", "large"
    body = os.urandom(object_mib * MIB)
    chosen = random.Random(7)
    async with get_session().create_client("s3", endpoint_url=endpoint) as client:
        await client.create_bucket(Bucket=bucket)
        await client.put_object(Bucket=bucket, Key=key, Body=body)
        await client.head_object(Bucket=bucket, Key=key)  # the client's set-up, paid here
        took = []
        for _ in range(ranges):
            first = chosen.randrange(0, len(body) - RANGE)
            started = time.perf_counter()
            answer = await client.get_object(
                Bucket=bucket, Key=key, Range=f"bytes={first}-{first + RANGE - 1}"
            )
            got = await answer["Body"].read()
            took.append((time.perf_counter() - started) * 1000)
            if got != body[first : first + RANGE]:
                raise AssertionError(f"{server} answered other bytes for a range")
    took.sort()
    return RangeTimes(
        server, object_mib, ranges, statistics.median(took), took[int(0.9 * (len(took) - 1))],
        took[-1],
    )  # fmt: skip


def compare(folder: Path, object_mib: int = 256, ranges: int = 20) -> list[RangeTimes]:
    """moto's and SeaweedFS's times for the same ranges, each server started for it."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "loadtest")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "loadtest")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    folder.mkdir(parents=True, exist_ok=True)
    with moto_server(folder / "moto.log") as endpoint:
        moto = asyncio.run(time_ranges(endpoint, "moto", object_mib, ranges))
    with seaweedfs_server(folder / "seaweedfs") as (endpoint, _):
        seaweed = asyncio.run(time_ranges(endpoint, "SeaweedFS", object_mib, ranges))
    return [moto, seaweed]
