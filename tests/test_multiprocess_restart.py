"""``ccobs proxy --workers 2`` restarted after a SIGKILL, on the same ``PROMETHEUS_MULTIPROC_DIR``.

A SIGKILL (OOM killer, a node lost, ``docker kill``) gives the workers no
chance to mark themselves dead, so prometheus_client's files stay behind:
each worker's counters, and the live-sum files of the active-requests gauge
holding the requests that were in flight. A supervisor that restarts the
service with the same directory (a systemd unit or a container with a fixed
path) must get neither the old counts added to the new ones nor requests in
flight that no process serves any more.

The behaviour ``ccobs proxy`` chooses: the directory is emptied at start, so
each run counts from zero, as a single process does after a restart (and as
Prometheus expects of a restarted target: ``rate()`` handles counter resets).
The same holds on a smaller scale while the service runs: one worker killed
and replaced by uvicorn must not leave its requests in the gauge either.
Real processes on loopback: ``ccobs upstream`` and ``ccobs proxy``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from test_shutdown import CcobsProcess, request_body, running, start_ccobs

from ccobs.catalog import ACTIVE_REQUESTS, REQUESTS

N_REQUESTS = 20
"""Answered by the run that is killed."""
M_REQUESTS = 12
"""Answered after the restart."""
HELD = 4
"""Streams held open at least, spread over both workers, before one worker is killed."""
MAX_HELD = 16
"""Streams opened at most to get there: one per attempt to reach the worker holding none,
which fails only while that worker is not serving yet."""
PIN_SECONDS = 2.0
"""How long the workers holding a stream stay stopped while one is opened for the other:
far more than it takes to be accepted, and well inside uvicorn's 5 s worker health check
(its parent kills a worker that does not answer a ping within it)."""
SETTLE_TIMEOUT = 15.0
REPLACE_TIMEOUT = 60.0
"""uvicorn notices a dead worker within a second, but its replacement is a fresh
interpreter importing the app: seconds on a loaded machine."""
PLAIN = {"x-mock-latency-ms": "0", "x-mock-ttft-ms": "0"}
ENDLESS = {"x-mock-latency-ms": "120000", "x-mock-ttft-ms": "0"}


def scrape(proxy: CcobsProcess, name: str) -> float:
    """Sum of the samples of ``name`` on ``/metrics``."""
    text = httpx.get(proxy.url + "/metrics", timeout=5.0).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def scrape_until(proxy: CcobsProcess, name: str, expected: float) -> float:
    """Scrape until ``name`` reads ``expected`` (a request is counted just after its
    response is sent) or the timeout passes; the last value either way."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    value = scrape(proxy, name)
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        value = scrape(proxy, name)
    return value


def send_plain(proxy: CcobsProcess, count: int) -> None:
    limits = httpx.Limits(max_keepalive_connections=0)  # new connections reach both workers
    with httpx.Client(base_url=proxy.url, limits=limits, timeout=30.0) as client:

        def send(_: int) -> None:
            response = client.post("/v1/messages", json=request_body(False), headers=PLAIN)
            assert response.status_code == 200, proxy.explain(response.text)

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(send, range(count)))


@dataclass
class Held:
    """A stream that will not end by itself, on its own connection."""

    ended: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


def hold_stream(proxy: CcobsProcess) -> Held:
    held = Held()

    def hold() -> None:
        try:
            with (
                httpx.Client(base_url=proxy.url, timeout=30.0) as client,
                client.stream(
                    "POST", "/v1/messages", json=request_body(True), headers=ENDLESS
                ) as response,
            ):
                for _ in response.iter_raw():
                    pass
        except httpx.HTTPError:
            pass  # the worker serving it was killed: expected
        finally:
            held.ended.set()

    held.thread = threading.Thread(target=hold, daemon=True)
    held.thread.start()
    return held


def active_by_worker(multiproc_dir: Path) -> dict[int, float]:
    """Each worker's own share of the active-requests gauge, from its live-sum file."""
    shares: dict[int, float] = {}
    for path in multiproc_dir.glob("gauge_livesum_*.db"):
        pid = int(path.stem.rpartition("_")[2])
        for metric in MultiProcessCollector.merge([str(path)]):  # type: ignore[no-untyped-call]
            for sample in metric.samples:
                if sample.name == ACTIVE_REQUESTS.full_name():
                    shares[pid] = sample.value
    return shares


def busy_workers(multiproc_dir: Path) -> set[int]:
    return {pid for pid, share in active_by_worker(multiproc_dir).items() if share >= 1}


def process_state(pid: int) -> str:
    """The state letter in ``/proc/PID/stat`` (``T``: stopped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0]


@contextlib.contextmanager
def stopped(pids: set[int]) -> Iterator[None]:
    """``pids`` stopped (SIGSTOP) inside the block, continued after it."""
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + PIN_SECONDS
        while any(process_state(pid) != "T" for pid in pids):
            assert time.monotonic() < deadline, f"workers {pids} did not stop"
            time.sleep(0.001)
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def hold_on_both_workers(proxy: CcobsProcess, multiproc_dir: Path) -> list[Held]:
    """At least ``HELD`` streams in flight, at least one on each worker.

    Both workers wait on the one listening socket and the kernel gives a new connection
    to whichever runs first, which is no fair share: one worker can take ten or twenty
    in a row. So the stream meant for the worker holding none is opened while the
    worker holding them is stopped, when no other process can accept it.
    """
    held: list[Held] = []
    while len(held) < MAX_HELD:
        busy = busy_workers(multiproc_dir)
        if len(held) >= HELD and len(busy) >= 2:
            return held
        if len(busy) == 1:
            with stopped(busy):
                held.append(hold_stream(proxy))
                deadline = time.monotonic() + PIN_SECONDS
                while busy_workers(multiproc_dir) <= busy and time.monotonic() < deadline:
                    time.sleep(0.01)
        else:
            held.append(hold_stream(proxy))
        scrape_until(proxy, ACTIVE_REQUESTS.full_name(), len(held))
    shares = active_by_worker(multiproc_dir)
    raise AssertionError(proxy.explain(f"streams never reached both workers: {shares}"))


@dataclass
class Restart:
    first: CcobsProcess
    second: CcobsProcess
    killed_worker_streams: float
    active_after_worker_replaced: float
    streams_still_open: int
    requests_after_worker_replaced: float
    active_before_kill: float
    live_gauge_files_left: list[str]
    requests_after_restart: float
    active_after_restart: float


@pytest.fixture(scope="module")
def restart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restart]:
    """Run 1: N requests, streams held on both workers, one worker SIGKILLed (uvicorn
    replaces it), then the whole server SIGKILLed with streams in flight. Run 2 on the
    same directory: M requests."""
    tmp_path = tmp_path_factory.mktemp("restart")
    multiproc_dir = tmp_path / "multiproc"
    multiproc_dir.mkdir()  # a fixed path, as in a systemd unit or a container image
    env = {"PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir), "CCOBS_LOG_LEVEL": "WARNING"}
    with running(start_ccobs("upstream", log_path=tmp_path / "upstream.log")) as upstream:
        args = ["--upstream", upstream.url, "--workers", "2"]
        with running(
            start_ccobs("proxy", *args, log_path=tmp_path / "first.log", env=env)
        ) as first:
            send_plain(first, N_REQUESTS)
            scrape_until(first, REQUESTS.full_name(), N_REQUESTS)
            held = hold_on_both_workers(first, multiproc_dir)
            shares = active_by_worker(multiproc_dir)
            victim = max(shares, key=lambda pid: shares[pid])
            os.kill(victim, signal.SIGKILL)
            expected_open = len(held) - int(shares[victim])
            deadline = time.monotonic() + REPLACE_TIMEOUT
            while sum(not h.ended.is_set() for h in held) > expected_open:
                assert time.monotonic() < deadline, first.explain("streams outlived their worker")
                time.sleep(0.05)
            # The replacement cleans up as it starts; wait until it is serving.
            while set(active_by_worker(multiproc_dir)) <= set(shares):
                assert time.monotonic() < deadline, first.explain("the worker was not replaced")
                time.sleep(0.05)
            active_after_worker_replaced = scrape_until(
                first, ACTIVE_REQUESTS.full_name(), expected_open
            )
            streams_still_open = sum(not h.ended.is_set() for h in held)
            requests_after_worker_replaced = scrape(first, REQUESTS.full_name())
            active_before_kill = scrape(first, ACTIVE_REQUESTS.full_name())
            first.kill()  # SIGKILL to uvicorn's parent and both workers at once
            for h in held:
                h.ended.wait(30)
        live_gauge_files_left = sorted(p.name for p in multiproc_dir.glob("gauge_live*.db"))
        with running(
            start_ccobs("proxy", *args, log_path=tmp_path / "second.log", env=env)
        ) as second:
            send_plain(second, M_REQUESTS)
            yield Restart(
                first=first,
                second=second,
                killed_worker_streams=shares[victim],
                active_after_worker_replaced=active_after_worker_replaced,
                streams_still_open=streams_still_open,
                requests_after_worker_replaced=requests_after_worker_replaced,
                active_before_kill=active_before_kill,
                live_gauge_files_left=live_gauge_files_left,
                requests_after_restart=scrape_until(second, REQUESTS.full_name(), M_REQUESTS),
                active_after_restart=scrape_until(second, ACTIVE_REQUESTS.full_name(), 0),
            )


def test_killed_worker_had_requests_in_flight(restart: Restart) -> None:
    """The worker killed while the service runs was serving streams: the case where its
    share of the gauge could outlive it."""
    assert restart.killed_worker_streams >= 1, restart.first.explain("the victim was idle")


def test_replaced_worker_leaves_no_requests_in_the_gauge(restart: Restart) -> None:
    """After uvicorn replaces a killed worker, the gauge counts only the streams really
    still open (on the surviving worker), not the dead worker's."""
    assert restart.active_after_worker_replaced == restart.streams_still_open, (
        restart.first.explain("active_requests after one worker was replaced")
    )


def test_replaced_worker_keeps_its_counts(restart: Restart) -> None:
    """Counters never go down while the service runs: requests a killed worker served
    stay in the totals after it is replaced."""
    assert restart.requests_after_worker_replaced == N_REQUESTS, restart.first.explain(
        "requests_total after one worker was replaced"
    )


def test_killed_run_leaves_requests_in_flight_in_its_files(restart: Restart) -> None:
    """The full kill is the hard case: streams were in flight, and the workers' live-gauge
    files, never marked dead, were still there for the restart to find."""
    assert restart.active_before_kill >= 1, restart.first.explain("nothing in flight at the kill")
    assert restart.live_gauge_files_left, restart.first.explain("no live-gauge file left behind")


def test_restart_on_the_same_directory_starts_cleanly(restart: Restart) -> None:
    """Leftover files of dead workers must not stop or trouble the next run."""
    assert restart.second.process.poll() is None, restart.second.explain("the restart exited")
    complaints = [
        line
        for line in restart.second.log().splitlines()
        if "Traceback" in line or '"level": "error"' in line
    ]
    assert complaints == [], restart.second.explain("errors after the restart")


def test_requests_total_after_restart_counts_this_run_only(restart: Restart) -> None:
    """The killed run's counts are neither added again nor lost halfway: the restarted
    proxy counts from zero, exactly the requests it served."""
    assert restart.requests_after_restart == M_REQUESTS, restart.second.explain(
        f"requests_total after restart (first run: {N_REQUESTS})"
    )


def test_active_requests_is_zero_when_idle_after_restart(restart: Restart) -> None:
    """Requests that were in flight in killed workers are in flight nowhere: the gauge
    must not keep them, or dashboards and alerts see phantom load forever."""
    assert restart.active_after_restart == 0, restart.second.explain(
        f"active_requests after restart ({restart.active_before_kill:g} were in flight "
        "when the first run was killed)"
    )
