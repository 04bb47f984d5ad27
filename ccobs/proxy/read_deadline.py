"""One timer for all the reads of one upstream answer, in place of one timeout per read.

``async with asyncio.timeout(t)`` around a read sets a timer on the event
loop and cancels it again, with two coroutines and the timeout's own
bookkeeping, on every read; a stream is read once per event, so that cost
came with every event relayed. A :class:`ReadDeadline` only moves its
deadline when a read starts. Its one timer, set at the first read, checks
when it fires: a deadline moved on since (reads kept coming) sets it again
for the new deadline, so it fires at most once per timeout while the answer
keeps talking; a read that has waited the whole timeout has its task
cancelled, and that read raises :class:`TimeoutError`, as under
``asyncio.timeout`` (where the task was also cancelled by someone else,
that cancellation wins and goes on). Each read still has its whole timeout
from its own start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


class ReadDeadline:
    """The read timeout of one answer's reads, read by one task at a time; :meth:`close` it."""

    __slots__ = ("_cancelling", "_deadline", "_expired", "_loop", "_task", "_timeout", "_timer")

    def __init__(self, timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._deadline = 0.0
        self._task: asyncio.Task[Any] | None = None
        """The task waiting in a read, or None between reads."""
        self._cancelling = 0
        self._timer: asyncio.TimerHandle | None = None
        self._expired = False

    async def wait(self, read: Awaitable[T]) -> T:
        """``await read``; :class:`TimeoutError` once it has waited ``timeout`` seconds."""
        loop = self._loop
        deadline = self._deadline = loop.time() + self._timeout
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._on_timer)
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._cancelling = task.cancelling()
        try:
            return await read
        except asyncio.CancelledError:
            if self._expired:
                self._expired = False
                # Ours alone: a timeout. With another cancellation requested, that one's.
                if task.uncancel() <= self._cancelling:
                    raise TimeoutError from None
            raise
        finally:
            self._task = None

    def _on_timer(self) -> None:
        self._timer = None
        task = self._task
        if task is None:  # between reads: the next read sets the timer again
            return
        if self._loop.time() < self._deadline:  # read again since: wait for its deadline
            self._timer = self._loop.call_at(self._deadline, self._on_timer)
            return
        self._expired = True
        task.cancel()

    def close(self) -> None:
        """No more reads: the timer is cancelled (again is harmless)."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
