"""ExpositionRenderer writes exactly what prometheus_client's encoders write, only faster.

Scrapers, promtool and the push targets all read the exposition, so the
renderer's contract is byte equality with prometheus_client's text and
OpenMetrics encoders for every registry, including the ones it hands back to
prometheus_client (exemplars, timestamps, odd names).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    disable_created_metrics,
    enable_created_metrics,
)
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import Collector

from ccobs.metrics import PrometheusMetrics
from ccobs.metrics_endpoint import render_metrics
from ccobs.renderer import OPENMETRICS, TEXT, ExpositionRenderer

OM_ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


def assert_same_as_prometheus_client(registry: CollectorRegistry) -> None:
    renderer = ExpositionRenderer()
    assert renderer.render(registry, TEXT).decode() == generate_latest(registry).decode()
    assert renderer.render(registry, OPENMETRICS).decode() == openmetrics_latest(registry).decode()


def every_kind(registry: CollectorRegistry) -> None:
    """One of each metric class, labelled and not, with awkward label values and help."""
    Counter("plain", "a counter", registry=registry).inc(3)
    Gauge("level", "a gauge\nwith a newline and a \\ backslash", registry=registry).set(-2.5)
    Histogram("took_seconds", "a histogram", registry=registry).observe(0.3)
    Histogram("offset", "negative buckets", buckets=(-1, 0, 1), registry=registry).observe(-3)
    Counter("sent_bytes", "with a unit", unit="bytes", registry=registry).inc(1e21)
    labelled = Counter("calls", "labelled", ["model", "status"], registry=registry)
    labelled.labels("claude", "200").inc()
    labelled.labels('q"uote\\back\nline', "500").inc(2)
    labelled.labels("ünï €", "").inc(0.1)
    Gauge("empty", "labelled, no children yet", ["x"], registry=registry)
    hist = Histogram("dur_seconds", "labelled histogram", ["b", "a"], registry=registry)
    hist.labels("2", "1").observe(7)
    hist.labels("z", "y").observe(float("inf"))
    Summary("summ", "a summary", ["k"], registry=registry).labels("v").observe(4)
    Info("build", "an info", registry=registry).info({"version": "1.2", "z": "a"})
    Enum("state", "an enum", states=["up", "down"], registry=registry).state("down")


def test_every_metric_kind_renders_as_prometheus_client_does() -> None:
    registry = CollectorRegistry()
    every_kind(registry)
    assert_same_as_prometheus_client(registry)


def test_ccobs_metrics_after_a_full_request_render_as_prometheus_client_does() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    metrics.record_completed_request(
        "POST",
        "/v1/messages",
        "claude-sonnet-4-6",
        200,
        "proxy_service",
        duration_seconds=1.5,
        ttft_seconds=0.4,
        input_tokens=1200,
        output_tokens=350,
        cache_read_tokens=8000,
        cache_write_tokens=400,
        cost_input_usd=0.0036,
        cost_output_usd=0.00525,
        cost_cache_usd=0.0039,
        cost_total_usd=0.01275,
    )
    metrics.record_error("upstream_timeout", "/v1/messages", "claude-sonnet-4-6", "proxy_service")
    metrics.update_system_info()
    assert_same_as_prometheus_client(registry)


def test_values_are_read_afresh_on_every_render() -> None:
    registry = CollectorRegistry()
    counter = Counter("calls", "labelled", ["model"], registry=registry)
    hist = Histogram("dur_seconds", "labelled", ["model"], registry=registry)
    renderer = ExpositionRenderer()
    counter.labels("a").inc()
    hist.labels("a").observe(1)
    renderer.render(registry)
    counter.labels("a").inc(5)
    hist.labels("a").observe(0.01)
    assert renderer.render(registry) == generate_latest(registry)


def test_removed_series_leave_the_exposition() -> None:
    registry = CollectorRegistry()
    counter = Counter("calls", "labelled", ["model"], registry=registry)
    renderer = ExpositionRenderer()
    counter.labels("gone").inc()
    counter.labels("kept").inc()
    renderer.render(registry)
    counter.remove("gone")
    rendered = renderer.render(registry)
    assert b'model="gone"' not in rendered
    assert rendered == generate_latest(registry)


def test_the_prefix_cache_holds_only_the_series_of_the_last_render() -> None:
    """Bounded memory: a series that left the exposition leaves the cache too."""
    registry = CollectorRegistry()
    counter = Counter("calls", "labelled", ["model"], registry=registry)
    renderer = ExpositionRenderer()
    for i in range(100):
        counter.labels(str(i)).inc()
    renderer.render(registry)
    counter.clear()
    counter.labels("only").inc()
    renderer.render(registry)
    assert len(renderer._prefixes) == 1


def test_created_series_can_be_switched_off() -> None:
    registry = CollectorRegistry()
    every_kind(registry)
    disable_created_metrics()
    try:
        assert_same_as_prometheus_client(registry)
    finally:
        enable_created_metrics()


class _Families(Collector):
    def __init__(self, *families: Metric) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def test_custom_collectors_render_as_prometheus_client_does() -> None:
    registry = CollectorRegistry()
    gauge = GaugeMetricFamily("custom_things", "from a collector", labels=["k"], unit="things")
    gauge.add_metric(["v"], 4)
    gauge_histogram = GaugeHistogramMetricFamily(
        "custom_queue", "gauge histogram", buckets=[("1.0", 2), ("+Inf", 5)], gsum_value=9
    )
    registry.register(_Families(gauge, gauge_histogram))
    Counter("after", "registered after", registry=registry).inc()
    assert_same_as_prometheus_client(registry)


def test_target_info_comes_first_as_in_prometheus_client() -> None:
    registry = CollectorRegistry(target_info={"service": "proxy"})
    Counter("calls", "c", registry=registry).inc()
    assert_same_as_prometheus_client(registry)


@pytest.mark.parametrize(
    "add",
    [
        pytest.param(
            lambda r: Counter("ex", "e", registry=r).inc(exemplar={"trace_id": "abc"}),
            id="exemplar",
        ),
        pytest.param(
            lambda r: r.register(_Families(_timestamped())),
            id="sample-timestamp",
        ),
        pytest.param(lambda r: Counter("odd:name", "colon", registry=r).inc(), id="colon-name"),
        pytest.param(
            lambda r: Gauge("fn", "function", registry=r).set_function(lambda: 7.0),
            id="gauge-function",
        ),
    ],
)
def test_what_the_renderer_does_not_write_is_left_to_prometheus_client(add: object) -> None:
    registry = CollectorRegistry()
    every_kind(registry)
    add(registry)  # type: ignore[operator]
    assert_same_as_prometheus_client(registry)


def _timestamped() -> Metric:
    family = GaugeMetricFamily("stamped", "with a timestamp")
    family.add_metric([], 1.0, timestamp=1700000000.5)
    return family


def test_multiprocess_exposition_renders_as_prometheus_client_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    metrics = PrometheusMetrics(registry=CollectorRegistry())
    metrics.record_request("POST", "/v1/messages", "claude-sonnet-4-6", 200, "proxy_service")
    metrics.record_response_time(0.2, "claude-sonnet-4-6", "/v1/messages", "proxy_service")
    registry = metrics.exposition_registry()
    assert registry is not None
    assert_same_as_prometheus_client(registry)


def test_render_metrics_picks_the_renderer_format_from_the_accept_header() -> None:
    metrics = PrometheusMetrics(registry=CollectorRegistry())
    metrics.record_request("GET", "/x", None, 200, "proxy_service")
    registry = metrics.exposition_registry()
    renderer = ExpositionRenderer()

    text, text_type = render_metrics(metrics, None, renderer)
    om, om_type = render_metrics(metrics, OM_ACCEPT, renderer)

    assert (text, text_type) == (
        generate_latest(registry),
        "text/plain; version=0.0.4; charset=utf-8",
    )
    assert om == openmetrics_latest(registry)
    assert om_type.startswith("application/openmetrics-text; version=1.0.0")


PROMETHEUS_3_ACCEPTS = {
    # Prometheus 3's default scrape protocols (its scrape tests' expected header).
    "openmetrics first": "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
    # Later Prometheus 3 releases, which put the text format first.
    "text first": "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "text/plain;version=0.0.4;q=0.5,"
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.4,*/*;q=0.3",
}


@pytest.mark.parametrize("accept", PROMETHEUS_3_ACCEPTS.values(), ids=PROMETHEUS_3_ACCEPTS.keys())
def test_a_prometheus_3_scrape_is_written_by_the_renderer_as_prometheus_client_would(
    accept: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import prometheus_client.exposition
    import prometheus_client.openmetrics.exposition

    metrics = PrometheusMetrics(registry=CollectorRegistry())
    metrics.record_request("GET", "/x", "m", 200, "proxy_service")
    expected = render_metrics(metrics, accept)

    def refuse(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("the renderer handed the render to prometheus_client")

    monkeypatch.setattr(prometheus_client.exposition, "generate_latest", refuse)
    monkeypatch.setattr(prometheus_client.openmetrics.exposition, "generate_latest", refuse)
    assert render_metrics(metrics, accept, ExpositionRenderer()) == expected
    assert "escaping=allow-utf-8" in expected[1]


@pytest.mark.parametrize("accept", PROMETHEUS_3_ACCEPTS.values(), ids=PROMETHEUS_3_ACCEPTS.keys())
def test_a_utf8_name_under_prometheus_3_is_written_by_prometheus_client(accept: str) -> None:
    registry = CollectorRegistry()
    Counter("requests.by.route", "A name only UTF-8 escaping keeps.", registry=registry).inc()
    metrics = PrometheusMetrics(registry=registry)

    body, _ = render_metrics(metrics, accept, ExpositionRenderer())

    assert body == render_metrics(metrics, accept)[0]
    assert b'"requests.by.route' in body


def test_other_escaping_schemes_are_written_by_prometheus_client() -> None:
    metrics = PrometheusMetrics(registry=CollectorRegistry())
    metrics.record_request("GET", "/x", None, 200, "proxy_service")
    accept = "application/openmetrics-text; version=1.0.0; escaping=dots"
    body, content_type = render_metrics(metrics, accept, ExpositionRenderer())
    assert content_type.endswith("escaping=dots")
    assert body == render_metrics(metrics, accept)[0]


@settings(max_examples=150, derandomize=True, deadline=None)
@given(values=st.lists(st.text(max_size=40), min_size=1, max_size=5))
def test_any_label_value_renders_as_prometheus_client_does(values: list[str]) -> None:
    registry = CollectorRegistry()
    counter = Counter("calls", "c", ["v"], registry=registry)
    hist = Histogram("dur_seconds", "h", ["v"], buckets=(0.5, 1), registry=registry)
    for value in values:
        counter.labels(value).inc()
        hist.labels(value).observe(0.7)
    assert_same_as_prometheus_client(registry)


def test_ccobs_metrics_with_requests_in_flight_are_written_by_the_renderer_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The active-requests gauge is read through ``set_function``; that alone must not hand
    every scrape to prometheus_client's slower encoders."""
    import prometheus_client.exposition
    import prometheus_client.openmetrics.exposition

    class InFlight:
        def requests_in_flight(self) -> int:
            return 2

    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    source = InFlight()
    assert metrics.watch_in_flight(source)
    metrics.record_request("GET", "/x", None, 200, "proxy_service")
    expected = generate_latest(registry), openmetrics_latest(registry)

    def refuse(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("the renderer handed the render to prometheus_client")

    monkeypatch.setattr(prometheus_client.exposition, "generate_latest", refuse)
    monkeypatch.setattr(prometheus_client.openmetrics.exposition, "generate_latest", refuse)
    renderer = ExpositionRenderer()
    assert (renderer.render(registry, TEXT), renderer.render(registry, OPENMETRICS)) == expected
    assert b"\nccproxy_active_requests 2.0\n" in expected[0]


def test_the_old_import_path_still_names_the_same_objects() -> None:
    """``ccobs.exposition`` was split into the renderer, the endpoint and the token check;
    code importing from it gets the same objects."""
    import ccobs.bearer_token
    import ccobs.exposition
    import ccobs.metrics_endpoint
    import ccobs.renderer

    assert ccobs.exposition.ExpositionRenderer is ccobs.renderer.ExpositionRenderer
    assert (ccobs.exposition.TEXT, ccobs.exposition.OPENMETRICS) == (TEXT, OPENMETRICS)
    assert ccobs.exposition.render_metrics is ccobs.metrics_endpoint.render_metrics
    assert ccobs.exposition.metrics_endpoint is ccobs.metrics_endpoint.metrics_endpoint
    assert ccobs.exposition.bearer_token_matches is ccobs.bearer_token.bearer_token_matches
