"""Debian's PostgreSQL as a plain process on loopback: for the tests and ``ccobs stack up``.

The access log's shared store is proven against the real server, as the
monitoring binaries are: ``initdb`` on a fresh directory, ``postgres`` on
127.0.0.1 and a port the OS hands out, its socket in that directory (never
the system's ``/var/run/postgresql``), stopped with its parent.

PostgreSQL refuses to run as root, and CI runs as root; so, as root, both
binaries run as the unprivileged ``postgres`` user the Debian package
creates, through ``setpriv`` (which ``exec``s, so the pid we hold is the
server's, and re-arms the parent-death signal that a change of user clears).

Standard library only, like the rest of ``ccobs.stack``: the CLI imports it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Final

from ccobs.stack.processes import (
    LOOPBACK,
    START_TIMEOUT,
    STOP_TIMEOUT,
    MissingBinaryError,
    ServerStartError,
    free_port,
    log_tail,
    stop_popen,
)

SUPERUSER: Final = "ccobs"
"""The database superuser ``initdb`` creates (whatever the OS user running it)."""
RUN_AS: Final = "postgres"
"""The OS user the server runs as when we are root (created by the Debian package)."""
PACKAGE: Final = "postgresql"


def find_pg_binary(name: str) -> str:
    """``initdb``, ``postgres``...: Debian keeps them off PATH, under /usr/lib/postgresql/N/bin."""
    on_path = shutil.which(name)
    if on_path is not None:
        return on_path
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0,
    )
    if not found:
        error = MissingBinaryError(name)
        error.package = PACKAGE
        error.args = (
            f"binary {name!r} not found on PATH nor under /usr/lib/postgresql/*/bin; it comes "
            f"from the Debian package {PACKAGE!r} (apt-get install {PACKAGE}).",
        )
        raise error
    return found[-1]


def _as_server_user(argv: list[str], *, detach: bool = False) -> list[str]:
    """``argv`` as the unprivileged user when we are root (PostgreSQL refuses root); dying
    with its parent unless ``detach``."""
    if os.geteuid() != 0:
        return argv
    death = [] if detach else ["--pdeathsig=TERM"]
    return [
        shutil.which("setpriv") or "/usr/bin/setpriv",  # util-linux; PATH may be narrowed
        f"--reuid={RUN_AS}",
        f"--regid={RUN_AS}",
        "--init-groups",
        *death,
        "--",
        *argv,
    ]


def _give_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam(RUN_AS)
        os.chown(path, user.pw_uid, user.pw_gid)


class PostgresServer:
    """One PostgreSQL cluster in ``workdir`` (created if empty), serving on loopback.

    ``password`` is set for :data:`SUPERUSER` and TCP connections must give
    it (scram-sha-256), so the tests exercise real authentication. ``fsync``
    off suits tests (a power loss is not under test); keep it on to measure.
    ``detach`` keeps the server running after this process exits
    (``ccobs stack up``).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        password: str,
        port: int = 0,
        fsync: bool = True,
        detach: bool = False,
        timeout: float = START_TIMEOUT,
    ) -> None:
        self.workdir = workdir
        self.datadir = workdir / "data"
        self.password = password
        self.port = port or free_port()
        self.fsync = fsync
        self.detach = detach
        self.timeout = timeout
        self.log_path = workdir / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def url(self, database: str = "postgres", *, with_password: bool = True) -> str:
        secret = f":{self.password}" if with_password else ""
        return f"postgresql://{SUPERUSER}{secret}@{LOOPBACK}:{self.port}/{database}"

    def initdb(self) -> None:
        """Create the cluster unless ``datadir`` already holds one."""
        if (self.datadir / "PG_VERSION").exists():
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        _give_to_server_user(self.workdir)
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        _give_to_server_user(pwfile)
        try:
            result = subprocess.run(
                _as_server_user(
                    [
                        find_pg_binary("initdb"),
                        f"--pgdata={self.datadir}",
                        f"--username={SUPERUSER}",
                        f"--pwfile={pwfile}",
                        "--auth-local=trust",
                        "--auth-host=scram-sha-256",
                        "--encoding=UTF8",
                        "--locale=C",
                    ]
                ),
                capture_output=True,
                timeout=120,
                check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise ServerStartError(
                "initdb failed:\n" + (result.stdout + result.stderr).decode(errors="replace")
            )

    def start(self) -> PostgresServer:
        """initdb if needed, spawn ``postgres``, wait until it accepts connections."""
        self.initdb()
        self._log = self.log_path.open("ab")
        argv = [
            find_pg_binary("postgres"),
            "-D",
            str(self.datadir),
            "-c",
            f"listen_addresses={LOOPBACK}",
            "-c",
            f"port={self.port}",
            "-c",
            f"unix_socket_directories={self.workdir}",
            "-c",
            f"fsync={'on' if self.fsync else 'off'}",
            "-c",
            "max_connections=100",
        ]
        started = time.monotonic()
        self._process = subprocess.Popen(
            _as_server_user(argv, detach=self.detach),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=self.detach,
        )
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, started: float) -> None:
        assert self._process is not None
        while True:
            code = self._process.poll()
            if code is not None:
                raise ServerStartError(
                    f"postgres exited with code {code} before accepting connections.\n"
                    f"{self.log_tail()}"
                )
            if self._accepts():
                return
            if time.monotonic() - started > self.timeout:
                raise ServerStartError(
                    f"postgres not ready on {LOOPBACK}:{self.port} after {self.timeout:.0f}s.\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.05)

    def _accepts(self) -> bool:
        """``pg_isready``: the server answers the startup handshake (not just the port)."""
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.5):
                pass
        except OSError:
            return False
        result = subprocess.run(
            [find_pg_binary("pg_isready"), "-q", "-h", LOOPBACK, "-p", str(self.port)],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return result.returncode == 0

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Fast shutdown (SIGINT: abort sessions, write a checkpoint), then SIGKILL. Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            stop_popen(process, timeout, signal.SIGINT)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> PostgresServer:
        return self if self._process is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
