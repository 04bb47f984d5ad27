"""Prometheus 2.42's PromQL arithmetic, re-stated for the oracle.

Only what the rules use: label matching, ``rate``/``increase`` with their
extrapolation, ``histogram_quantile``'s bucket interpolation, a ``>`` filter
that refuses to decide float ties, and the recorded error ratios.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from ccobs.mixin.oracle.series import Series, Store


def satisfies(value: str, op: str, pattern: str) -> bool:
    """Whether a label value passes one matcher (Prometheus anchors regexes at both ends)."""
    if op == "=":
        return value == pattern
    if op == "!=":
        return value != pattern
    try:
        matched = re.fullmatch(pattern, value) is not None
    except re.error:
        matched = False
    return matched if op == "=~" else not matched


def extrapolated_rate(
    samples: Sequence[tuple[int, float]], t: int, window: int, is_rate: bool
) -> float | None:
    """Prometheus 2.42's ``extrapolatedRate`` for counters (``rate`` and ``increase``)."""
    if len(samples) < 2:
        return None
    result = samples[-1][1] - samples[0][1]
    last = 0.0
    for _, value in samples:
        if value < last:
            result += last
        last = value
    to_start = float(samples[0][0] - (t - window))
    to_end = float(t - samples[-1][0])
    sampled = float(samples[-1][0] - samples[0][0])
    average = sampled / (len(samples) - 1)
    if result > 0 and samples[0][1] >= 0:
        to_zero = sampled * (samples[0][1] / result)
        to_start = min(to_start, to_zero)
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    result = result * (interval / sampled)
    return result / window if is_rate else result


def sum_rate(
    store: Store, series: Iterable[Series], t: int, window: int, is_rate: bool = True
) -> float | None:
    """``sum(rate(...))`` over series of one job: None when no series has a rate."""
    values = [
        v
        for s in series
        if (v := extrapolated_rate(store.range(s, t, window), t, window, is_rate)) is not None
    ]
    return sum(values) if values else None


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus 2.42's ``bucketQuantile`` over (upper bound, cumulative rate) pairs."""
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return math.nan
    counts, running = [], 0.0
    for bound, count in ordered:
        running = max(running, count)
        counts.append((bound, running))
    observations = counts[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(counts) - 1) if counts[i][1] >= rank), len(counts) - 1)
    if b == len(counts) - 1:
        return counts[-2][0]
    if b == 0 and counts[0][0] <= 0:
        return counts[0][0]
    start, end, count = 0.0, counts[b][0], counts[b][1]
    if b > 0:
        start = counts[b - 1][0]
        count -= counts[b - 1][1]
        rank -= counts[b - 1][1]
    return start + (end - start) * (rank / count)


class AmbiguousTestError(ValueError):
    """A generated test would sit on a threshold, where float rounding decides the outcome."""


def is_above(value: float | None, threshold: float, exact: bool = False) -> bool:
    """``value > threshold`` as PromQL filters it.

    Unless the caller knows the value is computed exactly (whole seconds,
    whole counts), a value within rounding of the threshold is refused: there
    the outcome depends on the order of float operations, which the oracle
    cannot promise to share with Prometheus.
    """
    if value is None or math.isnan(value):
        return False
    if not exact and abs(value - threshold) <= 1e-9 * max(abs(threshold), 1e-12):
        raise AmbiguousTestError(f"test value {value!r} is within rounding of {threshold!r}")
    return value > threshold


def job_ratio(
    store: Store, numerator: Sequence[Series], requests: Sequence[Series], t: int, window: int
) -> float | None:
    """The recorded error ratios (``ratio_expr`` in ``recording_rules``) for one job."""
    denominator = sum_rate(store, requests, t, window)
    if denominator is None:
        return None
    top = sum_rate(store, numerator, t, window)
    if top is None:
        top = denominator * 0
    return top / denominator if denominator else math.nan
