"""The batching writer every access-log backend shares.

``store()`` runs on the event loop at the end of every request, so it only
appends the record to a bounded in-memory queue; one background thread
writes the queue to the database in batches, one transaction each. Batches
amortise the commit, which is what makes thousands of records per second
cheap, and the thread keeps database latency (a slow disk, a lock held by
another worker) off the event loop.

Overflow policy: **drop newest**. When the queue is full, the record being
handed over is refused and counted (``reason="queue_full"``); records
already queued are kept. A record, once accepted, is therefore written
unless the database itself fails (``reason="write_error"``): ``close()``
drains the whole queue before it returns, which is what lets a SIGTERM'd
proxy lose nothing it accepted. Every drop is counted in
``access_log_dropped_total`` and logged, at most once per reason every
``_DROP_LOG_INTERVAL`` seconds, with the number dropped since the last line.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import structlog

from ccobs.access_log import breakdown, columns, rollup
from ccobs.access_log.counters import AccessLogCounters
from ccobs.access_log.query import (
    TABLE,
    LogFilter,
    analytics_result,
    analytics_sql,
    records_sql,
    row_dict,
    source,
)
from ccobs.access_log.query import to_row as _to_row
from ccobs.access_log.rollup import DIM_COLUMNS, DIMS, META, ROLLUP, DimKey
from ccobs.access_log.tail import LiveTail
from ccobs.storage import AccessLogRecord

if TYPE_CHECKING:
    from ccobs.metrics import PrometheusMetrics

logger = structlog.get_logger("ccobs.access_log")

_DROP_LOG_INTERVAL = 10.0
_REOPEN_INTERVAL = 1.0
DEFAULT_RETENTION_DAYS = 30.0
DEFAULT_QUEUE_SIZE = 50_000


class AccessLogReader(ABC):
    """Read side of an access-log database: the record and analytics queries.

    Each call opens (or borrows) a connection of its own, so queries run on
    any thread, concurrently with the writer.
    """

    hour_expr = "ts_us / 3600000000"

    @abstractmethod
    def _read_connection(self) -> Any: ...

    def query(self, flt: LogFilter) -> list[dict[str, Any]]:
        """Matching records, newest first, at most ``flt.limit``."""
        conn = self._read_connection()
        try:
            sql, params = records_sql(flt, self._table(conn))
            return [row_dict(row) for row in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    def analytics(
        self,
        flt: LogFilter,
        *,
        use_rollup: bool = True,
        group_by: str | None = None,
        top: int = breakdown.DEFAULT_TOP,
    ) -> dict[str, Any]:
        """Totals and per-model, per-hour requests, tokens, cost, error ratio, p50/p95; or,
        ``group_by`` one of ``breakdown.GROUPS``, totals and the ``top`` groups by cost.

        Whole hours come from the hourly rollup (see ``ccobs.access_log.rollup``),
        the partial hours at the range's edges from the raw records, all in one
        read transaction; a filter or grouping by session reads raw records only.
        ``use_rollup=False`` scans raw records only (the reference the rollup is
        tested against).
        """
        column = breakdown.column_of(group_by) if group_by is not None else None
        if group_by is not None:
            breakdown.check_top(top)
        conn = self._read_connection()
        try:
            table = self._table(conn)
            rolled = (
                use_rollup
                and rollup.answers(flt)
                and (column is None or column in DIM_COLUMNS)
                and self._rollup_ready(conn)
            )
            if rolled:
                conn.execute("BEGIN TRANSACTION")  # one snapshot for rollup and edges
            if group_by is None:
                if rolled:
                    rows = self._rolled_up_rows(conn, flt, table)
                else:
                    sql, params = analytics_sql(flt, self.hour_expr, table=table)
                    rows = conn.execute(sql, params).fetchall()
                return analytics_result(rows, flt)
            assert column is not None
            if column not in DIM_COLUMNS:  # sessions: the database ranks them
                ranked = conn.execute(*breakdown.ranked_sql(flt, column, top, table)).fetchall()
                keys = [row[0] for row in ranked]
                sql, params = breakdown.groups_sql(flt, column, table, keys=keys)
                rows = conn.execute(sql, params).fetchall() if keys else []
                totals = conn.execute(*breakdown.groups_sql(flt, None, table)).fetchall()
                return breakdown.breakdown_result(rows, flt, group_by, top, totals)
            if rolled:
                rows = self._rolled_up_groups(conn, flt, column, table)
            else:
                rows = conn.execute(*breakdown.groups_sql(flt, column, table)).fetchall()
            return breakdown.breakdown_result(rows, flt, group_by, top)
        finally:
            conn.close()

    @staticmethod
    def _table(conn: Any) -> str:
        """The table to read, with NULL for columns no writer has added yet (``query.source``)."""
        cursor = conn.execute(f"SELECT * FROM {TABLE} LIMIT 0")
        return source(entry[0] for entry in cursor.description)

    @staticmethod
    def _rollup_ready(conn: Any) -> bool:
        try:
            row = conn.execute(f"SELECT value FROM {META} WHERE key = 'rollup'").fetchone()
        except Exception:  # written by a version without the rollup
            return False
        return row is not None and row[0] == rollup.ROLLUP_VERSION

    def _rolled_up_rows(self, conn: Any, flt: LogFilter, table: str = TABLE) -> list[Any]:
        hours, edges = rollup.split(flt)
        rows: list[Any] = []
        for span in edges:
            sql, params = analytics_sql(flt, self.hour_expr, span, table)
            rows.extend(conn.execute(sql, params).fetchall())
        if hours is None:
            return rows
        found, dim_ids = self._matching_dims(conn, flt)
        if found:
            sql, params = rollup.rollup_sql(hours, dim_ids)
            rows.extend(conn.execute(sql, params).fetchall())
        return rows

    def _rolled_up_groups(self, conn: Any, flt: LogFilter, column: str, table: str) -> list[Any]:
        """``breakdown.groups_sql`` rows: raw records at the edges, the rollup for whole hours."""
        hours, edges = rollup.split(flt)
        rows: list[Any] = []
        for span in edges:
            sql, params = breakdown.groups_sql(flt, column, table, span)
            rows.extend(conn.execute(sql, params).fetchall())
        if hours is None:
            return rows
        found, dim_ids = self._matching_dims(conn, flt)
        if found:
            sql, params = rollup.rollup_groups_sql(hours, dim_ids, column)
            rows.extend(conn.execute(sql, params).fetchall())
        return rows

    @staticmethod
    def _matching_dims(conn: Any, flt: LogFilter) -> tuple[bool, list[int] | None]:
        """Whether any dimension matches ``flt``, and which (None: all, unfiltered)."""
        if not rollup.filtered(flt):
            return True, None
        sql, params = rollup.dims_sql(flt)
        dim_ids = sorted(int(row[0]) for row in conn.execute(sql, params).fetchall())
        return bool(dim_ids), dim_ids


class BatchingAccessLog(AccessLogReader):
    """An ``AccessLogStorage`` that writes on a background thread; subclasses bring the SQL.

    ``retention_days`` of records are kept: older ones are deleted when the
    store opens and every ``prune_interval`` seconds. ``keep_client_info``
    keeps the client address and user agent, which are personal data and
    therefore dropped by default even when a caller hands them over.
    ``live`` feeds the ``/logs/stream`` tail.
    """

    backend = "abstract"
    begin_write = "BEGIN TRANSACTION"
    null_safe_eq = "IS NOT DISTINCT FROM"
    column_types: Mapping[str, str] = columns.DUCKDB_TYPES
    """SQL for each portable column type (``columns.py``), for the columns a migration adds."""

    def __init__(
        self,
        path: str | Path,
        *,
        metrics: PrometheusMetrics | None = None,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        batch_size: int = 2_000,
        flush_interval: float = 0.2,
        prune_interval: float = 3600.0,
        keep_client_info: bool = False,
    ) -> None:
        if retention_days <= 0 or queue_size <= 0 or batch_size <= 0:
            raise ValueError("retention_days, queue_size and batch_size must be positive")
        if flush_interval <= 0 or prune_interval <= 0:
            raise ValueError("flush_interval and prune_interval must be positive")
        self.path = Path(path)
        self.retention_days = retention_days
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.prune_interval = prune_interval
        self.keep_client_info = keep_client_info
        self.live = LiveTail()
        self._counters = AccessLogCounters.for_metrics(metrics)
        self._queue: deque[AccessLogRecord] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._accepted = 0
        self._done = 0  # accepted records written or dropped by the writer
        self._written = 0
        self._dropped: dict[str, int] = {}
        self._unlogged: dict[str, int] = {}
        self._last_logged: dict[str, float] = {}
        self._prune_requested = False
        self._flush_requested = False
        self._pruned = 0
        self._prune_rounds = 0
        self._conn: Any | None = None
        self._next_open = 0.0
        self._dims: dict[DimKey, int] = {}  # dimension ids, never deleted: safe to cache
        self._thread = threading.Thread(
            target=self._run, name=f"ccobs-access-log-{self.backend}", daemon=True
        )
        self._thread.start()

    @property
    def where(self) -> str:
        """The database as log lines name it (a URL store masks its password)."""
        return str(self.path)

    # -- backend ----------------------------------------------------------------------------

    @abstractmethod
    def _open(self) -> Any:
        """A write connection with the schema and rollup in place (called on the writer thread).

        Call ``_ensure_rollup(conn)`` once the tables exist.
        """

    @abstractmethod
    def _insert_raw(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        """Insert raw ``rows`` (inside the caller's transaction)."""

    @abstractmethod
    def _upsert_rollup(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        """Add rollup ``rows`` (``rollup.ROLLUP_COLUMNS``, unique keys) to the rollup's sums."""

    @abstractmethod
    def _delete_raw(self, conn: Any, cutoff_us: int) -> int:
        """Delete raw records older than ``cutoff_us`` (inside the transaction); how many."""

    # -- writes: raw records and the rollup in one transaction -------------------------------

    @contextmanager
    def _transaction(self, conn: Any) -> Iterator[None]:
        conn.execute(self.begin_write)
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            self._dims.clear()  # ids taken in this transaction are gone with it
            with suppress(Exception):  # the database may have rolled back already (SQLITE_FULL)
                conn.execute("ROLLBACK")
            raise

    def _insert(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` and add them to the rollup, in one transaction."""
        with self._transaction(conn):
            self._insert_raw(conn, rows)
            added = rollup.deltas(rows, lambda dim: self._dim_id(conn, dim))
            if added:
                self._upsert_rollup(conn, added)

    def _delete_before(self, conn: Any, cutoff_us: int) -> int:
        """Delete records older than ``cutoff_us`` and their share of the rollup; how many."""
        hour = cutoff_us // rollup.HOUR_US
        with self._transaction(conn):
            pruned = self._grouped_raw(conn, hour * rollup.HOUR_US, cutoff_us)
            if pruned:
                self._upsert_rollup(conn, [(*key, *(-v for v in vals)) for *key, vals in pruned])
            conn.execute(
                f"DELETE FROM {ROLLUP} WHERE hour < ? OR (hour = ? AND requests <= 0)",
                [hour, hour],
            )
            return self._delete_raw(conn, cutoff_us)

    def _ensure_rollup(self, conn: Any) -> None:
        """Bring an older database up to date, in one transaction: add the record columns it
        lacks, then roll up its raw records once if it predates the rollup, or add the newer
        dimensions to a version 1 rollup."""
        with self._transaction(conn):
            present = [d[0] for d in conn.execute(f"SELECT * FROM {TABLE} LIMIT 0").description]
            for column in columns.missing(present):
                conn.execute(columns.add_column(TABLE, column, self.column_types))
            done = conn.execute(f"SELECT value FROM {META} WHERE key = 'rollup'").fetchone()
            if done is not None and done[0] == "1":
                present = [d[0] for d in conn.execute(f"SELECT * FROM {DIMS} LIMIT 0").description]
                for name in rollup.DIMS_ADDED_IN_2:
                    if name not in present:
                        conn.execute(f"ALTER TABLE {DIMS} ADD COLUMN {name} TEXT")
                conn.execute(
                    f"UPDATE {META} SET value = ? WHERE key = 'rollup'", [rollup.ROLLUP_VERSION]
                )
                logger.info("access_log_rollup_upgraded", path=str(self.path))
                return
            if done is not None:
                return
            conn.execute(f"DELETE FROM {ROLLUP}")
            existing = self._grouped_raw(conn, -(2**62), 2**62)
            if existing:
                self._upsert_rollup(conn, [(*key, *vals) for *key, vals in existing])
            conn.execute(
                f"INSERT INTO {META} (key, value) VALUES ('rollup', ?)", [rollup.ROLLUP_VERSION]
            )
            if existing:
                logger.info("access_log_rolled_up", rows=len(existing), path=self.where)

    def _grouped_raw(
        self, conn: Any, start_us: int, end_us: int
    ) -> list[tuple[int, int, int, list[Any]]]:
        """Raw records in ``[start_us, end_us)`` summed per rollup key (hour, dim, bucket)."""
        rows = conn.execute(rollup.grouped_raw_sql(self.hour_expr), [start_us, end_us]).fetchall()
        n = len(DIM_COLUMNS)
        return [
            (
                int(row[0]),
                self._dim_id(conn, tuple(row[1 : n + 1])),
                int(row[n + 1]),
                list(row[n + 2 :]),
            )
            for row in rows
        ]

    def _dim_id(self, conn: Any, dim: DimKey) -> int:
        """The id of a dimension (``DIM_COLUMNS`` values); a new one is taken under the write
        lock."""
        cached = self._dims.get(dim)
        if cached is not None:
            return cached
        eq = self.null_safe_eq
        found = conn.execute(
            f"SELECT id FROM {DIMS} WHERE " + " AND ".join(f"{c} {eq} ?" for c in DIM_COLUMNS),
            list(dim),
        ).fetchone()
        if found is None:
            found = conn.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {DIMS}").fetchone()
            conn.execute(
                f"INSERT INTO {DIMS} (id, {', '.join(DIM_COLUMNS)}) "
                f"VALUES ({', '.join('?' * (len(DIM_COLUMNS) + 1))})",
                [found[0], *dim],
            )
        self._dims[dim] = int(found[0])
        return int(found[0])

    # -- the storage protocol -----------------------------------------------------------------

    def store(self, record: AccessLogRecord) -> None:
        """Queue ``record`` for writing; never blocks on I/O, never raises."""
        self.live.publish(record)
        with self._cond:
            if self._closing:
                reason = "closed"
            elif len(self._queue) >= self.queue_size:
                reason = "queue_full"
            else:
                self._queue.append(record)
                self._accepted += 1
                if len(self._queue) in (1, self.batch_size):  # the first: arm the flush timer
                    self._cond.notify_all()
                return
        self._drop(reason, 1)

    # -- lifecycle -----------------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every record accepted so far is written (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._accepted
            self._flush_requested = True
            self._cond.notify_all()
            while self._done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(remaining)
        return True

    def prune(self, timeout: float = 30.0) -> int:
        """Delete records past the retention now (the writer does it); the number deleted."""
        with self._cond:
            rounds = self._prune_rounds
            pruned = self._pruned
            self._prune_requested = True
            self._cond.notify_all()
            deadline = time.monotonic() + timeout
            while self._prune_rounds == rounds and self._thread.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._pruned - pruned

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new records, write every queued one, close the database. Idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.error("access_log_close_timeout", queued=len(self._queue), timeout_s=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        """This store's accepted, written, dropped (by reason) and queued counts."""
        with self._cond:
            return {
                "accepted": self._accepted,
                "written": self._written,
                "dropped": dict(self._dropped),
                "queued": len(self._queue),
            }

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        next_prune = time.monotonic()  # prune once at start
        while True:
            with self._cond:
                started = time.monotonic()
                while (
                    not self._closing
                    and not self._prune_requested
                    and len(self._queue) < self.batch_size
                    and not self._flush_requested
                ):
                    wake_at = started + self.flush_interval if self._queue else next_prune
                    remaining = wake_at - time.monotonic()
                    if remaining <= 0:
                        break
                    was_empty = not self._queue
                    self._cond.wait(remaining)
                    if was_empty:  # the first record arms the flush interval
                        started = time.monotonic()
                batch = [
                    self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))
                ]
                if not self._queue:
                    self._flush_requested = False
                closing = self._closing
                prune_now = self._prune_requested or time.monotonic() >= next_prune
            if batch:
                self._write(batch)
            if prune_now:
                self._prune()
                next_prune = time.monotonic() + self.prune_interval
            with self._cond:
                if closing and not self._queue:
                    break
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # closing is best effort; the data is committed
                logger.exception("access_log_close_failed", path=self.where)

    def _connection(self) -> Any:
        if self._conn is None and time.monotonic() >= self._next_open:
            try:
                self._conn = self._open()
            except Exception as exc:
                self._next_open = time.monotonic() + _REOPEN_INTERVAL
                logger.error(
                    "access_log_open_failed",
                    path=self.where,
                    error=f"{type(exc).__name__}: {exc}"[:300],
                )
        return self._conn

    def _write(self, batch: list[AccessLogRecord]) -> None:
        error: Exception | None = None
        conn = self._connection()
        if conn is not None:
            try:
                rows = [_to_row(record, self.keep_client_info) for record in batch]
                self._insert(conn, rows)
            except Exception as exc:
                error = exc
        with self._cond:
            self._done += len(batch)
            if conn is not None and error is None:
                self._written += len(batch)
            self._cond.notify_all()
        if conn is not None and error is None:
            self._counters.count_written(len(batch))
        else:
            self._drop("write_error", len(batch), error)

    def _prune(self) -> None:
        cutoff_us = int((time.time() - self.retention_days * 86_400) * 1_000_000)
        deleted = 0
        conn = self._connection()
        if conn is not None:
            try:
                deleted = self._delete_before(conn, cutoff_us)
            except Exception as exc:
                logger.error("access_log_prune_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        if deleted:
            logger.info("access_log_pruned", deleted=deleted, retention_days=self.retention_days)
        with self._cond:
            self._pruned += deleted
            self._prune_rounds += 1
            self._prune_requested = False
            self._cond.notify_all()

    def _drop(self, reason: str, count: int, error: Exception | None = None) -> None:
        self._counters.count_dropped(reason, count)
        now = time.monotonic()
        with self._cond:
            self._dropped[reason] = self._dropped.get(reason, 0) + count
            self._unlogged[reason] = self._unlogged.get(reason, 0) + count
            last = self._last_logged.get(reason)
            if last is not None and now - last < _DROP_LOG_INTERVAL:
                return
            self._last_logged[reason] = now
            dropped = self._unlogged.pop(reason)
        fields: dict[str, Any] = {"reason": reason, "dropped": dropped, "path": self.where}
        if error is not None:
            fields["error"] = f"{type(error).__name__}: {error}"[:300]
        logger.warning("access_log_records_dropped", **fields)
