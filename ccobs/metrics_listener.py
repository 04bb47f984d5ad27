"""``/metrics`` on a port of its own, served by a thread: a scrape a busy event loop cannot starve.

On the proxy's own port a scrape is one more connection on the event loop: it
is accepted, read and answered only as the loop comes round to it, and a loop
relaying more events than its core can carry spends each turn on every
stream's backlog, so the scrape waits seconds, or times out (measured in
``benchmarks/RESULTS.md``, section 6). Yet an overloaded proxy is when its
metrics matter most.

This listener answers on a thread of its own with a blocking socket: it needs
only the interpreter, which a busy loop thread hands over every switch
interval (``sys.getswitchinterval()``, 5 ms), so a scrape takes a few of those
however far behind the loop is. It serves ``GET /metrics`` only, the same
exposition and bearer-token check as the endpoint on the main port
(:mod:`ccobs.metrics_endpoint`), one connection at a time (Prometheus scrapes a
target serially), one request per connection, each held at most
``CONNECTION_TIMEOUT`` seconds in all, and logs nothing. Several processes may bind
the same port (``SO_REUSEPORT``): each ``ccobs proxy --workers`` process runs
one, and in multiprocess mode every one of them renders every worker's counts.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from ccobs.bearer_token import bearer_token_matches
from ccobs.metrics import PrometheusMetrics
from ccobs.metrics_endpoint import render_metrics
from ccobs.renderer import ExpositionRenderer

CONNECTION_TIMEOUT = 10.0
"""Seconds a scraper's connection may last in all before it is cut, so neither a
silent client nor one trickling a byte at a time can hold the one serving thread."""

METRICS_PATH = "/metrics"


class _Server(HTTPServer):
    allow_reuse_address = True
    allow_reuse_port = True
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        metrics: PrometheusMetrics,
        token: str | None,
        connection_timeout: float,
    ) -> None:
        self.connection_timeout = connection_timeout
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.metrics = metrics
        self.token = token
        self.renderer = ExpositionRenderer()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one scrape per connection: none holds the thread idle

    def setup(self) -> None:
        """Arm the connection's deadline: a socket timeout bounds each read, this the whole."""
        super().setup()
        timeout = self.server.connection_timeout
        self.connection.settimeout(timeout)
        self._deadline = threading.Timer(timeout, self._cut)
        self._deadline.daemon = True
        self._deadline.start()

    def finish(self) -> None:
        self._deadline.cancel()
        super().finish()

    def _cut(self) -> None:
        with contextlib.suppress(OSError):  # already closed: the scrape ended as it fired
            self.connection.shutdown(socket.SHUT_RDWR)  # the blocked read returns at once

    def do_GET(self) -> None:  # the name http.server dispatches to
        server = self.server
        if self.path.split("?", 1)[0] != METRICS_PATH:
            self._send(404, b"not found\n", "text/plain")
            return
        if server.token is not None and not bearer_token_matches(
            self.headers.get("authorization"), server.token
        ):
            self._send(401, b"metrics require a bearer token\n", "text/plain",
                       {"WWW-Authenticate": 'Bearer realm="metrics"'})  # fmt: skip
            return
        body, content_type = render_metrics(
            server.metrics, self.headers.get("accept"), server.renderer
        )
        self._send(200, body, content_type)

    def _send(
        self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the proxy's access log is for traffic, and a scrape is not."""


class MetricsListener:
    """A running listener; :meth:`close` stops it and frees the port."""

    def __init__(
        self,
        host: str,
        port: int,
        metrics: PrometheusMetrics,
        token: str | None = None,
        connection_timeout: float = CONNECTION_TIMEOUT,
    ) -> None:
        if token == "":
            raise ValueError("the metrics token must not be empty; pass None for no token")
        self._server = _Server((host, port), metrics, token, connection_timeout)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ccobs-metrics-listener", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


LISTEN_ENV = "CCOBS_PROXY_METRICS_LISTEN"
"""``host:port`` of the listener, as ``ccobs proxy --metrics-port`` hands it to its workers."""


def listen_from_env(metrics: PrometheusMetrics, token: str | None) -> MetricsListener | None:
    """The listener ``$CCOBS_PROXY_METRICS_LISTEN`` asks for, started; None when unset."""
    import os

    listen = os.environ.get(LISTEN_ENV)
    if not listen:
        return None
    host, _, port = listen.rpartition(":")
    return MetricsListener(host.strip("[]"), int(port), metrics, token)
