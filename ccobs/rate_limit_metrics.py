"""Rate-limit readings (:mod:`ccobs.rate_limits`) recorded as gauges, bounded.

Each answer's reading overwrites the gauges of its label set: they show the
upstream's last word on each limit, per API, limit kind and key alias. Resets
are recorded as points in time, so "seconds to reset" (``reset - time()``)
stays right while no answer refreshes them. The labelled children are
resolved once per label set and kept; ``key_alias`` passes a
:class:`~ccobs.labels.LabelGuard` (``other`` past :data:`KEY_ALIAS_CAP`), the
other labels take values from fixed sets. Recording never raises: a fault
here is logged, and the request it came with goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from ccobs.labels import LabelGuard
from ccobs.rate_limits import (
    RATE_LIMIT_APIS,
    REJECTED_FIELDS,
    UNIFIED_STATUSES,
    RateLimitReading,
    read_rate_limits,
)
from ccobs.refusals import LOG_INTERVAL, LogThrottle, logger

__all__ = ["KEY_ALIAS_CAP", "NO_KEY_ALIAS", "RateLimitGauges", "start_rejected_at_zero"]

KEY_ALIAS_CAP = 100
"""Distinct key aliases the rate-limit gauges keep apart; later ones share ``other``."""
NO_KEY_ALIAS = "none"
"""The ``key_alias`` of answers to requests whose caller has no alias (no attribution)."""


def start_rejected_at_zero(counter: Any) -> None:
    """Create every (api, field) child of the rejected-values counter at zero."""
    for api in RATE_LIMIT_APIS:
        for name in REJECTED_FIELDS:
            counter.labels(api, name)


class RateLimitGauges:
    """Records readings into the rate-limit families of one ``MetricFamilies``."""

    def __init__(
        self,
        families: Any,
        max_length: int,
        on_overflow: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._families = families
        self._clock = clock
        self._key_alias = LabelGuard(
            "key_alias", KEY_ALIAS_CAP, max_length=max_length, on_overflow=on_overflow
        )
        self._children: dict[tuple[str, ...], Any] = {}
        self._throttle = LogThrottle(LOG_INTERVAL)

    def record_headers(
        self, headers: Iterable[tuple[bytes, bytes]], key_alias: str | None
    ) -> RateLimitReading | None:
        """Read ``headers`` (raw, as received) and record what they state; the reading."""
        try:
            reading = read_rate_limits(headers, self._clock())
            if reading is not None:
                self.record(reading, key_alias)
            return reading
        except Exception as exc:  # observability never fails a request
            if self._throttle.allow("rate_limits"):
                logger.warning("rate_limit_headers_unrecorded", error=repr(exc)[:200])
            return None

    def record(self, reading: RateLimitReading, key_alias: str | None) -> None:
        """Set the gauges of ``reading``'s limits and windows; count its rejected values."""
        alias = self._key_alias(key_alias) if key_alias else NO_KEY_ALIAS
        api = reading.api
        families = self._families
        for kind, entry in reading.limits.items():
            if entry.limit is not None:
                self._child("limit", families.ratelimit_limit, api, kind, alias).set(entry.limit)
            if entry.remaining is not None:
                remaining = families.ratelimit_remaining
                self._child("remaining", remaining, api, kind, alias).set(entry.remaining)
            if entry.reset_at is not None:
                reset = families.ratelimit_reset
                self._child("reset", reset, api, kind, alias).set(entry.reset_at)
        for window, reading_window in reading.windows.items():
            if reading_window.utilization is not None:
                utilization = families.unified_utilization
                self._child("util", utilization, window, alias).set(reading_window.utilization)
            if reading_window.reset_at is not None:
                reset = families.unified_reset
                self._child("ureset", reset, window, alias).set(reading_window.reset_at)
        if reading.status is not None:
            status_family = families.unified_status
            for status in UNIFIED_STATUSES:
                child = self._child("status", status_family, status, alias)
                child.set(1.0 if status == reading.status else 0.0)
        for name in reading.rejected:
            self._child("rejected", families.ratelimit_rejected, api, name).inc()
            if self._throttle.allow("rejected:" + name):
                logger.warning("rate_limit_value_rejected", api=api, field=name)

    def _child(self, family_key: str, family: Any, *labels: str) -> Any:
        """The child of ``family`` for ``labels``, resolved once (the label sets are bounded)."""
        key = (family_key, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        return child
