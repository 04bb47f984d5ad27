"""Filters, row layout and the two queries (records, analytics), shared by every backend.

Both backends speak the same SQL with ``?`` parameters, so the filter is
built once here. Timestamps are stored as integer microseconds since the
epoch (UTC): exact, compact and indexable; they are shown as ISO 8601.

Latency percentiles come from a log-scale bucket stored with each record
(``duration_bucket``): the analytics query is then one ``GROUP BY`` scan
whose result is small however many records match, instead of sorting every
duration. The price is a bounded error: a percentile is the geometric
middle of its bucket, within 1% of the exact value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ccobs.access_log.columns import COLUMNS, missing
from ccobs.storage import AccessLogRecord

TABLE = "access_log"
BUCKET_BASE = 1.02
"""Ratio between neighbouring latency buckets: percentiles are within ~1% (sqrt(1.02))."""
_LOG_BASE = math.log(BUCKET_BASE)
_MIN_DURATION_MS = 0.001
MAX_LIMIT = 10_000

INSERT_SQL = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
_SHOWN = COLUMNS[:-1]  # the bucket is an index, not a field


def duration_bucket(duration_ms: float) -> int:
    """The log-scale latency bucket of a duration."""
    return math.floor(math.log(max(duration_ms, _MIN_DURATION_MS)) / _LOG_BASE)


def bucket_value(bucket: int) -> float:
    """A bucket's representative duration: its geometric middle."""
    return float(BUCKET_BASE ** (bucket + 0.5))


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def iso(us: int) -> str:
    return from_us(us).isoformat(timespec="microseconds").replace("+00:00", "Z")


def to_row(record: AccessLogRecord, keep_client_info: bool) -> tuple[Any, ...]:
    """The stored row of a record, in ``COLUMNS`` order; client address and user agent only
    when kept. Spelled out, not looped over ``COLUMNS``: the writer builds every row here,
    and a test holds the order to ``COLUMNS``."""
    keep = keep_client_info
    return (
        record.request_id,
        to_us(record.timestamp),
        record.method,
        record.endpoint,
        record.model,
        record.status,
        record.streaming,
        record.duration_ms,
        record.ttft_ms,
        record.input_tokens,
        record.output_tokens,
        record.cache_read_tokens,
        record.cache_write_tokens,
        record.cost_input_usd,
        record.cost_output_usd,
        record.cost_cache_usd,
        record.cost_total_usd,
        record.service_type,
        record.error_type,
        record.client_addr if keep else None,
        record.user_agent if keep else None,
        record.stop_reason,
        record.team,
        record.key_alias,
        record.key_fingerprint,
        record.client_app,
        record.session_id,
        record.upstream_request_id,
        duration_bucket(record.duration_ms),
    )


def source(present: Iterable[str]) -> str:
    """What a read selects ``FROM``: the table, or, when a writer has not yet added the
    newer columns to it (``columns.missing``), the table with NULL in their place."""
    absent = missing(present)
    if not absent:
        return TABLE
    nulls = ", ".join(f"NULL AS {column.name}" for column in absent)
    return f"(SELECT *, {nulls} FROM {TABLE}) AS {TABLE}"


def record_dict(record: AccessLogRecord, keep_client_info: bool) -> dict[str, Any]:
    """A record as the query API shows it (same shape as a stored row)."""
    return row_dict(to_row(record, keep_client_info))


def row_dict(row: Sequence[Any]) -> dict[str, Any]:
    out = dict(zip(_SHOWN, row, strict=False))
    out["timestamp"] = iso(out.pop("ts_us"))
    out["streaming"] = bool(out["streaming"])
    return out


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """``2026-05-01T14:02:00Z``, epoch seconds, ``now``, a span back from now (``90m``, ``7d``),
    or ``today`` / ``month``: the start of the current day / month, UTC.

    Raises ``ValueError`` naming the text, for a 400 or a CLI error.
    """
    now = now or datetime.now(UTC)
    value = text.strip()
    if value == "now":
        return now
    if value in ("today", "month"):
        midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight if value == "today" else midnight.replace(day=1)
    match = _RELATIVE.match(value)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError):
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"invalid time {text!r}: expected ISO 8601, epoch seconds, 'now', 'today', "
            "'month' or e.g. 30m, 2h, 7d"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


FILTER_COLUMNS = (
    "model",
    "status",
    "service_type",
    "team",
    "key_alias",
    "client_app",
    "session_id",
)
"""The columns a ``LogFilter`` matches exactly, each a field of the filter."""


@dataclass(frozen=True)
class LogFilter:
    """Which records: a time range (start inclusive, end exclusive) and exact matches."""

    start: datetime | None = None
    end: datetime | None = None
    model: str | None = None
    status: int | None = None
    service_type: str | None = None
    limit: int = 100
    team: str | None = None
    key_alias: str | None = None
    client_app: str | None = None
    session_id: str | None = None

    def matches(self) -> dict[str, Any]:
        """The exact-match filters, by column (None: not filtered on)."""
        return {column: getattr(self, column) for column in FILTER_COLUMNS}

    def span(self) -> tuple[int | None, int | None]:
        """The time range in microseconds since the epoch; None is open."""
        return (
            to_us(self.start) if self.start is not None else None,
            to_us(self.end) if self.end is not None else None,
        )

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be within 1..{MAX_LIMIT}, got {self.limit}")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError("start must not be after end")

    def where(self, span: tuple[int | None, int | None] | None = None) -> tuple[str, list[Any]]:
        """The SQL condition; ``span`` (microseconds) replaces the filter's own time range."""
        start, end = span if span is not None else self.span()
        clauses: list[str] = []
        params: list[Any] = []
        if start is not None:
            clauses.append("ts_us >= ?")
            params.append(start)
        if end is not None:
            clauses.append("ts_us < ?")
            params.append(end)
        for column, value in self.matches().items():
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def records_sql(flt: LogFilter, table: str = TABLE) -> tuple[str, list[Any]]:
    """Newest first, at most ``limit``; ``table`` is what to read (``source``)."""
    where, params = flt.where()
    sql = f"SELECT {', '.join(_SHOWN)} FROM {table}{where} ORDER BY ts_us DESC LIMIT ?"
    return sql, [*params, flt.limit]


_SUMS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def analytics_sql(
    flt: LogFilter,
    hour_expr: str,
    span: tuple[int | None, int | None] | None = None,
    table: str = TABLE,
) -> tuple[str, list[Any]]:
    """One scan grouped by model, hour and latency bucket; everything else is added up after.

    ``span`` (microseconds) replaces the filter's time range: the raw edges of a rolled-up range.
    """
    where, params = flt.where(span)
    sums = ", ".join(f"SUM({column})" for column in (*_SUMS, "cost_total_usd"))
    sql = (
        f"SELECT model, {hour_expr} AS hour, duration_bucket, COUNT(*), "
        f"SUM(CASE WHEN error_type IS NULL THEN 0 ELSE 1 END), {sums} "
        f"FROM {table}{where} GROUP BY 1, 2, 3"
    )
    return sql, params


@dataclass
class Stats:
    """Requests, errors, tokens, cost and latency percentiles of one group."""

    requests: int = 0
    errors: int = 0
    tokens: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    cost_usd: float = 0.0
    buckets: dict[int, int] = field(default_factory=dict)

    def add(self, bucket: int, count: int, errors: int, sums: Sequence[Any]) -> None:
        self.requests += count
        self.errors += errors
        tokens = self.tokens
        for i in range(4):
            tokens[i] += int(sums[i] or 0)
        self.cost_usd += float(sums[4] or 0.0)
        self.buckets[bucket] = self.buckets.get(bucket, 0) + count

    def merge(self, other: Stats) -> None:
        self.requests += other.requests
        self.errors += other.errors
        for i in range(4):
            self.tokens[i] += other.tokens[i]
        self.cost_usd += other.cost_usd
        buckets = self.buckets
        for bucket, count in other.buckets.items():
            buckets[bucket] = buckets.get(bucket, 0) + count

    def quantile(self, q: float) -> float | None:
        """Nearest-rank quantile of the durations, ms, from the buckets."""
        if not self.requests:
            return None
        rank = max(1, math.ceil(q * self.requests))
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return round(bucket_value(bucket), 3)
        return None  # pragma: no cover - rank <= requests

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_ratio": round(self.errors / self.requests, 6) if self.requests else 0.0,
            **dict(zip(_SUMS, self.tokens, strict=True)),
            "cost_usd": round(self.cost_usd, 9),
            "p50_ms": self.quantile(0.5),
            "p95_ms": self.quantile(0.95),
        }


def analytics_result(rows: Iterable[Sequence[Any]], flt: LogFilter) -> dict[str, Any]:
    """Totals, per model and per hour (UTC), from rows of (model, hour, bucket, count, sums).

    Rows are added up per (model, hour) first, then those few groups are merged
    into the totals and breakdowns: a day's rollup is tens of thousands of rows.
    """
    groups: dict[tuple[str, int], Stats] = {}
    for model, hour, bucket, count, errors, *sums in rows:
        key = (model if model is not None else "unknown", int(hour))
        stats = groups.get(key)
        if stats is None:
            stats = groups[key] = Stats()
        stats.add(bucket, count, errors, sums)
    total = Stats()
    by_model: dict[str, Stats] = {}
    by_hour: dict[int, Stats] = {}
    for (model, hour), stats in groups.items():
        total.merge(stats)
        (by_model.get(model) or by_model.setdefault(model, Stats())).merge(stats)
        (by_hour.get(hour) or by_hour.setdefault(hour, Stats())).merge(stats)
    return {
        "start": iso(to_us(flt.start)) if flt.start else None,
        "end": iso(to_us(flt.end)) if flt.end else None,
        "filters": flt.matches(),
        "totals": total.as_dict(),
        "by_model": [
            {"model": model, **stats.as_dict()}
            for model, stats in sorted(by_model.items(), key=lambda kv: (-kv[1].requests, kv[0]))
        ],
        "by_hour": [
            {"hour": iso(hour * 3_600_000_000), **stats.as_dict()}
            for hour, stats in sorted(by_hour.items())
        ],
        "percentile_relative_error": round(math.sqrt(BUCKET_BASE) - 1, 4),
    }
