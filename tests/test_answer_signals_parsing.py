"""Stop reasons, output speed and retry counts as read from answers and headers, and their labels.

The parsers on hand-made events and bodies in each API's documented shape;
the proxy in front of the mock, driven by the official SDKs, is in
tests/test_answer_signals.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from starlette.datastructures import Headers

from ccobs.answer_signals import (
    RETRY_COUNT_HEADER,
    parse_retry_count,
    read_retry_count,
    retry_label,
    stop_reason_label,
    time_per_output_token,
)
from ccobs.metrics import PrometheusMetrics
from ccobs.proxy.sse import ServerSentEvent
from ccobs.proxy.stop_reasons import MAX_STOP_REASON_CHARS, responses_stop_reason
from ccobs.proxy.upstream_ids import accepted_request_id, upstream_request_id
from ccobs.proxy.usage import StreamUsage, response_usage
from ccobs.redaction import redact_text


def event(data: object, name: str | None = None) -> ServerSentEvent:
    return ServerSentEvent(name, json.dumps(data))


# --- whole answers ------------------------------------------------------------------------


def test_an_anthropic_message_gives_its_stop_reason() -> None:
    body = {"stop_reason": "tool_use", "usage": {"input_tokens": 3, "output_tokens": 9}}

    tokens, stop_reason = response_usage("anthropic", json.dumps(body).encode())

    assert (tokens.output, stop_reason) == (9, "tool_use")


def test_an_openai_completion_gives_its_first_choices_finish_reason() -> None:
    body = {
        "choices": [{"index": 0, "finish_reason": "content_filter"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }

    assert response_usage("openai", json.dumps(body).encode())[1] == "content_filter"


def test_a_completed_response_that_calls_a_tool_stops_for_tool_calls() -> None:
    response = {"status": "completed", "output": [{"type": "reasoning"}, {"type": "function_call"}]}

    assert responses_stop_reason(response) == "tool_calls"


def test_a_completed_response_without_a_tool_call_stops_as_stop() -> None:
    assert responses_stop_reason({"status": "completed", "output": [{"type": "message"}]}) == "stop"


def test_an_incomplete_response_stops_for_its_incomplete_reason() -> None:
    response = {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}

    assert responses_stop_reason(response) == "max_output_tokens"


def test_an_answer_without_a_stop_reason_has_none() -> None:
    body = {"usage": {"input_tokens": 1, "output_tokens": 1}, "stop_reason": None}

    assert response_usage("anthropic", json.dumps(body).encode())[1] is None


def test_a_long_stop_reason_is_cut() -> None:
    body = {"stop_reason": "x" * 5000, "usage": {}}

    stop_reason = response_usage("anthropic", json.dumps(body).encode())[1]

    assert stop_reason == "x" * MAX_STOP_REASON_CHARS


# --- streams ------------------------------------------------------------------------------


def test_an_anthropic_stream_gives_the_stop_reason_of_its_message_delta() -> None:
    usage = StreamUsage("anthropic")
    usage.feed(event({"type": "message_start", "message": {"usage": {"input_tokens": 1}}}))
    usage.feed(
        event(
            {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {}},
            "message_delta",
        )
    )

    assert usage.stop_reason == "max_tokens"


def test_an_openai_stream_gives_the_finish_reason_of_its_last_choice_chunk() -> None:
    usage = StreamUsage("openai")
    usage.feed(event({"choices": [{"delta": {"content": "hi"}, "finish_reason": None}]}))
    usage.feed(event({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}))
    usage.feed(event({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}))

    assert usage.stop_reason == "tool_calls"


def test_a_responses_stream_gives_the_stop_reason_of_its_completed_response() -> None:
    usage = StreamUsage("responses")
    completed = {"status": "completed", "output": [{"type": "message"}], "usage": None}
    usage.feed(event({"type": "response.completed", "response": completed}, "response.completed"))

    assert usage.stop_reason == "stop"


# --- labels -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop_reason", "label"),
    [
        ("end_turn", "end_turn"),
        ("refusal", "refusal"),
        ("length", "length"),
        ("max_output_tokens", "length"),
        ("function_call", "other"),
        ("a-new-reason", "other"),
    ],
)
def test_a_stop_reason_is_its_own_label_when_known_and_other_when_not(
    stop_reason: str, label: str
) -> None:
    assert stop_reason_label(stop_reason) == label


@pytest.mark.parametrize(("count", "label"), [(1, "1"), (2, "2"), (3, "3+"), (1000, "3+")])
def test_retries_are_labelled_one_two_and_three_up(count: int, label: str) -> None:
    assert retry_label(count) == label


@pytest.mark.parametrize(("header", "count"), [("0", 0), ("2", 2), ("1000", 1000)])
def test_a_retry_count_header_is_read_as_a_number(header: str, count: int) -> None:
    assert parse_retry_count(header) == count


@pytest.mark.parametrize("header", [None, "", "-1", "1.5", " 1", "abc", "1001", "99999999", "²"])
def test_a_missing_or_malformed_retry_count_is_ignored(header: str | None) -> None:
    assert parse_retry_count(header) is None


request_headers = st.lists(
    st.tuples(
        st.sampled_from([b"x-stainless-retry-count", b"X-Stainless-Retry-Count", b"host", b"x"]),
        st.one_of(st.sampled_from([b"0", b"1", b"3", b"1001", b" 2", b"\xb2"]), st.binary()),
    ),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(request_headers)
def test_the_retry_count_of_raw_headers_is_what_starlettes_headers_give(
    headers: list[tuple[bytes, bytes]],
) -> None:
    expected = parse_retry_count(Headers(raw=headers).get(RETRY_COUNT_HEADER))

    assert read_retry_count(headers) == expected


def test_the_first_retry_count_header_is_the_one_read() -> None:
    headers = [(b"x-stainless-retry-count", b"2"), (b"x-stainless-retry-count", b"1")]

    assert read_retry_count(headers) == 2


def test_time_per_output_token_spreads_the_stream_over_the_tokens_after_the_first() -> None:
    assert time_per_output_token(0.5, 1.5, 11) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("first", "end", "tokens"), [(None, 1.0, 10), (0.5, 1.0, 1), (0.5, 1.0, 0), (1.0, 0.5, 10)]
)
def test_time_per_output_token_is_none_when_the_answer_cannot_say(
    first: float | None, end: float, tokens: int
) -> None:
    assert time_per_output_token(first, end, tokens) is None


@pytest.mark.parametrize("raw", [b"req_011CVVT4pXNTGq6JkP8r2mFt", b"a1b2c3d4-e5f6"])
def test_an_upstream_request_id_is_kept_as_sent(raw: bytes) -> None:
    assert accepted_request_id(raw) == raw.decode()


@pytest.mark.parametrize(
    "raw", [b"", b"req 1", b"req\n1", b"x" * 129, b"sk-ant-api03-" + b"Zx9" * 30, b"\xff"]
)
def test_an_upstream_request_id_that_is_odd_or_looks_like_a_key_is_not_kept(raw: bytes) -> None:
    assert accepted_request_id(raw) is None


def reference_request_id(api: str, headers: list[tuple[bytes, bytes]]) -> str | None:
    """The request id as first written: ``UpstreamResponse.header`` and a regular expression."""
    wanted = b"request-id" if api == "anthropic" else b"x-request-id"
    raw = next((value for key, value in headers if key.lower() == wanted), None)
    if raw is None:
        return None
    value = raw.decode("latin-1")
    if re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", value) is None or redact_text(value) != value:
        return None
    return value


class Answer:
    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.headers = headers


id_values = st.one_of(
    st.sampled_from(
        [b"req_011CVVT4pXNTGq6JkP8r2mFt", b"a:b.c-d_e", b"x" * 128, b"x" * 129, b"sk-ant-api03-"]
    ),
    st.binary(max_size=140),
    st.text("abc_.:- \n\u00e9sk", max_size=20).map(lambda text: text.encode("latin-1")),
)
id_headers = st.lists(
    st.tuples(
        st.sampled_from([b"request-id", b"Request-ID", b"x-request-id", b"X-Request-Id", b"via"]),
        id_values,
    ),
    max_size=5,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["anthropic", "openai", "responses"]), id_headers)
def test_the_upstream_request_id_is_what_the_regular_expression_reading_gave(
    api: Any, headers: list[tuple[bytes, bytes]]
) -> None:
    answer: Any = Answer(headers)

    assert upstream_request_id(api, answer) == reference_request_id(api, headers)


# --- the metrics --------------------------------------------------------------------------


@pytest.fixture
def metrics() -> tuple[PrometheusMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return PrometheusMetrics(registry=registry), registry


def test_an_unknown_stop_reason_is_counted_as_other(
    metrics: tuple[PrometheusMetrics, CollectorRegistry],
) -> None:
    recorder, registry = metrics
    recorder.record_stop_reason("brand_new", "m", "s")
    recorder.record_stop_reason("brand_new", "m", "s")

    labels = {"stop_reason": "other", "model": "m", "service_type": "s"}
    assert registry.get_sample_value("ccproxy_stop_reasons_total", labels) == 2


def test_a_first_try_is_not_counted_as_a_retry(
    metrics: tuple[PrometheusMetrics, CollectorRegistry],
) -> None:
    recorder, registry = metrics
    recorder.record_retried_request(0, "m", "s")

    assert [
        s for f in registry.collect() for s in f.samples if s.name.startswith("ccproxy_retried")
    ] == []
