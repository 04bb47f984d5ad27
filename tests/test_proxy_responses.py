"""OpenAI's Responses API through the proxy, driven by the official openai SDK.

The same stack as tests/test_proxy.py: the mock upstream and the proxy on
loopback, the proxy's metrics read back from its registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from test_proxy import OPENAI_KEY, OPENAI_MODEL, Stack, start_stack

from ccobs.pricing import PriceTable

ENDPOINT = "/v1/responses"


@pytest.fixture
def stack(isolated_logging: None) -> Iterator[Stack]:
    yield from start_stack()


@pytest.fixture
def gpt(stack: Stack) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=stack.proxy_url + "/v1", api_key=OPENAI_KEY, max_retries=0)
    yield client
    client.close()


def ask(client: openai.OpenAI, **kwargs: Any) -> Any:
    return client.responses.create(
        model=OPENAI_MODEL,
        input=[{"role": "user", "content": "Say something about observability."}],
        **kwargs,
    )


def tokens(stack: Stack) -> dict[str, float]:
    return {
        kind: stack.tokens(kind, OPENAI_MODEL)
        for kind in ("input", "output", "cache_read", "cache_write")
    }


def expected_tokens(usage: Any) -> dict[str, float]:
    cached = usage.input_tokens_details.cached_tokens
    return {
        "input": usage.input_tokens - cached,
        "output": usage.output_tokens,
        "cache_read": cached,
        "cache_write": 0,
    }


def test_a_plain_response_is_counted_by_token_type_and_priced(
    stack: Stack, gpt: openai.OpenAI
) -> None:
    response = ask(gpt)
    stack.settle(1)

    assert response.status == "completed"
    assert tokens(stack) == expected_tokens(response.usage)
    assert stack.requests("200", ENDPOINT, OPENAI_MODEL) == 1
    counted = expected_tokens(response.usage)
    cost = PriceTable.default().cost(
        OPENAI_MODEL,
        int(counted["input"]),
        int(counted["output"]),
        int(counted["cache_read"]),
        int(counted["cache_write"]),
    )
    assert cost is not None
    recorded = stack.value(
        "ccproxy_cost_usd_total",
        model=OPENAI_MODEL,
        cost_type="total",
        service_type="proxy_service",
    )
    assert recorded == pytest.approx(cost.total)


def test_a_streamed_response_is_counted_once_with_its_first_token(
    stack: Stack, gpt: openai.OpenAI
) -> None:
    with gpt.responses.stream(
        model=OPENAI_MODEL, input=[{"role": "user", "content": "Stream please."}]
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    stack.settle(1)

    assert tokens(stack) == expected_tokens(final.usage)
    ttft = stack.value(
        "ccproxy_time_to_first_token_seconds_count",
        model=OPENAI_MODEL,
        endpoint=ENDPOINT,
        service_type="proxy_service",
    )
    assert ttft == 1
    assert stack.errors("upstream_error", ENDPOINT, OPENAI_MODEL) == 0
    line = stack.access_lines()[-1]
    assert line["event"] == "request_success"
    assert line["ttft_ms"] > 0


def test_a_response_cut_by_max_output_tokens_is_no_error(stack: Stack, gpt: openai.OpenAI) -> None:
    with gpt.responses.stream(
        model=OPENAI_MODEL,
        input=[{"role": "user", "content": "A long answer."}],
        max_output_tokens=16,
        extra_headers={"x-mock-output-tokens": "500"},
    ) as stream:
        for _ in stream:
            pass
    stack.settle(1)

    assert stack.access_lines()[-1]["event"] == "request_success"
    assert tokens(stack)["output"] == 16


@pytest.mark.parametrize(
    ("status", "error_type", "exception"),
    [
        ("429", "rate_limited", openai.RateLimitError),
        ("500", "upstream_500", openai.InternalServerError),
        ("503", "upstream_503", openai.InternalServerError),
    ],
)
def test_an_upstream_error_reaches_the_sdk_and_is_counted(
    stack: Stack, gpt: openai.OpenAI, status: str, error_type: str, exception: type[Exception]
) -> None:
    with pytest.raises(exception):
        ask(gpt, extra_headers={"x-mock-status": status})
    stack.settle(1)

    assert stack.errors(error_type, ENDPOINT, OPENAI_MODEL) == 1


def test_a_stream_that_breaks_off_is_an_error_the_sdk_sees(
    stack: Stack, gpt: openai.OpenAI
) -> None:
    with (
        pytest.raises(openai.APIError),
        gpt.responses.stream(
            model=OPENAI_MODEL,
            input=[{"role": "user", "content": "x"}],
            extra_headers={"x-mock-fault": "drop"},
        ) as stream,
    ):
        for _ in stream:
            pass
    stack.settle(1)

    line = stack.access_lines()[-1]
    assert line["event"] == "request_error"
    assert line["error_type"] in ("upstream_stream_error", "upstream_incomplete_stream")
