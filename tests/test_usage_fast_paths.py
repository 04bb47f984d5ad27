"""The usage readers' fast paths give what the paths they stand in front of give.

``ccobs.proxy.usage`` reads plain ``int`` counts without ``_count``'s checks,
builds ``TokenCounts`` without its frozen ``__init__``, merges a
``message_delta``'s counts without building dicts, and recognises
Anthropic's compact ``content_block_delta`` and ``message_stop`` on their
text instead of parsing them. Each is checked here against the general path
on generated input near its edges: the same counts, the same state, the same
``UsageError``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccobs.proxy.sse import ServerSentEvent
from ccobs.proxy.usage import (
    _MAX_TOKEN_COUNT,
    StreamUsage,
    TokenCounts,
    UsageError,
    _count,
    _token_counts,
    anthropic_tokens,
)

ANTHROPIC_KEYS = [
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
]
VALUES: st.SearchStrategy[Any] = (
    st.integers(0, 1000)
    | st.integers(-(2**60), 2**60)
    | st.sampled_from([_MAX_TOKEN_COUNT, _MAX_TOKEN_COUNT + 1, -1, 0, True, False, None, 1.0])
    | st.floats()
    | st.text(max_size=3)
    | st.just({})
)
USAGE = st.dictionaries(st.sampled_from([*ANTHROPIC_KEYS, "server_tool_use", "x"]), VALUES)


def _outcome(call: Any, *args: Any) -> tuple[str, Any]:
    try:
        return ("value", call(*args))
    except UsageError as exc:
        return ("error", str(exc))


def _general_anthropic_tokens(usage: Mapping[str, Any]) -> TokenCounts:
    """``anthropic_tokens`` as it was before its fast path: every field through ``_count``."""
    if not isinstance(usage, Mapping):
        raise UsageError(f"usage is not an object: {usage!r}")
    return TokenCounts(
        input=_count(usage, "input_tokens"),
        output=_count(usage, "output_tokens"),
        cache_read=_count(usage, "cache_read_input_tokens"),
        cache_write=_count(usage, "cache_creation_input_tokens"),
    )


@settings(max_examples=400, deadline=None)
@given(usage=USAGE)
def test_anthropic_tokens_reads_what_count_reads(usage: dict[str, Any]) -> None:
    assert _outcome(anthropic_tokens, usage) == _outcome(_general_anthropic_tokens, usage)


@given(counts=st.tuples(*[st.integers(0, _MAX_TOKEN_COUNT)] * 5))
def test_token_counts_built_for_the_parsers_are_token_counts(
    counts: tuple[int, int, int, int, int],
) -> None:
    fast, general = _token_counts(*counts), TokenCounts(*counts)

    assert (fast, hash(fast), repr(fast)) == (general, hash(general), repr(general))
    assert type(fast) is TokenCounts
    assert dataclasses.asdict(fast) == dataclasses.asdict(general)


def test_token_counts_built_for_the_parsers_stay_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _token_counts(1, 2, 3, 4).input = 5  # type: ignore[misc]


def _general_message_delta(tokens: TokenCounts, usage: dict[str, Any]) -> TokenCounts:
    """The merge as it was: the reported (non-null) fields over the counts so far."""
    reported = {key: value for key, value in usage.items() if value is not None}
    so_far = dict(zip(ANTHROPIC_KEYS, dataclasses.astuple(tokens)[:4], strict=True))
    return anthropic_tokens({**so_far, **reported})


def _message_delta(usage: dict[str, Any]) -> ServerSentEvent:
    data = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage}
    return ServerSentEvent(event="message_delta", data=json.dumps(data))


@settings(max_examples=400, deadline=None)
@given(start=st.tuples(*[st.integers(0, 10**6)] * 4), usage=USAGE)
def test_a_message_delta_merges_as_the_general_path_does(
    start: tuple[int, int, int, int], usage: dict[str, Any]
) -> None:
    stream = StreamUsage("anthropic")
    stream.tokens = TokenCounts(*start)

    def merged() -> TokenCounts:
        assert stream.feed(_message_delta(usage)) is False
        return stream.tokens

    assert _outcome(merged) == _outcome(_general_message_delta, TokenCounts(*start), usage)


def _delta_text(index: str, kind: str, key: str, text: str, written: str) -> str:
    body = f'"{text}"' if written == "raw" else json.dumps(text, ensure_ascii=written == "ascii")
    return (
        f'{{"type":"content_block_delta","index":{index},'
        f'"delta":{{"type":"{kind}","{key}":{body}}}}}'
    )


STOP_AND_OTHER_DATA = [
    '{"type":"message_stop"}', '{"type": "message_stop"}', '{"type":"message_stop"} ',
    '{"type":"message_stop","x":1}', '{"type":"ping"}', "{oops", "[1]", "",
]  # fmt: skip


@st.composite
def _named_data(draw: st.DrawFn) -> str:
    """Data near the two shapes read on their text: canonical, mutated, or other JSON."""
    value = draw(
        st.builds(
            _delta_text,
            index=st.integers(0, 10**6).map(str) | st.from_regex(r"-?[0-9]{1,25}", fullmatch=True),
            kind=st.sampled_from(["text_delta", "input_json_delta", "Te", "", "a b"]),
            key=st.sampled_from(["text", "partial_json", "x-y", ""]),
            text=st.text(st.characters(blacklist_characters="\r\n"), max_size=30),
            written=st.sampled_from(["raw", "ascii", "utf-8"]),
        )
        | st.sampled_from(STOP_AND_OTHER_DATA)
    )
    if value and draw(st.booleans()):
        at = draw(st.integers(0, len(value) - 1))
        insert = draw(st.sampled_from(["", " ", '"', "\\", "\x01", "0", "}", "\ufffd"]))
        value = value[:at] + insert + value[at + draw(st.integers(0, 2)) :]
    return value


def _fed(name: str | None, data: str, first_token: bool) -> tuple[Any, ...]:
    usage = StreamUsage("anthropic")
    usage.first_token = first_token
    try:
        result: Any = usage.feed(ServerSentEvent(event=name, data=data))
    except UsageError as exc:
        result = str(exc)
    return result, dict(vars(usage))


@settings(max_examples=500, deadline=None)
@given(
    name=st.sampled_from(["content_block_delta", "message_stop"]),
    data=_named_data(),
    first_token=st.booleans(),
)
def test_events_read_on_their_text_read_as_their_parsed_data_does(
    name: str, data: str, first_token: bool
) -> None:
    # Once an Anthropic event's name is one that is read, only its data decides: the same
    # data without a name takes the parsing path.
    assert _fed(name, data, first_token) == _fed(None, data, first_token)
