"""Token usage read the way both APIs report it, in one shape for proxy and load generator.

Events are built as the APIs send them (Anthropic names every event, OpenAI
sends bare ``data:`` chunks and a final ``[DONE]``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccobs.catalog import TOKEN_TYPES
from ccobs.proxy.sse import ServerSentEvent
from ccobs.proxy.usage import (
    StreamUsage,
    TokenCounts,
    UsageError,
    anthropic_tokens,
    openai_tokens,
    response_tokens,
)


def anthropic_event(kind: str, **fields: Any) -> ServerSentEvent:
    return ServerSentEvent(event=kind, data=json.dumps({"type": kind, **fields}))


def message_start(**usage: Any) -> ServerSentEvent:
    return anthropic_event("message_start", message={"id": "msg_1", "usage": usage})


def message_delta(**usage: Any) -> ServerSentEvent:
    return anthropic_event("message_delta", delta={"stop_reason": "end_turn"}, usage=usage)


def text_delta(text: str = "Hi") -> ServerSentEvent:
    return anthropic_event(
        "content_block_delta", index=0, delta={"type": "text_delta", "text": text}
    )


def openai_chunk(content: str | None = None, usage: Any = None, **extra: Any) -> ServerSentEvent:
    delta = {} if content is None else {"content": content}
    choices = [{"index": 0, "delta": delta}] if content is not None else []
    payload = {"object": "chat.completion.chunk", "choices": choices, "usage": usage, **extra}
    return ServerSentEvent(event=None, data=json.dumps(payload))


DONE = ServerSentEvent(event=None, data="[DONE]")


def fed(api: Any, *events: ServerSentEvent) -> StreamUsage:
    usage = StreamUsage(api)
    for event in events:
        usage.feed(event)
    return usage


# --------------------------------------------------------------------------- TokenCounts


def test_token_counts_add_type_by_type() -> None:
    assert TokenCounts(1, 2, 3, 4) + TokenCounts(10, 20, 30, 40) == TokenCounts(11, 22, 33, 44)


def test_total_is_the_sum_of_every_type() -> None:
    assert TokenCounts(1, 2, 3, 4).total == 10


def test_by_type_is_keyed_by_the_tokens_total_type_labels() -> None:
    counts = TokenCounts(input=1, output=2, cache_read=3, cache_write=4).by_type()

    assert tuple(counts) == TOKEN_TYPES
    assert counts == {"input": 1, "output": 2, "cache_read": 3, "cache_write": 4}


# --------------------------------------------------------------------------- Anthropic usage


def test_anthropic_usage_maps_each_field_to_its_token_type() -> None:
    usage = {
        "input_tokens": 12,
        "output_tokens": 34,
        "cache_read_input_tokens": 56,
        "cache_creation_input_tokens": 78,
    }

    assert anthropic_tokens(usage) == TokenCounts(
        input=12, output=34, cache_read=56, cache_write=78
    )


def test_anthropic_fields_missing_or_null_count_as_zero() -> None:
    usage = {"input_tokens": 5, "cache_read_input_tokens": None}

    assert anthropic_tokens(usage) == TokenCounts(input=5)


# --------------------------------------------------------------------------- OpenAI usage


def test_openai_cached_tokens_are_split_off_the_prompt_tokens() -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 64},
    }

    assert openai_tokens(usage) == TokenCounts(input=36, output=7, cache_read=64)


def test_openai_usage_without_details_is_all_uncached_input() -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": None}

    assert openai_tokens(usage) == TokenCounts(input=100, output=7)


def test_openai_cached_tokens_beyond_the_prompt_are_capped_at_the_prompt() -> None:
    usage = {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 25}}

    assert openai_tokens(usage) == TokenCounts(input=0, cache_read=10)


def test_openai_usage_never_has_cache_writes() -> None:
    usage = {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 4}}

    assert openai_tokens(usage).cache_write == 0


# --------------------------------------------------------------------------- rejected counts


@pytest.mark.parametrize("reader", [anthropic_tokens, openai_tokens])
def test_usage_that_is_not_an_object_is_rejected(reader: Any) -> None:
    with pytest.raises(UsageError, match="not an object"):
        reader([1, 2])


def test_negative_count_is_rejected() -> None:
    with pytest.raises(UsageError, match="input_tokens"):
        anthropic_tokens({"input_tokens": -1})


def test_bool_count_is_rejected_although_bool_is_an_int() -> None:
    with pytest.raises(UsageError, match="completion_tokens"):
        openai_tokens({"prompt_tokens": 3, "completion_tokens": True})


@pytest.mark.parametrize("value", [1.5, "12", [3]])
def test_count_that_is_not_an_integer_is_rejected(value: object) -> None:
    with pytest.raises(UsageError, match="output_tokens"):
        anthropic_tokens({"output_tokens": value})


def test_negative_cached_tokens_are_rejected() -> None:
    with pytest.raises(UsageError, match="cached_tokens"):
        openai_tokens({"prompt_tokens": 3, "prompt_tokens_details": {"cached_tokens": -2}})


def test_prompt_tokens_details_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(UsageError, match="prompt_tokens_details"):
        openai_tokens({"prompt_tokens": 3, "prompt_tokens_details": 2})


# --------------------------------------------------------------------------- response bodies


def test_response_tokens_reads_an_anthropic_message() -> None:
    body = json.dumps(
        {"type": "message", "usage": {"input_tokens": 3, "output_tokens": 4}}
    ).encode()

    assert response_tokens("anthropic", body) == TokenCounts(input=3, output=4)


def test_response_tokens_reads_an_openai_completion() -> None:
    body = json.dumps(
        {
            "object": "chat.completion",
            "usage": {
                "prompt_tokens": 9,
                "completion_tokens": 2,
                "prompt_tokens_details": {"cached_tokens": 5},
            },
        }
    ).encode()

    assert response_tokens("openai", body) == TokenCounts(input=4, output=2, cache_read=5)


def test_response_that_is_not_json_is_rejected() -> None:
    with pytest.raises(UsageError, match="not JSON"):
        response_tokens("anthropic", b"<html>502 Bad Gateway</html>")


@pytest.mark.parametrize("body", [b'{"type": "message"}', b"[1, 2]"])
def test_response_without_usage_is_rejected(body: bytes) -> None:
    with pytest.raises(UsageError, match="no usage"):
        response_tokens("openai", body)


# --------------------------------------------------------------------------- Anthropic streams


def test_message_start_reports_input_and_cache_tokens() -> None:
    usage = fed(
        "anthropic",
        message_start(
            input_tokens=20,
            output_tokens=1,
            cache_read_input_tokens=30,
            cache_creation_input_tokens=40,
        ),
    )

    assert usage.tokens == TokenCounts(input=20, output=1, cache_read=30, cache_write=40)
    assert usage.usage_seen


def test_message_delta_replaces_the_output_count_instead_of_adding_to_it() -> None:
    usage = fed(
        "anthropic",
        message_start(input_tokens=20, output_tokens=1),
        message_delta(output_tokens=5),
        message_delta(output_tokens=12),
    )

    assert usage.tokens == TokenCounts(input=20, output=12)


def test_message_delta_keeps_counts_it_does_not_report() -> None:
    usage = fed(
        "anthropic",
        message_start(input_tokens=20, output_tokens=1, cache_read_input_tokens=8),
        message_delta(output_tokens=9),
    )

    assert usage.tokens == TokenCounts(input=20, output=9, cache_read=8)


def test_message_delta_null_fields_keep_the_earlier_counts() -> None:
    usage = fed(
        "anthropic",
        message_start(input_tokens=20, output_tokens=1, cache_read_input_tokens=8),
        message_delta(
            input_tokens=None,
            output_tokens=9,
            cache_read_input_tokens=None,
            cache_creation_input_tokens=None,
        ),
    )

    assert usage.tokens == TokenCounts(input=20, output=9, cache_read=8)


def test_message_delta_input_and_cache_counts_replace_the_earlier_ones() -> None:
    usage = fed(
        "anthropic",
        message_start(input_tokens=20, output_tokens=1),
        message_delta(input_tokens=25, output_tokens=9, cache_creation_input_tokens=3),
    )

    assert usage.tokens == TokenCounts(input=25, output=9, cache_write=3)


def test_first_content_delta_is_the_first_token_and_only_once() -> None:
    usage = StreamUsage("anthropic")

    results = [
        usage.feed(message_start(input_tokens=1)),
        usage.feed(anthropic_event("content_block_start", index=0, content_block={})),
        usage.feed(text_delta("Hel")),
        usage.feed(text_delta("lo")),
    ]

    assert results == [False, False, True, False]
    assert usage.first_token


def test_anthropic_stream_is_complete_only_at_message_stop() -> None:
    usage = fed("anthropic", message_start(input_tokens=1), text_delta(), message_delta())
    assert not usage.complete

    usage.feed(anthropic_event("message_stop"))
    assert usage.complete


def test_anthropic_error_event_records_its_error_type() -> None:
    usage = fed(
        "anthropic",
        message_start(input_tokens=1),
        anthropic_event("error", error={"type": "overloaded_error", "message": "Overloaded"}),
    )

    assert usage.error == "overloaded_error"
    assert not usage.complete


def test_ping_is_ignored_without_reading_its_data() -> None:
    usage = StreamUsage("anthropic")

    assert usage.feed(ServerSentEvent(event="ping", data="not json")) is False
    assert usage.tokens == TokenCounts()


def test_usage_is_not_seen_before_a_usage_event() -> None:
    assert not fed("anthropic", text_delta()).usage_seen


def test_event_data_that_is_not_json_is_rejected() -> None:
    with pytest.raises(UsageError, match="not JSON"):
        StreamUsage("anthropic").feed(ServerSentEvent(event="message_start", data="{oops"))


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_event_data_that_is_not_an_object_is_rejected(api: Any) -> None:
    with pytest.raises(UsageError, match="not an object"):
        StreamUsage(api).feed(ServerSentEvent(event=None, data="[1, 2]"))


def test_negative_count_in_a_stream_is_rejected() -> None:
    usage = fed("anthropic", message_start(input_tokens=1))

    with pytest.raises(UsageError, match="output_tokens"):
        usage.feed(message_delta(output_tokens=-3))


# --------------------------------------------------------------------------- OpenAI streams


def test_openai_usage_chunk_reports_tokens_with_the_cached_split() -> None:
    usage = fed(
        "openai",
        openai_chunk("Hi"),
        openai_chunk(
            usage={
                "prompt_tokens": 50,
                "completion_tokens": 6,
                "prompt_tokens_details": {"cached_tokens": 20},
            }
        ),
    )

    assert usage.tokens == TokenCounts(input=30, output=6, cache_read=20)
    assert usage.usage_seen


def test_openai_null_usage_on_content_chunks_is_not_usage() -> None:
    usage = fed("openai", openai_chunk("Hi", usage=None))

    assert not usage.usage_seen
    assert usage.tokens == TokenCounts()


def test_openai_first_content_chunk_is_the_first_token_and_only_once() -> None:
    usage = StreamUsage("openai")
    role_only = ServerSentEvent(
        event=None, data=json.dumps({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    )

    results = [
        usage.feed(role_only),
        usage.feed(openai_chunk("")),
        usage.feed(openai_chunk("Hel")),
        usage.feed(openai_chunk("lo")),
    ]

    assert results == [False, False, True, False]


def test_openai_stream_is_complete_only_at_done() -> None:
    usage = fed("openai", openai_chunk("Hi"), openai_chunk(usage={"prompt_tokens": 1}))
    assert not usage.complete

    usage.feed(DONE)
    assert usage.complete


def test_openai_error_chunk_records_its_error_type() -> None:
    error = {"error": {"type": "server_error", "message": "upstream failed"}}

    usage = fed("openai", openai_chunk("Hi"), ServerSentEvent(event=None, data=json.dumps(error)))

    assert usage.error == "server_error"


def test_openai_choices_that_are_not_a_list_are_rejected() -> None:
    with pytest.raises(UsageError, match="choices"):
        StreamUsage("openai").feed(ServerSentEvent(event=None, data='{"choices": 5}'))


def test_openai_delta_that_is_not_an_object_is_rejected() -> None:
    chunk = ServerSentEvent(event=None, data='{"choices": [{"index": 0, "delta": "Hi"}]}')

    with pytest.raises(UsageError, match="delta"):
        StreamUsage("openai").feed(chunk)


def test_openai_bool_count_in_a_stream_is_rejected() -> None:
    with pytest.raises(UsageError, match="prompt_tokens"):
        StreamUsage("openai").feed(openai_chunk(usage={"prompt_tokens": False}))
