"""For load balancers and orchestrators: is this instance up, and can it serve now?"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Final

from aiohttp import web

from gateway.api.keys import STORAGE, STORE

log = logging.getLogger(__name__)

# Below the usual load-balancer probe timeout (5 s), so the answer is ours, not theirs.
CHECK_TIMEOUT: Final = 2.0
NO_STORE: Final = {"Cache-Control": "no-store"}


async def alive(request: web.Request) -> web.Response:
    """The process answers. Depends on nothing else, so a database outage does not get
    every instance restarted at once."""
    return web.json_response({"status": "ok"}, headers=NO_STORE)


async def ready(request: web.Request) -> web.Response:
    """Database and storage both answer: 200, else 503 so the balancer sends traffic to
    other instances. Which one failed is in the body; why, only in the log."""
    database, storage = await asyncio.gather(
        _answers("database", request.app[STORE].check()),
        _answers("storage", request.app[STORAGE].check()),
    )
    body = {
        "status": "ready" if database and storage else "unavailable",
        "checks": {"database": _said(database), "storage": _said(storage)},
    }
    return web.json_response(body, status=200 if database and storage else 503, headers=NO_STORE)


def _said(answered: bool) -> str:
    return "ok" if answered else "unavailable"


async def _answers(name: str, check: Awaitable[None]) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await check
    except Exception as error:
        log.warning("readiness: %s is unavailable: %s", name, repr(error))
        return False
    return True
