"""Shared pieces of the benchmarks: statistics, server subprocesses, the wrk load client.

Every server runs in a subprocess of its own, bound to a loopback port the OS
hands out, and is stopped when its ``with`` block ends, even on failure. Load
comes from ``wrk`` (a C client, so the load generator is not the bottleneck)
in yet another process.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccobs.stack.processes import LOOPBACK, ServerProcess, start_server

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def cpu_ticks(pid: int) -> int:
    """User + system CPU time of ``pid`` in clock ticks, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def bench_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for benchmark subprocesses: the repo importable, no stray CCOBS_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCOBS_", "PROMETHEUS_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


@contextmanager
def python_server(
    name: str,
    code: str,
    *,
    ready_path: str = "/health",
    env: Mapping[str, str] | None = None,
    launcher: Sequence[str] = (),
    timeout: float = 30.0,
) -> Iterator[ServerProcess]:
    """Run ``code`` (Python; ``PORT`` is set in its globals) as a server subprocess.

    ``launcher`` is a command the interpreter runs under (``valgrind ...``),
    and ``timeout`` how long the server may take to answer ``ready_path``.
    """
    workdir = Path(tempfile.mkdtemp(prefix=f"ccobs-bench-{name}-"))
    binary, *launcher_args = [*launcher, PYTHON]
    try:
        server = start_server(
            binary,
            lambda _dir, port: [*launcher_args, "-c", f"PORT = {port}\n{code}"],
            workdir=workdir,
            ready_path=ready_path,
            name=name,
            env=bench_env(env),
            timeout=timeout,
        )
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def uvicorn_code(
    factory: str, *, log_setup: str = "", loop: str = "asyncio", http: str = "h11"
) -> str:
    """Serve app factory ``module:function`` with uvicorn: one worker, no access log.

    The same settings for every variant a benchmark compares unless it says
    otherwise: asyncio loop, h11, access log off, uvicorn's own logging at warning.
    """
    module, function = factory.split(":")
    return (
        f"{log_setup}\n"
        "import uvicorn\n"
        f"from {module} import {function} as factory\n"
        f"uvicorn.run(factory(), host={LOOPBACK!r}, port=PORT, loop={loop!r}, http={http!r},\n"
        "            access_log=False, log_level='warning', log_config=None)\n"
    )


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


_WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nWRKJSON {"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """Closed-loop keep-alive load from one wrk thread; POSTs ``body`` when given."""
    wrk_binary = shutil.which("wrk")
    if wrk_binary is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    lines = []
    if body is not None:
        lines.append('wrk.method = "POST"')
        lines.append(f"wrk.body = {json.dumps(body.decode())}")
    for key, value in (headers or {}).items():
        lines.append(f'wrk.headers["{key}"] = {json.dumps(value)}')
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + _WRK_DONE)
    try:
        out = subprocess.run(
            [
                wrk_binary,
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    data = json.loads(out.split("WRKJSON", 1)[1])
    return LoadResult(
        requests=data["requests"],
        errors=data["errors"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
    )


def run_json(
    args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 300
) -> dict[str, Any]:
    """Run a benchmark child process that prints one JSON object as its last line."""
    out = subprocess.run(
        [PYTHON, *args],
        capture_output=True,
        text=True,
        env=bench_env(env),
        cwd=REPO,
        timeout=timeout,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def closed_loop_gets(url: str, path: str, total: int, connections: int) -> None:
    """``total`` keep-alive GETs of ``path``, ``connections`` at a time, an :class:`HttpProbe` each.

    Each connection sends its next request once the last one is answered in
    full; for a load whose size, not duration, is fixed (wrk fixes duration).
    """
    from concurrent.futures import ThreadPoolExecutor

    taken = itertools.count()  # ``next`` on it is atomic under the GIL

    def connection() -> None:
        probe = HttpProbe(url)
        try:
            raw = probe.request_bytes("GET", path)
            while next(taken) < total:
                probe.send(raw)
        finally:
            probe.close()

    with ThreadPoolExecutor(max_workers=connections) as pool:
        for running in [pool.submit(connection) for _ in range(connections)]:
            running.result()


def rss_bytes() -> int:
    """Resident set size of this process, from ``/proc/self/statm``."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


class HttpProbe:
    """A minimal HTTP/1.1 keep-alive client over one socket, for per-request timings.

    Sequential requests on one connection, with no client library between the
    clock and the socket: what it measures is the server's latency plus the
    loopback round trip, the same for every variant it is pointed at. Each
    request returns (seconds to the first occurrence of ``mark`` in the
    response, or to its last byte when ``mark`` is empty; seconds to the last
    byte). Handles ``Content-Length`` and chunked bodies, nothing else.
    """

    def __init__(self, url: str) -> None:
        import socket
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.host = parts.hostname or LOOPBACK
        self.port = parts.port or 80
        self._sock = socket.create_connection((self.host, self.port), timeout=30)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        self._sock.close()

    def request_bytes(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def send(self, raw: bytes, mark: bytes = b"") -> tuple[float, float]:
        """Send a request made by :meth:`request_bytes`; (time to ``mark``, total) in seconds."""
        import time

        sock = self._sock
        started = time.perf_counter()
        sock.sendall(raw)
        buf = b""
        marked: float | None = None
        header_end = -1
        length: int | None = None
        chunked = False
        while True:
            data = sock.recv(262144)
            if not data:
                raise ConnectionError("server closed the connection")
            buf += data
            if marked is None and mark and mark in buf:
                marked = time.perf_counter()
            if header_end < 0:
                header_end = buf.find(b"\r\n\r\n")
                if header_end < 0:
                    continue
                head = buf[:header_end].lower()
                if not head.startswith(b"http/1.1 2"):
                    raise RuntimeError(f"unexpected response: {buf[:300]!r}")
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"transfer-encoding" and b"chunked" in value:
                        chunked = True
            body_len = len(buf) - header_end - 4
            if (length is not None and body_len >= length) or (
                chunked and buf.endswith(b"\r\n0\r\n\r\n")
            ):
                ended = time.perf_counter()
                return (marked if marked is not None else ended) - started, ended - started


def replace_marked_section(results: Path, begin: str, end: str, lines: Sequence[str]) -> None:
    """Put ``lines`` (which start with ``begin`` and end with ``end``) in place of the part
    of ``results`` between those markers, or append them; every other section stays."""
    text = "\n".join(lines)
    old = results.read_text() if results.exists() else ""
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + text + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    results.write_text(new)
