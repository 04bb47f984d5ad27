"""PostgreSQL backend (``pip install ccobs[postgres]``): one access log shared by many proxies.

SQLite and DuckDB live on one proxy's disk, so with two replicas "spend per
team this month" comes out per replica, and a replaced replica takes its
records with it. Several proxies (and ``ccobs logs``) share one PostgreSQL
database instead; the records, queries and hourly rollup are the ones the
embedded stores have, so every answer is the same on the same records.

Selected by a ``postgresql://`` or ``postgres://`` URL. The password comes
from the URL, ``PGPASSWORD`` or a password file (libpq reads both); it is
never logged: every message names the URL with the password masked
(:func:`mask_url`) and has any echo of the password scrubbed.

Writes: each batch is one transaction that first takes a transaction-scoped
advisory lock, so writers from several proxies take turns exactly as SQLite
writers take its write lock: the rollup's read-then-add and the dimension
ids stay consistent, and no two transactions can deadlock. Rows go in with
``COPY``.

The raw table is partitioned by UTC day on ``ts_us`` (declarative range
partitioning), so a day's queries touch that day's partition and retention
drops whole partitions; only the day the cutoff falls in has rows deleted.
Partitions are created two days ahead at start and on every prune round,
and on demand for any other day a batch holds.

Schema: created on first use, under a session advisory lock so two proxies
starting at once do not race; ``access_log_schema_version`` says which
version wrote it. A column the shared row layout (``columns.COLUMN_SPECS``) has and
the table lacks is added on open, so a new column needs no migration here.

A proxy whose database is down keeps serving: the writer thread counts and
logs each batch it cannot write (``access_log_dropped_total{reason="write_error"}``),
drops a broken connection and reconnects at most once a second, each
attempt bounded by ``connect_timeout``.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from ccobs.access_log import rollup
from ccobs.access_log.columns import (
    COLUMN_SPECS,
    COLUMNS,
    POSTGRES_TYPES,
    add_column,
    definition,
    missing,
)
from ccobs.access_log.location import mask_url, scrub
from ccobs.access_log.query import TABLE
from ccobs.access_log.store import AccessLogReader, BatchingAccessLog

psycopg: Any
_LoaderBase: Any
try:
    import psycopg
    from psycopg.adapt import Loader as _LoaderBase
except ImportError:  # pragma: no cover - the optional extra is missing
    psycopg = None
    _LoaderBase = object

logger = structlog.get_logger("ccobs.access_log")

SCHEMA_VERSION = 1
VERSION_TABLE = "access_log_schema_version"
LOCK_KEY = 0x63636F6273  # "ccobs": the advisory lock every ccobs writer of a database takes
CONNECT_TIMEOUT_S = 5
DAY_US = 86_400_000_000
DAYS_AHEAD = 2
_PARTITION = re.compile(rf"^{TABLE}_p(\d{{8}})$")


class AccessLogDatabaseUnavailable(OSError):
    """The database cannot be reached or opened; the message names it, password masked.

    An ``OSError`` like a missing SQLite file, so ``ccobs logs`` reports both alike.
    """


def _require() -> Any:
    if psycopg is None:
        raise RuntimeError("the PostgreSQL access-log backend needs `pip install ccobs[postgres]`")
    return psycopg


class _IntegralNumericLoader(_LoaderBase):  # type: ignore[misc]
    """``numeric`` as ``int`` when integral, else ``float``.

    ``SUM`` of a ``BIGINT`` is ``numeric`` in PostgreSQL; the shared analytics
    code adds and serialises plain numbers, as SQLite and DuckDB return them.
    """

    def load(self, data: Any) -> int | float:
        text = bytes(data)
        return float(text) if b"." in text else int(text)


@functools.lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    """The shared SQL's ``?`` placeholders as psycopg's ``%s`` (the shared SQL has no ``%``)."""
    return sql.replace("?", "%s")


class PgConnection:
    """A psycopg connection speaking the shared SQL (``?`` placeholders), autocommit.

    Autocommit as SQLite's ``isolation_level=None``: the shared code issues
    ``BEGIN`` and ``COMMIT`` itself.
    """

    def __init__(self, raw: Any, pool: ReadPool | None = None) -> None:
        self.raw = raw
        self.pool = pool

    def execute(self, sql: str, params: Any = None) -> Any:
        if params is None:
            return self.raw.execute(sql)
        return self.raw.execute(_placeholders(sql), params)

    @property
    def broken(self) -> bool:
        return bool(self.raw.broken or self.raw.closed)

    def close(self) -> None:
        """Close, or hand a reader's connection back to its pool for the next query."""
        if self.pool is None or not self.pool.give_back(self):
            self.raw.close()


class ReadPool:
    """A few idle read connections kept for the next query.

    A PostgreSQL connection costs a TCP handshake, authentication (scram:
    deliberately slow) and a backend process; a query over the last hour
    costs far less. Queries run on worker threads at once, so this is a
    locked list of at most ``size`` idle connections; any more are closed.
    """

    def __init__(self, url: str, size: int = 4) -> None:
        self.url = url
        self.size = size
        self._idle: list[PgConnection] = []
        self._lock = threading.Lock()

    def take(self) -> PgConnection:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is not None and not conn.broken:
            return conn
        fresh = connect(self.url, read_only=True)
        fresh.pool = self
        return fresh

    def give_back(self, conn: PgConnection) -> bool:
        """Keep ``conn`` (its transaction ended) if it is healthy and there is room."""
        if conn.broken:
            return False
        try:
            if conn.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.raw.execute("ROLLBACK")  # a reader's snapshot ends with its query
        except Exception:
            return False
        with self._lock:
            if len(self._idle) >= self.size:
                return False
            self._idle.append(conn)
            return True

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.raw.close()


def connect(url: str, *, read_only: bool = False) -> PgConnection:
    """A connection to ``url``; :class:`AccessLogDatabaseUnavailable` (masked) when refused."""
    driver = _require()
    try:
        raw = driver.connect(
            url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name="ccobs-access-log",
        )
    except driver.Error as exc:
        message = scrub(str(exc).strip(), url)
        raise AccessLogDatabaseUnavailable(
            f"cannot connect to {mask_url(url)}: {message}"
        ) from None
    raw.adapters.register_loader("numeric", _IntegralNumericLoader)
    if read_only:
        # One snapshot per read transaction, as SQLite's: rollup and raw edges agree.
        raw.execute(
            "SET default_transaction_isolation = 'repeatable read'; "
            "SET default_transaction_read_only = on"
        )
    return PgConnection(raw)


def schema_statements() -> list[str]:
    """The tables of schema version 1: raw records partitioned by day, the rollup, the version."""
    columns = ", ".join(definition(column, POSTGRES_TYPES) for column in COLUMN_SPECS)
    return [
        f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} "
        "(version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        f"CREATE TABLE IF NOT EXISTS {TABLE} ({columns}) PARTITION BY RANGE (ts_us)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_ts ON {TABLE} (ts_us)",
        *(statement.replace("DOUBLE", "DOUBLE PRECISION") for statement in rollup.schema()),
    ]


def partition_name(day: int) -> str:
    """``access_log_p20260501``: the partition of UTC day ``day`` (days since the epoch)."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)
    return f"{TABLE}_p{moment:%Y%m%d}"


def partition_day(name: str) -> int | None:
    match = _PARTITION.match(name)
    if match is None:
        return None
    moment = datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)).days


_UPSERT = (
    f"INSERT INTO {rollup.ROLLUP} ({', '.join(rollup.ROLLUP_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(
        f"%s::{rollup.ROLLUP_TYPES[c].replace('DOUBLE', 'DOUBLE PRECISION')}[]"
        for c in rollup.ROLLUP_COLUMNS
    )
    + f") ON CONFLICT ({', '.join(rollup.KEY)}) DO UPDATE SET "
    # PostgreSQL wants the target's columns qualified where SQLite and DuckDB take them bare.
    + ", ".join(f"{c} = {rollup.ROLLUP}.{c} + excluded.{c}" for c in rollup.VALUES)
)
_COPY = f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN"
_LOCK = f"SELECT pg_advisory_xact_lock({LOCK_KEY})"


class PostgresAccessLogReader(AccessLogReader):
    """Queries on a PostgreSQL access log (``ccobs logs``, the query API); reads run
    beside the writers of every proxy.

    Connects once at construction, so a wrong URL, a refused connection or a
    missing database is an :class:`AccessLogDatabaseUnavailable` here, at start.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool = ReadPool(url)
        self._pool.take().close()

    def _read_connection(self) -> Any:
        return self._pool.take()

    def __repr__(self) -> str:
        return f"<PostgresAccessLogReader {mask_url(self.url)}>"


class PostgresAccessLog(BatchingAccessLog):
    """Access-log records in a shared PostgreSQL database; see ``BatchingAccessLog``."""

    backend = "postgres"
    column_types = POSTGRES_TYPES
    begin_write = f"BEGIN; {_LOCK}"

    def __init__(self, url: str, **kwargs: Any) -> None:
        _require()
        self.url = url
        self._partitions: set[int] = set()
        self._read_pool = ReadPool(url)
        super().__init__(mask_url(url), **kwargs)

    @property
    def where(self) -> str:
        return mask_url(self.url)

    def __repr__(self) -> str:
        return f"<PostgresAccessLog {self.where}>"

    # -- schema -----------------------------------------------------------------------------

    def _open(self) -> PgConnection:
        conn = connect(self.url)
        try:
            conn.execute(f"SELECT pg_advisory_lock({LOCK_KEY})")  # one proxy migrates at a time
            try:
                self._migrate(conn)
                self._ensure_rollup(conn)
            finally:
                conn.execute(f"SELECT pg_advisory_unlock({LOCK_KEY})")
            self._partitions.clear()
            self._ensure_partitions(conn, self._days_around_today())
        except Exception:
            conn.close()
            raise
        logger.info("access_log_connected", url=self.where)
        return conn

    def _migrate(self, conn: PgConnection) -> None:
        with self._transaction(conn):
            exists = conn.execute("SELECT to_regclass(?)", [VERSION_TABLE]).fetchone()[0]
            version = 0
            if exists is not None:
                row = conn.execute(f"SELECT MAX(version) FROM {VERSION_TABLE}").fetchone()
                version = int(row[0] or 0)
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"the access log at {self.where} has schema version {version}, newer than "
                    f"this ccobs knows ({SCHEMA_VERSION}): upgrade ccobs"
                )
            if version < 1:
                for statement in schema_statements():
                    conn.execute(statement)
                conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (?)", [SCHEMA_VERSION])
                logger.info("access_log_schema_created", url=self.where, version=SCHEMA_VERSION)
            present = {
                row[0]
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = ?",
                    [TABLE],
                ).fetchall()
            }
            for column in missing(present):  # newer than the table: nullable, no default
                conn.execute(add_column(TABLE, column, POSTGRES_TYPES))
                logger.info("access_log_column_added", url=self.where, column=column.name)

    # -- partitions -------------------------------------------------------------------------

    @staticmethod
    def _days_around_today() -> list[int]:
        today = int(datetime.now(UTC).timestamp() * 1_000_000) // DAY_US
        return list(range(today - 1, today + DAYS_AHEAD + 1))

    def _ensure_partitions(self, conn: PgConnection, days: list[int]) -> None:
        """Create the missing day partitions of ``days``, in a transaction of their own."""
        missing = sorted(set(days) - self._partitions)
        if not missing:
            return
        with self._transaction(conn):
            for day in missing:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF {TABLE} "
                    f"FOR VALUES FROM ({day * DAY_US}) TO ({(day + 1) * DAY_US})"
                )
        self._partitions.update(missing)

    def _partitions_present(self, conn: PgConnection) -> dict[int, str]:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(?)",
            [TABLE],
        ).fetchall()
        return {day: name for (name,) in rows if (day := partition_day(name)) is not None}

    # -- writes -----------------------------------------------------------------------------

    def _insert(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        days = {row[1] // DAY_US for row in rows}
        try:
            self._ensure_partitions(conn, sorted(days))
            super()._insert(conn, rows)
        except Exception as exc:
            if not conn.broken and _no_partition(exc):
                # Another proxy's prune dropped a day this proxy thought it had.
                self._partitions.clear()
                self._ensure_partitions(conn, sorted(days))
                super()._insert(conn, rows)
                return
            self._forget_if_broken(conn)
            raise

    def _insert_raw(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        with conn.raw.cursor() as cursor, cursor.copy(_COPY) as copy:
            for row in rows:
                copy.write_row(row)

    def _upsert_rollup(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        ordered = sorted(rows)  # a fixed order: concurrent upserts of the same keys never deadlock
        conn.raw.execute(_UPSERT, [list(column) for column in zip(*ordered, strict=True)])

    def _delete_before(self, conn: Any, cutoff_us: int) -> int:
        try:
            deleted = super()._delete_before(conn, cutoff_us)
            self._ensure_partitions(conn, self._days_around_today())
        except Exception:
            self._forget_if_broken(conn)
            raise
        return deleted

    def _delete_raw(self, conn: Any, cutoff_us: int) -> int:
        """Drop the partitions wholly before ``cutoff_us``; delete the rest in the cutoff's day."""
        deleted = 0
        for day, name in sorted(self._partitions_present(conn).items()):
            if (day + 1) * DAY_US <= cutoff_us:
                deleted += int(conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0])
                conn.execute(f"DROP TABLE {name}")
                self._partitions.discard(day)
        cursor = conn.execute(f"DELETE FROM {TABLE} WHERE ts_us < ?", [cutoff_us])
        return deleted + max(int(cursor.rowcount), 0)

    def _forget_if_broken(self, conn: PgConnection) -> None:
        """Drop a connection the server closed (a restart): the next batch reconnects."""
        if conn.broken and self._conn is conn:
            self._conn = None
            self._partitions.clear()
            with contextlib.suppress(Exception):  # already gone
                conn.close()
            logger.warning("access_log_connection_lost", url=self.where)

    def _read_connection(self) -> Any:
        return self._read_pool.take()

    def close(self, timeout: float = 30.0) -> None:
        super().close(timeout)
        self._read_pool.close()


def _no_partition(exc: BaseException) -> bool:
    return psycopg is not None and isinstance(exc, psycopg.errors.CheckViolation)
