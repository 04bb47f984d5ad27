"""ReadDeadline: each read's own timeout from one timer, with asyncio.timeout's semantics.

The reads here are plain futures the test completes (or never does), on the
event loop the tests run in.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from ccobs.proxy.read_deadline import ReadDeadline

pytestmark = pytest.mark.anyio


async def test_a_read_that_completes_in_time_returns_its_value() -> None:
    deadline = ReadDeadline(1.0)
    read = asyncio.get_running_loop().create_future()
    read.set_result(b"piece")

    assert await deadline.wait(read) == b"piece"
    deadline.close()


async def test_a_read_waiting_the_whole_timeout_is_a_timeout_error() -> None:
    deadline = ReadDeadline(0.1)
    started = time.monotonic()

    with pytest.raises(TimeoutError):
        await deadline.wait(asyncio.get_running_loop().create_future())
    assert 0.1 <= time.monotonic() - started < 0.5
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    deadline.close()


async def test_each_read_has_the_whole_timeout_from_its_own_start() -> None:
    deadline = ReadDeadline(0.2)
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    for _ in range(5):  # 0.5 s of reads of 0.1 s each: past the first read's deadline
        read = loop.create_future()
        loop.call_later(0.1, read.set_result, b"x")
        assert await deadline.wait(read) == b"x"
    assert time.monotonic() - started >= 0.5

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await deadline.wait(loop.create_future())
    assert 0.2 <= time.monotonic() - started < 0.6
    deadline.close()


async def test_a_closed_deadline_cancels_nothing_later() -> None:
    deadline = ReadDeadline(0.05)
    read = asyncio.get_running_loop().create_future()
    read.set_result(b"x")
    await deadline.wait(read)
    deadline.close()

    await asyncio.sleep(0.15)  # past the timeout: this task is not cancelled
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_another_cancellation_of_the_reading_task_stays_a_cancellation() -> None:
    deadline = ReadDeadline(5.0)
    reading = asyncio.create_task(deadline.wait(asyncio.get_running_loop().create_future()))
    await asyncio.sleep(0.05)

    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    deadline.close()


async def test_a_cancellation_requested_beside_the_expiring_timeout_wins() -> None:
    """As under ``asyncio.timeout``: the timeout gives way to a cancellation of the task's own."""
    deadline = ReadDeadline(0.05)
    read: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    reading: asyncio.Task[bytes] | None = None

    def cancel_too(_: object) -> None:  # runs when the deadline cancels the read, before its task
        assert reading is not None
        reading.cancel()

    read.add_done_callback(cancel_too)
    reading = asyncio.create_task(deadline.wait(read))

    with pytest.raises(asyncio.CancelledError):
        await reading
    deadline.close()
