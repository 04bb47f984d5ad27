"""The access log on PostgreSQL beside SQLite and DuckDB: write rate from one and two proxies,
query latency on a day of records.

    python -m benchmarks.access_log_postgres              # writes its section of RESULTS.md
    python -m benchmarks.access_log_postgres --quick      # smaller, prints only
    python -m benchmarks.access_log_postgres --day-rows 5000000

Debian's PostgreSQL runs on loopback from a fresh ``initdb`` with its default
settings (``fsync`` on, ``synchronous_commit`` on): what a team would run,
untuned. Writes go through the real path: ``store()`` from one thread per
proxy, the background writer batching into the database (one transaction per
batch, rows by ``COPY``). "Two proxies" are two processes, each with its own
store, writing to the same database at once, as two replicas would; both
are unpaced (the queue holds everything), so the rate is what the database
and the writers sustain, and every record must be written.

Query latency uses the record and analytics queries of
``benchmarks.access_log`` on the same records, bulk-loaded through each
store's own insert, for the three backends side by side.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import random
import re
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.access_log import RESULTS, bulk_load_day, make_record, query_latencies
from ccobs.access_log import open_access_log
from ccobs.access_log.columns import COLUMN_SPECS, COLUMNS, POSTGRES_TYPES
from ccobs.access_log.postgres import PostgresAccessLog, connect
from ccobs.access_log.query import TABLE
from ccobs.stack.postgres import PostgresServer

SECTION = "access-log-postgres"
PASSWORD = "bench"

_INSERT_UNNEST = (
    f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"%s::{POSTGRES_TYPES[c.type]}[]" for c in COLUMN_SPECS)
    + ")"
)
_INSERT_VALUES = (
    f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
)


class _UnnestInsert(PostgresAccessLog):
    """The alternative to COPY: one multi-row INSERT of column arrays per batch."""

    def _insert_raw(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        conn.raw.execute(_INSERT_UNNEST, [list(c) for c in zip(*rows, strict=True)])


class _ExecutemanyInsert(PostgresAccessLog):
    """The other alternative: psycopg's ``executemany`` (pipelined single-row INSERTs)."""

    def _insert_raw(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        with conn.raw.cursor() as cursor:
            cursor.executemany(_INSERT_VALUES, rows)


def insert_methods(server: PostgresServer, admin: Any, n: int) -> dict[str, float]:
    """Records/s of one unpaced store per way of inserting raw rows (the rollup alike)."""
    rng = random.Random(5)
    now = datetime.now(UTC)
    records = [make_record(rng, i, now) for i in range(n)]
    rates: dict[str, float] = {}
    kinds: dict[str, type[PostgresAccessLog]] = {
        "COPY (what the store does)": PostgresAccessLog,
        "INSERT ... SELECT unnest(arrays)": _UnnestInsert,
        "executemany(INSERT ... VALUES)": _ExecutemanyInsert,
    }
    for number, (name, kind) in enumerate(kinds.items()):
        admin.execute(f"CREATE DATABASE insert{number}")
        store = kind(server.url(f"insert{number}"), queue_size=n + 1)
        store.flush()
        begun = time.perf_counter()
        for record in records:
            store.store(record)
        store.flush(600)
        rates[name] = n / (time.perf_counter() - begun)
        store.close()
    return rates


def _writer(url: str, n: int, seed: int, start: Any, out: Any) -> None:
    """One proxy's store: ``n`` records as fast as ``store()`` takes them, then flush."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    records = [make_record(rng, seed * 10_000_000 + i, now) for i in range(n)]
    store = open_access_log(url, queue_size=n + 1)
    store.flush()  # connected, schema in place
    start.wait()
    begun = time.perf_counter()
    for record in records:
        store.store(record)
    store.flush(600)
    elapsed = time.perf_counter() - begun
    stats = store.stats()
    store.close()
    out.put((elapsed, stats["written"], sum(stats["dropped"].values())))


def write_rate(url: str, proxies: int, n: int) -> dict[str, Any]:
    """``proxies`` processes writing ``n`` records each into ``url`` at once."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(target=_writer, args=(url, n, seed, start, out)) for seed in range(proxies)
    ]
    for worker in workers:
        worker.start()
    time.sleep(3.0 + proxies)  # each builds its records and connects
    begun = time.perf_counter()
    start.set()
    results = [out.get(timeout=900) for _ in workers]
    wall = time.perf_counter() - begun
    for worker in workers:
        worker.join(30)
    conn = connect(url)
    stored = int(conn.execute("SELECT COUNT(*) FROM access_log").fetchone()[0])
    conn.close()
    return {
        "rate": proxies * n / wall,
        "per_proxy": [n / elapsed for elapsed, _, _ in results],
        "written": sum(written for _, written, _ in results),
        "dropped": sum(dropped for _, _, dropped in results),
        "stored": stored,
    }


def size_mb(location: str, url_conn: Any = None) -> float:
    if url_conn is not None:
        return float(
            url_conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 1e6
        )
    return (
        sum(p.stat().st_size for p in Path(location).parent.glob(Path(location).name + "*")) / 1e6
    )


def write_section(text: str) -> None:
    start, end = f"<!-- {SECTION}:start -->", f"<!-- {SECTION}:end -->"
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: block, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + block
    RESULTS.write_text(updated)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; print, do not record")
    parser.add_argument("--day-rows", type=int, default=None, help="records per day to query")
    parser.add_argument("--write-n", type=int, default=None, help="records per proxy")
    args = parser.parse_args()
    day_rows = args.day_rows or (100_000 if args.quick else 1_000_000)
    write_n = args.write_n or (30_000 if args.quick else 200_000)
    root = Path(tempfile.mkdtemp(prefix="ccobs-bench-pg-"))
    root.chmod(0o755)  # the server's own user (as root: postgres) must reach its directory
    lines: list[str] = []
    try:
        with PostgresServer(root / "pg", password=PASSWORD) as server:
            version = connect(server.url()).execute("SHOW server_version").fetchone()[0]
            admin = connect(server.url())
            lines += [
                "## Access log on PostgreSQL (`python -m benchmarks.access_log_postgres`)",
                "",
                f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
                f"{platform.python_version()}, PostgreSQL {version} (Debian, fresh initdb, "
                f"default settings: fsync on) on loopback, on the same machine; "
                f"{datetime.now(UTC):%Y-%m-%d}, load average at start "
                f"{os.getloadavg()[0]:.1f} (other jobs share the machine: compare the backends "
                "within a table, not with other sections). Unpaced writers (each proxy's "
                "queue holds all its records); per proxy: from its first `store()` to its last "
                "record committed; all together: from the start signal to the last report:",
                "",
                "| writers | records | rate, all together | per proxy | written | "
                "dropped | rows in the database |",
                "|---|---|---|---|---|---|---|",
            ]
            for proxies in (1, 2):
                admin.execute(f"CREATE DATABASE w{proxies}")
                run = write_rate(server.url(f"w{proxies}"), proxies, write_n)
                row = (
                    f"| {proxies} {'proxy' if proxies == 1 else 'proxies (processes)'} | "
                    f"{proxies * write_n:,} | {run['rate']:,.0f} records/s | "
                    + ", ".join(f"{r:,.0f}/s" for r in run["per_proxy"])
                    + f" | {run['written']:,} | {run['dropped']} | {run['stored']:,} |"
                )
                print(row, flush=True)
                lines.append(row)
            rates = insert_methods(server, admin, write_n // 2)
            lines += [
                "",
                f"Raw rows into PostgreSQL, one unpaced store, {write_n // 2:,} records: "
                + "; ".join(f"{name} {rate:,.0f} records/s" for name, rate in rates.items())
                + ".",
            ]
            print(lines[-1], flush=True)
            lines += [
                "",
                f"Query latency, median ms, {day_rows:,} records spread evenly over the last "
                "24 hours, bulk-loaded through each store's insert (raw rows and hourly "
                "rollup), the same records and queries on each backend:",
                "",
            ]
            admin.execute("CREATE DATABASE day")
            locations = {
                "SQLite": str(root / "day.db"),
                "DuckDB": str(root / "day.duckdb"),
                "PostgreSQL": server.url("day"),
            }
            header = False
            for name, location in locations.items():
                load_s = bulk_load_day(location, day_rows)
                pg = connect(location) if name == "PostgreSQL" else None
                size = size_mb(location, pg)
                if pg is not None:
                    pg.close()
                latencies = query_latencies(location)  # type: ignore[arg-type]
                if not header:
                    lines.append("| backend | size | " + " | ".join(latencies) + " |")
                    lines.append("|---" * (2 + len(latencies)) + "|")
                    header = True
                row = (
                    f"| {name} | {size:,.0f} MB | "
                    + " | ".join(f"{ms:,.1f}" for ms in latencies.values())
                    + " |"
                )
                print(row, f"(loaded in {load_s:.0f} s)", flush=True)
                lines.append(row)
            admin.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        write_section(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
