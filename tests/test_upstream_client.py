"""The proxy's upstream client against real loopback sockets speaking scripted HTTP/1.1.

Each test runs a raw TCP server (a thread per connection) that reads the
client's request and writes exactly the bytes under test, so framing,
reuse, decoding and every failure mode come from a real socket, not a mock.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from proxy_harness import RawServer, read_http_request

from ccobs.proxy.upstream_client import (
    MAX_HEAD_BYTES,
    Timeouts,
    UpstreamClient,
    UpstreamConnectionError,
    UpstreamDecodingError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamTooLarge,
)

pytestmark = pytest.mark.anyio

TIMEOUTS = Timeouts(connect=2.0, read=2.0, write=2.0, pool=2.0)
BODY = b'{"model":"m"}'
HEADERS = [(b"content-type", b"application/json")]


def answer(body: bytes, *headers: bytes, status: bytes = b"200 OK") -> bytes:
    head = [b"HTTP/1.1 " + status, *headers]
    if not any(h.lower().startswith((b"content-length", b"transfer-encoding")) for h in headers):
        head.append(b"content-length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def serving(*answers: bytes) -> Callable[[socket.socket], None]:
    """A handler answering each request on a connection with the next of ``answers``, then
    leaving the connection open until the client closes it."""

    def handle(conn: socket.socket) -> None:
        for reply in answers:
            if not read_http_request(conn):
                return
            conn.sendall(reply)
        while conn.recv(65536):
            pass

    return handle


def client_for(server: RawServer, **limits: int) -> UpstreamClient:
    return UpstreamClient(
        server.url,
        TIMEOUTS,
        max_connections=limits.get("max_connections", 10),
        max_keepalive_connections=limits.get("max_keepalive_connections", 10),
    )


async def get(client: UpstreamClient) -> tuple[int, bytes]:
    response = await client.send("POST", "/v1/messages", HEADERS, BODY)
    try:
        return response.status_code, await response.read()
    finally:
        response.close()


async def until(condition: Callable[[], bool]) -> None:
    """Wait up to 2 s for ``condition``, which a server thread makes true."""
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not true within 2 s")


@pytest.fixture
def server_factory() -> Iterator[Callable[[Callable[[socket.socket], None]], RawServer]]:
    servers: list[RawServer] = []

    def start(handler: Callable[[socket.socket], None]) -> RawServer:
        server = RawServer(handler).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


Servers = Callable[[Callable[[socket.socket], None]], RawServer]


# -- the request ---------------------------------------------------------------------------


async def test_request_carries_the_prefix_host_length_and_headers_byte_for_byte(
    server_factory: Servers,
) -> None:
    seen: list[bytes] = []

    def handle(conn: socket.socket) -> None:
        seen.append(read_http_request(conn))
        conn.sendall(answer(b"{}"))

    server = server_factory(handle)
    client = UpstreamClient(
        server.url + "/gateway/", TIMEOUTS, max_connections=1, max_keepalive_connections=1
    )
    response = await client.send(
        "POST", "/v1/messages", [(b"User-Agent", "naïve ☃".encode())], BODY
    )
    response.close()

    head, _, body = seen[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /gateway/v1/messages HTTP/1.1"
    assert f"host: 127.0.0.1:{server.port}".encode() in lines
    assert b"content-length: %d" % len(BODY) in lines
    assert "User-Agent: naïve ☃".encode() in lines
    assert body == BODY


async def test_header_with_a_line_break_is_refused_before_anything_is_sent(
    server_factory: Servers,
) -> None:
    server = server_factory(serving(answer(b"{}")))
    client = client_for(server)

    with pytest.raises(ValueError, match="line break"):
        await client.send("POST", "/", [(b"x-a", b"1\r\nx-injected: 2")], BODY)
    assert server.accepted == 0
    assert client.in_use == 0


def test_base_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        UpstreamClient(
            "ftp://example.com", TIMEOUTS, max_connections=1, max_keepalive_connections=1
        )


# -- framing and reuse ---------------------------------------------------------------------


async def test_content_length_answers_are_read_whole_on_one_reused_connection(
    server_factory: Servers,
) -> None:
    server = server_factory(serving(answer(b"one"), answer(b"two"), answer(b"three")))
    client = client_for(server)

    results = [await get(client) for _ in range(3)]

    assert results == [(200, b"one"), (200, b"two"), (200, b"three")]
    assert server.accepted == 1
    assert (client.in_use, client.open_connections) == (0, 1)


async def test_chunked_answer_with_extensions_and_trailers_is_read_whole_and_reused(
    server_factory: Servers,
) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: 1\r\n\r\n"
    )
    server = server_factory(serving(chunked, answer(b"next")))
    client = client_for(server)

    assert await get(client) == (200, b"hello world")
    assert await get(client) == (200, b"next")
    assert server.accepted == 1


async def test_answer_delimited_by_close_is_read_to_the_end_and_its_connection_dropped(
    server_factory: Servers,
) -> None:
    def handle(conn: socket.socket) -> None:
        read_http_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\nall of it")

    server = server_factory(handle)
    client = client_for(server)

    assert await get(client) == (200, b"all of it")
    assert await get(client) == (200, b"all of it")
    assert server.accepted == 2
    assert client.open_connections == 0


async def test_answer_saying_connection_close_is_not_reused(server_factory: Servers) -> None:
    server = server_factory(serving(answer(b"bye", b"Connection: close")))
    client = client_for(server)

    assert await get(client) == (200, b"bye")
    assert client.open_connections == 0


async def test_interim_100_continue_is_skipped(server_factory: Servers) -> None:
    server = server_factory(serving(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b"real")))

    assert await get(client_for(server)) == (200, b"real")


async def test_answer_without_a_body_frees_its_connection_at_once(server_factory: Servers) -> None:
    server = server_factory(serving(b"HTTP/1.1 204 No Content\r\n\r\n", answer(b"after")))
    client = client_for(server)

    response = await client.send("POST", "/", HEADERS, BODY)

    assert response.status_code == 204
    assert client.in_use == 0
    assert await response.read() == b""
    assert await get(client) == (200, b"after")
    assert server.accepted == 1


async def test_headers_are_kept_as_received_with_repeats(server_factory: Servers) -> None:
    server = server_factory(
        serving(answer(b"{}", b"Set-Cookie: a=1", b"set-cookie: b=2", b"X-Raw:  \xff\xfe "))
    )
    response = await client_for(server).send("POST", "/", HEADERS, BODY)
    response.close()

    assert (b"Set-Cookie", b"a=1") in response.headers
    assert (b"set-cookie", b"b=2") in response.headers
    assert response.header(b"x-raw") == b"\xff\xfe"


async def test_body_arrives_in_pieces_as_the_upstream_sends_them(server_factory: Servers) -> None:
    sent_second = threading.Event()

    def handle(conn: socket.socket) -> None:
        read_http_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        time.sleep(0.3)
        sent_second.set()
        conn.sendall(b"6\r\nsecond\r\n0\r\n\r\n")

    server = server_factory(handle)
    response = await client_for(server).send("POST", "/", HEADERS, BODY)
    pieces = response.iter_bytes()

    assert await pieces.__anext__() == b"first"
    assert not sent_second.is_set()
    assert await pieces.__anext__() == b"second"
    response.close()


BODIES_EVERY_WAY = {
    "content-length": answer(b"one two three"),
    "chunked": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    b"4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n",
    "gzip": answer(gzip.compress(b"one two three"), b"content-encoding: gzip"),
    "empty": answer(b""),
}


@pytest.mark.parametrize("reply", BODIES_EVERY_WAY.values(), ids=BODIES_EVERY_WAY.keys())
async def test_next_bytes_reads_what_iter_bytes_yields_then_empty_and_frees_the_connection(
    server_factory: Servers, reply: bytes
) -> None:
    server = server_factory(serving(reply, reply))
    client = client_for(server)
    response = await client.send("POST", "/", HEADERS, BODY)
    iterated = [piece async for piece in response.iter_bytes()]
    response.close()

    response = await client.send("POST", "/", HEADERS, BODY)
    called = []
    while piece := await response.next_bytes():
        called.append(piece)

    assert called == iterated
    assert await response.next_bytes() == b""
    assert (client.in_use, server.accepted) == (0, 1)  # back in the pool, reused
    response.close()


async def test_a_body_is_read_once(server_factory: Servers) -> None:
    server = server_factory(serving(answer(b"once")))
    response = await client_for(server).send("POST", "/", HEADERS, BODY)
    assert await response.next_bytes() == b"once"

    with pytest.raises(RuntimeError, match="already read"):
        await response.read()
    response.close()


# -- content codings -----------------------------------------------------------------------


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        (b"gzip", gzip.compress),
        (b"x-gzip", gzip.compress),
        (b"deflate", zlib.compress),
        (b"deflate", _raw_deflate),
        (b"identity, gzip", gzip.compress),
        (b"gzip, deflate", lambda data: zlib.compress(gzip.compress(data))),
    ],
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw", "identity-gzip", "gzip-then-deflate"],
)
async def test_compressed_answers_are_decoded(
    server_factory: Servers, coding: bytes, encode: Callable[[bytes], bytes]
) -> None:
    plain = b'{"usage": {"input_tokens": 1}}' * 100
    server = server_factory(serving(answer(encode(plain), b"content-encoding: " + coding)))

    assert await get(client_for(server)) == (200, plain)


async def test_body_that_does_not_match_its_coding_is_a_decoding_error(
    server_factory: Servers,
) -> None:
    server = server_factory(serving(answer(b"plain text", b"content-encoding: gzip")))

    with pytest.raises(UpstreamDecodingError, match="content-encoding"):
        await get(client_for(server))


async def test_unknown_coding_is_a_decoding_error_not_relayed_undecoded(
    server_factory: Servers,
) -> None:
    server = server_factory(serving(answer(b"\x00\x01", b"content-encoding: br")))

    with pytest.raises(UpstreamDecodingError, match="'br'"):
        await get(client_for(server))


@pytest.mark.parametrize(
    ("coding", "encode"),
    [(b"identity", lambda data: data), (b"gzip", gzip.compress)],
    ids=["plain", "gzip-bomb"],
)
async def test_whole_answer_past_the_read_limit_is_too_large(
    server_factory: Servers, coding: bytes, encode: Callable[[bytes], bytes]
) -> None:
    """The limit counts decoded bytes: 20 KB of gzip that inflate to 20 MB are stopped too."""
    server = server_factory(
        serving(answer(encode(b"\0" * 20_000_000), b"content-encoding: " + coding))
    )
    client = client_for(server)
    response = await client.send("POST", "/", HEADERS, BODY)

    with pytest.raises(UpstreamTooLarge, match="larger than 1000000 bytes"):
        await response.read(limit=1_000_000)
    response.close()
    assert (client.in_use, client.open_connections) == (0, 0)


async def test_chunks_that_arrive_together_are_read_as_one_piece(server_factory: Servers) -> None:
    def handle(conn: socket.socket) -> None:
        read_http_request(conn)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n"
        )
        time.sleep(0.3)
        conn.sendall(b"0\r\n\r\n")

    server = server_factory(handle)
    response = await client_for(server).send("POST", "/", HEADERS, BODY)

    assert [piece async for piece in response.iter_bytes()] == [b"one two three"]
    response.close()


async def test_chunked_answer_split_at_every_byte_is_read_whole_and_reused(
    server_factory: Servers,
) -> None:
    chunked = b"3;x=y\r\nabc\r\n10\r\n" + b"d" * 16 + b"\r\n0\r\nx-trailer: 1\r\n\r\n"

    def handle(conn: socket.socket) -> None:
        read_http_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for byte in chunked:
            conn.sendall(bytes([byte]))
            time.sleep(0.002)
        serving(answer(b"next"))(conn)

    server = server_factory(handle)
    client = client_for(server)

    assert await get(client) == (200, b"abc" + b"d" * 16)
    assert await get(client) == (200, b"next")
    assert server.accepted == 1


async def test_bytes_after_the_last_chunk_spoil_the_connection(server_factory: Servers) -> None:
    server = server_factory(
        serving(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nextra")
    )
    client = client_for(server)

    assert await get(client) == (200, b"ok")
    assert client.open_connections == 0


async def test_whole_answer_within_the_read_limit_is_read(server_factory: Servers) -> None:
    server = server_factory(serving(answer(b"x" * 1000)))
    response = await client_for(server).send("POST", "/", HEADERS, BODY)

    assert await response.read(limit=1000) == b"x" * 1000


# -- malformed answers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        b"SPDY/3 200 OK\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length : 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: value\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx-long: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1;" + b"e" * MAX_HEAD_BYTES,
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n"
        + b"x-trailer: 1\r\n" * (MAX_HEAD_BYTES // 10),
    ],
    ids=[
        "not-http",
        "bad-status",
        "no-colon",
        "space-before-colon",
        "obs-fold",
        "conflicting-lengths",
        "negative-length",
        "bad-chunk-size",
        "chunk-without-crlf",
        "upgrade",
        "head-too-long",
        "chunk-size-line-too-long",
        "trailers-too-long",
    ],
)
async def test_malformed_answer_is_a_protocol_error(server_factory: Servers, reply: bytes) -> None:
    server = server_factory(serving(reply))
    client = client_for(server)

    with pytest.raises(UpstreamProtocolError):
        await get(client)
    assert (client.in_use, client.open_connections) == (0, 0)


async def test_body_shorter_than_its_content_length_is_a_connection_error(
    server_factory: Servers,
) -> None:
    def handle(conn: socket.socket) -> None:
        read_http_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b")

    server = server_factory(handle)

    with pytest.raises(UpstreamConnectionError, match="90 bytes before the end"):
        await get(client_for(server))


# -- connection faults ---------------------------------------------------------------------


async def test_refused_port_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = UpstreamClient(
        f"http://127.0.0.1:{port}", TIMEOUTS, max_connections=1, max_keepalive_connections=1
    )

    with pytest.raises(UpstreamConnectionError, match="cannot connect"):
        await client.send("POST", "/", HEADERS, BODY)
    assert client.in_use == 0


async def test_silent_upstream_is_a_read_timeout_after_the_read_timeout(
    server_factory: Servers,
) -> None:
    server = server_factory(serving())  # reads nothing, answers nothing
    client = UpstreamClient(
        server.url,
        Timeouts(connect=2.0, read=0.2, write=2.0, pool=2.0),
        max_connections=1,
        max_keepalive_connections=1,
    )
    started = time.monotonic()

    with pytest.raises(UpstreamTimeout):
        await client.send("POST", "/", HEADERS, BODY)
    assert 0.2 <= time.monotonic() - started < 1.0
    assert (client.in_use, client.open_connections) == (0, 0)


def trickling(pieces: int, every: float) -> Callable[[socket.socket], None]:
    """A chunked answer of ``pieces`` one-byte chunks, one every ``every`` seconds."""

    def handle(conn: socket.socket) -> None:
        read_http_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(pieces):
            time.sleep(every)
            conn.sendall(b"1\r\nx\r\n")
        conn.sendall(b"0\r\n\r\n")
        while conn.recv(65536):
            pass

    return handle


def short_read_timeout(server: RawServer, read: float) -> UpstreamClient:
    return UpstreamClient(
        server.url,
        Timeouts(connect=2.0, read=read, write=2.0, pool=2.0),
        max_connections=1,
        max_keepalive_connections=1,
    )


async def test_a_body_that_keeps_talking_outlasts_the_read_timeout_which_applies_to_each_read(
    server_factory: Servers,
) -> None:
    server = server_factory(trickling(pieces=8, every=0.1))
    client = short_read_timeout(server, read=0.3)
    started = time.monotonic()

    response = await client.send("POST", "/", HEADERS, BODY)
    assert await response.read() == b"x" * 8
    assert time.monotonic() - started > 0.6  # twice the timeout, in reads shorter than it
    assert (client.in_use, client.open_connections) == (0, 1)


async def test_a_body_that_falls_silent_is_a_read_timeout_a_timeout_after_its_last_piece(
    server_factory: Servers,
) -> None:
    def handle(conn: socket.socket) -> None:
        read_http_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n")
        time.sleep(0.3)
        conn.sendall(b"1\r\nb\r\n")
        while conn.recv(65536):
            pass

    server = server_factory(handle)
    client = short_read_timeout(server, read=0.5)
    response = await client.send("POST", "/", HEADERS, BODY)
    assert await response.next_bytes() == b"a"
    assert await response.next_bytes() == b"b"
    last_piece = time.monotonic()

    with pytest.raises(UpstreamTimeout, match="read timeout"):
        await response.next_bytes()
    assert 0.5 <= time.monotonic() - last_piece < 1.2
    response.close()
    assert (client.in_use, client.open_connections) == (0, 0)


async def test_a_cancellation_during_a_read_stays_a_cancellation_and_the_timeout_never_fires(
    server_factory: Servers,
) -> None:
    server = server_factory(trickling(pieces=1, every=5.0))
    client = short_read_timeout(server, read=0.3)
    response = await client.send("POST", "/", HEADERS, BODY)
    reading = asyncio.create_task(response.next_bytes())
    await asyncio.sleep(0.1)

    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    response.close()
    await asyncio.sleep(0.4)  # past the read timeout: nothing else is cancelled
    assert (client.in_use, client.open_connections) == (0, 0)


async def test_idle_connection_the_upstream_dropped_is_replaced_without_an_error(
    server_factory: Servers,
) -> None:
    """The keep-alive race: the upstream closes an idle connection as the next request is sent."""
    connections = 0

    def handle(conn: socket.socket) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            read_http_request(conn)
            conn.sendall(answer(b"first"))
            read_http_request(conn)  # the second request, never answered here
            return
        serving(answer(b"second"))(conn)

    server = server_factory(handle)
    client = client_for(server)

    assert await get(client) == (200, b"first")
    assert await get(client) == (200, b"second")
    assert server.accepted == 2


async def test_new_connection_closed_without_an_answer_is_a_connection_error(
    server_factory: Servers,
) -> None:
    def read_then_close(conn: socket.socket) -> None:
        read_http_request(conn)

    server = server_factory(read_then_close)

    with pytest.raises(UpstreamConnectionError, match="without answering"):
        await get(client_for(server))
    assert server.accepted == 1


# -- pool bounds ---------------------------------------------------------------------------


async def test_request_waits_for_a_free_connection_at_most_the_pool_timeout(
    server_factory: Servers,
) -> None:
    server = server_factory(serving(answer(b"x" * 10)))
    client = UpstreamClient(
        server.url,
        Timeouts(connect=2.0, read=2.0, write=2.0, pool=0.2),
        max_connections=1,
        max_keepalive_connections=1,
    )
    held = await client.send("POST", "/", HEADERS, BODY)  # body not read: the slot stays taken
    started = time.monotonic()

    with pytest.raises(UpstreamTimeout, match="pool"):
        await client.send("POST", "/", HEADERS, BODY)
    assert 0.2 <= time.monotonic() - started < 1.0
    held.close()
    assert client.in_use == 0


async def test_connections_beyond_the_keepalive_cap_are_closed_when_done(
    server_factory: Servers,
) -> None:
    server = server_factory(serving(answer(b"ok")))
    client = client_for(server, max_connections=3, max_keepalive_connections=1)

    results = await asyncio.gather(*(get(client) for _ in range(3)))

    assert results == [(200, b"ok")] * 3
    assert server.accepted == 3
    assert (client.in_use, client.open_connections) == (0, 1)


async def test_cancelled_request_closes_its_connection_and_frees_its_slot(
    server_factory: Servers,
) -> None:
    server = server_factory(serving())  # never answers
    client = client_for(server, max_connections=1)
    task = asyncio.create_task(client.send("POST", "/", HEADERS, BODY))
    await until(lambda: server.accepted == 1)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert (client.in_use, client.open_connections) == (0, 0)
    await until(lambda: server.handled == 1)  # the upstream saw the connection close


async def test_response_closed_before_its_end_drops_its_connection(
    server_factory: Servers,
) -> None:
    server = server_factory(serving(answer(b"unread body"), answer(b"next")))
    client = client_for(server)

    response = await client.send("POST", "/", HEADERS, BODY)
    response.close()

    assert (client.in_use, client.open_connections) == (0, 0)
    assert await get(client) == (200, b"unread body")  # a new connection, a fresh answer
    assert server.accepted == 2


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def _tls(handler: Callable[[socket.socket], None], cert: Path, key: Path) -> Callable[..., None]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            handler(tls)

    return handle


async def test_https_upstream_is_reached_over_tls_and_reused(
    server_factory: Servers, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server = server_factory(_tls(serving(answer(b"secure"), answer(b"again")), cert, key))
    trusted = ssl.create_default_context(cafile=str(cert))
    client = UpstreamClient(
        f"https://127.0.0.1:{server.port}",
        TIMEOUTS,
        max_connections=1,
        max_keepalive_connections=1,
        ssl_context=trusted,
    )

    assert await get(client) == (200, b"secure")
    assert await get(client) == (200, b"again")
    assert server.accepted == 1


async def test_https_upstream_with_an_untrusted_certificate_is_a_connection_error(
    server_factory: Servers, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server = server_factory(_tls(serving(answer(b"secure")), cert, key))
    client = UpstreamClient(
        f"https://127.0.0.1:{server.port}", TIMEOUTS, max_connections=1, max_keepalive_connections=1
    )

    with pytest.raises(UpstreamConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        await client.send("POST", "/", HEADERS, BODY)
