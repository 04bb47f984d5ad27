"""Token usage of OpenAI's Responses API, read into the shape the other APIs' usage has.

Events are built as the API sends them: every one named by an ``event:`` line
that repeats its ``type``, the usage only in the last one. The mock's own
output is parsed in ``test_upstream_responses.py``; these are the edge cases.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccobs.proxy.sse import ServerSentEvent
from ccobs.proxy.usage import (
    StreamUsage,
    TokenCounts,
    UsageError,
    response_tokens,
    responses_tokens,
)


def usage(
    input_tokens: Any = 100, cached: Any = 30, output: Any = 40, reasoning: Any = 10
) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": 140,
    }


def event(kind: str, *, named: bool = True, **fields: Any) -> ServerSentEvent:
    data = json.dumps({"type": kind, "sequence_number": 0, **fields})
    return ServerSentEvent(event=kind if named else None, data=data)


def text_delta(text: str = "Hi", *, named: bool = True) -> ServerSentEvent:
    return event("response.output_text.delta", named=named, item_id="msg_1", delta=text)


def terminal(kind: str, named: bool = True, **response: Any) -> ServerSentEvent:
    return event(kind, named=named, response={"id": "resp_1", "object": "response", **response})


def fed(*events: ServerSentEvent) -> StreamUsage:
    reader = StreamUsage("responses")
    for item in events:
        reader.feed(item)
    return reader


# --------------------------------------------------------------------------- usage objects


def test_cached_tokens_are_split_off_the_input_tokens() -> None:
    assert responses_tokens(usage()) == TokenCounts(
        input=70, output=40, cache_read=30, reasoning=10
    )


def test_reasoning_stays_inside_output_and_out_of_the_token_types() -> None:
    counts = responses_tokens(usage())

    assert counts.output == 40
    assert counts.total == 140
    assert counts.by_type() == {"input": 70, "output": 40, "cache_read": 30, "cache_write": 0}


def test_reasoning_defaults_to_zero_and_adds_up() -> None:
    assert TokenCounts(1, 2, 3, 4) == TokenCounts(1, 2, 3, 4, reasoning=0)
    assert (TokenCounts(output=5, reasoning=2) + TokenCounts(output=3, reasoning=1)).reasoning == 3


@pytest.mark.parametrize("details", [{}, {"input_tokens_details": None}])
def test_usage_without_details_is_uncached_input_and_no_reasoning(details: dict[str, Any]) -> None:
    reported = {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17, **details}

    assert responses_tokens(reported) == TokenCounts(input=12, output=5)


def test_missing_counts_are_zero() -> None:
    assert responses_tokens({}) == TokenCounts()


def test_cached_beyond_the_input_and_reasoning_beyond_the_output_are_capped() -> None:
    assert responses_tokens(usage(input_tokens=10, cached=25, output=4, reasoning=9)) == (
        TokenCounts(input=0, output=4, cache_read=10, reasoning=4)
    )


def test_cache_writes_are_never_reported() -> None:
    assert responses_tokens(usage()).cache_write == 0


@pytest.mark.parametrize(
    "bad",
    [
        usage(input_tokens=-1),
        usage(input_tokens="100"),
        usage(output=True),
        usage(output=1.5),
        usage(cached=-3),
        usage(reasoning="many"),
        usage(input_tokens=2**60),
        {"input_tokens": 1, "input_tokens_details": [1]},
        {"output_tokens": 1, "output_tokens_details": "none"},
    ],
)
def test_garbage_values_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        responses_tokens(bad)


@pytest.mark.parametrize("bad", [None, [], "usage", 3])
def test_usage_that_is_not_an_object_is_rejected(bad: Any) -> None:
    with pytest.raises(UsageError, match="not an object"):
        responses_tokens(bad)


def test_response_tokens_reads_a_response_object() -> None:
    body = {"id": "resp_1", "object": "response", "status": "completed", "usage": usage()}

    assert response_tokens("responses", json.dumps(body).encode()) == responses_tokens(usage())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"id": "resp_1", "object": "response", "output": []}', "no usage"),
        (b'{"usage": null}', "not an object"),
        (b"[1, 2]", "no usage"),
        (b"{not json", "not JSON"),
    ],
)
def test_response_without_readable_usage_is_rejected(body: bytes, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        response_tokens("responses", body)


# --------------------------------------------------------------------------- streams


def test_completed_event_carries_the_usage_and_completes_the_stream() -> None:
    reader = fed(text_delta(), terminal("response.completed", status="completed", usage=usage()))

    assert reader.complete
    assert reader.usage_seen
    assert reader.error is None
    assert reader.tokens == responses_tokens(usage())


def test_nothing_is_counted_before_the_completed_event() -> None:
    reader = fed(
        terminal("response.created", status="in_progress", usage=None),
        terminal("response.in_progress", status="in_progress", usage=None),
        text_delta(),
    )

    assert not reader.complete
    assert not reader.usage_seen
    assert reader.tokens == TokenCounts()


def test_completed_without_usage_completes_with_no_usage_seen() -> None:
    reader = fed(terminal("response.completed", status="completed"))

    assert reader.complete
    assert not reader.usage_seen
    assert reader.tokens == TokenCounts()


def test_first_text_delta_is_the_first_token_and_only_once() -> None:
    reader = StreamUsage("responses")

    assert not reader.feed(terminal("response.created", status="in_progress"))
    assert reader.feed(text_delta("Hel"))
    assert not reader.feed(text_delta("lo"))
    assert reader.first_token


@pytest.mark.parametrize(
    "kind",
    [
        "response.reasoning_summary_text.delta",
        "response.reasoning_text.delta",
        "response.function_call_arguments.delta",
        "response.refusal.delta",
    ],
)
def test_any_output_delta_is_the_first_token(kind: str) -> None:
    reader = StreamUsage("responses")

    assert reader.feed(event(kind, delta="x"))
    assert not reader.feed(text_delta())


def test_unnamed_events_are_read_by_their_type() -> None:
    reader = StreamUsage("responses")

    assert reader.feed(text_delta(named=False))
    reader.feed(terminal("response.completed", named=False, status="completed", usage=usage()))
    assert reader.complete
    assert reader.tokens == responses_tokens(usage())


def test_named_events_with_nothing_to_account_are_not_parsed() -> None:
    reader = StreamUsage("responses")

    for kind in ("response.output_item.added", "response.content_part.done", "keepalive"):
        assert not reader.feed(ServerSentEvent(event=kind, data="{not json"))
    assert reader.feed(ServerSentEvent(event="response.output_text.delta", data="{not json"))
    assert reader.error is None


def test_failed_response_records_its_error_code_and_keeps_its_usage() -> None:
    failed = terminal(
        "response.failed",
        status="failed",
        error={"code": "server_error", "message": "The model failed."},
        usage=usage(output=3, reasoning=0),
    )

    reader = fed(text_delta(), failed)

    assert reader.error == "server_error"
    assert not reader.complete
    assert reader.tokens.output == 3


def test_failed_response_without_an_error_object_is_still_an_error() -> None:
    assert fed(terminal("response.failed", status="failed", error=None)).error == "error"


def test_incomplete_response_is_whole_with_its_reason_and_its_usage() -> None:
    incomplete = terminal(
        "response.incomplete",
        status="incomplete",
        incomplete_details={"reason": "max_output_tokens"},
        usage=usage(),
    )

    reader = fed(incomplete)

    assert reader.stop_reason == "max_output_tokens"
    assert reader.error is None  # a length stop, as on the other APIs
    assert reader.complete
    assert reader.usage_seen
    assert reader.tokens == responses_tokens(usage())


def test_incomplete_response_without_a_reason_is_incomplete() -> None:
    reader = fed(terminal("response.incomplete", status="incomplete", incomplete_details=None))

    assert reader.stop_reason == "incomplete"
    assert reader.complete


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (
            {"code": "rate_limit_exceeded", "message": "Slow down.", "param": None},
            "rate_limit_exceeded",
        ),
        ({"code": None, "message": "Oops."}, "error"),
        ({"error": {"type": "server_error", "code": None, "message": "x"}}, "server_error"),
        ({"error": {"type": "invalid_request_error", "code": "bad"}}, "bad"),
        ({"code": 42}, "error"),
    ],
)
def test_error_event_records_its_code(fields: dict[str, Any], error: str) -> None:
    assert fed(event("error", **fields)).error == error


def test_untyped_error_object_is_an_error_as_on_chat_streams() -> None:
    chunk = {"error": {"message": "upstream stream broke off", "type": "api_error"}}

    assert fed(ServerSentEvent(event=None, data=json.dumps(chunk))).error == "api_error"
    assert fed(ServerSentEvent(event=None, data='{"id": 1}')).error is None


def test_terminal_event_without_a_response_object_is_rejected() -> None:
    with pytest.raises(UsageError, match="no response object"):
        fed(event("response.completed", response=None))


def test_terminal_event_that_is_not_json_is_rejected() -> None:
    with pytest.raises(UsageError, match="not JSON"):
        fed(ServerSentEvent(event="response.completed", data="{not json"))


@pytest.mark.parametrize("bad", [usage(output=-1), usage(cached="3"), "lots", [1]])
def test_garbage_usage_in_the_completed_event_is_rejected(bad: Any) -> None:
    with pytest.raises(UsageError):
        fed(terminal("response.completed", status="completed", usage=bad))
