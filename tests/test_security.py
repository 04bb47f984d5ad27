"""Security, end to end: secrets never leave the proxy, request ids cannot forge log
lines, ``/metrics`` and ``/logs`` keep their tokens, and the stacks listen on loopback only.

One module-scoped stack (mock upstream, the demo proxy with an SQLite access
log and both tokens, a second proxy whose upstream is down, all on loopback)
takes one round of traffic that carries a distinct, real-looking secret in
every place a client can put one. Each test then searches one place the
secrets could come out (JSON log lines at DEBUG, uvicorn's own lines, every
SQLite table, the ``/logs`` API, metric labels, the exposition, the pushed
payload, what the client got back) for every secret, whole and by a
distinctive fragment, so a failure names the place searched and the place
the secret went in.

Request bodies are user content the proxy forwards upstream, never logs: a
canary in every body proves no body reaches a log line, whatever it contains.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.server
import io
import json
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from conftest import log_records, restored_logging, without_pytest_log_handlers
from prometheus_client import CollectorRegistry
from test_compose import LOOPBACK, run_compose, services

import ccobs.bearer_token
from ccobs.access_log import SQLiteAccessLog
from ccobs.asgi import REQUEST_ID_HEADER
from ccobs.demo.server_thread import ServerThread
from ccobs.demo.upstream import Delay, UpstreamConfig, create_upstream_app
from ccobs.logging import configure_logging
from ccobs.metrics import PrometheusMetrics
from ccobs.proxy.app import create_proxy_app
from ccobs.proxy.config import ProxyConfig
from ccobs.pushgateway import PushgatewayClient
from ccobs.settings import ObservabilitySettings
from ccobs.stack import native
from ccobs.stack.native import Stack, StackConfig, StackPorts
from ccobs.stack.processes import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
MODEL = "claude-sonnet-4-6"
OPENAI_MODEL = "gpt-4.1-mini"
FAST = UpstreamConfig(
    seed=7, ttft=Delay(0.005), latency=Delay(0.005), inter_token_delay=0.0002, output_tokens=(3, 12)
)
METRICS_TOKEN = "metrics-token-" + "k3y" * 8
LOGS_TOKEN = "logs-token-" + "t0k" * 8
BODY_CANARY = "body-canary-6f1d9b27c4e8"
"""Plain text in every request body: redaction would not hide it, so finding it
in a log line means a body was logged."""


# --- the secrets ----------------------------------------------------------------


def _b64(tag: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha512(tag.encode()).digest()).decode().rstrip("=")


def anthropic_key(tag: str) -> str:
    """Shaped like a real Anthropic key: ``sk-ant-api03-`` + 86 base64url chars + ``AA``."""
    return f"sk-ant-api03-{_b64(tag)}AA"


def openai_key(tag: str) -> str:
    """Shaped like an OpenAI project key: ``sk-proj-`` + 64 base64url chars."""
    return f"sk-proj-{_b64(tag)[:64]}"


def bearer_token(tag: str) -> str:
    """An opaque bearer token (a JWT's shape): nothing but its place marks it secret."""
    return f"eyJhbGciOiJIUzI1NiJ9.{_b64(tag)[:40]}.{_b64(tag + '/sig')[:43]}"


def opaque(tag: str) -> str:
    """A session cookie value: 40 hex chars, secret only by where it is sent."""
    return hashlib.sha256(tag.encode()).hexdigest()[:40]


SECRETS: dict[str, str] = {
    # headers
    "x-api-key header": anthropic_key("x-api-key"),
    "authorization: Bearer <openai key>": openai_key("authorization-openai"),
    "authorization: Bearer <token>": bearer_token("authorization-token"),
    "cookie header": opaque("cookie"),
    "anthropic-api-key header": anthropic_key("anthropic-api-key"),
    "openai-api-key header": openai_key("openai-api-key"),
    "user-agent header": anthropic_key("user-agent"),
    # URL
    "?key= query parameter": anthropic_key("query-key"),
    "?api_key= query parameter": openai_key("query-api-key"),
    "?access_token= query parameter": opaque("query-access-token"),
    "URL path of an unmatched route": anthropic_key("path"),
    "?api_key= of an unmatched route": openai_key("unmatched-query"),
    # JSON body
    "system prompt": anthropic_key("system"),
    "message text": openai_key("message"),
    "metadata.user_id": anthropic_key("metadata"),
    "openai user field": openai_key("openai-user"),
    # values the proxy reads
    "x-request-id header": anthropic_key("request-id"),
    "model name": anthropic_key("model"),
    # a streamed request
    "x-api-key of a stream": anthropic_key("stream-x-api-key"),
    "message text of a stream": openai_key("stream-message"),
    # failing requests
    "x-api-key of an upstream 400": anthropic_key("upstream-400"),
    "authorization of an upstream 500": bearer_token("upstream-500"),
    "cookie of an upstream 429": opaque("upstream-429"),
    "x-api-key with the upstream down": anthropic_key("upstream-down"),
    "message text with the upstream down": openai_key("upstream-down-message"),
    "x-api-key of a malformed body": anthropic_key("malformed-header"),
    "text of a malformed body": anthropic_key("malformed-body"),
    "body without a model": openai_key("no-model"),
}
"""Place a secret was sent in -> the secret. Distinct per place, so a leak names its source."""


def fragments(secret: str) -> tuple[str, ...]:
    """The secret and two 16-char pieces of it (middle and tail): a secret cut
    in two by a partial redaction still shows."""
    middle = len(secret) // 2
    return (secret, secret[middle : middle + 16], secret[-16:])


def leaked(haystack: str, places: Sequence[str]) -> list[str]:
    """The places (keys of SECRETS) whose secret, or a fragment of it, is in ``haystack``."""
    return [place for place in places if any(f in haystack for f in fragments(SECRETS[place]))]


PLACES = list(SECRETS)
"""Every place a secret was sent: each search below looks for all of them."""


def test_every_secret_and_fragment_is_distinctive() -> None:
    """A fragment that occurred naturally (in a metric name, a timestamp) would make
    the searches below fail for the wrong reason; a short one would prove little."""
    pieces = [f for secret in SECRETS.values() for f in fragments(secret)]

    assert all(len(piece) >= 12 for piece in pieces)
    assert len(set(pieces)) == len(pieces)


# --- the stack and the traffic ------------------------------------------------------


@dataclass
class Reply:
    """What a client got back from one request."""

    label: str
    status: int
    headers: list[tuple[str, str]]
    body: str


ACCESS_EVENTS = ("request_success", "request_error")


@dataclass
class SecurityStack:
    proxy_url: str
    dead_proxy_url: str
    logs: io.StringIO
    registry: CollectorRegistry
    store: SQLiteAccessLog
    db_path: Path

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs.getvalue().splitlines() if line]

    def access_lines(self) -> list[dict[str, Any]]:
        return [
            line
            for line in self.log_lines()
            if line.get("logger") == "ccobs.request" and line["event"] in ACCESS_EVENTS
        ]

    def wait_for_access_lines(self, count: int, timeout: float = 10.0) -> None:
        """Until ``count`` access-log lines exist, then flush the store.

        The line is written as the request's context closes, which follows
        the last byte the client received.
        """
        deadline = time.monotonic() + timeout
        while len(self.access_lines()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.access_lines()) >= count, "access-log lines missing"
        assert self.store.flush()


def dead_url() -> str:
    """A loopback URL nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return f"http://{LOOPBACK}:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecurityStack]:
    """Mock upstream, proxy, and a proxy whose upstream is down, sharing one registry
    and one SQLite access log; every line, uvicorn's access log included, as JSON at DEBUG."""
    db_path = tmp_path_factory.mktemp("security") / "access.db"
    settings = ObservabilitySettings(
        metrics_token=METRICS_TOKEN,
        access_log_api_token=LOGS_TOKEN,
        access_log_client_info=True,  # the operator opted in: the most that is ever stored
    )
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry, settings=settings)
    store = SQLiteAccessLog(db_path, metrics=metrics, keep_client_info=True)
    logs = io.StringIO()
    with restored_logging(), contextlib.ExitStack() as running:
        running.callback(store.close)
        upstream = ServerThread(create_upstream_app(FAST), LOOPBACK, lifespan="off")
        running.callback(upstream.stop)

        def proxy(upstream_url: str) -> ServerThread:
            app = create_proxy_app(
                ProxyConfig(upstream_url=upstream_url, connect_timeout=2.0),
                metrics=metrics,
                settings=settings,
                storage=store,
            )
            # h11 whatever else is installed, as in asgi_server.serve_asgi: httptools would
            # answer forged ids with control characters itself, before the proxy sees them.
            server = ServerThread(app, LOOPBACK, lifespan="on", http="h11", loop="asyncio")
            running.callback(server.stop)
            return server

        live, dead = proxy(upstream.url), proxy(dead_url())
        # After uvicorn's Configs (which turn its access log off), so uvicorn's
        # access and error lines go through the same chain as everything else.
        configure_logging("DEBUG", "json", stream=logs)
        for server in (upstream, live, dead):
            server.start()
        yield SecurityStack(live.url, dead.url, logs, registry, store, db_path)


def _headers(*places: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Request headers carrying the secrets of ``places`` where those places say."""
    where: dict[str, tuple[str, str]] = {
        "x-api-key header": ("x-api-key", "{}"),
        "authorization: Bearer <openai key>": ("authorization", "Bearer {}"),
        "authorization: Bearer <token>": ("authorization", "Bearer {}"),
        "cookie header": ("cookie", "theme=dark; session={}"),
        "anthropic-api-key header": ("anthropic-api-key", "{}"),
        "openai-api-key header": ("openai-api-key", "{}"),
        "user-agent header": ("user-agent", "my-agent/1.0 (debug key={})"),
        "x-request-id header": (REQUEST_ID_HEADER, "{}"),
        "x-api-key of a stream": ("x-api-key", "{}"),
        "x-api-key of an upstream 400": ("x-api-key", "{}"),
        "authorization of an upstream 500": ("authorization", "Bearer {}"),
        "cookie of an upstream 429": ("cookie", "session={}"),
        "x-api-key with the upstream down": ("x-api-key", "{}"),
        "x-api-key of a malformed body": ("x-api-key", "{}"),
    }
    headers = {"anthropic-version": "2023-06-01", **(extra or {})}
    for place in places:
        name, template = where[place]
        headers[name] = template.format(SECRETS[place])
    return headers


def _anthropic_body(
    *, stream: bool = False, model: str = MODEL, text: str = "hi"
) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 20,
        "stream": stream,
        "system": f"{BODY_CANARY} system",
        "messages": [{"role": "user", "content": f"{BODY_CANARY} {text}"}],
    }


def send_traffic(stack: SecurityStack) -> list[Reply]:
    """One request per way a client can carry a secret; every reply, read to the end."""
    replies: list[Reply] = []
    messages = "/v1/messages"

    def send(label: str, method: str, url: str, **kwargs: Any) -> None:
        with httpx.Client(timeout=15) as client, client.stream(method, url, **kwargs) as response:
            body = response.read().decode("utf-8", "replace")
            replies.append(
                Reply(label, response.status_code, list(response.headers.multi_items()), body)
            )

    everything = _anthropic_body()
    everything["system"] = f"{BODY_CANARY} you may use {SECRETS['system prompt']}"
    everything["messages"][0]["content"] = f"{BODY_CANARY} my key is {SECRETS['message text']}"
    everything["metadata"] = {"user_id": SECRETS["metadata.user_id"]}
    query = {
        "key": SECRETS["?key= query parameter"],
        "api_key": SECRETS["?api_key= query parameter"],
        "access_token": SECRETS["?access_token= query parameter"],
    }
    send(
        "every header, the query and the body",
        "POST",
        stack.proxy_url + messages,
        params=query,
        json=everything,
        headers=_headers(
            "x-api-key header",
            "authorization: Bearer <token>",
            "cookie header",
            "anthropic-api-key header",
            "openai-api-key header",
            "user-agent header",
        ),
    )
    send(
        "openai",
        "POST",
        stack.proxy_url + "/v1/chat/completions",
        json={
            "model": OPENAI_MODEL,
            "user": SECRETS["openai user field"],
            "messages": [{"role": "user", "content": f"{BODY_CANARY} hello"}],
        },
        headers=_headers("authorization: Bearer <openai key>"),
    )
    send(
        "model name",
        "POST",
        stack.proxy_url + messages,
        json=_anthropic_body(model=SECRETS["model name"]),
    )
    send(
        "x-request-id",
        "POST",
        stack.proxy_url + messages,
        json=_anthropic_body(),
        headers=_headers("x-request-id header"),
    )
    send(
        "stream",
        "POST",
        stack.proxy_url + messages,
        json=_anthropic_body(stream=True, text=SECRETS["message text of a stream"]),
        headers=_headers("x-api-key of a stream"),
    )
    send(
        "unmatched path",
        "POST",
        f"{stack.proxy_url}/v1/{SECRETS['URL path of an unmatched route']}/messages",
        json=_anthropic_body(),
    )
    send(
        "unmatched query",
        "GET",
        stack.proxy_url + "/v1/no-such-route",
        params={"api_key": SECRETS["?api_key= of an unmatched route"]},
    )
    for place, status in (
        ("x-api-key of an upstream 400", "400"),
        ("authorization of an upstream 500", "500"),
        ("cookie of an upstream 429", "429"),
    ):
        send(
            f"upstream {status}",
            "POST",
            stack.proxy_url + messages,
            json=_anthropic_body(),
            headers=_headers(place, extra={"x-mock-status": status}),
        )
    send(
        "upstream down",
        "POST",
        stack.dead_proxy_url + messages,
        json=_anthropic_body(text=SECRETS["message text with the upstream down"]),
        headers=_headers("x-api-key with the upstream down"),
    )
    malformed_text = SECRETS["text of a malformed body"]
    send(
        "malformed body",
        "POST",
        stack.proxy_url + messages,
        content=f'{{"model": "{MODEL}", "note": "{BODY_CANARY} {malformed_text}'.encode(),
        headers=_headers(
            "x-api-key of a malformed body", extra={"content-type": "application/json"}
        ),
    )
    send(
        "no model",
        "POST",
        stack.proxy_url + messages,
        json={
            "messages": [
                {"role": "user", "content": f"{BODY_CANARY} {SECRETS['body without a model']}"}
            ]
        },
    )
    return replies


class _CaptureHandler(http.server.BaseHTTPRequestHandler):
    captured: list[str]

    def _capture(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        self.captured.append(f"{self.command} {self.path}\n{self.headers}\n{body}")
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    do_PUT = do_POST = do_DELETE = _capture

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test reads what was captured; stderr stays quiet


def pushed_payloads(registry: CollectorRegistry) -> list[str]:
    """Everything the pusher sends for ``registry``, caught by a loopback HTTP server."""
    captured: list[str] = []
    handler = type("Capture", (_CaptureHandler,), {"captured": captured})
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://{LOOPBACK}:{server.server_address[1]}"
        client = PushgatewayClient(
            ObservabilitySettings(pushgateway_url=url, pushgateway_instance="security-test")
        )
        try:
            assert client.push_metrics(registry), "the push to the capture server failed"
        finally:
            client.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    return captured


def sqlite_dump(path: Path) -> list[tuple[str, tuple[Any, ...]]]:
    """Every row of every table: (table, row)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = [
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        return [
            (table, tuple(row))
            for table in tables
            for row in conn.execute(f'SELECT * FROM "{table}"').fetchall()
        ]
    finally:
        conn.close()


@dataclass
class Traffic:
    """What the secret-carrying traffic left behind, captured once it had settled."""

    replies: list[Reply]
    log_text: str
    log_lines: list[dict[str, Any]]
    access_lines: int
    label_values: list[str] = field(default_factory=list)
    series: int = 0
    expositions: list[str] = field(default_factory=list)
    pushed: list[str] = field(default_factory=list)
    db_rows: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    logs_api: list[str] = field(default_factory=list)
    access_lines_through_the_chain: int = 0


@pytest.fixture(scope="module")
def traffic(stack: SecurityStack) -> Traffic:
    before = len(stack.access_lines())
    # As in production, ccobs's handler alone: the access-log lines take their direct
    # way (ccobs.access_line), which the searches below then cover.
    with log_records("ccobs.request") as made, without_pytest_log_handlers():
        replies = send_traffic(stack)
        stack.wait_for_access_lines(before + len(replies))
    access_records = [
        r for r in made if isinstance(r.msg, dict) and r.msg.get("event") in ACCESS_EVENTS
    ]
    log_text = stack.logs.getvalue()
    lines = [json.loads(line) for line in log_text.splitlines() if line]
    samples = [s for family in stack.registry.collect() for s in family.samples]
    auth = {"authorization": f"Bearer {METRICS_TOKEN}"}
    expositions = [
        httpx.get(stack.proxy_url + "/metrics", headers=auth).text,
        httpx.get(
            stack.proxy_url + "/metrics",
            headers={**auth, "accept": "application/openmetrics-text; version=1.0.0"},
        ).text,
    ]
    logs_auth = {"authorization": f"Bearer {LOGS_TOKEN}"}
    logs_api = [
        httpx.get(stack.proxy_url + path, params=params, headers=logs_auth).text
        for path, params in (
            ("/logs/query", {"limit": "10000"}),
            ("/logs/analytics", {"start": "1h"}),
        )
    ]
    return Traffic(
        replies=replies,
        log_text=log_text,
        log_lines=lines,
        access_lines=len(stack.access_lines()) - before,
        access_lines_through_the_chain=len(access_records),
        label_values=[value for s in samples for value in s.labels.values()],
        series=len(samples),
        expositions=expositions,
        pushed=pushed_payloads(stack.registry),
        db_rows=sqlite_dump(stack.db_path),
        logs_api=logs_api,
    )


# --- 1. secrets: every place they could come out ----------------------------------


def test_traffic_covered_every_path_it_was_meant_to(traffic: Traffic) -> None:
    """The searches below prove something only if the traffic took the paths named:
    success, stream, unmatched route, upstream errors, upstream down, proxy's own 400s."""
    statuses = {reply.label: reply.status for reply in traffic.replies}

    assert statuses == {
        "every header, the query and the body": 200,
        "openai": 200,
        "model name": 200,
        "x-request-id": 200,
        "stream": 200,
        "unmatched path": 404,
        "unmatched query": 404,
        "upstream 400": 400,
        "upstream 500": 500,
        "upstream 429": 429,
        "upstream down": 502,
        "malformed body": 400,
        "no model": 400,
    }
    assert "event: message_stop" in next(r.body for r in traffic.replies if r.label == "stream")
    assert traffic.access_lines == len(traffic.replies)


def test_the_access_log_lines_took_their_direct_way(traffic: Traffic) -> None:
    """The searches cover the lines ``ccobs.access_line`` writes, not only the chain's."""
    assert traffic.access_lines_through_the_chain == 0


def test_no_secret_in_any_json_log_line_at_debug(traffic: Traffic) -> None:
    """Every line the process wrote at DEBUG (ccobs, httpx/httpcore, uvicorn, asyncio)."""
    assert len(traffic.log_lines) > 2 * len(traffic.replies)
    assert {"ccobs.request", "ccobs.demo.proxy"} <= {line["logger"] for line in traffic.log_lines}

    assert leaked(traffic.log_text, PLACES) == []


def test_no_secret_in_uvicorns_access_or_error_lines(traffic: Traffic) -> None:
    """uvicorn's access log prints the raw request line, query string included."""
    uvicorn_lines = [line for line in traffic.log_lines if line["logger"].startswith("uvicorn")]
    access = [line["event"] for line in uvicorn_lines if line["logger"] == "uvicorn.access"]
    # Proxy and upstream both log: at least one line per request sent.
    assert len(access) >= len(traffic.replies)
    # The query-string secrets went through this place, and came out redacted.
    assert any("/v1/messages?key=[REDACTED]&api_key=[REDACTED]" in event for event in access)

    assert leaked(json.dumps(uvicorn_lines), PLACES) == []


def test_request_bodies_are_never_logged(traffic: Traffic) -> None:
    """Bodies are the user's prompts: forwarded, never written to a log line,
    whether or not redaction would recognise what is in them."""
    assert BODY_CANARY not in traffic.log_text


def test_no_secret_in_any_access_log_table_or_column(traffic: Traffic) -> None:
    """Every row of every SQLite table (records and the hourly rollup), every column."""
    records = [row for table, row in traffic.db_rows if table == "access_log"]
    assert len(records) == len(traffic.replies)

    assert leaked(repr(traffic.db_rows), PLACES) == []


def test_no_secret_in_the_access_log_api(traffic: Traffic) -> None:
    """``/logs/query`` and ``/logs/analytics`` as a token holder sees them."""
    query = json.loads(traffic.logs_api[0])
    assert query["count"] == len(traffic.replies)

    assert leaked("\n".join(traffic.logs_api), PLACES) == []


def test_no_secret_in_any_metric_label(traffic: Traffic) -> None:
    """Every label value of every series in the registry, read from the registry itself."""
    assert traffic.series > 50

    assert leaked("\n".join(traffic.label_values), PLACES) == []


def test_no_secret_in_the_metrics_exposition(traffic: Traffic) -> None:
    """The whole ``/metrics`` text, Prometheus and OpenMetrics formats."""
    assert all("ccproxy_requests_total" in text for text in traffic.expositions)

    assert leaked("\n".join(traffic.expositions), PLACES) == []


def test_no_secret_in_the_pushed_payload(traffic: Traffic) -> None:
    """What the pusher sends: request line, headers and body, as the receiver got them."""
    assert len(traffic.pushed) == 1
    assert "ccproxy_requests_total" in traffic.pushed[0]

    assert leaked("\n".join(traffic.pushed), PLACES) == []


def test_no_secret_in_error_bodies_or_response_headers(traffic: Traffic) -> None:
    """What the client got back: every header of every reply, every error body.

    (Success bodies are the upstream's answer, relayed as is.)
    """
    errors = [reply for reply in traffic.replies if reply.status >= 400]
    received = [f"{name}: {value}" for reply in traffic.replies for name, value in reply.headers]
    assert len(errors) == 8

    assert leaked("\n".join([*received, *(reply.body for reply in errors)]), PLACES) == []


# --- 2. x-request-id: accepted when safe, replaced otherwise, never forging a line --------


def raw_request(url: str, request_id: bytes) -> tuple[int, dict[str, str]]:
    """POST a small Messages request with ``request_id`` as sent, byte for byte.

    A raw socket, because HTTP clients refuse to send the bytes a forger would.
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    body = json.dumps(_anthropic_body()).encode()
    head = (
        b"POST /v1/messages HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n"
        b"X-Request-Id: " + request_id + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=15) as conn:
        conn.sendall(head + body)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    lines = received.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


def string_values(node: Any) -> Iterator[str]:
    """Every string in a parsed log line, keys and values, however nested."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from string_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from string_values(item)


FORGED_REQUEST_IDS: dict[str, bytes] = {
    "json-breaking quotes": b'x", "event": "request_success", "status": 200, "request_id": "forged',
    "ansi escapes": b"\x1b[2J\x1b[31mFORGED\x1b[0m",
    "delete character": b"forged\x7fid",
    "10k characters": b"f" * 10_000,
    "129 characters": b"f" * 129,
    "unicode": "förged-☃-id".encode(),
    "spaces and tabs": b"forged id\twith blanks",
    "percent-encoded newline": b"forged%0d%0aevent=request_success",
}
"""Forged ids an HTTP/1.1 parser lets through to the application."""


@pytest.mark.parametrize("forged", FORGED_REQUEST_IDS.values(), ids=FORGED_REQUEST_IDS.keys())
def test_forged_request_id_is_replaced_echoed_and_logged_once_never_raw(
    stack: SecurityStack, forged: bytes
) -> None:
    """The proxy answers with a generated id, logs the request once under it, and
    no log line holds the forged text in any form the application could see."""
    before = len(stack.access_lines())

    status, headers = raw_request(stack.proxy_url, forged)
    stack.wait_for_access_lines(before + 1)

    echoed = headers[REQUEST_ID_HEADER]
    assert status == 200
    assert len(echoed) == 32
    assert all(c in "0123456789abcdef" for c in echoed)
    assert [line["request_id"] for line in stack.access_lines()].count(echoed) == 1
    as_seen = {forged.decode("latin-1"), forged.decode("utf-8", "replace")}
    logged = [value for line in stack.log_lines() for value in string_values(line)]
    assert [value for value in logged if any(f in value for f in as_seen)] == []


INJECTED = "injected-by-"
INJECTED_REQUEST_IDS: dict[str, bytes] = {
    "LF": f"ok\n{INJECTED}lf".encode(),
    "CR": f"ok\r{INJECTED}cr".encode(),
    "NUL": f"ok\x00{INJECTED}nul".encode(),
}
"""Request ids that would start a new line (or end a C string) where they were written."""


@pytest.mark.parametrize("injected", INJECTED_REQUEST_IDS.values(), ids=INJECTED_REQUEST_IDS.keys())
def test_request_id_with_line_breaks_or_nul_never_reaches_a_log_line(
    stack: SecurityStack, injected: bytes
) -> None:
    """Line breaks are what forge a log line; the HTTP parser refuses them before
    the application runs, so what follows them is logged nowhere."""
    before = len(stack.access_lines())

    status, headers = raw_request(stack.proxy_url, injected)

    assert status == 400
    assert REQUEST_ID_HEADER not in headers
    assert [v for line in stack.log_lines() for v in string_values(line) if INJECTED in v] == []
    assert len(stack.access_lines()) == before


def test_a_valid_request_id_is_echoed_and_correlates_every_line_of_its_request(
    stack: SecurityStack,
) -> None:
    """Ids of ``A-Z a-z 0-9 . _ : -`` up to 128 characters are the client's to choose:
    echoed, on its one access-log line, on uvicorn's line and in the stored record."""
    request_id = "client-req_42.retry:1-" + "a" * 100
    before = len(stack.access_lines())

    response = httpx.post(
        stack.proxy_url + "/v1/messages",
        json=_anthropic_body(),
        headers={REQUEST_ID_HEADER: request_id},
        timeout=15,
    )
    stack.wait_for_access_lines(before + 1)

    assert response.headers[REQUEST_ID_HEADER] == request_id
    lines = [line for line in stack.log_lines() if line.get("request_id") == request_id]
    assert [line["logger"] for line in lines].count("ccobs.request") == 2  # start, success
    assert "uvicorn.access" in {line["logger"] for line in lines}
    stored = [row for table, row in sqlite_dump(stack.db_path) if table == "access_log"]
    assert [row[0] for row in stored].count(request_id) == 1


# --- 3. /metrics and /logs tokens --------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong",
        f"Bearer {METRICS_TOKEN[:-1]}",
        f"Bearer {METRICS_TOKEN}x",
        f"Basic {METRICS_TOKEN}",
        f"Bearer {LOGS_TOKEN}",
        METRICS_TOKEN,
    ],
    ids=["none", "wrong", "prefix", "longer", "basic scheme", "the logs token", "no scheme"],
)
def test_proxy_metrics_refuse_anything_but_the_exact_bearer_token(
    stack: SecurityStack, authorization: str | None
) -> None:
    """Through the proxy app as deployed: 401 with a Bearer challenge, and the
    answer tells nothing about the token."""
    headers = {"authorization": authorization} if authorization else {}

    response = httpx.get(stack.proxy_url + "/metrics", headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "ccproxy_" not in response.text
    assert METRICS_TOKEN[:12] not in response.text + str(response.headers)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_proxy_metrics_serve_the_exact_bearer_token(stack: SecurityStack, scheme: str) -> None:
    response = httpx.get(
        stack.proxy_url + "/metrics", headers={"authorization": f"{scheme} {METRICS_TOKEN}"}
    )

    assert response.status_code == 200
    assert "ccproxy_requests_total" in response.text


def test_metrics_and_logs_tokens_are_compared_in_constant_time(
    stack: SecurityStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both endpoints check the token with ``hmac.compare_digest``, also when the
    presented token is shorter: no early return that times out its length or prefix."""
    compared: list[tuple[bytes, bytes]] = []

    def spy(presented: bytes, expected: bytes) -> bool:
        compared.append((presented, expected))
        return hmac.compare_digest(presented, expected)

    monkeypatch.setattr(ccobs.bearer_token, "hmac", SimpleNamespace(compare_digest=spy))

    metrics = httpx.get(stack.proxy_url + "/metrics", headers={"authorization": "Bearer m"})
    logs = httpx.get(stack.proxy_url + "/logs/query", headers={"authorization": "Bearer l"})

    assert (metrics.status_code, logs.status_code) == (401, 401)
    assert compared == [(b"m", METRICS_TOKEN.encode()), (b"l", LOGS_TOKEN.encode())]


# --- 4. the stacks: nothing listens beyond loopback ----------------------------------------


@pytest.fixture(scope="module")
def compose_services(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """docker-compose.yml resolved by the real Compose CLI (see tests/test_compose.py)."""
    result = run_compose("config", "--format", "json", env_dir=tmp_path_factory.mktemp("env"))
    assert result.returncode == 0, result.stderr
    return services(json.loads(result.stdout))


def _command(service: Mapping[str, Any]) -> list[str]:
    return [*(service.get("entrypoint") or []), *(service.get("command") or [])]


def test_no_compose_service_enables_an_admin_or_lifecycle_api(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    """Ports are published on 127.0.0.1, but every container on the compose network
    reaches every service: Prometheus' and Pushgateway's admin (delete, wipe) and
    lifecycle (quit) APIs stay off. ``docker compose kill -s HUP prometheus`` reloads."""
    enabled = {
        name: flag
        for name, service in compose_services.items()
        for flag in _command(service)
        if "enable-admin-api" in flag or "enable-lifecycle" in flag
    }

    assert compose_services["prometheus"]["command"], "prometheus runs with no flags at all"
    assert enabled == {}


def test_compose_grafana_has_no_anonymous_access_and_no_sign_up(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    """The admin password alone guards Grafana: nobody gets in without an account,
    and nobody can make themselves one."""
    environment = compose_services["grafana"]["environment"]

    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert environment["GF_USERS_ALLOW_SIGN_UP"] == "false"


def test_compose_alertmanager_opens_no_gossip_listener(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    """Alertmanager's cluster port (9094, all interfaces) is off: one replica needs no peers."""
    assert "--cluster.listen-address=" in _command(compose_services["alertmanager"])


def test_compose_victoriametrics_opens_no_listener_besides_http(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    """Graphite, InfluxDB and OpenTSDB listeners would be unpublished ports that accept
    writes from the whole compose network; only ``-httpListenAddr`` may be set."""
    listeners = [
        flag.split("=", 1)[0]
        for flag in _command(compose_services["victoriametrics"])
        if "ListenAddr" in flag
    ]

    assert listeners == ["-httpListenAddr"]


@dataclass(frozen=True)
class Launched:
    """One service as ``ccobs stack up`` would start it."""

    binary: str
    args: tuple[str, ...]
    env: Mapping[str, str]


LISTEN_FLAGS = ("--web.listen-address", "-httpListenAddr", "cfg:server.http_addr")


def listen_hosts(launched: Launched) -> list[str]:
    """The host part of every listen-address flag of a command line."""
    hosts = []
    for arg in launched.args:
        flag, _, value = arg.partition("=")
        if flag in LISTEN_FLAGS:
            hosts.append(value.rpartition(":")[0] if flag != "cfg:server.http_addr" else value)
    return hosts


@pytest.fixture(scope="module")
def native_commands(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Launched]:
    """The command line and environment of every service ``Stack.up()`` starts,
    Grafana included, captured instead of run: no binary is needed and nothing starts."""
    state_dir = tmp_path_factory.mktemp("native-stack")
    launched: dict[str, Launched] = {}

    def capture(
        binary: str,
        make_args: Callable[[Path, int], Sequence[str]],
        *,
        workdir: Path,
        ready_path: str,
        name: str,
        port: int = 0,
        env: Mapping[str, str] | None = None,
        **_: Any,
    ) -> ServerProcess:
        workdir.mkdir(parents=True, exist_ok=True)
        chosen = port or 20000 + len(launched)
        args = tuple(make_args(workdir, chosen))
        launched[name] = Launched(binary, args, dict(env or {}))
        return ServerProcess(binary, args, workdir=workdir, port=chosen, ready_path=ready_path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(native, "start_server", capture)
        patch.setattr(shutil, "which", lambda name: f"/opt/fake/bin/{name}")
        config = StackConfig(
            state_dir=state_dir,
            ports=StackPorts.free(),
            mixin_dir=ROOT,
            proxy_target=dead_url().removeprefix("http://"),
        )
        Stack(config).up()
    # The state file names pids that were never started: no `down` may act on it.
    (state_dir / native.STATE_FILE).unlink()
    return launched


def test_native_stack_starts_every_service_on_loopback_only(
    native_commands: dict[str, Launched],
) -> None:
    """Each service has a listen address, and it is 127.0.0.1: ``ccobs stack up``
    exposes nothing to the network, whatever the machine's firewall says."""
    assert set(native_commands) == set(native.SERVICES)
    hosts = {name: listen_hosts(launched) for name, launched in native_commands.items()}

    assert hosts == {name: [LOOPBACK] for name in native.SERVICES}
    assert [n for n, launched in native_commands.items() if "0.0.0.0" in str(launched.args)] == []


def test_native_alertmanager_opens_no_gossip_listener(
    native_commands: dict[str, Launched],
) -> None:
    """Gossip would listen on 0.0.0.0:9094, the one port a listen address does not cover."""
    assert "--cluster.listen-address=" in native_commands["alertmanager"].args


def test_native_stack_enables_no_admin_api_and_lifecycle_only_on_loopback(
    native_commands: dict[str, Launched],
) -> None:
    """Prometheus keeps its lifecycle API for ``/-/reload`` after a rules rebuild, on a
    loopback listener; no service serves an admin API (TSDB delete, Pushgateway wipe)."""
    admin = [
        n for n, launched in native_commands.items() if "--web.enable-admin-api" in launched.args
    ]
    lifecycle = [
        n for n, launched in native_commands.items() if "--web.enable-lifecycle" in launched.args
    ]

    assert admin == []
    assert lifecycle == ["prometheus"]
    assert listen_hosts(native_commands["prometheus"]) == [LOOPBACK]


def test_native_grafana_has_no_anonymous_access_no_sign_up_and_no_password_in_argv(
    native_commands: dict[str, Launched],
) -> None:
    """As in compose; the generated admin password goes by environment, since every
    local user can read a process's command line."""
    grafana = native_commands["grafana"]
    password = grafana.env["GF_SECURITY_ADMIN_PASSWORD"]

    assert "cfg:auth.anonymous.enabled=false" in grafana.args
    assert "cfg:users.allow_sign_up=false" in grafana.args
    assert len(password) >= 16
    assert password not in " ".join(grafana.args)
