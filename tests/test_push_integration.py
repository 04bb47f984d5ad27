"""Pushing to the real Pushgateway and VictoriaMetrics binaries on loopback."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_server import serve_asgi
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families
from realservers import LOOPBACK, ServerProcess, force_flush, free_port, require_binary

from ccobs.circuit_breaker import BreakerState
from ccobs.fastapi import instrument
from ccobs.metrics import PrometheusMetrics
from ccobs.pushgateway import PushgatewayClient
from ccobs.settings import ObservabilitySettings

pytestmark = pytest.mark.integration

JOB = "ccobs_test"


def make_registry(name: str = "pushed_requests", amount: float = 3) -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter(name, "Requests, pushed by a test.", ["model"], registry=registry).labels(
        "claude-sonnet-4-5"
    ).inc(amount)
    return registry


def client_for(url: str, instance: str = "replica-1", **overrides: Any) -> PushgatewayClient:
    return PushgatewayClient(
        ObservabilitySettings(
            pushgateway_url=url,
            pushgateway_job=JOB,
            pushgateway_instance=instance,
            pushgateway_timeout_seconds=2,
            **overrides,
        )
    )


def gateway_samples(gateway: ServerProcess) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(gateway.url + "/metrics").text
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("job") == JOB
    ]


def values_of(gateway: ServerProcess, name: str) -> dict[str, float]:
    """Sample values of ``name`` by instance label."""
    return {
        labels["instance"]: value
        for sample_name, labels, value in gateway_samples(gateway)
        if sample_name == name
    }


def vm_query(vm: ServerProcess, query: str, series: int) -> list[dict[str, Any]]:
    """Query until ``series`` series answer: new series become searchable about 1 s after import."""
    deadline = time.monotonic() + 10
    while True:
        force_flush(vm)
        response = httpx.get(vm.url + "/api/v1/query", params={"query": query})
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        if len(result) == series or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_push_is_stored_under_job_and_instance(pushgateway: ServerProcess) -> None:
    assert client_for(pushgateway.url).push_metrics(make_registry(amount=3)) is True

    assert values_of(pushgateway, "pushed_requests_total") == {"replica-1": 3.0}
    assert values_of(pushgateway, "push_time_seconds")["replica-1"] > 0


def test_push_replaces_the_group(pushgateway: ServerProcess) -> None:
    client = client_for(pushgateway.url)
    client.push_metrics(make_registry("first_requests"))
    client.push_metrics(make_registry("second_requests"))

    assert values_of(pushgateway, "first_requests_total") == {}
    assert values_of(pushgateway, "second_requests_total") == {"replica-1": 3.0}


def test_pushadd_keeps_the_other_metrics_of_the_group(pushgateway: ServerProcess) -> None:
    client = client_for(pushgateway.url)
    client.push_metrics(make_registry("first_requests"))
    assert client.push_add_metrics(make_registry("second_requests", amount=5)) is True

    assert values_of(pushgateway, "first_requests_total") == {"replica-1": 3.0}
    assert values_of(pushgateway, "second_requests_total") == {"replica-1": 5.0}


def test_delete_removes_only_this_instance(pushgateway: ServerProcess) -> None:
    mine, theirs = (
        client_for(pushgateway.url, "replica-1"),
        client_for(pushgateway.url, "replica-2"),
    )
    mine.push_metrics(make_registry())
    theirs.push_metrics(make_registry(amount=8))

    assert mine.delete_metrics() is True
    assert values_of(pushgateway, "pushed_requests_total") == {"replica-2": 8.0}


def test_replicas_do_not_overwrite_each_other(pushgateway: ServerProcess) -> None:
    client_for(pushgateway.url, "replica-1").push_metrics(make_registry(amount=1))
    client_for(pushgateway.url, "replica-2").push_metrics(make_registry(amount=2))

    assert values_of(pushgateway, "pushed_requests_total") == {"replica-1": 1.0, "replica-2": 2.0}


def test_a_job_with_a_hyphen_or_slash_is_stored_under_that_job(pushgateway: ServerProcess) -> None:
    for job in ("llm-gateway", "team-a/llm-gateway"):
        client = PushgatewayClient(
            ObservabilitySettings(
                pushgateway_url=pushgateway.url, pushgateway_job=job, pushgateway_instance="r-1"
            )
        )
        assert client.push_metrics(make_registry(amount=4)) is True

    text = httpx.get(pushgateway.url + "/metrics").text
    pushed = {
        sample.labels["job"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "pushed_requests_total"
    }
    assert pushed == {"llm-gateway": 4.0, "team-a/llm-gateway": 4.0}


def test_victoriametrics_delete_of_a_job_with_a_hyphen_removes_it(
    victoria_metrics: ServerProcess,
) -> None:
    client = PushgatewayClient(
        ObservabilitySettings(
            pushgateway_url=victoria_metrics.url,
            pushgateway_job="llm-gateway",
            pushgateway_instance="r-1",
            pushgateway_protocol="victoriametrics",
        )
    )
    client.push_metrics(make_registry(amount=2))
    assert len(vm_query(victoria_metrics, 'pushed_requests_total{job="llm-gateway"}', 1)) == 1

    assert client.delete_metrics() is True
    assert vm_query(victoria_metrics, 'pushed_requests_total{job="llm-gateway"}', 0) == []


def test_metrics_push_the_whole_library_registry(pushgateway: ServerProcess) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry, pushgateway_client=client_for(pushgateway.url))
    metrics.record_tokens(1234, "output", "claude-sonnet-4-5", "proxy_service")

    assert metrics.push_to_gateway() is True
    tokens = [
        value
        for name, labels, value in gateway_samples(pushgateway)
        if name == "ccproxy_tokens_total" and labels["type"] == "output"
    ]
    assert tokens == [1234.0]
    assert (
        registry.get_sample_value(
            "ccproxy_pushes_total", {"protocol": "pushgateway", "outcome": "success"}
        )
        == 1
    )


def test_breaker_recovers_when_the_pushgateway_comes_back(tmp_path: Path) -> None:
    port = free_port()
    gateway = _start_gateway(tmp_path / "first", port)
    client = client_for(gateway.url, pushgateway_failure_threshold=1, pushgateway_reset_seconds=0.5)
    gateway.stop()

    assert client.push_metrics(make_registry()) is False
    assert client.breaker.state is BreakerState.OPEN
    assert client.push_metrics(make_registry()) is False  # skipped while open

    with _start_gateway(tmp_path / "revived", port) as revived:
        time.sleep(0.6)
        assert client.push_metrics(make_registry()) is True
        assert client.breaker.state is BreakerState.CLOSED
        assert values_of(revived, "pushed_requests_total") == {"replica-1": 3.0}


def _start_gateway(workdir: Path, port: int) -> ServerProcess:
    """A Pushgateway on a given port, so a second one can take over the first one's address."""
    workdir.mkdir(parents=True)
    return ServerProcess(
        require_binary("prometheus-pushgateway"),
        [f"--web.listen-address={LOOPBACK}:{port}", "--persistence.file="],
        workdir=workdir,
        port=port,
        ready_path="/-/ready",
    ).start()


def test_victoriametrics_import_is_queryable_with_exact_values(
    victoria_metrics: ServerProcess,
) -> None:
    client = client_for(victoria_metrics.url, pushgateway_protocol="victoriametrics")

    assert client.push_metrics(make_registry(amount=42)) is True

    [series] = vm_query(victoria_metrics, f'pushed_requests_total{{job="{JOB}"}}', 1)
    assert series["metric"]["instance"] == "replica-1"
    assert series["metric"]["model"] == "claude-sonnet-4-5"
    assert float(series["value"][1]) == 42.0


def test_victoriametrics_accepts_the_remote_write_url(victoria_metrics: ServerProcess) -> None:
    client = client_for(
        victoria_metrics.url + "/api/v1/write", pushgateway_protocol="victoriametrics"
    )

    assert client.push_metrics(make_registry(amount=7)) is True
    [series] = vm_query(victoria_metrics, f'pushed_requests_total{{job="{JOB}"}}', 1)
    assert float(series["value"][1]) == 7.0


def test_victoriametrics_delete_removes_this_instance(victoria_metrics: ServerProcess) -> None:
    mine = client_for(victoria_metrics.url, "replica-1", pushgateway_protocol="victoriametrics")
    theirs = client_for(victoria_metrics.url, "replica-2", pushgateway_protocol="victoriametrics")
    mine.push_metrics(make_registry(amount=1))
    theirs.push_metrics(make_registry(amount=2))

    assert len(vm_query(victoria_metrics, f'pushed_requests_total{{job="{JOB}"}}', 2)) == 2

    assert mine.delete_metrics() is True
    result = vm_query(victoria_metrics, f'pushed_requests_total{{job="{JOB}"}}', 1)
    assert [s["metric"]["instance"] for s in result] == ["replica-2"]


def pushing_app(gateway: ServerProcess, interval: float) -> FastAPI:
    settings = ObservabilitySettings(
        pushgateway_url=gateway.url,
        pushgateway_job=JOB,
        pushgateway_instance="app-1",
        pushgateway_interval_seconds=interval,
    )
    metrics = PrometheusMetrics(
        registry=CollectorRegistry(),
        pushgateway_client=PushgatewayClient(settings),
        settings=settings,
    )
    app = FastAPI()

    @app.get("/work")
    async def work() -> dict[str, str]:
        return {}

    instrument(app, metrics, settings)
    return app


def test_instrumented_app_pushes_on_its_interval(pushgateway: ServerProcess) -> None:
    with serve_asgi(pushing_app(pushgateway, interval=0.2), lifespan="on") as server:
        httpx.get(server.url + "/work")
        deadline = time.monotonic() + 5
        while not _pushed_requests(pushgateway) and time.monotonic() < deadline:
            time.sleep(0.05)

        assert _pushed_requests(pushgateway) == 1.0


def test_instrumented_app_pushes_once_more_on_shutdown(pushgateway: ServerProcess) -> None:
    with serve_asgi(pushing_app(pushgateway, interval=3600), lifespan="on") as server:
        for _ in range(5):
            httpx.get(server.url + "/work")
        assert _pushed_requests(pushgateway) == 0

    assert _pushed_requests(pushgateway) == 5.0


def _pushed_requests(gateway: ServerProcess) -> float:
    return sum(
        value
        for name, labels, value in gateway_samples(gateway)
        if name == "ccproxy_requests_total" and labels.get("endpoint") == "/work"
    )
