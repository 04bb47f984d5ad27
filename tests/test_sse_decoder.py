"""The proxy's byte-level SSE decoder reads what the line-level reader reads, cut anywhere.

The decoder the relay uses (``SSEDecoder.feed``) applies the WHATWG field
rules inline on bytes, for speed; ``iter_events`` applies them line by line
on text. Both must yield the same events from the same stream, however its
bytes arrive.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccobs.proxy.sse import ServerSentEvent, SSEDecoder, _event, iter_events

PIECES = [
    b"data:", b"data: ", b"data", b"event:", b"event: ", b"event", b":", b": ping", b"id: 1",
    b"retry: 5", b"\n", b"\r\n", b"\r", b"\n\n", b"x", b'{"a": 1}', "h\u00e9llo \u20ac".encode(),
    b"\xff\xfe", b" ", b"dat", b"a:", b"eve", b"nt:", b"data:  two spaces",
    b"event: a\ndata: {}\n\n", b"data: [DONE]\n\n", b"event: \xc3\ndata: \xa9\n\n",
]  # fmt: skip


def _by_lines(stream: bytes) -> list[ServerSentEvent]:
    async def lines() -> AsyncIterator[str]:
        for line in stream.splitlines(keepends=True):
            yield line.decode("utf-8", errors="replace")

    async def collect() -> list[ServerSentEvent]:
        return [event async for event in iter_events(lines())]

    return asyncio.run(collect())


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(PIECES), max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_byte_decoder_yields_the_events_the_line_reader_yields(
    pieces: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(pieces) + b"\n"  # ends on a line end: both have read every line
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    decoder = SSEDecoder()

    events = [e for a, b in pairwise(bounds) for e in decoder.feed(stream[a:b])]

    assert events == _by_lines(stream)


@given(name=st.none() | st.text(max_size=8), data=st.text(max_size=8))
def test_events_built_for_the_decoder_are_server_sent_events(name: str | None, data: str) -> None:
    fast, general = _event(name, data), ServerSentEvent(event=name, data=data)

    assert (fast, hash(fast), repr(fast)) == (general, hash(general), repr(general))
    assert type(fast) is ServerSentEvent


def test_events_built_for_the_decoder_stay_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _event("a", "b").data = "c"  # type: ignore[misc]
