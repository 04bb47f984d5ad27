"""What the metrics refuse to record, counted and logged, so that a refusal is never silent.

Two things are refused: a value that would corrupt a series (negative, NaN,
infinite, not a number), and a label value beyond its guard's cap, which is
recorded as ``other`` instead. Each is counted (``rejected_values_total``,
``label_overflows_total``) and logged, at most once per metric or label per
interval, so that a bad caller cannot flood the logs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import structlog

from ccobs.prometheus_internals import Op
from ccobs.series_cache import SeriesCache

logger = structlog.get_logger("ccobs.metrics")
"""The metrics' logger: the log lines are the metrics', wherever the check lives."""

LOG_INTERVAL = 60.0
MAX_VALUE = sys.float_info.max
"""The largest amount recorded: a larger ``int`` cannot be added to a float series."""


class LogThrottle:
    """Allows one log line per key per interval."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}

    def allow(self, key: str) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        self._last[key] = now
        return True


class Refusals:
    """Counts refusals in ``rejected`` and ``overflows`` (None: counts nothing) and logs them."""

    def __init__(
        self,
        rejected: SeriesCache[Op] | None,
        overflows: SeriesCache[Op] | None,
        throttle: LogThrottle | None = None,
    ) -> None:
        self._rejected = rejected
        self._overflows = overflows
        self._throttle = throttle or LogThrottle(LOG_INTERVAL)

    def accept(self, metric: str, value: Any, *, allow_zero: bool = False) -> bool:
        """True when ``value`` may be recorded; refuses and logs what would corrupt a series."""
        try:
            if 0 < value <= MAX_VALUE:
                return True
            if value == 0:
                return allow_zero
        except TypeError:
            pass
        if self._rejected is not None:
            self._rejected.for_labels((metric,))(1)
        if self._throttle.allow("rejected:" + metric):
            logger.warning(
                "metric_value_rejected",
                metric=metric,
                value=repr(value)[:64],
                reason="must be a finite, non-negative number",
            )
        return False

    def overflow(self, label: str) -> None:
        """A guard folded a value of ``label`` into ``other``."""
        if self._overflows is not None:
            self._overflows.for_labels((label,))(1)
        if self._throttle.allow("overflow:" + label):
            logger.warning("label_value_overflow", label=label, recorded_as="other")
