"""DuckDB backend (``pip install ccobs[duckdb]``): columnar storage for analytics at volume.

Same records, same queries and hourly rollup as SQLite; scans of raw
records (filtered queries, the partial hours at an analytics range's edges)
are what get faster. Rows go in column-wise (one ``unnest`` per column),
the rollup's upsert too: DuckDB's row-at-a-time ``executemany`` manages
about a thousand rows a second, the column-wise insert about a hundred
thousand.

DuckDB lets only one process open a database for writing, so this backend
suits a single-process proxy (``--workers 1``); while the proxy runs,
``ccobs logs`` cannot open the file (query through ``/logs/*`` instead).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ccobs.access_log import columns, rollup
from ccobs.access_log.columns import COLUMNS
from ccobs.access_log.query import TABLE
from ccobs.access_log.store import AccessLogReader, BatchingAccessLog

duckdb: Any
try:
    import duckdb
except ImportError:  # pragma: no cover - the optional extra is missing
    duckdb = None

SCHEMA = columns.create_table(TABLE, columns.DUCKDB_TYPES)
_TYPES = {column.name: columns.DUCKDB_TYPES[column.type] for column in columns.COLUMN_SPECS}
_UPSERT = (
    f"INSERT INTO {rollup.ROLLUP} ({', '.join(rollup.ROLLUP_COLUMNS)}) SELECT "
    + ", ".join(f"unnest(?::{rollup.ROLLUP_TYPES[c]}[])" for c in rollup.ROLLUP_COLUMNS)
    + f" ON CONFLICT ({', '.join(rollup.KEY)}) DO UPDATE SET {rollup.UPSERT_SET}"
)
_INSERT = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) SELECT " + ", ".join(
    f"unnest(?::{_TYPES[column]}[])" for column in COLUMNS
)


def _require() -> Any:
    if duckdb is None:
        raise RuntimeError("the DuckDB access-log backend needs `pip install ccobs[duckdb]`")
    return duckdb


class DuckDBAccessLogReader(AccessLogReader):
    """Queries on a DuckDB access-log file, read-only; fails while a proxy holds it open."""

    hour_expr = "ts_us // 3600000000"

    def __init__(self, path: str | Path) -> None:
        _require()
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no access-log database at {str(self.path)!r}")

    def _read_connection(self) -> Any:
        return _require().connect(str(self.path), read_only=True)


class DuckDBAccessLog(BatchingAccessLog):
    """Access-log records in a DuckDB file; see ``BatchingAccessLog`` for the write path."""

    backend = "duckdb"
    column_types = columns.DUCKDB_TYPES
    hour_expr = "ts_us // 3600000000"

    def __init__(self, path: str | Path, **kwargs: Any) -> None:
        _require()
        super().__init__(path, **kwargs)

    def _open(self) -> Any:
        conn = _require().connect(str(self.path))
        try:
            for statement in (SCHEMA, *rollup.schema()):
                conn.execute(statement)
            self._ensure_rollup(conn)
        except Exception:
            conn.close()
            raise
        return conn

    def _insert_raw(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        conn.execute(_INSERT, [list(column) for column in zip(*rows, strict=True)])

    def _upsert_rollup(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        conn.execute(_UPSERT, [list(column) for column in zip(*rows, strict=True)])

    def _delete_raw(self, conn: Any, cutoff_us: int) -> int:
        result = conn.execute(f"DELETE FROM {TABLE} WHERE ts_us < ?", [cutoff_us]).fetchone()
        return int(result[0]) if result else 0

    def _read_connection(self) -> Any:
        # A second connection to the same file in this process shares the writer's
        # database instance (DuckDB caches it by path), so it reads committed rows.
        return _require().connect(str(self.path))
