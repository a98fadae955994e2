"""Status callbacks as a receiver sees them: signed, at least once, never blocking the API."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from twilio.request_validator import RequestValidator

from gateway.api.keys import STORE
from gateway.app import create_app
from gateway.config import Settings
from gateway.models import Account, Codec, Delivery
from gateway.sids import mint
from tests.conftest import ADMIN_TOKEN
from tests.in_process import GatewayTestServer
from tests.processes import free_port


class Receiver:
    """An application's callback endpoint that checks every signature it is sent."""

    def __init__(self, auth_token: str) -> None:
        self.validator = RequestValidator(auth_token)
        self.accepted: list[dict[str, str]] = []
        self.refusals_left = 0
        self.hold: asyncio.Event | None = None
        self.badly_signed = 0

    async def handle(self, request: web.Request) -> web.Response:
        params = dict(await request.post()) if request.method == "POST" else {}
        signed = request.headers.get("X-Twilio-Signature", "")
        # The URL exactly as sent: yarl's normalised request.url may spell the query otherwise.
        url = f"{request.scheme}://{request.host}{request.raw_path}"
        if not self.validator.validate(url, params, signed):
            self.badly_signed += 1
            return web.Response(status=403)
        if self.refusals_left:
            self.refusals_left -= 1
            return web.Response(status=500)
        if self.hold is not None:
            await self.hold.wait()
        self.accepted.append(params or dict(request.query))
        return web.Response(status=204)

    def events(self, sid: str) -> list[str]:
        return [p["StatusCallbackEvent"] for p in self.accepted if p["RecordingSid"] == sid]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/events", self.handle)
        return app


@pytest.fixture
def settings(settings: Settings) -> Settings:
    fast = {"callback_backoff": 0.05, "callback_timeout": 2.0, "callback_attempts": 50}
    return dataclasses.replace(settings, callback_allow=("127.0.0.1",), **fast)  # type: ignore[arg-type]


@pytest.fixture
def receiver_port() -> int:
    return free_port()


@pytest.fixture
def receiver(account: Account) -> Receiver:
    return Receiver(account.auth_token)


@pytest.fixture
async def listening(receiver: Receiver, receiver_port: int) -> AsyncIterator[TestServer]:
    async with TestServer(receiver.app(), host="127.0.0.1", port=receiver_port) as server:
        yield server


@pytest.fixture
async def recorder() -> AsyncIterator[ClientSession]:
    async with ClientSession(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as session:
        yield session


async def eventually(condition: Callable[[], bool | Awaitable[bool]], seconds: float = 20) -> None:
    """Wait, within a generous bound, for the background worker to get there."""
    async with asyncio.timeout(seconds):
        while True:
            met = condition()
            if await met if inspect.isawaitable(met) else met:
                return
            await asyncio.sleep(0.02)


async def record(
    recorder: ClientSession, base_url: str, account: Account, port: int, path: Path, **extra: str
) -> str:
    """A whole recorder session; the recording's SID."""
    body = {
        "account_sid": account.sid, "type": "audio", "codec": "OPUS", "container_format": "mka",
        "source_sid": mint("MT"), "grouping_sids": {"room_sid": mint("RM")},
        "status_callback": f"http://127.0.0.1:{port}/events", **extra,
    }  # fmt: skip
    internal = f"{base_url}/internal/v1/Recordings"
    async with recorder.post(internal, json=body) as response:
        sid: str = (await response.json())["sid"]
    async with recorder.put(
        f"{internal}/{sid}/Media", data=await asyncio.to_thread(path.read_bytes)
    ):
        pass
    async with recorder.post(f"{internal}/{sid}/Complete") as response:
        assert (await response.json())["status"] == "completed"
    return sid


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_each_state_change_is_announced_signed_with_twilio_parameters(
    listening: TestServer,
    receiver: Receiver,
    receiver_port: int,
    recorder: ClientSession,
    http: ClientSession,
    base_url: str,
    account: Account,
    media_files: dict[Codec, Path],
    method: str,
) -> None:
    sid = await record(
        recorder, base_url, account, receiver_port, media_files[Codec.OPUS],
        status_callback_method=method,
    )  # fmt: skip
    async with http.delete(f"{base_url}/v1/Recordings/{sid}") as response:
        assert response.status == 204
    await eventually(lambda: len(receiver.events(sid)) == 3)
    assert sorted(receiver.events(sid)) == [
        "recording-completed", "recording-deleted", "recording-started",
    ]  # fmt: skip
    assert receiver.badly_signed == 0
    completed = next(p for p in receiver.accepted if p["StatusCallbackEvent"].endswith("completed"))
    assert completed["AccountSid"] == account.sid
    assert (completed["Codec"], completed["Container"], completed["Duration"]) == (
        "OPUS",
        "mka",
        "3",
    )
    assert completed["Size"] == str(media_files[Codec.OPUS].stat().st_size)
    assert completed["MediaUri"] == f"/v1/Recordings/{sid}/Media"
    assert completed["RoomSid"].startswith("RM")


async def test_receiver_down_then_back_gets_every_event_once(
    app: web.Application,
    receiver: Receiver,
    receiver_port: int,
    recorder: ClientSession,
    base_url: str,
    account: Account,
    media_files: dict[Codec, Path],
) -> None:
    # Nobody listening at first: every attempt fails to connect.
    sids = [
        await record(recorder, base_url, account, receiver_port, media_files[Codec.OPUS])
        for _ in range(3)
    ]
    await eventually(lambda: _all_attempted(app, 2))
    receiver.refusals_left = 4  # then it answers 500 for a while
    async with TestServer(receiver.app(), host="127.0.0.1", port=receiver_port):
        await eventually(lambda: _all_delivered(app, 6))  # nothing more will be sent
    counts = Counter((p["RecordingSid"], p["StatusCallbackEvent"]) for p in receiver.accepted)
    assert set(counts.values()) == {1}
    events = ("recording-started", "recording-completed")
    assert set(counts) == {(sid, event) for sid in sids for event in events}
    assert receiver.badly_signed == 0


async def _all_delivered(app: web.Application, expected: int) -> bool:
    found = await app[STORE].list_callbacks(None, 100)
    return len(found) == expected and all(c.state is Delivery.DELIVERED for c in found)


async def _all_attempted(app: web.Application, attempts: int) -> bool:
    """Every callback tried and failed `attempts` times, its last error noted."""
    found = await app[STORE].list_callbacks(None, 100)
    return bool(found) and all(c.attempts >= attempts and c.last_error for c in found)


async def test_undelivered_events_survive_a_restart(
    settings: Settings,
    app: web.Application,
    server: TestServer,
    receiver: Receiver,
    receiver_port: int,
    recorder: ClientSession,
    base_url: str,
    account: Account,
    media_files: dict[Codec, Path],
) -> None:
    sid = await record(recorder, base_url, account, receiver_port, media_files[Codec.OPUS])
    await eventually(lambda: _all_attempted(app, 1))
    await server.close()  # the gateway stops with both events undelivered
    restarted = create_app(settings, settings.signing_keys)
    async with (
        GatewayTestServer(restarted, host="127.0.0.1"),
        TestServer(receiver.app(), host="127.0.0.1", port=receiver_port),
    ):
        await eventually(lambda: len(receiver.events(sid)) == 2)
    assert sorted(receiver.events(sid)) == ["recording-completed", "recording-started"]


async def test_a_receiver_that_hangs_never_blocks_the_api(
    listening: TestServer,
    receiver: Receiver,
    receiver_port: int,
    recorder: ClientSession,
    http: ClientSession,
    twilio: object,
    base_url: str,
    account: Account,
    media_files: dict[Codec, Path],
) -> None:
    receiver.hold = asyncio.Event()  # takes every callback and never answers, for now
    sid = await record(recorder, base_url, account, receiver_port, media_files[Codec.OPUS])
    async with http.get(f"{base_url}/v1/Recordings") as response:
        assert [r["sid"] for r in (await response.json())["recordings"]] == [sid]
    async with http.delete(f"{base_url}/v1/Recordings/{sid}") as response:
        assert response.status == 204
    assert receiver.accepted == []  # all of that happened while the receiver hung
    receiver.hold.set()
    await eventually(lambda: len(receiver.events(sid)) == 3)


async def test_internal_receivers_are_refused_unless_allowed(
    settings: Settings,
    receiver: Receiver,
    receiver_port: int,
    recorder: ClientSession,
    account: Account,
    media_files: dict[Codec, Path],
) -> None:
    default = create_app(dataclasses.replace(settings, callback_allow=()), settings.signing_keys)
    async with (
        GatewayTestServer(default, host="127.0.0.1") as gateway,
        TestServer(receiver.app(), host="127.0.0.1", port=receiver_port),
    ):
        base = str(gateway.make_url("")).rstrip("/")
        sid = await record(recorder, base, account, receiver_port, media_files[Codec.OPUS])

        async def abandoned() -> bool:
            found = await default[STORE].list_callbacks(sid, 10)
            return len(found) == 2 and all(c.state is Delivery.ABANDONED for c in found)

        await eventually(abandoned)
        found = await default[STORE].list_callbacks(sid, 10)
    assert receiver.accepted == []
    assert all("GATEWAY_CALLBACK_ALLOW" in (c.last_error or "") for c in found)
    assert all(c.attempts == 1 for c in found)  # refused, not retried


async def test_a_callback_host_outside_an_explicit_allow_list_is_400(
    recorder: ClientSession, base_url: str, account: Account
) -> None:
    body = {
        "account_sid": account.sid, "type": "audio", "codec": "OPUS", "container_format": "mka",
        "source_sid": mint("MT"), "status_callback": "https://elsewhere.example.com/hook",
    }  # fmt: skip
    async with recorder.post(f"{base_url}/internal/v1/Recordings", json=body) as response:
        assert response.status == 400
        assert "status_callback" in (await response.json())["message"]
