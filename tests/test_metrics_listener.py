"""``/metrics`` on a port of its own (``ccobs proxy --metrics-port``), served by a thread.

The listener exists so that a scrape is answered while the proxy's event loop
is saturated; it must serve exactly what the main port serves, to whom the
main port serves it, and nothing else.
"""

from __future__ import annotations

import http.client
import select
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccobs.metrics import PrometheusMetrics
from ccobs.metrics_endpoint import render_metrics
from ccobs.metrics_listener import MetricsListener
from ccobs.stack.processes import LOOPBACK, ServerProcess, free_port, start_server

TOKEN = "scrape-token-123"


def _get(port: int, path: str = "/metrics", headers: dict[str, str] | None = None) -> tuple[
    int, dict[str, str], bytes
]:  # fmt: skip
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.fixture
def listener(metrics: PrometheusMetrics) -> Iterator[MetricsListener]:
    served = MetricsListener(LOOPBACK, 0, metrics)
    try:
        yield served
    finally:
        served.close()


def test_the_listener_serves_the_same_exposition_as_the_endpoint(
    metrics: PrometheusMetrics, listener: MetricsListener
) -> None:
    metrics.record_request("POST", "/v1/messages", "claude-sonnet-4-6", 200)
    status, headers, body = _get(listener.port)
    expected, content_type = render_metrics(metrics, None)
    assert status == 200
    assert headers["Content-Type"] == content_type
    assert body == expected


def test_the_listener_serves_openmetrics_to_a_scraper_that_asks_for_it(
    metrics: PrometheusMetrics, listener: MetricsListener
) -> None:
    accept = "application/openmetrics-text; version=1.0.0"
    _, headers, body = _get(listener.port, headers={"Accept": accept})
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_the_listener_serves_nothing_but_metrics(listener: MetricsListener) -> None:
    assert _get(listener.port, "/v1/messages")[0] == 404
    assert _get(listener.port, "/")[0] == 404


def test_the_listener_refuses_a_scrape_without_the_token(metrics: PrometheusMetrics) -> None:
    served = MetricsListener(LOOPBACK, 0, metrics, token=TOKEN)
    try:
        status, headers, body = _get(served.port)
        wrong = _get(served.port, headers={"Authorization": "Bearer nope"})[0]
        right = _get(served.port, headers={"Authorization": f"Bearer {TOKEN}"})[0]
    finally:
        served.close()
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert TOKEN.encode() not in body
    assert wrong == 401
    assert right == 200


def test_an_empty_token_is_refused(metrics: PrometheusMetrics) -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        MetricsListener(LOOPBACK, 0, metrics, token="")


def test_a_scrape_is_answered_while_another_thread_keeps_the_interpreter_busy(
    metrics: PrometheusMetrics, listener: MetricsListener
) -> None:
    """What a saturated event loop does to the process: Python code running without pause."""
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(range(1000))

    spinning = threading.Thread(target=busy, daemon=True)
    spinning.start()
    try:
        time.sleep(0.1)
        started = time.monotonic()
        status = _get(listener.port)[0]
        seconds = time.monotonic() - started
    finally:
        stop.set()
        spinning.join()
    assert status == 200
    assert seconds < 1.0  # a few switch intervals (5 ms each), not the busy thread's time


def test_a_client_trickling_its_request_is_cut_at_the_deadline_and_scrapes_go_on(
    metrics: PrometheusMetrics,
) -> None:
    served = MetricsListener(LOOPBACK, 0, metrics, connection_timeout=1.0)
    try:
        with socket.create_connection((LOOPBACK, served.port), timeout=10) as trickler:
            started = time.monotonic()
            answer = None
            for byte in b"GET /metrics HTTP/1.0\r\n" * 10:  # a byte every 0.1 s, never silent
                if select.select([trickler], [], [], 0.1)[0]:
                    answer = trickler.recv(1024)
                    break
                trickler.sendall(bytes([byte]))
            held = time.monotonic() - started

        assert answer == b"", f"not cut within {held:.1f} s: {answer!r}"
        assert held < 3.0
        assert _get(served.port)[0] == 200
    finally:
        served.close()


def test_close_frees_the_port(metrics: PrometheusMetrics) -> None:
    served = MetricsListener(LOOPBACK, 0, metrics)
    port = served.port
    served.close()
    with pytest.raises(ConnectionRefusedError):
        _get(port)


@pytest.mark.parametrize("workers", [1, 2])
def test_ccobs_proxy_serves_metrics_on_its_metrics_port(tmp_path: Path, workers: int) -> None:
    """Every worker binds the port; in multiprocess mode each one renders every worker's counts."""
    metrics_port = free_port()
    ccobs = str(Path(sys.executable).with_name("ccobs"))
    proxy: ServerProcess = start_server(
        ccobs,
        lambda _dir, port: [
            "proxy", "--host", LOOPBACK, "--port", str(port), "--upstream", "http://127.0.0.1:9",
            "--workers", str(workers), "--metrics-port", str(metrics_port),
        ],
        workdir=tmp_path,
        ready_path="/health",
        name=f"proxy-metrics-port-w{workers}",
        timeout=60,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30  # every worker up: each has bound the port by then
        while proxy.output_since_start().count("Application startup complete") < workers:
            assert "Traceback" not in proxy.output_since_start(), proxy.output_since_start()
            assert time.monotonic() < deadline, proxy.output_since_start()
            time.sleep(0.1)
        for _ in range(4):  # the upstream refuses: each a 502 the proxy counts
            request = urllib.request.Request(
                f"{proxy.url}/v1/models", headers={"x-api-key": "sk-test-not-a-key"}
            )
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(request, timeout=10)
        main = _requests_total(_get(proxy.port)[2])
        listened = [_requests_total(_get(metrics_port)[2]) for _ in range(4)]
        output = proxy.output_since_start()
    finally:
        proxy.stop()
    assert main >= 4
    assert listened == [main] * 4
    assert "Traceback" not in output, output  # no worker failed to bind the shared port


def _requests_total(exposition: bytes) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.decode().splitlines()
        if line.startswith("ccproxy_requests_total{")
    )


def test_ccobs_proxy_refuses_a_metrics_port_equal_to_its_port(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ccobs.cli import main

    port = free_port()
    assert main(["proxy", "--port", str(port), "--metrics-port", str(port)]) == 2
    assert "--metrics-port must differ from --port" in capsys.readouterr().err
