"""The real-binary harness itself: each starter gives a working server on loopback,
and the process code it shares with ``ccobs stack`` stops what it should and only that."""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from realservers import (
    LOOPBACK,
    ServerProcess,
    ServerStartError,
    force_flush,
    free_port,
    http_get_json,
    promtool_check_metrics,
    require_binary,
    start_alertmanager,
    start_prometheus,
    start_vmalert,
    wait_for,
)

from ccobs.stack.processes import pid_alive, process_start_ticks, start_server, stop_pid

ALERTMANAGER_CONFIG = """\
route:
  receiver: blackhole
receivers:
  - name: blackhole
"""


def _post(url: str, body: bytes, method: str = "POST") -> int:
    request = urllib.request.Request(url, data=body, method=method)
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(response.status)


def _query(base_url: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    body = http_get_json(url)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_free_port_is_bindable_on_loopback() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind((LOOPBACK, port))


def test_require_binary_returns_path_of_installed_binary() -> None:
    assert Path(require_binary("promtool")).name == "promtool"


def test_require_binary_fails_with_install_instructions_when_missing() -> None:
    with pytest.raises(pytest.fail.Exception) as failure:
        require_binary("ccobs-no-such-binary")
    message = str(failure.value)
    assert "ccobs-no-such-binary" in message
    assert "make test" in message
    assert "scripts/install-debian-deps.sh" in message


def test_require_binary_names_the_debian_package_of_a_missing_binary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # vmalert ships in the victoria-metrics package: the message must say so.
    monkeypatch.setattr("ccobs.stack.processes.shutil.which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="'victoria-metrics'"):
        require_binary("vmalert")


def test_promtool_check_metrics_passes_clean_exposition() -> None:
    code, output = promtool_check_metrics(
        "# HELP demo_requests_total Requests served.\n"
        "# TYPE demo_requests_total counter\n"
        "demo_requests_total 1\n"
    )
    assert code == 0, output


def test_promtool_check_metrics_flags_counter_without_total_suffix() -> None:
    code, output = promtool_check_metrics(
        "# HELP demo_requests Requests served.\n# TYPE demo_requests counter\ndemo_requests 1\n"
    )
    assert code != 0
    assert "_total" in output


@pytest.mark.integration
def test_server_that_exits_fails_fast_with_its_log_tail(tmp_path: Path) -> None:
    server = ServerProcess(
        require_binary("prometheus"),
        ["--config.file=/nonexistent/prometheus.yml", f"--storage.tsdb.path={tmp_path}"],
        workdir=tmp_path,
        port=free_port(),
        ready_path="/-/ready",
        timeout=20,
    )
    with pytest.raises(ServerStartError, match=r"exited with code") as failure:
        server.start()
    assert "nonexistent" in str(failure.value)  # the log tail names the bad file
    assert server.pid is None  # stopped, nothing left running


@pytest.mark.integration
def test_stop_terminates_the_process_and_closes_its_port(pushgateway: ServerProcess) -> None:
    pushgateway.stop()
    pushgateway.stop()  # idempotent
    assert pushgateway.pid is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK, pushgateway.port), timeout=1).close()


@pytest.mark.integration
def test_pushgateway_accepts_a_push_and_exposes_it(pushgateway: ServerProcess) -> None:
    status = _post(
        f"{pushgateway.url}/metrics/job/smoke",
        b"# TYPE smoke_pushes_total counter\nsmoke_pushes_total 3\n",
        method="PUT",
    )
    assert status == 200
    with urllib.request.urlopen(f"{pushgateway.url}/metrics", timeout=5) as response:
        assert 'smoke_pushes_total{instance="",job="smoke"} 3' in response.read().decode()


@pytest.mark.integration
def test_victoria_metrics_returns_an_imported_sample_at_once(
    victoria_metrics: ServerProcess,
) -> None:
    status = _post(f"{victoria_metrics.url}/api/v1/import/prometheus", b"smoke_value 42\n")
    assert status == 204

    # No 30 s latency offset: the sample is queryable once flushed.
    def flushed_query() -> list[dict[str, Any]]:
        force_flush(victoria_metrics)
        return _query(victoria_metrics.url, "smoke_value")

    result = wait_for(flushed_query, timeout=10)
    assert result[0]["value"][1] == "42"


@pytest.mark.integration
def test_prometheus_scrapes_itself_and_answers_up(tmp_path: Path) -> None:
    def config(port: int) -> str:
        return (
            "global:\n"
            "  scrape_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: prometheus\n"
            "    static_configs:\n"
            f"      - targets: ['{LOOPBACK}:{port}']\n"
        )

    with start_prometheus(tmp_path, config) as prometheus:
        result = wait_for(lambda: _query(prometheus.url, 'up{job="prometheus"}'), timeout=15)
    assert result[0]["value"][1] == "1"


@pytest.mark.integration
def test_alertmanager_starts_with_clustering_disabled(tmp_path: Path) -> None:
    with start_alertmanager(tmp_path, ALERTMANAGER_CONFIG) as alertmanager:
        status = http_get_json(f"{alertmanager.url}/api/v2/status")
    assert status["cluster"]["status"] == "disabled"


@pytest.mark.integration
def test_vmalert_evaluates_rules_and_notifies_alertmanager(
    tmp_path: Path, victoria_metrics: ServerProcess
) -> None:
    rules = (
        "groups:\n"
        "  - name: smoke\n"
        "    rules:\n"
        "      - alert: SmokeAlwaysFiring\n"
        "        expr: vector(1)\n"
        "        labels:\n"
        "          severity: info\n"
    )
    with (
        start_alertmanager(tmp_path, ALERTMANAGER_CONFIG) as alertmanager,
        start_vmalert(tmp_path, rules, victoria_metrics.url, alertmanager.url),
    ):
        received = wait_for(lambda: http_get_json(f"{alertmanager.url}/api/v2/alerts"), timeout=15)
    assert received[0]["labels"]["alertname"] == "SmokeAlwaysFiring"


# --- the shared process code (ccobs.stack.processes) ---------------------------


def test_pid_alive_counts_a_zombie_as_gone() -> None:
    # An exited child nobody has waited for yet is a zombie: `kill -0` still
    # succeeds, but it serves nothing; `ccobs stack down` must see it as gone.
    child = subprocess.Popen(["true"])
    try:
        wait_for(lambda: not pid_alive(child.pid), timeout=5)
    finally:
        child.wait()


def test_stop_pid_leaves_a_reused_pid_alone() -> None:
    # A state file from before a reboot may name a pid another process has now.
    other = subprocess.Popen(["sleep", "30"])
    try:
        ticks = process_start_ticks(other.pid)
        assert ticks is not None
        assert stop_pid(other.pid, start_ticks=ticks + 1, timeout=1)  # "ours" is gone...
        assert other.poll() is None  # ...and the unrelated process was not signalled
        assert pid_alive(other.pid, ticks)
    finally:
        other.kill()
        other.wait()


@pytest.mark.integration
def test_detached_server_has_its_own_session_and_stops_by_pid(tmp_path: Path) -> None:
    server = start_server(
        require_binary("prometheus-pushgateway"),
        lambda _workdir, port: [f"--web.listen-address={LOOPBACK}:{port}", "--persistence.file="],
        workdir=tmp_path,
        ready_path="/-/ready",
        name="pushgateway",
        detach=True,
    )
    pid, ticks = server.pid, server.start_ticks
    assert pid is not None
    try:
        assert os.getsid(pid) == pid != os.getsid(0)
        assert stop_pid(pid, ticks)  # by pid alone, as `ccobs stack down` does
        assert not pid_alive(pid, ticks)
    finally:
        server.stop()


@pytest.mark.integration
def test_fixed_port_that_is_taken_fails_at_once_with_the_servers_complaint(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServerStartError, match="address already in use"):
            start_server(
                require_binary("prometheus-pushgateway"),
                lambda _workdir, chosen: [f"--web.listen-address={LOOPBACK}:{chosen}"],
                workdir=tmp_path,
                ready_path="/-/ready",
                name="pushgateway",
                port=port,
            )
