"""Debian's PostgreSQL for the tests: one server per session, a fresh database per test.

Starting a cluster (``initdb``) takes about a second, a database a few
milliseconds: so the session shares one server and every test that needs
isolation gets its own database. ``fsync`` is off: a power loss is not under
test, and the suite shares two cores. A missing binary fails (never skips)
with the command that installs it.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ccobs.stack.postgres import PostgresServer, find_pg_binary
from ccobs.stack.processes import MissingBinaryError

PASSWORD = "pg-s3cret-for-tests"
"""The superuser's password: the tests check that it shows up nowhere."""
_numbers = itertools.count(1)


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A fresh cluster in a temp dir under /tmp (the server's user must reach it), removed after."""
    try:
        for name in ("initdb", "postgres", "pg_isready"):
            find_pg_binary(name)
    except MissingBinaryError as missing:
        pytest.fail(
            f"{missing} Run `make test`, or `scripts/install-debian-deps.sh`, which installs it.",
            pytrace=False,
        )
    workdir = Path(tempfile.mkdtemp(prefix="ccobs-pg-"))
    try:
        with PostgresServer(workdir, password=PASSWORD, fsync=False) as server:
            yield server
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def create_database(server: PostgresServer, prefix: str = "t") -> str:
    """A new empty database on ``server``; its URL (with the password)."""
    import psycopg

    name = f"{prefix}{next(_numbers)}"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.url(name)
