"""What the load generator measured: each request's result, live snapshots, the summary.

Apart from the sending (:mod:`ccobs.demo.loadgen`) so the figures a run reports
can be read, and tested, without running load.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ccobs.pricing import PriceTable
from ccobs.proxy.usage import Api, TokenCounts


@dataclass(frozen=True)
class RequestResult:
    """One request as the client saw it.

    ``status`` is the HTTP status (None when no response arrived); ``fault``
    names what went wrong below HTTP: ``timeout``, ``connect_error``,
    ``protocol_error``, ``read_error``, ``transport_error``,
    ``stream_error`` (an ``error`` event in a 200 stream),
    ``incomplete_stream`` or ``bad_response``.
    """

    api: Api
    model: str
    stream: bool
    status: int | None
    fault: str | None
    latency: float
    ttft: float | None = None
    tokens: TokenCounts = field(default_factory=TokenCounts)

    @property
    def ok(self) -> bool:
        """A 2xx response that arrived complete."""
        return self.status is not None and 200 <= self.status < 300 and self.fault is None


@dataclass(frozen=True)
class LoadSnapshot:
    """Progress so far, for a live display."""

    elapsed: float
    sent: int
    completed: int
    ok: int
    errors: int
    in_flight: int
    rps: float
    latency_p50: float | None
    latency_p99: float | None


@dataclass(frozen=True)
class LoadSummary:
    """The outcome of a run; latencies are seconds over successful requests."""

    requests: int
    successes: int
    errors_by_status: Mapping[int, int]
    errors_by_fault: Mapping[str, int]
    requests_by_model: Mapping[str, int]
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    ttft_p50: float | None
    ttft_p95: float | None
    tokens: TokenCounts
    cost_usd: float
    unpriced_models: tuple[str, ...]
    elapsed: float
    achieved_rps: float

    @property
    def errors(self) -> int:
        """Every request that did not succeed."""
        return self.requests - self.successes


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class Recorder:
    """Collects results as they arrive and turns them into snapshots and the summary."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.end: float | None = None
        self.sent = 0
        self.results: list[RequestResult] = []
        self.ok = 0
        self.latencies: list[float] = []

    def started(self) -> None:
        self.sent += 1

    def add(self, result: RequestResult) -> None:
        self.results.append(result)
        if result.ok:
            self.ok += 1
            self.latencies.append(result.latency)

    def snapshot(self) -> LoadSnapshot:
        elapsed = (self.end or time.monotonic()) - self.start
        completed = len(self.results)
        return LoadSnapshot(
            elapsed=elapsed,
            sent=self.sent,
            completed=completed,
            ok=self.ok,
            errors=completed - self.ok,
            in_flight=self.sent - completed,
            rps=completed / elapsed if elapsed > 0 else 0.0,
            latency_p50=percentile(self.latencies, 50),
            latency_p99=percentile(self.latencies, 99),
        )

    def summary(self, prices: PriceTable) -> LoadSummary:
        elapsed = (self.end or time.monotonic()) - self.start
        ok = [r for r in self.results if r.ok]
        by_status: Counter[int] = Counter()
        by_fault: Counter[str] = Counter()
        for result in self.results:
            if result.ok:
                continue
            if result.fault is not None:
                by_fault[result.fault] += 1
            elif result.status is not None:
                by_status[result.status] += 1
        tokens = TokenCounts()
        cost = 0.0
        unpriced: set[str] = set()
        for result in ok:
            tokens += result.tokens
            priced = prices.cost(
                result.model,
                result.tokens.input,
                result.tokens.output,
                result.tokens.cache_read,
                result.tokens.cache_write,
            )
            if priced is None:
                unpriced.add(result.model)
            else:
                cost += priced.total
        ttfts = [r.ttft for r in ok if r.ttft is not None]
        return LoadSummary(
            requests=len(self.results),
            successes=len(ok),
            errors_by_status=dict(sorted(by_status.items())),
            errors_by_fault=dict(sorted(by_fault.items())),
            requests_by_model=dict(sorted(Counter(r.model for r in self.results).items())),
            latency_p50=percentile(self.latencies, 50),
            latency_p95=percentile(self.latencies, 95),
            latency_p99=percentile(self.latencies, 99),
            ttft_p50=percentile(ttfts, 50),
            ttft_p95=percentile(ttfts, 95),
            tokens=tokens,
            cost_usd=cost,
            unpriced_models=tuple(sorted(unpriced)),
            elapsed=elapsed,
            achieved_rps=len(self.results) / elapsed if elapsed > 0 else 0.0,
        )
