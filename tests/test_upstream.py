"""The mock upstream is faithful enough that the official SDKs cannot tell it apart.

Every test talks to a real uvicorn on loopback, through the ``anthropic`` and
``openai`` SDKs where a client's view matters, or raw httpx where the wire
format itself is the point.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import anthropic
import httpx
import openai
import pytest
from asgi_server import RunningServer, serve_asgi

from ccobs.demo.upstream import (
    Decision,
    Delay,
    MockUpstream,
    Overrides,
    UpstreamConfig,
    create_upstream_app,
    estimate_prompt_tokens,
    get_upstream,
)

CLAUDE = "claude-sonnet-4-6"
GPT = "gpt-4.1-mini"
FAST = UpstreamConfig(
    seed=42,
    ttft=Delay(0.002),
    latency=Delay(0.002),
    inter_token_delay=0.0002,
    output_tokens=(8, 40),
    cache_hit_share=0.5,
)
MESSAGES: list[Any] = [{"role": "user", "content": "How many tokens is this prompt, roughly?"}]


class Mock:
    """A running mock: where it listens and what it decided."""

    def __init__(self, server: RunningServer, upstream: MockUpstream) -> None:
        self.url = server.url
        self.upstream = upstream

    @property
    def last(self) -> Decision:
        return self.upstream.decisions[-1]

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key="test-key", max_retries=0)

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="test-key", max_retries=0)


@pytest.fixture(scope="module")
def mock() -> Iterator[Mock]:
    app = create_upstream_app(FAST)
    with serve_asgi(app) as server:
        yield Mock(server, get_upstream(app))


@pytest.fixture
def start_mock() -> Iterator[Callable[[UpstreamConfig], Mock]]:
    """Start a mock with a test's own config; all are stopped at teardown."""
    stack: list[Any] = []

    def start(config: UpstreamConfig) -> Mock:
        app = create_upstream_app(config)
        context = serve_asgi(app)
        stack.append(context)
        return Mock(context.__enter__(), get_upstream(app))

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


def anthropic_body(**extra: Any) -> dict[str, Any]:
    return {"model": CLAUDE, "max_tokens": 256, "messages": MESSAGES, **extra}


def openai_body(**extra: Any) -> dict[str, Any]:
    return {"model": GPT, "messages": MESSAGES, **extra}


def sse_events(response: httpx.Response) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) for each event of a streamed response."""
    events: list[tuple[str | None, Any]] = []
    name: str | None = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")
            events.append((name, data if data == "[DONE]" else json.loads(data)))
            name = None
    return events


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# --------------------------------------------------------------------------- Anthropic


def test_health_answers_ok(mock: Mock) -> None:
    response = httpx.get(f"{mock.url}/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_anthropic_message_has_the_real_response_shape(mock: Mock) -> None:
    body = httpx.post(f"{mock.url}/v1/messages", json=anthropic_body()).json()

    assert body["id"].startswith("msg_")
    assert body["type"] == "message"
    assert body["role"] == "assistant"
    assert body["model"] == CLAUDE
    assert body["content"][0]["type"] == "text"
    assert body["content"][0]["text"]
    assert body["stop_reason"] == "end_turn"
    assert body["stop_sequence"] is None
    assert set(body["usage"]) == {
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    }


def test_anthropic_sdk_reports_the_usage_the_mock_decided(mock: Mock) -> None:
    message = mock.anthropic().messages.create(model=CLAUDE, max_tokens=256, messages=MESSAGES)

    decision = mock.last
    assert message.usage.input_tokens == decision.input_tokens
    assert message.usage.output_tokens == decision.output_tokens
    assert message.usage.cache_read_input_tokens == decision.cache_read_tokens
    assert message.usage.cache_creation_input_tokens == decision.cache_write_tokens


def test_anthropic_sdk_stream_helper_assembles_the_final_message(mock: Mock) -> None:
    with mock.anthropic().messages.stream(
        model=CLAUDE, max_tokens=256, messages=MESSAGES
    ) as stream:
        texts = list(stream.text_stream)
        message = stream.get_final_message()

    decision = mock.last
    assert decision.stream
    assert message.content[0].type == "text"
    assert message.content[0].text == "".join(texts)
    assert len(texts) > 1
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == decision.input_tokens
    assert message.usage.output_tokens == decision.output_tokens
    assert message.usage.cache_read_input_tokens == decision.cache_read_tokens
    assert message.usage.cache_creation_input_tokens == decision.cache_write_tokens


def test_anthropic_stream_sends_the_complete_event_sequence_in_order(mock: Mock) -> None:
    with httpx.stream("POST", f"{mock.url}/v1/messages", json=anthropic_body(stream=True)) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)

    names = [name for name, _ in events]
    deltas = names.count("content_block_delta")
    assert deltas >= 2
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)


def test_anthropic_message_start_carries_input_usage_and_one_output_token(mock: Mock) -> None:
    with httpx.stream("POST", f"{mock.url}/v1/messages", json=anthropic_body(stream=True)) as r:
        start = sse_events(r)[0][1]["message"]

    decision = mock.last
    assert start["content"] == []
    assert start["stop_reason"] is None
    assert start["usage"] == {
        "input_tokens": decision.input_tokens,
        "cache_creation_input_tokens": decision.cache_write_tokens,
        "cache_read_input_tokens": decision.cache_read_tokens,
        "output_tokens": 1,
    }


def test_anthropic_message_delta_carries_stop_reason_and_final_output_tokens(
    mock: Mock,
) -> None:
    with httpx.stream("POST", f"{mock.url}/v1/messages", json=anthropic_body(stream=True)) as r:
        events = dict(sse_events(r))

    assert events["message_delta"]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events["message_delta"]["usage"] == {"output_tokens": mock.last.output_tokens}


def test_output_is_capped_by_max_tokens(mock: Mock) -> None:
    message = mock.anthropic().messages.create(
        model=CLAUDE,
        max_tokens=5,
        messages=MESSAGES,
        extra_headers={"x-mock-output-tokens": "50"},
    )

    assert message.usage.output_tokens == 5
    assert message.stop_reason == "max_tokens"


def test_output_tokens_header_sets_the_output_length(mock: Mock) -> None:
    message = mock.anthropic().messages.create(
        model=CLAUDE, max_tokens=256, messages=MESSAGES, extra_headers={"x-mock-output-tokens": "7"}
    )

    block = message.content[0]
    assert message.usage.output_tokens == 7
    assert isinstance(block, anthropic.types.TextBlock)
    assert len(block.text.split()) == 7


def test_token_counter_returns_the_estimate_without_a_decision(mock: Mock) -> None:
    decided = len(mock.upstream.decisions)

    count = mock.anthropic().messages.count_tokens(model=CLAUDE, messages=MESSAGES)

    assert count.input_tokens == estimate_prompt_tokens({"messages": MESSAGES})
    assert len(mock.upstream.decisions) == decided


def test_response_carries_vendor_request_id_and_rate_limit_headers(mock: Mock) -> None:
    response = httpx.post(f"{mock.url}/v1/messages", json=anthropic_body())

    assert response.headers["request-id"].startswith("req_")
    assert int(response.headers["anthropic-ratelimit-requests-remaining"]) > 0


# --------------------------------------------------------------------------- OpenAI


def test_openai_sdk_reports_the_usage_the_mock_decided(mock: Mock) -> None:
    completion = mock.openai().chat.completions.create(model=GPT, messages=MESSAGES)

    decision = mock.last
    usage = completion.usage
    assert completion.object == "chat.completion"
    assert completion.model == GPT
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert usage is not None
    assert usage.prompt_tokens == decision.prompt_tokens
    assert usage.completion_tokens == decision.output_tokens
    assert usage.total_tokens == decision.prompt_tokens + decision.output_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == decision.cache_read_tokens


def test_openai_stream_ends_with_a_usage_chunk_when_asked(mock: Mock) -> None:
    chunks = list(
        mock.openai().chat.completions.create(
            model=GPT, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )

    decision = mock.last
    final = chunks[-1]
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert final.choices == []
    assert final.usage is not None
    assert final.usage.prompt_tokens == decision.prompt_tokens
    assert final.usage.completion_tokens == decision.output_tokens
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"
    text = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    assert len(text.split()) == decision.output_tokens


def test_openai_stream_without_include_usage_has_no_usage_chunk(mock: Mock) -> None:
    chunks = list(mock.openai().chat.completions.create(model=GPT, messages=MESSAGES, stream=True))

    assert all(chunk.choices for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_openai_stream_terminates_with_done(mock: Mock) -> None:
    with httpx.stream(
        "POST", f"{mock.url}/v1/chat/completions", json=openai_body(stream=True)
    ) as response:
        events = sse_events(response)

    assert events[-1] == (None, "[DONE]")
    assert events[0][1]["choices"][0]["delta"]["role"] == "assistant"


def test_openai_reports_cached_tokens_but_never_cache_writes() -> None:
    upstream = MockUpstream(UpstreamConfig(seed=1, cache_hit_share=0.0))

    decision = upstream.decide(
        api="openai", model=GPT, stream=False, prompt_tokens=100, max_tokens=None
    )

    assert decision.cache_write_tokens == 0
    assert decision.input_tokens == 100


def test_openai_stream_options_without_stream_is_rejected(mock: Mock) -> None:
    with pytest.raises(openai.BadRequestError, match="stream_options"):
        mock.openai().chat.completions.create(
            model=GPT, messages=MESSAGES, stream_options={"include_usage": True}
        )


# --------------------------------------------------------------------------- token model


def test_input_tokens_are_about_a_quarter_of_the_prompt_characters() -> None:
    body = {"system": "x" * 40, "messages": [{"role": "user", "content": "y" * 400}]}

    assert estimate_prompt_tokens(body) == 110


def test_input_tokens_count_text_blocks_and_are_at_least_one() -> None:
    blocks = {"messages": [{"role": "user", "content": [{"type": "text", "text": "z" * 8}]}]}

    assert estimate_prompt_tokens(blocks) == 2
    assert estimate_prompt_tokens({"messages": [{"role": "user", "content": ""}]}) == 1


def test_anthropic_cache_hit_reads_the_cached_share_of_the_prompt() -> None:
    upstream = MockUpstream(UpstreamConfig(cache_hit_share=1.0, cached_input_share=0.8))

    decision = upstream.decide(
        api="anthropic", model=CLAUDE, stream=False, prompt_tokens=100, max_tokens=10
    )

    assert (decision.cache_read_tokens, decision.cache_write_tokens) == (80, 0)
    assert decision.input_tokens == 20


def test_anthropic_cache_miss_writes_the_cached_share_of_the_prompt() -> None:
    upstream = MockUpstream(UpstreamConfig(cache_hit_share=0.0, cached_input_share=0.8))

    decision = upstream.decide(
        api="anthropic", model=CLAUDE, stream=False, prompt_tokens=100, max_tokens=10
    )

    assert (decision.cache_read_tokens, decision.cache_write_tokens) == (0, 80)
    assert decision.input_tokens == 20


def test_cache_hit_share_sets_the_share_of_hits() -> None:
    upstream = MockUpstream(UpstreamConfig(seed=3, cache_hit_share=0.25))

    hits = sum(
        upstream.decide(
            api="anthropic", model=CLAUDE, stream=False, prompt_tokens=100, max_tokens=100
        ).cache_read_tokens
        > 0
        for _ in range(2000)
    )

    assert 400 < hits < 600


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "error_type", "sdk_error"),
    [
        (429, "rate_limit_error", anthropic.RateLimitError),
        (529, "overloaded_error", anthropic.OverloadedError),
        (500, "api_error", anthropic.InternalServerError),
        (400, "invalid_request_error", anthropic.BadRequestError),
    ],
)
def test_injected_status_raises_the_matching_anthropic_sdk_error(
    mock: Mock, status: int, error_type: str, sdk_error: type[anthropic.APIStatusError]
) -> None:
    with pytest.raises(sdk_error) as raised:
        mock.anthropic().messages.create(
            model=CLAUDE,
            max_tokens=10,
            messages=MESSAGES,
            extra_headers={"x-mock-status": str(status)},
        )

    assert raised.value.status_code == status
    assert raised.value.body == {
        "type": "error",
        "error": {"type": error_type, "message": raised.value.body["error"]["message"]},  # type: ignore[index]
        "request_id": raised.value.response.headers["request-id"],
    }


@pytest.mark.parametrize(
    ("status", "sdk_error"),
    [
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
        (400, openai.BadRequestError),
    ],
)
def test_injected_status_raises_the_matching_openai_sdk_error(
    mock: Mock, status: int, sdk_error: type[openai.APIStatusError]
) -> None:
    with pytest.raises(sdk_error) as raised:
        mock.openai().chat.completions.create(
            model=GPT, messages=MESSAGES, extra_headers={"x-mock-status": str(status)}
        )

    assert raised.value.status_code == status


def test_openai_errors_use_the_openai_body_shape(mock: Mock) -> None:
    response = httpx.post(
        f"{mock.url}/v1/chat/completions", json=openai_body(), headers={"x-mock-status": "429"}
    )

    assert response.status_code == 429
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "rate_limit_exceeded"


def test_rate_limit_response_says_when_to_retry(mock: Mock) -> None:
    response = httpx.post(
        f"{mock.url}/v1/messages", json=anthropic_body(), headers={"x-mock-status": "429"}
    )

    assert response.status_code == 429
    assert int(response.headers["retry-after"]) == FAST.retry_after
    assert response.headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_status_200_header_forces_success_under_error_injection(
    start_mock: Callable[[UpstreamConfig], Mock],
) -> None:
    failing = start_mock(UpstreamConfig(seed=1, status_500_rate=1.0, latency=Delay(0.0)))

    response = httpx.post(
        f"{failing.url}/v1/messages", json=anthropic_body(), headers={"x-mock-status": "200"}
    )

    assert response.status_code == 200


def test_dropped_response_is_a_protocol_error_for_the_client(mock: Mock) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(
            f"{mock.url}/v1/messages", json=anthropic_body(), headers={"x-mock-fault": "drop"}
        )


def test_anthropic_sdk_sees_a_dropped_response_as_a_connection_error(mock: Mock) -> None:
    with pytest.raises(anthropic.APIConnectionError):
        mock.anthropic().messages.create(
            model=CLAUDE, max_tokens=10, messages=MESSAGES, extra_headers={"x-mock-fault": "drop"}
        )


def test_dropped_stream_is_cut_mid_stream(mock: Mock) -> None:
    seen: list[str] = []

    def read_events() -> None:
        with httpx.stream(
            "POST",
            f"{mock.url}/v1/messages",
            json=anthropic_body(stream=True),
            headers={"x-mock-fault": "drop", "x-mock-output-tokens": "40"},
        ) as response:
            seen.append(str(response.status_code))
            seen.extend(line for line in response.iter_lines() if line.startswith("event: "))

    with pytest.raises(httpx.RemoteProtocolError):
        read_events()

    assert seen[0] == "200"
    assert "event: message_start" in seen
    assert "event: content_block_delta" in seen
    assert "event: message_stop" not in seen


def test_timeout_fault_hangs_until_the_client_gives_up(mock: Mock) -> None:
    started = time.monotonic()

    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{mock.url}/v1/messages",
            json=anthropic_body(),
            headers={"x-mock-fault": "timeout"},
            timeout=0.3,
        )

    assert time.monotonic() - started >= 0.3


def test_timeout_fault_answers_504_once_the_hang_ends(
    start_mock: Callable[[UpstreamConfig], Mock],
) -> None:
    hanging = start_mock(UpstreamConfig(timeout_rate=1.0, timeout_hang=0.05))

    response = httpx.post(f"{hanging.url}/v1/messages", json=anthropic_body())

    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"


def test_invalid_mock_header_is_a_400_naming_the_header(mock: Mock) -> None:
    response = httpx.post(
        f"{mock.url}/v1/messages", json=anthropic_body(), headers={"x-mock-status": "418"}
    )

    assert response.status_code == 400
    assert "x-mock-status" in response.json()["error"]["message"]


def test_request_without_max_tokens_is_an_invalid_request_error(mock: Mock) -> None:
    response = httpx.post(f"{mock.url}/v1/messages", json={"model": CLAUDE, "messages": MESSAGES})

    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }


def test_body_that_is_not_json_is_an_invalid_request_error(mock: Mock) -> None:
    response = httpx.post(f"{mock.url}/v1/messages", content=b"{nope")

    assert response.status_code == 400
    assert response.json()["type"] == "error"


def test_unknown_route_answers_not_found_in_anthropic_shape(mock: Mock) -> None:
    response = httpx.get(f"{mock.url}/v1/nothing-here")

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


# --------------------------------------------------------------------------- timing


def test_stream_events_arrive_as_sent_not_buffered(mock: Mock) -> None:
    arrivals: dict[str, float] = {}
    with httpx.Client() as client:
        started = time.monotonic()
        with client.stream(
            "POST",
            f"{mock.url}/v1/messages",
            json=anthropic_body(stream=True),
            headers={"x-mock-ttft-ms": "400"},
        ) as response:
            for line in response.iter_lines():
                if line.startswith("event: "):
                    arrivals.setdefault(line.removeprefix("event: "), time.monotonic() - started)

    assert arrivals["message_start"] < 0.25
    assert arrivals["content_block_delta"] >= 0.4


def test_latency_header_sets_the_non_streaming_response_time(mock: Mock) -> None:
    started = time.monotonic()

    httpx.post(
        f"{mock.url}/v1/messages", json=anthropic_body(), headers={"x-mock-latency-ms": "250"}
    )

    assert 0.25 <= time.monotonic() - started < 1.0


def test_latency_header_stretches_a_stream_to_that_total_time(mock: Mock) -> None:
    started = time.monotonic()

    with httpx.stream(
        "POST",
        f"{mock.url}/v1/messages",
        json=anthropic_body(stream=True),
        headers={"x-mock-latency-ms": "300", "x-mock-ttft-ms": "0", "x-mock-output-tokens": "40"},
    ) as response:
        response.read()

    assert 0.3 <= time.monotonic() - started < 1.0
    assert mock.last.latency == pytest.approx(0.3)


def test_stream_stops_when_the_client_disconnects(mock: Mock) -> None:
    upstream = mock.upstream
    completed, aborted = upstream.completed_streams, upstream.aborted_streams

    with httpx.stream(
        "POST",
        f"{mock.url}/v1/messages",
        json=anthropic_body(stream=True),
        headers={"x-mock-latency-ms": "20000", "x-mock-output-tokens": "200"},
    ) as response:
        for line in response.iter_lines():
            if line == "event: content_block_delta":
                break

    assert wait_until(lambda: upstream.active_streams == 0)
    assert upstream.aborted_streams == aborted + 1
    assert upstream.completed_streams == completed


# --------------------------------------------------------------------------- decisions


def draw(upstream: MockUpstream, n: int, overrides: Overrides | None = None) -> list[Decision]:
    return [
        upstream.decide(
            api="anthropic",
            model=CLAUDE,
            stream=i % 2 == 0,
            prompt_tokens=500,
            max_tokens=1000,
            overrides=overrides,
        )
        for i in range(n)
    ]


def test_same_seed_gives_the_same_decisions() -> None:
    config = UpstreamConfig(seed=7, error_rate=0.3, drop_rate=0.1, ttft=Delay(0.5, 0.8))

    assert draw(MockUpstream(config), 200) == draw(MockUpstream(config), 200)


def test_different_seeds_give_different_decisions() -> None:
    first = draw(MockUpstream(UpstreamConfig(seed=1, error_rate=0.3)), 50)
    second = draw(MockUpstream(UpstreamConfig(seed=2, error_rate=0.3)), 50)

    assert first != second


def test_an_override_does_not_shift_later_decisions() -> None:
    config = UpstreamConfig(seed=7, error_rate=0.3)
    plain, overridden = MockUpstream(config), MockUpstream(config)
    draw(plain, 1)
    draw(overridden, 1, Overrides(status=429, output_tokens=3, ttft=1.0))

    assert draw(plain, 50) == draw(overridden, 50)


def test_injected_error_rates_are_honoured() -> None:
    upstream = MockUpstream(
        UpstreamConfig(seed=11, status_429_rate=0.2, status_500_rate=0.1, timeout_rate=0.05)
    )

    counts = Counter(decision.status for decision in draw(upstream, 4000))

    assert counts[429] / 4000 == pytest.approx(0.2, abs=0.03)
    assert counts[500] / 4000 == pytest.approx(0.1, abs=0.03)
    assert counts[504] / 4000 == pytest.approx(0.05, abs=0.02)


def test_error_rate_spreads_evenly_over_429_500_and_529() -> None:
    rates = UpstreamConfig(error_rate=0.3, status_429_rate=0.1).fault_rates()

    assert rates["rate_limit"] == pytest.approx(0.2)
    assert rates["server_error"] == pytest.approx(0.1)
    assert rates["overloaded"] == pytest.approx(0.1)


def test_overloaded_fault_is_529_for_anthropic_and_503_for_openai() -> None:
    upstream = MockUpstream(UpstreamConfig(status_529_rate=1.0))

    anthropic_decision = upstream.decide(
        api="anthropic", model=CLAUDE, stream=False, prompt_tokens=1, max_tokens=1
    )
    openai_decision = upstream.decide(
        api="openai", model=GPT, stream=False, prompt_tokens=1, max_tokens=1
    )

    assert (anthropic_decision.status, openai_decision.status) == (529, 503)


def test_seeded_server_decisions_repeat_across_restarts(
    start_mock: Callable[[UpstreamConfig], Mock],
) -> None:
    config = UpstreamConfig(seed=5, error_rate=0.5, ttft=Delay(0.0), latency=Delay(0.0))
    statuses = []
    for _ in range(2):
        server = start_mock(config)
        with httpx.Client(base_url=server.url) as client:
            statuses.append(
                [client.post("/v1/messages", json=anthropic_body()).status_code for _ in range(20)]
            )

    assert statuses[0] == statuses[1]
    assert len(set(statuses[0])) > 1


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "field",
    [
        "error_rate",
        "status_429_rate",
        "status_500_rate",
        "status_529_rate",
        "timeout_rate",
        "drop_rate",
        "cache_hit_share",
    ],
)
@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_config_rejects_a_rate_outside_zero_to_one(field: str, value: float) -> None:
    changes: dict[str, Any] = {field: value}

    with pytest.raises(ValueError, match=field):
        replace(UpstreamConfig(), **changes)


def test_config_rejects_fault_rates_summing_above_one() -> None:
    with pytest.raises(ValueError, match="must be <= 1"):
        UpstreamConfig(status_429_rate=0.6, drop_rate=0.6)


def test_config_rejects_an_empty_output_range() -> None:
    with pytest.raises(ValueError, match="output_tokens"):
        UpstreamConfig(output_tokens=(10, 5))


def test_delay_rejects_a_negative_median() -> None:
    with pytest.raises(ValueError, match=r"Delay\.median"):
        Delay(-1.0)


def test_lognormal_delay_is_capped_at_its_maximum() -> None:
    import random

    delay = Delay(1.0, sigma=3.0, maximum=2.0)
    rng = random.Random(0)

    assert max(delay.sample(rng) for _ in range(500)) == 2.0


# -- model listing -----------------------------------------------------------------------


def test_the_anthropic_sdk_lists_the_mocks_claude_models(mock: Mock) -> None:
    client = mock.anthropic()

    listed = [model.id for model in client.models.list(limit=1000)]

    assert listed
    assert all(model.startswith("claude") for model in listed)
    assert client.models.retrieve(listed[0]).id == listed[0]


def test_the_openai_sdk_lists_the_mocks_other_models(mock: Mock) -> None:
    client = mock.openai()

    listed = [model.id for model in client.models.list()]

    assert "gpt-4.1-mini" in listed
    assert not [model for model in listed if model.startswith("claude")]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
