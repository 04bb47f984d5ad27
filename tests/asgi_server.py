"""Run an ASGI app with a real uvicorn on a loopback port the OS hands out.

Tests talk to servers over real sockets so that HTTP framing, streaming and
dropped connections behave as in production. The port comes from a socket
bound to port 0 and handed to uvicorn, so there is no window in which another
process can take it, and the server is stopped even when the test fails.

    with serve_asgi(app) as server:
        httpx.get(f"{server.url}/health")
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

__all__ = ["RunningServer", "serve_asgi"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


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
    (e.g. a deliberately hanging one) before they are cancelled.
    """
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and without it Nagle + delayed ACK add ~40 ms to each response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan=lifespan,  # type: ignore[arg-type]
        timeout_graceful_shutdown=graceful_shutdown,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn:{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {host}:{port}")
            time.sleep(0.01)
        yield RunningServer(url=f"http://{host}:{port}", host=host, port=port)
    finally:
        server.should_exit = True
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            server.force_exit = True
            thread.join(_STOP_TIMEOUT)
        sock.close()
