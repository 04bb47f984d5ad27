"""Start the real Debian monitoring binaries on loopback for integration tests.

Mocks of Prometheus or Pushgateway prove nothing about the configuration and
exposition ccobs ships, so integration tests run the packaged binaries as
plain processes: each in its own temp dir, bound to 127.0.0.1 on a port the OS
hands out, logging to a file whose tail goes into any failure message, and
stopped on teardown even when the test fails.

The process handling itself (spawn, readiness, logs, stop) is
``ccobs.stack.processes``, shared with ``ccobs stack up``; this module adds
what only tests want: each binary's test flags, pytest failures with the
install hint, and polling helpers.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ccobs.stack.processes import (
    DEBIAN_PACKAGE_OF,
    LOOPBACK,
    START_TIMEOUT,
    STOP_TIMEOUT,
    MissingBinaryError,
    ServerProcess,
    ServerStartError,
    find_binary,
    free_port,
    start_server,
)

__all__ = [
    "DEBIAN_PACKAGE_OF",
    "LOOPBACK",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "ServerProcess",
    "ServerStartError",
    "force_flush",
    "free_port",
    "http_get_json",
    "promtool_check_metrics",
    "require_binary",
    "start_alertmanager",
    "start_prometheus",
    "start_pushgateway",
    "start_victoria_metrics",
    "start_vmalert",
    "wait_for",
]

T = TypeVar("T")


def require_binary(name: str) -> str:
    """Path of binary ``name``; fail the test, with the fix, when it is missing.

    Failing rather than skipping is deliberate: a skipped integration suite
    looks green in CI while proving nothing.
    """
    try:
        return find_binary(name)
    except MissingBinaryError as missing:
        pytest.fail(
            f"{missing} Run `make test`, or `scripts/install-debian-deps.sh`, which "
            f"installs the missing packages.",
            pytrace=False,
        )


def _workdir(tmp_path: Path, name: str) -> Path:
    # A fresh directory per server, so two of a kind in one test never share
    # storage, and the logs of every server stay in the test's tmp_path.
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tmp_path))


def _start(
    binary_name: str,
    tmp_path: Path,
    make_args: Callable[[Path, int], list[str]],
    ready_path: str,
    *,
    attempts: int = 3,
    timeout: float = START_TIMEOUT,
) -> ServerProcess:
    """Start ``binary_name`` with ``make_args(workdir, port)`` on a free port.

    The server dies with the test run (not detached); a fresh workdir per
    attempt keeps a half-started server's files out of the next attempt.
    """
    return start_server(
        require_binary(binary_name),
        make_args,
        workdir=lambda: _workdir(tmp_path, binary_name),
        ready_path=ready_path,
        name=binary_name,
        attempts=attempts,
        timeout=timeout,
    )


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def start_pushgateway(tmp_path: Path, *extra_args: str) -> ServerProcess:
    """Pushgateway with no persistence (every test starts empty) and the admin
    API on, so a shared instance can be wiped with ``PUT /api/v1/admin/wipe``."""
    return _start(
        "prometheus-pushgateway",
        tmp_path,
        lambda _workdir, port: [
            f"--web.listen-address={LOOPBACK}:{port}",
            # Debian's default persists to /var/lib/prometheus: shared state
            # between runs, and not writable by a test user.
            "--persistence.file=",
            "--web.enable-admin-api",
            *extra_args,
        ],
        "/-/ready",
    )


def start_victoria_metrics(tmp_path: Path, *extra_args: str) -> ServerProcess:
    """Single-node VictoriaMetrics whose queries see samples immediately.

    ``-search.latencyOffset=0s``: by default samples newer than 30 s are
    hidden from queries, which would make every test wait half a minute.
    """
    return _start(
        "victoria-metrics",
        tmp_path,
        lambda workdir, port: [
            f"-httpListenAddr={LOOPBACK}:{port}",
            f"-storageDataPath={workdir / 'data'}",
            "-search.latencyOffset=0s",
            "-retentionPeriod=1d",
            *extra_args,
        ],
        "/health",
    )


PrometheusConfig = str | Callable[[int], str]
"""Prometheus YAML, or a function of Prometheus' own port returning it (for
configs that scrape Prometheus itself, before the port is known)."""


def start_prometheus(
    tmp_path: Path, config_yaml: PrometheusConfig, *extra_args: str
) -> ServerProcess:
    """Prometheus with ``config_yaml``, lifecycle API on (``POST /-/reload``)
    and remote-write receiver on, so tests can push into it directly."""

    def args(workdir: Path, port: int) -> list[str]:
        text = config_yaml(port) if callable(config_yaml) else config_yaml
        config = _write(workdir / "prometheus.yml", text)
        return [
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--web.enable-lifecycle",
            "--web.enable-remote-write-receiver",
            *extra_args,
        ]

    return _start("prometheus", tmp_path, args, "/-/ready")


def start_alertmanager(tmp_path: Path, config_yaml: str, *extra_args: str) -> ServerProcess:
    """Alertmanager with ``config_yaml`` and clustering off.

    ``--cluster.listen-address=`` (empty) disables gossip; by default it
    binds 0.0.0.0:9094, which is neither loopback nor reliably free.
    """

    def args(workdir: Path, port: int) -> list[str]:
        config = _write(workdir / "alertmanager.yml", config_yaml)
        return [
            f"--config.file={config}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--cluster.listen-address=",
            *extra_args,
        ]

    return _start("prometheus-alertmanager", tmp_path, args, "/-/ready")


def start_vmalert(
    tmp_path: Path,
    rules_yaml: str,
    datasource_url: str,
    notifier_url: str,
    *extra_args: str,
    evaluation_interval: str = "1s",
) -> ServerProcess:
    """vmalert evaluating ``rules_yaml`` against ``datasource_url`` (Prometheus
    or VictoriaMetrics) and sending alerts to ``notifier_url`` (Alertmanager).

    A short ``evaluation_interval`` keeps tests fast; rule ``for:`` clauses
    still count in real time.
    """

    def args(workdir: Path, port: int) -> list[str]:
        rules = _write(workdir / "rules.yml", rules_yaml)
        return [
            f"-rule={rules}",
            f"-datasource.url={datasource_url}",
            f"-notifier.url={notifier_url}",
            f"-httpListenAddr={LOOPBACK}:{port}",
            f"-evaluationInterval={evaluation_interval}",
            *extra_args,
        ]

    return _start("vmalert", tmp_path, args, "/health")


def force_flush(victoria_metrics: ServerProcess) -> None:
    """Make samples VictoriaMetrics has ingested searchable now.

    Measured with 1.79: an imported sample turns up in queries after ~10 s
    on its own, after ~1 s when queries are preceded by this call. Call it
    before every query in a :func:`wait_for` loop.
    """
    with urllib.request.urlopen(f"{victoria_metrics.url}/internal/force_flush", timeout=5):
        pass


def promtool_check_metrics(text: str) -> tuple[int, str]:
    """Run ``promtool check metrics`` on an exposition; (exit code, output).

    promtool is the reference linter for the naming rules ccobs promises
    (``_total`` counters, base units), so tests ask it rather than re-encode
    its rules.
    """
    result = subprocess.run(
        [require_binary("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "LC_ALL": "C"},
    )
    return result.returncode, result.stdout + result.stderr


def wait_for(
    condition: Callable[[], T | None], *, timeout: float = 15.0, interval: float = 0.1
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that.

    Scrapes, evaluations and notifications happen on the servers' clocks;
    polling with a deadline is faster and steadier than a fixed sleep.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)


def http_get_json(url: str, timeout: float = 5.0) -> Any:
    """GET ``url`` and decode JSON; for small API queries in tests."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())
