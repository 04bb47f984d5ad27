"""Access-log store: sustained write rate, and query latency over a day of records.

    python -m benchmarks.access_log            # writes its section of benchmarks/RESULTS.md
    python -m benchmarks.access_log --quick    # smaller, prints only

Writes go through the real path: ``store()`` from one thread (the event
loop's stand-in), the background writer batching into the database. Three
measurements: the cost of one ``store()`` call, the highest rate the writer
keeps up with (unpaced), and a paced run at the target rate that must drop
nothing. Query latency is measured on databases holding records spread over
24 hours, bulk-loaded through the same insert statement, for the record
query (index range + limit) and the analytics scan (day and hour).
"""

from __future__ import annotations

import argparse
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
from typing import Any

from ccobs.access_log import LogFilter, open_access_log, open_reader
from ccobs.access_log.query import to_row
from ccobs.storage import AccessLogRecord

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "access-log"
MODELS = ("claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6", "gpt-4.1-mini")
TARGET_RATE = 5_000


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
    )


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


def bulk_load_day(path: Path, rows: int) -> float:
    """``rows`` records spread evenly over the last 24 hours; seconds taken."""
    store = open_access_log(path)
    store.flush()
    store.close()
    rng = random.Random(4)
    end = datetime.now(UTC)
    start = end - timedelta(days=1)
    step = timedelta(days=1) / rows
    begun = time.perf_counter()
    conn: Any
    if path.suffix == ".duckdb":
        import duckdb

        conn = duckdb.connect(str(path))
    else:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    chunk = 100_000
    for offset in range(0, rows, chunk):
        batch = [
            to_row(make_record(rng, i, start + step * i), False)
            for i in range(offset, min(rows, offset + chunk))
        ]
        type(store)._insert(store, conn, batch)
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


def query_latencies(path: Path) -> dict[str, float]:
    reader = open_reader(path)
    now = datetime.now(UTC)
    hour, day = now - timedelta(hours=1), now - timedelta(days=1)
    return {
        "query: newest 100, last hour": timed(lambda: reader.query(LogFilter(start=hour))),
        "query: one model, 100, whole day": timed(
            lambda: reader.query(LogFilter(start=day, model=MODELS[2]))
        ),
        "query: status 500, 1000, whole day": timed(
            lambda: reader.query(LogFilter(start=day, status=500, limit=1000))
        ),
        "analytics: last hour": timed(lambda: reader.analytics(LogFilter(start=hour))),
        "analytics: whole day": timed(lambda: reader.analytics(LogFilter(start=day)), repeat=3),
    }


def write_section(text: str) -> None:
    """Replace this benchmark's section of RESULTS.md, or append it; other sections stay."""
    start, end = f"<!-- {SECTION}:start -->", f"<!-- {SECTION}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: block, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + block
    RESULTS.write_text(updated)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; print, do not record")
    parser.add_argument("--day-rows", type=int, nargs="*", help="records per day to query")
    parser.add_argument("--seconds", type=float, default=30.0, help="paced run length")
    args = parser.parse_args()
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
            "Query latency, median ms, records spread evenly over the last 24 hours "
            "(a day at 5,000/s would be 432 M records; latency of the index-range queries "
            "does not depend on the total, the analytics scan grows linearly with the "
            "records in its range):",
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
