import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
from pgserver import create_database, running_postgres
from prometheus_client import CollectorRegistry
from realservers import ServerProcess, start_pushgateway, start_victoria_metrics

from ccobs.logging import UVICORN_LOGGERS
from ccobs.metrics import PrometheusMetrics
from ccobs.stack.postgres import PostgresServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def registry() -> CollectorRegistry:
    """A registry of the test's own, so that no two tests share a series."""
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> PrometheusMetrics:
    """ccobs's metrics with default settings, registered in the test's own ``registry``."""
    return PrometheusMetrics(registry=registry)


@contextmanager
def restored_logging() -> Iterator[None]:
    """Pristine structlog and stdlib logging state inside the block, restored after it."""
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    saved = {
        name: (lg.handlers[:], lg.level, lg.propagate)
        for name in UVICORN_LOGGERS
        if (lg := logging.getLogger(name))
    }
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    try:
        yield
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
        # setLevel, not assignment: it also clears the loggers' level caches, which
        # the request path reads.
        root.handlers[:] = saved_root[0]
        root.setLevel(saved_root[1])
        for name, (handlers, level, propagate) in saved.items():
            lg = logging.getLogger(name)
            lg.handlers[:], lg.propagate = handlers, propagate
            lg.setLevel(level)


@contextmanager
def without_pytest_log_handlers() -> Iterator[None]:
    """Inside the block the root logger has none of pytest's capture handlers.

    pytest hangs them on the root logger at the start of every test phase; while
    they listen, the access-log line takes the ordinary logging chain (they must
    see it), so a test of the line's direct path (``ccobs.access_line``) sets them
    aside for the block, inside the test, and restores them after it. Handlers
    the test added itself stay.
    """
    root = logging.getLogger()
    pytests = [h for h in root.handlers if type(h).__module__.startswith("_pytest")]
    for handler in pytests:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in pytests:
            root.addHandler(handler)


@contextmanager
def log_records(name: str) -> Iterator[list[logging.LogRecord]]:
    """Every ``LogRecord`` the standard library makes for logger ``name`` inside the block."""
    made: list[logging.LogRecord] = []
    factory = logging.getLogRecordFactory()

    def recording(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        if record.name == name:
            made.append(record)
        return record

    logging.setLogRecordFactory(recording)
    try:
        yield made
    finally:
        logging.setLogRecordFactory(factory)


@pytest.fixture
def isolated_logging() -> Iterator[None]:
    """Pristine structlog and stdlib logging state for the test, restored after it."""
    with restored_logging():
        yield


# --- real servers (tests/realservers.py) --------------------------------------
# Function-scoped: each binary is ready in ~0.1 s on loopback, so every test
# gets an empty server rather than state left by the previous one.


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[ServerProcess]:
    """A running Pushgateway with no persistence, stopped after the test."""
    with start_pushgateway(tmp_path) as server:
        yield server


@pytest.fixture
def victoria_metrics(tmp_path: Path) -> Iterator[ServerProcess]:
    """A running single-node VictoriaMetrics (no query latency offset)."""
    with start_victoria_metrics(tmp_path) as server:
        yield server


# --- PostgreSQL (tests/pgserver.py) -------------------------------------------
# Session-scoped: initdb is the slow part; a database per test is cheap.


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Debian's PostgreSQL on a loopback port, shared by the session's tests."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL (password included) of a new, empty database of the session's server."""
    return create_database(postgres_server)


ACCESS_LOG_BACKENDS = ("sqlite", "duckdb", "postgres")


@pytest.fixture(params=ACCESS_LOG_BACKENDS)
def access_log_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's access log lives, once per backend: a SQLite file, a DuckDB file,
    a fresh PostgreSQL database. The shared store tests run against all three."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / ("access.duckdb" if request.param == "duckdb" else "access.db"))
