"""The proxy on loopback in front of any upstream, and what it recorded, read back.

tests/test_proxy.py runs the proxy in front of the mock upstream; the
reliability tests put it in front of upstreams that misbehave (scripted
answers, raw sockets that hang, reset or cut a stream short) and need more
than its ``Stack``: every counter by label, the proxy's own event loop (for
its asyncio tasks and its upstream connection pool) and the descriptors the
process holds.

    with running_proxy(upstream.url, read_timeout=0.5) as proxy:
        httpx.post(proxy.url + "/v1/messages", json=body)
        proxy.settle(1)
        assert proxy.errors() == {"upstream_timeout": 1.0}

:class:`RawServer` is a TCP server that hands each accepted socket to a
handler on its own thread, for faults no HTTP framework will produce.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from asgi_server import serve_asgi
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Receive, Scope, Send

from ccobs.logging import configure_logging
from ccobs.metrics import PrometheusMetrics
from ccobs.proxy.app import create_proxy_app
from ccobs.proxy.config import ProxyConfig
from ccobs.proxy.relay import LLMProxy
from ccobs.settings import ObservabilitySettings

__all__ = [
    "ANTHROPIC_MODEL",
    "OPENAI_MODEL",
    "ProxyUnderTest",
    "RawServer",
    "open_descriptors",
    "read_http_request",
    "request_body",
    "reset",
    "running_proxy",
    "wait_for_eof",
]

ANTHROPIC_MODEL = "claude-sonnet-4-6"
OPENAI_MODEL = "gpt-4.1-mini"
LOOPBACK = "127.0.0.1"
T = TypeVar("T")


def request_body(api: str = "anthropic", *, stream: bool = False) -> dict[str, Any]:
    """A minimal valid request body for ``api``."""
    body: dict[str, Any] = {
        "model": ANTHROPIC_MODEL if api == "anthropic" else OPENAI_MODEL,
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "x"}],
    }
    if stream:
        body["stream"] = True
        if api == "openai":
            body["stream_options"] = {"include_usage": True}
    return body


class _LoopProbe:
    """Wraps the proxy app to learn which event loop serves it."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)


@dataclass
class ProxyUnderTest:
    """A running proxy: its URL, app, metrics registry and JSON log lines."""

    url: str
    app: FastAPI
    registry: CollectorRegistry
    logs: io.StringIO
    _probe: _LoopProbe

    # -- metrics ---------------------------------------------------------------------------

    def total(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``."""
        return sum(
            sample.value
            for family in self.registry.collect()
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def by_label(self, name: str, label: str, **labels: str) -> dict[str, float]:
        """``name``'s non-zero samples summed by one label's value."""
        out: dict[str, float] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    key = sample.labels[label]
                    out[key] = out.get(key, 0.0) + sample.value
        return {key: value for key, value in out.items() if value}

    def requests(self) -> float:
        return self.total("ccproxy_requests_total")

    def statuses(self) -> dict[str, float]:
        return self.by_label("ccproxy_requests_total", "status")

    def errors(self) -> dict[str, float]:
        """Errors counted so far, by ``error_type``."""
        return self.by_label("ccproxy_errors_total", "error_type")

    def tokens(self) -> dict[str, float]:
        """Tokens counted so far, by ``type``."""
        return self.by_label("ccproxy_tokens_total", "type")

    def settle(self, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` requests are counted and logged: both follow the last byte."""
        deadline = time.monotonic() + timeout
        while self.requests() < count or len(self.access_lines()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.requests()} requests counted, expected {count}")
            time.sleep(0.01)

    def exposition(self) -> dict[str, list[Any]]:
        """``GET /metrics`` parsed by prometheus_client's parser: family name -> samples."""
        response = httpx.get(self.url + "/metrics", timeout=10)
        response.raise_for_status()
        return {
            family.name: family.samples for family in text_string_to_metric_families(response.text)
        }

    # -- logs ------------------------------------------------------------------------------

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs.getvalue().splitlines() if line]

    def access_lines(self) -> list[dict[str, Any]]:
        """One line per request: its ``request_success`` or ``request_error`` event."""
        return [
            line
            for line in self.log_lines()
            if line["event"] in ("request_success", "request_error")
        ]

    # -- the proxy's event loop ------------------------------------------------------------

    def in_loop(self, work: Callable[[], Coroutine[Any, Any, T]], timeout: float = 10.0) -> T:
        """Run ``work()`` on the proxy's own event loop and return its result."""
        loop = self._probe.loop
        if loop is None:
            raise RuntimeError("the proxy has not served anything yet")
        return asyncio.run_coroutine_threadsafe(work(), loop).result(timeout)

    def tasks(self) -> int:
        """asyncio tasks alive on the proxy's loop, not counting the one asking."""

        async def count() -> int:
            return len(asyncio.all_tasks()) - 1

        return self.in_loop(count)

    def pool(self) -> tuple[int, int]:
        """(requests holding a connection, connections not closed) of its upstream pool."""
        proxy = self.app.state.proxy
        assert isinstance(proxy, LLMProxy)
        client = proxy.client

        async def inspect() -> tuple[int, int]:
            return client.in_use, client.open_connections

        return self.in_loop(inspect)

    def wait_until_idle(self, tasks: int, timeout: float = 10.0) -> None:
        """Wait until no pooled connection is in use and at most ``tasks`` tasks run."""
        deadline = time.monotonic() + timeout
        while self.pool()[0] or self.tasks() > tasks:
            if time.monotonic() > deadline:
                return  # the caller's assertions say what is left over
            time.sleep(0.02)


@contextmanager
def running_proxy(upstream_url: str, **config: Any) -> Iterator[ProxyUnderTest]:
    """The proxy on a loopback port, in front of ``upstream_url``, logging JSON to a buffer.

    Use with the ``isolated_logging`` fixture: this configures logging globally.
    """
    logs = io.StringIO()
    configure_logging("INFO", "json", stream=logs)
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    app = create_proxy_app(
        ProxyConfig(upstream_url=upstream_url, **config),
        metrics=metrics,
        settings=ObservabilitySettings(),
    )
    probe = _LoopProbe(app)
    with serve_asgi(probe, lifespan="on") as server:
        yield ProxyUnderTest(server.url, app, registry, logs, probe)


def open_descriptors() -> int:
    """File descriptors this process holds, after collecting unreferenced objects."""
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


# -- raw sockets -------------------------------------------------------------------------------


def read_http_request(conn: socket.socket) -> bytes:
    """Read one whole HTTP/1.1 request (head and ``content-length`` body); b"" at EOF.

    A server must read what it was sent before closing: closing a socket with
    unread bytes makes the kernel send a reset instead of a clean FIN.
    """
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def reset(conn: socket.socket) -> None:
    """Close ``conn`` with a TCP reset (SO_LINGER on, timeout 0) instead of a FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def wait_for_eof(conn: socket.socket, timeout: float = 30.0) -> bool:
    """Block until the peer closes (True) or ``timeout`` passes (False); discards data."""
    conn.settimeout(timeout)
    try:
        while conn.recv(65536):
            pass
    except (TimeoutError, OSError):
        return False
    return True


class RawServer:
    """A loopback TCP server running ``handler(conn)`` on a thread per connection.

    The handler owns nothing: the server closes each connection after its
    handler returns, and on exit closes the listening socket, shuts down
    connections still open (waking handlers blocked on them) and joins every
    thread, even when the test failed.
    """

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.handler = handler
        self.accepted = 0
        self.handled = 0
        """Connections whose handler returned (the peer closed, or the handler finished)."""
        self._sock = socket.create_server((LOOPBACK, 0))
        self._sock.settimeout(0.05)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name=f"raw-{self.port}")

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            with self._lock:
                self.accepted += 1
                self._conns.add(conn)
                thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with suppress(OSError):
                self.handler(conn)
        finally:
            with self._lock:
                self._conns.discard(conn)
                self.handled += 1
            conn.close()

    def __enter__(self) -> RawServer:
        self._acceptor.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._acceptor.join(5)
        self._sock.close()
        with self._lock:
            conns = list(self._conns)
            threads = list(self._threads)
        for conn in conns:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(5)
