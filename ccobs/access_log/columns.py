"""The access-log table's columns: the one list every backend builds its schema and rows from.

A column is a name and a portable type; each backend maps the type to its
own SQL (``SQLITE_TYPES``, ``DUCKDB_TYPES``, ``POSTGRES_TYPES``). Every column but ``ts_us`` and
``duration_bucket`` is the ``AccessLogRecord`` field of the same name;
``query.to_row`` spells a stored row out in this order (it runs for every
record), and a test holds the two together.

Adding a column: append it here, nullable (``required=False``), and the
stores add it to existing databases when they open them (``missing``):
``ALTER TABLE ... ADD COLUMN`` in the writer's first transaction. A reader
of a database no writer has opened since sees NULL in the column
(``query.source``), as a row written before the column existed would hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

TEXT = "text"
INTEGER = "integer"
BIGINT = "bigint"
REAL = "real"
BOOLEAN = "boolean"


@dataclass(frozen=True)
class Column:
    """One column: its name, portable type, and whether it is NOT NULL (default 0 where numeric)."""

    name: str
    type: str
    required: bool = False


COLUMN_SPECS: tuple[Column, ...] = (
    Column("request_id", TEXT, required=True),
    Column("ts_us", BIGINT, required=True),  # request start, microseconds since the epoch (UTC)
    Column("method", TEXT),
    Column("endpoint", TEXT),
    Column("model", TEXT),
    Column("status", INTEGER),
    Column("streaming", BOOLEAN, required=True),
    Column("duration_ms", REAL, required=True),
    Column("ttft_ms", REAL),
    Column("input_tokens", BIGINT, required=True),
    Column("output_tokens", BIGINT, required=True),
    Column("cache_read_tokens", BIGINT, required=True),
    Column("cache_write_tokens", BIGINT, required=True),
    Column("cost_input_usd", REAL, required=True),
    Column("cost_output_usd", REAL, required=True),
    Column("cost_cache_usd", REAL, required=True),
    Column("cost_total_usd", REAL, required=True),
    Column("service_type", TEXT),
    Column("error_type", TEXT),
    Column("client_addr", TEXT),  # only with keep_client_info
    Column("user_agent", TEXT),  # only with keep_client_info
    Column("stop_reason", TEXT),
    Column("team", TEXT),
    Column("key_alias", TEXT),
    Column("key_fingerprint", TEXT),
    Column("client_app", TEXT),
    Column("session_id", TEXT),
    Column("upstream_request_id", TEXT),
    Column("duration_bucket", INTEGER, required=True),  # log-scale latency bucket (query.py)
)
"""Every column of ``access_log``, in the order of a stored row."""

COLUMNS: tuple[str, ...] = tuple(column.name for column in COLUMN_SPECS)

SQLITE_TYPES: Mapping[str, str] = {
    TEXT: "TEXT",
    INTEGER: "INTEGER",
    BIGINT: "INTEGER",
    REAL: "REAL",
    BOOLEAN: "INTEGER",
}
DUCKDB_TYPES: Mapping[str, str] = {
    TEXT: "VARCHAR",
    INTEGER: "INTEGER",
    BIGINT: "BIGINT",
    REAL: "DOUBLE",
    BOOLEAN: "BOOLEAN",
}
POSTGRES_TYPES: Mapping[str, str] = {
    TEXT: "TEXT",
    INTEGER: "INTEGER",
    BIGINT: "BIGINT",
    REAL: "DOUBLE PRECISION",
    BOOLEAN: "BOOLEAN",
}


def definition(column: Column, types: Mapping[str, str]) -> str:
    """``name TYPE [NOT NULL DEFAULT 0]`` in the dialect ``types`` maps to."""
    sql = f"{column.name} {types[column.type]}"
    if column.required:
        sql += " NOT NULL"
        if column.type not in (TEXT, BOOLEAN):  # PostgreSQL has no integer default for a boolean
            sql += " DEFAULT 0"
    return sql


def create_table(table: str, types: Mapping[str, str]) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for ``table`` with every column."""
    columns = ", ".join(definition(column, types) for column in COLUMN_SPECS)
    return f"CREATE TABLE IF NOT EXISTS {table} ({columns})"


def missing(present: Iterable[str]) -> list[Column]:
    """The columns a table holding ``present`` lacks: the ones added since it was created."""
    have = {name.lower() for name in present}
    return [column for column in COLUMN_SPECS if column.name not in have]


def add_column(table: str, column: Column, types: Mapping[str, str]) -> str:
    """The ``ALTER TABLE`` adding ``column`` (always nullable: existing rows hold NULL)."""
    if column.required:
        raise ValueError(f"a column added to existing databases must be nullable: {column.name}")
    return f"ALTER TABLE {table} ADD COLUMN {column.name} {types[column.type]}"
