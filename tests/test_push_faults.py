"""The proxy, pushing in the background, while its push target fails (issue 7).

Every fault is real and on loopback: a closed port (refused), a listener that
accepts and never answers (hang), one that answers after the timeout or just
within it (slow), one that answers 500 (error), and the real Pushgateway or
VictoriaMetrics killed mid-run and restarted on its port. For each, with both
protocols, the proxy serves at its healthy latency, every push returns False
within its timeout, the breaker opens and then closes through a half-open
probe once the real service holds the port again, and many failing pushes
and breaker cycles leave threads, descriptors and memory where they were.

The faulty servers run in a child process (tests/fault_servers.py) so their
threads and sockets never count as the proxy's. Figures are printed; run with
``-s`` to see them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asgi_server import serve_asgi
from fault_servers import FaultServer, closed_port
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from realservers import (
    LOOPBACK,
    ServerProcess,
    force_flush,
    free_port,
    require_binary,
    wait_for,
)

from ccobs.circuit_breaker import BreakerState, CircuitBreaker
from ccobs.demo.upstream import Delay, UpstreamConfig, create_upstream_app
from ccobs.logging import configure_logging
from ccobs.metrics import PrometheusMetrics
from ccobs.proxy.app import create_proxy_app
from ccobs.proxy.config import ProxyConfig
from ccobs.pushgateway import PushgatewayClient
from ccobs.settings import ObservabilitySettings

pytestmark = pytest.mark.integration

PROTOCOLS = ("pushgateway", "victoriametrics")
JOB = "ccobs_faults"
INSTANCE = "proxy-1"

PUSH_TIMEOUT = 0.2
INTERVAL = 0.05
TIMEOUT_SLACK = 0.15
"""What a push may take beyond its timeout: connect, logging and scheduling on two shared cores."""
FAULTS = {
    "refused": None,
    "hang": "hang",
    "slow": f"slow:{2 * PUSH_TIMEOUT}",
    "error": "error",
}
"""Each failing target as a fault-server mode; refused is a closed port."""

UPSTREAM = UpstreamConfig(
    seed=7, ttft=Delay(0.01), latency=Delay(0.01), inter_token_delay=0.0005, output_tokens=(5, 20)
)
REQUEST = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 20,
    "messages": [{"role": "user", "content": "x"}],
}


# --- observing pushes and the breaker --------------------------------------------------------


@dataclass(frozen=True)
class Push:
    """One push the client made: whether the breaker let it out, its result and duration."""

    allowed: bool
    ok: bool
    seconds: float


class ObservedBreaker(CircuitBreaker):
    """A CircuitBreaker logging its decisions: opening, half-open probes and closing."""

    def __init__(self, failure_threshold: int, reset_timeout: float) -> None:
        super().__init__(failure_threshold, reset_timeout)
        self.events: list[tuple[float, str, BreakerState]] = []
        self.last_allowed = False

    def allow(self) -> bool:
        before = self.state
        self.last_allowed = super().allow()
        if self.last_allowed and before is BreakerState.HALF_OPEN:
            self.events.append((time.monotonic(), "probe", before))
        return self.last_allowed

    def record_failure(self) -> BreakerState:
        state = super().record_failure()
        self.events.append((time.monotonic(), "failure", state))
        return state

    def record_success(self) -> BreakerState:
        previous = super().record_success()
        self.events.append((time.monotonic(), "success", previous))
        return previous

    def opened(self, since: float = 0.0) -> int:
        """Failures that left the breaker open (opening, or a failed probe re-opening it)."""
        return sum(
            1
            for at, kind, state in list(self.events)
            if at >= since and kind == "failure" and state is BreakerState.OPEN
        )

    def closed_by_probe(self, since: float = 0.0) -> int:
        """Successful half-open probes: each one closed the breaker."""
        return sum(
            1
            for at, kind, state in list(self.events)
            if at >= since and kind == "success" and state is BreakerState.HALF_OPEN
        )

    def probes(self, since: float = 0.0) -> int:
        return sum(1 for at, kind, _ in list(self.events) if at >= since and kind == "probe")


class RecordingClient(PushgatewayClient):
    """The real client, timing every push (the pusher is its only caller, so one at a time)."""

    breaker: ObservedBreaker

    def __init__(self, settings: ObservabilitySettings) -> None:
        super().__init__(
            settings,
            breaker=ObservedBreaker(
                settings.pushgateway_failure_threshold, settings.pushgateway_reset_seconds
            ),
        )
        self.pushes: list[Push] = []

    def push_metrics(self, registry: CollectorRegistry | None, method: str = "push") -> bool:
        self.breaker.last_allowed = False
        started = time.perf_counter()
        ok = super().push_metrics(registry, method)
        seconds = time.perf_counter() - started
        self.pushes.append(Push(self.breaker.last_allowed, ok, seconds))
        return ok

    def sent(self, since: int = 0) -> list[Push]:
        """Pushes from index ``since`` that went out (were not skipped by an open breaker)."""
        return [push for push in self.pushes[since:] if push.allowed]


# --- the proxy under test --------------------------------------------------------------------


@dataclass
class PushingProxy:
    http: httpx.Client
    client: RecordingClient
    sent_requests: int = 0

    @property
    def breaker(self) -> ObservedBreaker:
        return self.client.breaker

    def send(self, count: int) -> list[float]:
        """Send ``count`` Messages requests one after the other; their latencies in seconds."""
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            response = self.http.post("/v1/messages", json=REQUEST)
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
        self.sent_requests += count
        return latencies

    def tasks(self) -> int:
        """asyncio tasks alive on the proxy's event loop."""
        return int(self.http.get("/_test/tasks").json())


@contextmanager
def pushing_proxy(
    target_url: str,
    protocol: str,
    *,
    failure_threshold: int = 1_000_000,
    reset_seconds: float = 0.3,
    interval: float = INTERVAL,
    max_backoff: float = INTERVAL,
    timeout: float = PUSH_TIMEOUT,
) -> Iterator[PushingProxy]:
    """Mock upstream and demo proxy on loopback, the proxy pushing to ``target_url``.

    The defaults are the worst case for the proxy: the breaker never opens and
    the pusher never backs off, so a push hits the fault every ``interval``.
    """
    settings = ObservabilitySettings(
        pushgateway_url=target_url,
        pushgateway_protocol=protocol,
        pushgateway_job=JOB,
        pushgateway_instance=INSTANCE,
        pushgateway_interval_seconds=interval,
        pushgateway_timeout_seconds=timeout,
        pushgateway_failure_threshold=failure_threshold,
        pushgateway_reset_seconds=reset_seconds,
        pushgateway_max_backoff_seconds=max_backoff,
    )
    client = RecordingClient(settings)
    metrics = PrometheusMetrics(
        registry=CollectorRegistry(), pushgateway_client=client, settings=settings
    )
    try:
        with serve_asgi(create_upstream_app(UPSTREAM)) as upstream:
            app = create_proxy_app(
                ProxyConfig(upstream_url=upstream.url), metrics=metrics, settings=settings
            )

            async def count_tasks() -> int:
                return len(asyncio.all_tasks())

            app.add_api_route("/_test/tasks", count_tasks, methods=["GET"])
            # Ahead of the proxy's pass-through, which takes every path after its own.
            app.router.routes.insert(0, app.router.routes.pop())
            with (
                serve_asgi(app, lifespan="on") as proxy,
                httpx.Client(base_url=proxy.url, headers={"x-api-key": "sk-ant-test"}) as http,
            ):
                yield PushingProxy(http, client)
    finally:
        client.close()


@pytest.fixture(autouse=True)
def quiet_logging(isolated_logging: None) -> Iterator[None]:
    """Failed pushes log as they would in production, into /dev/null rather than memory."""
    with open(os.devnull, "w") as sink:
        configure_logging("INFO", "json", stream=sink)
        yield


# --- targets ---------------------------------------------------------------------------------


@dataclass
class Target:
    port: int
    server: FaultServer | None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@contextmanager
def faulty_target(fault: str) -> Iterator[Target]:
    """The target for ``fault``; stopped (its port freed) on exit."""
    mode = FAULTS[fault]
    if mode is None:
        yield Target(closed_port(), None)
        return
    with FaultServer(mode) as server:
        yield Target(server.port, server)


def real_service(protocol: str, port: int, workdir: Path) -> ServerProcess:
    """The real Pushgateway or VictoriaMetrics on ``port``, not started: ``with`` starts it.

    A fixed port (not the realservers helpers' free one) so it can take over a
    faulty target's address, or be restarted on its own after a kill.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    if protocol == "pushgateway":
        binary = require_binary("prometheus-pushgateway")
        args = [f"--web.listen-address={LOOPBACK}:{port}", "--persistence.file="]
        ready = "/-/ready"
    else:
        binary = require_binary("victoria-metrics")
        args = [
            f"-httpListenAddr={LOOPBACK}:{port}",
            f"-storageDataPath={workdir / 'data'}",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-retentionPeriod=1d",
        ]
        ready = "/health"
    return ServerProcess(binary, args, workdir=workdir, port=port, ready_path=ready)


def pushed_requests(service: ServerProcess, protocol: str) -> float:
    """ccproxy_requests_total of this proxy as the real service holds it now."""
    selector = f'ccproxy_requests_total{{job="{JOB}",instance="{INSTANCE}"}}'
    if protocol == "victoriametrics":
        force_flush(service)
        response = httpx.get(service.url + "/api/v1/query", params={"query": f"sum({selector})"})
        response.raise_for_status()
        result = response.json()["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0
    text = httpx.get(service.url + "/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ccproxy_requests_total"
        and sample.labels.get("job") == JOB
        and sample.labels.get("instance") == INSTANCE
    )


def kill(service: ServerProcess) -> None:
    """SIGKILL, as a crash would: no graceful shutdown, no flush; then reap it."""
    assert service.pid is not None
    os.kill(service.pid, signal.SIGKILL)
    service.stop()


# --- figures ---------------------------------------------------------------------------------


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@dataclass(frozen=True)
class Usage:
    """What the process holds: threads (two views), descriptors, traced memory, loop tasks."""

    threads: int
    os_threads: int
    fds: int
    memory: int
    loop_tasks: int

    @classmethod
    def now(cls, proxy: PushingProxy, exclude: list[tracemalloc.Filter]) -> Usage:
        gc.collect()
        snapshot = tracemalloc.take_snapshot().filter_traces(exclude)
        return cls(
            threads=threading.active_count(),
            os_threads=len(os.listdir("/proc/self/task")),
            fds=len(os.listdir("/proc/self/fd")),
            memory=sum(stat.size for stat in snapshot.statistics("filename")),
            loop_tasks=proxy.tasks(),
        )


MEMORY_GROWTH_BOUND = 256 * 1024
"""Bytes the process may retain after the run: a leak of 1.3 KB per push (a
socket object, a log record, a traceback) over 200 pushes would exceed it."""
FD_SLACK = 2
"""A push in flight at the moment of counting holds a socket (two for a
connection being replaced); a leak adds one per push."""


@contextmanager
def traced_memory() -> Iterator[list[tracemalloc.Filter]]:
    """Trace allocations, excluding this module's own bookkeeping (its push records).

    pytest keeps every log record of a test in memory for its report, which
    would read as a leak of one record per failed push: its capture handlers
    are muted meanwhile (the records still go through the production handler).
    """
    capturing = [
        handler
        for handler in logging.getLogger().handlers
        if type(handler).__module__ == "_pytest.logging"
    ]
    levels = [handler.level for handler in capturing]
    for handler in capturing:
        handler.setLevel(logging.CRITICAL + 1)
    tracemalloc.start()
    try:
        yield [
            tracemalloc.Filter(False, __file__),
            tracemalloc.Filter(False, tracemalloc.__file__),
        ]
    finally:
        tracemalloc.stop()
        for handler, level in zip(capturing, levels, strict=True):
            handler.setLevel(level)


def assert_flat(before: Usage, after: Usage, what: str) -> None:
    print(f"\n{what}: before {before} after {after}")
    assert after.threads == before.threads, (before, after)
    assert after.os_threads == before.os_threads, (before, after)
    assert after.loop_tasks == before.loop_tasks, (before, after)
    assert after.fds <= before.fds + FD_SLACK, (before, after)
    assert after.memory - before.memory < MEMORY_GROWTH_BOUND, (before, after)


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    wait_for(lambda: condition() or None, timeout=timeout, interval=0.01)


# --- proxy latency ---------------------------------------------------------------------------


LATENCY_REQUESTS = 25


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_proxy_latency_is_unaffected_by_a_failing_push_target(
    protocol: str, tmp_path: Path
) -> None:
    """Pushing runs on its own thread with a timeout, so no fault of the target reaches requests.

    One proxy, one target address, in the same run: the real service
    (healthy), then killed (refused), then a fault server on its port that
    answers 500, hangs, or answers after / within the timeout. The breaker is
    kept closed and backoff off, so a push hits the fault every interval while
    the requests are measured; each window also checks the pushes did.
    """
    port = free_port()
    windows: dict[str, list[float]] = {}
    results: dict[str, list[bool]] = {}
    with (
        real_service(protocol, port, tmp_path / "service") as service,
        pushing_proxy(service.url, protocol) as proxy,
    ):

        def window(name: str) -> None:
            proxy.send(2)  # let a push hit the new target first
            first = len(proxy.client.pushes)
            windows[name] = proxy.send(LATENCY_REQUESTS)
            wait_until(lambda: len(proxy.client.sent(first)) >= 2)
            results[name] = [push.ok for push in proxy.client.sent(first)]

        proxy.send(5)  # warm-up: connections, labelled children, code paths
        window("healthy")
        kill(service)
        window("refused")
        for fault in ("error", "hang", "slow", "slow_within"):
            mode = f"slow:{PUSH_TIMEOUT / 2}" if fault == "slow_within" else FAULTS[fault]
            assert mode is not None
            with FaultServer(mode, port):
                window(fault)

    healthy = windows["healthy"]
    print(f"\nproxy latency while pushing ({protocol}, {LATENCY_REQUESTS} requests each):")
    for name, latencies in windows.items():
        print(
            f"  {name:12} p50 {ms(p50(latencies)):>9}  p95 {ms(p95(latencies)):>9}  "
            f"pushes {results[name]}"
        )
    assert all(results["healthy"]), results
    assert all(results["slow_within"]), results
    for fault in ("refused", "error", "hang", "slow"):
        assert not any(results[fault]), (fault, results[fault])
    p50_bound = max(2 * p50(healthy), p50(healthy) + 0.020)
    p95_bound = max(2 * p95(healthy), p95(healthy) + 0.050)
    for name, latencies in windows.items():
        assert p50(latencies) <= p50_bound, (name, ms(p50(latencies)), ms(p50_bound))
        assert p95(latencies) <= p95_bound, (name, ms(p95(latencies)), ms(p95_bound))


# --- push duration ---------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", FAULTS)
def test_a_push_to_a_failing_target_returns_false_within_its_timeout(
    fault: str, protocol: str
) -> None:
    """A push never costs the pusher more than its timeout, whatever the target does."""
    with faulty_target(fault) as target, pushing_proxy(target.url, protocol) as proxy:
        wait_until(lambda: len(proxy.client.sent()) >= 3)
    pushes = proxy.client.sent()  # including the final push on shutdown

    longest = max(push.seconds for push in pushes)
    print(f"\n{fault} {protocol}: {len(pushes)} pushes, longest {ms(longest)}")
    assert [push.ok for push in pushes] == [False] * len(pushes)
    assert longest <= PUSH_TIMEOUT + TIMEOUT_SLACK


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_target_slower_than_usual_but_within_the_timeout_still_gets_the_push(
    protocol: str,
) -> None:
    """A timeout is a bound, not a budget to fail early on: a late-but-in-time answer is success."""
    delay = PUSH_TIMEOUT / 2
    with FaultServer(f"slow:{delay}") as target, pushing_proxy(target.url, protocol) as proxy:
        wait_until(lambda: len(proxy.client.sent()) >= 3)
    pushes = proxy.client.sent()

    print(f"\nslow within the timeout {protocol}: {[ms(push.seconds) for push in pushes]}")
    assert [push.ok for push in pushes] == [True] * len(pushes)
    assert all(delay <= push.seconds <= PUSH_TIMEOUT + TIMEOUT_SLACK for push in pushes)
    assert proxy.breaker.state is BreakerState.CLOSED


def test_shutdown_waits_for_a_trickling_target_no_longer_than_its_grace() -> None:
    """A push timeout bounds each read, so a target sending one byte at a time holds a push
    for as long as it trickles (here ~3.8 s a push); shutdown must not wait for it past the
    final push's grace (three push timeouts)."""
    grace = 3 * PUSH_TIMEOUT
    with FaultServer("trickle:0.1") as target:
        with pushing_proxy(target.url, "pushgateway") as proxy:
            proxy.send(3)
            time.sleep(4 * INTERVAL)  # a trickling push is under way
            stopping = time.perf_counter()
        shutdown = time.perf_counter() - stopping

    print(f"\nshutdown with a trickling target: {ms(shutdown)} (grace {ms(grace)})")
    assert shutdown <= grace + 1.5


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_first_push_pays_no_client_setup_inside_its_timeout(protocol: str) -> None:
    """Setting up the HTTP client (for VictoriaMetrics, an httpx.Client loading the CA bundle:
    0.1 s idle, 0.6 s on a busy host) belongs to the client's construction; inside the first
    push it made that push overrun its timeout."""
    with FaultServer("ok") as target:
        client = RecordingClient(
            ObservabilitySettings(
                pushgateway_url=target.url,
                pushgateway_protocol=protocol,
                pushgateway_timeout_seconds=PUSH_TIMEOUT,
            )
        )
        registry = CollectorRegistry()
        try:
            for _ in range(6):
                client.push_metrics(registry)
        finally:
            client.close()
    first, *rest = [push.seconds for push in client.pushes]

    print(f"\nfirst push {protocol}: {ms(first)}, then median {ms(p50(rest))}")
    assert all(push.ok for push in client.pushes)
    assert first <= max(5 * p50(rest), p50(rest) + 0.050)


# --- breaker recovery ------------------------------------------------------------------------

RESET_SECONDS = 0.2
MAX_BACKOFF = 0.2
RECOVERY_BOUND = RESET_SECONDS + MAX_BACKOFF + PUSH_TIMEOUT + 1.0
"""Service back -> breaker closed: the rest of the open period, one backoff
wait and the probe, plus scheduling slack."""


def bring_back(proxy: PushingProxy, service: ServerProcess, protocol: str, label: str) -> None:
    """Start ``service`` on the target's port (the caller stops it): a half-open probe must then
    close the breaker, and the requests served while the target was down must reach it.

    Timed from the launch: the service may be ready, and probed, before its
    readiness poll notices.
    """
    launched = time.monotonic()
    service.start()
    ready = time.monotonic() - launched
    wait_until(lambda: proxy.breaker.closed_by_probe(since=launched) >= 1)
    recovery = time.monotonic() - launched
    print(
        f"\n{label} {protocol}: breaker closed {ms(recovery)} after the service was "
        f"launched (ready after {ms(ready)})"
    )

    assert proxy.breaker.probes(since=launched) >= 1
    assert proxy.breaker.state is BreakerState.CLOSED
    assert recovery - ready <= RECOVERY_BOUND
    wait_until(lambda: pushed_requests(service, protocol) == proxy.sent_requests, timeout=10)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", FAULTS)
def test_breaker_opens_on_a_failing_target_and_closes_when_the_real_service_takes_its_port(
    fault: str, protocol: str, tmp_path: Path
) -> None:
    """An open breaker keeps pushes off the network, and must not stay open once the target is back.

    The real service starts on the failing target's own port, as a restarted
    or replaced Pushgateway / VictoriaMetrics would.
    """
    with (
        faulty_target(fault) as target,
        pushing_proxy(
            target.url,
            protocol,
            failure_threshold=2,
            reset_seconds=RESET_SECONDS,
            max_backoff=MAX_BACKOFF,
        ) as proxy,
    ):
        wait_until(lambda: proxy.breaker.opened() >= 1)
        skipped_from = len(proxy.client.pushes)
        wait_until(lambda: any(not push.allowed for push in proxy.client.pushes[skipped_from:]))
        proxy.send(4)
        target.stop()
        service = real_service(protocol, target.port, tmp_path / protocol)
        try:
            bring_back(proxy, service, protocol, fault)
        finally:
            service.stop()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_breaker_opens_when_the_real_service_is_killed_and_closes_when_it_restarts(
    protocol: str, tmp_path: Path
) -> None:
    """A crash of the push target mid-run is the fault users meet most; recovery is automatic."""
    service = real_service(protocol, free_port(), tmp_path / protocol)
    with (
        service,
        pushing_proxy(
            service.url,
            protocol,
            failure_threshold=2,
            reset_seconds=RESET_SECONDS,
            max_backoff=MAX_BACKOFF,
        ) as proxy,
    ):
        proxy.send(2)
        wait_until(lambda: pushed_requests(service, protocol) == 2, timeout=10)
        kill(service)
        wait_until(lambda: proxy.breaker.opened() >= 1)
        proxy.send(3)
        bring_back(proxy, service, protocol, "killed")


# --- no growth -------------------------------------------------------------------------------

FAILING_PUSHES = 200
GROWTH_TIMEOUT = 0.01
GROWTH_SLOW = "slow:1.0"
"""Far past the timeout: at three timeouts (30 ms) a client thread held up for 20 ms on two
busy cores found the late answer waiting and counted a success."""


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_many_failing_pushes_leave_no_threads_descriptors_memory_or_tasks_behind(
    protocol: str,
) -> None:
    """A leak per failed push (a socket on timeout, a thread, a retained traceback) adds up
    over days of an unreachable target; 200 pushes over every fault must leave nothing.

    The target's port answers 500, then refuses (its server stopped), then a
    new server there hangs, then answers late: before and after, one fault
    server is running, so the test process holds the same pipes to it.
    """
    per_fault = FAILING_PUSHES // 4
    port = free_port()
    with (
        ExitStack() as servers,
        pushing_proxy(
            f"http://{LOOPBACK}:{port}",
            protocol,
            interval=0.002,
            max_backoff=0.002,
            timeout=GROWTH_TIMEOUT,
        ) as proxy,
    ):
        target = servers.enter_context(FaultServer("ok", port))

        def pushes(count: int) -> None:
            start = len(proxy.client.pushes)
            wait_until(lambda: len(proxy.client.sent(start)) >= count)

        proxy.send(5)
        proxy.tasks()
        for mode in ("ok", "error", "hang", GROWTH_SLOW):  # warm every path
            target.set_mode(mode)
            pushes(10)
        with traced_memory() as exclude:
            before = Usage.now(proxy, exclude)
            first = len(proxy.client.pushes)
            target.set_mode("error")
            pushes(per_fault)
            target.stop()
            pushes(per_fault)
            target = servers.enter_context(FaultServer("hang", port))
            pushes(per_fault)
            target.set_mode(GROWTH_SLOW)
            pushes(per_fault)
            after = Usage.now(proxy, exclude)
        results = [push.ok for push in proxy.client.sent(first)]

    assert len(results) >= FAILING_PUSHES
    assert not any(results)
    assert_flat(before, after, f"{len(results)} failing pushes ({protocol})")


BREAKER_CYCLES = 20


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_many_breaker_open_close_cycles_leave_no_threads_descriptors_memory_or_tasks_behind(
    protocol: str,
) -> None:
    """A flapping target opens and closes the breaker over and over; each cycle must clean up."""
    with (
        FaultServer("ok") as target,
        pushing_proxy(
            target.url,
            protocol,
            failure_threshold=2,
            reset_seconds=0.02,
            interval=0.005,
            max_backoff=0.01,
            timeout=GROWTH_TIMEOUT,
        ) as proxy,
    ):
        breaker = proxy.breaker

        def cycle(fault_mode: str) -> None:
            opened, closed = breaker.opened(), breaker.closed_by_probe()
            target.set_mode(fault_mode)
            wait_until(lambda: breaker.opened() > opened)
            target.set_mode("ok")
            wait_until(lambda: breaker.closed_by_probe() > closed)

        proxy.send(5)
        proxy.tasks()
        cycle("error")
        cycle("hang")
        with traced_memory() as exclude:
            before = Usage.now(proxy, exclude)
            closed_before = breaker.closed_by_probe()
            modes = ("error", "hang", GROWTH_SLOW)
            for number in range(BREAKER_CYCLES):
                cycle(modes[number % len(modes)])
            after = Usage.now(proxy, exclude)

    assert breaker.closed_by_probe() - closed_before >= BREAKER_CYCLES
    assert_flat(before, after, f"{BREAKER_CYCLES} breaker cycles ({protocol})")
