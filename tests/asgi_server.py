"""Run an ASGI app with a real uvicorn on a loopback port the OS hands out.

Tests talk to servers over real sockets so that HTTP framing, streaming and
dropped connections behave as in production. The server is the demo's
:class:`~ccobs.demo.server_thread.ServerThread`: its socket is bound to port 0
before uvicorn runs, so no other process can take the port, and the server is
stopped even when the test fails.

    with serve_asgi(app) as server:
        httpx.get(f"{server.url}/health")
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from starlette.types import ASGIApp
from uvicorn.config import LOGGING_CONFIG

from ccobs.demo.server_thread import ServerThread

__all__ = ["RunningServer", "serve_asgi"]


@dataclass(frozen=True)
class RunningServer:
    """A started server: its base URL (``http://127.0.0.1:PORT``), host and port."""

    url: str
    host: str
    port: int


@contextmanager
def serve_asgi(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    graceful_shutdown: int = 1,
    log_level: str = "warning",
    lifespan: str = "off",
) -> Iterator[RunningServer]:
    """Serve ``app`` in a background thread for the duration of the ``with`` block.

    ``graceful_shutdown`` bounds how long shutdown waits for open requests
    (e.g. a deliberately hanging one) before they are cancelled. uvicorn logs
    through its own default handlers at ``log_level``.
    """
    with ServerThread(
        app,
        host,
        lifespan=lifespan,
        graceful_shutdown=graceful_shutdown,
        log_level=log_level,
        log_config=LOGGING_CONFIG,
        # The pure-Python server whatever else is installed: httptools (uvicorn[standard],
        # the bench extra) refuses control characters in header values with its own 400,
        # where h11 lets the app see them, and the suite asserts what the app does.
        http="h11",
        loop="asyncio",
    ) as server:
        yield RunningServer(url=server.url, host=server.host, port=server.port)
