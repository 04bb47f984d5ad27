"""Run the monitoring binaries as plain processes on loopback.

One implementation serves two callers: the integration tests
(``tests/realservers.py``), whose servers must die with the test run, and
the native stack (``ccobs stack up``), whose servers must outlive the command
that started them. The difference is one flag, ``detach``; binding,
readiness polling, log capture and stopping are shared.

Everything here is standard library: the CLI imports it, and a missing
binary or a taken port must be reported with the fix, not a traceback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Final

LOOPBACK: Final = "127.0.0.1"
START_TIMEOUT: Final = 30.0
STOP_TIMEOUT: Final = 10.0

DEBIAN_PACKAGE_OF: Final[dict[str, str]] = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-pushgateway": "prometheus-pushgateway",
    "victoria-metrics": "victoria-metrics",
    "vmalert": "victoria-metrics",
    "vmagent": "victoria-metrics",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
}
"""Binary -> Debian package, as in ``scripts/install-debian-deps.sh``."""


class MissingBinaryError(RuntimeError):
    """A binary is not on PATH; the message names the Debian package that has it."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.package = DEBIAN_PACKAGE_OF.get(binary, binary)
        super().__init__(
            f"binary {binary!r} not found on PATH; it comes from the Debian package "
            f"{self.package!r} (apt-get install {self.package})."
        )


class ServerStartError(RuntimeError):
    """A server exited or never became ready; the message carries its log tail."""


def find_binary(name: str) -> str:
    """Path of binary ``name`` on PATH, or :class:`MissingBinaryError`."""
    path = shutil.which(name)
    if path is None:
        raise MissingBinaryError(name)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    The OS picks it (bind to port 0), so parallel runs don't collide on a
    fixed port; the small window before the server binds it is covered by
    :func:`start_server` retrying on "address already in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def bind_error(port: int, host: str = LOOPBACK) -> OSError | None:
    """Why a server could not listen on ``host:port`` now; None when it could.

    ``SO_REUSEADDR`` as the Go servers and uvicorn set it, so a port held only
    by connections in TIME_WAIT counts as free, exactly as it does for them.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could listen on ``host:port`` now (see :func:`bind_error`)."""
    return bind_error(port, host) is None


def probe(url: str, timeout: float = 1.0) -> str | None:
    """``None`` when ``url`` answers 200, else what went wrong (for messages)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:  # 503 while starting up
        return f"HTTP {exc.code}"
    except (OSError, urllib.error.URLError) as exc:
        return str(exc)


def _die_with_parent() -> None:
    """Have the kernel SIGTERM the server if its parent is killed.

    Teardown covers failures and Ctrl-C; this covers ``kill -9`` of a test
    run, which would otherwise leave servers holding ports until reboot.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


# --- processes known by pid ---------------------------------------------------
# ``ccobs stack down`` usually runs in another process than ``up``: all it has
# is the pid in the state file. A pid alone may have been reused (after a
# reboot) and a dead child may linger as a zombie, so identity and liveness
# read /proc where there is one.

_spawned: dict[int, subprocess.Popen[bytes]] = {}
"""Children this interpreter started and has not reaped, so stopping them by
pid waits through their ``Popen`` (no zombie, no ResourceWarning)."""


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name (state first), if readable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or ")".
    return text[text.rindex(")") + 2 :].split()


def process_start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (Linux); ``None`` elsewhere.

    Recorded with the pid, it tells our process from an unrelated one that
    got the same pid later.
    """
    fields = _proc_stat(pid)
    return int(fields[19]) if fields is not None and len(fields) > 19 else None


def pid_alive(pid: int, start_ticks: int | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, when given, started at ``start_ticks``."""
    popen = _spawned.get(pid)
    if popen is not None and popen.poll() is not None:
        del _spawned[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    fields = _proc_stat(pid)
    if fields is None:
        return True  # no /proc (macOS): the signal check is all there is
    if fields[0] in ("Z", "X"):
        return False
    return start_ticks is None or int(fields[19]) == start_ticks


def stop_pid(pid: int, start_ticks: int | None = None, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM ``pid``, wait up to ``timeout``, then SIGKILL; ``True`` once it is gone.

    Does nothing to a pid that is not the process recorded (``start_ticks``
    differ), so a stale state file never kills an unrelated process.
    """
    popen = _spawned.pop(pid, None)
    if popen is not None:
        stop_popen(popen, timeout)
        return True
    if not pid_alive(pid, start_ticks):
        return True
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid, start_ticks):
                return True
            time.sleep(0.05)
    return not pid_alive(pid, start_ticks)


def stop_popen(process: subprocess.Popen[bytes], timeout: float, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` (SIGTERM by default), wait up to ``timeout``, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def log_tail(log_path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a server's log file, for error messages."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return f"(no log at {log_path})"
    tail = "\n".join(text.splitlines()[-lines:])
    return f"--- last {lines} lines of {log_path} ---\n{tail}"


class ServerProcess:
    """One server binary, ready when its URL answers 200.

    ``detach=False`` (tests): the server is killed with its parent.
    ``detach=True`` (the native stack): it runs in a session of its own, so it
    outlives the command that started it and a Ctrl-C in that terminal does
    not reach it; stop it with :meth:`stop` or, from another process,
    :func:`stop_pid`.

    Usable as a context manager; :meth:`stop` is idempotent.
    """

    def __init__(
        self,
        binary: str,
        args: Sequence[str],
        *,
        workdir: Path,
        port: int,
        ready_path: str,
        name: str | None = None,
        timeout: float = START_TIMEOUT,
        detach: bool = False,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.binary = binary
        self.args = list(args)
        self.workdir = workdir
        self.port = port
        self.name = name or Path(binary).name
        self.url = f"http://{LOOPBACK}:{port}"
        self.ready_url = self.url + ready_path
        self.timeout = timeout
        self.detach = detach
        self.env = dict(env) if env is not None else None
        self.log_path = log_path or workdir / f"{self.name}.log"
        self.start_seconds: float | None = None
        """Wall time from spawn to the first 200 on the readiness URL."""
        self.start_ticks: int | None = None
        """See :func:`process_start_ticks`; recorded so a later stop knows it is ours."""
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> ServerProcess:
        """Spawn the binary and block until ready; on failure stop it and raise."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log_offset = self._log.tell()
        started = time.monotonic()
        self._process = subprocess.Popen(
            [self.binary, *self.args],
            cwd=self.workdir,
            env={**os.environ, **self.env} if self.env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=self.detach,
            # preexec_fn is unsafe only with threads spawning processes
            # concurrently; servers are started from one thread.
            preexec_fn=None if self.detach else _die_with_parent,
        )
        _spawned[self._process.pid] = self._process
        self.start_ticks = process_start_ticks(self._process.pid)
        if self.detach:
            # The child has its own descriptor; ours would only leak.
            self._log.close()
            self._log = None
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def _wait_ready(self, started: float) -> None:
        assert self._process is not None
        deadline = started + self.timeout
        while True:
            code = self._process.poll()
            if code is not None:
                raise ServerStartError(
                    f"{self.name} exited with code {code} before becoming ready "
                    f"({self.ready_url}).\n{self.log_tail()}"
                )
            problem = probe(self.ready_url)
            if problem is None:
                return
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"{self.name} not ready at {self.ready_url} after {self.timeout:.0f}s "
                    f"(last: {problem}).\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def output_since_start(self) -> str:
        """What the server wrote since the last :meth:`start` (the log may be appended to)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the server's output, for error messages."""
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL. Safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            _spawned.pop(process.pid, None)
            stop_popen(process, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ServerProcess:
        return self if self._process is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ServerProcess {self.name} {self.url} pid={self.pid}>"


def _address_in_use(text: str) -> bool:
    return "address already in use" in text.lower()


def start_server(
    binary: str,
    make_args: Callable[[Path, int], Sequence[str]],
    *,
    workdir: Path | Callable[[], Path],
    ready_path: str,
    name: str,
    port: int = 0,
    attempts: int = 3,
    timeout: float = START_TIMEOUT,
    detach: bool = False,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
) -> ServerProcess:
    """Start ``binary`` with ``make_args(workdir, port)`` and wait until it is ready.

    ``port=0`` picks a free port and retries with another one when it was
    taken between :func:`free_port` and the server's bind; a fixed port that
    is taken, and any other failure, raises at once. ``workdir`` may be a
    function, called per attempt, when each attempt needs a fresh directory.
    """
    for attempt in range(1, attempts + 1):
        directory = workdir() if callable(workdir) else workdir
        directory.mkdir(parents=True, exist_ok=True)
        chosen = port or free_port()
        server = ServerProcess(
            binary,
            make_args(directory, chosen),
            workdir=directory,
            port=chosen,
            ready_path=ready_path,
            name=name,
            timeout=timeout,
            detach=detach,
            env=env,
            log_path=log_path,
        )
        try:
            return server.start()
        except ServerStartError:
            if port or attempt == attempts or not _address_in_use(server.output_since_start()):
                raise
    raise AssertionError("unreachable")  # pragma: no cover
