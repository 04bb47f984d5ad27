"""Malformed upstream answers: the client gets something sensible, the request is counted once.

An upstream (or something between the proxy and it) can answer invalid JSON,
JSON without usage or with usage of the wrong types, unknown or unreadable
stream events, a stream cut short, a wrong content type or an enormous body.
For each, the client gets the answer passed through, a 502 with a clear body,
or a stream that ends with an error event; the request is counted exactly
once in ``ccproxy_requests_total`` (and in ``ccproxy_errors_total`` when it is
an error, under a telling ``error_type``); the tokens counted are those that
could be read, never negative or NaN; and it leaves one access-log line.

The answers come from a scripted ASGI upstream on a loopback port, or from a
raw socket server for framing faults that no HTTP framework produces.
"""

from __future__ import annotations

import gzip
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from asgi_server import serve_asgi
from proxy_harness import (
    ANTHROPIC_MODEL,
    ProxyUnderTest,
    RawServer,
    read_http_request,
    request_body,
    running_proxy,
)
from starlette.types import Receive, Scope, Send

from ccobs.proxy.sse import SSEDecoder, encode_event

PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}
JSON = [(b"content-type", b"application/json")]
EVENT_STREAM = [(b"content-type", b"text/event-stream")]


# -- the scripted upstream ----------------------------------------------------------------------


@dataclass
class Answer:
    """What the upstream sends: a body in one piece, or a list of chunks streamed in turn."""

    body: bytes | list[bytes]
    headers: list[tuple[bytes, bytes]] = field(default_factory=lambda: list(JSON))
    status: int = 200


class ScriptedUpstream:
    """An ASGI app that answers every request with :attr:`answer`, headers byte for byte."""

    def __init__(self) -> None:
        self.answer = Answer(b"{}")
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        self.requests += 1
        while (await receive()).get("more_body"):
            pass
        answer = self.answer
        headers = list(answer.headers)
        if isinstance(answer.body, bytes):
            headers.append((b"content-length", str(len(answer.body)).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        chunks = [answer.body] if isinstance(answer.body, bytes) else answer.body
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[str, ScriptedUpstream]]:
    """One upstream for the module: it keeps no state but the answer each test sets."""
    upstream = ScriptedUpstream()
    with serve_asgi(upstream) as server:
        yield server.url, upstream


@pytest.fixture
def proxy(
    isolated_logging: None, scripted: tuple[str, ScriptedUpstream]
) -> Iterator[ProxyUnderTest]:
    with running_proxy(scripted[0], read_timeout=10.0) as running:
        yield running


@pytest.fixture
def upstream(scripted: tuple[str, ScriptedUpstream]) -> ScriptedUpstream:
    return scripted[1]


# -- answers ------------------------------------------------------------------------------------


def anthropic_message(usage: Any = None, **extra: Any) -> bytes:
    message: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC_MODEL,
        "content": [{"type": "text", "text": "hello"}],
        "stop_reason": "end_turn",
        **extra,
    }
    if usage is not None:
        message["usage"] = usage
    return json.dumps(message).encode()


def anthropic_events(
    *, start_usage: Any = None, final_usage: Any = None, stop: bool = True
) -> list[bytes]:
    """Anthropic's event sequence, one event a chunk; ``stop=False`` leaves out message_stop."""
    start_usage = start_usage or {
        "input_tokens": 10,
        "cache_read_input_tokens": 3,
        "cache_creation_input_tokens": 2,
        "output_tokens": 1,
    }
    message = {"id": "msg_1", "type": "message", "role": "assistant", "usage": start_usage}
    events = [
        encode_event({"type": "message_start", "message": message}, "message_start"),
        encode_event(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
            "content_block_start",
        ),
        encode_event({"type": "ping"}, "ping"),
        encode_event(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "hi"},
            },
            "content_block_delta",
        ),
        encode_event({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        encode_event(
            {"type": "message_delta", "delta": {}, "usage": final_usage or {"output_tokens": 7}},
            "message_delta",
        ),
    ]
    if stop:
        events.append(encode_event({"type": "message_stop"}, "message_stop"))
    return events


def openai_completion(usage: Any) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}],
            "usage": usage,
        }
    ).encode()


def openai_chunks(usage: Any, *, done: bool = True) -> list[bytes]:
    def chunk(delta: dict[str, Any], **extra: Any) -> bytes:
        return encode_event(
            {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}], **extra}
        )

    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "hello"}),
        encode_event({"object": "chat.completion.chunk", "choices": [], "usage": usage}),
    ]
    if done:
        chunks.append(encode_event("[DONE]"))
    return chunks


# -- checks -------------------------------------------------------------------------------------


def call(proxy: ProxyUnderTest, api: str = "anthropic", *, stream: bool = False) -> httpx.Response:
    """One request through the proxy, read whole, once it is counted and logged."""
    response = httpx.post(proxy.url + PATHS[api], json=request_body(api, stream=stream), timeout=60)
    proxy.settle(1)
    return response


def assert_counted_once(proxy: ProxyUnderTest, status: int, error_type: str | None) -> None:
    """One request counted under ``status``, one error under ``error_type`` (or none), one line."""
    assert proxy.statuses() == {str(status): 1.0}
    assert proxy.errors() == ({error_type: 1.0} if error_type else {})
    lines = proxy.access_lines()
    assert len(lines) == 1
    assert lines[0].get("error_type") == error_type
    for count in proxy.tokens().values():
        assert math.isfinite(count)
        assert count >= 0
    assert proxy.exposition()["ccproxy_requests"]  # /metrics still renders and parses


def error_event_at_end(body: bytes, api: str) -> dict[str, Any]:
    """The error event that ends ``body``, parsed, after checking the client can read it all.

    Every event must parse as JSON and none may be left open, so a cut upstream
    event can never have been glued onto the proxy's error event.
    """
    decoder = SSEDecoder()
    events = decoder.feed(body)
    assert decoder.open_bytes == 0, body[-300:]
    for event in events:
        if event.data != "[DONE]":
            event.json()
    if api == "anthropic":
        assert events[-1].event == "error"
    data = events[-1].json()
    assert isinstance(data, dict)
    assert data["error"]["message"]
    return data


# -- non-streaming answers ----------------------------------------------------------------------


def test_invalid_json_answer_is_passed_through_and_counted_as_invalid_response(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream
) -> None:
    """The bytes reach the client untouched; the error is the upstream's, named as such."""
    upstream.answer = Answer(b'{"id": "msg_1", "usage": {"input_tok')

    response = call(proxy)

    assert response.status_code == 200
    assert response.content == b'{"id": "msg_1", "usage": {"input_tok'
    assert_counted_once(proxy, 200, "upstream_invalid_response")
    assert proxy.tokens() == {}


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_answer_without_usage_is_passed_through_and_counted_as_invalid_response(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream, api: str
) -> None:
    """Without usage no tokens can be counted; the missing usage is what gets flagged."""
    body = anthropic_message() if api == "anthropic" else openai_completion(None)
    upstream.answer = Answer(body.replace(b', "usage": null', b""))

    response = call(proxy, api)

    assert response.status_code == 200
    assert response.content == upstream.answer.body
    assert_counted_once(proxy, 200, "upstream_invalid_response")
    assert proxy.tokens() == {}


def test_usage_fields_missing_or_null_count_as_zero_and_the_rest_is_counted(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream
) -> None:
    """Partial usage is still usage: the fields that are there are the tokens billed."""
    upstream.answer = Answer(
        anthropic_message({"output_tokens": 12, "cache_read_input_tokens": None})
    )

    response = call(proxy)

    assert response.status_code == 200
    assert_counted_once(proxy, 200, None)
    assert proxy.tokens() == {"output": 12.0}


def test_openai_partial_usage_counts_what_is_there(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream
) -> None:
    """No completion count and null details: the prompt tokens alone are counted, as input."""
    upstream.answer = Answer(openai_completion({"prompt_tokens": 9, "prompt_tokens_details": None}))

    call(proxy, "openai")

    assert_counted_once(proxy, 200, None)
    assert proxy.tokens() == {"input": 9.0}


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("12", id="string"),
        pytest.param(-5, id="negative"),
        pytest.param(3.5, id="float"),
        pytest.param(True, id="bool"),
        pytest.param([4], id="list"),
        pytest.param(10**30, id="beyond-exact-float"),
        pytest.param(10**400, id="beyond-any-float"),
    ],
)
def test_usage_of_the_wrong_type_counts_nothing_and_is_flagged(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream, bad: Any
) -> None:
    """A count that is not a believable token count discards that usage, never the request.

    ``10**400`` once crashed the request with an OverflowError: a Python int that
    large cannot be added to a float counter.
    """
    upstream.answer = Answer(anthropic_message({"input_tokens": 4, "output_tokens": bad}))

    response = call(proxy)

    assert response.status_code == 200
    assert response.content == upstream.answer.body
    assert_counted_once(proxy, 200, "upstream_invalid_response")
    assert proxy.tokens() == {}


def test_usage_that_is_not_an_object_counts_nothing_and_is_flagged(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream
) -> None:
    upstream.answer = Answer(anthropic_message("lots"))

    call(proxy)

    assert_counted_once(proxy, 200, "upstream_invalid_response")
    assert proxy.tokens() == {}


def test_answer_nested_too_deep_to_parse_is_passed_through_not_a_500(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream
) -> None:
    """Once a RecursionError escaped the usage reader and the client got a 500."""
    upstream.answer = Answer(b'{"usage": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")

    response = call(proxy)

    assert response.status_code == 200
    assert response.content == upstream.answer.body
    assert_counted_once(proxy, 200, "upstream_invalid_response")


def test_valid_answer_under_a_wrong_content_type_is_still_accounted(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream
) -> None:
    """The proxy reads the body in the format the client asked for; the label is not trusted."""
    upstream.answer = Answer(
        anthropic_message({"input_tokens": 5, "output_tokens": 6}),
        headers=[(b"content-type", b"text/plain")],
    )

    response = call(proxy)

    assert response.headers["content-type"] == "text/plain"
    assert_counted_once(proxy, 200, None)
    assert proxy.tokens() == {"input": 5.0, "output": 6.0}


def test_non_ascii_response_headers_reach_the_client_byte_for_byte(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream
) -> None:
    """A UTF-8 header value once made the proxy answer 500: httpx decoded it to characters
    Starlette could not encode as latin-1. Repeated headers stay repeated.
    """
    upstream.answer = Answer(
        anthropic_message({"input_tokens": 1, "output_tokens": 1}),
        headers=[
            *JSON,
            (b"x-note", "naïve ☃".encode()),
            (b"x-raw", b"\xff\xfe"),
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
        ],
    )

    response = call(proxy)

    assert response.status_code == 200
    raw = response.headers.raw
    assert (b"x-note", "naïve ☃".encode()) in raw
    assert (b"x-raw", b"\xff\xfe") in raw
    assert [v for k, v in raw if k == b"set-cookie"] == [b"a=1", b"b=2"]
    assert_counted_once(proxy, 200, None)


def test_body_that_does_not_match_its_content_encoding_is_a_502(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream
) -> None:
    """``content-encoding: gzip`` on a plain body: once a DecodingError and a 500."""
    upstream.answer = Answer(
        anthropic_message({"input_tokens": 1, "output_tokens": 1}),
        headers=[*JSON, (b"content-encoding", b"gzip")],
    )

    response = call(proxy)

    assert response.status_code == 502
    assert response.json()["error"]["type"] == "api_error"
    assert "decoded" in response.json()["error"]["message"]
    assert_counted_once(proxy, 502, "upstream_invalid_response")


def test_compressed_answer_reaches_the_client_decoded_and_is_accounted(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream
) -> None:
    """An upstream that compresses although asked not to: usage is read, the client gets JSON."""
    plain = anthropic_message({"input_tokens": 2, "output_tokens": 3})
    upstream.answer = Answer(gzip.compress(plain), headers=[*JSON, (b"content-encoding", b"gzip")])

    response = call(proxy)

    assert response.content == plain
    assert "content-encoding" not in response.headers
    assert_counted_once(proxy, 200, None)
    assert proxy.tokens() == {"input": 2.0, "output": 3.0}


def test_enormous_answer_is_passed_through_whole_and_accounted(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream
) -> None:
    """24 MB of text in one answer: relayed byte for byte, usage read at its end."""
    body = anthropic_message(
        {"input_tokens": 8, "output_tokens": 6_000_000},
        content=[{"type": "text", "text": "word " * 4_800_000}],
    )
    upstream.answer = Answer(body)

    response = call(proxy)

    assert response.status_code == 200
    assert len(response.content) == len(body)
    assert response.content == body
    assert_counted_once(proxy, 200, None)
    assert proxy.tokens() == {"input": 8.0, "output": 6_000_000.0}


def test_error_status_with_a_body_in_no_known_format_is_passed_through(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream
) -> None:
    """An HTML 503 from a load balancer: the client sees it as sent, counted as upstream_503."""
    upstream.answer = Answer(
        b"<html>Service Unavailable</html>", headers=[(b"content-type", b"text/html")], status=503
    )

    response = call(proxy)

    assert response.status_code == 503
    assert response.text == "<html>Service Unavailable</html>"
    assert_counted_once(proxy, 503, "upstream_503")


# -- streams ------------------------------------------------------------------------------------


def test_unknown_event_types_are_relayed_and_ignored(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream
) -> None:
    """New event types appear as the APIs grow; they must not break accounting."""
    events = anthropic_events()
    events[3:3] = [
        encode_event({"type": "thinking_budget", "tokens": -1}, "thinking_budget"),
        encode_event("not even json", "vendor_extension"),
        b": a comment line\n\n",
        b"retry: 100\nid: 7\n\n",
    ]
    upstream.answer = Answer(events, headers=EVENT_STREAM)

    response = call(proxy, stream=True)

    assert response.content == b"".join(events)
    assert_counted_once(proxy, 200, None)
    assert proxy.tokens() == {"input": 10.0, "cache_read": 3.0, "cache_write": 2.0, "output": 7.0}


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_event_with_invalid_json_is_relayed_and_flagged_once(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream, api: str
) -> None:
    """The bad event reaches the client (it is the upstream's); the readable events still count."""
    if api == "anthropic":
        events = anthropic_events()
        events.insert(4, b'event: content_block_delta\ndata: {"type": "content_blo\n\n')
        events.insert(5, b"event: content_block_delta\ndata: [[[[[\n\n")
        tokens = {"input": 10.0, "cache_read": 3.0, "cache_write": 2.0, "output": 7.0}
    else:
        events = openai_chunks({"prompt_tokens": 4, "completion_tokens": 2})
        events.insert(1, b"data: {not json}\n\n")
        tokens = {"input": 4.0, "output": 2.0}
    upstream.answer = Answer(events, headers=EVENT_STREAM)

    response = call(proxy, api, stream=True)

    assert response.content == b"".join(events)
    assert_counted_once(proxy, 200, "upstream_invalid_response")
    assert proxy.tokens() == tokens


def test_stream_usage_of_the_wrong_type_keeps_the_counts_read_before_it(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream
) -> None:
    """message_start's counts were valid; a negative output count later is not believed."""
    upstream.answer = Answer(
        anthropic_events(final_usage={"output_tokens": -40}), headers=EVENT_STREAM
    )

    response = call(proxy, stream=True)

    assert response.status_code == 200
    assert_counted_once(proxy, 200, "upstream_invalid_response")
    assert proxy.tokens() == {"input": 10.0, "cache_read": 3.0, "cache_write": 2.0, "output": 1.0}


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_stream_that_ends_before_its_last_event_gets_an_error_event(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream, api: str
) -> None:
    """A well-framed body that stops before message_stop / [DONE] is not a whole answer.

    Without the appended error event an SDK would return the cut message as if complete.
    """
    if api == "anthropic":
        events = anthropic_events(stop=False)
    else:
        events = openai_chunks({"prompt_tokens": 4, "completion_tokens": 2}, done=False)
    upstream.answer = Answer(events, headers=EVENT_STREAM)

    response = call(proxy, api, stream=True)

    assert response.status_code == 200
    assert response.content.startswith(b"".join(events))
    assert "ended before" in error_event_at_end(response.content, api)["error"]["message"]
    assert_counted_once(proxy, 200, "upstream_incomplete_stream")


def test_json_answer_to_a_stream_request_is_relayed_untouched_and_flagged(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream
) -> None:
    """Not an event stream at all: no SSE error event is spliced into the JSON body."""
    body = anthropic_message({"input_tokens": 1, "output_tokens": 1})
    upstream.answer = Answer(body)

    response = call(proxy, stream=True)

    assert response.content == body
    assert_counted_once(proxy, 200, "upstream_invalid_response")


def test_enormous_single_event_is_relayed_whole_in_linear_time(
    proxy: ProxyUnderTest, upstream: ScriptedUpstream
) -> None:
    """A 32 MB delta on one line. The SSE reader once re-copied the growing line for every
    chunk received, quadratic in its length: ~5 s of blocked event loop per 16 MB.
    """
    events = anthropic_events()
    huge = encode_event(
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "x" * (32 * 1024 * 1024)},
        },
        "content_block_delta",
    )
    chunks = [huge[i : i + 65536] for i in range(0, len(huge), 65536)]
    upstream.answer = Answer([*events[:3], *chunks, *events[3:]], headers=EVENT_STREAM)

    started = time.monotonic()
    response = call(proxy, stream=True)
    elapsed = time.monotonic() - started

    assert len(response.content) == len(huge) + sum(len(e) for e in events)
    assert_counted_once(proxy, 200, None)
    assert proxy.tokens()["output"] == 7.0
    assert elapsed < 15.0, f"relaying one 32 MB event took {elapsed:.1f} s"


# -- framing faults from a raw socket -----------------------------------------------------------


def _head(*headers: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.fixture
def raw_proxy(isolated_logging: None) -> Iterator[tuple[ProxyUnderTest, list[bytes]]]:
    """A proxy in front of a raw socket server that sends, per connection, the bytes in the list.

    The server reads the whole request first, so its close is a clean FIN, never a reset.
    """
    script: list[bytes] = []

    def handler(conn: socket.socket) -> None:
        read_http_request(conn)
        for piece in script:
            conn.sendall(piece)
            time.sleep(0.01)  # separate reads for the proxy, as on a real network

    with RawServer(handler) as server, running_proxy(server.url, read_timeout=10.0) as proxy:
        yield proxy, script


def test_stream_cut_mid_event_ends_with_an_error_event_the_client_can_read(
    raw_proxy: tuple[ProxyUnderTest, list[bytes]],
) -> None:
    """Chunked framing, connection closed inside a chunk and an event.

    The half event is neither accounted nor relayed: the proxy once passed it
    on and appended its error event to it, and the client read the two as one
    event with unreadable data, never seeing the error.
    """
    proxy, script = raw_proxy
    events = anthropic_events()
    half = events[3][: len(events[3]) // 2]
    script += [
        _head(b"content-type: text/event-stream", b"transfer-encoding: chunked"),
        _chunk(events[0]),
        b"%x\r\n%s" % (len(events[3]), half),
    ]

    response = call(proxy, stream=True)

    assert response.content.startswith(events[0] + b"event: error\n")
    assert "broke off" in error_event_at_end(response.content, "anthropic")["error"]["message"]
    assert_counted_once(proxy, 200, "upstream_stream_error")
    assert proxy.tokens() == {"input": 10.0, "cache_read": 3.0, "cache_write": 2.0, "output": 1.0}


def test_close_delimited_stream_cut_before_message_stop_ends_with_an_error_event(
    raw_proxy: tuple[ProxyUnderTest, list[bytes]],
) -> None:
    """No length, no chunking: the close ends the body cleanly, so only the missing
    message_stop shows the cut. The half-sent event is dropped, not relayed.
    """
    proxy, script = raw_proxy
    events = anthropic_events()
    script += [
        _head(b"content-type: text/event-stream", b"connection: close"),
        *events[:4],
        events[5][:20],
    ]

    response = call(proxy, stream=True)

    assert response.content.startswith(b"".join(events[:4]) + b"event: error\n")
    assert "ended before" in error_event_at_end(response.content, "anthropic")["error"]["message"]
    assert_counted_once(proxy, 200, "upstream_incomplete_stream")
    assert proxy.tokens()["output"] == 1.0


def test_client_leaving_after_the_last_event_is_not_a_disconnect(
    isolated_logging: None,
) -> None:
    """Clients stop reading at message_stop; the upstream's end of body may come later."""

    def handler(conn: socket.socket) -> None:
        read_http_request(conn)
        head = _head(b"content-type: text/event-stream", b"transfer-encoding: chunked")
        conn.sendall(head + b"".join(_chunk(event) for event in anthropic_events()))
        time.sleep(1.0)
        conn.sendall(b"0\r\n\r\n")

    with (
        RawServer(handler) as server,
        running_proxy(server.url, read_timeout=10.0) as proxy,
        httpx.stream(
            "POST", proxy.url + PATHS["anthropic"], json=request_body(stream=True), timeout=10
        ) as response,
    ):
        received = b""
        for chunk in response.iter_raw():
            received += chunk
            if b"message_stop" in received:
                break
        response.close()  # gone before the end of the body
        proxy.settle(1)

        assert_counted_once(proxy, 200, None)
        assert proxy.tokens()["output"] > 0


def test_whole_answer_shorter_than_its_content_length_is_a_502(
    raw_proxy: tuple[ProxyUnderTest, list[bytes]],
) -> None:
    """The body was cut: passing the half on would hand the client broken JSON as a 200."""
    proxy, script = raw_proxy
    body = anthropic_message({"input_tokens": 1, "output_tokens": 1})
    script += [
        _head(b"content-type: application/json", b"content-length: %d" % len(body)),
        body[: len(body) // 2],
    ]

    response = call(proxy)

    assert response.status_code == 502
    assert "dropped" in response.json()["error"]["message"]
    assert_counted_once(proxy, 502, "upstream_connection_error")


@pytest.mark.parametrize("encoding", [b"identity", b"gzip"], ids=["plain", "inflating-without-end"])
def test_whole_answer_past_max_response_bytes_is_a_502_and_never_held_whole(
    isolated_logging: None, encoding: bytes
) -> None:
    """A non-streamed answer is held to read its usage, so its size is bounded: also when a
    few compressed kilobytes would inflate to 64 MB."""
    plain = anthropic_message({"input_tokens": 1, "output_tokens": 1}) + b" " * 64_000_000
    body = gzip.compress(plain) if encoding == b"gzip" else plain

    def handler(conn: socket.socket) -> None:
        read_http_request(conn)
        conn.sendall(
            _head(
                b"content-type: application/json",
                b"content-encoding: " + encoding,
                b"content-length: %d" % len(body),
            )
            + body
        )

    with (
        RawServer(handler) as server,
        running_proxy(server.url, max_response_bytes=1_000_000) as proxy,
    ):
        response = call(proxy)

        assert response.status_code == 502
        assert "larger than 1000000 bytes" in response.json()["error"]["message"]
        assert_counted_once(proxy, 502, "upstream_invalid_response")


def test_keepalive_comment_between_events_reaches_the_client_at_once(
    isolated_logging: None,
) -> None:
    """Whole events only are relayed, but a ``: keep-alive`` line outside any event is not
    held back: during a long silence it is what keeps the client's idle timeout at bay."""
    client_has_comment = threading.Event()
    waited: list[bool] = []
    events = anthropic_events()

    def handler(conn: socket.socket) -> None:
        read_http_request(conn)
        conn.sendall(_head(b"content-type: text/event-stream", b"connection: close"))
        conn.sendall(b"".join(events[:4]) + b": keep-alive\n")
        waited.append(client_has_comment.wait(10))
        conn.sendall(b"".join(events[4:]))

    with RawServer(handler) as server, running_proxy(server.url) as proxy:
        received = b""
        with httpx.stream(
            "POST", proxy.url + PATHS["anthropic"], json=request_body(stream=True), timeout=30
        ) as response:
            for piece in response.iter_raw():
                received += piece
                if received.endswith(b": keep-alive\n"):
                    client_has_comment.set()
        proxy.settle(1)

    assert waited == [True], "the comment was held until the next event"
    assert received == b"".join(events[:4]) + b": keep-alive\n" + b"".join(events[4:])
    assert proxy.errors() == {}
