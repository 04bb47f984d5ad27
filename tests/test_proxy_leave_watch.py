"""LeaveWatch: the client leaving cancels the request; a stopped watch leaves no task behind.

``receive`` here is a server's as the ASGI spec describes it, driven by the
test: messages come when the test puts them, and (like uvicorn's, httpx's
and Starlette's test transports) ``http.disconnect`` once the response is
complete, or never, like a server that does not wake it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from starlette.types import Message

from ccobs.proxy.relay import LeaveWatch


class Server:
    """One request's ``receive``: its messages come when put, none by default."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.waiting = 0

    async def receive(self) -> Message:
        self.waiting += 1
        try:
            return await self.messages.get()
        finally:
            self.waiting -= 1

    def client_leaves(self) -> None:
        self.messages.put_nowait({"type": "http.disconnect"})

    def response_complete(self) -> None:
        """What uvicorn does on the response's last body message."""
        self.messages.put_nowait({"type": "http.disconnect"})


def in_a_loop(case: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """The test run in an event loop of its own, as the request's task."""

    @functools.wraps(case)
    def test() -> None:
        asyncio.run(case())

    return test


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@in_a_loop
async def test_a_client_leaving_cancels_the_request_and_is_recognised_as_the_cause() -> None:
    server = Server()
    watch = LeaveWatch(server.receive, after=None)
    await settle()
    server.client_leaves()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.sleep(10)
    assert watch.client_left()
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    watch.stop()


@in_a_loop
async def test_a_watch_stopped_once_the_response_completed_ends_by_itself_uncancelled() -> None:
    server = Server()
    watch = LeaveWatch(server.receive, after=None)
    await settle()
    server.response_complete()  # the response's last message, then the stop
    watch.stop()
    await settle()

    assert watch.watcher is not None
    assert watch.watcher.done()
    assert not watch.watcher.cancelled()  # it ended by itself
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    assert not watch.client_left()


@in_a_loop
async def test_a_stopped_watch_whose_receive_never_returns_is_cancelled_after_one_iteration() -> (
    None
):
    server = Server()
    watch = LeaveWatch(server.receive, after=None)
    await settle()
    assert server.waiting == 1
    watch.stop()
    await settle()

    assert watch.watcher is not None
    assert watch.watcher.cancelled()
    assert server.waiting == 0
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


@in_a_loop
async def test_another_cancellation_after_the_watch_ended_by_itself_is_not_absorbed() -> None:
    server = Server()
    watch = LeaveWatch(server.receive, after=None)
    await settle()
    server.response_complete()  # the response's last message, then the stop
    watch.stop()
    await settle()

    asyncio.current_task().cancel()  # type: ignore[union-attr]
    with pytest.raises(asyncio.CancelledError):
        await asyncio.sleep(10)
    assert not watch.client_left()


@in_a_loop
async def test_a_delayed_watch_stopped_before_its_start_starts_no_task() -> None:
    server = Server()
    watch = LeaveWatch(server.receive, after=0.01)
    watch.stop()
    await asyncio.sleep(0.05)

    assert watch.watcher is None
    assert server.waiting == 0


@in_a_loop
async def test_a_delayed_watch_notices_a_client_gone_before_it_started() -> None:
    server = Server()
    server.client_leaves()
    watch = LeaveWatch(server.receive, after=0.01)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.sleep(10)
    assert watch.client_left()
    watch.stop()
