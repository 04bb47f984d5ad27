"""Benchmark 1: the metric updates for one completed request, ccobs against raw prometheus_client.

One "completed request" is what the demo proxy records for a streamed,
priced answer: the request counter, the duration and time-to-first-token
histograms, four token counters, four cost counters, and the active gauge up
and down. Variants, timed in the same process, interleaved round by round:

``raw``
    prometheus_client on labelled children resolved once, before timing: the
    floor any library built on prometheus_client can reach.
``naive``
    prometheus_client calling ``.labels(...)`` on every update.
``ccobs``
    the public ``record_*`` calls, one per update.
``ccobs_bundle``
    ``PrometheusMetrics.record_completed_request`` (when present): one call
    that resolves every child under one cache lookup.

Run as a child (``--child``) so each mode gets a fresh interpreter; under
multiprocess mode ``PROMETHEUS_MULTIPROC_DIR`` is set before
prometheus_client is imported, as it must be.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import timeit
from collections.abc import Callable
from typing import Any

from benchmarks.common import median, run_json

MODEL = "claude-sonnet-4-6"
ENDPOINT = "/v1/messages"
SERVICE = "proxy_service"
TOKENS = (("input", 1200), ("output", 350), ("cache_read", 8000), ("cache_write", 400))
COSTS = (("input", 0.0036), ("output", 0.00525), ("cache", 0.0039), ("total", 0.01275))


def _variants() -> dict[str, Callable[[], None]]:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    from ccobs.catalog import (
        ACTIVE_REQUESTS,
        COST,
        REQUESTS,
        RESPONSE_DURATION,
        TIME_TO_FIRST_TOKEN,
    )
    from ccobs.catalog import TOKENS as TOKENS_SPEC
    from ccobs.metrics import PrometheusMetrics
    from ccobs.settings import ObservabilitySettings

    settings = ObservabilitySettings()
    metrics = PrometheusMetrics(registry=CollectorRegistry(), settings=settings)

    raw_registry = CollectorRegistry()
    ns = "raw"
    requests = Counter(REQUESTS.full_name(ns), "r", REQUESTS.labels, registry=raw_registry)
    duration = Histogram(
        RESPONSE_DURATION.full_name(ns),
        "d",
        RESPONSE_DURATION.labels,
        registry=raw_registry,
        buckets=settings.duration_buckets,
    )
    ttft = Histogram(
        TIME_TO_FIRST_TOKEN.full_name(ns),
        "t",
        TIME_TO_FIRST_TOKEN.labels,
        registry=raw_registry,
        buckets=settings.ttft_buckets,
    )
    tokens = Counter(TOKENS_SPEC.full_name(ns), "k", TOKENS_SPEC.labels, registry=raw_registry)
    cost = Counter(COST.full_name(ns), "c", COST.labels, registry=raw_registry)
    active = Gauge(
        ACTIVE_REQUESTS.full_name(ns),
        "a",
        ACTIVE_REQUESTS.labels,
        registry=raw_registry,
        multiprocess_mode="livesum",
    )

    request_child = requests.labels("POST", ENDPOINT, MODEL, "200", SERVICE)
    duration_child = duration.labels(MODEL, ENDPOINT, SERVICE)
    ttft_child = ttft.labels(MODEL, ENDPOINT, SERVICE)
    token_children = [(tokens.labels(t, MODEL, SERVICE), n) for t, n in TOKENS]
    cost_children = [(cost.labels(MODEL, t, SERVICE), c) for t, c in COSTS]

    def raw() -> None:
        active.inc()
        request_child.inc()
        duration_child.observe(1.234)
        ttft_child.observe(0.321)
        for token_child, n in token_children:
            token_child.inc(n)
        for cost_child, c in cost_children:
            cost_child.inc(c)
        active.dec()

    def naive() -> None:
        active.inc()
        requests.labels("POST", ENDPOINT, MODEL, "200", SERVICE).inc()
        duration.labels(MODEL, ENDPOINT, SERVICE).observe(1.234)
        ttft.labels(MODEL, ENDPOINT, SERVICE).observe(0.321)
        for t, n in TOKENS:
            tokens.labels(t, MODEL, SERVICE).inc(n)
        for t, c in COSTS:
            cost.labels(MODEL, t, SERVICE).inc(c)
        active.dec()

    m = metrics

    def ccobs() -> None:
        m.inc_active_requests()
        m.record_request("POST", ENDPOINT, MODEL, 200, SERVICE)
        m.record_response_time(1.234, MODEL, ENDPOINT, SERVICE)
        m.record_time_to_first_token(0.321, MODEL, ENDPOINT, SERVICE)
        for t, n in TOKENS:
            m.record_tokens(n, t, MODEL, SERVICE)
        for t, c in COSTS:
            m.record_cost(c, MODEL, t, SERVICE)
        m.dec_active_requests()

    variants = {"raw": raw, "naive": naive, "ccobs": ccobs}
    bundle = getattr(metrics, "record_completed_request", None)
    if bundle is not None:
        token_kwargs = {f"{t}_tokens": n for t, n in TOKENS}
        cost_kwargs = {f"cost_{t}_usd": c for t, c in COSTS}

        def ccobs_bundle() -> None:
            m.inc_active_requests()
            bundle(
                "POST",
                ENDPOINT,
                MODEL,
                200,
                SERVICE,
                duration_seconds=1.234,
                ttft_seconds=0.321,
                **token_kwargs,
                **cost_kwargs,
            )
            m.dec_active_requests()

        variants["ccobs_bundle"] = ccobs_bundle
    return variants


def child(rounds: int, number: int) -> dict[str, Any]:
    """Time every variant ``rounds`` times, interleaved; nanoseconds per completed request."""
    variants = _variants()
    for fn in variants.values():  # warm up: resolve children, fill caches
        for _ in range(1000):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate who goes first
        for name in order:
            seconds = timeit.timeit(variants[name], number=number)
            samples[name].append(seconds / number * 1e9)
    ratios = {
        name: median([s / b for s, b in zip(samples[name], samples["raw"], strict=True)])
        for name in names
    }
    return {
        "multiprocess": bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")),
        "rounds": rounds,
        "number": number,
        "median_ns": {name: median(values) for name, values in samples.items()},
        "ratio_to_raw": ratios,
    }


def run(rounds: int = 15, number: int = 20_000) -> dict[str, Any]:
    single = run_json(["-m", "benchmarks.record", "--child", str(rounds), str(number)])
    with tempfile.TemporaryDirectory(prefix="ccobs-bench-mp-") as directory:
        multi = run_json(
            ["-m", "benchmarks.record", "--child", str(rounds), str(number // 4)],
            env={"PROMETHEUS_MULTIPROC_DIR": directory},
        )
    return {"single": single, "multiprocess": multi}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        print(json.dumps(run(), indent=2))
