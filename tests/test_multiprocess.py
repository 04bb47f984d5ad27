"""ccobs under ``uvicorn --workers 2``: one ``/metrics`` adds up every worker.

Each worker is its own process with its own metric values; prometheus_client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) writes them to shared files
and ccobs' exposition aggregates those files, so whichever worker answers the
scrape reports the totals of all of them. Nothing is mocked: uvicorn runs
``tests/apps/multiprocess_app.py`` as a real subprocess on a loopback port the
OS hands out, and the test parses the exposition as Prometheus would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ccobs.catalog import ACTIVE_REQUESTS, COST, INFO, REQUESTS, TOKENS

REPO_ROOT = Path(__file__).resolve().parent.parent
APP = "tests.apps.multiprocess_app:app"
HOLD_DIR_ENV = "CCOBS_TEST_HOLD_DIR"  # as in tests/apps/multiprocess_app.py
RELEASE_FILE = "release"
LOOPBACK = "127.0.0.1"
WORKERS = 2
N_REQUESTS = 200
CONCURRENCY = 4
"""Requests in flight at once while sending traffic: one at a time, the kernel
tends to hand most new connections to the same idle worker."""
MODELS = ("claude-sonnet-4", "claude-haiku-4")
ENDPOINT = "/v1/messages"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
SETTLE_TIMEOUT = 10.0
"""The middleware records a request after its response is sent, so a scrape
right after the last response may race the last increment; wait this long for
the totals to settle before asserting them exactly."""
HELD_PER_WORKER = 2
MAX_HELD = 32


# -- the server -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class UvicornServer:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    multiproc_dir: Path
    hold_dir: Path

    def log(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- uvicorn output ({self.log_path}), last {lines} lines ---\n{tail}"

    def explain(self, message: str) -> str:
        """``message`` followed by the server's output, for assertion messages."""
        return f"{message}\n{self.log()}"

    def stop(self) -> int | None:
        """SIGTERM uvicorn and wait; SIGKILL its whole process group if it hangs."""
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_TIMEOUT)
        # Workers are uvicorn's children in the session it leads: none may outlive the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        if process.poll() is None:
            process.wait(STOP_TIMEOUT)
        return process.returncode


def _workers_with_metrics(server: UvicornServer) -> set[str]:
    """Pids whose metric files exist: each worker writes its own once it imported the app.

    Waiting for all of them, not only for a first answer, keeps a worker still importing
    under load from leaving the other to serve every request of the test.
    """
    return {path.stem.rsplit("_", 1)[-1] for path in server.multiproc_dir.glob("*.db")}


def _wait_ready(server: UvicornServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last_error = "no attempt yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                server.explain(f"uvicorn exited with code {server.process.returncode}")
            )
        try:
            if (
                len(_workers_with_metrics(server)) >= WORKERS
                and httpx.get(server.url + "/health", timeout=1.0).status_code == 200
            ):
                return
        except httpx.TransportError as exc:
            last_error = repr(exc)
        time.sleep(0.05)
    raise RuntimeError(server.explain(f"uvicorn not ready after {START_TIMEOUT}s: {last_error}"))


def start_uvicorn(workdir: Path, attempts: int = 3) -> UvicornServer:
    """uvicorn serving the test app with ``WORKERS`` workers; retried if the port was taken."""
    for attempt in range(1, attempts + 1):
        run_dir = workdir / f"run-{attempt}"
        multiproc_dir, hold_dir = run_dir / "multiproc", run_dir / "hold"
        multiproc_dir.mkdir(parents=True)
        hold_dir.mkdir()
        port = free_port()
        env = {
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
            HOLD_DIR_ENV: str(hold_dir),
        }
        command = [
            sys.executable, "-m", "uvicorn", APP,
            "--workers", str(WORKERS),
            "--host", LOOPBACK,
            "--port", str(port),
            "--no-access-log",
        ]  # fmt: skip
        log_path = run_dir / "uvicorn.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = UvicornServer(
            process, f"http://{LOOPBACK}:{port}", log_path, multiproc_dir, hold_dir
        )
        try:
            _wait_ready(server)
            return server
        except BaseException:
            server.stop()
            if attempt == attempts or "address already in use" not in server.log().lower():
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UvicornServer]:
    running = start_uvicorn(tmp_path_factory.mktemp("uvicorn"))
    try:
        yield running
    finally:
        running.stop()


# -- reading the exposition -------------------------------------------------------------

Samples = list[tuple[str, dict[str, str], float]]


def scrape(server: UvicornServer) -> Samples:
    response = httpx.get(server.url + "/metrics", timeout=5.0)
    assert response.status_code == 200, server.explain(f"/metrics answered {response}")
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``."""
    return sum(
        value
        for sample_name, sample_labels, value in samples
        if sample_name == name and labels.items() <= sample_labels.items()
    )


def scrape_until(
    server: UvicornServer, done: Callable[[Samples], bool], timeout: float = SETTLE_TIMEOUT
) -> Samples:
    """Scrape until ``done`` holds or ``timeout`` passes; the last scrape either way."""
    deadline = time.monotonic() + timeout
    samples = scrape(server)
    while not done(samples) and time.monotonic() < deadline:
        time.sleep(0.05)
        samples = scrape(server)
    return samples


# -- traffic ----------------------------------------------------------------------------


@dataclass
class Traffic:
    """What the test sent and which worker answered each request."""

    pids: Counter[int] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    tokens: Counter[tuple[str, str]] = field(default_factory=Counter)
    cost_usd: dict[str, float] = field(default_factory=dict)


def usage(i: int) -> dict[str, str | int | float]:
    """Distinct usage per request; costs are multiples of 1/64, exact in binary floats,
    so totals summed in any order across workers compare exactly."""
    return {
        "model": MODELS[i % len(MODELS)],
        "input_tokens": 100 + i,
        "output_tokens": 1 + i % 13,
        "cost_usd": (i + 1) / 64,
    }


@pytest.fixture(scope="module")
def traffic(server: UvicornServer) -> Traffic:
    """``N_REQUESTS`` requests, each on a new connection, ``CONCURRENCY`` at a time."""
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=0)
    with httpx.Client(base_url=server.url, limits=limits, timeout=10.0) as client:

        def send(i: int) -> int:
            response = client.post(ENDPOINT, json=usage(i))
            assert response.status_code == 200, server.explain(f"request {i}: {response.text}")
            return int(response.json()["pid"])

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            pids = list(pool.map(send, range(N_REQUESTS)))
    sent = Traffic(pids=Counter(pids))
    for i in range(N_REQUESTS):
        body = usage(i)
        model = str(body["model"])
        sent.requests[model] += 1
        sent.tokens[("input", model)] += int(body["input_tokens"])
        sent.tokens[("output", model)] += int(body["output_tokens"])
        sent.cost_usd[model] = sent.cost_usd.get(model, 0.0) + float(body["cost_usd"])
    return sent


def settled_after(server: UvicornServer, traffic: Traffic) -> Samples:
    """A scrape taken once every request of ``traffic`` has been counted."""
    requests_total = REQUESTS.full_name()
    return scrape_until(server, lambda s: total(s, requests_total, endpoint=ENDPOINT) >= N_REQUESTS)


# -- tests ------------------------------------------------------------------------------


def test_requests_are_served_by_every_worker(server: UvicornServer, traffic: Traffic) -> None:
    assert len(traffic.pids) == WORKERS, server.explain(f"pids that answered: {traffic.pids}")


def test_requests_total_adds_up_every_worker(server: UvicornServer, traffic: Traffic) -> None:
    samples = settled_after(server, traffic)
    name = REQUESTS.full_name()
    assert total(samples, name, endpoint=ENDPOINT) == N_REQUESTS
    by_model = {
        model: total(samples, name, method="POST", endpoint=ENDPOINT, model=model, status="200")
        for model in MODELS
    }
    assert by_model == traffic.requests


def test_token_totals_add_up_every_worker(server: UvicornServer, traffic: Traffic) -> None:
    samples = settled_after(server, traffic)
    recorded = {
        (token_type, model): total(samples, TOKENS.full_name(), type=token_type, model=model)
        for token_type, model in traffic.tokens
    }
    assert recorded == traffic.tokens


def test_cost_totals_add_up_every_worker(server: UvicornServer, traffic: Traffic) -> None:
    samples = settled_after(server, traffic)
    recorded = {
        model: total(samples, COST.full_name(), model=model, cost_type="total") for model in MODELS
    }
    assert recorded == traffic.cost_usd


def test_active_requests_is_zero_once_idle(server: UvicornServer, traffic: Traffic) -> None:
    name = ACTIVE_REQUESTS.full_name()
    samples = scrape_until(server, lambda s: total(s, name) == 0)
    assert [value for sample_name, _, value in samples if sample_name == name] == [0.0]


def test_info_series_is_one_per_label_set_across_workers(
    server: UvicornServer, traffic: Traffic
) -> None:
    samples = scrape(server)
    info = [(labels, value) for name, labels, value in samples if name == INFO.full_name()]
    assert len(info) == 1, info
    assert info[0][1] == 1.0


def test_workers_start_without_warnings(server: UvicornServer, traffic: Traffic) -> None:
    """Both workers have served traffic, so both have started; neither may have
    complained while instrumenting the app."""
    output = server.log_path.read_text(errors="replace").splitlines()
    complaints = [line for line in output if "Warning" in line or "Traceback" in line]
    assert complaints == [], server.explain("a worker complained while starting")


@pytest.mark.anyio
async def test_active_requests_sums_requests_in_flight_on_every_worker(
    server: UvicornServer,
) -> None:
    """Requests held open on both workers show up, all of them, in one scrape."""
    hold_dir = server.hold_dir
    active = ACTIVE_REQUESTS.full_name()
    scrape_until(server, lambda s: total(s, active) == 0)  # earlier traffic has finished

    def held_pids() -> Counter[int]:
        # held-<pid>-<id>: named, not written, so a file is never seen half-made.
        return Counter(int(p.name.split("-")[1]) for p in hold_dir.glob("held-*"))

    def enough_held() -> bool:
        held = held_pids()
        return len(held) == WORKERS and min(held.values()) >= HELD_PER_WORKER

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30.0) as client:
        statuses: list[int] = []

        async def hold() -> None:
            statuses.append((await client.get("/hold")).status_code)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tasks:
                try:
                    # One at a time, each once the previous one has arrived: the
                    # app pins the worker that took it, so the next goes elsewhere.
                    launched = 0
                    while not enough_held() and launched < MAX_HELD:
                        tasks.start_soon(hold)
                        launched += 1
                        # Another process writes the files: no event to await.
                        while sum(held_pids().values()) < launched:  # noqa: ASYNC110
                            await anyio.sleep(0.01)
                    assert enough_held(), server.explain(f"held per worker: {held_pids()}")
                    response = await client.get("/metrics")
                    assert response.status_code == 200, server.explain(response.text)
                finally:
                    (hold_dir / RELEASE_FILE).touch()
    samples = [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]
    assert total(samples, active) == launched
    assert statuses == [200] * launched


def test_stopped_workers_are_marked_dead(tmp_path: Path) -> None:
    """Each worker marks itself dead on shutdown: its live-sum gauge file goes, so
    ``active_requests`` counts only workers that are running."""
    own = start_uvicorn(tmp_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while len(list(own.multiproc_dir.glob("gauge_livesum_*.db"))) < WORKERS:
            assert time.monotonic() < deadline, own.explain("not every worker started")
            time.sleep(0.05)
    finally:
        returncode = own.stop()
    assert returncode == 0, own.explain(f"uvicorn exited with {returncode}")
    assert list(own.multiproc_dir.glob("gauge_livesum_*.db")) == []


def test_update_system_info_retires_the_previous_info_series_in_multiprocess_mode(
    tmp_path: Path,
) -> None:
    """After an override only the current label set reads 1, so joins on the info
    series pick one version. (Worker files cannot drop a series, so the old one
    may stay at 0.)"""
    script = (
        "from prometheus_client import CollectorRegistry, generate_latest\n"
        "from ccobs import PrometheusMetrics\n"
        "metrics = PrometheusMetrics(registry=CollectorRegistry())\n"
        "metrics.update_system_info(version='9.9.9')\n"
        "print(generate_latest(metrics.exposition_registry()).decode())\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    current = [
        sample.labels["version"]
        for family in text_string_to_metric_families(result.stdout)
        for sample in family.samples
        if sample.name == INFO.full_name() and sample.value == 1
    ]
    assert current == ["9.9.9"], result.stdout
