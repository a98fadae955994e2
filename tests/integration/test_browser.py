"""A real browser (headless Chromium, driven by Selenium) playing media links from a page
on another origin: what hls.js, dash.js, waveform viewers and canvas-drawing players do.

Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them); without them the
tests are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from gateway.accounts import create_account
from gateway.api import downloads, fast_lane
from gateway.api.keys import INGESTION, STORE
from gateway.app import create_app
from gateway.config import Settings
from gateway.media.reply import Reply
from gateway.media_links import StoredMedia
from gateway.models import Codec
from tests.conftest import SIGNING_KEY, basic_auth
from tests.in_process import GatewayTestServer
from tests.media import write_noisy_video

pytestmark = pytest.mark.parametrize("backends", ["sqlite+local"], indirect=True)

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
INSTALL = "apt-get install chromium chromium-driver"
PAGE = b"<!doctype html><html><head><title>player</title></head><body></body></html>"
SCRIPT_TIMEOUT = 30  # seconds a page's script may take to call back

# Each script ends by calling the callback Selenium appends to its arguments.
PLAY_AND_SEEK = """
const [tag, src, done] = arguments;
const media = document.createElement(tag);
media.muted = true;
media.preload = "auto";
media.addEventListener("error", () => done({error: media.error && media.error.code}));
media.addEventListener("loadedmetadata", async () => {
  try { await media.play(); } catch (e) { done({error: "play: " + e}); return; }
  const target = media.duration * 0.75;
  media.addEventListener("seeked", () => done({
    duration: media.duration, target: target, time: media.currentTime,
    readyState: media.readyState, paused: media.paused,
  }), {once: true});
  media.currentTime = target;
}, {once: true});
media.src = src;
document.body.appendChild(media);
"""

FETCH_RANGE = """
const [src, done] = arguments;
fetch(src, {headers: {Range: "bytes=0-1023"}})
  .then(async (r) => done({
    status: r.status, contentRange: r.headers.get("Content-Range"),
    length: (await r.arrayBuffer()).byteLength,
  }))
  .catch((e) => done({error: e.name + ": " + e.message}));
"""

DRAW_TO_CANVAS = """
const [src, done] = arguments;
const video = document.createElement("video");
video.crossOrigin = "anonymous";
video.muted = true;
video.addEventListener("error", () => done({error: "media error " + video.error.code}));
video.addEventListener("loadeddata", async () => {
  await video.play();
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const context = canvas.getContext("2d");
  context.drawImage(video, 0, 0);
  try {
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
    done({width: canvas.width, height: canvas.height, pixels: pixels.length});
  } catch (e) {
    done({error: e.name});
  }
}, {once: true});
video.src = src;
document.body.appendChild(video);
"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium is missing; .ci/run installs it ({INSTALL})")
        pytest.skip(f"needs Chromium and its driver: {INSTALL}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required", "--mute-audio",
    ):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(SCRIPT_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


class Gateway:
    """A gateway with a recording of each kind, and the Range of every request for a
    link that reached it."""

    def __init__(self) -> None:
        self.base = ""
        self.ranges: list[str | None] = []
        self.links: dict[str, str] = {}

    def watch(self, decide: Callable[..., Reply]) -> Callable[..., Reply]:
        """`decide`, noting each Range it is asked about: whichever lane answers a
        link, it decides there."""

        def watched(headers: Mapping[str, str], media: StoredMedia, now: float) -> Reply:
            self.ranges.append(headers.get("Range"))
            return decide(headers, media, now)

        return watched


@pytest.fixture(scope="module")
def noisy_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("browser") / "noisy.mkv"
    write_noisy_video(path, 6.0)  # a few MB: seeking into it takes a later range
    return path


@pytest.fixture
async def gateway(
    backends: dict[str, str],
    media_files: dict[Codec, Path],
    noisy_video: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Gateway]:
    extra: dict[str, str] = getattr(request, "param", {})
    settings = Settings.from_env({**backends, "GATEWAY_SIGNING_KEYS": SIGNING_KEY, **extra})
    app = create_app(settings, settings.signing_keys)
    served = Gateway()
    for module in (downloads, fast_lane):
        monkeypatch.setattr(module, "decide", served.watch(module.decide))
    async with GatewayTestServer(app, host="127.0.0.1") as server:
        served.base = str(server.make_url("")).rstrip("/")
        account = await create_account(app[STORE], "Browser")
        recordings = {
            "video": await app[INGESTION].ingest(noisy_video, account.sid),
            "audio": await app[INGESTION].ingest(media_files[Codec.OPUS], account.sid),
        }
        async with ClientSession(headers=basic_auth(account.sid, account.auth_token)) as http:
            for kind, recording in recordings.items():
                url = f"{served.base}/v1/Recordings/{recording.sid}/Media"
                params = {"ContentDisposition": "inline"}
                async with http.get(url, params=params, allow_redirects=False) as response:
                    served.links[kind] = (await response.json())["redirect_to"]
        yield served


@pytest.fixture
async def page(chromium: Any, gateway: Gateway) -> Any:
    """The browser on a page of another origin than the gateway's (another port)."""

    async def blank(request: web.Request) -> web.Response:
        return web.Response(body=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", blank)
    async with TestServer(app, host="127.0.0.1") as server:
        assert server.port != int(gateway.base.rsplit(":", 1)[1])
        await asyncio.to_thread(chromium.get, str(server.make_url("/")))
        yield chromium


async def run(page: Any, script: str, *args: object) -> dict[str, Any]:
    # Selenium blocks: in a thread, so the servers on this loop can answer the browser.
    return await asyncio.to_thread(page.execute_async_script, script, *args)  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["video", "audio"])
async def test_a_player_on_another_origin_loads_plays_and_seeks(
    page: Any, gateway: Gateway, kind: str
) -> None:
    played = await run(page, PLAY_AND_SEEK, kind, gateway.links[kind])
    assert "error" not in played, played
    assert played["duration"] > 2
    assert abs(played["time"] - played["target"]) < 0.5
    assert played["paused"] is False
    assert played["readyState"] >= 1
    assert gateway.ranges
    assert all(asked is not None for asked in gateway.ranges)


async def test_a_page_fetches_a_range_and_reads_its_headers(page: Any, gateway: Gateway) -> None:
    fetched = await run(page, FETCH_RANGE, gateway.links["audio"])
    assert fetched["status"] == 206, fetched
    assert fetched["contentRange"].startswith("bytes 0-1023/")
    assert fetched["length"] == 1024
    assert "bytes=0-1023" in gateway.ranges


async def test_a_cross_origin_video_can_be_drawn_and_read_back(page: Any, gateway: Gateway) -> None:
    drawn = await run(page, DRAW_TO_CANVAS, gateway.links["video"])
    assert "error" not in drawn, drawn
    assert drawn["pixels"] == drawn["width"] * drawn["height"] * 4 > 0


@pytest.mark.parametrize(
    "gateway", [{"GATEWAY_CORS_ORIGINS": "https://player.example"}], indirect=True
)
async def test_with_one_origin_listed_another_is_refused(page: Any, gateway: Gateway) -> None:
    fetched = await run(page, FETCH_RANGE, gateway.links["audio"])
    assert fetched.get("error", "").startswith("TypeError"), fetched
    drawn = await run(page, DRAW_TO_CANVAS, gateway.links["video"])
    assert drawn.get("error", "").startswith("media error"), drawn
