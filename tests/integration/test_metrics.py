"""GATEWAY_METRICS_ADDRESS: what a Prometheus server scraping the gateway sees, from one
process, from several workers, and from the background work (callbacks, janitor,
recorder uploads)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from gateway.api.keys import METRICS
from gateway.app import create_app
from gateway.config import Settings
from gateway.models import Account, Codec
from gateway.signing import MediaGrant, MediaLinkSigner
from tests.conftest import SIGNING_KEY, basic_auth
from tests.integration.test_callbacks import Receiver, eventually, record
from tests.integration.test_workers import (
    access_lines,
    fresh_connections,
    local,
    until,
    workers_of,
)
from tests.processes import Served, free_port, ok, serving

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parsed(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 for one never counted (as Prometheus reads an absent series)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(address: str) -> str:
    async with ClientSession() as http, http.get(f"http://{address}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return await response.text()


def check_histograms(samples: Samples) -> None:
    """Every histogram series as Prometheus requires it: buckets that only grow, up to a
    +Inf bucket equal to the count."""
    series: dict[tuple[str, frozenset[tuple[str, str]]], list[tuple[float, float]]] = {}
    for (name, labels), count in samples.items():
        if name.endswith("_bucket"):
            rest = frozenset((k, v) for k, v in labels if k != "le")
            series.setdefault((name.removesuffix("_bucket"), rest), []).append(
                (float(dict(labels)["le"]), count)
            )
    assert series
    for (name, labels), buckets in series.items():
        counts = [count for _, count in sorted(buckets)]
        assert counts == sorted(counts), name
        assert sorted(buckets)[-1][0] == float("inf")
        assert counts[-1] == samples[(f"{name}_count", labels)], name


@pytest.fixture
def recording(env: dict[str, str], media_files: dict[Any, Path]) -> dict[str, Any]:
    account = ok(env, "accounts", "create")
    path = next(iter(media_files.values()))
    recording = ok(env, "ingest", str(path), "--account", account["account_sid"])
    return {
        **recording,
        "account_sid": account["account_sid"],
        "auth": basic_auth(account["account_sid"], account["auth_token"]),
    }


def storage_kind(env: dict[str, str]) -> str:
    return "s3" if env["GATEWAY_STORAGE_URL"].startswith("s3://") else "local"


def database_kind(env: dict[str, str]) -> str:
    return "postgresql" if env["GATEWAY_DATABASE_URL"].startswith("postgres") else "sqlite"


async def test_one_process_counts_requests_links_and_bytes_by_route(
    env: dict[str, str], recording: dict[str, Any], media_files: dict[Any, Path]
) -> None:
    media = next(iter(media_files.values())).read_bytes()
    address = f"127.0.0.1:{free_port()}"
    sid, auth = recording["sid"], recording["auth"]
    with serving({**env, "GATEWAY_METRICS_ADDRESS": address}) as served:
        api = f"{served.base_url}/v1/Recordings/{sid}"
        async with ClientSession() as http:
            links = []
            for _ in range(3):
                async with http.get(f"{api}/Media", headers=auth, allow_redirects=False) as r:
                    assert r.status == 302
                    links.append(local(served, (await r.json())["redirect_to"]))
            async with http.get(links[0], headers={"Range": "bytes=0-1023"}) as r:
                assert (r.status, await r.read()) == (206, media[:1024])
            async with http.get(links[1]) as r:
                assert (r.status, await r.read()) == (200, media)
            async with http.head(links[1]) as r:
                assert r.status == 200
            tampered = links[0][:-2] + ("AA" if not links[0].endswith("AA") else "BB")
            async with http.get(tampered) as r:
                assert r.status == 403
            grant = MediaGrant(sid, recording["account_sid"], "attachment", expires_at=1)
            expired = MediaLinkSigner((SIGNING_KEY,)).issue(grant)
            async with http.get(f"{served.base_url}/media/{expired}") as r:
                assert r.status == 403
            async with http.request("PROPFIND", f"{served.base_url}/v1/Recordings") as r:
                assert r.status == 405
            async with http.delete(api, headers=auth) as r:
                assert r.status == 204
            async with http.get(links[2]) as r:
                assert r.status == 404

        async def all_counted() -> bool:
            text = await scrape(address)
            count = "http_server_request_duration_seconds_count"
            return value(parsed(text), count, http_request_method="DELETE",
                         http_route="/v1/Recordings/{sid}", http_response_status_class="2xx",
                         ) + value(parsed(text), count, http_request_method="GET",
                                   http_route="/media/{token}",
                                   http_response_status_class="4xx") == 4  # fmt: skip

        await eventually(all_counted)
        text = await scrape(address)

    samples = parsed(text)
    check_histograms(samples)

    def requests(method: str, route: str, status_class: str) -> float:
        return value(samples, "http_server_request_duration_seconds_count",
                     http_request_method=method, http_route=route,
                     http_response_status_class=status_class)  # fmt: skip

    def body_bytes(method: str, route: str, status_class: str) -> float:
        return value(samples, "http_server_response_body_size_bytes_sum",
                     http_request_method=method, http_route=route,
                     http_response_status_class=status_class)  # fmt: skip

    assert requests("GET", "/v1/Recordings/{sid}/Media", "3xx") == 3
    assert requests("GET", "/media/{token}", "2xx") == 2
    assert requests("HEAD", "/media/{token}", "2xx") == 1
    assert requests("GET", "/media/{token}", "4xx") == 3
    assert requests("_OTHER", "(no route)", "4xx") == 1
    assert body_bytes("GET", "/media/{token}", "2xx") == 1024 + len(media)
    assert body_bytes("HEAD", "/media/{token}", "2xx") == 0
    storage = storage_kind(env)
    assert value(samples, "gateway_media_sent_bytes_total", storage=storage) == 1024 + len(media)
    assert value(samples, "gateway_media_links_issued_total", kind="signed") == 3
    redeemed = {
        outcome: value(samples, "gateway_media_links_redeemed_total", outcome=outcome)
        for outcome in ("served", "refused", "expired", "revoked")
    }
    assert redeemed == {"served": 3, "refused": 1, "expired": 1, "revoked": 1}
    # Nothing left in flight once every answer is in.
    assert value(samples, "http_server_active_requests") == 0
    assert value(samples, "gateway_media_downloads_active", storage=storage) == 0
    timed = "gateway_storage_operation_duration_seconds_count"
    assert value(samples, timed, storage=storage, operation="open") == 2
    assert value(samples, timed, storage=storage, operation="size_of") == 1
    lookups = "gateway_database_operation_duration_seconds_count"
    assert value(samples, lookups, database=database_kind(env), operation="get_recording") >= 6
    # Label values name routes, never what a request carried.
    for secret in (sid, recording["account_sid"], URL(links[0]).name, expired, "PROPFIND"):
        assert secret not in text


async def test_workers_are_counted_together_and_their_files_go_with_them(
    env: dict[str, str], recording: dict[str, Any], tmp_path: Path
) -> None:
    address = f"127.0.0.1:{free_port()}"
    shared = tmp_path / "tmp"
    shared.mkdir()
    env = {**env, "GATEWAY_METRICS_ADDRESS": address, "TMPDIR": str(shared)}
    url_of = "http_server_request_duration_seconds_count"
    labels = {
        "http_request_method": "GET",
        "http_route": "/v1/Recordings/{sid}",
        "http_response_status_class": "2xx",
    }
    served: Served
    with serving(env, "--workers", "2") as served:
        await until(lambda: len(workers_of(served)) == 2, "two workers")
        url = f"{served.base_url}/v1/Recordings/{recording['sid']}"
        async with fresh_connections() as http:

            async def fetch() -> int:
                async with http.get(url, headers=recording["auth"]) as response:
                    return response.status

            # Which worker accepts a connection is the kernel's choice: until both have
            # answered some, a hundred more (rarely more than the first hundred).
            sent = 0
            while sent < 1000:
                assert set(await asyncio.gather(*(fetch() for _ in range(100)))) == {200}
                sent += 100
                await until(functools.partial(logged, served, sent), f"{sent} access lines")
                if {pid for pid, *_ in access_lines(served)} == workers_of(served):
                    break
        assert {pid for pid, *_ in access_lines(served)} == workers_of(served)
        samples: list[float] = []

        async def all_counted() -> bool:
            samples.append(value(parsed(await scrape(address)), url_of, **labels))
            return samples[-1] >= sent

        await eventually(all_counted)  # each worker hands its counts over once a second
        assert samples[-1] == sent
        assert [path.name[:16] for path in shared.iterdir()] == ["gateway-metrics-"]
    assert list(shared.iterdir()) == [], "the workers' metrics files outlived the service"


def logged(served: Served, lines: int) -> bool:
    return len(access_lines(served)) >= lines


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings,
        metrics_address=("127.0.0.1", 0),  # counting; the command, not the app, listens
        callback_allow=("127.0.0.1",),
        callback_backoff=0.05,
        janitor_interval=0.05,
        deleted_retention=0.01,
    )


@pytest.fixture
def app(settings: Settings) -> web.Application:
    # The real clock: the janitor's retention is measured against it.
    return create_app(settings, settings.signing_keys)


@pytest.fixture
async def recorder() -> AsyncIterator[ClientSession]:
    from tests.conftest import ADMIN_TOKEN

    async with ClientSession(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as session:
        yield session


async def test_background_work_is_counted(
    started: web.Application,
    base_url: str,
    account: Account,
    recorder: ClientSession,
    http: ClientSession,
    media_files: dict[Codec, Path],
) -> None:
    registry = started[METRICS].registry
    assert registry is not None
    receiver = Receiver(account.auth_token)
    port = free_port()
    async with TestServer(receiver.app(), host="127.0.0.1", port=port):
        path = media_files[Codec.OPUS]
        sid = await record(recorder, base_url, account, port, path)
        async with http.delete(f"{base_url}/v1/Recordings/{sid}") as response:
            assert response.status == 204

        def sample(name: str, **labels: str) -> float:
            return registry.get_sample_value(name, labels) or 0.0

        await eventually(
            lambda: (
                sample("gateway_callback_deliveries_total", outcome="delivered") == 3
                and sample("gateway_janitor_removed_total", what="recordings") == 1
            )
        )
    assert receiver.events(sid) == ["recording-started", "recording-completed", "recording-deleted"]
    assert sample("gateway_recorder_uploads_total") == 1
    size = len(await asyncio.to_thread(path.read_bytes))
    assert sample("gateway_recorder_upload_bytes_total") == size
    assert sample("gateway_janitor_sweeps_total", outcome="ran") >= 1
    assert sample("gateway_callback_outbox_backlog") == 0
    assert sample("gateway_callback_deliveries_total", outcome="abandoned") == 0


def test_without_an_address_nothing_is_counted_or_wrapped(settings: Settings) -> None:
    plain = dataclasses.replace(settings, metrics_address=None)
    app = create_app(plain, plain.signing_keys)
    assert app[METRICS].enabled is False
    assert app[METRICS].registry is None
