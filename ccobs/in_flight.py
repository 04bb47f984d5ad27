"""The active-requests gauge of a single process, worked out when the gauge is read."""

from __future__ import annotations

import threading
import weakref
from typing import Protocol


class InFlightSource(Protocol):
    """What counts requests in flight for the active-requests gauge (the ASGI middleware)."""

    def requests_in_flight(self) -> int: ...


class ActiveRequests:
    """The active-requests gauge's value in one process, plus what its sources count in flight.

    Its value is what :meth:`ccobs.metrics.PrometheusMetrics.set_active_requests`,
    ``inc`` and ``dec`` made it, plus the requests the watched sources (ASGI
    middlewares) count in flight: a middleware then moves no gauge per request,
    which saves two locked additions on every request, and a scrape still sees
    every request in flight. A ``set`` remembers the count in flight at that
    moment, so the gauge reads exactly the value set and moves from there as
    requests finish or start, as it did when each request moved it. ``_lock``
    and ``_value`` are what :func:`ccobs.prometheus_internals.locked_add` moves.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0.0
        self._in_flight_at_set = 0
        self._sources: weakref.WeakSet[InFlightSource] = weakref.WeakSet()

    def watch(self, source: InFlightSource) -> None:
        with self._lock:
            self._sources.add(source)

    def _in_flight(self) -> int:
        with self._lock:
            sources = list(self._sources)
        return sum(source.requests_in_flight() for source in sources)

    def set(self, value: float) -> None:
        in_flight = self._in_flight()
        with self._lock:
            self._value = value
            self._in_flight_at_set = in_flight

    def get(self) -> float:
        in_flight = self._in_flight()
        with self._lock:
            return self._value + (in_flight - self._in_flight_at_set)
