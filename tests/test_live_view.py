"""The demo's live view: numbers computed from the registry as Prometheus would."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry

from ccobs.demo.live_view import LiveView, histogram_quantile, read_sample
from ccobs.metrics import PrometheusMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_quantile_interpolates_inside_the_bucket() -> None:
    buckets = {1.0: 0.0, 2.0: 100.0, math.inf: 100.0}

    assert histogram_quantile(0.5, buckets) == pytest.approx(1.5)
    assert histogram_quantile(0.99, buckets) == pytest.approx(1.99)


def test_quantile_in_the_inf_bucket_answers_the_highest_bound() -> None:
    assert histogram_quantile(0.99, {1.0: 1.0, math.inf: 10.0}) == 1.0


def test_quantile_without_observations_is_none() -> None:
    assert histogram_quantile(0.5, {}) is None
    assert histogram_quantile(0.5, {1.0: 0.0, math.inf: 0.0}) is None


def test_sample_sums_series_by_what_the_view_shows(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    metrics.record_request("POST", "/v1/messages", "a", 200)
    metrics.record_request("POST", "/v1/chat/completions", "a", 200)
    metrics.record_request("POST", "/v1/messages", "b", 500)
    metrics.record_error("upstream_500", "/v1/messages", "b")
    metrics.record_tokens(10, "output", "a")
    metrics.record_cost(0.5, "a", "total")
    metrics.record_cost(0.2, "a", "input")

    sample = read_sample(registry, "ccproxy", at=0.0)

    assert sample.requests == 3
    assert sample.requests_by_model == {"a": 2, "b": 1}
    assert sample.errors_by_type == {"upstream_500": 1}
    assert sample.tokens[("a", "output")] == 10
    assert sample.cost_by_model == {"a": 0.5}


def test_rates_are_taken_over_the_window(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    clock = Clock()
    view = LiveView(registry, window=10.0, clock=clock)
    view.render()
    for _ in range(20):
        metrics.record_request("POST", "/v1/messages", "m", 200)
    metrics.record_error("rate_limited", "/v1/messages", "m")
    metrics.record_cost(0.36, "m")
    clock.now += 10.0

    picture = view.render()

    assert "requests     2.00/s" in picture
    assert "errors   5.0% of window" in picture
    assert "129.60" in picture  # $0.36 in 10 s is $129.60 an hour
    assert "rate_limited 1" in picture


def test_latency_percentiles_come_from_the_histogram(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    clock = Clock()
    view = LiveView(registry, clock=clock)
    view.render()
    for _ in range(100):
        metrics.record_response_time(0.3, "m")
    clock.now += 1

    assert "latency   p50   375 ms" in view.render()


def test_the_by_team_table_shows_requests_and_cost_per_team(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    clock = Clock()
    view = LiveView(registry, clock=clock)
    view.render()
    for _ in range(20):
        metrics.record_attributed_request("platform", "alice", "curl", "m", cost_usd=0.018)
    for _ in range(10):
        metrics.record_attributed_request("platform", "bob", "curl", "m")
    for _ in range(5):
        metrics.record_attributed_request("research", "carol", "curl", "m", cost_usd=0.002)
    clock.now += 10.0

    rows = [line.split() for line in view.render().splitlines() if line.startswith(("team",
            "platform", "research"))]  # fmt: skip

    assert rows == [
        ["team", "req/s", "requests", "$/hour", "$", "total"],
        ["platform", "3.00", "30", "129.60", "0.3600"],
        ["research", "0.50", "5", "3.60", "0.0100"],
    ]


def test_without_attribution_there_is_no_team_table(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    metrics.record_request("POST", "/v1/messages", "m", 200)

    assert "team" not in LiveView(registry).render()
