"""The hourly rollup: analytics over a day whatever the volume.

A scan over raw records costs time in proportion to the records; a day at
5,000/s is 432 M of them. So the writer keeps, in the same transaction as
the raw inserts, one row per (hour, *dimension*, latency bucket) holding
the request and error counts and the token and cost sums, where a
dimension is one (model, status, service_type, team, key_alias, client_app)
combination (``DIM_COLUMNS``), numbered in ``access_log_dims``. That is
everything the analytics query groups and filters by but the session, so
analytics read the rollup for the whole hours of a range and scan raw
records only for the partial hours at its edges. The rollup's size depends
on the hours, dimensions and latency buckets seen, not on the number of
requests. Teams and client apps are few (an operator's identity file, a
fixed set); key aliases are the operator's plus one ``key-<fingerprint>``
per unknown key actually seen, which real traffic keeps small (a flood of
distinct keys costs a dimension per key, as it costs a raw row per
request). A session id per conversation is not bounded at all, so it stays
out: analytics filtered or
grouped by session read the raw records.

Dimensions get a small integer id instead of sitting in the rollup's key
because model, status and service type may be NULL, and a NULL never
matches a uniqueness constraint, which the upsert relies on. Ids are never
deleted, so a writer may cache them; a new one is taken under the write
lock, so several writer processes (SQLite) agree.

Retention: pruning deletes the rollup rows of hours wholly past the cutoff
and subtracts the pruned records of the cutoff's own hour, in the pruning
transaction, so the rollup always equals a ``GROUP BY`` over the raw rows.
A database written before the rollup existed is rolled up once when a
writer opens it (``access_log_meta`` records that it is done); until then
readers use the raw rows. A version 1 rollup (dimensions without team, key
alias and client app) gains those columns, NULL in its existing dimensions,
which is what the records it summed hold (they were written before the
columns existed); readers use the raw rows until that is done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ccobs.access_log.columns import COLUMNS
from ccobs.access_log.query import TABLE, LogFilter

ROLLUP = "access_log_hourly"
DIMS = "access_log_dims"
META = "access_log_meta"
ROLLUP_VERSION = "2"
"""1: dimensions (model, status, service_type); 2: plus team, key_alias, client_app."""
HOUR_US = 3_600_000_000

KEY = ("hour", "dim_id", "duration_bucket")
VALUES: tuple[str, ...] = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_input_usd",
    "cost_output_usd",
    "cost_cache_usd",
    "cost_total_usd",
)
ROLLUP_COLUMNS = (*KEY, *VALUES)
ROLLUP_TYPES = {
    **dict.fromkeys(("hour", "requests", "errors"), "BIGINT"),
    **dict.fromkeys(("dim_id", "duration_bucket"), "INTEGER"),
    **dict.fromkeys(VALUES[2:6], "BIGINT"),
    **dict.fromkeys(VALUES[6:], "DOUBLE"),
}


DIM_COLUMNS = ("model", "status", "service_type", "team", "key_alias", "client_app")
"""What a dimension is: the filters and groups the rollup answers."""
DIM_TYPES = {column: "INTEGER" if column == "status" else "TEXT" for column in DIM_COLUMNS}
DIMS_ADDED_IN_2 = ("team", "key_alias", "client_app")


def schema(without_rowid: str = "") -> list[str]:
    """The rollup's tables, in SQL both SQLite and DuckDB accept."""
    columns = ", ".join(f"{c} {ROLLUP_TYPES[c]} NOT NULL" for c in ROLLUP_COLUMNS)
    dims = ", ".join(f"{c} {DIM_TYPES[c]}" for c in DIM_COLUMNS)
    return [
        f"CREATE TABLE IF NOT EXISTS {DIMS} (id INTEGER PRIMARY KEY, {dims})",
        f"CREATE TABLE IF NOT EXISTS {ROLLUP} "
        f"({columns}, PRIMARY KEY ({', '.join(KEY)})){without_rowid}",
        f"CREATE TABLE IF NOT EXISTS {META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ]


UPSERT_SET = ", ".join(f"{c} = {c} + excluded.{c}" for c in VALUES)
"""``ON CONFLICT (KEY) DO UPDATE SET`` of the rollup upsert: adds the deltas."""

_IDX = {name: i for i, name in enumerate(COLUMNS)}
_TS, _BUCKET, _ERROR = _IDX["ts_us"], _IDX["duration_bucket"], _IDX["error_type"]
_DIM = tuple(_IDX[c] for c in DIM_COLUMNS)
_SUMMED = tuple(_IDX[c] for c in VALUES[2:])

DimKey = tuple[Any, ...]
"""A dimension's values, in ``DIM_COLUMNS`` order."""


def deltas(rows: Iterable[Sequence[Any]], dim_id: Callable[[DimKey], int]) -> list[tuple[Any, ...]]:
    """The rollup rows that add ``rows`` (stored raw rows) to the rollup, one per key."""
    out: dict[tuple[int, int, int], list[Any]] = {}
    dims: dict[DimKey, int] = {}
    for row in rows:
        dim = tuple([row[i] for i in _DIM])
        did = dims.get(dim)
        if did is None:
            did = dims[dim] = dim_id(dim)
        key = (row[_TS] // HOUR_US, did, row[_BUCKET])
        acc = out.get(key)
        if acc is None:
            acc = out[key] = [0] * 6 + [0.0] * 4
        acc[0] += 1
        if row[_ERROR] is not None:
            acc[1] += 1
        for i, column in enumerate(_SUMMED, 2):
            acc[i] += row[column] or 0
    return [(*key, *acc) for key, acc in out.items()]


_SUMS_SQL = ", ".join(
    [
        "COUNT(*)",
        "SUM(CASE WHEN error_type IS NULL THEN 0 ELSE 1 END)",
        *(f"SUM({c})" for c in VALUES[2:]),
    ]
)


def grouped_raw_sql(hour_expr: str) -> str:
    """Raw records in ``[?, ?)`` as rollup rows: hour, the ``DIM_COLUMNS`` spelled out, bucket,
    then the sums."""
    dims = ", ".join(DIM_COLUMNS)
    groups = ", ".join(str(i) for i in range(1, len(DIM_COLUMNS) + 3))
    return (
        f"SELECT {hour_expr}, {dims}, duration_bucket, {_SUMS_SQL} "
        f"FROM {TABLE} WHERE ts_us >= ? AND ts_us < ? GROUP BY {groups}"
    )


def answers(flt: LogFilter) -> bool:
    """Whether the rollup can answer ``flt``: every filter it sets is a dimension."""
    return all(value is None or column in DIM_COLUMNS for column, value in flt.matches().items())


def filtered(flt: LogFilter) -> bool:
    """Whether ``flt`` filters on any dimension (then ``dims_sql`` picks the dimensions)."""
    return any(flt.matches()[column] is not None for column in DIM_COLUMNS)


def split(flt: LogFilter) -> tuple[tuple[int | None, int | None] | None, list[tuple[Any, Any]]]:
    """The whole hours ``[first, last)`` the rollup answers, and the raw ``[start, end)`` edges.

    ``None`` bounds are open. A range inside one hour is all edge.
    """
    start, end = flt.span()
    first = None if start is None else -(-start // HOUR_US)
    last = None if end is None else end // HOUR_US
    if first is not None and last is not None and first >= last:
        return None, [(start, end)]
    edges: list[tuple[Any, Any]] = []
    if start is not None and first is not None and start < first * HOUR_US:
        edges.append((start, first * HOUR_US))
    if end is not None and last is not None and last * HOUR_US < end:
        edges.append((last * HOUR_US, end))
    return (first, last), edges


def dims_sql(flt: LogFilter) -> tuple[str, list[Any]]:
    """The dimensions ``flt`` matches (same ``=`` semantics as on raw rows: NULL never matches)."""
    clauses: list[str] = []
    params: list[Any] = []
    for column in DIM_COLUMNS:
        value = getattr(flt, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    return f"SELECT id FROM {DIMS}{where}", params


def _rollup_where(
    hours: tuple[int | None, int | None], dim_ids: Sequence[int] | None
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if hours[0] is not None:
        clauses.append("r.hour >= ?")
        params.append(hours[0])
    if hours[1] is not None:
        clauses.append("r.hour < ?")
        params.append(hours[1])
    if dim_ids is not None:
        clauses.append(f"r.dim_id IN ({', '.join('?' * len(dim_ids))})")
        params.extend(dim_ids)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


_ROLLUP_SUMS = ", ".join(f"SUM(r.{c})" for c in (*VALUES[:6], "cost_total_usd"))


def rollup_sql(
    hours: tuple[int | None, int | None], dim_ids: Sequence[int] | None
) -> tuple[str, list[Any]]:
    """Rollup rows of hours ``[first, last)`` and the given dimensions (None: all), summed per
    (model, hour, bucket): the rows ``analytics_sql`` gives for raw records."""
    where, params = _rollup_where(hours, dim_ids)
    sql = (
        f"SELECT d.model, r.hour, r.duration_bucket, {_ROLLUP_SUMS} "
        f"FROM {ROLLUP} r JOIN {DIMS} d ON d.id = r.dim_id{where} GROUP BY 1, 2, 3"
    )
    return sql, params


def rollup_groups_sql(
    hours: tuple[int | None, int | None], dim_ids: Sequence[int] | None, column: str
) -> tuple[str, list[Any]]:
    """Rollup rows summed per (``column``, bucket), ``column`` a dimension: the rows
    ``breakdown.groups_sql`` gives for raw records."""
    if column not in DIM_COLUMNS:
        raise ValueError(f"the rollup has no dimension {column!r}")
    where, params = _rollup_where(hours, dim_ids)
    sql = (
        f"SELECT d.{column}, r.duration_bucket, {_ROLLUP_SUMS} "
        f"FROM {ROLLUP} r JOIN {DIMS} d ON d.id = r.dim_id{where} GROUP BY 1, 2"
    )
    return sql, params
