"""PushgatewayClient against broken targets on loopback: it returns False, fast, and never raises.

The targets here are real sockets: a closed port, a listener that never
answers, and an HTTP server that answers 500. The happy paths against the real
Pushgateway and VictoriaMetrics are in test_push_integration.py.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, Counter, push_to_gateway

from ccobs.circuit_breaker import BreakerState
from ccobs.metrics import PrometheusMetrics
from ccobs.pushgateway import (
    PushgatewayClient,
    get_pushgateway_client,
    pushgateway_url,
    reset_pushgateway_client,
    victoriametrics_base_url,
)
from ccobs.settings import ObservabilitySettings


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("pushed_things", "Something to push.", registry=registry).inc()
    return registry


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback listener that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


class _Answer500(BaseHTTPRequestHandler):
    def _fail(self) -> None:
        self.send_response(500)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"oops\n")

    do_PUT = do_POST = do_DELETE = _fail

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def failing_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer500)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def client_for(port: int, **overrides: object) -> PushgatewayClient:
    values: dict[str, object] = {
        "pushgateway_url": f"http://127.0.0.1:{port}",
        "pushgateway_timeout_seconds": 0.5,
        "pushgateway_failure_threshold": 2,
        "pushgateway_reset_seconds": 60,
        **overrides,
    }
    return PushgatewayClient(ObservabilitySettings(**values))  # type: ignore[arg-type]


def test_disabled_without_a_url(registry: CollectorRegistry) -> None:
    client = PushgatewayClient(ObservabilitySettings())

    assert client.is_enabled() is False
    assert client.push_metrics(registry) is False


def test_grouping_key_is_the_instance(closed_port: int) -> None:
    client = client_for(closed_port, pushgateway_instance="replica-7")

    assert client.grouping_key == {"instance": "replica-7"}


def test_instance_defaults_to_the_host_name() -> None:
    assert ObservabilitySettings().pushgateway_instance == socket.gethostname()


def test_unknown_method_is_a_programming_error(
    closed_port: int, registry: CollectorRegistry
) -> None:
    with pytest.raises(ValueError, match="unknown push method 'replace'"):
        client_for(closed_port).push_metrics(registry, method="replace")


@pytest.mark.parametrize("protocol", ["pushgateway", "victoriametrics"])
def test_refused_connection_returns_false(
    closed_port: int, registry: CollectorRegistry, protocol: str
) -> None:
    client = client_for(closed_port, pushgateway_protocol=protocol)

    assert client.push_metrics(registry) is False
    assert client.push_add_metrics(registry) is False
    assert client.delete_metrics() is False


@pytest.mark.parametrize("protocol", ["pushgateway", "victoriametrics"])
def test_a_target_that_never_answers_costs_at_most_the_timeout(
    silent_port: int, registry: CollectorRegistry, protocol: str
) -> None:
    client = client_for(silent_port, pushgateway_protocol=protocol, pushgateway_timeout_seconds=0.3)
    started = time.monotonic()

    assert client.push_metrics(registry) is False
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("protocol", ["pushgateway", "victoriametrics"])
def test_a_500_answer_returns_false(
    failing_server: int, registry: CollectorRegistry, protocol: str
) -> None:
    assert client_for(failing_server, pushgateway_protocol=protocol).push_metrics(registry) is False


def test_breaker_opens_and_then_skips_without_touching_the_network(
    silent_port: int, registry: CollectorRegistry
) -> None:
    client = client_for(silent_port, pushgateway_timeout_seconds=0.3)
    client.push_metrics(registry)
    client.push_metrics(registry)
    assert client.breaker.state is BreakerState.OPEN

    started = time.monotonic()
    for _ in range(100):
        assert client.push_metrics(registry) is False
    assert time.monotonic() - started < 0.1


def test_failures_are_logged_without_credentials(
    closed_port: int, registry: CollectorRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    client = client_for(closed_port, pushgateway_url=f"http://user:hunter2@127.0.0.1:{closed_port}")
    client.push_metrics(registry)

    output = capsys.readouterr().out
    assert "push_failed" in output
    assert "hunter2" not in output


def test_metrics_count_failed_pushes(closed_port: int) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry, pushgateway_client=client_for(closed_port))

    assert metrics.is_pushgateway_enabled()
    assert metrics.push_to_gateway() is False
    assert (
        registry.get_sample_value(
            "ccproxy_pushes_total", {"protocol": "pushgateway", "outcome": "failure"}
        )
        == 1
    )


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://vm:8428", "http://vm:8428"),
        ("http://vm:8428/api/v1/write", "http://vm:8428"),
        ("http://vm:8428/api/v1/import/prometheus", "http://vm:8428"),
    ],
)
def test_victoriametrics_urls_reduce_to_the_server_root(url: str, base: str) -> None:
    assert victoriametrics_base_url(url) == base


def test_get_pushgateway_client_is_process_wide_until_reset() -> None:
    reset_pushgateway_client()
    try:
        first = get_pushgateway_client(ObservabilitySettings())
        assert get_pushgateway_client() is first
        reset_pushgateway_client()
        assert get_pushgateway_client(ObservabilitySettings()) is not first
    finally:
        reset_pushgateway_client()


def _prometheus_client_url(gateway: str, job: str, instance: str) -> str:
    """The URL prometheus_client's own push function would use."""
    seen: list[str] = []

    def handler(url: str, **_: object) -> object:
        seen.append(url)
        return lambda: None

    push_to_gateway(gateway, job, CollectorRegistry(), {"instance": instance}, handler=handler)
    return seen[0]


@pytest.mark.parametrize(
    ("gateway", "job", "instance"),
    [
        ("http://127.0.0.1:9091", "ccproxy", "host-1"),
        ("127.0.0.1:9091", "job with space", "ü-host"),
        ("http://127.0.0.1:9091/", "a/b", ""),
        ("http://127.0.0.1:9091", "ccproxy", "pod/7?x=&y"),
    ],
)
def test_pushgateway_url_encodes_the_grouping_key_as_prometheus_client_does(
    gateway: str, job: str, instance: str
) -> None:
    expected = _prometheus_client_url(gateway, job, instance)
    assert pushgateway_url(gateway, job, {"instance": instance}) == expected
