"""Start the real Debian monitoring binaries on loopback for integration tests.

Mocks of Prometheus or Pushgateway prove nothing about the configuration and
exposition ccobs ships, so integration tests run the packaged binaries as
plain processes: each in its own temp dir, bound to 127.0.0.1 on a port the OS
hands out, logging to a file whose tail goes into any failure message, and
stopped on teardown even when the test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, TypeVar

import pytest

T = TypeVar("T")

LOOPBACK: Final = "127.0.0.1"
START_TIMEOUT: Final = 30.0
STOP_TIMEOUT: Final = 10.0

DEBIAN_PACKAGE_OF: Final[dict[str, str]] = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-pushgateway": "prometheus-pushgateway",
    "victoria-metrics": "victoria-metrics",
    "vmalert": "victoria-metrics",
    "vmagent": "victoria-metrics",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
}
"""Binary -> Debian package, as in ``scripts/install-debian-deps.sh``."""


class ServerStartError(RuntimeError):
    """A server exited or never became ready; the message carries its log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    The OS picks it (bind to port 0), so parallel runs don't collide on a
    fixed port; the small window before the server binds it is covered by the
    starters retrying on "address already in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def require_binary(name: str) -> str:
    """Path of binary ``name``; fail the test, with the fix, when it is missing.

    Failing rather than skipping is deliberate: a skipped integration suite
    looks green in CI while proving nothing.
    """
    path = shutil.which(name)
    if path is None:
        package = DEBIAN_PACKAGE_OF.get(name, name)
        pytest.fail(
            f"binary {name!r} not found on PATH; it comes from the Debian package "
            f"{package!r}. Run `make test`, or `scripts/install-debian-deps.sh`, which "
            f"installs the missing packages (apt-get install {package}).",
            pytrace=False,
        )
    return path


def _die_with_parent() -> None:
    """Have the kernel SIGTERM the server if the test run itself is killed.

    Teardown covers failures and Ctrl-C; this covers ``kill -9`` of pytest,
    which would otherwise leave servers holding ports until reboot.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


class ServerProcess:
    """One server binary running in a temp dir, ready when its URL answers 200.

    Usable as a context manager; :meth:`stop` is idempotent.
    """

    def __init__(
        self,
        binary: str,
        args: Sequence[str],
        *,
        workdir: Path,
        port: int,
        ready_path: str,
        name: str | None = None,
        timeout: float = START_TIMEOUT,
    ) -> None:
        self.binary = binary
        self.args = list(args)
        self.workdir = workdir
        self.port = port
        self.name = name or Path(binary).name
        self.url = f"http://{LOOPBACK}:{port}"
        self.ready_url = self.url + ready_path
        self.timeout = timeout
        self.log_path = workdir / f"{self.name}.log"
        self.start_seconds: float | None = None
        """Wall time from spawn to the first 200 on the readiness URL."""
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> ServerProcess:
        """Spawn the binary and block until ready; on failure stop it and raise."""
        self._log = self.log_path.open("ab")
        started = time.monotonic()
        self._process = subprocess.Popen(
            [self.binary, *self.args],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # preexec_fn is unsafe only with threads spawning processes
            # concurrently; the tests start servers from one thread.
            preexec_fn=_die_with_parent,
        )
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def _wait_ready(self, started: float) -> None:
        assert self._process is not None
        deadline = started + self.timeout
        last_error = "no attempt yet"
        while True:
            code = self._process.poll()
            if code is not None:
                raise ServerStartError(
                    f"{self.name} exited with code {code} before becoming ready "
                    f"({self.ready_url}).\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1.0) as response:
                    if response.status == 200:
                        return
                    last_error = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:  # 503 while starting up
                last_error = f"HTTP {exc.code}"
            except (OSError, urllib.error.URLError) as exc:
                last_error = str(exc)
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"{self.name} not ready at {self.ready_url} after {self.timeout:.0f}s "
                    f"(last: {last_error}).\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the server's output, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- last {lines} lines of {self.log_path} ---\n{tail}"

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL. Safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ServerProcess:
        return self if self._process is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ServerProcess {self.name} {self.url} pid={self.pid}>"


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
    """Start ``binary_name`` with ``make_args(workdir, port)`` until it binds.

    Retries with a new port only when the port was taken between
    :func:`free_port` and the server's bind; any other failure raises at once.
    """
    binary = require_binary(binary_name)
    for attempt in range(1, attempts + 1):
        workdir = _workdir(tmp_path, binary_name)
        port = free_port()
        server = ServerProcess(
            binary,
            make_args(workdir, port),
            workdir=workdir,
            port=port,
            ready_path=ready_path,
            name=binary_name,
            timeout=timeout,
        )
        try:
            return server.start()
        except ServerStartError:
            if attempt == attempts or "address already in use" not in server.log_tail().lower():
                raise
    raise AssertionError("unreachable")  # pragma: no cover


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
