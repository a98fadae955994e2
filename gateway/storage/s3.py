"""Media in S3 or any S3-compatible server (MinIO, Ceph RGW), through aiobotocore."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from gateway.config import Settings
from gateway.errors import MediaMissing, StorageUnavailable

log = logging.getLogger(__name__)

# S3 takes parts of 5 MiB or more; larger parts mean fewer requests per recording.
PART_SIZE: Final = 8 * 1024 * 1024
ABANDONED_AFTER: Final = timedelta(days=1)
# InvalidRange: the object is shorter than the metadata says, so it is not ours.
_MISSING: Final = frozenset({"NoSuchKey", "404", "NotFound", "InvalidRange"})


@dataclass(slots=True)
class S3MediaReader:
    body: Any  # aiobotocore's streaming body
    start: int
    end: int

    async def read(self, size: int) -> bytes:
        # aiohttp also buffers up to twice `size` from S3 once asked for that much.
        try:
            return await self.body.read(size)  # type: ignore[no-any-return]
        except (TimeoutError, BotoCoreError) as exc:
            raise StorageUnavailable(f"S3 stopped sending: {exc}") from exc

    async def aclose(self) -> None:
        # Closing an unfinished body drops its connection rather than draining it, so a
        # client leaving a multi-GB download frees the S3 connection at once.
        self.body.close()


class S3Storage:
    serves_files = False

    def __init__(self, client: Any, bucket: str, prefix: str, exits: AsyncExitStack) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._exits = exits
        self._lister: Any = None
        self._uploads: Any = None
        self._uploading: set[str] = set()  # this process's multipart uploads in flight

    @classmethod
    async def create(cls, settings: Settings) -> S3Storage:
        url = urlsplit(settings.storage_url)
        config = AioConfig(
            max_pool_connections=settings.s3_max_connections,
            connect_timeout=settings.s3_timeout,
            read_timeout=settings.s3_timeout,
            retries={"max_attempts": 2, "mode": "standard"},
            # SigV4 everywhere: newer AWS regions and most S3-compatible servers
            # accept nothing else, for presigned URLs too.
            signature_version="s3v4",
        )
        exits = AsyncExitStack()
        client = await exits.enter_async_context(
            get_session().create_client("s3", endpoint_url=settings.s3_endpoint_url, config=config)
        )
        prefix = url.path.strip("/")
        return cls(client, url.netloc, f"{prefix}/" if prefix else "", exits)

    async def aclose(self) -> None:
        await self._exits.aclose()

    async def check(self) -> None:
        with _answered(self._prefix or "/"):
            await self._client.head_bucket(Bucket=self._bucket)

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        buffer = bytearray()
        iterator = aiter(chunks)
        async for chunk in iterator:
            buffer += chunk
            if len(buffer) >= PART_SIZE:
                return await self._put_multipart(key, buffer, iterator)
        with _answered(key):
            await self._client.put_object(
                Bucket=self._bucket, Key=self._key(key), Body=bytes(buffer)
            )
        return len(buffer)

    async def _put_multipart(self, key: str, buffer: bytearray, rest: AsyncIterator[bytes]) -> int:
        with _answered(key):
            upload = await self._client.create_multipart_upload(
                Bucket=self._bucket, Key=self._key(key)
            )
        upload_id, size = upload["UploadId"], 0
        parts: list[dict[str, Any]] = []
        self._uploading.add(upload_id)
        try:
            async for chunk in _parts(buffer, rest):
                number = len(parts) + 1
                with _answered(key):
                    sent = await self._client.upload_part(
                        Bucket=self._bucket, Key=self._key(key), UploadId=upload_id,
                        PartNumber=number, Body=chunk,
                    )  # fmt: skip
                parts.append({"ETag": sent["ETag"], "PartNumber": number})
                size += len(chunk)
            with _answered(key):
                await self._client.complete_multipart_upload(
                    Bucket=self._bucket, Key=self._key(key), UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )  # fmt: skip
        except BaseException:
            # Parts of an unfinished upload are billed and invisible: never leave them.
            await asyncio.shield(self._abort(key, upload_id))
            raise
        finally:
            self._uploading.discard(upload_id)
        return size

    async def _abort(self, key: str, upload_id: str) -> None:
        try:
            await self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key(key), UploadId=upload_id
            )
        except (BotoCoreError, ClientError):
            log.exception("could not abort multipart upload %s of %s", upload_id, key)

    async def discard_unfinished(self, prefix: str) -> int:
        # S3 cannot say whether another process's upload is alive, so beyond this
        # process's own, only uploads begun a day or more ago count as abandoned (a bucket
        # lifecycle rule with AbortIncompleteMultipartUpload does the same on S3's side).
        cutoff = datetime.now(UTC) - ABANDONED_AFTER
        if self._uploads is None:  # reading the paginator's model reads a file
            self._uploads = await asyncio.to_thread(
                self._client.get_paginator, "list_multipart_uploads"
            )
        discarded = 0
        with _answered(prefix or "/"):
            async for page in self._uploads.paginate(Bucket=self._bucket, Prefix=self._key(prefix)):
                for upload in page.get("Uploads", []):
                    if upload["UploadId"] not in self._uploading and upload["Initiated"] < cutoff:
                        key = upload["Key"].removeprefix(self._prefix)
                        await self._abort(key, upload["UploadId"])
                        discarded += 1
        return discarded

    async def open(self, key: str, start: int, end: int) -> S3MediaReader:
        with _answered(key):
            # The client's own range goes to S3, so a seek to the end of a long
            # recording costs what a seek to its start does.
            answer = await self._client.get_object(
                Bucket=self._bucket, Key=self._key(key), Range=f"bytes={start}-{end - 1}"
            )
        return S3MediaReader(answer["Body"], start, end)

    async def size_of(self, key: str) -> int:
        with _answered(key):
            answer = await self._client.head_object(Bucket=self._bucket, Key=self._key(key))
        return int(answer["ContentLength"])

    async def delete(self, key: str) -> None:
        with _answered(key):
            await self._client.delete_object(Bucket=self._bucket, Key=self._key(key))

    async def stored(self) -> AsyncIterator[tuple[str, datetime]]:
        if self._lister is None:
            # Loading the paginator reads its model from disk: not on the event loop.
            self._lister = await asyncio.to_thread(self._client.get_paginator, "list_objects_v2")
        pages = self._lister.paginate(Bucket=self._bucket, Prefix=self._prefix)
        with _answered(self._prefix or "/"):
            async for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"].removeprefix(self._prefix), item["LastModified"]

    async def presign(
        self, key: str, ttl: int, content_type: str, content_disposition: str
    ) -> str | None:
        url: str = await self._client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self._bucket,
                "Key": self._key(key),
                "ResponseContentType": content_type,
                "ResponseContentDisposition": content_disposition,
            },
            ExpiresIn=ttl,
        )
        return url


async def _parts(first: bytearray, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Parts of exactly PART_SIZE, but the last."""
    buffer = first
    while True:
        while len(buffer) >= PART_SIZE:
            yield bytes(buffer[:PART_SIZE])
            del buffer[:PART_SIZE]
        chunk = await anext(rest, None)
        if chunk is None:
            break
        buffer += chunk
    if buffer:
        yield bytes(buffer)


@contextmanager
def _answered(key: str) -> Iterator[None]:
    """Turns S3's failures into the gateway's: missing object → 404, outage → 503."""
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _MISSING:
            raise MediaMissing(f"No media stored under {key}") from exc
        if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
            log.warning("S3 failed on %s: %s", key, code or status)
            raise StorageUnavailable(f"S3 answered {code or status}") from exc
        raise
    except (TimeoutError, BotoCoreError) as exc:
        log.warning("S3 unreachable for %s: %s", key, exc)
        raise StorageUnavailable(f"S3 is unreachable: {type(exc).__name__}") from exc
