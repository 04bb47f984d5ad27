"""Access-log storage: every request on record, queryable, nothing accepted lost.

``open_access_log(path)`` gives a store for ``instrument(app, storage=...)``
or ``request_context(storage=...)``: SQLite by default, DuckDB when the path
ends in ``.duckdb`` (``pip install ccobs[duckdb]``), PostgreSQL, shared by
several proxies, for a ``postgresql://`` URL (``pip install ccobs[postgres]``).
``open_reader(path)``
queries a database offline. ``access_log_routes`` serves ``/logs/query``,
``/logs/analytics`` and ``/logs/stream`` behind a bearer token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ccobs.access_log.location import is_postgres_url, shown_location
from ccobs.access_log.query import LogFilter, parse_time
from ccobs.access_log.sqlite import SQLiteAccessLog, SQLiteAccessLogReader
from ccobs.access_log.store import AccessLogReader, BatchingAccessLog

__all__ = [
    "DUCKDB_SUFFIX",
    "AccessLogReader",
    "BatchingAccessLog",
    "LogFilter",
    "NotAnAccessLogDatabase",
    "SQLiteAccessLog",
    "SQLiteAccessLogReader",
    "is_postgres_url",
    "open_access_log",
    "open_reader",
    "parse_time",
    "shown_location",
]

DUCKDB_SUFFIX = ".duckdb"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_DUCKDB_MAGIC = (8, b"DUCK")
"""DuckDB's file header: ``DUCK`` at byte 8."""


class NotAnAccessLogDatabase(OSError):
    """The file is neither a SQLite nor a DuckDB database.

    An ``OSError`` like a missing file, so ``ccobs logs`` reports both the same
    way, with the file's name, instead of handing the file to a driver whose
    error would name neither.
    """


def open_access_log(path: str | Path, **options: Any) -> BatchingAccessLog:
    """A store writing to ``path``: PostgreSQL for a ``postgresql://`` URL, DuckDB for
    ``*.duckdb``, SQLite otherwise.

    ``options`` go to :class:`BatchingAccessLog` (``metrics``, ``retention_days``,
    ``queue_size``, ``keep_client_info``, ...). The database is opened on the
    writer thread, so a bad path shows as logged, counted drops, never as a
    failed request.
    """
    if is_postgres_url(path):
        from ccobs.access_log.postgres import PostgresAccessLog

        return PostgresAccessLog(str(path), **options)
    if Path(path).suffix == DUCKDB_SUFFIX:
        from ccobs.access_log.duckdb import DuckDBAccessLog

        return DuckDBAccessLog(path, **options)
    return SQLiteAccessLog(path, **options)


def open_reader(path: str | Path) -> AccessLogReader:
    """Read-only queries on an existing database; SQLite or DuckDB by the file's header,
    PostgreSQL for a ``postgresql://`` URL.

    Raises ``FileNotFoundError`` for a missing file, :class:`NotAnAccessLogDatabase`
    for any other file (an empty one included), and ``AccessLogDatabaseUnavailable``
    (an ``OSError`` too, its message with the password masked) for a database that
    cannot be reached.
    """
    if is_postgres_url(path):
        from ccobs.access_log.postgres import PostgresAccessLogReader

        return PostgresAccessLogReader(str(path))
    path = Path(path)
    with path.open("rb") as handle:
        header = handle.read(len(_SQLITE_MAGIC))
    if header == _SQLITE_MAGIC:
        return SQLiteAccessLogReader(path)
    offset, magic = _DUCKDB_MAGIC
    if header[offset : offset + len(magic)] == magic:
        from ccobs.access_log.duckdb import DuckDBAccessLogReader

        return DuckDBAccessLogReader(path)
    raise NotAnAccessLogDatabase(f"{path} is neither a SQLite nor a DuckDB database")
