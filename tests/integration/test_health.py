"""/healthz and /readyz as a load balancer probes them: no credentials, real outages."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from yarl import URL

from gateway.app import create_app
from gateway.config import Settings
from tests.in_process import GatewayTestServer

READY = {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}


@asynccontextmanager
async def gateway(settings: Settings, **changes: Any) -> AsyncIterator[TestServer]:
    changed = dataclasses.replace(settings, **changes)
    async with GatewayTestServer(
        create_app(changed, changed.signing_keys), host="127.0.0.1"
    ) as server:
        yield server


async def probe(anonymous: ClientSession, server: TestServer) -> tuple[int, Any]:
    async with anonymous.get(server.make_url("/readyz")) as response:
        assert response.headers["Cache-Control"] == "no-store"
        return response.status, await response.json()


class Relay:
    """A TCP relay to PostgreSQL that the test can cut, as a network partition would."""

    def __init__(self, upstream: URL) -> None:
        self.upstream = upstream
        self.pipes: set[asyncio.Task[None]] = set()
        self.transports: set[asyncio.BaseTransport] = set()
        self.server: asyncio.Server | None = None
        self.passing = False

    async def open(self, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", port)
        self.passing = True
        return int(self.server.sockets[0].getsockname()[1])

    async def cut(self) -> None:
        assert self.server is not None
        self.passing = False  # a connection accepted as the cut begins must not get through
        self.server.close()
        for pipe in self.pipes:
            pipe.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)
        # Both ends reset now, as a partition's would, not when each relay next runs.
        for transport in self.transports:
            transport.abort()
        await self.server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.passing:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(self.upstream.host, self.upstream.port)
        if not self.passing:  # the cut came while this one was connecting upstream
            for each in (writer, up_writer):
                each.transport.abort()
            return
        self.transports.update((writer.transport, up_writer.transport))
        pipes = [
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        ]
        self.pipes.update(pipes)
        with suppress(asyncio.CancelledError):
            # Either side closing closes the other, as a TCP proxy does.
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for pipe in pipes:
            pipe.cancel()
        for each in (writer, up_writer):
            each.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def test_healthz_answers_without_credentials(anonymous: ClientSession, base_url: str) -> None:
    async with anonymous.get(f"{base_url}/healthz") as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        assert await response.json() == {"status": "ok"}


async def test_readyz_is_200_when_database_and_storage_answer(
    anonymous: ClientSession, server: TestServer
) -> None:
    assert await probe(anonymous, server) == (200, READY)


async def test_readyz_is_503_naming_storage_while_s3_is_unreachable_and_healthz_stays_200(
    settings: Settings, anonymous: ClientSession
) -> None:
    dead_s3 = {"storage_url": "s3://media", "s3_endpoint_url": "http://127.0.0.1:9"}
    async with gateway(settings, **dead_s3, s3_timeout=0.5) as server:
        assert await probe(anonymous, server) == (
            503,
            {"status": "unavailable", "checks": {"database": "ok", "storage": "unavailable"}},
        )
        async with anonymous.get(server.make_url("/healthz")) as response:
            assert response.status == 200


async def test_readyz_follows_the_media_folder_going_and_coming_back(
    tmp_path: Any, settings: Settings, anonymous: ClientSession
) -> None:
    folder = tmp_path / "mounted"
    async with gateway(settings, storage_url=f"file://{folder}") as server:
        assert await probe(anonymous, server) == (200, READY)
        await asyncio.to_thread(shutil.rmtree, folder)  # the volume went away
        status, body = await probe(anonymous, server)
        assert (status, body["checks"]["storage"]) == (503, "unavailable")
        await asyncio.to_thread(folder.mkdir)
        assert await probe(anonymous, server) == (200, READY)


async def test_readyz_is_503_naming_the_database_while_postgres_is_cut_off(
    settings: Settings, anonymous: ClientSession
) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("a network partition from the database needs a networked one")
    relay = Relay(URL(settings.database_url))
    port = await relay.open()
    through_relay = str(URL(settings.database_url).with_host("127.0.0.1").with_port(port))
    async with gateway(settings, database_url=through_relay) as server:
        assert await probe(anonymous, server) == (200, READY)
        await relay.cut()
        assert await probe(anonymous, server) == (
            503,
            {"status": "unavailable", "checks": {"database": "unavailable", "storage": "ok"}},
        )
        await relay.open(port)  # the network heals
        assert await probe(anonymous, server) == (200, READY)
        await relay.cut()
