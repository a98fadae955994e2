"""The source of an import: a service speaking the Recordings API (Twilio, or another
gateway), walked with Twilio's own helper library and asked politely.

Polite means what Twilio documents: at most `rate` read requests a second (Twilio
allows 80 per account), `429` answered by waiting its `Retry-After`, 5xx and broken
connections retried with exponential backoff and jitter a bounded number of times."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from gateway.errors import GatewayError

log = logging.getLogger(__name__)

DEFAULT_SOURCE: Final = "https://video.twilio.com"
PAGE_SIZE: Final = 100
CHUNK: Final = 1024 * 1024
# Twilio's encryption headers on the presigned object (customer-key encryption).
ENCRYPTED_KEY: Final = "x-amz-meta-x-amz-key"
ENCRYPTED_IV: Final = "x-amz-meta-x-amz-iv"


class SourceError(GatewayError):
    """The source would not give what was asked, after every retry."""


@dataclass(frozen=True, slots=True)
class Credentials:
    account_sid: str
    username: str  # the account SID with its auth token, or an API key's SID
    password: str

    @property
    def is_auth_token(self) -> bool:
        return self.username == self.account_sid


@dataclass(frozen=True, slots=True)
class Politeness:
    rate: float = 50.0  # read requests a second, under Twilio's 80
    attempts: int = 5  # for each request, before giving up on it
    backoff: float = 0.5  # seconds before the first retry; doubled each time
    max_wait: float = 60.0
    page_size: int = PAGE_SIZE  # recordings a list request asks for


class _Pace:
    """Spaces requests at least 1/rate apart, across every task of the run."""

    def __init__(self, rate: float) -> None:
        self._interval, self._next = 1.0 / rate, 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
            self._next = max(now, self._next) + self._interval


def _wait_before(attempt: int, politeness: Politeness, retry_after: str | None) -> float:
    """Retry-After's seconds when the source gave them, else backoff with full jitter."""
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), politeness.max_wait)
        except ValueError:
            pass  # an HTTP date: fall back to backoff
    ceiling = min(politeness.backoff * 2 ** (attempt - 1), politeness.max_wait)
    return random.uniform(ceiling / 2, ceiling)


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


class _PoliteClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """The helper library's HTTP client, paced and retrying."""

    def __init__(self, pace: _Pace, politeness: Politeness) -> None:
        super().__init__(timeout=60)
        self._pace, self._politeness = pace, politeness

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        attempt = 0
        while True:
            attempt += 1
            await self._pace.wait()
            try:
                response: Response = await super().request(method, url, *args, **kwargs)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if attempt >= self._politeness.attempts:
                    raise SourceError(f"the source did not answer: {type(exc).__name__}") from None
                await asyncio.sleep(_wait_before(attempt, self._politeness, None))
                continue
            if _retryable(response.status_code) and attempt < self._politeness.attempts:
                retry_after = response.headers.get("Retry-After")
                await asyncio.sleep(_wait_before(attempt, self._politeness, retry_after))
                continue
            return response


class Source:
    """One run's connection to the source: listing through the helper library, media
    through its /Media redirect."""

    def __init__(self, url: str, credentials: Credentials, politeness: Politeness) -> None:
        self.url = url.rstrip("/")
        self.credentials = credentials
        self._politeness = politeness
        self._pace = _Pace(politeness.rate)
        self._http = _PoliteClient(self._pace, politeness)
        self._client = Client(
            credentials.username,
            credentials.password,
            credentials.account_sid,
            http_client=self._http,
        )
        self._client.video.base_url = self.url
        # Redirects are followed by hand: the presigned URL must get no credentials.
        self._media = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
        )

    async def aclose(self) -> None:
        await self._media.close()
        await self._http.close()

    async def recordings(self, **filters: Any) -> AsyncIterator[Any]:
        """Every recording the filters select, page after page (RecordingInstance)."""
        listing = self._client.video.v1.recordings
        try:
            pages = await listing.stream_async(page_size=self._politeness.page_size, **filters)
            async for recording in pages:
                yield recording
        except TwilioException as refused:  # after every retry, or not retryable
            raise SourceError(f"listing recordings: {_refusal(refused)}") from None

    async def media_link(self, sid: str) -> str:
        """Where /Media redirects: Twilio's presigned URL, or another gateway's link."""
        url = f"{self.url}/v1/Recordings/{sid}/Media"
        auth = aiohttp.BasicAuth(self.credentials.username, self.credentials.password)
        attempt = 0
        while True:
            attempt += 1
            await self._pace.wait()
            try:
                async with self._media.get(url, auth=auth, allow_redirects=False) as response:
                    if response.status in (301, 302, 303, 307, 308):
                        try:
                            body = await response.json(content_type=None)
                        except ValueError:  # no JSON body: the Location header says it
                            body = None
                        named = body.get("redirect_to") if isinstance(body, dict) else None
                        link = named or response.headers.get("Location")
                        if not isinstance(link, str):
                            raise SourceError(f"{sid}: /Media gave no redirect_to")
                        return link
                    status, retry_after = response.status, response.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                status, retry_after = 0, None
                reason = type(exc).__name__
            else:
                reason = f"HTTP {status}"
            if (status and not _retryable(status)) or attempt >= self._politeness.attempts:
                raise SourceError(f"{sid}: /Media answered {reason}")
            await asyncio.sleep(_wait_before(attempt, self._politeness, retry_after))

    async def media(self, sid: str) -> Media:
        """The media's bytes as the source stores them, with what says how (encryption)."""
        return Media(self, sid, await self.media_link(sid))


class Media:
    """One recording's stored bytes, read from the presigned link in pieces; a cut
    connection is resumed with a Range from where it broke, and an expired link is
    asked for again."""

    def __init__(self, source: Source, sid: str, link: str) -> None:
        self._source, self.sid, self._link = source, sid, link
        # The object's headers, from the first answer: they say whether it is encrypted.
        self.headers: Mapping[str, str] = {}
        self.resumed = 0  # how many times a cut download went on from where it broke

    @property
    def encryption(self) -> tuple[str, str] | None:
        key, iv = self.headers.get(ENCRYPTED_KEY), self.headers.get(ENCRYPTED_IV)
        return (key, iv) if key and iv else None

    async def chunks(self) -> AsyncIterator[bytes]:
        received, attempt, total = 0, 0, None
        politeness = self._source._politeness
        while total is None or received < total:
            headers = {"Range": f"bytes={received}-"} if received else {}
            retry_after: str | None = None
            try:
                async with self._source._media.get(self._link, headers=headers) as response:
                    if response.status in (200, 206):
                        if not self.headers:
                            self.headers = {k.lower(): v for k, v in response.headers.items()}
                        total = _total(response) if total is None else total
                        skip = received if response.status == 200 else 0
                        async for chunk in response.content.iter_chunked(CHUNK):
                            if skip:  # the source ignored the Range: past what we have
                                dropped = min(skip, len(chunk))
                                chunk, skip = chunk[dropped:], skip - dropped
                            if chunk:
                                received += len(chunk)
                                yield chunk
                        if total is None or received >= total:
                            return
                        raise aiohttp.ClientPayloadError("the body ended early")
                    if response.status in (401, 403, 404):
                        # A presigned link that expired: ask /Media for a new one.
                        self._link = await self._source.media_link(self.sid)
                    elif not _retryable(response.status):
                        raise SourceError(f"{self.sid}: the media answered {response.status}")
                    retry_after = response.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.info("%s: download broke off at %d bytes (%s)", self.sid, received,
                         type(exc).__name__)  # fmt: skip
            attempt += 1
            if attempt >= politeness.attempts:
                raise SourceError(f"{self.sid}: the download kept failing at {received} bytes")
            self.resumed += 1
            await asyncio.sleep(_wait_before(attempt, politeness, retry_after))


def _refusal(exc: TwilioException) -> str:
    """What the source answered, from the helper library's two ways of saying it."""
    if isinstance(exc, TwilioRestException):
        return f"HTTP {exc.status}: {exc.msg}"
    response = exc.args[1] if len(exc.args) > 1 else None  # a page it could not fetch
    status = getattr(response, "status_code", None)
    if status is None:
        return str(exc.args[0] if exc.args else exc)
    try:
        message = json.loads(response.text).get("message", "")  # type: ignore[union-attr]
    except (ValueError, AttributeError):
        message = ""
    return f"HTTP {status}: {message}" if message else f"HTTP {status}"


def _total(response: aiohttp.ClientResponse) -> int | None:
    """The whole object's size: Content-Range's total on a 206, else Content-Length."""
    if response.status == 206:
        _, _, total = response.headers.get("Content-Range", "").rpartition("/")
        return int(total) if total.isdigit() else None
    return response.content_length


def list_filters(
    *,
    room: str | None,
    participant: str | None,
    source_sid: str | None,
    status: str | None,
    media_type: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
) -> dict[str, Any]:
    """The helper library's arguments for the list filters given."""
    found: dict[str, Any] = {}
    grouping = [sid for sid in (room, participant) if sid]
    if grouping:
        found["grouping_sid"] = grouping
    for name, value in (
        ("source_sid", source_sid),
        ("status", status),
        ("media_type", media_type),
        ("date_created_after", created_after),
        ("date_created_before", created_before),
    ):
        if value is not None:
            found[name] = value
    return found
