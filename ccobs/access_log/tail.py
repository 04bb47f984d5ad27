"""Live tail: every record, as it is handed to the store, to each connected listener.

Each listener has its own bounded queue. A slow listener never slows the
proxy or the other listeners: once its queue is full, newer records are
dropped for it alone, and it is told how many, in order, by an overflow
marker placed where the gap is.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass

from ccobs.storage import AccessLogRecord


@dataclass
class Overflow:
    """``dropped`` records were not delivered to this listener at this point of its stream."""

    dropped: int


class TailSubscription:
    """One listener's queue; created and read on one event loop."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._items: deque[AccessLogRecord | Overflow] = deque()
        self._records = 0
        self._wakeup = asyncio.Event()

    def offer(self, record: AccessLogRecord) -> None:
        """Queue ``record``, from any thread; past ``maxsize`` count it as dropped instead."""
        if threading.get_ident() == self._thread:
            self._offer(record)
        else:
            self._loop.call_soon_threadsafe(self._offer, record)

    def _offer(self, record: AccessLogRecord) -> None:
        if self._records < self.maxsize:
            self._items.append(record)
            self._records += 1
        elif self._items and isinstance(self._items[-1], Overflow):
            self._items[-1].dropped += 1
        else:
            self._items.append(Overflow(1))
        self._wakeup.set()

    async def get(self, wait: float) -> AccessLogRecord | Overflow | None:
        """The next record or overflow marker; None when ``wait`` seconds pass without one."""
        while not self._items:
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), wait)
            except TimeoutError:
                return None
        item = self._items.popleft()
        if not isinstance(item, Overflow):
            self._records -= 1
        return item


class LiveTail:
    """The set of listeners; ``publish`` is lock-free on the hot path (a tuple snapshot)."""

    def __init__(self, max_subscribers: int = 32) -> None:
        self.max_subscribers = max_subscribers
        self._subscribers: tuple[TailSubscription, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, maxsize: int) -> TailSubscription | None:
        """A new listener, or None when ``max_subscribers`` are already listening."""
        subscription = TailSubscription(maxsize)
        with self._lock:
            if len(self._subscribers) >= self.max_subscribers:
                return None
            self._subscribers = (*self._subscribers, subscription)
        return subscription

    def unsubscribe(self, subscription: TailSubscription) -> None:
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s is not subscription)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, record: AccessLogRecord) -> None:
        for subscription in self._subscribers:
            subscription.offer(record)
