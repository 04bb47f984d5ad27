"""PrometheusMetrics: what each record_* call puts in the registry, and what it refuses."""

from __future__ import annotations

import gc
import math
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from structlog.testing import capture_logs

from ccobs.catalog import (
    ACCESS_LOG_METRICS,
    ALL_METRICS,
    COST_TYPES,
    REJECTED_VALUE_METRICS,
    TOKEN_TYPES,
)
from ccobs.metric_labels import GUARDED_LABELS
from ccobs.metrics import PrometheusMetrics, get_metrics, reset_metrics
from ccobs.settings import ObservabilitySettings


@pytest.fixture
def singleton() -> Iterator[None]:
    reset_metrics()
    yield
    reset_metrics()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_record_request_counts_by_all_labels(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    metrics.record_request("POST", "/v1/messages", "claude-sonnet-4-5", 200, "proxy_service")
    metrics.record_request("POST", "/v1/messages", "claude-sonnet-4-5", "200", "proxy_service")

    assert (
        value(
            registry,
            "ccproxy_requests_total",
            method="POST",
            endpoint="/v1/messages",
            model="claude-sonnet-4-5",
            status="200",
            service_type="proxy_service",
        )
        == 2
    )


def test_missing_model_and_service_type_are_recorded_as_unknown(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    metrics.record_request("GET", "/health")

    assert (
        value(
            registry,
            "ccproxy_requests_total",
            method="GET",
            endpoint="/health",
            model="unknown",
            status="unknown",
            service_type="unknown",
        )
        == 1
    )


def test_response_time_is_observed_in_the_histogram(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    metrics.record_response_time(2.0, "m", "/v1/messages", "proxy_service")

    labels = {"model": "m", "endpoint": "/v1/messages", "service_type": "proxy_service"}
    assert value(registry, "ccproxy_response_duration_seconds_sum", **labels) == 2.0
    assert value(registry, "ccproxy_response_duration_seconds_bucket", le="1.0", **labels) == 0
    assert value(registry, "ccproxy_response_duration_seconds_bucket", le="2.5", **labels) == 1


def test_duration_buckets_reach_at_least_ten_minutes(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    metrics.record_response_time(590.0, "m")

    labels = {"model": "m", "endpoint": "unknown", "service_type": "unknown"}
    assert value(registry, "ccproxy_response_duration_seconds_bucket", le="600.0", **labels) == 1
    assert value(registry, "ccproxy_response_duration_seconds_bucket", le="300.0", **labels) == 0


def test_buckets_come_from_settings(registry: CollectorRegistry) -> None:
    settings = ObservabilitySettings(duration_buckets=(1.0, 10.0), ttft_buckets=(0.5,))
    metrics = PrometheusMetrics(registry=registry, settings=settings)
    metrics.record_response_time(5.0, "m")
    metrics.record_time_to_first_token(0.2, "m")

    text = generate_latest(registry).decode()
    assert 'le="10.0"' in text
    assert 'le="2.5"' not in text
    assert (
        value(
            registry,
            "ccproxy_time_to_first_token_seconds_bucket",
            le="0.5",
            model="m",
            endpoint="unknown",
            service_type="unknown",
        )
        == 1
    )


def test_time_to_first_token_is_observed(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    metrics.record_time_to_first_token(0.8, "m", "/v1/messages", "proxy_service")

    assert (
        value(
            registry,
            "ccproxy_time_to_first_token_seconds_count",
            model="m",
            endpoint="/v1/messages",
            service_type="proxy_service",
        )
        == 1
    )


@pytest.mark.parametrize("token_type", TOKEN_TYPES)
def test_tokens_are_counted_by_type(
    metrics: PrometheusMetrics, registry: CollectorRegistry, token_type: str
) -> None:
    metrics.record_tokens(120, token_type, "m", "proxy_service")
    metrics.record_tokens(30, token_type, "m", "proxy_service")

    assert (
        value(
            registry,
            "ccproxy_tokens_total",
            type=token_type,
            model="m",
            service_type="proxy_service",
        )
        == 150
    )


@pytest.mark.parametrize("cost_type", COST_TYPES)
def test_cost_is_counted_by_type_in_usd(
    metrics: PrometheusMetrics, registry: CollectorRegistry, cost_type: str
) -> None:
    metrics.record_cost(0.25, "m", cost_type, "proxy_service")

    assert (
        value(
            registry,
            "ccproxy_cost_usd_total",
            model="m",
            cost_type=cost_type,
            service_type="proxy_service",
        )
        == 0.25
    )


def test_cost_type_defaults_to_total(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    metrics.record_cost(1.5, "m")

    assert (
        value(
            registry, "ccproxy_cost_usd_total", model="m", cost_type="total", service_type="unknown"
        )
        == 1.5
    )


def test_unknown_token_type_raises_naming_the_allowed_values(metrics: PrometheusMetrics) -> None:
    with pytest.raises(ValueError, match="input, output, cache_read, cache_write"):
        metrics.record_tokens(1, "prompt")


def test_unknown_cost_type_raises_naming_the_allowed_values(metrics: PrometheusMetrics) -> None:
    with pytest.raises(ValueError, match="input, output, cache, total"):
        metrics.record_cost(1.0, cost_type="tokens")


def test_errors_are_counted_by_type_endpoint_and_model(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    metrics.record_error("rate_limited", "/v1/messages", "m", "proxy_service")

    assert (
        value(
            registry,
            "ccproxy_errors_total",
            error_type="rate_limited",
            endpoint="/v1/messages",
            model="m",
            service_type="proxy_service",
        )
        == 1
    )


def test_active_requests_go_up_and_down(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    metrics.inc_active_requests()
    metrics.inc_active_requests()
    metrics.dec_active_requests()
    assert value(registry, "ccproxy_active_requests") == 1

    metrics.set_active_requests(7)
    assert value(registry, "ccproxy_active_requests") == 7


def test_info_series_names_the_versions(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    metrics.update_system_info(version="9.9.9")

    text = generate_latest(registry).decode()
    assert "ccproxy_info{" in text
    assert 'version="9.9.9"' in text
    assert text.count("ccproxy_info{") == 1


def test_info_takes_the_reference_apis_dict(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    metrics.update_system_info({"version": "9.9.9", "platform": "plan9"})

    text = generate_latest(registry).decode()
    assert text.count("ccproxy_info{") == 1
    assert 'version="9.9.9"' in text
    assert 'platform="plan9"' in text


def test_info_drops_dict_keys_outside_its_fixed_set_and_keeps_one_series(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    with capture_logs() as logs:
        metrics.update_system_info({"version": "2.0", "hostname": "pod-1", "env": "prod"})

    text = generate_latest(registry).decode()
    assert text.count("ccproxy_info{") == 1
    assert 'version="2.0"' in text
    assert "pod-1" not in text
    assert [line["dropped"] for line in logs if line["event"] == "info_labels_dropped"] == [
        ["env", "hostname"]
    ]


def test_info_rejects_labels_outside_its_fixed_set(metrics: PrometheusMetrics) -> None:
    with pytest.raises(ValueError, match="unknown info labels"):
        metrics.update_system_info(hostname="x")


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf, -math.inf, "12"])
def test_bad_token_counts_are_refused_and_counted(
    metrics: PrometheusMetrics, registry: CollectorRegistry, bad: object
) -> None:
    metrics.record_tokens(10, "input", "m")
    metrics.record_tokens(bad, "input", "m")  # type: ignore[arg-type]

    assert (
        value(registry, "ccproxy_tokens_total", type="input", model="m", service_type="unknown")
        == 10
    )
    assert value(registry, "ccproxy_rejected_values_total", metric="tokens") == 1


@pytest.mark.parametrize("bad", [-0.01, math.nan, math.inf])
def test_bad_costs_never_corrupt_the_counter(
    metrics: PrometheusMetrics, registry: CollectorRegistry, bad: float
) -> None:
    metrics.record_cost(0.5, "m")
    metrics.record_cost(bad, "m")

    total = value(
        registry, "ccproxy_cost_usd_total", model="m", cost_type="total", service_type="unknown"
    )
    assert total == 0.5


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_bad_durations_are_not_observed(
    metrics: PrometheusMetrics, registry: CollectorRegistry, bad: float
) -> None:
    metrics.record_response_time(bad, "m")
    metrics.record_time_to_first_token(bad, "m")

    labels = {"model": "m", "endpoint": "unknown", "service_type": "unknown"}
    assert value(registry, "ccproxy_response_duration_seconds_count", **labels) is None
    assert value(registry, "ccproxy_time_to_first_token_seconds_count", **labels) is None


def test_zero_tokens_and_cost_are_a_no_op(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    metrics.record_tokens(0, "output", "m")
    metrics.record_cost(0.0, "m")

    assert (
        value(registry, "ccproxy_tokens_total", type="output", model="m", service_type="unknown")
        is None
    )
    assert value(registry, "ccproxy_rejected_values_total", metric="tokens") == 0


def test_rejected_values_are_logged_at_most_once_a_minute(
    metrics: PrometheusMetrics, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(50):
        metrics.record_cost(-1.0, "m")

    assert capsys.readouterr().out.count("metric_value_rejected") == 1


def test_model_label_is_capped_then_other(registry: CollectorRegistry) -> None:
    metrics = PrometheusMetrics(
        registry=registry, settings=ObservabilitySettings(model_label_cap=3)
    )
    for i in range(1000):
        metrics.record_request("POST", "/v1/messages", f"made-up-{i}", 200)

    text = generate_latest(registry).decode()
    assert text.count("ccproxy_requests_total{") == 4
    assert (
        value(
            registry,
            "ccproxy_requests_total",
            method="POST",
            endpoint="/v1/messages",
            model="other",
            status="200",
            service_type="unknown",
        )
        == 997
    )
    assert value(registry, "ccproxy_label_overflows_total", label="model") == 997


def test_model_allowlist_keeps_only_listed_models(registry: CollectorRegistry) -> None:
    settings = ObservabilitySettings(model_allowlist=("claude-sonnet-4-5",))
    metrics = PrometheusMetrics(registry=registry, settings=settings)
    metrics.record_tokens(5, "input", "claude-sonnet-4-5")
    metrics.record_tokens(7, "input", "something-else")

    assert (
        value(
            registry,
            "ccproxy_tokens_total",
            type="input",
            model="claude-sonnet-4-5",
            service_type="unknown",
        )
        == 5
    )
    assert (
        value(registry, "ccproxy_tokens_total", type="input", model="other", service_type="unknown")
        == 7
    )


def test_long_label_values_are_truncated(registry: CollectorRegistry) -> None:
    settings = ObservabilitySettings(label_value_max_length=16)
    metrics = PrometheusMetrics(registry=registry, settings=settings)
    metrics.record_error("x" * 10_000, model="m" * 10_000)

    assert (
        value(
            registry,
            "ccproxy_errors_total",
            error_type="x" * 16,
            endpoint="unknown",
            model="m" * 16,
            service_type="unknown",
        )
        == 1
    )


def test_every_catalogue_metric_is_registered(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    names = {family.name for family in registry.collect()}
    for spec in ALL_METRICS:
        if spec in ACCESS_LOG_METRICS:  # registered by the access-log store, see test_access_log
            continue
        exposed = spec.full_name().removesuffix("_total")
        assert exposed in names, spec.name


def test_namespace_prefixes_every_metric(registry: CollectorRegistry) -> None:
    PrometheusMetrics(namespace="gateway", registry=registry)

    names = {family.name for family in registry.collect()}
    assert all(name.startswith("gateway_") for name in names)
    assert "gateway_requests" in names


def test_second_instance_on_one_registry_fails_clearly(registry: CollectorRegistry) -> None:
    PrometheusMetrics(registry=registry)

    with pytest.raises(ValueError, match="already registered"):
        PrometheusMetrics(registry=registry)


def test_unregister_removes_exactly_its_own_collectors(registry: CollectorRegistry) -> None:
    from prometheus_client import Counter

    mine = Counter("user_things", "A user's own metric.", registry=registry)
    metrics = PrometheusMetrics(registry=registry)
    metrics.unregister()

    assert {f.name for f in registry.collect()} == {"user_things"}
    mine.inc()
    PrometheusMetrics(registry=registry)  # the names are free again


def test_registry_none_uses_the_default_registry(singleton: None) -> None:
    metrics = get_metrics()

    assert metrics.registry is REGISTRY
    metrics.record_request("GET", "/x", "m", 200)
    assert (
        REGISTRY.get_sample_value(
            "ccproxy_requests_total",
            {
                "method": "GET",
                "endpoint": "/x",
                "model": "m",
                "status": "200",
                "service_type": "unknown",
            },
        )
        == 1
    )


def test_get_metrics_returns_one_instance(singleton: None) -> None:
    assert get_metrics(registry=CollectorRegistry()) is get_metrics()


def test_reset_metrics_lets_a_fresh_instance_register_again(singleton: None) -> None:
    first = get_metrics()
    reset_metrics()
    second = get_metrics()

    assert second is not first
    assert REGISTRY.get_sample_value("ccproxy_active_requests") == 0


def test_get_metrics_takes_namespace_from_settings(singleton: None) -> None:
    registry = CollectorRegistry()
    metrics = get_metrics(registry=registry, settings=ObservabilitySettings(namespace="edge"))

    assert metrics.namespace == "edge"
    assert registry.get_sample_value("edge_active_requests") == 0


def test_push_without_a_client_returns_false(metrics: PrometheusMetrics) -> None:
    assert metrics.is_pushgateway_enabled() is False
    assert metrics.push_to_gateway() is False
    assert metrics.push_add_to_gateway() is False
    assert metrics.delete_from_gateway() is False


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample but ``_created`` and the info metric, keyed by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created") and not s.name.startswith("ccproxy_info")
    }


def test_record_completed_request_equals_the_individual_calls() -> None:
    one, many = CollectorRegistry(), CollectorRegistry()
    single = PrometheusMetrics(registry=one)
    separate = PrometheusMetrics(registry=many)
    usage = {"input": 10, "output": 20, "cache_read": 30, "cache_write": 40}
    costs = {"input": 0.1, "output": 0.2, "cache": 0.3, "total": 0.6}
    for _ in range(3):
        single.record_completed_request(
            "POST", "/v1/messages", "m", 200, "proxy_service",
            duration_seconds=1.5, ttft_seconds=0.4,
            input_tokens=10, output_tokens=20, cache_read_tokens=30, cache_write_tokens=40,
            cost_input_usd=0.1, cost_output_usd=0.2, cost_cache_usd=0.3, cost_total_usd=0.6,
        )  # fmt: skip
        separate.record_request("POST", "/v1/messages", "m", 200, "proxy_service")
        separate.record_response_time(1.5, "m", "/v1/messages", "proxy_service")
        separate.record_time_to_first_token(0.4, "m", "/v1/messages", "proxy_service")
        for token_type, count in usage.items():
            separate.record_tokens(count, token_type, "m", "proxy_service")
        for cost_type, amount in costs.items():
            separate.record_cost(amount, "m", cost_type, "proxy_service")

    assert samples(one) == pytest.approx(samples(many))


def test_record_response_equals_record_request_then_record_response_time() -> None:
    """The middleware's one call: the same samples, overflow and rejection counts included."""
    settings = ObservabilitySettings(model_label_cap=2)
    one, many = CollectorRegistry(), CollectorRegistry()
    combined = PrometheusMetrics(registry=one, settings=settings)
    separate = PrometheusMetrics(registry=many, settings=settings)
    calls = [
        ("GET", "/ping", None, 200, "proxy_service", 0.002),
        ("POST", "/v1/messages", "m1", 200, "proxy_service", 1.5),
        ("POST", "/v1/messages", "m2", 500, "proxy_service", 0.0),
        ("POST", "/v1/messages", "m3", 200, "proxy_service", 2.0),  # model overflows
        ("POST", "/v1/messages", "m1", "429", None, math.nan),  # duration refused
        ("POST", "/v1/messages", ["unhashable"], 200, "proxy_service", 0.5),
    ]
    for _ in range(3):
        for method, endpoint, model, status, service_type, duration in calls:
            combined.record_response(method, endpoint, model, status, service_type, duration)
            separate.record_request(method, endpoint, model, status, service_type)
            separate.record_response_time(duration, model, endpoint, service_type)

    assert samples(one) == pytest.approx(samples(many))
    # Two overflowing models, three rounds, each seen by both methods' model guard.
    assert value(one, "ccproxy_label_overflows_total", label="model") == 12


def test_record_completed_request_refuses_bad_values(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    metrics.record_completed_request(
        "POST", "/v1/messages", "m", 200, duration_seconds=math.nan, input_tokens=-5,
        cost_total_usd=math.inf,
    )  # fmt: skip

    assert value(registry, "ccproxy_rejected_values_total", metric="response_duration") == 1
    assert value(registry, "ccproxy_rejected_values_total", metric="tokens") == 1
    assert value(registry, "ccproxy_rejected_values_total", metric="cost_usd") == 1
    assert (
        value(registry, "ccproxy_tokens_total", type="input", model="m", service_type="unknown")
        == 0
    )


def test_the_middlewares_operation_records_what_record_response_does() -> None:
    """``recorded_responses()`` holds, per remembered call, one operation doing both updates."""
    one, many = CollectorRegistry(), CollectorRegistry()
    direct = PrometheusMetrics(registry=one)
    separate = PrometheusMetrics(registry=many)
    labels = ("GET", "/ping", None, 200, "proxy_service")
    direct.record_response(*labels, 0.3)  # the first call remembers the arguments
    operation = direct.recorded_responses()[labels]
    for duration in (0.0, 0.004, 0.3, 7.0, 1e9):
        operation(duration)
    for duration in (0.3, 0.0, 0.004, 0.3, 7.0, 1e9):
        separate.record_request(*labels)
        separate.record_response_time(duration, None, "/ping", "proxy_service")

    assert samples(one) == samples(many)


def test_concurrent_observations_lose_no_update(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    """Sum and bucket share one lock per series; every thread's additions arrive."""

    def record() -> None:
        for _ in range(2000):
            metrics.record_response("GET", "/x", "m", 200, "proxy_service", 0.25)
            metrics.record_response_time(0.25, "m", "/x", "proxy_service")

    threads = [threading.Thread(target=record) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    series = {"model": "m", "endpoint": "/x", "service_type": "proxy_service"}
    assert value(registry, "ccproxy_response_duration_seconds_count", **series) == 16000
    assert value(registry, "ccproxy_response_duration_seconds_sum", **series) == 4000.0
    assert value(registry, "ccproxy_response_duration_seconds_bucket", le="0.25", **series) == 16000


class InFlight:
    """Stands in for the ASGI middleware: requests it counts in flight."""

    def __init__(self) -> None:
        self.count = 0

    def requests_in_flight(self) -> int:
        return self.count


def test_the_active_gauge_adds_the_requests_its_sources_count_when_read(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    first, second = InFlight(), InFlight()
    assert metrics.watch_in_flight(first)
    assert metrics.watch_in_flight(second)
    first.count, second.count = 2, 1
    metrics.inc_active_requests()  # request_context(metrics=...) moves the gauge itself

    assert value(registry, "ccproxy_active_requests") == 4
    first.count = 0
    assert value(registry, "ccproxy_active_requests") == 2


def test_a_set_active_gauge_reads_the_value_set_then_moves_with_requests(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    """As if each request had moved it: set while 3 are in flight, then one finishes."""
    source = InFlight()
    metrics.watch_in_flight(source)
    source.count = 3
    metrics.set_active_requests(7)
    assert value(registry, "ccproxy_active_requests") == 7
    source.count = 2
    assert value(registry, "ccproxy_active_requests") == 6


def test_the_active_gauge_holds_its_sources_weakly(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    source = InFlight()
    metrics.watch_in_flight(source)
    source.count = 5
    del source
    gc.collect()

    assert value(registry, "ccproxy_active_requests") == 0


def test_under_multiprocess_mode_the_active_gauge_watches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each process's value lives in its file: the middleware must move it per request."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    metrics = PrometheusMetrics(registry=CollectorRegistry())

    assert metrics.watch_in_flight(InFlight()) is False
    assert metrics.active_requests_adder() is not None


def test_refusal_counters_start_at_zero_for_every_known_label_value(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    for label in GUARDED_LABELS:
        assert registry.get_sample_value("ccproxy_label_overflows_total", {"label": label}) == 0
    for metric in REJECTED_VALUE_METRICS:
        assert registry.get_sample_value("ccproxy_rejected_values_total", {"metric": metric}) == 0


def test_every_refused_value_lands_in_a_series_that_existed_from_the_start(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    metrics.record_response_time(-1.0, "m", "/e")
    metrics.record_time_to_first_token(math.nan, "m", "/e")
    metrics.record_tokens(-5, "input", "m")
    metrics.record_cost(math.inf, "m")
    metrics.set_active_requests(-2)
    metrics.record_time_per_output_token(-0.5, "m")

    refused = {
        sample.labels["metric"]: sample.value
        for family in registry.collect()
        if family.name == "ccproxy_rejected_values"
        for sample in family.samples
        if sample.name.endswith("_total")
    }
    assert refused == dict.fromkeys(REJECTED_VALUE_METRICS, 1.0)


def test_known_models_start_their_token_and_cost_series_at_zero(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    metrics.start_model_series(["claude-sonnet-4-6"], "proxy_service")

    labels = {"model": "claude-sonnet-4-6", "service_type": "proxy_service"}
    for token_type in ("input", "output", "cache_read", "cache_write"):
        assert value(registry, "ccproxy_tokens_total", type=token_type, **labels) == 0
    for cost_type in ("input", "output", "cache", "total"):
        assert value(registry, "ccproxy_cost_usd_total", cost_type=cost_type, **labels) == 0


def test_a_started_series_counts_the_first_request_from_zero(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    metrics.start_model_series(["m"], "proxy_service")
    before = value(
        registry, "ccproxy_tokens_total", type="input", model="m", service_type="proxy_service"
    )

    metrics.record_tokens(40, "input", "m", "proxy_service")

    after = value(
        registry, "ccproxy_tokens_total", type="input", model="m", service_type="proxy_service"
    )
    assert (before, after) == (0, 40)
