"""What answers say about themselves, through the proxy, driven by the official SDKs.

Stop reasons (plain and streamed, on the three APIs), time per output token
of streams, SDK retries (``x-stainless-retry-count``) and the upstream's own
request id, against the mock upstream on loopback: each is read back from
the proxy's registry, its access-log line, and what the SDK saw.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
import pytest
from asgi_server import serve_asgi
from conftest import restored_logging
from proxy_harness import ProxyUnderTest, running_proxy

from ccobs.demo.decisions import Api
from ccobs.demo.loadgen import LoadConfig, run_load
from ccobs.demo.upstream import (
    Delay,
    MockUpstream,
    UpstreamConfig,
    create_upstream_app,
    get_upstream,
)

MODEL = "claude-sonnet-4-6"
OPENAI_MODEL = "gpt-4.1-mini"
FAST = UpstreamConfig(
    seed=3, ttft=Delay(0.01), latency=Delay(0.01), inter_token_delay=0.0005, output_tokens=(5, 40)
)
HELLO = [{"role": "user", "content": "hello"}]


@dataclass
class Servers:
    proxy: ProxyUnderTest
    upstream: MockUpstream
    claude: anthropic.Anthropic
    gpt: openai.OpenAI


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    """One mock and one proxy for the module: each test reads only what it added (Setup)."""
    app = create_upstream_app(FAST)
    with restored_logging(), serve_asgi(app) as upstream, running_proxy(upstream.url) as proxy:
        claude = anthropic.Anthropic(base_url=proxy.url, api_key="test-key", max_retries=0)
        gpt = openai.OpenAI(base_url=proxy.url + "/v1", api_key="test-key", max_retries=0)
        try:
            yield Servers(proxy, get_upstream(app), claude, gpt)
        finally:
            claude.close()
            gpt.close()


class Setup:
    """The shared servers, and what the proxy recorded since this test began."""

    def __init__(self, servers: Servers) -> None:
        self.proxy = servers.proxy
        self.upstream = servers.upstream
        self.claude = servers.claude
        self.gpt = servers.gpt
        self._counted = self.proxy.requests()
        self._lines = len(self.proxy.access_lines())
        self._before = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in self.proxy.registry.collect()
            for s in f.samples
        }

    def settle(self, count: int) -> None:
        """Wait for this test's ``count`` requests to be counted and logged."""
        deadline = time.monotonic() + 10
        while self.proxy.requests() < self._counted + count or len(self.lines()) < count:
            assert time.monotonic() < deadline, "requests not recorded in time"
            time.sleep(0.01)

    def added(self, name: str, label: str, **labels: str) -> dict[str, float]:
        """What this test added to ``name``'s samples matching ``labels``, by ``label``."""
        out: dict[str, float] = {}
        for family in self.proxy.registry.collect():
            for s in family.samples:
                if s.name == name and labels.items() <= s.labels.items():
                    key = (s.name, tuple(sorted(s.labels.items())))
                    value = s.value - self._before.get(key, 0.0)
                    out[s.labels[label]] = out.get(s.labels[label], 0.0) + value
        return {key: value for key, value in out.items() if value}

    def stop_reasons(self, model: str = MODEL) -> dict[str, float]:
        return self.added("ccproxy_stop_reasons_total", "stop_reason", model=model)

    def retries(self) -> dict[str, float]:
        return self.added("ccproxy_retried_requests_total", "retry")

    def speed(self, suffix: str, model: str = MODEL) -> float:
        name = f"ccproxy_time_per_output_token_seconds_{suffix}"
        return sum(self.added(name, "model", model=model).values())

    def lines(self) -> list[dict[str, Any]]:
        return self.proxy.access_lines()[self._lines :]

    def line(self) -> dict[str, Any]:
        return self.lines()[-1]

    def last_upstream_id(self) -> str:
        return f"req_{self.upstream.decisions[-1].request_id}"


@pytest.fixture
def setup(servers: Servers) -> Setup:
    return Setup(servers)


def output_tokens(count: int, **more: str) -> dict[str, str]:
    return {"x-mock-output-tokens": str(count), **more}


# --- stop reasons ---------------------------------------------------------------------------


def test_an_anthropic_answer_is_counted_under_its_stop_reason(setup: Setup) -> None:
    message = setup.claude.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    setup.settle(1)

    assert message.stop_reason == "end_turn"
    assert setup.stop_reasons() == {"end_turn": 1.0}
    assert setup.line()["stop_reason"] == "end_turn"


def test_a_streamed_anthropic_answer_cut_at_max_tokens_counts_as_max_tokens(setup: Setup) -> None:
    with setup.claude.messages.stream(
        model=MODEL, max_tokens=10, messages=HELLO, extra_headers=output_tokens(30)
    ) as stream:
        message = stream.get_final_message()
    setup.settle(1)

    assert message.stop_reason == "max_tokens"
    assert setup.stop_reasons() == {"max_tokens": 1.0}
    assert setup.line()["stop_reason"] == "max_tokens"


def test_an_openai_chat_answer_is_counted_under_its_finish_reason(setup: Setup) -> None:
    completion = setup.gpt.chat.completions.create(
        model=OPENAI_MODEL, max_tokens=5, messages=HELLO, extra_headers=output_tokens(30)
    )
    setup.settle(1)

    assert completion.choices[0].finish_reason == "length"
    assert setup.stop_reasons(OPENAI_MODEL) == {"length": 1.0}


def test_a_streamed_openai_chat_answer_is_counted_under_its_finish_reason(setup: Setup) -> None:
    chunks = setup.gpt.chat.completions.create(
        model=OPENAI_MODEL,
        max_tokens=100,
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    setup.settle(1)

    assert finish == ["stop"]
    assert setup.stop_reasons(OPENAI_MODEL) == {"stop": 1.0}


def test_a_responses_answer_is_counted_as_stop(setup: Setup) -> None:
    response = setup.gpt.responses.create(model=OPENAI_MODEL, input="hello", max_output_tokens=100)
    setup.settle(1)

    assert response.status == "completed"
    assert setup.stop_reasons(OPENAI_MODEL) == {"stop": 1.0}
    assert setup.line()["stop_reason"] == "stop"


def test_a_streamed_responses_answer_cut_short_counts_as_length(setup: Setup) -> None:
    events = setup.gpt.responses.create(
        model=OPENAI_MODEL,
        input="hello",
        max_output_tokens=16,
        stream=True,
        extra_headers=output_tokens(40),
    )
    kinds = [event.type for event in events]
    setup.settle(1)

    assert kinds[-1] == "response.incomplete"
    assert setup.stop_reasons(OPENAI_MODEL) == {"length": 1.0}
    assert setup.line()["stop_reason"] == "max_output_tokens"  # the line keeps the vendor's word


def test_a_failed_answer_has_no_stop_reason(setup: Setup) -> None:
    with pytest.raises(anthropic.InternalServerError):
        setup.claude.messages.create(
            model=MODEL, max_tokens=100, messages=HELLO, extra_headers={"x-mock-status": "500"}
        )
    setup.settle(1)

    assert setup.stop_reasons() == {}
    assert "stop_reason" not in setup.line()


# --- time per output token ----------------------------------------------------------------


def test_a_stream_observes_its_time_per_output_token(setup: Setup) -> None:
    # 21 output tokens, the first after 10 ms, the stream 210 ms long: about 10 ms a token.
    headers = output_tokens(21, **{"x-mock-ttft-ms": "10", "x-mock-latency-ms": "210"})
    with setup.claude.messages.stream(
        model=MODEL, max_tokens=100, messages=HELLO, extra_headers=headers
    ) as stream:
        stream.get_final_message()
    setup.settle(1)

    assert setup.speed("count") == 1
    seconds = setup.speed("sum")
    assert 0.007 <= seconds <= 0.1
    assert setup.line()["time_per_output_token_ms"] == round(seconds * 1000, 3)


def test_a_streamed_openai_answer_observes_its_time_per_output_token(setup: Setup) -> None:
    chunks = setup.gpt.chat.completions.create(
        model=OPENAI_MODEL,
        max_tokens=100,
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=output_tokens(12),
    )
    list(chunks)
    setup.settle(1)

    assert setup.speed("count", OPENAI_MODEL) == 1


def test_a_stream_of_one_output_token_observes_no_speed(setup: Setup) -> None:
    with setup.claude.messages.stream(
        model=MODEL, max_tokens=100, messages=HELLO, extra_headers=output_tokens(1)
    ) as stream:
        stream.get_final_message()
    setup.settle(1)

    assert setup.speed("count") == 0
    assert "time_per_output_token_ms" not in setup.line()


def test_a_plain_answer_observes_no_speed(setup: Setup) -> None:
    setup.claude.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    setup.settle(1)

    assert setup.speed("count") == 0


# --- retries ------------------------------------------------------------------------------


def test_an_sdks_retries_are_counted_and_its_first_try_is_not(setup: Setup) -> None:
    retrying = setup.gpt.with_options(max_retries=2)
    with pytest.raises(openai.InternalServerError):
        retrying.chat.completions.create(
            model=OPENAI_MODEL, messages=HELLO, extra_headers={"x-mock-status": "500"}
        )
    setup.settle(3)

    assert setup.retries() == {"1": 1.0, "2": 1.0}
    assert [line.get("retry_count") for line in setup.lines()] == [None, 1, 2]


def test_retries_from_the_third_up_share_one_series(setup: Setup) -> None:
    for count in ("3", "7"):
        httpx.post(
            setup.proxy.url + "/v1/messages",
            json={"model": MODEL, "max_tokens": 5, "messages": HELLO},
            headers={"x-stainless-retry-count": count},
        )
    setup.settle(2)

    assert setup.retries() == {"3+": 2.0}


@pytest.mark.parametrize("header", [b"-1", b"abc", "²".encode("latin-1"), b"99999"])
def test_a_malformed_retry_count_is_ignored_and_the_request_served(
    setup: Setup, header: bytes
) -> None:
    response = httpx.post(
        setup.proxy.url + "/v1/messages",
        json={"model": MODEL, "max_tokens": 5, "messages": HELLO},
        headers={"x-stainless-retry-count": header},
    )
    setup.settle(1)

    assert response.status_code == 200
    assert setup.retries() == {}


# --- the upstream's request id --------------------------------------------------------------


def test_the_openai_sdk_reads_openais_request_id_through_the_proxy(setup: Setup) -> None:
    raw = setup.gpt.chat.completions.with_raw_response.create(
        model=OPENAI_MODEL, max_tokens=10, messages=HELLO
    )
    completion = raw.parse()
    setup.settle(1)

    assert completion._request_id == setup.last_upstream_id()
    assert raw.headers.get_list("x-request-id") == [setup.last_upstream_id()]
    assert raw.headers["x-ccobs-request-id"] == setup.line()["request_id"]
    assert setup.line()["upstream_request_id"] == setup.last_upstream_id()


def test_a_streamed_openai_answer_keeps_openais_request_id(setup: Setup) -> None:
    with setup.gpt.chat.completions.with_streaming_response.create(
        model=OPENAI_MODEL, max_tokens=10, messages=HELLO, stream=True
    ) as response:
        for _ in response.iter_lines():
            pass
        headers = response.headers
    setup.settle(1)

    assert headers.get_list("x-request-id") == [setup.last_upstream_id()]
    assert setup.line()["upstream_request_id"] == setup.last_upstream_id()


def test_the_anthropic_sdk_reads_anthropics_request_id_and_ours_stays_in_x_request_id(
    setup: Setup,
) -> None:
    raw = setup.claude.messages.with_raw_response.create(model=MODEL, max_tokens=10, messages=HELLO)
    message = raw.parse()
    setup.settle(1)

    ours = setup.line()["request_id"]
    assert message._request_id == setup.last_upstream_id()
    assert raw.headers.get_list("x-request-id") == [ours]
    assert "x-ccobs-request-id" not in raw.headers
    assert setup.line()["upstream_request_id"] == setup.last_upstream_id()


def test_an_upstream_error_keeps_the_upstreams_request_id_on_the_line(setup: Setup) -> None:
    with pytest.raises(openai.RateLimitError) as raised:
        setup.gpt.chat.completions.create(
            model=OPENAI_MODEL, messages=HELLO, extra_headers={"x-mock-status": "429"}
        )
    setup.settle(1)

    assert raised.value.request_id == setup.last_upstream_id()
    assert setup.line()["upstream_request_id"] == setup.last_upstream_id()


def test_a_passed_through_answer_keeps_the_upstreams_request_id(setup: Setup) -> None:
    raw = setup.claude.messages.with_raw_response.count_tokens(model=MODEL, messages=HELLO)
    counted = raw.parse()
    setup.settle(1)

    assert counted._request_id == raw.headers["request-id"]
    assert setup.line()["upstream_request_id"] == raw.headers["request-id"]
    assert raw.headers["x-request-id"] == setup.line()["request_id"]


def test_a_passed_through_retry_is_counted(setup: Setup) -> None:
    httpx.post(
        setup.proxy.url + "/v1/messages/count_tokens",
        json={"model": MODEL, "messages": HELLO},
        headers={"x-stainless-retry-count": "1"},
    )
    setup.settle(1)

    assert setup.retries() == {"1": 1.0}


# --- the demo: the mock's stop reasons, the load generator's retries ------------------------


def decisions(upstream: MockUpstream, api: Api, count: int, max_tokens: int = 1000) -> list[Any]:
    return [
        upstream.decide(api=api, model="m", stream=False, prompt_tokens=10, max_tokens=max_tokens)
        for _ in range(count)
    ]


@pytest.mark.parametrize(("api", "reason"), [("anthropic", "tool_use"), ("openai", "tool_calls")])
def test_the_mock_stops_its_share_of_answers_for_a_tool_call(api: Api, reason: str) -> None:
    upstream = MockUpstream(UpstreamConfig(seed=1, tool_use_share=0.25))

    stops = [d.stop_reason for d in decisions(upstream, api, 400)]

    assert 0.18 < stops.count(reason) / len(stops) < 0.32


def test_a_truncated_answer_stops_at_its_limit_even_when_a_tool_call_was_due() -> None:
    upstream = MockUpstream(UpstreamConfig(seed=1, tool_use_share=1.0, output_tokens=(50, 60)))

    stops = {d.stop_reason for d in decisions(upstream, "anthropic", 20, max_tokens=10)}

    assert stops == {"max_tokens"}


def test_the_tool_use_share_shifts_no_other_decision_of_a_seeded_run() -> None:
    def drawn(share: float) -> list[tuple[float, int]]:
        upstream = MockUpstream(UpstreamConfig(seed=4, tool_use_share=share))
        return [(d.ttft, d.output_tokens) for d in decisions(upstream, "openai", 50)]

    assert drawn(0.0) == drawn(0.5)


def test_the_load_generators_retries_reach_the_retries_counter(setup: Setup) -> None:
    config = LoadConfig(
        target=setup.proxy.url,
        concurrency=1,
        requests=1,
        max_retries=2,
        headers={"x-mock-status": "529"},
    )

    summary = asyncio.run(run_load(config))
    setup.settle(3)

    assert summary.errors_by_status == {529: 1}  # the last attempt's answer
    assert setup.retries() == {"1": 1.0, "2": 1.0}


def test_the_load_generator_without_retries_sends_no_retry_count(setup: Setup) -> None:
    config = LoadConfig(
        target=setup.proxy.url, concurrency=1, requests=1, headers={"x-mock-status": "529"}
    )

    asyncio.run(run_load(config))
    setup.settle(1)

    assert setup.retries() == {}
    assert len(setup.lines()) == 1
