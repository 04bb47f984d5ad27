"""The access log on a shared PostgreSQL: what only a server shared by several proxies can show.

What every store promises runs against PostgreSQL too, in ``test_access_log.py``
and ``test_access_log_cli.py``; here: identical answers on the three backends,
the password kept out of sight, day partitions, concurrent starts, two real
``ccobs proxy`` processes on one database, and a database restarted under load.
All against Debian's PostgreSQL on loopback (``tests/pgserver.py``).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import structlog
from pgserver import PASSWORD, create_database
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from realservers import free_port
from test_access_log import (
    BASE,
    HOUR,
    random_filters,
    random_records,
    record,
    send_concurrently,
    serve_proxy,
)
from test_cli import Background, background

from ccobs.access_log import LogFilter, open_access_log, open_reader
from ccobs.access_log.postgres import (
    SCHEMA_VERSION,
    VERSION_TABLE,
    PostgresAccessLog,
    partition_name,
)
from ccobs.identity import fingerprint
from ccobs.metrics import PrometheusMetrics
from ccobs.stack.postgres import PostgresServer

__all__ = ["background"]  # the fixture, shared with test_cli

DAY = timedelta(days=1)


def partitions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'access_log'::regclass ORDER BY 1"
        ).fetchall()
    return [name for (name,) in rows]


def day_number(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)).days


# -- the same answers everywhere ---------------------------------------------------------------


def test_the_same_records_give_identical_answers_on_sqlite_duckdb_and_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    rng = random.Random(20)
    records = random_records(rng, 2000, BASE, 8 * HOUR)
    filters = random_filters(rng, 20)
    locations = [str(tmp_path / "a.db"), str(tmp_path / "a.duckdb"), postgres_url]
    answers: list[tuple[list[Any], list[Any]]] = []
    for location in locations:
        with open_access_log(location, batch_size=500) as store:
            for rec in records:
                store.store(rec)
        reader = open_reader(location)
        answers.append(
            (
                [reader.analytics(flt) for flt in filters],
                [
                    reader.query(LogFilter(start=flt.start, end=flt.end, limit=50))
                    for flt in filters
                ],
            )
        )

    sqlite, duckdb, postgres = answers
    assert postgres[0] == sqlite[0]
    assert duckdb[0] == sqlite[0]
    assert postgres[1] == sqlite[1]
    assert duckdb[1] == sqlite[1]


# -- the password ------------------------------------------------------------------------------


def test_a_refused_connection_is_logged_and_counted_with_the_password_masked(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    url = f"postgresql://ccobs:{PASSWORD}@127.0.0.1:{free_port()}/access"
    with structlog.testing.capture_logs() as logs, open_access_log(url, metrics=metrics) as store:
        store.store(record())
        store.flush()

    shown = repr(logs)
    assert PASSWORD not in shown
    assert "postgresql://ccobs:***@127.0.0.1" in shown
    assert {"access_log_open_failed", "access_log_records_dropped"} <= {
        line["event"] for line in logs
    }
    assert (
        registry.get_sample_value("ccproxy_access_log_dropped_total", {"reason": "write_error"})
        == 1
    )


def test_the_password_may_come_from_pgpassword_instead_of_the_url(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = create_database(postgres_server)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    bare = url.replace(f":{PASSWORD}@", "@")

    with open_access_log(bare) as store:
        store.store(record())
        assert store.flush()

    assert bare != url
    assert open_reader(bare).query(LogFilter())[0]["request_id"] == "req-0"


# -- schema and partitions ---------------------------------------------------------------------


def test_stores_opening_a_new_database_at_once_create_the_schema_once(postgres_url: str) -> None:
    stores = [PostgresAccessLog(postgres_url) for _ in range(6)]  # six writer threads race
    try:
        for n, store in enumerate(stores):
            store.store(record(n))
        assert all(store.flush() for store in stores)
    finally:
        for store in stores:
            store.close()

    with psycopg.connect(postgres_url) as conn:
        versions = conn.execute(f"SELECT version FROM {VERSION_TABLE}").fetchall()
    assert versions == [(SCHEMA_VERSION,)]
    assert [store.stats()["written"] for store in stores] == [1] * 6


def test_records_go_to_the_partition_of_their_utc_day_created_on_demand(postgres_url: str) -> None:
    long_ago = datetime(2026, 1, 15, 12, tzinfo=UTC)
    with open_access_log(postgres_url, retention_days=10_000) as store:
        store.store(record(1, timestamp=long_ago))
        store.flush()

    assert partition_name(day_number(long_ago)) == "access_log_p20260115"
    assert "access_log_p20260115" in partitions(postgres_url)
    with psycopg.connect(postgres_url) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM access_log_p20260115").fetchone() or (0,)
    assert count == 1


def test_partitions_exist_ahead_of_the_days_to_come(postgres_url: str) -> None:
    with open_access_log(postgres_url) as store:
        store.flush()

    today = day_number(datetime.now(UTC))
    assert {partition_name(today + ahead) for ahead in (0, 1, 2)} <= set(partitions(postgres_url))


def test_retention_drops_the_partitions_of_days_past_it(postgres_url: str) -> None:
    now = datetime.now(UTC)
    with open_access_log(postgres_url, retention_days=2) as store:
        for n, age in enumerate((5 * DAY, 4 * DAY, DAY)):
            store.store(record(n, timestamp=now - age))
        store.flush()
        before = set(partitions(postgres_url))

        assert store.prune() == 2
        after = set(partitions(postgres_url))
        assert [row["request_id"] for row in store.query(LogFilter())] == ["req-2"]

    old_days = {partition_name(day_number(now - age)) for age in (5 * DAY, 4 * DAY)}
    assert old_days <= before
    assert not old_days & after


# -- two proxies, one database -----------------------------------------------------------------


KEYS = ("sk-ant-api03-pg-alice", "sk-ant-api03-pg-carol", "sk-ant-api03-pg-stranger")
"""The clients' keys: alice is team platform, carol research, the stranger unassigned."""


def cost_counted(multiprocess_dir: Path) -> float:
    """The total cost counter a stopped proxy left in its multiprocess files."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(multiprocess_dir))
    return sum(
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "ccproxy_cost_usd_total" and sample.labels.get("cost_type") == "total"
    )


def spend_by_team_counted(multiprocess_dirs: list[Path]) -> dict[str, float]:
    """The attributed cost counters stopped proxies left, summed by team."""
    spend: dict[str, float] = {}
    for multiprocess_dir in multiprocess_dirs:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, str(multiprocess_dir))
        for family in registry.collect():
            for sample in family.samples:
                if sample.name == "ccproxy_attributed_cost_usd_total":
                    team = sample.labels["team"]
                    spend[team] = spend.get(team, 0.0) + sample.value
    return spend


def test_two_proxies_sigtermed_under_load_keep_every_answer_once_and_spend_per_team_exact(
    background: list[Background], postgres_url: str, tmp_path: Path
) -> None:
    upstream_port = free_port()
    upstream = Background(
        "upstream", "--port", str(upstream_port), "--seed", "5", "--latency", "0.2",
        "--ttft", "0.05",
    )  # fmt: skip
    background.append(upstream)
    upstream.wait_ready(f"http://127.0.0.1:{upstream_port}/health")
    targets: list[str] = []
    proxies: list[Background] = []
    metric_dirs: list[Path] = []
    identities = tmp_path / "identities.yaml"
    identities.write_text(
        f"keys:\n"
        f"  - {{fingerprint: '{fingerprint(KEYS[0])}', alias: alice, team: platform}}\n"
        f"  - {{fingerprint: '{fingerprint(KEYS[1])}', alias: carol, team: research}}\n"
    )
    for n in range(2):
        port = free_port()
        metric_dirs.append(tmp_path / f"metrics-{n}")
        metric_dirs[-1].mkdir()
        proxy = Background(
            "proxy", "--port", str(port), "--upstream", f"http://127.0.0.1:{upstream_port}",
            "--access-log-db", postgres_url, "--identities", str(identities),
            env={"CCOBS_LOG_LEVEL": "WARNING", "PROMETHEUS_MULTIPROC_DIR": str(metric_dirs[-1])},
        )  # fmt: skip
        background.append(proxy)
        proxies.append(proxy)
        targets.append(f"http://127.0.0.1:{port}")
    for proxy, target in zip(proxies, targets, strict=True):
        proxy.wait_ready(target + "/health")

    answered: list[str] = []
    stop = threading.Event()

    def client(n: int) -> None:
        headers = {"x-api-key": KEYS[n % len(KEYS)]}
        with httpx.Client(base_url=targets[n % 2], timeout=10, headers=headers) as http:
            while not stop.is_set():
                body = {"model": "claude-sonnet-4-6", "max_tokens": 30, "stream": n % 3 == 0,
                        "messages": [{"role": "user", "content": f"hi {n}"}]}  # fmt: skip
                try:
                    response = http.post("/v1/messages", json=body)
                    response.read()
                except httpx.HTTPError:
                    return  # the proxy is going away
                if response.status_code == 200:
                    answered.append(response.headers["x-request-id"])

    clients = [threading.Thread(target=client, args=(n,)) for n in range(12)]
    for thread in clients:
        thread.start()
    while len(answered) < 150:
        time.sleep(0.05)
    for proxy in proxies:  # mid-load: requests are in flight on both
        os.killpg(proxy.process.pid, signal.SIGTERM)
    codes = [proxy.process.wait(30) for proxy in proxies]
    stop.set()
    for thread in clients:
        thread.join(15)

    rows = open_reader(postgres_url).query(LogFilter(limit=10_000))
    stored = [row["request_id"] for row in rows]
    outputs = [proxy.output() for proxy in proxies]
    assert codes == [0, 0], outputs
    assert len(stored) == len(set(stored))  # exactly once
    assert set(answered) <= set(stored)
    spend = open_reader(postgres_url).analytics(LogFilter())["totals"]["cost_usd"]
    assert spend > 0
    assert spend == pytest.approx(sum(cost_counted(d) for d in metric_dirs), rel=1e-9)
    by_team = open_reader(postgres_url).analytics(LogFilter(), group_by="team")["groups"]
    stored_by_team = {group["team"]: group["cost_usd"] for group in by_team}
    counted_by_team = spend_by_team_counted(metric_dirs)
    assert set(stored_by_team) == {"platform", "research", "unassigned"}
    assert stored_by_team == pytest.approx(counted_by_team, rel=1e-9)
    assert all("access_log_records_dropped" not in output for output in outputs)


# -- the database restarted under load ---------------------------------------------------------


def test_postgresql_restarted_under_load_leaves_requests_unaffected_and_writing_resumes(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    # The session's server, stopped and started again; the finally restarts it for the
    # tests after this one, whatever happens here.
    url = create_database(postgres_server)
    statuses: list[int] = []
    stop = threading.Event()
    with contextmanager(serve_proxy)(tmp_path, location=url) as proxy:
        store = proxy.store

        def load() -> None:
            while not stop.is_set():
                responses = asyncio.run(send_concurrently(proxy.url, 8))
                statuses.extend(r.status_code for r in responses)

        loader = threading.Thread(target=load)
        loader.start()
        try:
            time.sleep(1.0)
            postgres_server.stop()
            time.sleep(2.0)  # writes fail meanwhile: counted drops, never a failed request
            down_at = datetime.now(UTC)
            postgres_server.start()
            deadline = time.monotonic() + 15
            while not store.query(LogFilter(start=down_at, limit=1)):
                assert time.monotonic() < deadline, "writing did not resume"
                time.sleep(0.2)
        finally:
            stop.set()
            loader.join(30)
            if postgres_server.pid is None:
                postgres_server.start()
        assert store.flush()
        stats = store.stats()
        dropped_counted = proxy.total("ccproxy_access_log_dropped_total", reason="write_error")

    assert statuses
    assert set(statuses) == {200}
    assert stats["dropped"].get("write_error", 0) > 0
    assert dropped_counted == stats["dropped"]["write_error"]
    assert stats["written"] + sum(stats["dropped"].values()) == stats["accepted"]
    assert stats["written"] == len(open_reader(url).query(LogFilter(limit=10_000)))
