"""Benchmark 6: thousands of concurrent slow streams through ``ccobs proxy``.

``python -m benchmarks.streams`` (``make bench-streams``) starts, each in a
process of its own on loopback:

- an upstream streaming slowly: one text delta every ``--interval`` seconds for
  ``--duration`` seconds, each delta stamped with the sender's monotonic clock.
  By default the lean one (:mod:`benchmarks.stamped_upstream`, the mock's
  stream for a fraction of its CPU); ``--upstream mock`` runs the mock itself
  (uvicorn, uvloop, httptools; :attr:`ccobs.demo.decisions.UpstreamConfig.stamp_deltas`);
- ``ccobs proxy`` (the command, with ``ccobs[server]``), one process or
  ``--workers 2``; with ``--metrics-listener`` also ``--metrics-port``;
- the load generator (:mod:`benchmarks.stream_client`), holding N streams.

For each N the load generator runs once straight at the upstream (``direct``:
the delay the upstream and the client cause by themselves on this machine) and
once through each proxy. Measured: the proxy's resident memory per open stream
(RSS of its processes with the streams open minus before them, over N), its
CPU per relayed event (utime + stime over the run / events the client got,
request set-up included), the upstream's and the load generator's CPU per
event (on two cores all three share the machine), the delay from an event's
stamp to its arrival at the client (p50, p99; ``added`` is proxied minus
direct), ``GET /metrics`` every second during the ramp and in the steady state
(and on the listener's port), and whether every stream ended whole and was
counted once (the growth of ``tokens_total`` against the tokens the clients saw).

``--find-limit`` (``make bench-streams-limit``, :mod:`benchmarks.stream_limit`)
ramps N instead, per worker count, until a run breaks down.

Writes its section of ``benchmarks/RESULTS.md`` between its own markers;
``--no-write`` prints the JSON only. Not part of ``make bench`` (it takes
minutes); a smoke test runs it with 20 streams for 2 s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CLOCK_TICKS,
    PYTHON,
    REPO,
    bench_env,
    median,
    python_server,
    replace_marked_section,
)
from benchmarks.stamped_upstream import bench_config
from ccobs.proxy.file_limit import raise_open_file_limit
from ccobs.stack.processes import LOOPBACK, ServerProcess, free_port, start_server

INTERVAL_ENV = "BENCH_STREAM_INTERVAL"
EVENTS_ENV = "BENCH_STREAM_EVENTS"
RESULTS = Path(__file__).with_name("RESULTS.md")
RAW = Path(__file__).with_name("streams_latest.json")
"""The last written run's raw data: thousands of lines, kept out of RESULTS.md."""
BEGIN, END = "<!-- ccobs-bench:streams:begin -->", "<!-- ccobs-bench:streams:end -->"
PAGE = os.sysconf("SC_PAGE_SIZE")


def upstream_app() -> Any:
    """The mock upstream streaming ``$BENCH_STREAM_EVENTS`` stamped deltas, one per interval."""
    from ccobs.demo.upstream import create_upstream_app

    return create_upstream_app(
        bench_config(float(os.environ[INTERVAL_ENV]), int(os.environ[EVENTS_ENV]))
    )


_UPSTREAM_CODE = {
    "mock": (
        "import uvicorn\n"
        "from benchmarks.streams import upstream_app\n"
        f"uvicorn.run(upstream_app(), host={LOOPBACK!r}, port=PORT, loop='uvloop',\n"
        "            http='httptools', access_log=False, log_level='warning', log_config=None,\n"
        "            backlog=8192)\n"
    ),
    "lean": (
        "import os\n"
        "from benchmarks.stamped_upstream import main\n"
        f"main(['--host', {LOOPBACK!r}, '--port', str(PORT), '--interval',\n"
        f"      os.environ[{INTERVAL_ENV!r}], '--events', os.environ[{EVENTS_ENV!r}]])\n"
    ),
}
"""How each upstream is started: ``mock`` is ``ccobs upstream``'s app, ``lean`` the
benchmark's own (:mod:`benchmarks.stamped_upstream`), the same stream for less CPU."""


def _descendants(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            found += _descendants(int(child))
    return found


def _stat(pids: Sequence[int]) -> tuple[int, int]:
    """(CPU ticks, RSS bytes) of ``pids`` together."""
    ticks = rss = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])
        rss += int(fields[21]) * PAGE
    return ticks, rss


def _get(url: str, path: str) -> tuple[float, bytes]:
    """Seconds to GET ``path`` whole over a fresh connection, and the body."""
    host, port = url.removeprefix("http://").split(":")
    started = time.perf_counter()
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("GET", path)
        body = connection.getresponse().read()
    finally:
        connection.close()
    return time.perf_counter() - started, body


def _tokens_total(exposition: bytes) -> float:
    total = 0.0
    for line in exposition.decode().splitlines():
        if line.startswith("ccproxy_tokens_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


@contextmanager
def _soft_file_limit(soft: int | None) -> Iterator[None]:
    """Processes started inside start with this soft ``RLIMIT_NOFILE`` (many systems' 1024)."""
    import resource

    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft is not None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, before[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


@contextmanager
def _proxy(
    upstream: str,
    workers: int,
    pythonpath: str | None,
    nofile: int | None,
    metrics_port: int | None = None,
) -> Iterator[ServerProcess]:
    """``ccobs proxy`` with ``workers``; ``metrics_port``: its ``--metrics-port`` listener."""
    listener = ["--metrics-port", str(metrics_port)] if metrics_port is not None else []
    ccobs = str(Path(PYTHON).with_name("ccobs"))
    env = {"CCOBS_LOG_LEVEL": "INFO"}
    if pythonpath:  # the proxy from another tree (a commit before a change)
        env["PYTHONPATH"] = os.pathsep.join([pythonpath, str(REPO)])
    with (
        tempfile.TemporaryDirectory(prefix="ccobs-bench-streams-") as directory,
        _soft_file_limit(nofile),
    ):
        server = start_server(
            ccobs,
            lambda _dir, port: [
                "proxy", "--host", LOOPBACK, "--port", str(port), "--upstream", upstream,
                "--workers", str(workers), *listener,
            ],
            workdir=Path(directory),
            ready_path="/health",
            name=f"proxy-w{workers}",
            env=bench_env(env),
            timeout=60,
        )  # fmt: skip
        try:
            yield server
        finally:
            server.stop()


def _load(
    url: str,
    streams: int,
    ramp: float,
    timeout: float,
    server: ServerProcess | None,
    settle: float,
    upstream: ServerProcess | None = None,
    listener_url: str | None = None,
) -> dict[str, Any]:
    """Run the load generator against ``url``; watch ``server`` (a proxy) meanwhile.

    ``upstream``: its CPU over the run is measured too (its cost per event, stated
    beside the proxy's since on two cores they share the machine).
    ``listener_url``: the proxy's ``--metrics-port`` listener, scraped beside its port.
    """
    pids = _descendants(server.pid) if server is not None and server.pid else []
    ticks0, rss0 = _stat(pids)
    upstream_ticks0 = _stat([upstream.pid])[0] if upstream is not None and upstream.pid else 0
    tokens0 = _tokens_total(_get(url, "/metrics")[1]) if server is not None else 0.0
    started = time.monotonic()
    client = subprocess.Popen(
        [PYTHON, "-m", "benchmarks.stream_client", url, "--streams", str(streams),
         "--ramp", str(ramp), "--timeout", str(timeout)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=bench_env(), cwd=REPO,
    )  # fmt: skip
    watched: dict[str, Any] = {}
    try:
        if server is not None:
            watched = _watch(
                url, server, client, started, ramp + settle, rss0, streams, listener_url
            )
        try:
            out, err = client.communicate(timeout=ramp * 3 + timeout + 120)
        except subprocess.TimeoutExpired:  # the load generator starved: recorded, not raised
            client.kill()
            client.communicate()
            return {"streams": streams, "completed": 0, "failed": {"load generator hung": streams},
                    "hung": True, **watched}  # fmt: skip
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    if client.returncode != 0:
        raise RuntimeError(f"stream_client failed ({client.returncode}):\n{err.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["wall_seconds"] = time.monotonic() - started
    result["client_cpu_per_event_us"] = result["cpu_seconds"] / max(1, result["events"]) * 1e6
    result["client_bytes_per_stream"] = result["rss_growth_bytes"] / max(1, streams)
    if upstream is not None and upstream.pid:
        upstream_cpu = (_stat([upstream.pid])[0] - upstream_ticks0) / CLOCK_TICKS
        result["upstream_cpu_seconds"] = upstream_cpu
        result["upstream_cpu_per_event_us"] = upstream_cpu / max(1, result["events"]) * 1e6
    if server is not None:
        ramped = result["ramp_seconds"]
        _split_scrapes(watched, ramped, settle, result["seconds"] - ramped)
        time.sleep(0.5)  # the last requests' records reach the metrics after their last byte
        ticks1 = _stat(_descendants(server.pid) if server.pid else [])[0]
        tokens1 = tokens0 - 1.0  # unknown: shown as miscounted
        for _ in range(10):
            try:
                tokens1 = _tokens_total(_get(url, "/metrics")[1])
                break
            except OSError:
                time.sleep(1)
        cpu = (ticks1 - ticks0) / CLOCK_TICKS
        result.update(watched)
        result["proxy_cpu_seconds"] = cpu
        result["proxy_cpu_per_event_us"] = cpu / max(1, result["events"]) * 1e6
        result["metrics_tokens"] = tokens1 - tokens0
        result["miscounted_tokens"] = result["metrics_tokens"] - result["client_tokens"]
    return result


SCRAPE_EVERY = 1.0
"""Seconds between the starts of two ``/metrics`` scrapes while the streams run."""


class _Scraper(threading.Thread):
    """Scrapes ``url``'s ``/metrics`` every second until stopped, timing each to its last byte.

    Each scrape is a fresh connection, as a scraper's first is (60 s at most).
    A thread per scraped port, so that a scrape that hangs on one port does not
    delay the other's.
    """

    def __init__(self, url: str, started: float) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.started = started
        self.stopped = threading.Event()
        self.scrapes: list[dict[str, float]] = []
        self.errors: list[dict[str, Any]] = []
        self.body = b""

    def run(self) -> None:
        while not self.stopped.is_set():
            at = time.monotonic() - self.started
            try:
                seconds, self.body = _get(self.url, "/metrics")
            except OSError as exc:  # the proxy out of file descriptors, or a timeout
                self.errors.append({"at": at, "error": f"{type(exc).__name__}: {exc}"})
            else:
                self.scrapes.append({"at": at, "ms": seconds * 1000})
            self.stopped.wait(max(0.0, self.started + at + SCRAPE_EVERY - time.monotonic()))


def _watch(
    url: str,
    server: ServerProcess,
    client: subprocess.Popen[bytes],
    started: float,
    open_after: float,
    rss0: int,
    streams: int,
    listener_url: str | None = None,
) -> dict[str, Any]:
    """Scrape ``/metrics`` every second while the load generator runs, ramp included.

    ``listener_url``: the proxy's ``--metrics-port`` listener, scraped too, at the
    same time. RSS is sampled from ``open_after`` seconds on (every stream open):
    the highest sample counts, since under load the ramp can run late.
    """
    scrapers = [_Scraper(u, started) for u in (url, listener_url) if u is not None]
    for scraper in scrapers:
        scraper.start()
    rss_open = rss0
    try:
        while client.poll() is None:
            if time.monotonic() - started >= open_after:
                rss_open = max(rss_open, _stat(_descendants(server.pid) if server.pid else [])[1])
            time.sleep(SCRAPE_EVERY)
    finally:
        for scraper in scrapers:
            scraper.stopped.set()
        for scraper in scrapers:
            scraper.join(timeout=70)
    main = scrapers[0]
    watched = {
        "rss_idle_bytes": rss0,
        "rss_open_bytes": rss_open,
        "rss_per_stream_bytes": (rss_open - rss0) / streams,
        "scrapes": main.scrapes,
        "scrape_bytes": len(main.body),
        "scrape_errors": main.errors,
    }
    if listener_url is not None:
        watched["listener_scrapes"] = scrapers[1].scrapes
        watched["listener_scrape_errors"] = scrapers[1].errors
    return watched


def _split_scrapes(
    watched: dict[str, Any], ramp_seconds: float, settle: float, streams_end: float
) -> None:
    """Name the scrapes by phase: during the ramp, and in the steady state after it.

    Ramp: started while the streams were being opened (the load generator's
    start-up, a fraction of a second, included). Steady: started ``settle``
    seconds after the last stream opened and ended before the first streams
    could end (``streams_end``: the load generator's run less its ramp), so
    every stream was open throughout.
    """
    for source, prefix in (("scrapes", "scrape_ms"), ("listener_scrapes", "listener_scrape_ms")):
        scrapes = watched.get(source)
        if scrapes is None:
            continue
        watched[f"{prefix}_ramp"] = [s["ms"] for s in scrapes if s["at"] < ramp_seconds + 0.5]
        watched[prefix] = [
            s["ms"]
            for s in scrapes
            if s["at"] >= ramp_seconds + settle and s["at"] + s["ms"] / 1000 <= streams_end
        ]


class Bench:
    """The upstream and the proxies of one benchmark run, started once, measured at any N."""

    def __init__(
        self,
        upstream: ServerProcess,
        proxies: dict[int, ServerProcess],
        interval: float,
        duration: float,
        ramp: float | None,
        listeners: dict[int, str] | None = None,
    ) -> None:
        self.upstream = upstream
        self.proxies = proxies
        self.listeners = listeners or {}
        self.interval = interval
        self.duration = duration
        self.ramp = ramp
        self.timeout = duration * 2 + 30  # a stream not done by then has fallen too far behind

    def measure(self, n: int, route: str) -> dict[str, Any]:
        """N streams at once through ``route``: ``direct`` or ``workers_<w>``."""
        ramp = self.ramp if self.ramp is not None else max(1.0, n / 1000)
        settle = min(3.0, self.duration / 3)
        print(f"{n} streams, {route} ...", file=sys.stderr, flush=True)
        if route == "direct":
            result = _load(self.upstream.url, n, ramp, self.timeout, None, settle, self.upstream)
        else:
            w = int(route.removeprefix("workers_"))
            proxy = self.proxies[w]
            result = _load(
                proxy.url, n, ramp, self.timeout, proxy, settle, self.upstream,
                self.listeners.get(w),
            )  # fmt: skip
        if not result.get("hung"):
            result["late_seconds"] = late_seconds(result, self.duration, self.interval)
        return result


def late_seconds(result: dict[str, Any], duration: float, interval: float) -> float:
    """How long after its schedule the last stream ended: the run, less the ramp and one stream.

    A stamp is taken when the upstream sends, so an upstream starved of CPU sends
    late without the delay showing it; the streams' end shows it.
    """
    return float(result["seconds"] - result["ramp_seconds"] - duration - interval)


@contextmanager
def bench(
    workers: Sequence[int],
    interval: float,
    duration: float,
    ramp: float | None = None,
    pythonpath: str | None = None,
    nofile: int | None = None,
    upstream: str = "lean",
    metrics_listener: bool = False,
) -> Iterator[Bench]:
    """Start the upstream (``lean`` or ``mock``) and one proxy per worker count.

    ``metrics_listener``: each proxy also serves ``/metrics`` on a port of its own
    (``--metrics-port``), scraped beside its main port.
    """
    raise_open_file_limit()  # children inherit it: the upstream and the load generator need it
    events = max(1, round(duration / interval))
    env = {INTERVAL_ENV: str(interval), EVENTS_ENV: str(events)}
    code = _UPSTREAM_CODE[upstream]
    with python_server("streams-upstream", code, env=env, timeout=60) as server:
        proxies = {}
        listeners = {}
        stack = []
        try:
            for w in workers:
                port = free_port() if metrics_listener else None
                cm = _proxy(server.url, w, pythonpath, nofile, port)
                proxies[w] = cm.__enter__()
                stack.append(cm)
                if port is not None:
                    listeners[w] = f"http://{LOOPBACK}:{port}"
            yield Bench(server, proxies, interval, duration, ramp, listeners)
        finally:
            for cm in reversed(stack):
                cm.__exit__(None, None, None)


def run(
    counts: Sequence[int],
    workers: Sequence[int],
    interval: float,
    duration: float,
    ramp: float | None = None,
    pythonpath: str | None = None,
    direct: bool = True,
    nofile: int | None = None,
    partial: Path | None = None,
    upstream: str = "lean",
    metrics_listener: bool = False,
) -> dict[str, Any]:
    """Each N through each route, in order: ``direct`` first, then each proxy."""
    result: dict[str, Any] = {
        "interval_seconds": interval,
        "events_per_stream": max(1, round(duration / interval)),
        "workers": list(workers),
        "upstream": upstream,
        "proxy_soft_nofile_at_start": nofile,
        "runs": {},
    }
    result["metrics_listener"] = metrics_listener
    with bench(
        workers, interval, duration, ramp, pythonpath, nofile, upstream, metrics_listener
    ) as b:
        for n in counts:
            runs: dict[str, Any] = {}
            routes = (["direct"] if direct else []) + [f"workers_{w}" for w in workers]
            for route in routes:
                runs[route] = b.measure(n, route)
                if partial is not None:  # a later run that fails loses nothing before it
                    partial.write_text(json.dumps({**result, "current": runs}, indent=1))
            result["runs"][str(n)] = runs
            if partial is not None:
                partial.write_text(json.dumps(result, indent=1))
    return result


def _ms(values: Sequence[float]) -> str:
    return f"{median(values):.0f} / {max(values):.0f} ms" if values else "none"


def _row(n: str, route: str, r: dict[str, Any], base: dict[str, Any] | None, listener: bool) -> str:
    failed = ", ".join(f"{count} {why}" for why, count in r["failed"].items()) or "0"
    if r.get("hung"):
        return f"| {n} | {route} | {r['completed']} / {failed} |" + " |" * (10 + listener)
    d = r["delay_ms"]
    added = ""
    if base is not None and not base.get("hung") and route != "direct":
        b = base["delay_ms"]
        added = f"{d['p50'] - b['p50']:+.1f} / {d['p99'] - b['p99']:+.1f} ms"
    cells = [""] * (5 + listener)
    if route != "direct":
        errors = len(r["scrape_errors"])
        cells = [
            f"{r['proxy_cpu_per_event_us']:.0f} µs",
            f"{r['rss_per_stream_bytes'] / 1024:.0f} KiB",
            _ms(r.get("scrape_ms_ramp", [])) + (f" ({errors} failed)" if errors else ""),
            _ms(r["scrape_ms"]),
        ]
        if listener:
            errors = len(r.get("listener_scrape_errors", []))
            cells.append(
                _ms(r.get("listener_scrape_ms_ramp", []) + r.get("listener_scrape_ms", []))
                + (f" ({errors} failed)" if errors else "")
            )
        cells.append(
            f"{r['miscounted_tokens']:+.0f}"
            if r["completed"] == r["streams"]
            else "n/a: streams unfinished"
        )
    upstream = r.get("upstream_cpu_per_event_us")
    late = f"{r['late_seconds']:.1f} s" if "late_seconds" in r else ""
    return (
        f"| {n} | {route} | {r['completed']} / {failed} | {late} |"
        f" {d['p50']:.1f} / {d['p99']:.1f} ms | "
        f"{added} | {' | '.join(cells)} | "
        f"{f'{upstream:.0f} µs' if upstream is not None else ''} | "
        f"{r['client_cpu_per_event_us']:.0f} µs |"
    )


def table(data: dict[str, Any]) -> list[str]:
    """One row per N and route: what the clients saw and what each process spent."""
    listener = bool(data.get("metrics_listener"))
    lines = [
        "| N | route | completed / failed | last stream late by | delay p50 / p99 |"
        " added p50 / p99 |"
        " proxy CPU per event | proxy RSS per stream |"
        " `/metrics` during the ramp, median / max | `/metrics` steady, median / max |"
        + (" `--metrics-port` whole run, median / max |" if listener else "")
        + " tokens miscounted | upstream CPU per event | load generator CPU per event |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if listener else ""),
    ]
    for n, runs in data["runs"].items():
        base = runs.get("direct")
        for route, r in runs.items():
            lines.append(_row(n, route.replace("_", " "), r, base, listener))
    return lines


def section(data: dict[str, Any], command: str) -> list[str]:
    """The rewritten part of RESULTS.md: how it was measured, the table, the raw data."""
    return [
        BEGIN,
        "### Measured",
        "",
        f"`{command}`: the {data.get('upstream', 'mock')} upstream streams one stamped text"
        " delta every",
        f"{data['interval_seconds'] * 1000:.0f} ms, {data['events_per_stream']} per stream;",
        "`ccobs proxy` relays them (started with "
        + (
            "the system's open-file limits"
            if data["proxy_soft_nofile_at_start"] is None
            else f"a soft open-file limit of {data['proxy_soft_nofile_at_start']}"
        )
        + "); the load generator",
        "(`benchmarks/stream_client.py`, one process, asyncio protocols on uvloop) holds N",
        "streams. `direct`: the load",
        "generator straight at the upstream. Delay: stamp to arrival at the client; `added`:",
        "proxied minus direct at the same N. Proxy CPU per event: utime + stime of its",
        "processes over the run / events relayed (request set-up included). RSS per stream:",
        "the proxy's RSS with the streams open minus before, over N. Tokens miscounted:",
        "`tokens_total` growth minus the tokens the clients saw. A stream not done within",
        "twice its duration (plus 30 s) is counted failed.",
        "",
        *table(data),
        "",
        *(_limit_lines(data) if "limits" in data else []),
        f"Raw data, every scrape included: [`benchmarks/{RAW.name}`]({RAW.name}).",
        END,
    ]


def _limit_lines(data: dict[str, Any]) -> list[str]:
    from benchmarks.stream_limit import summary

    load = "load average {:.1f} at the start, {:.1f} at the end".format(
        data["load_average_at_start"][0], data["load_average_at_end"][0]
    )
    return [
        "The limit, ramping N until a run breaks down (any stream failed or miscounted, the last",
        "stream more than 2 s late, or the",
        f"added delay's p50 over {data['max_added_p50_ms']:.0f} ms or its p99 over"
        f" {data['max_added_p99_ms']:.0f} ms); {load}:",
        "",
        *summary(data["limits"]),
        "",
    ]


def write(lines: list[str]) -> None:
    replace_marked_section(RESULTS, BEGIN, END, lines)


LIMIT_COUNTS = ",".join(str(n) for n in range(200, 3001, 200))
"""The N the limit search ramps through, in order, until a run breaks down."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="thousands of concurrent streams")
    parser.add_argument("--streams", help="comma-separated N (default 100,1000,5000; "
                        f"with --find-limit {LIMIT_COUNTS})")  # fmt: skip
    parser.add_argument("--workers", default="1,2", help="comma-separated proxy worker counts")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between deltas")
    parser.add_argument("--duration", type=float, help="seconds per stream (30; 10 to find limits)")
    parser.add_argument("--ramp", type=float, default=None, help="seconds to open N streams")
    parser.add_argument(
        "--upstream",
        choices=sorted(_UPSTREAM_CODE),
        default="lean",
        help="lean: benchmarks/stamped_upstream.py; mock: ccobs upstream's app",
    )
    parser.add_argument(
        "--find-limit",
        action="store_true",
        help="ramp N per worker count until the added delay or completion breaks down",
    )
    parser.add_argument(
        "--metrics-listener",
        action="store_true",
        help="start the proxies with --metrics-port and scrape that port too",
    )
    parser.add_argument(
        "--max-added-p99-ms",
        type=float,
        default=100.0,
        help="with --find-limit: the added delay p99 past which a run broke down",
    )
    parser.add_argument(
        "--max-added-p50-ms",
        type=float,
        default=50.0,
        help="with --find-limit: the added delay p50 past which a run broke down",
    )
    parser.add_argument(
        "--budget", type=float, default=540.0, help="seconds the limit search may take"
    )
    parser.add_argument("--no-direct", action="store_true", help="skip the direct runs")
    parser.add_argument("--proxy-pythonpath", help="run the proxy from this tree (before)")
    parser.add_argument(
        "--proxy-nofile", type=int, help="start the proxy with this soft open-file limit"
    )
    parser.add_argument("--no-write", action="store_true", help="print the JSON only")
    parser.add_argument("--partial", type=Path, help="write the results so far here after each run")
    args = parser.parse_args(argv)
    workers = [int(x) for x in args.workers.split(",")]
    if args.find_limit:
        data = _find_limit(args, workers)
    else:
        data = run(
            [int(x) for x in (args.streams or "100,1000,5000").split(",")],
            workers,
            args.interval,
            args.duration or 30.0,
            args.ramp,
            args.proxy_pythonpath,
            direct=not args.no_direct,
            nofile=args.proxy_nofile,
            partial=args.partial,
            upstream=args.upstream,
            metrics_listener=args.metrics_listener,
        )
    print(json.dumps(data, indent=1))
    if not args.no_write:
        command = "python -m benchmarks.streams " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        RAW.write_text(json.dumps(data, indent=1) + "\n")
        write(section(data, command.strip()))
    return 0


def _find_limit(args: argparse.Namespace, workers: list[int]) -> dict[str, Any]:
    from benchmarks.stream_limit import find_limits

    duration = args.duration or 10.0
    data: dict[str, Any] = {
        "interval_seconds": args.interval,
        "events_per_stream": max(1, round(duration / args.interval)),
        "workers": workers,
        "upstream": args.upstream,
        "proxy_soft_nofile_at_start": args.proxy_nofile,
        "load_average_at_start": os.getloadavg(),
        "max_added_p99_ms": args.max_added_p99_ms,
        "max_added_p50_ms": args.max_added_p50_ms,
        "runs": {},
    }
    counts = [int(x) for x in (args.streams or LIMIT_COUNTS).split(",")]
    data["metrics_listener"] = args.metrics_listener
    with bench(workers, args.interval, duration, args.ramp, args.proxy_pythonpath,
               args.proxy_nofile, args.upstream, args.metrics_listener) as b:  # fmt: skip
        data["limits"] = find_limits(
            b, workers, counts, args.budget, data, args.max_added_p99_ms, args.max_added_p50_ms
        )
    data["load_average_at_end"] = os.getloadavg()
    return data


if __name__ == "__main__":
    sys.exit(main())
