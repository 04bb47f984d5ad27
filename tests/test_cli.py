"""The ``ccobs`` command line, run as real processes on loopback."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from realservers import free_port

from ccobs.access_log import LogFilter, open_reader

COMMANDS = ("settings", "upstream", "proxy", "loadgen", "demo", "mixin")


def ccobs(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccobs.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


class Background:
    """A ccobs command running in the background, stopped with SIGINT, killed if it lingers."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ccobs.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    def wait_ready(self, url: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"exited early:\n{self.output()}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{url} not ready:\n{self.output()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        return self.process.returncode

    def output(self) -> str:
        self.stop()
        assert self.process.stdout is not None
        return self.process.stdout.read()


@pytest.fixture
def background() -> Iterator[list[Background]]:
    started: list[Background] = []
    yield started
    for process in started:
        process.stop()


def test_help_lists_every_command() -> None:
    result = ccobs("--help")

    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_documents_itself(command: str) -> None:
    result = ccobs(command, "--help")

    assert result.returncode == 0
    assert "usage: ccobs " + command in result.stdout


def test_settings_prints_the_effective_values() -> None:
    result = ccobs("settings", env={"CCOBS_NAMESPACE": "edge"})

    assert result.returncode == 0
    assert "namespace: edge" in result.stdout


def test_invalid_setting_exits_2_naming_field_and_value() -> None:
    result = ccobs("settings", env={"CCOBS_MODEL_LABEL_CAP": "lots"})

    assert result.returncode == 2
    assert "model_label_cap='lots'" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("loadgen", "--target", "http://127.0.0.1:9", "--rate", "-1", "--requests", "1"),
        ("loadgen", "--target", "http://127.0.0.1:9", "--rate", "1", "--concurrency", "2"),
        ("loadgen", "--target", "http://127.0.0.1:9", "--rate", "1", "--max-retries", "11"),
        ("demo", "--error-rate", "1.5"),
        ("proxy", "--upstream", "ftp://example"),
        ("upstream", "--port", "70000"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args: tuple[str, ...]) -> None:
    result = ccobs(*args)

    assert result.returncode == 2
    assert result.stderr.strip()


def test_demo_runs_for_a_duration_and_summarises(tmp_path: Path) -> None:
    log_file = tmp_path / "demo.log"
    result = ccobs(
        "demo", "--duration", "3", "--port", "0", "--seed", "3", "--log-file", str(log_file),
        timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "requests" in result.stdout
    assert "latency   p50" in result.stdout
    assert "claude-sonnet-4-6" in result.stdout
    assert log_file.read_text().count('"request_success"') > 0


def test_proxy_with_two_workers_counts_exactly_what_loadgen_sent(
    background: list[Background], tmp_path: Path
) -> None:
    upstream_port, proxy_port = free_port(), free_port()
    upstream = Background(
        "upstream", "--port", str(upstream_port), "--seed", "5", "--latency", "0.02",
        "--ttft", "0.02",
    )  # fmt: skip
    background.append(upstream)
    upstream.wait_ready(f"http://127.0.0.1:{upstream_port}/health")
    proxy = Background(
        "proxy",
        "--port",
        str(proxy_port),
        "--workers",
        "2",
        "--upstream",
        f"http://127.0.0.1:{upstream_port}",
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "CCOBS_LOG_LEVEL": "WARNING"},
    )
    background.append(proxy)
    target = f"http://127.0.0.1:{proxy_port}"
    proxy.wait_ready(target + "/health")

    result = ccobs(
        "loadgen", "--target", target, "--requests", "30", "--concurrency", "4",
        "--seed", "9", "--stream-share", "0.5",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "requests             30" in result.stdout
    text = httpx.get(target + "/metrics").text
    served = sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ccproxy_requests_total"
    )
    assert served == 30
    assert proxy.stop() == 0


def test_ctrl_c_lets_the_demos_requests_in_flight_finish(
    background: list[Background], tmp_path: Path
) -> None:
    # Seed 7: none of the first 60 requests fails or takes over 5.4 s, so every request
    # in flight at Ctrl-C can finish within the demo's drain.
    port, log_file = free_port(), tmp_path / "demo.log"
    demo = Background("demo", "--port", str(port), "--seed", "7", "--log-file", str(log_file))
    background.append(demo)
    demo.wait_ready(f"http://127.0.0.1:{port}/health")
    time.sleep(3)

    code = demo.stop()
    output = demo.output()

    assert code == 0, output
    assert "stopped." in output
    assert "successes" in output  # the load generator's summary of what it sent
    log = log_file.read_text()
    assert log.count('"request_success"') > 5
    assert "client_disconnect" not in log


def test_demo_keeps_an_access_log_beside_its_log_file_by_default(tmp_path: Path) -> None:
    result = ccobs(
        "demo", "--duration", "2", "--port", "0", "--seed", "7",
        "--log-file", str(tmp_path / "demo.log"),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    sent = re.search(r"^requests +(\d+)$", result.stdout, re.M)
    assert sent is not None, result.stdout
    records = open_reader(tmp_path / "demo.db").query(LogFilter(limit=10_000))
    assert len(records) == int(sent.group(1)) > 3  # every request the load generator sent


def test_demo_log_holds_the_proxys_lines_not_the_load_generators_client(
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "demo.log"
    result = ccobs(
        "demo", "--duration", "2", "--port", "0", "--seed", "7", "--log-file", str(log_file),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    lines = log_file.read_text().splitlines()
    assert sum('"request_success"' in line for line in lines) > 3
    assert not [line for line in lines if "HTTP Request:" in line]


@pytest.mark.parametrize(
    "command",
    [
        ["demo", "--duration", "1"],
        ["proxy", "--upstream", "http://127.0.0.1:9"],
        ["upstream"],
    ],
    ids=["demo", "proxy", "upstream"],
)
def test_a_taken_port_is_a_clear_error_with_a_way_out(command: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = ccobs(*command, "--port", str(port), timeout=30)

    assert result.returncode == 2, result.stdout + result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_stops_cleanly_on_ctrl_c(background: list[Background], tmp_path: Path) -> None:
    port = free_port()
    demo = Background(
        "demo", "--port", str(port), "--seed", "4", "--log-file", str(tmp_path / "demo.log")
    )
    background.append(demo)
    demo.wait_ready(f"http://127.0.0.1:{port}/health")
    time.sleep(2)

    started = time.monotonic()
    code = demo.stop()
    output = demo.output()

    assert code == 0, output
    assert time.monotonic() - started < 12
    assert "stopped." in output
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)


def test_loadgen_sends_responses_traffic_through_the_proxy(
    background: list[Background],
) -> None:
    upstream_port, proxy_port = free_port(), free_port()
    upstream = Background("upstream", "--port", str(upstream_port), "--error-rate", "0",
                          "--latency", "0.02", "--ttft", "0.01")  # fmt: skip
    background.append(upstream)
    upstream.wait_ready(f"http://127.0.0.1:{upstream_port}/health")
    proxy = Background("proxy", "--port", str(proxy_port),
                       "--upstream", f"http://127.0.0.1:{upstream_port}")  # fmt: skip
    background.append(proxy)
    proxy.wait_ready(f"http://127.0.0.1:{proxy_port}/health")

    result = ccobs(
        "loadgen", "--target", f"http://127.0.0.1:{proxy_port}", "--requests", "6",
        "--concurrency", "2", "--responses-share", "1", "--openai-models", "gpt-4.1-mini=1",
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    exposition = httpx.get(f"http://127.0.0.1:{proxy_port}/metrics").text
    responses = [
        sample
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "ccproxy_requests_total" and sample.labels["endpoint"] == "/v1/responses"
    ]
    assert sum(sample.value for sample in responses) == 6
