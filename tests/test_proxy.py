"""The proxy, driven by the official anthropic and openai SDKs, against the mock upstream.

Every server here is real (uvicorn on loopback); the metrics are read back
from the proxy's own registry, the access log from its JSON log lines.
"""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
import pytest
from asgi_server import serve_asgi
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, generate_latest

from ccobs.demo.upstream import (
    Delay,
    MockUpstream,
    UpstreamConfig,
    create_upstream_app,
    get_upstream,
)
from ccobs.logging import configure_logging
from ccobs.metrics import PrometheusMetrics
from ccobs.pricing import PriceTable
from ccobs.proxy.app import create_proxy_app
from ccobs.proxy.config import ProxyConfig
from ccobs.settings import ObservabilitySettings

MODEL = "claude-sonnet-4-6"
OPENAI_MODEL = "gpt-4.1-mini"
FAST = UpstreamConfig(
    seed=11, ttft=Delay(0.01), latency=Delay(0.01), inter_token_delay=0.0005, output_tokens=(5, 40)
)
ANTHROPIC_KEY = "sk-ant-api03-" + "Zx9" * 30
OPENAI_KEY = "sk-proj-" + "Qw7" * 30
BEARER = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu.ZmFrZXNpZ25hdHVyZQ"
COOKIE_SECRET = "session=9f8e7d6c5b4a39281706f5e4d3c2b1a0"


@dataclass
class Stack:
    proxy_url: str
    upstream: MockUpstream
    registry: CollectorRegistry
    logs: io.StringIO

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def tokens(self, token_type: str, model: str = MODEL) -> float:
        return self.value(
            "ccproxy_tokens_total", type=token_type, model=model, service_type="proxy_service"
        )

    def errors(self, error_type: str, endpoint: str = "/v1/messages", model: str = MODEL) -> float:
        return self.value(
            "ccproxy_errors_total",
            error_type=error_type,
            endpoint=endpoint,
            model=model,
            service_type="proxy_service",
        )

    def requests(self, status: str, endpoint: str = "/v1/messages", model: str = MODEL) -> float:
        return self.value(
            "ccproxy_requests_total",
            method="POST",
            endpoint=endpoint,
            model=model,
            status=status,
            service_type="proxy_service",
        )

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs.getvalue().splitlines() if line]

    def access_lines(self) -> list[dict[str, Any]]:
        return [
            line
            for line in self.log_lines()
            if line["event"] in ("request_success", "request_error")
        ]

    def settle(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``count`` requests are recorded and logged: both follow the last byte,
        the access-log line just after the metrics."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            total = sum(
                s.value
                for f in self.registry.collect()
                for s in f.samples
                if s.name == "ccproxy_requests_total"
            )
            if total >= count and len(self.access_lines()) >= count:
                return
            time.sleep(0.01)


def start_stack(upstream_url: str | None = None, **proxy_settings: Any) -> Iterator[Stack]:
    """Mock upstream and proxy on loopback; ``upstream_url`` points the proxy elsewhere."""
    logs = io.StringIO()
    configure_logging("INFO", "json", stream=logs)
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    upstream_app = create_upstream_app(FAST)
    with serve_asgi(upstream_app) as upstream:
        config = ProxyConfig(upstream_url=upstream_url or upstream.url, **proxy_settings)
        app = create_proxy_app(config, metrics=metrics, settings=ObservabilitySettings())
        with serve_asgi(app, lifespan="on") as proxy:
            yield Stack(proxy.url, get_upstream(upstream_app), registry, logs)


@pytest.fixture
def stack(isolated_logging: None) -> Iterator[Stack]:
    yield from start_stack()


@pytest.fixture
def claude(stack: Stack) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(base_url=stack.proxy_url, api_key=ANTHROPIC_KEY, max_retries=0)
    yield client
    client.close()


@pytest.fixture
def gpt(stack: Stack) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=stack.proxy_url + "/v1", api_key=OPENAI_KEY, max_retries=0)
    yield client
    client.close()


def request_body(*, stream: bool = False) -> dict[str, Any]:
    """A minimal Messages API request body, for tests that talk HTTP without an SDK."""
    return {
        "model": MODEL,
        "max_tokens": 50,
        "stream": stream,
        "messages": [{"role": "user", "content": "x"}],
    }


def ask(client: anthropic.Anthropic, **kwargs: Any) -> anthropic.types.Message:
    return client.messages.create(
        model=kwargs.pop("model", MODEL),
        max_tokens=200,
        messages=[{"role": "user", "content": "Say something about observability."}],
        **kwargs,
    )


# -- Anthropic ----------------------------------------------------------------------------


def test_anthropic_sdk_call_succeeds_and_tokens_match_its_usage(
    stack: Stack, claude: anthropic.Anthropic
) -> None:
    message = ask(claude)
    stack.settle(1)

    usage = message.usage
    assert message.content[0].type == "text"
    assert stack.tokens("input") == usage.input_tokens
    assert stack.tokens("output") == usage.output_tokens
    assert stack.tokens("cache_read") == (usage.cache_read_input_tokens or 0)
    assert stack.tokens("cache_write") == (usage.cache_creation_input_tokens or 0)
    assert stack.requests("200") == 1


def test_anthropic_sdk_stream_succeeds_and_tokens_match_its_usage(
    stack: Stack, claude: anthropic.Anthropic
) -> None:
    with claude.messages.stream(
        model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "Stream, please."}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    stack.settle(1)

    assert text
    assert stack.tokens("output") == final.usage.output_tokens
    assert stack.tokens("input") == final.usage.input_tokens
    assert (
        stack.value(
            "ccproxy_time_to_first_token_seconds_count",
            model=MODEL,
            endpoint="/v1/messages",
            service_type="proxy_service",
        )
        == 1
    )


def test_cost_is_the_price_table_applied_to_the_tokens(
    stack: Stack, claude: anthropic.Anthropic
) -> None:
    usage = ask(claude).usage
    stack.settle(1)

    cost = PriceTable.default().cost(
        MODEL,
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_input_tokens or 0,
        usage.cache_creation_input_tokens or 0,
    )
    assert cost is not None

    def recorded(cost_type: str) -> float:
        return stack.value(
            "ccproxy_cost_usd_total", model=MODEL, cost_type=cost_type, service_type="proxy_service"
        )

    assert recorded("input") == pytest.approx(cost.input)
    assert recorded("output") == pytest.approx(cost.output)
    assert recorded("cache") == pytest.approx(cost.cache)
    assert recorded("total") == pytest.approx(cost.total)


def test_metrics_hold_exactly_what_was_sent(stack: Stack, claude: anthropic.Anthropic) -> None:
    sent: dict[str, int] = {}
    totals = {"input": 0, "output": 0}
    for i in range(12):
        model = (MODEL, "claude-haiku-4-5", "claude-opus-4-6")[i % 3]
        if i % 2:
            with claude.messages.stream(
                model=model, max_tokens=100, messages=[{"role": "user", "content": f"n{i}"}]
            ) as stream:
                usage = stream.get_final_message().usage
        else:
            usage = ask(claude, model=model).usage
        sent[model] = sent.get(model, 0) + 1
        totals["input"] += usage.input_tokens
        totals["output"] += usage.output_tokens
    stack.settle(12)

    for model, count in sent.items():
        assert stack.requests("200", model=model) == count
    for token_type, total in totals.items():
        recorded = sum(stack.tokens(token_type, model) for model in sent)
        assert recorded == total


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        ("429", anthropic.RateLimitError, "rate_limited"),
        ("529", anthropic.InternalServerError, "overloaded"),
        ("500", anthropic.InternalServerError, "upstream_500"),
        ("400", anthropic.BadRequestError, "upstream_400"),
    ],
)
def test_upstream_error_reaches_the_client_and_is_counted_once(
    stack: Stack,
    claude: anthropic.Anthropic,
    status: str,
    error_class: type[Exception],
    error_type: str,
) -> None:
    with pytest.raises(error_class) as excinfo:
        ask(claude, extra_headers={"x-mock-status": status})
    stack.settle(1)

    assert str(getattr(excinfo.value, "status_code", "")) == status
    body = getattr(excinfo.value, "body", None)
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert stack.requests(status) == 1
    assert stack.errors(error_type) == 1
    errors = [
        s for f in stack.registry.collect() for s in f.samples if s.name == "ccproxy_errors_total"
    ]
    assert sum(s.value for s in errors) == 1


def test_rate_limit_headers_pass_through(stack: Stack) -> None:
    response = httpx.post(
        stack.proxy_url + "/v1/messages",
        json=request_body(),
        headers={"x-mock-status": "429"},
    )

    assert response.status_code == 429
    assert response.headers.get("retry-after") is not None


def test_malformed_json_is_a_400_from_the_proxy_in_anthropic_form(stack: Stack) -> None:
    response = httpx.post(
        stack.proxy_url + "/v1/messages",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    stack.settle(1)

    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert len(stack.upstream.decisions) == 0
    assert stack.errors("invalid_request", model="unknown") == 1


def test_missing_model_is_a_400_from_the_proxy(stack: Stack) -> None:
    response = httpx.post(stack.proxy_url + "/v1/messages", json={"max_tokens": 5, "messages": []})

    assert response.status_code == 400
    assert "model" in response.json()["error"]["message"]


def test_openai_endpoint_errors_in_openai_form(stack: Stack) -> None:
    response = httpx.post(stack.proxy_url + "/v1/chat/completions", content=b"[1, 2")

    assert response.status_code == 400
    assert set(response.json()["error"]) >= {"message", "type"}


def test_oversized_body_is_refused_before_the_upstream(isolated_logging: None) -> None:
    for stack in start_stack(max_body_bytes=1024):
        response = httpx.post(stack.proxy_url + "/v1/messages", content=b"x" * 4096)
        stack.settle(1)

        assert response.status_code == 413
        assert response.json()["error"]["type"] == "request_too_large"
        assert len(stack.upstream.decisions) == 0


# -- OpenAI -------------------------------------------------------------------------------


def test_openai_sdk_call_succeeds_and_tokens_match_its_usage(
    stack: Stack, gpt: openai.OpenAI
) -> None:
    completion = gpt.chat.completions.create(
        model=OPENAI_MODEL, messages=[{"role": "user", "content": "hello"}]
    )
    stack.settle(1)

    usage = completion.usage
    assert usage is not None
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    assert stack.tokens("input", OPENAI_MODEL) == usage.prompt_tokens - (cached or 0)
    assert stack.tokens("cache_read", OPENAI_MODEL) == (cached or 0)
    assert stack.tokens("output", OPENAI_MODEL) == usage.completion_tokens
    assert stack.requests("200", "/v1/chat/completions", OPENAI_MODEL) == 1


def test_openai_sdk_stream_with_usage_is_counted(stack: Stack, gpt: openai.OpenAI) -> None:
    stream = gpt.chat.completions.create(
        model=OPENAI_MODEL,
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    stack.settle(1)

    usage = chunks[-1].usage
    assert usage is not None
    assert stack.tokens("output", OPENAI_MODEL) == usage.completion_tokens
    assert (
        stack.value(
            "ccproxy_time_to_first_token_seconds_count",
            model=OPENAI_MODEL,
            endpoint="/v1/chat/completions",
            service_type="proxy_service",
        )
        == 1
    )


def test_openai_rate_limit_reaches_the_sdk(stack: Stack, gpt: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        gpt.chat.completions.create(
            model=OPENAI_MODEL,
            messages=[{"role": "user", "content": "hello"}],
            extra_headers={"x-mock-status": "429"},
        )
    stack.settle(1)

    assert stack.errors("rate_limited", "/v1/chat/completions", OPENAI_MODEL) == 1


# -- unpriced models, faults, disconnects ------------------------------------------------------


def test_unknown_model_is_proxied_counted_and_flagged_unpriced(
    stack: Stack, claude: anthropic.Anthropic
) -> None:
    ask(claude, model="claude-imaginary-9")
    ask(claude, model="claude-imaginary-9")
    stack.settle(2)

    assert stack.tokens("output", "claude-imaginary-9") > 0
    assert (
        stack.value(
            "ccproxy_unpriced_requests_total",
            model="claude-imaginary-9",
            service_type="proxy_service",
        )
        == 2
    )
    assert "ccproxy_cost_usd_total{" not in generate_latest(stack.registry).decode()
    warnings = [line for line in stack.log_lines() if line["event"] == "model_unpriced"]
    assert len(warnings) == 1


def test_upstream_down_is_a_502_counted_as_connection_error(isolated_logging: None) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for stack in start_stack(upstream_url=dead):
        client = anthropic.Anthropic(base_url=stack.proxy_url, api_key="k", max_retries=0)
        with pytest.raises(anthropic.InternalServerError) as excinfo:
            ask(client)
        stack.settle(1)

        assert excinfo.value.status_code == 502
        assert stack.errors("upstream_connection_error") == 1


def test_upstream_timeout_is_a_504_counted_as_timeout(isolated_logging: None) -> None:
    for stack in start_stack(read_timeout=0.3):
        response = httpx.post(
            stack.proxy_url + "/v1/messages",
            json=request_body(),
            headers={"x-mock-fault": "timeout"},
            timeout=10,
        )
        stack.settle(1)

        assert response.status_code == 504
        assert stack.errors("upstream_timeout") == 1


def test_stream_dropped_by_upstream_ends_with_an_error_event_counted_once(
    stack: Stack,
) -> None:
    with httpx.stream(
        "POST",
        stack.proxy_url + "/v1/messages",
        json=request_body(stream=True),
        headers={"x-mock-fault": "drop"},
    ) as response:
        body = response.read().decode()
    stack.settle(1)

    assert "event: error" in body
    assert stack.errors("upstream_stream_error") == 1
    assert stack.requests("200") == 1


def test_client_disconnect_mid_stream_is_counted_and_upstream_released(stack: Stack) -> None:
    with httpx.stream(
        "POST",
        stack.proxy_url + "/v1/messages",
        json=request_body(stream=True),
        headers={"x-mock-output-tokens": "4000", "x-mock-ttft-ms": "1"},
    ) as response:
        next(response.iter_raw())
    # Leaving the block closes the connection with the stream still running.
    stack.settle(1)

    assert stack.errors("client_disconnect") == 1
    deadline = time.monotonic() + 5
    while stack.upstream.active_streams and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stack.upstream.active_streams == 0
    assert stack.value("ccproxy_active_requests") == 0


# -- access log and secrets ---------------------------------------------------------------


def test_every_request_has_exactly_one_access_log_line(
    stack: Stack, claude: anthropic.Anthropic
) -> None:
    ask(claude)
    with pytest.raises(anthropic.RateLimitError):
        ask(claude, extra_headers={"x-mock-status": "429"})
    with claude.messages.stream(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "s"}]
    ) as stream:
        stream.get_final_message()
    stack.settle(3)

    lines = stack.access_lines()
    assert len(lines) == 3
    assert len({line["request_id"] for line in lines}) == 3
    streamed = [line for line in lines if line["streaming"]]
    assert len(streamed) == 1
    for field in ("method", "endpoint", "model", "status", "duration_ms", "output_tokens"):
        assert field in streamed[0], field
    assert streamed[0]["ttft_ms"] > 0
    assert streamed[0]["cost_total_usd"] > 0
    assert [line["error_type"] for line in lines if line["status"] == 429] == ["rate_limited"]


README_LINE_KEYS = [
    "timestamp", "level", "logger", "event", "method", "path", "model", "streaming", "ttft_ms",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "cost_input_usd", "cost_output_usd", "cost_cache_usd", "cost_total_usd",
    "stop_reason", "team", "key_alias", "key_fingerprint", "client_app",
    "upstream_request_id", "time_per_output_token_ms",
    "service_type", "endpoint", "status", "duration_ms", "request_id",
]  # fmt: skip
"""The keys of the example line in docs/proxy.md, in its order."""


def test_tokens_and_cost_are_recorded_once_in_the_metrics_and_once_on_the_line(
    stack: Stack, claude: anthropic.Anthropic
) -> None:
    with claude.messages.stream(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "once"}]
    ) as stream:
        usage = stream.get_final_message().usage
    stack.settle(1)

    # The proxy fills the request's record once; the middleware feeds both outputs from it.
    assert stack.tokens("input") == usage.input_tokens
    assert stack.tokens("output") == usage.output_tokens
    cost = PriceTable.default().cost(
        MODEL,
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_input_tokens or 0,
        usage.cache_creation_input_tokens or 0,
    )
    assert cost is not None
    recorded = stack.value(
        "ccproxy_cost_usd_total", model=MODEL, cost_type="total", service_type="proxy_service"
    )
    assert recorded == pytest.approx(cost.total)
    raw = [line for line in stack.logs.getvalue().splitlines() if "request_success" in line]
    assert len(raw) == 1
    for key in ("input_tokens", "output_tokens", "cost_total_usd", "ttft_ms", "model"):
        assert raw[0].count(f'"{key}"') == 1, key
    line = json.loads(raw[0])
    assert list(line) == README_LINE_KEYS
    assert (line["input_tokens"], line["output_tokens"]) == (
        usage.input_tokens,
        usage.output_tokens,
    )
    assert line["cost_total_usd"] == pytest.approx(cost.total)


def test_auth_headers_reach_the_upstream(isolated_logging: None) -> None:
    seen: dict[str, str] = {}
    echo = FastAPI()

    @echo.post("/v1/messages")
    async def record(request: Request) -> dict[str, Any]:
        seen.update(request.headers)
        return {"usage": {"input_tokens": 1, "output_tokens": 1}}

    with serve_asgi(echo) as upstream:
        for stack in start_stack(upstream_url=upstream.url):
            httpx.post(
                stack.proxy_url + "/v1/messages",
                json={"model": MODEL},
                headers={"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"},
            )

    assert seen["x-api-key"] == ANTHROPIC_KEY
    assert seen["anthropic-version"] == "2023-06-01"
    assert "x-request-id" in seen


def test_secrets_appear_in_no_log_line_label_or_error_body(stack: Stack) -> None:
    headers = {
        "x-api-key": ANTHROPIC_KEY,
        "authorization": f"Bearer {BEARER}",
        "cookie": COOKIE_SECRET,
        "openai-api-key": OPENAI_KEY,
    }
    bodies = []
    for path, extra in (
        ("/v1/messages", {}),
        ("/v1/messages", {"x-mock-status": "500"}),
        ("/v1/chat/completions", {}),
    ):
        response = httpx.post(
            stack.proxy_url + path,
            json={
                "model": MODEL,
                "max_tokens": 5,
                "messages": [{"role": "user", "content": f"my key is {ANTHROPIC_KEY}"}],
            },
            headers={**headers, **extra},
        )
        bodies.append(response.text)
    bodies.append(httpx.post(stack.proxy_url + "/v1/messages", content=b"{", headers=headers).text)
    stack.settle(4)

    exposition = generate_latest(stack.registry).decode()
    everything = "\n".join([stack.logs.getvalue(), exposition, *bodies[1:]])
    for secret in (ANTHROPIC_KEY, OPENAI_KEY, BEARER, COOKIE_SECRET.split("=")[1]):
        assert secret not in everything
    assert len(stack.access_lines()) == 4
