"""The access log from the command line: ``ccobs proxy|demo --access-log-db`` and ``ccobs logs``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pgserver import PASSWORD
from realservers import free_port
from test_cli import Background, background, ccobs

from ccobs.access_log import LogFilter, open_access_log, open_reader
from ccobs.stack.postgres import PostgresServer
from ccobs.storage import AccessLogRecord

__all__ = ["background"]  # the fixture, shared with test_cli


def test_sigterm_during_load_loses_no_accepted_record(
    background: list[Background], access_log_location: str
) -> None:
    db = access_log_location
    upstream_port, proxy_port = free_port(), free_port()
    upstream = Background(
        "upstream", "--port", str(upstream_port), "--seed", "3", "--latency", "0.3",
        "--ttft", "0.1",
    )  # fmt: skip
    background.append(upstream)
    upstream.wait_ready(f"http://127.0.0.1:{upstream_port}/health")
    proxy = Background(
        "proxy", "--port", str(proxy_port), "--upstream", f"http://127.0.0.1:{upstream_port}",
        "--access-log-db", str(db),
        env={"CCOBS_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    background.append(proxy)
    target = f"http://127.0.0.1:{proxy_port}"
    proxy.wait_ready(target + "/health")

    answered: list[str] = []
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(base_url=target, timeout=10) as http:
            while not stop.is_set():
                body = {"model": "claude-sonnet-4-6", "max_tokens": 20, "stream": n % 2 == 0,
                        "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
                try:
                    response = http.post("/v1/messages", json=body)
                    response.read()
                except httpx.HTTPError:
                    return  # the proxy is going away
                if response.status_code == 200:
                    answered.append(response.headers["x-request-id"])

    clients = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in clients:
        thread.start()
    while len(answered) < 40:
        threading.Event().wait(0.05)
    os.killpg(proxy.process.pid, signal.SIGTERM)  # mid-load: requests are in flight
    code = proxy.process.wait(30)
    stop.set()
    for thread in clients:
        thread.join(15)

    stored = {row["request_id"] for row in open_reader(db).query(LogFilter(limit=10_000))}
    output = proxy.output()
    assert code == 0, output  # a graceful stop, not death by the signal
    assert len(answered) >= 40
    assert set(answered) <= stored
    assert "access_log_records_dropped" not in output


def make_db(path: Path | str) -> None:
    now = datetime.now(UTC)
    with open_access_log(path) as store:  # PostgreSQL for a URL, DuckDB for *.duckdb, else SQLite
        for n in range(6):
            store.store(
                AccessLogRecord(
                    request_id=f"req-{n}",
                    timestamp=now - timedelta(minutes=n),
                    duration_ms=100.0 + n,
                    model="claude-haiku-4-5" if n % 3 == 0 else "claude-sonnet-4-6",
                    status=200,
                    input_tokens=10,
                    cost_total_usd=0.5,
                )
            )


def test_logs_query_prints_matching_records_as_json_lines(access_log_location: str) -> None:
    make_db(access_log_location)

    result = ccobs("logs", "query", "--db", access_log_location, "--model", "claude-haiku-4-5")

    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["request_id"] for row in rows] == ["req-0", "req-3"]


def test_logs_analytics_prints_totals_per_model_and_hour(access_log_location: str) -> None:
    make_db(access_log_location)

    result = ccobs("logs", "analytics", "--db", access_log_location, "--since", "1h")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["totals"]["requests"] == 6
    assert report["totals"]["cost_usd"] == 3.0
    assert {m["model"]: m["requests"] for m in report["by_model"]} == {
        "claude-sonnet-4-6": 4,
        "claude-haiku-4-5": 2,
    }


def test_logs_on_an_unreachable_postgresql_fails_naming_it_without_the_password() -> None:
    url = f"postgresql://ccobs:{PASSWORD}@127.0.0.1:{free_port()}/access"

    result = ccobs("logs", "query", "--db", url)

    assert result.returncode == 1
    assert "postgresql://ccobs:***@127.0.0.1" in result.stderr
    assert "Connection refused" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_logs_on_a_missing_postgresql_database_fails_naming_it(
    postgres_server: PostgresServer,
) -> None:
    result = ccobs("logs", "analytics", "--db", postgres_server.url("no_such_db"))

    assert result.returncode == 1
    assert 'database "no_such_db" does not exist' in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_logs_on_a_missing_database_fails_naming_it(tmp_path: Path) -> None:
    result = ccobs("logs", "query", "--db", str(tmp_path / "none.db"))

    assert result.returncode == 1
    assert "none.db" in result.stderr


@pytest.mark.parametrize("content", [b"not a database\n", b""], ids=["text", "empty"])
def test_logs_on_a_file_that_is_not_a_database_fails_naming_it(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(content)

    result = ccobs("logs", "query", "--db", str(path))

    assert result.returncode == 1
    assert f"{path} is neither a SQLite nor a DuckDB database" in result.stderr
    assert "Traceback" not in result.stderr


def test_logs_reads_a_duckdb_file_whatever_its_name(tmp_path: Path) -> None:
    path = tmp_path / "access.db"
    make_db(tmp_path / "a.duckdb")
    (tmp_path / "a.duckdb").rename(path)

    result = ccobs("logs", "analytics", "--db", str(path), "--since", "1h")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["totals"]["requests"] == 6


def test_demo_writes_its_requests_to_the_access_log_db(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    result = ccobs(
        "demo", "--duration", "2", "--port", "0", "--seed", "3", "--rate", "20",
        "--log-file", str(tmp_path / "demo.log"), "--access-log-db", str(db),
        timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert open_reader(db).analytics(LogFilter())["totals"]["requests"] > 10


def test_demo_writes_to_a_postgresql_access_log_without_showing_the_password(
    tmp_path: Path, postgres_url: str
) -> None:
    result = ccobs(
        "demo", "--duration", "1", "--port", "0", "--seed", "3", "--rate", "20",
        "--log-file", str(tmp_path / "demo.log"), "--access-log-db", postgres_url,
        timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert open_reader(postgres_url).analytics(LogFilter())["totals"]["requests"] > 5
    shown = result.stdout + result.stderr + (tmp_path / "demo.log").read_text()
    assert PASSWORD not in shown


def test_logs_query_into_a_reader_that_leaves_early_stops_without_a_traceback(
    tmp_path: Path,
) -> None:
    db = tmp_path / "access.db"
    now = datetime.now(UTC)
    with open_access_log(db) as store:  # far more lines than a pipe buffers
        for n in range(3000):
            store.store(
                AccessLogRecord(request_id=f"req-{n}", timestamp=now, duration_ms=1.0, status=200)
            )
    query = subprocess.Popen(
        [sys.executable, "-m", "ccobs.cli", "logs", "query", "--db", str(db), "--limit", "3000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert query.stdout is not None
    assert query.stderr is not None
    query.stdout.read(100)  # `| head -c 100`
    query.stdout.close()
    code = query.wait(60)
    stderr = query.stderr.read().decode()

    assert code == 128 + signal.SIGPIPE, stderr
    assert "Traceback" not in stderr
