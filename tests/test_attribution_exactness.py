"""Spend by team and by key in ``/metrics`` equals the access log's, exactly, with 2 workers.

The official SDKs (anthropic, openai) and Claude Code's user agent and headers
call ``ccobs proxy --workers 2`` (multiprocess mode) in front of the mock
upstream, with four keys: three named in an identity file across two teams,
one unknown. ``ccproxy_attributed_cost_usd_total`` summed by team, and by key
alias, equals the stored SQLite records' ``cost_total_usd`` grouped the same
way (to 1e-9), and the request counts equal the records'. The records are
read back from the store (``open_reader``), which keeps ``team`` and
``key_alias`` as columns.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import anthropic
import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from realservers import free_port

from ccobs.access_log import LogFilter, open_reader
from ccobs.identity import fingerprint

KEYS = {
    "alice": "sk-ant-api03-exact-alice-" + "a" * 40,
    "bob": "sk-ant-api03-exact-bob-" + "b" * 40,
    "carol": "sk-proj-exact-carol-" + "c" * 40,
}
UNKNOWN_KEY = "sk-ant-api03-exact-stranger-" + "d" * 40
TEAMS = {"alice": "platform", "bob": "platform", "carol": "research"}
CLAUDE_CODE_HEADERS = {
    "user-agent": "claude-cli/2.0.14 (external, cli)",
    "x-app": "cli",
    "x-claude-code-session-id": "3f1c2a9e-7b4d-4e8a-9c1f-2d3e4f5a6b7c",
    "anthropic-version": "2023-06-01",
}
ROUNDS = 4
"""Each round: anthropic SDK (plain and streaming), openai SDK (plain and streaming),
Claude Code's headers, and the unknown key: 6 requests a round."""
PER_ROUND = 6
TOLERANCE = 1e-9


@dataclass
class Spend:
    """Both sides after the traffic: the exposition's samples and the stored records."""

    samples: list[tuple[str, dict[str, str], float]]
    records: list[dict[str, object]]

    def metric_by(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for sample_name, labels, value in self.samples:
            if sample_name == name:
                out[labels[label]] = out.get(labels[label], 0.0) + value
        return {k: v for k, v in out.items() if v}

    def records_by(self, column: str, value: str | None = None) -> dict[str, float]:
        out: dict[str, float] = {}
        for record in self.records:
            key = str(record[column])
            add = 1.0 if value is None else float(record[value])  # type: ignore[arg-type]
            out[key] = out.get(key, 0.0) + add
        return {k: v for k, v in out.items() if v}


def _start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ccobs.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def _wait_ready(process: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{url}: the process exited"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready")


def _send_traffic(target: str) -> None:
    sdk_alice = anthropic.Anthropic(base_url=target, api_key=KEYS["alice"], max_retries=0)
    sdk_carol = openai.OpenAI(base_url=target + "/v1", api_key=KEYS["carol"], max_retries=0)
    message = [{"role": "user", "content": "hello"}]
    body = {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": message}
    with httpx.Client(base_url=target, timeout=30) as http:
        for _ in range(ROUNDS):
            sdk_alice.messages.create(model="claude-sonnet-4-6", max_tokens=32, messages=message)
            with sdk_alice.messages.stream(
                model="claude-sonnet-4-6", max_tokens=32, messages=message
            ) as stream:
                stream.until_done()
            sdk_carol.chat.completions.create(model="gpt-4.1-mini", messages=message)
            for _chunk in sdk_carol.chat.completions.create(
                model="gpt-4.1-mini",
                messages=message,
                stream=True,
                stream_options={"include_usage": True},
            ):
                pass
            claude_code = {**CLAUDE_CODE_HEADERS, "x-api-key": KEYS["bob"]}
            http.post("/v1/messages?beta=true", json=body, headers=claude_code).raise_for_status()
            stranger = {"authorization": f"Bearer {UNKNOWN_KEY}"}
            http.post("/v1/messages", json=body, headers=stranger).raise_for_status()


@pytest.fixture(scope="module")
def spend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spend]:
    tmp = tmp_path_factory.mktemp("exactness")
    identities = tmp / "identities.yaml"
    identities.write_text(
        "keys:\n"
        + "".join(
            f"  - fingerprint: {fingerprint(key)}\n    alias: {alias}\n    team: {TEAMS[alias]}\n"
            for alias, key in KEYS.items()
        ),
        encoding="utf-8",
    )
    database = tmp / "access.db"
    upstream_port, proxy_port = free_port(), free_port()
    started: list[subprocess.Popen[str]] = []
    try:
        upstream = _start(
            "upstream", "--port", str(upstream_port), "--latency", "0.01", "--ttft", "0.01",
            "--seed", "3",
        )  # fmt: skip
        started.append(upstream)
        _wait_ready(upstream, f"http://127.0.0.1:{upstream_port}/health")
        proxy = _start(
            "proxy", "--port", str(proxy_port), "--workers", "2",
            "--upstream", f"http://127.0.0.1:{upstream_port}",
            "--identities", str(identities), "--access-log-db", str(database),
            env={"PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom"), "CCOBS_LOG_LEVEL": "WARNING"},
        )  # fmt: skip
        started.append(proxy)
        (tmp / "prom").mkdir()
        target = f"http://127.0.0.1:{proxy_port}"
        _wait_ready(proxy, target + "/health")

        _send_traffic(target)

        expected = ROUNDS * PER_ROUND
        deadline = time.monotonic() + 30
        while True:
            text = httpx.get(target + "/metrics", timeout=10).text
            samples = [
                (s.name, s.labels, s.value)
                for family in text_string_to_metric_families(text)
                for s in family.samples
            ]
            counted = sum(v for n, _, v in samples if n == "ccproxy_attributed_requests_total")
            records = (
                open_reader(database).query(LogFilter(limit=10_000)) if database.exists() else []
            )
            if counted >= expected and len(records) >= expected:
                break
            assert time.monotonic() < deadline, f"{counted} counted, {len(records)} stored"
            time.sleep(0.2)
        yield Spend(samples, records)
    finally:
        for process in reversed(started):
            _stop(process)


def test_every_request_is_counted_once_and_stored_once(spend: Spend) -> None:
    counted = spend.metric_by("ccproxy_attributed_requests_total", "team")

    assert sum(counted.values()) == ROUNDS * PER_ROUND
    assert len(spend.records) == ROUNDS * PER_ROUND


def test_request_counts_by_key_equal_the_stored_records(spend: Spend) -> None:
    assert spend.metric_by("ccproxy_attributed_requests_total", "key_alias") == spend.records_by(
        "key_alias"
    )


def test_spend_by_team_in_metrics_equals_the_stored_records_costs(spend: Spend) -> None:
    exposed = spend.metric_by("ccproxy_attributed_cost_usd_total", "team")
    stored = spend.records_by("team", "cost_total_usd")

    assert exposed.keys() == stored.keys() == {"platform", "research", "unassigned"}
    for team, cost in stored.items():
        assert abs(exposed[team] - cost) <= TOLERANCE, team


def test_spend_by_key_in_metrics_equals_the_stored_records_costs(spend: Spend) -> None:
    exposed = spend.metric_by("ccproxy_attributed_cost_usd_total", "key_alias")
    stored = spend.records_by("key_alias", "cost_total_usd")

    stranger = "key-" + fingerprint(UNKNOWN_KEY)[:8]
    assert exposed.keys() == stored.keys() == {"alice", "bob", "carol", stranger}
    for alias, cost in stored.items():
        assert abs(exposed[alias] - cost) <= TOLERANCE, alias


def test_each_caller_is_attributed_to_its_client_app(spend: Spend) -> None:
    apps = {(str(r["key_alias"]), str(r["client_app"])) for r in spend.records}

    assert {
        ("alice", "anthropic-sdk-python"),
        ("carol", "openai-python"),
        ("bob", "claude-code"),
    } <= apps
