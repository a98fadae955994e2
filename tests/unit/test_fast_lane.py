"""A request's coroutine begun on the connection's callback, and finished by a task
only if it waits: it must see what it would have seen as a task from the start."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from gateway.api.fast_lane import _resumed


async def begun(work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """`work` run at once up to its first wait, the rest as a task."""
    try:
        waiting = work.send(None)
    except StopIteration as done:
        future = asyncio.get_running_loop().create_future()
        future.set_result(done.value)
        return asyncio.ensure_future(future)  # type: ignore[arg-type]
    return asyncio.get_running_loop().create_task(_resumed(work, waiting))


async def test_what_never_waits_is_done_at_once() -> None:
    async def at_once() -> str:
        return "done"

    assert await (await begun(at_once())) == "done"


async def test_a_wait_for_a_future_resumes_with_its_result() -> None:
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()

    async def twice() -> tuple[str, str]:
        return await first, await second

    task = await begun(twice())
    loop.call_later(0.01, first.set_result, "a")
    loop.call_later(0.02, second.set_result, "b")
    assert await task == ("a", "b")


async def test_a_future_that_fails_raises_where_it_is_awaited() -> None:
    failing = asyncio.get_running_loop().create_future()

    async def caught() -> str:
        try:
            await failing
        except LookupError as error:
            return f"caught {error}"
        return "not raised"

    task = await begun(caught())
    failing.set_exception(LookupError("it"))
    assert await task == "caught it"


async def test_a_thread_and_a_bare_yield_are_waited_for() -> None:
    async def waits() -> int:
        await asyncio.sleep(0)
        return await asyncio.to_thread(sum, [1, 2, 3])

    assert await (await begun(waits())) == 6


async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits() -> None:
    seen: list[str] = []
    never = asyncio.get_running_loop().create_future()

    async def cancelled() -> None:
        try:
            await never
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    task = await begun(cancelled())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]


async def test_the_rest_runs_inside_its_task() -> None:
    # What aiohttp's client and asyncio.timeout() need of the code they run in.
    async def asks() -> bool:
        await asyncio.sleep(0)
        async with asyncio.timeout(1):
            await asyncio.sleep(0)
        return asyncio.current_task() is not None

    assert await (await begun(asks())) is True
