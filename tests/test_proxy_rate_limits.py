"""Rate-limit headroom through the proxy, driven by the official anthropic and openai SDKs.

Two upstreams, both real HTTP servers on loopback: the mock (its windows
count down and answer 429), and a "captured" upstream that answers with the
header sets the vendors document (``rate_limit_headers``), so the gauges can
be compared with known values, and garbage can be sent on purpose.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from asgi_server import serve_asgi
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from proxy_harness import ProxyUnderTest, running_proxy
from rate_limit_headers import (
    ANTHROPIC,
    ANTHROPIC_VALUES,
    GARBAGE,
    GARBAGE_FIELDS,
    OPENAI,
    OPENAI_VALUES,
    UNIFIED,
    UNIFIED_VALUES,
)

from ccobs.demo.upstream import Delay, UpstreamConfig, create_upstream_app

MODEL = "claude-sonnet-4-6"
OPENAI_MODEL = "gpt-4.1-mini"
FAST = UpstreamConfig(
    seed=3, ttft=Delay(0.0), latency=Delay(0.0), inter_token_delay=0.0, output_tokens=(5, 20)
)
GAUGES = {
    "limit": "ccproxy_ratelimit_limit",
    "remaining": "ccproxy_ratelimit_remaining",
    "reset": "ccproxy_ratelimit_reset_timestamp_seconds",
}
MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": MODEL,
    "content": [{"type": "text", "text": "hi"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 1},
}
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": OPENAI_MODEL,
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


@pytest.fixture
def captured(isolated_logging: None) -> Iterator[tuple[ProxyUnderTest, dict[str, Any]]]:
    """The proxy in front of an upstream answering with whatever headers the test sets."""
    answer: dict[str, Any] = {"headers": {}, "status": 200}
    app = FastAPI()

    @app.post("/v1/messages")
    async def messages() -> JSONResponse:
        body = MESSAGE if answer["status"] == 200 else {"type": "error", "error": {}}
        return JSONResponse(body, status_code=answer["status"], headers=answer["headers"])

    @app.post("/v1/chat/completions")
    async def chat() -> JSONResponse:
        return JSONResponse(COMPLETION, headers=answer["headers"])

    with serve_asgi(app) as upstream, running_proxy(upstream.url) as proxy:
        yield proxy, answer


@pytest.fixture
def mocked(isolated_logging: None) -> Iterator[ProxyUnderTest]:
    """The proxy in front of the mock upstream."""
    with serve_asgi(create_upstream_app(FAST)) as upstream, running_proxy(upstream.url) as proxy:
        yield proxy


def claude(proxy: ProxyUnderTest, **options: Any) -> anthropic.Anthropic:
    options.setdefault("api_key", "sk-ant-api03-test")
    return anthropic.Anthropic(base_url=proxy.url, max_retries=0, **options)


def ask(client: anthropic.Anthropic, **headers: str) -> Any:
    return client.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=20,
        messages=[{"role": "user", "content": "hello"}],
        extra_headers=headers or None,
    )


def samples(proxy: ProxyUnderTest, name: str, label: str, **labels: str) -> dict[str, float]:
    """``name``'s samples (zeros included) whose labels include ``labels``, by ``label``."""
    return {
        sample.labels[label]: sample.value
        for family in proxy.registry.collect()
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    }


def gauges(proxy: ProxyUnderTest, api: str) -> dict[tuple[str, str], float]:
    """(limit kind, limit|remaining|reset) -> value; each test sends one key, so one alias."""
    values = {}
    for what, name in GAUGES.items():
        for kind, value in samples(proxy, name, "limit", api=api).items():
            values[(kind, what)] = value
    return values


def windows(proxy: ProxyUnderTest) -> dict[tuple[str, str], float]:
    values = {}
    for what, name in (
        ("utilization", "ccproxy_ratelimit_unified_utilization_ratio"),
        ("reset", "ccproxy_ratelimit_unified_reset_timestamp_seconds"),
    ):
        for window, value in samples(proxy, name, "window").items():
            values[(window, what)] = value
    return values


def rejected(proxy: ProxyUnderTest) -> list[str]:
    counts = proxy.by_label("ccproxy_ratelimit_values_rejected_total", "field")
    return sorted(field for field, count in counts.items() for _ in range(int(count)))


# -- the vendors' documented header sets -------------------------------------------------------


def test_anthropic_gauges_equal_what_the_documented_headers_said(captured: Any) -> None:
    proxy, answer = captured
    answer["headers"] = ANTHROPIC

    ask(claude(proxy))

    assert gauges(proxy, "anthropic") == pytest.approx(ANTHROPIC_VALUES)


def test_openai_gauges_equal_what_the_documented_headers_said(captured: Any) -> None:
    proxy, answer = captured
    answer["headers"] = OPENAI
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-test", max_retries=0)

    before = time.time()
    client.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "x"}])
    after = time.time()

    values = gauges(proxy, "openai")
    expected = dict(OPENAI_VALUES)
    for kind, duration in (("requests", 1.0), ("tokens", 360.0)):
        # A duration counted from the moment the answer came.
        reset_at = values.pop((kind, "reset"))
        del expected[(kind, "reset")]
        assert before + duration <= reset_at <= after + duration, kind
    assert values == expected


def test_subscription_gauges_equal_what_the_unified_headers_said(captured: Any) -> None:
    proxy, answer = captured
    answer["headers"] = UNIFIED

    ask(claude(proxy, api_key=None, auth_token="sk-ant-oat01-test"))

    assert windows(proxy) == UNIFIED_VALUES
    status = proxy.by_label("ccproxy_ratelimit_unified_status", "status")
    assert status == {"allowed_warning": 1.0}


def test_the_headers_reach_the_client_untouched(captured: Any) -> None:
    proxy, answer = captured
    answer["headers"] = {**ANTHROPIC, **UNIFIED}

    response = ask(claude(proxy))

    assert {name: response.headers[name] for name in answer["headers"]} == answer["headers"]


def test_the_headers_of_an_error_answer_are_read_too(captured: Any) -> None:
    proxy, answer = captured
    answer.update(headers={**ANTHROPIC, "retry-after": "1"}, status=429)

    with pytest.raises(anthropic.RateLimitError) as raised:
        ask(claude(proxy))

    assert raised.value.response.headers["retry-after"] == "1"
    assert gauges(proxy, "anthropic") == pytest.approx(ANTHROPIC_VALUES)


def test_garbage_headers_change_no_gauge_are_counted_and_reach_the_client(captured: Any) -> None:
    proxy, answer = captured
    answer["headers"] = ANTHROPIC
    ask(claude(proxy))
    answer["headers"] = GARBAGE

    response = ask(claude(proxy))

    assert response.parse().content[0].text == "hi"
    assert {name: response.headers[name] for name in GARBAGE} == GARBAGE
    assert gauges(proxy, "anthropic") == pytest.approx(ANTHROPIC_VALUES)
    assert rejected(proxy) == GARBAGE_FIELDS


# -- the mock: windows that count down, and a 429 when one is spent ----------------------------


def test_the_remaining_gauge_follows_the_mocks_window_down(mocked: ProxyUnderTest) -> None:
    client = claude(mocked)

    said = [float(ask(client).headers["anthropic-ratelimit-requests-remaining"]) for _ in range(3)]

    assert said == [3999.0, 3998.0, 3997.0]
    assert gauges(mocked, "anthropic")[("requests", "remaining")] == 3997.0


def test_openai_chat_and_responses_answers_set_the_openai_gauges(mocked: ProxyUnderTest) -> None:
    client = openai.OpenAI(base_url=mocked.url + "/v1", api_key="sk-test", max_retries=0)

    client.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "x"}])
    raw = client.responses.with_raw_response.create(model=OPENAI_MODEL, input="x")

    said = float(raw.headers["x-ratelimit-remaining-requests"])
    assert said == 3998.0
    assert gauges(mocked, "openai")[("requests", "remaining")] == said


def test_a_spent_window_is_a_429_the_sdk_sees_with_retry_after(mocked: ProxyUnderTest) -> None:
    client = claude(mocked)
    for _ in range(2):
        ask(client, **{"x-mock-ratelimit-requests": "2"})

    with pytest.raises(anthropic.RateLimitError) as raised:
        ask(client)

    retry_after = int(raised.value.response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert gauges(mocked, "anthropic")[("requests", "remaining")] == 0.0
    mocked.settle(3)
    assert mocked.errors() == {"rate_limited": 1.0}


def test_a_subscription_client_sees_its_windows_fill(mocked: ProxyUnderTest) -> None:
    client = claude(mocked, api_key=None, auth_token="sk-ant-oat01-test")

    response = ask(client)

    said = float(response.headers["anthropic-ratelimit-unified-5h-utilization"])
    assert said > 0
    assert windows(mocked)[("5h", "utilization")] == said
    status = mocked.by_label("ccproxy_ratelimit_unified_status", "status")
    assert status == {"allowed": 1.0}


def test_a_streamed_answer_sets_the_gauges_before_its_first_byte(mocked: ProxyUnderTest) -> None:
    client = claude(mocked)

    with client.messages.stream(
        model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        said = float(stream.response.headers["anthropic-ratelimit-requests-remaining"])
        assert gauges(mocked, "anthropic")[("requests", "remaining")] == said
        stream.until_done()
