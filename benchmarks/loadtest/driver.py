"""The load generator, in a process of its own: the mixed workload at fixed rates against
the site, each answer checked, every latency counted from its planned send time.

    python -m benchmarks.loadtest.driver PLAN.json RESULTS.json

The plan names the site, the account's credentials, the recordings with a link to each,
the recordings it may delete (each with a link issued before), the rates and durations.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiohttp import ClientPayloadError, ClientSession, ClientTimeout, TCPConnector

from benchmarks.loadtest.schedule import Outcome, Recorder, run_open_loop

KINDS: Final = ("issuance", "seek", "download", "list", "delete", "revoked link")
# What each kind is, for the report.
MEANING: Final = {
    "issuance": "`GET /v1/Recordings/{Sid}/Media?Ttl=3600`, Basic auth → 302 with `redirect_to`",
    "seek": "a player's seek: one `Range` of {seek} at a random offset of a signed link → 206",
    "download": "a whole recording through its signed link → 200",
    "list": "`GET /v1/Recordings?PageSize={page}`, Basic auth → 200 with a full page",
    "delete": "`DELETE /v1/Recordings/{Sid}` of a recording whose link is out → 204",
    "revoked link": "that link, followed right after the 204 (any instance) → 404",
}
READ: Final = 256 * 1024


@dataclass
class Plan:
    base: str
    ca: str
    authorization: str
    recordings: list[dict[str, Any]]  # sid, size, link
    deletable: list[dict[str, Any]]  # sid, link
    rates: dict[str, float]
    seconds: float  # the whole run, warm-up included
    warmup: float
    interval: float
    seek_bytes: int
    page_size: int
    seed: int = 1

    @classmethod
    def read(cls, path: Path) -> Plan:
        return cls(**json.loads(path.read_text()))


class Mix:
    """Each kind's request, checked against what the API promises."""

    def __init__(self, plan: Plan, session: ClientSession, recorder: Recorder) -> None:
        self.plan = plan
        self.session = session
        self.recorder = recorder
        self.random = random.Random(plan.seed)
        self.links = {r["sid"]: r["link"] for r in plan.recordings}
        self.sizes = {r["sid"]: int(r["size"]) for r in plan.recordings}
        self.sids = list(self.links)
        self.deletable = list(plan.deletable)
        self.auth = {"Authorization": plan.authorization}
        self.kinds: dict[str, Callable[[int], Awaitable[Outcome]]] = {
            "issuance": self.issuance,
            "seek": self.seek,
            "download": self.download,
            "list": self.listing,
            "delete": self.delete,
        }

    async def send(self, kind: str, number: int) -> Outcome:
        return await self.kinds[kind](number)

    async def issuance(self, number: int) -> Outcome:
        sid = self.sids[number % len(self.sids)]
        url = f"{self.plan.base}/v1/Recordings/{sid}/Media?Ttl=3600"
        async with self.session.get(url, headers=self.auth, allow_redirects=False) as answer:
            body = await answer.read()
            if answer.status != 302:
                return Outcome(f"status {answer.status}", len(body))
            link = json.loads(body).get("redirect_to", "")
            if answer.headers.get("Location") != link or not link.startswith(
                f"{self.plan.base}/media/"
            ):
                return Outcome("Location or redirect_to not a link of the site", len(body))
            self.links[sid] = link
            return Outcome(None, len(body))

    async def seek(self, number: int) -> Outcome:
        sid = self.random.choice(self.sids)
        size, wanted = self.sizes[sid], self.plan.seek_bytes
        first = self.random.randrange(0, size - wanted)
        last = first + wanted - 1
        headers = {"Range": f"bytes={first}-{last}"}
        async with self.session.get(self.links[sid], headers=headers) as answer:
            body = await answer.read()
            if answer.status != 206:
                return Outcome(f"status {answer.status}", len(body))
            if answer.headers.get("Content-Range") != f"bytes {first}-{last}/{size}":
                return Outcome("wrong Content-Range", len(body))
            if len(body) != wanted:
                return Outcome("short body", len(body))
            return Outcome(None, len(body))

    async def download(self, number: int) -> Outcome:
        sid = self.sids[number % len(self.sids)]
        size, read = self.sizes[sid], 0
        async with self.session.get(self.links[sid]) as answer:
            try:
                async for chunk in answer.content.iter_chunked(READ):
                    read += len(chunk)
            except ClientPayloadError as cut:
                seen = f"{sid}: {read} of {size} bytes, {answer.headers.get('X-Request-Id')}"
                return Outcome("body cut short", read, f"({seen}; {cut})")
            if answer.status != 200:
                return Outcome(f"status {answer.status}", read, sid)
            if read != size:
                return Outcome("short body", read, f"({sid}: {read} of {size} bytes)")
            return Outcome(None, read)

    async def listing(self, number: int) -> Outcome:
        url = f"{self.plan.base}/v1/Recordings?PageSize={self.plan.page_size}"
        async with self.session.get(url, headers=self.auth) as answer:
            body = await answer.read()
            if answer.status != 200:
                return Outcome(f"status {answer.status}", len(body))
            page = json.loads(body)
            if len(page["recordings"]) != self.plan.page_size:
                return Outcome("not a full page", len(body))
            return Outcome(None, len(body))

    async def delete(self, number: int) -> Outcome:
        if number >= len(self.deletable):
            return Outcome("no recording left to delete")
        doomed = self.deletable[number]
        url = f"{self.plan.base}/v1/Recordings/{doomed['sid']}"
        async with self.session.delete(url, headers=self.auth) as answer:
            body = await answer.read()
            if answer.status != 204:
                return Outcome(f"status {answer.status}", len(body))
        await self.revoked(doomed["link"], time.perf_counter())
        return Outcome(None, len(body))

    async def revoked(self, link: str, since: float) -> None:
        """The link issued before the DELETE must now be refused (404), by any instance.
        Its latency counts from the DELETE's answer, the moment it was sent."""
        self.recorder.sent["revoked link"] += 1
        try:
            async with self.session.get(link) as answer:
                body = await answer.read()
                error = None if answer.status == 404 else f"status {answer.status}: not refused"
                outcome = Outcome(error, len(body))
        except Exception as failure:
            outcome = Outcome(type(failure).__name__, detail=str(failure)[:300])
        self.recorder.record("revoked link", since, time.perf_counter(), outcome)


async def drive(plan: Plan) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=plan.ca)
    connector = TCPConnector(limit=512, ssl=context)
    timeout = ClientTimeout(total=30, connect=5)
    async with ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter() + 0.5
        wall = time.time() + (start - time.perf_counter())
        recorder = Recorder(KINDS, start, plan.interval, plan.warmup)
        mix = Mix(plan, session, recorder)
        rates = {kind: plan.rates.get(kind, 0.0) for kind in mix.kinds}
        await run_open_loop(rates, plan.seconds, mix.send, recorder)
    return {"wall_start": wall, "recorder": recorder.dumps()}


def main() -> int:
    plan_path, results_path = (Path(argument) for argument in sys.argv[1:3])
    # asyncio's own loop, not uvloop: uvloop 0.23's TLS loses the end of a response body
    # when the server closes the connection right after it, as nginx does after a
    # connection's keepalive_requests (a quarter of the downloads of a 4 MiB file from
    # nginx with keepalive_requests 3 came out short; none on asyncio's loop).
    results = asyncio.run(drive(Plan.read(plan_path)))
    results_path.write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
