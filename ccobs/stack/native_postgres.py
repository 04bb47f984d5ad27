"""PostgreSQL in the native stack: ``ccobs stack up --postgres``, the shared access log's store.

Debian's server (:class:`ccobs.stack.postgres.PostgresServer`), detached like
the other services, its cluster in ``STATE_DIR/postgres/data`` so records
survive ``down`` and ``up``. A database ``ccobs`` owned by the superuser
``ccobs``; the password is generated on the first start and kept in a
libpq password file, ``STATE_DIR/postgres/pgpass`` (mode 0600), never
printed: a proxy is pointed at it with ``PGPASSFILE`` and a URL without a
password.

As root the server runs as the ``postgres`` user, which must be able to
reach the state dir (not under a 0700 home such as ``/root``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
from pathlib import Path

from ccobs.stack.config import StackError
from ccobs.stack.postgres import SUPERUSER, PostgresServer, find_pg_binary
from ccobs.stack.processes import (
    LOOPBACK,
    MissingBinaryError,
    ServerStartError,
    pid_alive,
    probe,
    process_start_ticks,
)
from ccobs.stack.state import ServiceRecord

NAME = "postgres"
DATABASE = "ccobs"
URL_SCHEME = "postgresql://"


def _password(pgpass: Path) -> str:
    """The password kept from an earlier start, else a new one."""
    try:
        return pgpass.read_text().strip().rsplit(":", 1)[1]
    except (OSError, IndexError):
        return secrets.token_urlsafe(24)


def start_stack_postgres(state_dir: Path, port: int) -> ServiceRecord:
    """Start (and on first use create) the stack's PostgreSQL; its record for the state file."""
    workdir = state_dir / NAME
    workdir.mkdir(parents=True, exist_ok=True)
    pgpass = workdir / "pgpass"
    password = _password(pgpass)
    server = PostgresServer(workdir, password=password, port=port, detach=True)
    try:
        server.start()
    except (ServerStartError, MissingBinaryError) as exc:
        raise StackError(f"postgres did not start: {exc}") from exc
    pgpass.write_text(f"{LOOPBACK}:{server.port}:*:{SUPERUSER}:{password}\n")
    pgpass.chmod(0o600)
    created = subprocess.run(
        [find_pg_binary("createdb"), "-h", str(workdir), "-p", str(server.port), "-U", SUPERUSER,
         DATABASE],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if created.returncode != 0 and "already exists" not in created.stderr:
        server.stop()
        raise StackError(f"createdb {DATABASE} failed: {created.stderr.strip()}")
    url = server.url(DATABASE, with_password=False)
    return ServiceRecord(
        name=NAME,
        pid=server.pid or 0,
        start_ticks=process_start_ticks(server.pid) if server.pid else None,
        port=server.port,
        url=url,
        health_url=url,
        log=str(server.log_path),
        binary=find_pg_binary("postgres"),
    )


def probe_service(service: ServiceRecord) -> str | None:
    """``None`` when the service answers: HTTP health for most, ``pg_isready`` for PostgreSQL."""
    if not service.health_url.startswith(URL_SCHEME):
        return probe(service.health_url)
    result = subprocess.run(
        [find_pg_binary("pg_isready"), "-h", LOOPBACK, "-p", str(service.port)],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    return None if result.returncode == 0 else (result.stdout.strip() or "not accepting")


def request_fast_shutdown(service: ServiceRecord) -> None:
    """SIGINT first: PostgreSQL's SIGTERM waits for every client (a proxy) to leave."""
    if service.name == NAME and pid_alive(service.pid, service.start_ticks):
        with contextlib.suppress(ProcessLookupError):
            os.kill(service.pid, signal.SIGINT)
