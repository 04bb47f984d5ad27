"""Faulty push targets on loopback, run in a child process.

A push target that misbehaves (never answers, answers late, answers 500) is
served by a separate Python process so that its threads and sockets never
show up in the test process's own thread, descriptor and memory counts, and
its work never competes with the proxy under test for the GIL.

    with FaultServer("hang") as target:
        client_for(target.url).push_metrics(registry)  # times out
        target.set_mode("ok")                          # now answers 200

Modes: ``ok`` answers 200 at once; ``error`` answers 500; ``hang`` accepts the
connection and holds it without reading or answering; ``slow:SECONDS``
answers 200 after that delay; ``trickle:SECONDS`` sends its 200 answer one
byte every SECONDS, so that no single read ever waits a whole timeout. The
mode can be changed while the server runs, and a closed loopback port
(:func:`closed_port`) stands in for "refused".

Run as a script (``python fault_servers.py MODE``) it prints its port, then
reads one mode per line from stdin, acknowledging each; it exits when stdin
closes, so it never outlives the test run that started it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import IO

LOOPBACK = "127.0.0.1"
MODES = ("ok", "error", "hang", "slow", "trickle")
_DELAYED = ("slow", "trickle")


def closed_port() -> int:
    """A loopback port nobody listens on: connections to it are refused at once."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _check_mode(mode: str) -> str:
    name, _, delay = mode.partition(":")
    if name not in MODES or (name in _DELAYED) != bool(delay):
        raise ValueError(
            f"unknown mode {mode!r}; expected ok, error, hang, slow:SECONDS or trickle:SECONDS"
        )
    if delay:
        float(delay)
    return mode


class FaultServer:
    """A child process serving HTTP on a loopback port in a mode that can change."""

    def __init__(self, mode: str, port: int = 0) -> None:
        self.mode = _check_mode(mode)
        self.port = port
        """0 picks a free port; a given one lets the fault take over a real server's address."""
        self._process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> FaultServer:
        self._process = subprocess.Popen(
            [sys.executable, __file__, self.mode, str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        try:
            self.port = int(self._readline())
        except BaseException:
            self.stop()
            raise
        return self

    def set_mode(self, mode: str) -> None:
        """Switch mode; returns once the server answers new connections in it."""
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(_check_mode(mode) + "\n")
        self._process.stdin.flush()
        if self._readline() != mode:
            raise RuntimeError(f"fault server did not switch to {mode!r}")
        self.mode = mode

    def stop(self) -> None:
        """Kill the server; every connection it held is closed by the kernel."""
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()
        process.wait(10)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()

    def _readline(self) -> str:
        assert self._process is not None
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"fault server exited with {self._process.poll()}")
        return line

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- the child process ---------------------------------------------------------------------


class _State:
    mode = "ok"
    stopping = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without it, delayed ACKs add ~40 ms to every answer, which no real server does.
    disable_nagle_algorithm = True

    def handle(self) -> None:
        if _State.mode == "hang":  # accept, then hold the connection: no read, no answer
            _State.stopping.wait()
            return
        super().handle()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        mode = _State.mode
        if mode == "hang":  # a kept-alive connection from before the switch: hold it too
            _State.stopping.wait()
            return
        if mode.startswith("slow:"):
            time.sleep(float(mode.partition(":")[2]))
        if mode.startswith("trickle:"):
            pause = float(mode.partition(":")[2])
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(pause)
            return
        status, body = (500, b"fault server error\n") if mode == "error" else (200, b"")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_POST = do_DELETE = do_GET = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that timed out
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def _serve(mode: str, port: int, out: IO[str], commands: IO[str]) -> None:
    _State.mode = _check_mode(mode)
    server = _Server((LOOPBACK, port), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], file=out, flush=True)
    for line in commands:  # ends when the parent closes stdin or dies
        _State.mode = _check_mode(line.strip())
        print(_State.mode, file=out, flush=True)
    _State.stopping.set()
    server.shutdown()


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]), sys.stdout, sys.stdin)
