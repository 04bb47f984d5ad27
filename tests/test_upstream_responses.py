"""The mock upstream speaks OpenAI's Responses API well enough for the official SDK.

Codex CLI and the OpenAI Agents SDK send ``POST /v1/responses``. Every test
talks to a real uvicorn on loopback through the ``openai`` SDK where a
client's view matters, or raw httpx where the wire format itself is the
point; the mock's recorded decisions are what the client's view is checked
against. The usage parser reads the same bytes the proxy will relay.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from asgi_server import serve_asgi

from ccobs.demo.upstream import (
    Decision,
    Delay,
    MockUpstream,
    UpstreamConfig,
    create_upstream_app,
    estimate_prompt_tokens,
    get_upstream,
)
from ccobs.proxy.sse import SSEDecoder
from ccobs.proxy.usage import StreamUsage, TokenCounts, response_tokens

GPT = "gpt-4.1-mini"
FAST = UpstreamConfig(
    seed=7,
    ttft=Delay(0.002),
    latency=Delay(0.002),
    inter_token_delay=0.0002,
    output_tokens=(8, 40),
    cache_hit_share=0.5,
)
PROMPT = "Explain, briefly, why the p99 latency of the proxy rose after the deploy."
EVENT_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


class Mock:
    """A running mock: where it listens and what it decided."""

    def __init__(self, url: str, upstream: MockUpstream) -> None:
        self.url = url
        self.upstream = upstream

    @property
    def last(self) -> Decision:
        return self.upstream.decisions[-1]

    def client(self, **options: Any) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.url}/v1", api_key="test-key", max_retries=0, **options
        )

    def post(self, body: Any, **kwargs: Any) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/responses", json=body, **kwargs)


@pytest.fixture(scope="module")
def mock() -> Iterator[Mock]:
    app = create_upstream_app(FAST)
    with serve_asgi(app) as server:
        yield Mock(server.url, get_upstream(app))


def usage_of(decision: Decision) -> dict[str, int]:
    """What the client must see, in the SDK's field names, from what the mock decided."""
    prompt = decision.input_tokens + decision.cache_read_tokens + decision.cache_write_tokens
    return {
        "input_tokens": prompt,
        "cached_tokens": decision.cache_read_tokens,
        "output_tokens": decision.output_tokens,
        "reasoning_tokens": decision.reasoning_tokens,
        "total_tokens": prompt + decision.output_tokens,
    }


def sdk_usage(usage: Any) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "cached_tokens": usage.input_tokens_details.cached_tokens,
        "output_tokens": usage.output_tokens,
        "reasoning_tokens": usage.output_tokens_details.reasoning_tokens,
        "total_tokens": usage.total_tokens,
    }


def counted(decision: Decision) -> TokenCounts:
    """The decision in ccobs's token types (input excludes the cached tokens)."""
    return TokenCounts(
        input=decision.input_tokens,
        output=decision.output_tokens,
        cache_read=decision.cache_read_tokens,
        reasoning=decision.reasoning_tokens,
    )


def decide(upstream: MockUpstream, **kwargs: Any) -> Decision:
    arguments: dict[str, Any] = {
        "api": "responses",
        "model": GPT,
        "stream": False,
        "prompt_tokens": 100,
        "max_tokens": None,
    }
    return upstream.decide(**{**arguments, **kwargs})


# --------------------------------------------------------------------------- plain


def test_sdk_reads_a_plain_response_with_the_usage_the_mock_decided(mock: Mock) -> None:
    response = mock.client().responses.create(model=GPT, input=PROMPT, instructions="Be terse.")

    decision = mock.last
    assert (decision.api, decision.stream) == ("responses", False)
    assert response.id == f"resp_{decision.request_id}"
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == GPT
    assert response.usage is not None
    assert sdk_usage(response.usage) == usage_of(decision)
    assert len(response.output_text.split()) == decision.text_tokens


def test_plain_response_has_one_completed_assistant_message(mock: Mock) -> None:
    body = mock.post({"model": GPT, "input": PROMPT}).json()

    assert body["error"] is None
    assert body["incomplete_details"] is None
    assert body["usage"]["input_tokens_details"]["cache_write_tokens"] == 0
    [item] = body["output"]
    assert item["type"] == "message"
    assert (item["role"], item["status"]) == ("assistant", "completed")
    [part] = item["content"]
    assert part["type"] == "output_text"
    assert part["annotations"] == []


def test_input_may_be_a_string_or_a_list_of_items_and_instructions_count(mock: Mock) -> None:
    items = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": PROMPT}]},
        {"type": "function_call_output", "call_id": "call_1", "output": "exit code 0"},
    ]
    for body in (
        {"model": GPT, "input": PROMPT},
        {"model": GPT, "input": items, "instructions": "You are a coding agent. " * 20},
    ):
        response = mock.post(body)
        assert response.status_code == 200
        assert mock.last.prompt_tokens == estimate_prompt_tokens(body)


def test_instructions_and_input_are_counted_like_system_and_messages() -> None:
    as_messages = {"system": "s" * 40, "messages": [{"role": "user", "content": "m" * 40}]}
    as_responses = {"instructions": "s" * 40, "input": [{"role": "user", "content": "m" * 40}]}

    assert estimate_prompt_tokens(as_responses) == estimate_prompt_tokens(as_messages) == 20


def test_tools_are_accepted_and_ignored(mock: Mock) -> None:
    tool = {"type": "function", "name": "shell", "parameters": {"type": "object"}}
    response = mock.client().responses.create(model=GPT, input=PROMPT, tools=[tool])

    assert response.status == "completed"
    assert [item.type for item in response.output] == ["message"]


def test_max_output_tokens_cuts_the_response_short_as_incomplete(mock: Mock) -> None:
    response = mock.client().responses.create(
        model=GPT, input=PROMPT, max_output_tokens=5, extra_headers={"x-mock-output-tokens": "30"}
    )

    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None
    assert response.usage.output_tokens == 5
    assert mock.last.stop_reason == "max_output_tokens"


def test_output_tokens_header_sets_the_output_length(mock: Mock) -> None:
    response = mock.client().responses.create(
        model=GPT, input=PROMPT, extra_headers={"x-mock-output-tokens": "12"}
    )

    assert response.usage is not None
    assert response.usage.output_tokens == 12
    assert response.usage.output_tokens_details.reasoning_tokens == 3
    assert len(response.output_text.split()) == 9


def test_a_quarter_of_the_output_is_reasoning_and_the_rest_text() -> None:
    upstream = MockUpstream(FAST)
    decisions = [decide(upstream) for _ in range(50)]

    for d in decisions:
        assert d.reasoning_tokens == d.output_tokens // 4
        assert d.text_tokens == d.output_tokens - d.reasoning_tokens >= 1
    assert all(d.reasoning_tokens == 0 for d in _other_api_decisions())


def _other_api_decisions() -> list[Decision]:
    upstream = MockUpstream(FAST)
    return [decide(upstream, api=api) for api in ("anthropic", "openai") for _ in range(10)]


def test_cache_hits_are_cached_tokens_and_never_cache_writes() -> None:
    upstream = MockUpstream(FAST)
    decisions = [decide(upstream) for _ in range(60)]

    hits = [d for d in decisions if d.cache_read_tokens]
    assert 0 < len(hits) < len(decisions)
    assert all(d.cache_read_tokens == 80 for d in hits)
    assert all(d.cache_write_tokens == 0 for d in decisions)
    assert all(d.prompt_tokens == 100 for d in decisions)


def test_a_responses_request_draws_like_any_other_so_seeds_stay_aligned() -> None:
    mixed, plain = MockUpstream(FAST), MockUpstream(FAST)
    apis = ["responses", "anthropic", "openai", "responses", "anthropic"]
    for api in apis:
        decide(mixed, api=api)
        decide(plain, api="anthropic")

    after_mixed, after_plain = decide(mixed, api="openai"), decide(plain, api="openai")
    assert after_mixed.output_tokens == after_plain.output_tokens
    assert after_mixed.ttft == after_plain.ttft
    assert after_mixed.cache_read_tokens == after_plain.cache_read_tokens


# --------------------------------------------------------------------------- streamed


def test_sdk_stream_yields_the_full_event_sequence_numbered_in_order(mock: Mock) -> None:
    events = list(mock.client().responses.create(model=GPT, input=PROMPT, stream=True))

    kinds = [event.type for event in events]
    collapsed = [kind for i, kind in enumerate(kinds) if i == 0 or kind != kinds[i - 1]]
    assert collapsed == EVENT_ORDER
    assert [event.sequence_number for event in events] == list(range(len(events)))
    decision = mock.last
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) == -(-decision.text_tokens // FAST.tokens_per_delta)
    [done] = [e for e in events if e.type == "response.output_text.done"]
    assert done.text == "".join(deltas)
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.output_text == done.text
    assert final.response.usage is not None
    assert sdk_usage(final.response.usage) == usage_of(decision)


def test_stream_starts_with_a_response_in_progress_without_usage(mock: Mock) -> None:
    events = list(mock.client().responses.create(model=GPT, input=PROMPT, stream=True))

    for event in events[:2]:
        assert event.type in ("response.created", "response.in_progress")
        assert event.response.status == "in_progress"
        assert event.response.output == []
        assert event.response.usage is None


def test_sdk_stream_helper_assembles_the_final_response(mock: Mock) -> None:
    with mock.client().responses.stream(model=GPT, input=PROMPT) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        response = stream.get_final_response()

    assert response.output_text == text
    assert response.usage is not None
    assert sdk_usage(response.usage) == usage_of(mock.last)


def test_every_stream_event_is_named_by_an_event_line(mock: Mock) -> None:
    with httpx.stream("POST", f"{mock.url}/v1/responses", json=_stream_body()) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]

    for name, data in zip(lines[::2], lines[1::2], strict=True):
        assert name.removeprefix("event: ") == json.loads(data.removeprefix("data: "))["type"]


def test_stream_cut_by_max_output_tokens_ends_with_response_incomplete(mock: Mock) -> None:
    events = list(
        mock.client().responses.create(model=GPT, input=PROMPT, stream=True, max_output_tokens=4)
    )

    final = events[-1]
    assert final.type == "response.incomplete"
    assert final.response.incomplete_details is not None
    assert final.response.incomplete_details.reason == "max_output_tokens"
    assert "response.completed" not in [e.type for e in events]


def test_text_deltas_are_paced_like_the_other_apis(mock: Mock) -> None:
    arrivals: list[float] = []
    started = time.monotonic()
    with httpx.stream(
        "POST",
        f"{mock.url}/v1/responses",
        json=_stream_body(),
        headers={"x-mock-ttft-ms": "150", "x-mock-latency-ms": "450", "x-mock-output-tokens": "40"},
    ) as response:
        for line in response.iter_lines():
            if line == "event: response.output_text.delta":
                arrivals.append(time.monotonic() - started)

    assert arrivals[0] >= 0.15
    assert arrivals[-1] >= 0.4
    assert arrivals[-1] - arrivals[0] >= 0.2


def _stream_body(**extra: Any) -> dict[str, Any]:
    return {"model": GPT, "input": PROMPT, "stream": True, **extra}


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("status", "sdk_error"),
    [
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
        (529, openai.InternalServerError),
        (400, openai.BadRequestError),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_injected_status_raises_the_matching_sdk_error(
    mock: Mock, status: int, sdk_error: type[openai.APIStatusError], stream: bool
) -> None:
    with pytest.raises(sdk_error) as raised:
        mock.client().responses.create(
            model=GPT, input=PROMPT, stream=stream, extra_headers={"x-mock-status": str(status)}
        )

    assert raised.value.status_code == status
    assert raised.value.request_id == f"req_{mock.last.request_id}"


def test_errors_use_openai_body_shape_and_a_rate_limit_says_when_to_retry(mock: Mock) -> None:
    response = mock.post({"model": GPT, "input": PROMPT}, headers={"x-mock-status": "429"})

    assert response.status_code == 429
    assert response.headers["retry-after"] == str(FAST.retry_after)
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert set(error) == {"message", "type", "param", "code"}


def test_overloaded_fault_is_503_as_openai_sends_it() -> None:
    upstream = MockUpstream(UpstreamConfig(seed=1, status_529_rate=1.0))

    assert decide(upstream).status == 503


def test_injected_error_rate_reaches_the_responses_route() -> None:
    upstream = MockUpstream(UpstreamConfig(seed=3, error_rate=0.5))
    statuses = {decide(upstream).status for _ in range(200)}

    assert statuses == {200, 429, 500, 503}


def test_dropped_plain_response_is_a_connection_error_for_the_sdk(mock: Mock) -> None:
    with pytest.raises(openai.APIConnectionError):
        mock.client().responses.create(
            model=GPT, input=PROMPT, extra_headers={"x-mock-fault": "drop"}
        )


def test_dropped_stream_breaks_off_mid_stream_as_an_error(mock: Mock) -> None:
    seen: list[str] = []
    stream = mock.client().responses.create(
        model=GPT,
        input=PROMPT,
        stream=True,
        extra_headers={"x-mock-fault": "drop", "x-mock-output-tokens": "40"},
    )

    with pytest.raises((httpx.HTTPError, openai.APIError)):
        seen.extend(event.type for event in stream)

    assert "response.output_text.delta" in seen
    assert "response.output_text.done" not in seen
    assert "response.completed" not in seen


def test_timeout_fault_hangs_until_the_sdk_gives_up(mock: Mock) -> None:
    started = time.monotonic()

    with pytest.raises(openai.APITimeoutError):
        mock.client(timeout=0.3).responses.create(
            model=GPT, input=PROMPT, extra_headers={"x-mock-fault": "timeout"}
        )

    assert time.monotonic() - started >= 0.3


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input": PROMPT}, "model"),
        ({"model": "", "input": PROMPT}, "model"),
        ({"model": GPT, "input": 42}, "input"),
        ({"model": GPT, "input": ["not an item"]}, "input"),
        ({"model": GPT, "input": PROMPT, "stream": "yes"}, "stream"),
        ({"model": GPT, "input": PROMPT, "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": GPT, "input": PROMPT, "stream_options": {}}, "stream_options"),
        ([{"model": GPT}], "JSON object"),
    ],
)
def test_invalid_request_is_a_400_in_openai_shape(mock: Mock, body: Any, message: str) -> None:
    decisions = len(mock.upstream.decisions)
    response = mock.post(body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert message in error["message"]
    assert len(mock.upstream.decisions) == decisions


def test_body_that_is_not_json_is_a_400_the_sdk_raises(mock: Mock) -> None:
    response = httpx.post(
        f"{mock.url}/v1/responses", content=b"{", headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Request body is not valid JSON."
    with pytest.raises(openai.BadRequestError, match="model"):
        mock.client().responses.create(model="", input=PROMPT)


def test_wrong_method_answers_in_openai_shape(mock: Mock) -> None:
    response = httpx.get(f"{mock.url}/v1/responses")

    assert response.status_code == 405
    assert response.json()["error"]["type"] == "invalid_request_error"


# --------------------------------------------------------------------------- parser


def test_parser_reads_the_plain_response_as_the_mock_decided(mock: Mock) -> None:
    response = mock.post({"model": GPT, "input": PROMPT})

    assert response_tokens("responses", response.content) == counted(mock.last)


def test_parser_follows_the_stream_as_the_mock_decided(mock: Mock) -> None:
    usage = StreamUsage("responses")
    decoder = SSEDecoder()
    first_tokens = 0
    with httpx.stream("POST", f"{mock.url}/v1/responses", json=_stream_body()) as response:
        for chunk in response.iter_raw(7):
            for event in decoder.feed(chunk):
                first_tokens += usage.feed(event)

    assert first_tokens == 1
    assert usage.complete
    assert usage.error is None
    assert usage.usage_seen
    assert usage.tokens == counted(mock.last)


def test_parser_sees_a_dropped_stream_as_incomplete(mock: Mock) -> None:
    usage = StreamUsage("responses")
    decoder = SSEDecoder()

    def read_events() -> None:
        with httpx.stream(
            "POST",
            f"{mock.url}/v1/responses",
            json=_stream_body(),
            headers={"x-mock-fault": "drop", "x-mock-output-tokens": "40"},
        ) as response:
            for chunk in response.iter_raw():
                for event in decoder.feed(chunk):
                    usage.feed(event)

    with pytest.raises(httpx.RemoteProtocolError):
        read_events()

    assert usage.first_token
    assert not usage.complete
    assert not usage.usage_seen


def test_parser_reports_the_incomplete_stream_with_its_billed_usage(mock: Mock) -> None:
    usage = StreamUsage("responses")
    decoder = SSEDecoder()
    with httpx.stream(
        "POST", f"{mock.url}/v1/responses", json=_stream_body(max_output_tokens=4)
    ) as response:
        for event in decoder.feed(response.read()):
            usage.feed(event)

    assert usage.stop_reason == "max_output_tokens"
    assert usage.error is None
    assert usage.complete
    assert usage.tokens == counted(mock.last)
    assert usage.tokens.output == 4
