"""Access-log store: sustained write rate, and query latency over a day of records.

    python -m benchmarks.access_log            # writes its section of benchmarks/RESULTS.md
    python -m benchmarks.access_log --quick    # smaller, prints only
    python -m benchmarks.access_log --day-scale 30000000   # a real day's scale, see below
    python -m benchmarks.access_log --who 30000000   # spend per team, top sessions, see below

Writes go through the real path: ``store()`` from one thread (the event
loop's stand-in), the background writer batching into the database. Three
measurements: the cost of one ``store()`` call, the highest rate the writer
keeps up with (unpaced), and a paced run at the target rate that must drop
nothing. Query latency is measured on databases holding records spread over
24 hours, bulk-loaded through the same insert statement, for the record
query (index range + limit) and analytics (day and hour), which reads the
hourly rollup for whole hours and raw records for the partial hours at the
range's edges; the raw scan of the whole day is measured alongside.

``--day-scale N`` measures at a real day's scale (5,000/s for 24 h is 432 M
records): N raw records spread over the last 24 hours, generated inside the
database (SQL, no Python per row), and the hourly rollup of a full day at
5,000/s (every latency bucket a lognormal latency fills at that volume,
every model and status), for SQLite and DuckDB. The raw rows and the rollup
are synthetic and independent, so the numbers are latencies, not sums to
check. It records its own block inside this benchmark's section.

``--who N`` loads the same N raw records (each with a team, key and client
app, Claude Code's with a session) and the rollup of every hour since the
month began, and times "spend per team this month" (the rollup) and "the 10
most expensive Claude Code sessions today" (raw records); its own block too.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import random
import re
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any

from ccobs.access_log import (
    BatchingAccessLog,
    LogFilter,
    open_access_log,
    open_reader,
    parse_time,
)
from ccobs.access_log.columns import COLUMNS
from ccobs.access_log.postgres import PostgresAccessLog, connect
from ccobs.access_log.query import BUCKET_BASE, TABLE, to_row, to_us
from ccobs.access_log.rollup import HOUR_US
from ccobs.storage import AccessLogRecord

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "access-log"
MODELS = ("claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6", "gpt-4.1-mini")
TARGET_RATE = 5_000
DAY_SCALE = f"{SECTION}-day-scale"
WHO = f"{SECTION}-who"
STATUSES = ((200, 0.97), (429, 0.01), (500, 0.01), (529, 0.01))
LATENCY_MU, LATENCY_SIGMA = 7.0, 0.8  # ln ms, as make_record


def make_record(rng: random.Random, n: int, when: datetime) -> AccessLogRecord:
    inp, out = rng.randint(100, 20_000), rng.randint(5, 2_000)
    return AccessLogRecord(
        request_id=f"{n:032x}",
        timestamp=when,
        duration_ms=rng.lognormvariate(7.0, 0.8),
        method="POST",
        endpoint="/v1/messages",
        model=rng.choice(MODELS),
        status=200 if rng.random() > 0.02 else 500,
        streaming=rng.random() < 0.6,
        ttft_ms=rng.uniform(200, 2000),
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=rng.randint(0, 50_000),
        cost_input_usd=inp * 3e-6,
        cost_output_usd=out * 15e-6,
        cost_total_usd=inp * 3e-6 + out * 15e-6,
        service_type="proxy_service",
        error_type=None if rng.random() > 0.02 else "upstream_500",
        **attribution(rng.randrange(len(KEYS)), rng.randrange(100_000)),
    )


KEYS = tuple(
    (team, f"key-{k}", app)
    for k, (team, app) in enumerate(
        (
            ("platform", "research", "growth")[k % 3],
            ("claude-code", "codex", "curl", "other")[k % 4],
        )
        for k in range(12)
    )
)
"""(team, key alias, client app) of the benchmark's twelve keys: three teams, four apps."""


def attribution(key: int, session: int) -> dict[str, Any]:
    """The attribution fields of a record sent with ``KEYS[key]``; Claude Code has sessions."""
    team, alias, app = KEYS[key]
    return {
        "stop_reason": "end_turn",
        "team": team,
        "key_alias": alias,
        "key_fingerprint": f"{key:016x}",
        "client_app": app,
        "session_id": f"sess-{session}" if app == "claude-code" else None,
    }


def store_call_cost(path: Path, n: int) -> float:
    """Microseconds per ``store()`` call while the writer drains concurrently."""
    rng = random.Random(1)
    now = datetime.now(UTC)
    records = [make_record(rng, i, now) for i in range(n)]
    store = open_access_log(path, queue_size=n + 1)
    started = time.perf_counter()
    for record in records:
        store.store(record)
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed / n * 1e6


def unpaced_throughput(path: Path, n: int) -> tuple[float, dict[str, Any]]:
    """Records/s from the first ``store()`` until all ``n`` are committed."""
    rng = random.Random(2)
    now = datetime.now(UTC)
    records = [make_record(rng, i, now) for i in range(n)]
    store = open_access_log(path, queue_size=n + 1)
    started = time.perf_counter()
    for record in records:
        store.store(record)
    store.flush(600)
    elapsed = time.perf_counter() - started
    stats = store.stats()
    store.close()
    return n / elapsed, stats


def paced(path: Path, rate: int, seconds: float) -> dict[str, Any]:
    """``rate`` records/s for ``seconds`` in 10 ms ticks; queue depth sampled each tick."""
    rng = random.Random(3)
    store = open_access_log(path)
    tick = 0.01
    per_tick = rate * tick
    started = time.perf_counter()
    sent, max_depth, n = 0, 0, 0
    while (elapsed := time.perf_counter() - started) < seconds:
        due = int(elapsed * rate) + int(per_tick)
        now = datetime.now(UTC)
        while sent < due:
            store.store(make_record(rng, n, now))
            sent += 1
            n += 1
        max_depth = max(max_depth, store.stats()["queued"])
        time.sleep(max(0.0, started + (sent / rate) - time.perf_counter()))
    produce_end = time.perf_counter()
    store.flush(600)
    lag = time.perf_counter() - produce_end
    stats = store.stats()
    store.close()
    return {
        "sent": sent,
        "rate": sent / (produce_end - started),
        "written": stats["written"],
        "dropped": sum(stats["dropped"].values()),
        "max_queue": max_depth,
        "drain_s": lag,
    }


def bulk_load_day(location: str | Path, rows: int) -> float:
    """``rows`` records spread evenly over the last 24 hours through the store's own insert
    (a SQLite or DuckDB file, or a PostgreSQL URL); seconds taken."""
    store = open_access_log(location)
    store.flush()
    store.close()
    rng = random.Random(4)
    end = datetime.now(UTC)
    start = end - timedelta(days=1)
    step = timedelta(days=1) / rows
    begun = time.perf_counter()
    conn: Any
    if isinstance(store, PostgresAccessLog):
        conn = connect(str(location))
    elif str(location).endswith(".duckdb"):
        import duckdb

        conn = duckdb.connect(str(location))
    else:
        conn = sqlite3.connect(location, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    chunk = 100_000
    for offset in range(0, rows, chunk):
        batch = [
            to_row(make_record(rng, i, start + step * i), False)
            for i in range(offset, min(rows, offset + chunk))
        ]
        type(store)._insert(store, conn, batch)
    if isinstance(store, PostgresAccessLog):
        conn.execute("ANALYZE")  # what autovacuum would do soon after
    conn.close()
    return time.perf_counter() - begun


def timed(fn: Callable[[], Any], repeat: int = 5) -> float:
    """Median wall time of ``fn`` in ms (first call discarded: cold page cache)."""
    fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def query_latencies(path: Path, raw_scan: bool = True) -> dict[str, float]:
    reader = open_reader(path)
    now = datetime.now(UTC)
    hour, day = now - timedelta(hours=1), now - timedelta(days=1)
    latencies = {
        "query: newest 100, last hour": timed(lambda: reader.query(LogFilter(start=hour))),
        "query: one model, 100, whole day": timed(
            lambda: reader.query(LogFilter(start=day, model=MODELS[2]))
        ),
        "query: status 500, 1000, whole day": timed(
            lambda: reader.query(LogFilter(start=day, status=500, limit=1000))
        ),
        "analytics: last hour": timed(
            lambda reader=reader: reader.analytics(LogFilter(start=hour))
        ),
        "analytics: whole day": timed(
            lambda reader=reader: reader.analytics(LogFilter(start=day)), repeat=3
        ),
        "analytics: one model, whole day": timed(
            lambda reader=reader: reader.analytics(LogFilter(start=day, model=MODELS[2])), repeat=3
        ),
    }
    if raw_scan:
        latencies["analytics: whole day, raw scan (no rollup)"] = timed(
            lambda reader=reader: reader.analytics(LogFilter(start=day), use_rollup=False), repeat=1
        )
    return latencies


# -- a real day's scale --------------------------------------------------------------------------


def _raw_select(backend: str, start_us: int, step_us: float) -> str:
    """SQL computing one synthetic record per ``i``; like ``make_record``, done by the database."""
    if backend == "sqlite":
        rnd = "(abs(random()) % 1000000) / 1000000.0"
        pick = "(abs(random()) % {n})"
        hexid = "printf('%032x', i)"
        floor = "CAST(floor({x}) AS INTEGER)"
    else:
        rnd = "random()"
        pick = "CAST(floor(random() * {n}) AS INTEGER)"
        hexid = "lpad(printf('%x', i), 32, '0')"
        floor = "CAST(floor({x}) AS INTEGER)"
    # Lognormal latency from a sum of 12 uniforms (Irwin-Hall: a normal to ~1e-3).
    normal = "(" + " + ".join([rnd] * 12) + " - 6.0)"
    models = "CASE " + pick.format(n=len(MODELS))
    models += "".join(f" WHEN {i} THEN '{m}'" for i, m in enumerate(MODELS)) + " END"
    u = f"({rnd})"
    fingerprint = "printf('%016x', k)" if backend == "sqlite" else "lpad(printf('%x', k), 16, '0')"
    teams = "CASE k % 3" + "".join(
        f" WHEN {i} THEN '{t}'" for i, t in enumerate(("platform", "research", "growth"))
    )
    apps = "CASE k % 4" + "".join(
        f" WHEN {i} THEN '{a}'" for i, a in enumerate(("claude-code", "codex", "curl", "other"))
    )
    # Attribution as ``attribution()``: key k of KEYS, a session per Claude Code conversation.
    return f"""
        SELECT {hexid}, {start_us} + CAST(i * {step_us} AS BIGINT), 'POST', '/v1/messages',
               model, status, streaming, duration_ms, 500.0, inp, outp, cache_read, 0,
               inp * 3e-6, outp * 15e-6, 0.0, inp * 3e-6 + outp * 15e-6, 'proxy_service',
               CASE WHEN status = 200 THEN NULL ELSE 'upstream_' || status END, NULL, NULL,
               'end_turn', {teams} END, 'key-' || CAST(k AS TEXT), {fingerprint}, {apps} END,
               CASE WHEN k % 4 = 0 THEN 'sess-' || CAST(sess AS TEXT) END, NULL,
               {floor.format(x=f"ln(duration_ms) / ln({BUCKET_BASE})")}
        FROM (
            SELECT i, {pick.format(n=len(KEYS))} AS k, {pick.format(n=100_000)} AS sess,
                   {models} AS model,
                   CASE WHEN u < 0.97 THEN 200 WHEN u < 0.98 THEN 429
                        WHEN u < 0.99 THEN 500 ELSE 529 END AS status,
                   {rnd} < 0.6 AS streaming,
                   exp({LATENCY_MU} + {LATENCY_SIGMA} * {normal}) AS duration_ms,
                   100 + {pick.format(n=19_900)} AS inp, 5 + {pick.format(n=1_995)} AS outp,
                   {pick.format(n=50_000)} AS cache_read
            FROM (SELECT i, {u} AS u FROM {{source}})
        )"""


def load_raw_in_database(path: Path, rows: int, start: datetime) -> float:
    """``rows`` synthetic records over the 24 hours from ``start``, generated by SQL; seconds."""
    step_us = 86_400_000_000 / rows
    start_us = to_us(start)
    begun = time.perf_counter()
    chunk = 2_000_000
    if path.suffix == ".duckdb":
        import duckdb

        conn: Any = duckdb.connect(str(path))
        select = _raw_select("duckdb", start_us, step_us)
        for offset in range(0, rows, chunk):
            source = f"range({offset}, {min(rows, offset + chunk)}) t(i)"
            conn.execute(
                f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) " + select.format(source=source)
            )
    else:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA cache_size = -1000000")
        select = _raw_select("sqlite", start_us, step_us)
        for offset in range(0, rows, chunk):
            source = (
                f"(WITH RECURSIVE seq(i) AS (SELECT {offset} UNION ALL SELECT i + 1 FROM seq "
                f"WHERE i + 1 < {min(rows, offset + chunk)}) SELECT i FROM seq)"
            )
            conn.execute("BEGIN")
            conn.execute(
                f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) " + select.format(source=source)
            )
            conn.execute("COMMIT")
            print(f"  {min(rows, offset + chunk):,} raw rows", flush=True)
    conn.close()
    return time.perf_counter() - begun


def day_rollup(
    store: BatchingAccessLog, conn: Any, start: datetime, rate: int, hours: int = 25
) -> int:
    """The hourly rollup of ``rate`` records/s over ``hours`` hours from ``start``; rows written.

    Each (hour, model, status, key of ``KEYS``) gets its share of the hour's
    records, spread over latency buckets by the lognormal's probability mass;
    buckets expecting less than one record are left out, as a real day would
    mostly leave them.
    """
    latency = NormalDist(LATENCY_MU, LATENCY_SIGMA)
    log_base = math.log(BUCKET_BASE)
    lo = math.floor((LATENCY_MU - 6 * LATENCY_SIGMA) / log_base)
    hi = math.ceil((LATENCY_MU + 6 * LATENCY_SIGMA) / log_base)
    shares = []
    for bucket in range(lo, hi + 1):
        p = latency.cdf((bucket + 1) * log_base) - latency.cdf(bucket * log_base)
        shares.append((bucket, p))
    per_hour = rate * 3600
    first_hour = to_us(start) // HOUR_US
    rows: list[tuple[Any, ...]] = []
    with store._transaction(conn):
        for model, (status, status_share), key in itertools.product(MODELS, STATUSES, KEYS):
            dim = store._dim_id(conn, (model, status, "proxy_service", *key))
            records = per_hour / len(MODELS) * status_share / len(KEYS)
            errors = status != 200
            for hour in range(first_hour, first_hour + hours):
                for bucket, p in shares:
                    count = round(records * p)
                    if count < 1:
                        continue
                    inp, out = count * 10_050, count * 1_002
                    rows.append(
                        (
                            hour,
                            dim,
                            bucket,
                            count,
                            count if errors else 0,
                            inp,
                            out,
                            count * 25_000,
                            0,
                            inp * 3e-6,
                            out * 15e-6,
                            0.0,
                            inp * 3e-6 + out * 15e-6,
                        )
                    )
        for offset in range(0, len(rows), 50_000):
            store._upsert_rollup(conn, rows[offset : offset + 50_000])
    return len(rows)


def day_scale(root: Path, rows: int) -> str:
    """The day-scale block: N raw rows plus a full day's rollup at TARGET_RATE, per backend."""
    end = datetime.now(UTC)
    start = end - timedelta(days=1)
    lines = [
        f"<!-- {DAY_SCALE}:start -->",
        f"### A real day's scale (`python -m benchmarks.access_log --day-scale {rows}`)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d}. {rows:,} raw records over the last 24 hours "
        f"({rows / 86_400:,.0f}/s; a day at {TARGET_RATE:,}/s is 432 M) and the hourly "
        f"rollup of a full day at {TARGET_RATE:,}/s ({TARGET_RATE * 86_400:,} records' worth). "
        f"Analytics read the rollup for whole hours and scan raw records for the "
        f"partial hours at the edges: here the last-hour range began "
        f"{(end - timedelta(hours=1)).minute} minutes into its hour, so "
        f"{60 - (end - timedelta(hours=1)).minute} minutes of raw records "
        f"(~{rows / 1440 * (60 - (end - timedelta(hours=1)).minute):,.0f} rows here, "
        f"{TARGET_RATE * 60 * (60 - (end - timedelta(hours=1)).minute):,} at the full rate). "
        "Median ms:",
        "",
    ]
    header = False
    for suffix in (".db", ".duckdb"):
        path = root / f"dayscale{suffix}"
        store = open_access_log(path)
        store.flush()
        store.close()  # schema and rollup marker in place
        load_s = load_raw_in_database(path, rows, start)
        conn: Any
        if suffix == ".duckdb":
            import duckdb

            conn = duckdb.connect(str(path))
        else:
            conn = sqlite3.connect(path, isolation_level=None)
        begun = time.perf_counter()
        rollup_rows = day_rollup(store, conn, start, TARGET_RATE)
        rollup_s = time.perf_counter() - begun
        conn.close()
        size_mb = sum(p.stat().st_size for p in root.glob(path.name + "*")) / 1e6
        latencies = query_latencies(path, raw_scan=False)
        if not header:
            lines.append(
                "| backend | raw records | rollup rows | file | " + " | ".join(latencies) + " |"
            )
            lines.append("|---" * (4 + len(latencies)) + "|")
            header = True
        name = "SQLite" if suffix == ".db" else "DuckDB"
        row = (
            f"| {name} | {rows:,} (loaded in {load_s:.0f} s) | {rollup_rows:,} | "
            f"{size_mb:,.0f} MB | " + " | ".join(f"{ms:,.1f}" for ms in latencies.values()) + " |"
        )
        print(row, f"(rollup written in {rollup_s:.1f} s)", flush=True)
        lines.append(row)
        for leftover in root.glob(path.name + "*"):
            leftover.unlink()
    lines.append(f"<!-- {DAY_SCALE}:end -->")
    return "\n".join(lines) + "\n"


def who(root: Path, rows: int) -> str:
    """The "who spent" block: spend per team this month (rollup), top sessions today (raw).

    N raw records with attribution over the last 24 hours, as ``--day-scale``,
    and the hourly rollup at TARGET_RATE of every hour since the month began,
    one dimension per (model, status, key): what "this month" reads.
    """
    now = datetime.now(UTC)
    month, today = parse_time("month", now), parse_time("today", now)
    hours = math.ceil((now - month) / timedelta(hours=1)) + 1
    sessions_today = rows * ((now - today) / timedelta(days=1)) / len(KEYS) * 3
    lines = [
        f"<!-- {WHO}:start -->",
        f"### Who spent (`python -m benchmarks.access_log --who {rows}`)",
        "",
        f"{now:%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.1f} at the start. "
        f"{rows:,} raw records with attribution over the last 24 "
        f"hours (12 keys in 3 teams, 4 client apps; Claude Code's records, a quarter, in "
        f"100,000 sessions) and the hourly rollup at {TARGET_RATE:,}/s of the {hours} hours "
        f"since the month began ({len(MODELS) * len(STATUSES) * len(KEYS)} dimensions: "
        f"model x status x key). Spend per team this month reads the rollup only (the "
        f"month starts on an hour); the top sessions today scan the raw records since "
        f"midnight UTC (~{rows * ((now - today) / timedelta(days=1)):,.0f} rows, "
        f"~{sessions_today:,.0f} of them Claude Code's), as does the same spend per team "
        "today without the rollup, for comparison. Median ms:",
        "",
        "| backend | raw records | rollup rows | spend per team, this month (rollup) "
        "| top 10 Claude Code sessions, today (raw) | spend per team, today, raw scan |",
        "|---|---|---|---|---|---|",
    ]
    for suffix in (".db", ".duckdb"):
        path = root / f"who{suffix}"
        store = open_access_log(path)
        store.flush()
        store.close()
        load_s = load_raw_in_database(path, rows, now - timedelta(days=1))
        conn: Any
        if suffix == ".duckdb":
            import duckdb

            conn = duckdb.connect(str(path))
        else:
            conn = sqlite3.connect(path, isolation_level=None)
        rollup_rows = day_rollup(store, conn, month, TARGET_RATE, hours)
        conn.close()
        reader = open_reader(path)
        spend = timed(
            lambda reader=reader: reader.analytics(LogFilter(start=month), group_by="team"),
            repeat=3,
        )
        top = timed(
            lambda reader=reader: reader.analytics(
                LogFilter(start=today, client_app="claude-code"), group_by="session", top=10
            ),
            repeat=1,
        )
        raw = timed(
            lambda reader=reader: reader.analytics(
                LogFilter(start=today), group_by="team", use_rollup=False
            ),
            repeat=1,
        )
        name = "SQLite" if suffix == ".db" else "DuckDB"
        row = (
            f"| {name} | {rows:,} (loaded in {load_s:.0f} s) | {rollup_rows:,} | "
            f"{spend:,.1f} | {top:,.1f} | {raw:,.1f} |"
        )
        print(row, flush=True)
        lines.append(row)
        for leftover in root.glob(path.name + "*"):
            leftover.unlink()
    lines.append(f"<!-- {WHO}:end -->")
    return "\n".join(lines) + "\n"


def _block(name: str) -> re.Pattern[str]:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    return re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)


def write_section(text: str | None = None, blocks: dict[str, str] | None = None) -> None:
    """Replace this benchmark's section of RESULTS.md, or append it; other sections stay.

    The day-scale and who-spent blocks inside it are kept unless ``blocks``
    (by name) replaces them; ``text`` None keeps the rest of the section.
    """
    start, end = f"<!-- {SECTION}:start -->", f"<!-- {SECTION}:end -->"
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = _block(SECTION)
    old = pattern.search(current)
    old_text = old.group(0) if old else ""
    kept: dict[str, str] = {}
    for name in (DAY_SCALE, WHO):
        found = _block(name).search(old_text)
        kept[name] = (blocks or {}).get(name, found.group(0) if found else "")
    if text is None:
        text = old_text.removeprefix(start + "\n").rsplit(end, 1)[0] if old else ""
        for name in kept:
            text = _block(name).sub("", text)
    body = text.rstrip() + "".join("\n\n" + block.rstrip() for block in kept.values() if block)
    section = f"{start}\n{body}\n{end}\n"
    if old:
        updated = pattern.sub(lambda _: section, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(updated)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; print, do not record")
    parser.add_argument("--day-rows", type=int, nargs="*", help="records per day to query")
    parser.add_argument("--seconds", type=float, default=30.0, help="paced run length")
    parser.add_argument(
        "--day-scale",
        type=int,
        metavar="N",
        help="only the day-scale run: N raw records + a full day's rollup at 5,000/s",
    )
    parser.add_argument(
        "--who",
        type=int,
        metavar="N",
        help="only the who-spent run: N raw records + the month's rollup at 5,000/s; "
        "spend per team this month, top sessions today",
    )
    args = parser.parse_args()
    if args.day_scale:
        with tempfile.TemporaryDirectory(
            prefix="ccobs-bench-", dir=os.environ.get("TMPDIR")
        ) as tmp:
            text = day_scale(Path(tmp), args.day_scale)
        print(text)
        if not args.quick:
            write_section(blocks={DAY_SCALE: text})
        return 0
    if args.who:
        with tempfile.TemporaryDirectory(
            prefix="ccobs-bench-", dir=os.environ.get("TMPDIR")
        ) as tmp:
            text = who(Path(tmp), args.who)
        print(text)
        if not args.quick:
            write_section(blocks={WHO: text})
        return 0
    day_rows = args.day_rows or ([200_000] if args.quick else [1_000_000, 5_000_000])
    seconds = 5.0 if args.quick else args.seconds
    unpaced_n = 50_000 if args.quick else 300_000
    lines = [
        "## Access-log store (`python -m benchmarks.access_log`)",
        "",
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}; {datetime.now(UTC):%Y-%m-%d}. Target: "
        f">= {TARGET_RATE:,} records/s sustained.",
        "",
        "| backend | store() per call | unpaced, to committed | paced "
        f"{TARGET_RATE:,}/s for {seconds:.0f} s | max queue | dropped | drain after |",
        "|---|---|---|---|---|---|---|",
    ]
    backends = [".db", ".duckdb"]
    with tempfile.TemporaryDirectory(prefix="ccobs-bench-") as tmp:
        root = Path(tmp)
        for suffix in backends:
            cost = store_call_cost(root / f"cost{suffix}", 100_000 if not args.quick else 20_000)
            rate, _ = unpaced_throughput(root / f"unpaced{suffix}", unpaced_n)
            run = paced(root / f"paced{suffix}", TARGET_RATE, seconds)
            name = "SQLite" if suffix == ".db" else "DuckDB"
            row = (
                f"| {name} | {cost:.1f} µs | {rate:,.0f} records/s | {run['rate']:,.0f}/s sent, "
                f"{run['written']:,} written | {run['max_queue']:,} | {run['dropped']} | "
                f"{run['drain_s'] * 1000:.0f} ms |"
            )
            print(row, flush=True)
            lines.append(row)
        lines += [
            "",
            "Query latency, median ms, records spread evenly over the last 24 hours, "
            "bulk-loaded through the store's insert (raw rows and hourly rollup). "
            "The index-range queries do not depend on the total; analytics read the "
            "rollup for whole hours and scan only the partial hours at the range's "
            "edges, where the raw scan (last column) grows with every record in range:",
            "",
        ]
        header_done = False
        for rows in day_rows:
            for suffix in backends:
                path = root / f"day{rows}{suffix}"
                load_s = bulk_load_day(path, rows)
                size_mb = sum(p.stat().st_size for p in root.glob(path.name + "*")) / 1e6
                latencies = query_latencies(path)
                if not header_done:
                    lines.append("| records/day | backend | file | " + " | ".join(latencies) + " |")
                    lines.append("|---" * (3 + len(latencies)) + "|")
                    header_done = True
                name = "SQLite" if suffix == ".db" else "DuckDB"
                row = (
                    f"| {rows:,} | {name} | {size_mb:,.0f} MB | "
                    + " | ".join(f"{ms:,.1f}" for ms in latencies.values())
                    + " |"
                )
                print(row, f"(loaded in {load_s:.0f} s)", flush=True)
                lines.append(row)
                path.unlink()
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        write_section(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
