"""promtool input series and the store the oracle evaluates them from.

A series is kept both as the values promtool will expand it to and as the
``a+bxn`` notation written into the test file, built by the same repeated
additions so the oracle sees the very floats Prometheus stores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from ccobs.mixin.promql import quote

LOOKBACK = 300
"""Prometheus' default query lookback (seconds) for instant selectors such as ``up``."""


@dataclass(frozen=True)
class Series:
    """One promtool input series: one value per test step, as promtool expands it."""

    name: str
    labels: tuple[tuple[str, str], ...]
    values: tuple[float, ...]
    notation: str

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

    def text(self) -> str:
        inner = ",".join(f"{name}={quote(value)}" for name, value in self.labels)
        return f"{self.name}{{{inner}}}"


def number_text(value: float) -> str:
    """A float as series notation, round-tripping exactly (Go parses repr's digits)."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def build_series(
    name: str,
    labels: Mapping[str, str],
    start: float,
    segments: Sequence[tuple[float, int]],
) -> Series:
    """``start`` at step 0, then each (increment, steps) segment adds ``increment`` per step.

    Values are accumulated by repeated addition, exactly as promtool expands
    ``a+bxn``, so the oracle sees the very floats Prometheus stores.
    """
    values = [start]
    tokens: list[str] = []
    current = start
    for increment, steps in segments:
        if steps < 1:
            continue
        sign = "+" if increment >= 0 else "-"
        if tokens:
            # A new run starts one step on, from a value promtool reads verbatim.
            current = current + increment
            values.append(current)
            steps -= 1
        tokens.append(f"{number_text(current)}{sign}{number_text(abs(increment))}x{steps}")
        for _ in range(steps):
            current = current + increment
            values.append(current)
    if not tokens:
        tokens.append(number_text(start))
    return Series(name, tuple(labels.items()), tuple(values), " ".join(tokens))


def gauge_series(name: str, labels: Mapping[str, str], runs: Sequence[tuple[float, int]]) -> Series:
    """A series holding each (value, steps) run's value for that many steps."""
    values: list[float] = []
    tokens = []
    for value, steps in runs:
        if steps < 1:
            continue
        values += [value] * steps
        tokens.append(f"{number_text(value)}+0x{steps - 1}")
    return Series(name, tuple(labels.items()), tuple(values), " ".join(tokens))


@dataclass(frozen=True)
class Store:
    """The input series of one test group, sampled every ``step`` seconds from time 0.

    ``left_open`` selects Prometheus 3's range semantics (a range excludes a
    sample exactly on its start; so does the instant lookback) instead of
    Prometheus 2's closed ranges; the test files must hold under both.
    """

    step: int
    series: tuple[Series, ...]
    left_open: bool = False

    def select(self, name: str, **matchers: Callable[[str], bool]) -> list[Series]:
        return [
            s
            for s in self.series
            if s.name == name
            and all(test(s.label_dict.get(label, "")) for label, test in matchers.items())
        ]

    def range(self, series: Series, t: int, window: int) -> list[tuple[int, float]]:
        """Samples in ``[t - window, t]`` (Prometheus 2), or ``(t - window, t]`` (Prometheus 3)."""
        start = t - window
        return [
            (i * self.step, v)
            for i, v in enumerate(series.values)
            if (start < i * self.step if self.left_open else start <= i * self.step)
            and i * self.step <= t
        ]

    def under_prometheus_3(self) -> Store:
        """The same samples read with Prometheus 3's left-open ranges."""
        return replace(self, left_open=True)

    def instant(self, series: Series, t: int) -> float | None:
        """The newest sample at or before ``t`` within the lookback, like an instant selector."""
        samples = self.range(series, t, LOOKBACK)
        return samples[-1][1] if samples else None
