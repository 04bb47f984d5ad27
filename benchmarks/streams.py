"""Benchmark 6: thousands of concurrent slow streams through ``ccobs proxy``.

``python -m benchmarks.streams`` (``make bench-streams``) starts, each in a
process of its own on loopback:

- the mock upstream (uvicorn on uvloop and httptools) streaming slowly: one
  text delta every ``--interval`` seconds for ``--duration`` seconds, each
  delta stamped with the sender's monotonic clock
  (:attr:`ccobs.demo.decisions.UpstreamConfig.stamp_deltas`);
- ``ccobs proxy`` (the command, with ``ccobs[server]``), one process or
  ``--workers 2``;
- the load generator (:mod:`benchmarks.stream_client`), holding N streams.

For each N the load generator runs once straight at the mock (``direct``: the
delay the mock and the client cause by themselves on this machine) and once
through each proxy. Measured: the proxy's resident memory per open stream
(RSS of its processes with the streams open minus before them, over N), its
CPU per relayed event (utime + stime over the run / events the client got,
request set-up included), the delay from an event's stamp to its arrival at
the client (p50, p99; ``added`` is proxied minus direct), ``GET /metrics``
time under the load, and whether every stream ended whole and was counted
once (the growth of ``tokens_total`` against the tokens the clients saw).

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
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import CLOCK_TICKS, PYTHON, REPO, bench_env, median, python_server
from ccobs.proxy.file_limit import raise_open_file_limit
from ccobs.stack.processes import LOOPBACK, ServerProcess, start_server

INTERVAL_ENV = "BENCH_STREAM_INTERVAL"
EVENTS_ENV = "BENCH_STREAM_EVENTS"
RESULTS = Path(__file__).with_name("RESULTS.md")
BEGIN, END = "<!-- ccobs-bench:streams:begin -->", "<!-- ccobs-bench:streams:end -->"
PAGE = os.sysconf("SC_PAGE_SIZE")


def upstream_app() -> Any:
    """The mock upstream streaming ``$BENCH_STREAM_EVENTS`` stamped deltas, one per interval."""
    from ccobs.demo.upstream import Delay, UpstreamConfig, create_upstream_app

    interval = float(os.environ[INTERVAL_ENV])
    events = int(os.environ[EVENTS_ENV])
    return create_upstream_app(
        UpstreamConfig(
            seed=1,
            ttft=Delay(interval),
            inter_token_delay=interval,
            tokens_per_delta=1,
            output_tokens=(events, events),
            stamp_deltas=True,
            max_recorded_decisions=0,
        )
    )


_UPSTREAM_CODE = (
    "import uvicorn\n"
    "from benchmarks.streams import upstream_app\n"
    f"uvicorn.run(upstream_app(), host={LOOPBACK!r}, port=PORT, loop='uvloop', http='httptools',\n"
    "            access_log=False, log_level='warning', log_config=None, backlog=8192)\n"
)


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
    upstream: str, workers: int, pythonpath: str | None, nofile: int | None
) -> Iterator[ServerProcess]:
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
                "--workers", str(workers),
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
) -> dict[str, Any]:
    """Run the load generator against ``url``; watch ``server`` (a proxy) meanwhile."""
    pids = _descendants(server.pid) if server is not None and server.pid else []
    ticks0, rss0 = _stat(pids)
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
            time.sleep(ramp + settle)  # every stream open and flowing
            pids = _descendants(server.pid) if server.pid else []
            rss_open = _stat(pids)[1]
            scrapes = []
            scrape_errors: list[str] = []
            body = b""
            for _ in range(5):
                if client.poll() is not None:
                    break
                # Under load the ramp can run late: the highest RSS seen while streams are open.
                rss_open = max(rss_open, _stat(_descendants(server.pid) if server.pid else [])[1])
                try:
                    seconds, body = _get(url, "/metrics")
                except OSError as exc:  # the proxy out of file descriptors, say
                    scrape_errors.append(f"{type(exc).__name__}: {exc}")
                else:
                    scrapes.append(seconds)
                time.sleep(0.5)
            watched = {
                "rss_idle_bytes": rss0,
                "rss_open_bytes": rss_open,
                "rss_per_stream_bytes": (rss_open - rss0) / streams,
                "scrape_ms": [s * 1000 for s in scrapes],
                "scrape_bytes": len(body),
                "scrape_errors": scrape_errors,
            }
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
    if server is not None:
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
) -> dict[str, Any]:
    raise_open_file_limit()  # children inherit it: the mock and the load generator need it
    events = max(1, round(duration / interval))
    env = {INTERVAL_ENV: str(interval), EVENTS_ENV: str(events)}
    result: dict[str, Any] = {
        "interval_seconds": interval,
        "events_per_stream": events,
        "workers": list(workers),
        "proxy_soft_nofile_at_start": nofile,
        "runs": {},
    }
    timeout = duration * 2 + 30  # a stream not done by then has fallen too far behind
    with python_server("streams-upstream", _UPSTREAM_CODE, env=env, timeout=60) as upstream:
        proxies = {}
        stack = []
        try:
            for w in workers:
                cm = _proxy(upstream.url, w, pythonpath, nofile)
                proxies[w] = cm.__enter__()
                stack.append(cm)
            for n in counts:
                ramp_n = ramp if ramp is not None else max(1.0, n / 1000)
                settle = min(3.0, duration / 3)
                runs: dict[str, Any] = {}
                if direct:
                    print(f"{n} streams direct ...", file=sys.stderr, flush=True)
                    runs["direct"] = _load(upstream.url, n, ramp_n, timeout, None, settle)
                    if partial is not None:
                        partial.write_text(json.dumps({**result, "current": runs}, indent=1))
                for w, proxy in proxies.items():
                    print(f"{n} streams, proxy --workers {w} ...", file=sys.stderr, flush=True)
                    runs[f"workers_{w}"] = _load(proxy.url, n, ramp_n, timeout, proxy, settle)
                    if partial is not None:
                        partial.write_text(json.dumps({**result, "current": runs}, indent=1))
                result["runs"][str(n)] = runs
                if partial is not None:  # a later run that fails loses nothing before it
                    partial.write_text(json.dumps(result, indent=1))
        finally:
            for cm in reversed(stack):
                cm.__exit__(None, None, None)
    return result


def _row(n: str, route: str, r: dict[str, Any], base: dict[str, Any] | None) -> str:
    failed = ", ".join(f"{count} {why}" for why, count in r["failed"].items()) or "0"
    if r.get("hung"):
        return f"| {n} | {route} | {r['completed']} / {failed} | | | | | | | |"
    d = r["delay_ms"]
    added = ""
    if base is not None and not base.get("hung") and route != "direct":
        b = base["delay_ms"]
        added = f"{d['p50'] - b['p50']:+.1f} / {d['p99'] - b['p99']:+.1f} ms"
    cells = ["", "", "", ""]
    if route != "direct":
        scrapes = r["scrape_ms"]
        cells = [
            f"{r['proxy_cpu_per_event_us']:.0f} µs",
            f"{r['rss_per_stream_bytes'] / 1024:.0f} KiB",
            (f"{median(scrapes):.0f} / {max(scrapes):.0f} ms" if scrapes else "no answer")
            + (f" ({len(r['scrape_errors'])} failed)" if r["scrape_errors"] else ""),
            f"{r['miscounted_tokens']:+.0f}"
            if r["completed"] == r["streams"]
            else "n/a: streams unfinished",
        ]
    return (
        f"| {n} | {route} | {r['completed']} / {failed} | {d['p50']:.1f} / {d['p99']:.1f} ms | "
        f"{added} | {' | '.join(cells)} | {r['client_cpu_per_event_us']:.0f} µs |"
    )


def table(data: dict[str, Any]) -> list[str]:
    """One row per N and route: what the clients saw and what the proxy spent."""
    lines = [
        "| N | route | completed / failed | delay p50 / p99 | added p50 / p99 |"
        " proxy CPU per event | proxy RSS per stream | `/metrics` scrape median / max |"
        " tokens miscounted | load generator CPU per event |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, runs in data["runs"].items():
        base = runs.get("direct")
        for route, r in runs.items():
            lines.append(_row(n, route.replace("_", " "), r, base))
    return lines


def section(data: dict[str, Any], command: str) -> list[str]:
    """The rewritten part of RESULTS.md: how it was measured, the table, the raw data."""
    return [
        BEGIN,
        "### Measured",
        "",
        f"`{command}`: the mock streams one stamped text delta every",
        f"{data['interval_seconds'] * 1000:.0f} ms, {data['events_per_stream']} per stream;",
        "`ccobs proxy` relays them (started with a soft open-file limit of",
        f"{data['proxy_soft_nofile_at_start']}); the load generator",
        "(`benchmarks/stream_client.py`, one process, asyncio protocols on uvloop) holds N",
        "streams. `direct`: the load",
        "generator straight at the mock. Delay: stamp to arrival at the client; `added`:",
        "proxied minus direct at the same N. Proxy CPU per event: utime + stime of its",
        "processes over the run / events relayed (request set-up included). RSS per stream:",
        "the proxy's RSS with the streams open minus before, over N. Tokens miscounted:",
        "`tokens_total` growth minus the tokens the clients saw. A stream not done within",
        "twice its duration (plus 30 s) is counted failed.",
        "",
        *table(data),
        "",
        "<details><summary>raw data</summary>",
        "",
        "```json",
        json.dumps(data, indent=1),
        "```",
        "",
        "</details>",
        END,
    ]


def write(lines: list[str]) -> None:
    text = "\n".join(lines)
    old = RESULTS.read_text() if RESULTS.exists() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + text + rest.split(END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    RESULTS.write_text(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="thousands of concurrent streams")
    parser.add_argument("--streams", default="100,1000,5000", help="comma-separated N")
    parser.add_argument("--workers", default="1,2", help="comma-separated proxy worker counts")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between deltas")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per stream")
    parser.add_argument("--ramp", type=float, default=None, help="seconds to open N streams")
    parser.add_argument("--no-direct", action="store_true", help="skip the direct runs")
    parser.add_argument("--proxy-pythonpath", help="run the proxy from this tree (before)")
    parser.add_argument(
        "--proxy-nofile", type=int, help="start the proxy with this soft open-file limit"
    )
    parser.add_argument("--no-write", action="store_true", help="print the JSON only")
    parser.add_argument("--partial", type=Path, help="write the results so far here after each run")
    args = parser.parse_args(argv)
    data = run(
        [int(x) for x in args.streams.split(",")],
        [int(x) for x in args.workers.split(",")],
        args.interval,
        args.duration,
        args.ramp,
        args.proxy_pythonpath,
        direct=not args.no_direct,
        nofile=args.proxy_nofile,
        partial=args.partial,
    )
    print(json.dumps(data, indent=1))
    if not args.no_write:
        command = "python -m benchmarks.streams " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        write(section(data, command.strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
