"""The ASGI middleware's one metric update per request: count it and observe its duration.

:func:`counted_then_observed` would make it three calls (its own, the counter's
increment, the histogram's observation); every request pays each call. When
both children keep plain in-process cells, :func:`response_op` does the two
additions in one function, each under the very lock its own operation takes
(:func:`~ccobs.prometheus_internals.locked_add`'s for the counter,
:func:`~ccobs.prometheus_internals.fast_observe`'s for the histogram), so it
never races with another writer of the same cells and records exactly what
the two operations would. Other cells (multiprocess files, a changed
prometheus_client) take the two operations.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from ccobs.prometheus_internals import Op, fast_inc, fast_observe, is_mutex_value
from ccobs.prometheus_internals import _histogram_cells as histogram_cells
from ccobs.request_ops import counted_then_observed

__all__ = ["response_op"]


def response_op(counter: Any, histogram: Any) -> Op:
    """Count 1 on ``counter``'s child and observe a duration on ``histogram``'s, in one call.

    Only for durations already checked to be finite and non-negative, as
    :func:`~ccobs.prometheus_internals.fast_observe` requires.
    """
    value: Any = getattr(counter, "_value", None)
    found = histogram_cells(histogram)
    if not is_mutex_value(value) or found is None:
        return counted_then_observed(fast_inc(counter), fast_observe(histogram))
    bounds, cells, total = found
    count_lock = value._lock
    count_acquire, count_release = count_lock.acquire, count_lock.release
    lock = total._lock
    acquire, release = lock.acquire, lock.release
    first = bounds[0]

    def record(duration: float) -> None:
        count_acquire()
        try:
            value._value += 1.0
        finally:
            count_release()
        acquire()
        try:
            total._value += duration
            # The first bucket without a search, as in ``fast_observe``.
            cells[0 if duration <= first else bisect_left(bounds, duration)]._value += 1.0
        finally:
            release()

    return record
