"""10,000 distinct keys through the real proxy: the attribution series stay bounded.

A client rotating keys (or an attacker making one up per request) sends each
request with a new credential. The proxy (``create_proxy_app``, in-process,
driven through its ASGI interface) relays every one to the mock upstream over
loopback and attributes it to ``unassigned`` under the key's fingerprint alias.
The attribution families stay under the bound docs/reference.md states, the
proxy keeps nothing per key once the caps are full, and every request is
counted, in ``requests_total`` and in ``attributed_requests_total`` alike.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from realservers import free_port
from starlette.types import Message

from ccobs.attribution_metrics import max_series
from ccobs.catalog import ATTRIBUTED_COST, ATTRIBUTED_REQUESTS, ATTRIBUTED_TOKENS, OTHER
from ccobs.logging import configure_logging
from ccobs.metric_labels import LABEL_CAPS
from ccobs.metrics import PrometheusMetrics
from ccobs.proxy.app import create_proxy_app
from ccobs.proxy.config import ProxyConfig

KEYS = 10_000
WARM_UP = 2_000
"""Keys sent before memory is measured: past the key cap (1,000), so every cap is full."""
CONCURRENCY = 16
RSS_GROWTH_LIMIT = 4 * 1024 * 1024
"""Bytes the process may grow over the last 8,000 keys: 524 bytes a key, the tolerance the
middleware flood (test_cardinality_attack.py) uses. A labelled child per key in the three
families (each over a kilobyte with its label tuple) would take several times that.
Resident size, not tracemalloc: tracing every allocation of 8,000 proxied requests takes
minutes on this machine."""
USER_AGENTS = (
    "claude-cli/2.0.14 (external, cli)",
    "Anthropic/Python 0.69.0",
    "OpenAI/Python 1.109.1",
    "curl/8.5.0",
)
MODELS = ("claude-sonnet-4-6", "claude-haiku-4-5")
BODY = {"max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def upstream_url() -> Iterator[str]:
    """The mock upstream as its own process, answering within about a millisecond."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ccobs.cli", "upstream", "--port", str(port),
         "--latency", "0.001", "--ttft", "0.001", "--seed", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the mock upstream did not start")
            time.sleep(0.05)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def credential_headers(i: int) -> list[tuple[bytes, bytes]]:
    """Key i, in the header a client would use: ``x-api-key`` or ``Authorization: Bearer``."""
    key = f"sk-ant-api03-flood-{i:05d}-{'x' * 40}".encode()
    header = (b"x-api-key", key) if i % 2 else (b"authorization", b"Bearer " + key)
    return [header, (b"user-agent", USER_AGENTS[i % len(USER_AGENTS)].encode())]


async def call(app: FastAPI, i: int) -> int:
    """Request i through the proxy's ASGI interface; returns its status."""
    body = json.dumps({**BODY, "model": MODELS[i % len(MODELS)]}).encode()
    sent: list[Message] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        # As a server does: the body once, then nothing until the client leaves (it stays).
        if messages:
            return messages.pop()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/messages",
        "raw_path": b"/v1/messages",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"proxy.test"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *credential_headers(i),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    return int(sent[0]["status"])


async def flood(app: FastAPI, start: int, stop: int) -> dict[int, int]:
    """Keys ``start``..``stop`` through the proxy, ``CONCURRENCY`` at a time; statuses counted."""
    statuses: dict[int, int] = {}
    queue = iter(range(start, stop))

    async def worker() -> None:
        for i in queue:
            status = await call(app, i)
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return statuses


def rss_bytes() -> int:
    """Resident set size of this process (Linux), after a full collection."""
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def total(registry: CollectorRegistry, name: str) -> float:
    return sum(s.value for f in registry.collect() for s in f.samples if s.name == name)


def attribution_series(registry: CollectorRegistry) -> list[dict[str, str]]:
    names = {spec.full_name() for spec in (ATTRIBUTED_REQUESTS, ATTRIBUTED_TOKENS, ATTRIBUTED_COST)}
    return [s.labels for f in registry.collect() for s in f.samples if s.name in names]


@pytest.mark.usefixtures("isolated_logging")
def test_10k_distinct_keys_through_the_proxy_stay_bounded_flat_and_all_counted(
    upstream_url: str,
) -> None:
    configure_logging(level="CRITICAL", stream=io.StringIO())
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    app = create_proxy_app(ProxyConfig(upstream_url=upstream_url), metrics=metrics)

    async def run() -> tuple[dict[int, int], dict[int, int], int]:
        async with app.router.lifespan_context(app):
            warm = await flood(app, 0, WARM_UP)
            before = rss_bytes()
            rest = await flood(app, WARM_UP, KEYS)
            growth = rss_bytes() - before
        return warm, rest, growth

    warm, rest, growth = asyncio.run(run())

    assert warm == {200: WARM_UP}
    assert rest == {200: KEYS - WARM_UP}
    assert total(registry, "ccproxy_requests_total") == KEYS
    assert total(registry, ATTRIBUTED_REQUESTS.full_name()) == KEYS
    series = attribution_series(registry)
    assert len(series) <= max_series(LABEL_CAPS["team"], LABEL_CAPS["key_alias"])
    assert {labels["team"] for labels in series} == {"unassigned"}
    aliases = {labels["key_alias"] for labels in series}
    assert len(aliases) == LABEL_CAPS["key_alias"] + 1  # the first 1,000 keys, then other
    assert OTHER in aliases
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew {growth} bytes over {KEYS - WARM_UP} keys"
