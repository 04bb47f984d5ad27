"""The default access-log backend: SQLite from the standard library, in WAL mode.

WAL lets the query API and ``ccobs logs`` read while the writer writes, and
lets several ``ccobs proxy`` workers share one file (each waits its turn for
the write lock, up to ``busy_timeout``). ``synchronous=NORMAL`` commits
survive a crash of the process, which is what a SIGTERM or an OOM kill is;
only a power loss can take back the last transactions.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from ccobs.access_log import columns, rollup
from ccobs.access_log.query import INSERT_SQL, TABLE
from ccobs.access_log.store import AccessLogReader, BatchingAccessLog

_BUSY_TIMEOUT_MS = 10_000

SCHEMA = (
    columns.create_table(TABLE, columns.SQLITE_TYPES)
    + f";\nCREATE INDEX IF NOT EXISTS {TABLE}_ts ON {TABLE} (ts_us);\n"
    + "".join(f"{statement};\n" for statement in rollup.schema(" WITHOUT ROWID"))
)

_UPSERT = (
    f"INSERT INTO {rollup.ROLLUP} ({', '.join(rollup.ROLLUP_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(rollup.ROLLUP_COLUMNS))}) "
    f"ON CONFLICT ({', '.join(rollup.KEY)}) DO UPDATE SET {rollup.UPSERT_SET}"
)


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    else:
        conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    return conn


class SQLiteAccessLogReader(AccessLogReader):
    """Queries on an SQLite access-log file, read-only (``ccobs logs``, the query API)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no access-log database at {str(self.path)!r}")

    def _read_connection(self) -> Any:
        return _connect(self.path, read_only=True)


class SQLiteAccessLog(BatchingAccessLog):
    """Access-log records in an SQLite file; see ``BatchingAccessLog`` for the write path."""

    backend = "sqlite"
    begin_write = "BEGIN IMMEDIATE"  # take the write lock first: no deadlock between workers
    null_safe_eq = "IS"
    column_types = columns.SQLITE_TYPES

    def _open(self) -> sqlite3.Connection:
        conn = _connect(self.path)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(SCHEMA)
            self._ensure_rollup(conn)
        except Exception:
            conn.close()
            raise
        return conn

    def _insert_raw(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        conn.executemany(INSERT_SQL, rows)

    def _upsert_rollup(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        conn.executemany(_UPSERT, rows)

    def _delete_raw(self, conn: Any, cutoff_us: int) -> int:
        cursor = conn.execute(f"DELETE FROM {TABLE} WHERE ts_us < ?", (cutoff_us,))
        return int(cursor.rowcount)

    def _read_connection(self) -> Any:
        return _connect(self.path, read_only=True)
