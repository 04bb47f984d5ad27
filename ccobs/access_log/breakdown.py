"""Analytics grouped by who or what: model, team, key alias, client app or session.

"Spend per team this month" and "the 10 most expensive Claude Code sessions
today" are one grouped query each: requests, errors, tokens, cost and
latency percentiles per group, the groups ordered by cost (most first, then
by name, a missing value first) and cut to the ``top`` few, with the totals
of every matching record beside them.

Model, team, key alias and client app are rollup dimensions, so their rows
come from the rollup for whole hours and from raw records at the edges, one
row per (group, latency bucket), added up here. Sessions are not (a session
id per conversation is unbounded); a grouping by session scans the raw
records and lets the database rank them, so only the ``top`` sessions'
rows come back, whatever the number of sessions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ccobs.access_log.query import (
    BUCKET_BASE,
    MAX_LIMIT,
    TABLE,
    LogFilter,
    Stats,
    iso,
    to_us,
)

GROUPS: dict[str, str] = {
    "model": "model",
    "team": "team",
    "key_alias": "key_alias",
    "client_app": "client_app",
    "session": "session_id",
}
"""What analytics group by (``--by``, ``?by=``) and the column each one reads."""
DEFAULT_TOP = 100

_SUMS_SQL = (
    "COUNT(*), SUM(CASE WHEN error_type IS NULL THEN 0 ELSE 1 END), "
    "SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), "
    "SUM(cache_write_tokens), SUM(cost_total_usd)"
)


def column_of(group: str) -> str:
    """The column behind ``group``; ``ValueError`` naming the choices for anything else."""
    try:
        return GROUPS[group]
    except KeyError:
        choices = ", ".join(GROUPS)
        raise ValueError(f"cannot group by {group!r}: expected one of {choices}") from None


def check_top(top: int) -> int:
    if not 1 <= top <= MAX_LIMIT:
        raise ValueError(f"top must be within 1..{MAX_LIMIT}, got {top}")
    return top


def groups_sql(
    flt: LogFilter,
    column: str | None,
    table: str = TABLE,
    span: tuple[int | None, int | None] | None = None,
    keys: Sequence[Any] | None = None,
) -> tuple[str, list[Any]]:
    """Raw records summed per (``column``, bucket): the group, bucket, count, errors, four token
    sums and the cost. ``column`` None: one group (the totals). ``keys``: only these groups."""
    where, params = flt.where(span)
    if keys is not None and column is not None:
        known = [key for key in keys if key is not None]
        alternatives = []
        if known:
            alternatives.append(f"{column} IN ({', '.join('?' * len(known))})")
            params = [*params, *known]
        if len(known) < len(keys):
            alternatives.append(f"{column} IS NULL")
        condition = "(" + " OR ".join(alternatives) + ")"
        where = f"{where} AND {condition}" if where else f" WHERE {condition}"
    key = column if column is not None else "NULL"
    return f"SELECT {key}, duration_bucket, {_SUMS_SQL} FROM {table}{where} GROUP BY 1, 2", params


def ranked_sql(flt: LogFilter, column: str, top: int, table: str = TABLE) -> tuple[str, list[Any]]:
    """The ``top`` groups of ``column`` by cost, in the order ``breakdown_result`` shows them."""
    where, params = flt.where()
    sql = (
        f"SELECT {column}, SUM(cost_total_usd) AS cost FROM {table}{where} "
        f"GROUP BY 1 ORDER BY cost DESC, 1 ASC NULLS FIRST LIMIT ?"
    )
    return sql, [*params, top]


def _order(item: tuple[Any, Stats]) -> tuple[float, bool, str]:
    key, stats = item
    return (-round(stats.cost_usd, 9), key is not None, "" if key is None else str(key))


def breakdown_result(
    rows: Iterable[Sequence[Any]],
    flt: LogFilter,
    group: str,
    top: int,
    total_rows: Iterable[Sequence[Any]] | None = None,
) -> dict[str, Any]:
    """The answer from rows of (group, bucket, count, errors, four token sums, cost).

    The totals are every group's, or, when only the top groups' rows were read
    (sessions), ``total_rows`` summed.
    """
    column = column_of(group)
    groups: dict[Any, Stats] = {}
    for key, bucket, count, errors, *sums in rows:
        stats = groups.get(key)
        if stats is None:
            stats = groups[key] = Stats()
        stats.add(bucket, count, errors, sums)
    total = Stats()
    if total_rows is None:
        for stats in groups.values():
            total.merge(stats)
    else:
        for _, bucket, count, errors, *sums in total_rows:
            total.add(bucket, count, errors, sums)
    ranked = sorted(groups.items(), key=_order)[:top]
    return {
        "start": iso(to_us(flt.start)) if flt.start else None,
        "end": iso(to_us(flt.end)) if flt.end else None,
        "filters": flt.matches(),
        "group_by": group,
        "top": top,
        "totals": total.as_dict(),
        "groups": [{column: key, **stats.as_dict()} for key, stats in ranked],
        "percentile_relative_error": round(BUCKET_BASE**0.5 - 1, 4),
    }
