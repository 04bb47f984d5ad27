"""Serving an ASGI app with uvicorn on a background thread.

The demo runs the mock upstream and the proxy side by side in one process
while its main thread drives the load and the live view. uvicorn installs no
signal handlers off the main thread, so Ctrl-C reaches the main thread alone
and it stops both servers in order.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp

_START_TIMEOUT = 15.0


class ServerThread:
    """One uvicorn server on a background thread, bound before it starts.

    Binding the socket here (port 0 picks a free one) means the port is known
    and held before uvicorn runs, with no window for another process to take it.
    ``log_config`` defaults to None so uvicorn leaves logging to the caller's
    set-up (:func:`ccobs.logging.configure_logging`) instead of installing its own.
    """

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        lifespan: str = "on",
        graceful_shutdown: int = 5,
        log_level: str | None = None,
        log_config: dict[str, Any] | None = None,
        http: str = "auto",
        loop: str = "auto",
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on accepted sockets whose
        # proto says TCP; without it Nagle + delayed ACK delay keep-alive responses.
        self.sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, port))
            self.sock.listen(1024)
            self.host = host
            self.port = int(self.sock.getsockname()[1])
            config = uvicorn.Config(
                app,
                log_config=log_config,
                log_level=log_level,
                http=http,
                loop=loop,
                access_log=False,
                lifespan=lifespan,  # type: ignore[arg-type]
                timeout_graceful_shutdown=graceful_shutdown,
            )
            self.server = uvicorn.Server(config)
            self._thread = threading.Thread(
                target=self.server.run,
                kwargs={"sockets": [self.sock]},
                name=f"uvicorn-{self.port}",
                daemon=True,
            )
        except BaseException:
            self.sock.close()
            raise

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> ServerThread:
        """Run the server and wait until it accepts connections; stopped again if it fails."""
        try:
            self._thread.start()
            deadline = time.monotonic() + _START_TIMEOUT
            while not self.server.started:
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn did not start on {self.url}")
                time.sleep(0.01)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            self.server.force_exit = True
            self._thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
