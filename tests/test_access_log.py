"""Access-log storage: the batching store, its backends, the query API on the real proxy.

Stores write to real databases: files (SQLite, DuckDB) under ``tmp_path`` and
a fresh database on the session's real PostgreSQL; every test of what a
store promises runs against all three (the ``access_log_location`` fixture).
The proxy and mock upstream run on loopback; the Prometheus numbers are read
from the proxy's own registry.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_server import serve_asgi
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from ccobs.access_log import (
    BatchingAccessLog,
    LogFilter,
    SQLiteAccessLog,
    open_access_log,
    open_reader,
    parse_time,
)
from ccobs.access_log.api import access_log_routes
from ccobs.demo.upstream import Delay, UpstreamConfig, create_upstream_app
from ccobs.metrics import PrometheusMetrics
from ccobs.proxy.app import create_proxy_app
from ccobs.proxy.config import ProxyConfig
from ccobs.settings import ObservabilitySettings
from ccobs.storage import AccessLogRecord

MODEL = "claude-sonnet-4-6"
TOKEN = "logs-t0ken"
AUTH = {"authorization": f"Bearer {TOKEN}"}
FAST = UpstreamConfig(
    seed=7, ttft=Delay(0.01), latency=Delay(0.01), inter_token_delay=0.0005, output_tokens=(5, 40)
)
NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=1)


def record(n: int = 0, **fields: Any) -> AccessLogRecord:
    values: dict[str, Any] = {
        "request_id": f"req-{n}",
        "timestamp": NOW,
        "duration_ms": 100.0,
        "method": "POST",
        "endpoint": "/v1/messages",
        "model": MODEL,
        "status": 200,
        "service_type": "proxy_service",
    }
    values.update(fields)
    return AccessLogRecord(**values)


def counter(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def dropped(registry: CollectorRegistry, reason: str) -> float:
    return counter(registry, "ccproxy_access_log_dropped_total", reason=reason)


@pytest.fixture
def store(access_log_location: str, metrics: PrometheusMetrics) -> Iterator[BatchingAccessLog]:
    with open_access_log(access_log_location, metrics=metrics) as s:
        yield s


class BlockedWrites(SQLiteAccessLog):
    """Its writer thread waits at the first insert until ``release`` is set."""

    release: threading.Event
    entered: threading.Event

    def _insert(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        self.entered.set()
        self.release.wait(10)
        super()._insert(conn, rows)


class FailingWrites(SQLiteAccessLog):
    """A writer that always fails, as a broken disk would."""

    def _insert(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        raise OSError(5, "Input/output error")


class TinyDatabase(SQLiteAccessLog):
    """SQLite capped at a few pages: inserts soon fail with SQLITE_FULL, like a full disk."""

    def _open(self) -> sqlite3.Connection:
        conn = super()._open()
        conn.execute("PRAGMA max_page_count = 8")
        return conn


# -- the store ---------------------------------------------------------------------------------


ATTRIBUTION = {
    "stop_reason": "end_turn",
    "team": "platform",
    "key_alias": "alice",
    "key_fingerprint": "9f2c4e1a7b3d5f60",
    "client_app": "claude-code",
    "session_id": "6f1d2c3b-0a4e-4b5f-8c7d-9e0f1a2b3c4d",
    "upstream_request_id": "msg_01ABCdef",
}


def test_a_stored_record_is_written_with_every_field(store: BatchingAccessLog) -> None:
    original = record(
        streaming=True,
        ttft_ms=12.5,
        input_tokens=10,
        output_tokens=20,
        cache_read_tokens=3,
        cache_write_tokens=4,
        cost_input_usd=0.1,
        cost_output_usd=0.2,
        cost_cache_usd=0.01,
        cost_total_usd=0.31,
        error_type="upstream_500",
        status=500,
        **ATTRIBUTION,
    )
    store.store(original)
    assert store.flush()

    (row,) = store.query(LogFilter())
    assert row == {
        "request_id": "req-0",
        "timestamp": NOW.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "method": "POST",
        "endpoint": "/v1/messages",
        "model": MODEL,
        "status": 500,
        "streaming": True,
        "duration_ms": 100.0,
        "ttft_ms": 12.5,
        "input_tokens": 10,
        "output_tokens": 20,
        "cache_read_tokens": 3,
        "cache_write_tokens": 4,
        "cost_input_usd": 0.1,
        "cost_output_usd": 0.2,
        "cost_cache_usd": 0.01,
        "cost_total_usd": 0.31,
        "service_type": "proxy_service",
        "error_type": "upstream_500",
        "client_addr": None,
        "user_agent": None,
        **ATTRIBUTION,
    }


@pytest.mark.parametrize("keep", [False, True])
def test_client_address_and_user_agent_are_stored_only_when_enabled(
    access_log_location: str, keep: bool
) -> None:
    with open_access_log(access_log_location, keep_client_info=keep) as s:
        s.store(record(client_addr="10.1.2.3", user_agent="claude-cli/1.0"))
        s.flush()
        (row,) = s.query(LogFilter())

    assert (row["client_addr"], row["user_agent"]) == (
        ("10.1.2.3", "claude-cli/1.0") if keep else (None, None)
    )


def test_written_records_are_counted(store: BatchingAccessLog, registry: CollectorRegistry) -> None:
    for n in range(25):
        store.store(record(n))
    store.flush()

    assert counter(registry, "ccproxy_access_log_written_total") == 25
    assert dropped(registry, "queue_full") == 0


def test_a_full_queue_drops_the_newest_records_and_counts_them(
    tmp_path: Path, metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    s = BlockedWrites(tmp_path / "a.db", metrics=metrics, queue_size=10, flush_interval=0.01)
    s.release, s.entered = threading.Event(), threading.Event()
    try:
        s.store(record(0))
        assert s.entered.wait(5)  # the writer holds record 0 and is stuck
        for n in range(1, 16):
            s.store(record(n))
        assert dropped(registry, "queue_full") == 5
        s.release.set()
        s.flush()
        kept = {row["request_id"] for row in s.query(LogFilter(limit=100))}
    finally:
        s.release.set()
        s.close()

    assert kept == {f"req-{n}" for n in range(11)}  # the oldest kept, the newest refused


def test_a_failing_writer_never_raises_and_counts_every_record_dropped(
    tmp_path: Path, metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    with FailingWrites(tmp_path / "a.db", metrics=metrics) as s:
        for n in range(30):
            s.store(record(n))
        s.flush()

        assert s.stats()["dropped"] == {"write_error": 30}
    assert dropped(registry, "write_error") == 30


def test_a_full_database_drops_and_counts_what_does_not_fit(
    tmp_path: Path, metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    with TinyDatabase(tmp_path / "a.db", metrics=metrics, batch_size=50) as s:
        for n in range(2000):
            s.store(record(n, user_agent="x" * 200))
        s.flush()
        stats = s.stats()

    assert stats["dropped"]["write_error"] > 0
    assert stats["written"] + stats["dropped"]["write_error"] == 2000
    assert dropped(registry, "write_error") == stats["dropped"]["write_error"]


def test_a_database_that_cannot_be_opened_drops_and_counts(
    tmp_path: Path, metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    (tmp_path / "not-a-dir").write_text("")
    with SQLiteAccessLog(tmp_path / "not-a-dir" / "a.db", metrics=metrics) as s:
        s.store(record())
        s.flush()

    assert dropped(registry, "write_error") == 1


def test_a_lone_record_is_written_within_the_flush_interval_without_a_flush(
    access_log_location: str,
) -> None:
    with open_access_log(access_log_location, flush_interval=0.1) as s:
        s.store(record(0))
        assert s.flush()  # the writer is up and idle: nothing queued, the next prune far off
        s.store(record(1))
        deadline = time.monotonic() + 3
        while s.stats()["written"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)

        assert s.stats()["written"] == 2


def test_close_writes_every_accepted_record(access_log_location: str) -> None:
    s = open_access_log(access_log_location, flush_interval=5.0)
    for n in range(5000):
        s.store(record(n))
    s.close()

    assert s.stats()["written"] == 5000
    reader = open_reader(access_log_location)
    assert reader.analytics(LogFilter())["totals"]["requests"] == 5000


def test_a_record_handed_over_after_close_is_counted_as_dropped(
    access_log_location: str, metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    s = open_access_log(access_log_location, metrics=metrics)
    s.close()
    s.store(record())

    assert dropped(registry, "closed") == 1


def test_records_past_retention_are_pruned_automatically(access_log_location: str) -> None:
    with open_access_log(access_log_location, retention_days=30, prune_interval=0.1) as s:
        s.store(record(1, timestamp=datetime.now(UTC) - timedelta(days=31)))
        s.store(record(2, timestamp=datetime.now(UTC) - timedelta(days=29)))
        s.flush()
        deadline = time.monotonic() + 5
        while len(s.query(LogFilter())) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)

        assert [row["request_id"] for row in s.query(LogFilter())] == ["req-2"]


def test_prune_removes_only_records_older_than_the_retention(access_log_location: str) -> None:
    with open_access_log(access_log_location, retention_days=1) as s:
        for n, age in enumerate((timedelta(days=3), timedelta(hours=25), timedelta(hours=23))):
            s.store(record(n, timestamp=datetime.now(UTC) - age))
        s.flush()

        assert s.prune() == 2
        assert [row["request_id"] for row in s.query(LogFilter())] == ["req-2"]


# -- queries -----------------------------------------------------------------------------------


def test_query_filters_by_range_model_status_and_service_type_newest_first(
    store: BatchingAccessLog,
) -> None:
    minute = timedelta(minutes=1)
    store.store(record(0, timestamp=NOW - timedelta(hours=2)))
    store.store(record(1, timestamp=NOW - 3 * minute, model="claude-haiku-4-5"))
    store.store(record(2, timestamp=NOW - 2 * minute, status=500))
    store.store(record(3, timestamp=NOW - minute, service_type="batch"))
    store.store(record(4, timestamp=NOW + minute))
    store.flush()

    def ids(**kw: Any) -> list[str]:
        return [row["request_id"] for row in store.query(LogFilter(**kw))]

    assert ids() == ["req-4", "req-3", "req-2", "req-1", "req-0"]
    assert ids(start=NOW - timedelta(hours=1), end=NOW) == ["req-3", "req-2", "req-1"]
    assert ids(start=NOW - timedelta(hours=3), end=NOW - timedelta(hours=1)) == ["req-0"]
    assert ids(model="claude-haiku-4-5") == ["req-1"]
    assert ids(status=500) == ["req-2"]
    assert ids(service_type="batch") == ["req-3"]
    assert len(ids(limit=2)) == 2


def test_analytics_gives_totals_per_model_and_per_hour(store: BatchingAccessLog) -> None:
    for n in range(100):
        store.store(
            record(
                n,
                model=MODEL if n < 60 else "claude-haiku-4-5",
                timestamp=NOW if n % 2 else NOW - timedelta(hours=1),
                duration_ms=float(n + 1),
                input_tokens=10,
                output_tokens=1,
                cost_total_usd=0.5,
                error_type="upstream_500" if n < 5 else None,
            )
        )
    store.flush()

    result = store.analytics(LogFilter())
    totals = result["totals"]
    assert totals["requests"] == 100
    assert totals["errors"] == 5
    assert totals["error_ratio"] == 0.05
    assert totals["input_tokens"] == 1000
    assert totals["cost_usd"] == pytest.approx(50.0)
    assert totals["p50_ms"] == pytest.approx(50.0, rel=0.011)
    assert totals["p95_ms"] == pytest.approx(95.0, rel=0.011)
    assert [(m["model"], m["requests"]) for m in result["by_model"]] == [
        (MODEL, 60),
        ("claude-haiku-4-5", 40),
    ]
    assert [h["requests"] for h in result["by_hour"]] == [50, 50]


def test_every_backend_stores_and_answers_alike(access_log_location: str) -> None:
    path = access_log_location
    with open_access_log(path) as s:
        for n in range(50):
            s.store(
                record(
                    n,
                    timestamp=NOW - timedelta(seconds=n),
                    duration_ms=10.0 * (n + 1),
                    input_tokens=n,
                    cost_total_usd=0.25,
                )
            )
        s.flush()
        rows = s.query(LogFilter(limit=3))
        result = s.analytics(LogFilter())

    assert [row["request_id"] for row in rows] == ["req-0", "req-1", "req-2"]
    assert result["totals"]["requests"] == 50
    assert result["totals"]["input_tokens"] == sum(range(50))
    assert result["totals"]["cost_usd"] == pytest.approx(12.5)
    assert open_reader(path).analytics(LogFilter())["totals"] == result["totals"]


# -- the hourly rollup ------------------------------------------------------------------------

HOUR = timedelta(hours=1)
BASE = NOW.replace(minute=0) - 6 * HOUR  # an hour boundary; records fill the 8 hours after it


def random_records(rng: random.Random, n: int, start: datetime, span: timedelta) -> list[Any]:
    """Mixed models, statuses, service types and errors, NULLs among them; costs are exact
    binary fractions, so sums do not depend on the order they are added in."""
    return [
        record(
            i,
            timestamp=start + span * rng.random(),
            model=rng.choice([MODEL, "claude-haiku-4-5", "gpt-4.1-mini", None]),
            status=rng.choice([200, 200, 200, 429, 500, None]),
            service_type=rng.choice(["proxy_service", "batch", None]),
            error_type=rng.choice([None, None, None, "upstream_500"]),
            duration_ms=rng.lognormvariate(6.0, 1.0),
            input_tokens=rng.randint(0, 5000),
            output_tokens=rng.randint(0, 500),
            cache_read_tokens=rng.randint(0, 9000),
            cache_write_tokens=rng.randint(0, 100),
            cost_input_usd=rng.randint(0, 512) / 1024,
            cost_output_usd=rng.randint(0, 512) / 1024,
            cost_total_usd=rng.randint(0, 4096) / 1024,
        )
        for i in range(n)
    ]


def random_filters(rng: random.Random, count: int) -> list[LogFilter]:
    """Ranges with edges inside hours, on hour boundaries, open, inside one hour; filters."""

    def moment() -> datetime | None:
        pick = rng.random()
        if pick < 0.15:
            return None
        hours = rng.randint(-1, 9)
        if pick < 0.3:
            return BASE + hours * HOUR  # exactly on an hour boundary
        return BASE + hours * HOUR + timedelta(microseconds=rng.randint(1, 3_599_999_999))

    filters = [LogFilter(), LogFilter(start=BASE + 2 * HOUR + timedelta(minutes=7))]
    filters.append(LogFilter(start=BASE + 3 * HOUR + HOUR / 7, end=BASE + 3 * HOUR + HOUR / 2))
    while len(filters) < count:
        start, end = sorted(
            [moment(), moment()], key=lambda m: m or datetime.max.replace(tzinfo=UTC)
        )
        filters.append(
            LogFilter(
                start=start,
                end=end,
                model=rng.choice([None, None, MODEL, "gpt-4.1-mini", "no-such-model"]),
                status=rng.choice([None, None, 200, 500]),
                service_type=rng.choice([None, None, "batch"]),
            )
        )
    return filters


def test_analytics_from_the_rollup_equal_a_scan_of_the_raw_records(
    access_log_location: str,
) -> None:
    rng = random.Random(8)
    path = access_log_location
    filters = random_filters(rng, 30)
    with open_access_log(path, batch_size=97) as s:
        for rec in random_records(rng, 4000, BASE, 8 * HOUR):
            s.store(rec)
        s.flush()
        for flt in filters:
            assert s.analytics(flt) == s.analytics(flt, use_rollup=False), flt
        whole = s.analytics(LogFilter())
    assert whole["totals"]["requests"] == 4000
    assert len(whole["by_hour"]) == 8
    assert {m["model"] for m in whole["by_model"]} == {
        MODEL,
        "claude-haiku-4-5",
        "gpt-4.1-mini",
        "unknown",
    }
    reader = open_reader(path)
    for flt in filters[:10]:
        assert reader.analytics(flt) == reader.analytics(flt, use_rollup=False), flt


def test_whole_hours_are_answered_from_the_rollup(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with SQLiteAccessLog(path) as s:
        for n in range(10):
            s.store(record(n, timestamp=BASE + HOUR / 2 + n * HOUR / 2))  # 0.5 h .. 5 h
        s.flush()
    with sqlite3.connect(path) as conn:  # behind the rollup's back
        conn.execute("DELETE FROM access_log")
    reader = open_reader(path)

    def requests(start: datetime, end: datetime) -> int:
        return int(reader.analytics(LogFilter(start=start, end=end))["totals"]["requests"])

    assert requests(BASE, BASE + 3 * HOUR) == 5  # whole hours: the rollup still has them
    assert requests(BASE + HOUR / 4, BASE + 3 * HOUR) == 4  # hour 0 is an edge: raw, gone
    assert requests(BASE, BASE + 3 * HOUR - timedelta(microseconds=1)) == 3  # and hour 2
    assert requests(BASE + HOUR / 4, BASE + HOUR * 3 / 4) == 0  # inside one hour: raw
    assert reader.analytics(LogFilter(), use_rollup=False)["totals"]["requests"] == 0


def test_pruning_keeps_the_rollup_equal_to_the_records_kept(access_log_location: str) -> None:
    rng = random.Random(9)
    now = datetime.now(UTC)
    with open_access_log(access_log_location, retention_days=1.0 + 1 / 48) as s:
        for rec in random_records(rng, 3000, now - timedelta(days=2), timedelta(days=2)):
            s.store(rec)
        s.flush()
        assert s.prune() > 0
        kept = s.analytics(LogFilter(), use_rollup=False)
        assert s.analytics(LogFilter()) == kept  # the whole range comes from the rollup
        assert 0 < kept["totals"]["requests"] < 3000


def test_a_database_from_before_the_rollup_is_rolled_up_when_a_store_opens_it(
    tmp_path: Path,
) -> None:
    rng = random.Random(10)
    path = tmp_path / "a.db"
    with SQLiteAccessLog(path) as s:
        for rec in random_records(rng, 500, BASE, 8 * HOUR):
            s.store(rec)
    with sqlite3.connect(path) as conn:
        for table in ("access_log_hourly", "access_log_dims", "access_log_meta"):
            conn.execute(f"DROP TABLE {table}")
    flt = LogFilter(start=BASE + HOUR / 3, end=BASE + 7 * HOUR + HOUR / 3)
    expected = open_reader(path).analytics(flt, use_rollup=False)
    assert open_reader(path).analytics(flt) == expected  # no rollup yet: raw records

    with SQLiteAccessLog(path) as s:
        s.flush()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM access_log_hourly").fetchone()[0] > 0
    assert open_reader(path).analytics(flt) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-05-01T14:02:00Z", datetime(2026, 5, 1, 14, 2, tzinfo=UTC)),
        ("2026-05-01T14:02:00", datetime(2026, 5, 1, 14, 2, tzinfo=UTC)),
        ("1777644120", datetime(2026, 5, 1, 14, 2, tzinfo=UTC)),
        ("90m", NOW - timedelta(minutes=90)),
        ("7d", NOW - timedelta(days=7)),
        ("now", NOW),
        ("today", NOW.replace(hour=0, minute=0)),
        ("month", NOW.replace(day=1, hour=0, minute=0)),
    ],
)
def test_times_are_iso_epoch_or_a_span_back_from_now(text: str, expected: datetime) -> None:
    assert parse_time(text, now=NOW) == expected


def test_an_unreadable_time_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="yesterday"):
        parse_time("yesterday")


# -- on the proxy ------------------------------------------------------------------------------


@dataclass
class Proxy:
    url: str
    registry: CollectorRegistry
    store: Any

    def total(self, name: str, **labels: str) -> float:
        return sum(
            s.value
            for f in self.registry.collect()
            for s in f.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )


def serve_proxy(
    tmp_path: Path, storage: Any = None, location: str | None = None, **settings: Any
) -> Iterator[Proxy]:
    registry = CollectorRegistry()
    obs = ObservabilitySettings(access_log_db=location or str(tmp_path / "access.db"), **settings)
    metrics = PrometheusMetrics(registry=registry, settings=obs)
    upstream_app = create_upstream_app(FAST)
    with serve_asgi(upstream_app) as upstream:
        app = create_proxy_app(
            ProxyConfig(upstream_url=upstream.url), metrics=metrics, settings=obs, storage=storage
        )
        with serve_asgi(app, lifespan="on") as proxy:
            yield Proxy(proxy.url, registry, app.state.access_log)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    yield from serve_proxy(tmp_path, access_log_api_token=TOKEN)


@pytest.fixture
def proxy_on_each_backend(tmp_path: Path, access_log_location: str) -> Iterator[Proxy]:
    yield from serve_proxy(tmp_path, location=access_log_location, access_log_api_token=TOKEN)


def body(n: int) -> dict[str, Any]:
    return {
        "model": ("claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6")[n % 3],
        "max_tokens": 50,
        "stream": n % 2 == 0,
        "messages": [{"role": "user", "content": f"request {n}"}],
    }


async def send_concurrently(url: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return await asyncio.gather(*(client.post("/v1/messages", json=body(i)) for i in range(n)))


def settle(proxy: Proxy, count: int) -> None:
    """Wait until ``count`` records reached the store, then until they are written.

    A request is counted in the metrics just before its record is handed to
    the store, so the request counter alone may run one record ahead.
    """
    deadline = time.monotonic() + 10
    while proxy.store.stats()["accepted"] < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.store.flush()


def test_n_concurrent_requests_give_n_records_whose_sums_equal_the_counters(
    proxy_on_each_backend: Proxy,
) -> None:
    proxy = proxy_on_each_backend
    responses = asyncio.run(send_concurrently(proxy.url, 60))
    settle(proxy, 60)

    rows = proxy.store.query(LogFilter(limit=1000))
    assert all(r.status_code == 200 for r in responses)
    assert len(rows) == 60
    assert {row["request_id"] for row in rows} == {r.headers["x-request-id"] for r in responses}
    for token_type in ("input", "output", "cache_read", "cache_write"):
        stored = sum(row[f"{token_type}_tokens"] for row in rows)
        assert stored == proxy.total("ccproxy_tokens_total", type=token_type), token_type
    for cost_type in ("input", "output", "cache", "total"):
        stored_cost = sum(row[f"cost_{cost_type}_usd"] for row in rows)
        counted = proxy.total("ccproxy_cost_usd_total", cost_type=cost_type)
        assert stored_cost == pytest.approx(counted, rel=1e-9), cost_type
    assert proxy.total("ccproxy_access_log_written_total") == 60


def test_a_failing_store_leaves_requests_unaffected_and_counts_the_drops(
    tmp_path: Path,
) -> None:
    failing = FailingWrites(tmp_path / "broken.db")
    try:
        for p in serve_proxy(tmp_path, storage=failing):
            responses = asyncio.run(send_concurrently(p.url, 20))
            settle(p, 20)

            assert [r.status_code for r in responses] == [200] * 20
            assert failing.stats()["dropped"] == {"write_error": 20}
    finally:
        failing.close()


def test_the_query_api_is_off_without_a_token(tmp_path: Path) -> None:
    for p in serve_proxy(tmp_path):
        assert httpx.get(p.url + "/logs/query", headers=AUTH).status_code == 404


@pytest.mark.parametrize("path", ["/logs/query", "/logs/analytics", "/logs/stream"])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}"])
def test_log_routes_refuse_a_missing_or_wrong_token(
    proxy: Proxy, path: str, authorization: str | None
) -> None:
    headers = {"authorization": authorization} if authorization else {}
    response = httpx.get(proxy.url + path, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_query_and_analytics_answer_with_the_token_and_are_not_counted(
    proxy_on_each_backend: Proxy,
) -> None:
    proxy = proxy_on_each_backend
    asyncio.run(send_concurrently(proxy.url, 6))
    settle(proxy, 6)

    query = httpx.get(
        proxy.url + "/logs/query", params={"model": "claude-haiku-4-5", "limit": 10}, headers=AUTH
    )
    analytics = httpx.get(proxy.url + "/logs/analytics", params={"start": "1h"}, headers=AUTH)

    assert query.status_code == 200
    assert query.json()["count"] == 2
    assert {row["model"] for row in query.json()["records"]} == {"claude-haiku-4-5"}
    assert analytics.status_code == 200
    assert analytics.json()["totals"]["requests"] == 6
    assert proxy.total("ccproxy_requests_total") == 6  # the /logs calls are not traffic


def test_a_bad_query_parameter_is_a_400_naming_it(proxy: Proxy) -> None:
    response = httpx.get(proxy.url + "/logs/query", params={"start": "soon"}, headers=AUTH)

    assert response.status_code == 400
    assert "soon" in response.json()["error"]


def read_events(lines: Iterator[str], count: int) -> list[tuple[str, dict[str, Any]]]:
    """The next ``count`` events of a stream's ``iter_lines()``, which can be read on after."""
    events: list[tuple[str, dict[str, Any]]] = []
    kind = "message"
    for line in lines:
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((kind, json.loads(line.removeprefix("data: "))))
            if len(events) == count:
                break
    return events


def test_the_stream_tails_records_live(proxy: Proxy) -> None:
    with httpx.stream("GET", proxy.url + "/logs/stream", headers=AUTH, timeout=10) as tail:
        assert tail.headers["content-type"].startswith("text/event-stream")
        sent = httpx.post(proxy.url + "/v1/messages", json=body(1), timeout=10)
        ((kind, data),) = read_events(tail.iter_lines(), 1)

    assert kind == "record"
    assert data["request_id"] == sent.headers["x-request-id"]
    assert data["output_tokens"] > 0


def test_a_slow_listener_gets_an_overflow_event_where_records_were_dropped(
    tmp_path: Path,
) -> None:
    store = SQLiteAccessLog(tmp_path / "a.db")

    async def burst(request: Request) -> PlainTextResponse:
        for n in range(10):  # in one go: the listener cannot drain in between
            store.store(record(n))
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[
            *access_log_routes(store, TOKEN, tail_queue_size=2),
            Route("/burst", burst, methods=["POST"]),
        ]
    )
    try:
        with (
            serve_asgi(app) as server,
            httpx.stream("GET", server.url + "/logs/stream", headers=AUTH, timeout=10) as tail,
        ):
            lines = tail.iter_lines()
            httpx.post(server.url + "/burst")
            # Read what the burst left before the next record: until the listener drains its
            # queue, that record would be dropped too and no fourth event would come.
            events = read_events(lines, 3)
            store.store(record(10))
            events += read_events(lines, 1)
    finally:
        store.close()

    assert [kind for kind, _ in events] == ["record", "record", "overflow", "record"]
    assert events[2][1] == {"dropped": 8}
    assert [events[i][1]["request_id"] for i in (0, 1, 3)] == ["req-0", "req-1", "req-10"]
