"""The load generator of the streams benchmark: N concurrent Anthropic streams from one process.

``python -m benchmarks.stream_client URL --streams N --ramp S`` opens N
connections over S seconds, sends one streamed ``POST /v1/messages`` on each,
reads every stream to its end and prints one JSON object: streams completed
and failed, events, each text delta's delay from the mock upstream's stamp
(:attr:`ccobs.demo.decisions.UpstreamConfig.stamp_deltas`) to its arrival here,
the tokens the client saw per stream (summed), and this process's own CPU and
memory, so its cost is stated beside what it measures.

Holding thousands of streams cheaply: a bare asyncio ``Protocol`` per
connection (uvloop when installed), no HTTP client library, no task per
stream; each arrival is scanned with one regular expression for stamps, and
only the two events carrying usage (``message_start``, ``message_delta``)
are parsed as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import sys
import time
from array import array
from typing import Any, cast
from urllib.parse import urlsplit

from ccobs.proxy.file_limit import raise_open_file_limit

_STAMP = re.compile(rb'"text":"(\d+)"')
_USAGE_EVENTS = (b"message_start", b"message_delta")
_END = b"\r\n0\r\n\r\n"
"""The last chunk of a chunked body: the stream ended whole on the wire."""


def request_bytes(host: str, port: int, body: bytes) -> bytes:
    return (
        f"POST /v1/messages HTTP/1.1\r\nhost: {host}:{port}\r\n"
        "content-type: application/json\r\nanthropic-version: 2023-06-01\r\n"
        "x-api-key: sk-bench-not-a-key\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


class Totals:
    """What every stream adds to, in one place (one process, one thread)."""

    def __init__(self) -> None:
        self.delays_us = array("q")
        self.events = 0
        self.completed = 0
        self.failed: dict[str, int] = {}
        self.tokens = 0
        self.open = 0
        self.max_open = 0

    def fail(self, reason: str) -> None:
        self.failed[reason] = self.failed.get(reason, 0) + 1


class StreamProtocol(asyncio.Protocol):
    """One connection, one streamed request, read to its end."""

    def __init__(self, request: bytes, totals: Totals, done: asyncio.Future[None]) -> None:
        self.request = request
        self.totals = totals
        self.done = done
        self.head = True
        self.buffer = b""
        self.start_tokens = 0
        self.output_tokens = 0
        self.saw_stop = False
        self.finished = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)
        totals = self.totals
        totals.open += 1
        totals.max_open = max(totals.max_open, totals.open)

    def data_received(self, data: bytes) -> None:
        now_us = time.monotonic_ns() // 1000
        buffer = self.buffer + data
        if self.head:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 200"):
                self._finish(f"status {buffer[9:12].decode(errors='replace')}")
                return
            self.head = False
            buffer = buffer[end + 4 :]
        cut = buffer.rfind(b"\n\n")
        if cut < 0:
            self.buffer = buffer
            if self.saw_stop and buffer.endswith(_END):
                self._finish(None)
            return
        part, self.buffer = buffer[: cut + 2], buffer[cut + 2 :]
        totals = self.totals
        stamps = _STAMP.findall(part)
        delays = totals.delays_us
        for stamp in stamps:
            delays.append(now_us - int(stamp) // 1000)
        totals.events += part.count(b"\n\n")
        if b'"usage"' in part or b"message_stop" in part:
            self._read_usage(part)
        if self.saw_stop and self.buffer.endswith(_END):
            self._finish(None)

    def _read_usage(self, part: bytes) -> None:
        for event in part.split(b"\n\n"):
            if b"message_stop" in event:
                self.saw_stop = True
            if not any(name in event for name in _USAGE_EVENTS):
                continue
            for line in event.split(b"\n"):
                start = line.find(b"data: ")
                if start < 0:
                    continue
                data: dict[str, Any] = json.loads(line[start + 6 :])
                if data.get("type") == "message_start":
                    usage = data["message"]["usage"]
                    self.start_tokens = (
                        usage["input_tokens"]
                        + usage.get("cache_read_input_tokens", 0)
                        + usage.get("cache_creation_input_tokens", 0)
                    )
                elif data.get("type") == "message_delta":
                    self.output_tokens = data["usage"]["output_tokens"]

    def connection_lost(self, exc: Exception | None) -> None:
        self.totals.open -= 1
        if not self.finished:
            self._finish("connection lost before the end of the stream")

    def _finish(self, failure: str | None) -> None:
        if self.finished:
            return
        self.finished = True
        if failure is None:
            self.totals.completed += 1
            self.totals.tokens += self.start_tokens + self.output_tokens
        else:
            self.totals.fail(failure)
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_result(None)


async def run(url: str, streams: int, ramp: float, wait_seconds: float) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    body = json.dumps(
        {
            "model": "claude-sonnet-4-6",
            "max_tokens": 4096,
            "stream": True,
            "messages": [{"role": "user", "content": "Tell me a long story."}],
        }
    ).encode()
    request = request_bytes(host, port, body)
    loop = asyncio.get_running_loop()
    idle = resource.getrusage(resource.RUSAGE_SELF)  # start-up left out of the cost
    rss_idle = _rss_bytes()
    totals = Totals()
    dones: list[asyncio.Future[None]] = []
    started = time.monotonic()
    batch = max(1, streams // max(1, int(ramp * 100)))  # a batch every ~10 ms

    async def open_one() -> None:
        done: asyncio.Future[None] = loop.create_future()
        dones.append(done)
        try:
            await loop.create_connection(lambda: StreamProtocol(request, totals, done), host, port)
        except OSError as exc:
            totals.fail(f"connect: {exc.strerror or type(exc).__name__}")
            done.set_result(None)

    opened = 0
    while opened < streams:
        count = min(batch, streams - opened)
        await asyncio.gather(*(open_one() for _ in range(count)))
        opened += count
        wait = started + ramp * opened / streams - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
    ramped = time.monotonic() - started
    _, pending = await asyncio.wait(dones, timeout=wait_seconds) if dones else (set(), set())
    if pending:
        totals.failed["still open at the timeout"] = len(pending)
    elapsed = time.monotonic() - started
    delays = sorted(totals.delays_us)
    usage = resource.getrusage(resource.RUSAGE_SELF)

    def pct(q: float) -> float:
        if not delays:
            return float("nan")
        return delays[min(len(delays) - 1, int(q / 100 * len(delays)))] / 1000

    return {
        "streams": streams,
        "completed": totals.completed,
        "failed": totals.failed,
        "max_open": totals.max_open,
        "events": totals.events,
        "stamped_events": len(delays),
        "delay_ms": {"p50": pct(50), "p99": pct(99), "max": pct(100)},
        "client_tokens": totals.tokens,
        "ramp_seconds": ramped,
        "seconds": elapsed,
        "cpu_seconds": usage.ru_utime + usage.ru_stime - idle.ru_utime - idle.ru_stime,
        "max_rss_bytes": usage.ru_maxrss * 1024,
        "rss_growth_bytes": usage.ru_maxrss * 1024 - rss_idle,
    }


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url")
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds to open them all")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for all")
    args = parser.parse_args(argv)
    raise_open_file_limit()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - ccobs[server] brings it
        runner = asyncio.run
    else:
        runner = uvloop.run
    result = runner(run(args.url, args.streams, args.ramp, args.timeout))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
