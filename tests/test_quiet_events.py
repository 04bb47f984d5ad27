"""A chunk the relay passes on undecoded is one the decoding path would have found nothing in.

``ccobs.proxy.quiet_events`` lets the relay skip decoding and accounting for a
chunk of events that carry nothing to account. That is only safe where the
decoding path (``SSEDecoder.feed``, then ``StreamUsage.feed`` per event) would
return no first token, change no state and raise nothing for the same chunk,
and leave the decoder between events. These tests generate chunks near that
line (real shapes, names one character off, JSON broken in each way the
parser refuses) and check that every chunk matched quiet is one the decoding
path ignores, and that the shapes real upstreams send are matched.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccobs.proxy.quiet_events import quiet_event_matchers, quiet_matchers
from ccobs.proxy.sse import ServerSentEvent, SSEDecoder, encode_event
from ccobs.proxy.usage import Api, StreamUsage, UsageError

ANTHROPIC_NAMES = [
    "content_block_delta", "ping", "content_block_start", "content_block_stop", "message_delta",
    "message_start", "message_stop", "error", "", "content_block_deltas", "message_stop ", "Ping",
]  # fmt: skip
"""The first name is the one whose data decides: drawn as often as all the others."""
RESPONSES_NAMES = [
    "response.output_text.delta", "response.created", "response.in_progress",
    "response.output_item.added", "response.reasoning_summary_text.delta", "response.completed",
    "response.failed", "response.incomplete", "error", "response.output_text.done", ".delta",
    "response.completed.delta", "response.completedx", "",
]  # fmt: skip
NAME_TEXT = st.text(st.characters(blacklist_characters="\r\n"), max_size=30)
LINE_BYTES = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


def _delta_json(index: str, kind: str, key: str, text: str, *, written: str) -> str:
    """``content_block_delta`` data: ``text`` as JSON writes it (``\\u`` escapes or not), or raw."""
    body = f'"{text}"' if written == "raw" else json.dumps(text, ensure_ascii=written == "ascii")
    return (
        f'{{"type":"content_block_delta","index":{index},'
        f'"delta":{{"type":"{kind}","{key}":{body}}}}}'
    )


DELTA_DATA = st.builds(
    _delta_json,
    # Mostly what upstreams send, often not.
    index=st.integers(0, 10**6).map(str) | st.from_regex(r"-?[0-9]{1,25}", fullmatch=True),
    kind=st.sampled_from(["text_delta"] * 4 + ["input_json_delta", "thinking_delta", "Te", ""]),
    key=st.sampled_from(["text"] * 4 + ["partial_json", "thinking", "signature", "x-y", ""]),
    text=st.text(st.characters(blacklist_characters="\r\n"), max_size=40),
    written=st.sampled_from(["raw", "ascii", "utf-8"]),
)


@st.composite
def _data(draw: st.DrawFn) -> bytes:
    """A data line's value: a delta (valid or not), mutated or not, or any bytes."""
    kind = draw(st.sampled_from(["delta", "delta", "delta", "mutated", "bytes", "json"]))
    if kind == "bytes":
        return draw(LINE_BYTES)
    if kind == "json":
        return json.dumps(draw(st.dictionaries(st.text(max_size=5), st.integers()))).encode()
    value = draw(DELTA_DATA).encode("utf-8", "surrogatepass")  # lone ones: invalid UTF-8
    if kind == "mutated" and value:
        at = draw(st.integers(0, len(value) - 1))
        insert = draw(st.sampled_from([b"", b" ", b'"', b"\\", b"\x01", b"0", b"}", b"\xff"]))
        cut = draw(st.integers(0, 2))
        value = value[:at] + insert + value[at + cut :]
    return value.replace(b"\r", b"").replace(b"\n", b"")


@st.composite
def _chunk(draw: st.DrawFn, names: list[str]) -> tuple[bytes, int]:
    """One to four events in the APIs' framing (now and then not), and how many."""
    events = []
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3, 4]))):
        name = draw(st.sampled_from([names[0]] * len(names) + names) | NAME_TEXT)
        head = draw(st.sampled_from([b"event: "] * 4 + [b"event:", b""]))
        line = head + name.encode("utf-8", "surrogatepass") + b"\n" if head else b""
        events.append(line + b"data: " + draw(_data()) + b"\n\n")
    return b"".join(events), len(events)


def _state(usage: StreamUsage) -> dict[str, Any]:
    return dict(vars(usage))


def _assert_ignored_by_decoding(api: Api, chunk: bytes, events: int, first_token: bool) -> None:
    decoder = SSEDecoder()
    decoded = decoder.feed(chunk)
    assert len(decoded) == events
    assert decoder.open_bytes == 0  # still between events
    usage = StreamUsage(api)
    usage.first_token = first_token
    before = _state(usage)
    for event in decoded:
        assert usage.feed(event) is False
    assert _state(usage) == before


@settings(max_examples=250, deadline=None)
@given(chunk=_chunk(ANTHROPIC_NAMES), first_token=st.booleans())
def test_a_quiet_anthropic_chunk_is_one_the_decoding_path_ignores(
    chunk: tuple[bytes, int], first_token: bool
) -> None:
    quiet = quiet_matchers("anthropic")[first_token]
    assert quiet is not None
    if quiet(chunk[0]) is not None:
        _assert_ignored_by_decoding("anthropic", chunk[0], chunk[1], first_token)


@settings(max_examples=150, deadline=None)
@given(chunk=_chunk(RESPONSES_NAMES), first_token=st.booleans())
def test_a_quiet_responses_chunk_is_one_the_decoding_path_ignores(
    chunk: tuple[bytes, int], first_token: bool
) -> None:
    quiet = quiet_matchers("responses")[first_token]
    assert quiet is not None
    if quiet(chunk[0]) is not None:
        _assert_ignored_by_decoding("responses", chunk[0], chunk[1], first_token)


@settings(max_examples=250, deadline=None)
@given(data=_data())
def test_a_quiet_anthropic_delta_is_one_the_decoding_path_ignores(data: bytes) -> None:
    chunk = b"event: content_block_delta\ndata: " + data + b"\n\n"
    quiet = quiet_matchers("anthropic")[True]
    assert quiet is not None
    if quiet(chunk) is not None:
        _assert_ignored_by_decoding("anthropic", chunk, 1, True)


def _anthropic_delta(text: str, kind: str = "text_delta", key: str = "text") -> bytes:
    data = {"type": "content_block_delta", "index": 0, "delta": {"type": kind, key: text}}
    return encode_event(data, "content_block_delta")


@pytest.mark.parametrize(
    "chunk",
    [
        _anthropic_delta(" Hello"),
        _anthropic_delta('quote " backslash \\ tab \t caf\u00e9 \u2603 \U0001f600'),
        _anthropic_delta('{"path": "a.py"', "input_json_delta", "partial_json"),
        _anthropic_delta("Let me think", "thinking_delta", "thinking"),
        _anthropic_delta(" a") + _anthropic_delta(" b") + encode_event({"type": "ping"}, "ping"),
        encode_event({"type": "content_block_stop", "index": 0}, "content_block_stop"),
    ],
)
def test_anthropic_deltas_after_the_first_token_are_quiet(chunk: bytes) -> None:
    quiet = quiet_matchers("anthropic")[True]
    assert quiet is not None
    assert quiet(chunk) is not None
    _assert_ignored_by_decoding("anthropic", chunk, chunk.count(b"\n\n"), True)


def test_the_first_anthropic_delta_is_not_quiet() -> None:
    quiet = quiet_matchers("anthropic")[False]
    assert quiet is not None
    assert quiet(_anthropic_delta(" Hello")) is None


@pytest.mark.parametrize(
    "chunk",
    [
        encode_event({"type": "message_delta", "usage": {"output_tokens": 5}}, "message_delta"),
        encode_event({"type": "message_stop"}, "message_stop"),
        encode_event({"type": "message_start", "message": {}}, "message_start"),
        encode_event({"type": "error", "error": {"type": "overloaded_error"}}, "error"),
        _anthropic_delta(" a") + encode_event({"type": "message_stop"}, "message_stop"),
        _anthropic_delta(" a")[:-1],  # ends inside the event
        b": keep-alive\n\n" + _anthropic_delta(" a"),
        _anthropic_delta(" a").replace(b'"index":0', b'"index": 0'),
        _anthropic_delta(" a").replace(b'"index":0', b'"index":01'),
        _anthropic_delta(" a").replace(b'"index":0', b'"index":' + b"1" * 5000),
    ],
)
def test_anthropic_events_with_something_to_read_are_not_quiet(chunk: bytes) -> None:
    quiet = quiet_matchers("anthropic")[True]
    assert quiet is not None
    assert quiet(chunk) is None


def test_responses_deltas_are_quiet_only_after_the_first_token() -> None:
    chunk = encode_event(
        {"type": "response.output_text.delta", "delta": " Hi"}, "response.output_text.delta"
    )
    before, after = quiet_matchers("responses")
    assert before is not None
    assert after is not None
    assert before(chunk) is None
    assert after(chunk) is not None


@pytest.mark.parametrize(
    "name", ["response.completed", "response.failed", "response.incomplete", "error"]
)
def test_responses_final_and_error_events_are_never_quiet(name: str) -> None:
    chunk = encode_event({"type": name, "response": {}}, name)
    for quiet in quiet_matchers("responses"):
        assert quiet is not None
        assert quiet(chunk) is None


def _chat_value(draw: st.DrawFn) -> object:
    return draw(
        st.none() | st.sampled_from(["stop", "length", ""]) | st.text(max_size=12)
        | st.integers(-(10**20), 10**20) | st.booleans()
        | st.floats(allow_nan=False) | st.just({}) | st.just([]) | st.just({"x": 1})
    )  # fmt: skip


@st.composite
def _chat_data(draw: st.DrawFn) -> bytes:
    """A Chat chunk's data: keys and values of the real shape and others, mutated or not."""
    delta_keys = st.sampled_from(["content", "content", "role", "refusal", "tool_calls", "x"])
    choice_keys = st.sampled_from(["index", "delta", "logprobs", "finish_reason", "x"])
    chunk_keys = st.sampled_from(
        ["id", "created", "model", "system_fingerprint", "usage", "error", "service_tier", "x"]
    )
    choices = []
    for _ in range(draw(st.sampled_from([1, 1, 1, 0, 2]))):
        delta = {k: draw(st.text(max_size=12) | st.none()) for k in draw(st.lists(delta_keys))}
        choice: dict[str, object] = {"index": 0, "delta": delta, "finish_reason": None}
        for key in draw(st.lists(choice_keys, max_size=1)):
            choice[key] = _chat_value(draw)
        choices.append(choice)
    data: dict[str, object] = {"id": "chatcmpl-1", "object": "chat.completion.chunk"}
    for key in draw(st.lists(chunk_keys, max_size=2)):
        data[key] = _chat_value(draw)
    data["choices"] = choices
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=draw(st.booleans()))
    value = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        at = draw(st.integers(0, len(value) - 1))
        insert = draw(st.sampled_from([b"", b" ", b'"', b"\\", b"\x01", b"0", b"}", b","]))
        value = value[:at] + insert + value[at + draw(st.integers(0, 2)) :]
    return value.replace(b"\r", b"").replace(b"\n", b"")


@settings(max_examples=200, deadline=None)
@given(data=st.lists(_chat_data(), min_size=1, max_size=3))
def test_a_quiet_chat_chunk_is_one_the_decoding_path_ignores(data: list[bytes]) -> None:
    chunk = b"".join(b"data: " + value + b"\n\n" for value in data)
    quiet = quiet_matchers("openai")[True]
    assert quiet is not None
    if quiet(chunk) is not None:
        _assert_ignored_by_decoding("openai", chunk, len(data), True)


def _chat_chunk(delta: dict[str, object], finish_reason: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1733300000,
            "model": "gpt-4o", "system_fingerprint": "fp_1", "choices": [choice],
            "usage": None}  # fmt: skip
    return encode_event(data)


def test_chat_content_chunks_after_the_first_token_are_quiet() -> None:
    before, after = quiet_matchers("openai")
    chunk = _chat_chunk({"content": ' say "hi"\n'})
    assert before is None
    assert after is not None
    assert after(chunk) is not None
    _assert_ignored_by_decoding("openai", chunk, 1, True)


@pytest.mark.parametrize(
    "chunk",
    [
        _chat_chunk({}, "stop"),
        _chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}),
        encode_event({"id": "c", "choices": [], "usage": {"prompt_tokens": 5}}),
        encode_event({"error": {"type": "server_error"}}),
        b"data: [DONE]\n\n",
        _chat_chunk({"content": "a"}).replace(b'"created":', b'"created": '),
    ],
)
def test_chat_chunks_with_something_to_read_are_not_quiet(chunk: bytes) -> None:
    quiet = quiet_matchers("openai")[True]
    assert quiet is not None
    assert quiet(chunk) is None


def _read(api: Api, events: list[ServerSentEvent], first_token: bool) -> tuple[Any, ...]:
    """What StreamUsage makes of ``events``: the first-token answers and its state after."""
    usage = StreamUsage(api)
    usage.first_token = first_token
    answers = []
    for event in events:
        try:
            answers.append(usage.feed(event))
        except UsageError as exc:
            answers.append(str(exc))
    return answers.count(True), [a for a in answers if isinstance(a, str)], _state(usage)


@settings(max_examples=250, deadline=None)
@given(
    api_and_chunks=st.sampled_from(["anthropic", "responses", "openai"]).flatmap(
        lambda api: st.tuples(
            st.just(api),
            st.lists(
                _chunk(ANTHROPIC_NAMES if api == "anthropic" else RESPONSES_NAMES)
                if api != "openai"
                else st.lists(_chat_data(), min_size=1, max_size=2).map(
                    lambda d: (b"".join(b"data: " + v + b"\n\n" for v in d), len(d))
                ),
                min_size=1,
                max_size=3,
            ),
        )
    ),
    first_token=st.booleans(),
)
def test_skipping_quiet_events_in_a_mixed_chunk_reads_the_same(
    api_and_chunks: tuple[Api, list[tuple[bytes, int]]], first_token: bool
) -> None:
    api, chunks = api_and_chunks
    chunk = b"".join(c for c, _ in chunks)
    skip = quiet_event_matchers(api)[first_token]
    every, skipping = SSEDecoder(), SSEDecoder()

    read_every = _read(api, every.feed(chunk), first_token)
    read_skipping = _read(api, skipping.feed(chunk, skip), first_token)

    assert read_skipping == read_every
    assert skipping.open_bytes == every.open_bytes


def test_a_mixed_anthropic_chunk_skips_its_quiet_events() -> None:
    deltas = _anthropic_delta(" a") + _anthropic_delta(" b")
    stop = encode_event({"type": "message_stop"}, "message_stop")

    events = SSEDecoder().feed(deltas + stop, quiet_event_matchers("anthropic")[True])

    assert [event.event for event in events] == ["message_stop"]
