"""Upstream faults: the right client error, one error counted, and nothing left behind.

An upstream that refuses connections, accepts and never answers, answers
slowly, or resets the connection before answering or in the middle of a
stream. For each the client gets a 502, a 504 or a stream that ends with an
error event, the error is counted once under the right ``error_type``, and
every resource is given back: after many such requests the proxy's httpx pool
holds no connection, its event loop runs no more tasks than before, and the
process holds no more file descriptors than before.

The faulty upstreams are raw sockets on loopback (``RawServer``): hanging and
resetting are things an HTTP framework will not do on purpose. Down, timeout
and dropped-stream basics are in tests/test_proxy.py; these add the slow,
hanging-mid-stream and reset cases and the resource accounting.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest
from proxy_harness import (
    ProxyUnderTest,
    RawServer,
    open_descriptors,
    read_http_request,
    request_body,
    reset,
    running_proxy,
    wait_for_eof,
)

from ccobs.proxy.sse import SSEDecoder, encode_event

PATH = "/v1/messages"
USAGE = {"input_tokens": 10, "cache_read_input_tokens": 0, "output_tokens": 1}
FIRST_EVENTS = (
    encode_event(
        {"type": "message_start", "message": {"id": "msg_1", "usage": USAGE}}, "message_start"
    )
    + encode_event({"type": "content_block_start", "index": 0}, "content_block_start")
    + encode_event(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        "content_block_delta",
    )
)
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)
MESSAGE = json.dumps(
    {
        "id": "msg_1",
        "type": "message",
        "content": [],
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }
).encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def json_answer(body: bytes = MESSAGE) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


def closed_port_url() -> str:
    """A loopback URL nobody listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# -- upstream behaviours (one connection each) --------------------------------------------------


def hang(conn: socket.socket) -> None:
    """Accept, read the request, never answer; return when the proxy gives up and closes."""
    read_http_request(conn)
    wait_for_eof(conn)


def hang_mid_stream(conn: socket.socket) -> None:
    """Start a stream, send a few events, then go silent."""
    read_http_request(conn)
    conn.sendall(STREAM_HEAD + chunk(FIRST_EVENTS))
    wait_for_eof(conn)


def reset_before_answering(conn: socket.socket) -> None:
    read_http_request(conn)
    reset(conn)


def reset_mid_stream(conn: socket.socket) -> None:
    """A few events, then a TCP reset (SO_LINGER 0) instead of the rest."""
    read_http_request(conn)
    conn.sendall(STREAM_HEAD + chunk(FIRST_EVENTS))
    time.sleep(0.05)
    reset(conn)


def flood(conn: socket.socket) -> None:
    """Stream large events as fast as the proxy takes them, until it hangs up."""
    read_http_request(conn)
    conn.sendall(STREAM_HEAD + chunk(FIRST_EVENTS))
    delta = chunk(
        encode_event(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "x" * 65536},
            },
            "content_block_delta",
        )
    )
    conn.settimeout(30)
    while True:  # until sending fails: EPIPE or a reset once the proxy closed
        conn.sendall(delta)


def slow(delay: float) -> Callable[[socket.socket], None]:
    """Answer every request on the connection whole, ``delay`` seconds after reading it."""

    def handler(conn: socket.socket) -> None:
        while read_http_request(conn):
            time.sleep(delay)
            conn.sendall(json_answer())

    return handler


# -- helpers ------------------------------------------------------------------------------------


@pytest.fixture
def logging_isolated(isolated_logging: None) -> None:
    """Every test here configures JSON logging through running_proxy."""


def post(proxy: ProxyUnderTest, *, stream: bool = False, timeout: float = 30) -> httpx.Response:
    return httpx.post(proxy.url + PATH, json=request_body(stream=stream), timeout=timeout)


def stream_error(body: bytes) -> str:
    """The message of the error event that ends ``body``; every event must be readable."""
    decoder = SSEDecoder()
    events = decoder.feed(body)
    assert decoder.open_bytes == 0
    for event in events:
        event.json()
    assert events[-1].event == "error", body[-300:]
    message = events[-1].json()["error"]["message"]
    assert isinstance(message, str)
    return message


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- each fault: client answer and accounting ---------------------------------------------------


def test_hanging_upstream_is_a_504_and_its_connection_is_closed(logging_isolated: None) -> None:
    """Accepted but never answered: the read timeout answers the client, and the proxy
    closes the connection instead of leaving it to the upstream."""
    with RawServer(hang) as server, running_proxy(server.url, read_timeout=0.3) as proxy:
        response = post(proxy)
        proxy.settle(1)

        assert response.status_code == 504
        assert response.json()["error"]["message"] == "upstream timed out"
        assert proxy.errors() == {"upstream_timeout": 1.0}
        assert proxy.statuses() == {"504": 1.0}
        assert wait_for(lambda: server.handled == 1), "the proxy kept the connection open"


def test_a_client_leaving_before_its_answer_frees_the_upstream_connection_at_once(
    logging_isolated: None,
) -> None:
    """Waiting on for nobody would hold the upstream call and its pooled connection until the
    read timeout (30 s here); the proxy lets go as soon as the client disconnects."""
    with RawServer(hang) as server, running_proxy(server.url, read_timeout=30.0) as proxy:
        with pytest.raises(httpx.ReadTimeout):
            post(proxy, timeout=0.3)
        proxy.settle(1)

        assert wait_for(lambda: server.handled == 1, timeout=3.0), "upstream call still open"
        assert proxy.errors() == {"client_disconnect": 1.0}
        assert proxy.statuses() == {"499": 1.0}


def test_upstream_hanging_mid_stream_ends_the_stream_with_a_timeout_error_event(
    logging_isolated: None,
) -> None:
    """The events already sent reach the client, then an error event, not an endless wait."""
    with (
        RawServer(hang_mid_stream) as server,
        running_proxy(server.url, read_timeout=0.3) as proxy,
    ):
        response = post(proxy, stream=True)
        proxy.settle(1)

        assert response.status_code == 200
        assert response.content.startswith(FIRST_EVENTS)
        assert stream_error(response.content) == "upstream timed out mid-stream"
        assert proxy.errors() == {"upstream_timeout": 1.0}
        assert proxy.tokens() == {"input": 10.0, "output": 1.0}
        assert wait_for(lambda: server.handled == 1), "the proxy kept the connection open"


def test_slow_upstream_within_the_timeout_is_answered_normally(logging_isolated: None) -> None:
    """Slow is not broken: an answer 0.5 s late, inside a 5 s read timeout, is a success."""
    with RawServer(slow(0.5)) as server, running_proxy(server.url, read_timeout=5.0) as proxy:
        response = post(proxy)
        proxy.settle(1)

        assert response.status_code == 200
        assert response.content == MESSAGE
        assert proxy.errors() == {}
        assert proxy.tokens() == {"input": 3.0, "output": 4.0}
        (line,) = proxy.access_lines()
        assert line["duration_ms"] >= 500


def test_reset_before_answering_is_a_502_counted_as_connection_error(
    logging_isolated: None,
) -> None:
    with (
        RawServer(reset_before_answering) as server,
        running_proxy(server.url) as proxy,
    ):
        response = post(proxy)
        proxy.settle(1)

        assert response.status_code == 502
        assert response.json()["type"] == "error"
        assert response.json()["error"]["message"].startswith("upstream unreachable: ")
        assert proxy.errors() == {"upstream_connection_error": 1.0}


def test_reset_mid_stream_ends_the_stream_with_an_error_event_counted_once(
    logging_isolated: None,
) -> None:
    """The reset comes only once the client holds the first events, so none can be lost
    in the kernel: what was relayed stays relayed, what was read is accounted."""
    client_has_events = threading.Event()

    def handler(conn: socket.socket) -> None:
        read_http_request(conn)
        conn.sendall(STREAM_HEAD + chunk(FIRST_EVENTS))
        client_has_events.wait(10)
        reset(conn)

    with RawServer(handler) as server, running_proxy(server.url) as proxy:
        received = b""
        with httpx.stream(
            "POST", proxy.url + PATH, json=request_body(stream=True), timeout=30
        ) as response:
            for piece in response.iter_raw():
                received += piece
                if received.startswith(FIRST_EVENTS):
                    client_has_events.set()
        proxy.settle(1)

        assert response.status_code == 200
        assert received.startswith(FIRST_EVENTS)
        assert stream_error(received) == "upstream stream broke off"
        assert proxy.errors() == {"upstream_stream_error": 1.0}
        assert proxy.statuses() == {"200": 1.0}
        assert proxy.tokens() == {"input": 10.0, "output": 1.0}
        assert len(proxy.access_lines()) == 1


# -- resources ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    handler: Callable[[socket.socket], None] | None  # None: connection refused
    stream: bool
    status: int
    error_type: str | None
    cycles: int
    client_leaves: bool = False
    """The client stops reading after the first bytes, then hangs up."""


FAULTS = {
    "refused": Fault(None, False, 502, "upstream_connection_error", 50),
    "hang": Fault(hang, False, 504, "upstream_timeout", 20),
    "hang-mid-stream": Fault(hang_mid_stream, True, 200, "upstream_timeout", 20),
    "reset-before-answering": Fault(
        reset_before_answering, False, 502, "upstream_connection_error", 50
    ),
    "reset-mid-stream": Fault(reset_mid_stream, True, 200, "upstream_stream_error", 50),
    "client-gone-mid-stream": Fault(flood, True, 200, "client_disconnect", 50, True),
    # The control: a healthy (if slow) upstream, whose one connection is kept alive.
    "slow-but-fine": Fault(slow(0.02), False, 200, None, 50),
}


def _upstream_for(fault: Fault, stack: ExitStack) -> tuple[str, RawServer | None]:
    if fault.handler is None:
        return closed_port_url(), None
    server = stack.enter_context(RawServer(fault.handler))
    return server.url, server


def _quiet(proxy: ProxyUnderTest, server: RawServer | None, kept_alive: int) -> None:
    """Wait until the pool holds nothing and the upstream saw its connections end."""
    wait_for(lambda: proxy.pool()[0] == 0)
    if server is not None:
        wait_for(lambda: server.handled == server.accepted - kept_alive)


@pytest.mark.parametrize("name", list(FAULTS))
def test_repeated_faults_release_every_connection_task_and_descriptor(
    logging_isolated: None, name: str
) -> None:
    """Many faulty requests in a row leave the pool empty, the loop's task count and the
    process's descriptor count where they were, and are each counted exactly once."""
    fault = FAULTS[name]
    with ExitStack() as stack:
        url, server = _upstream_for(fault, stack)
        proxy = stack.enter_context(running_proxy(url, read_timeout=0.15))
        client = stack.enter_context(httpx.Client(base_url=proxy.url, timeout=30))

        def once() -> None:
            if fault.client_leaves:
                with client.stream("POST", PATH, json=request_body(stream=True)) as response:
                    assert response.status_code == fault.status
                    next(response.iter_raw())
                    # Stop reading: buffers fill and the proxy waits to send, not to receive.
                    time.sleep(0.05)
                return  # leaving the block closes the connection mid-stream
            response = client.post(PATH, json=request_body(stream=fault.stream))
            assert response.status_code == fault.status
            if fault.stream:
                stream_error(response.content)
            elif fault.error_type is not None:
                assert response.json()["error"]["message"]

        once()  # warm-up: what is created once (pool, client connection) is in the baseline
        kept_alive = 0 if fault.error_type else 1
        proxy.settle(1)
        _quiet(proxy, server, kept_alive)
        tasks_before, fds_before = proxy.tasks(), open_descriptors()
        started = time.monotonic()

        for _ in range(fault.cycles):
            once()
        proxy.settle(fault.cycles + 1)
        _quiet(proxy, server, kept_alive)
        proxy.wait_until_idle(tasks_before)
        elapsed = time.monotonic() - started
        tasks_after, fds_after = proxy.tasks(), open_descriptors()
        print(
            f"{name}: {fault.cycles} cycles in {elapsed:.2f} s; tasks {tasks_before} -> "
            f"{tasks_after}; fds {fds_before} -> {fds_after}; pool {proxy.pool()}"
        )

        total = fault.cycles + 1
        assert proxy.statuses() == {str(fault.status): float(total)}
        assert proxy.errors() == ({fault.error_type: float(total)} if fault.error_type else {})
        assert len(proxy.access_lines()) == total
        in_use, still_open = proxy.pool()
        assert in_use == 0, "requests still holding a pooled connection"
        assert still_open == kept_alive, "failed connections are closed, a good one kept"
        assert tasks_after <= tasks_before
        assert fds_after <= fds_before + 2, "a leak would grow by one or more per cycle"
        if server is not None and fault.error_type is not None:
            assert server.accepted == total


def test_concurrent_requests_to_a_hanging_upstream_all_time_out_and_drain_the_pool(
    logging_isolated: None,
) -> None:
    """Sixteen requests waiting on one dead upstream at once: each gets its 504 and
    its connection back, none waits for another's."""
    with RawServer(hang) as server, running_proxy(server.url, read_timeout=0.5) as proxy:

        async def all_at_once() -> list[int]:
            async with httpx.AsyncClient(base_url=proxy.url, timeout=30) as client:
                responses = await asyncio.gather(
                    *(client.post(PATH, json=request_body()) for _ in range(16))
                )
            return [r.status_code for r in responses]

        started = time.monotonic()
        statuses = asyncio.run(all_at_once())
        elapsed = time.monotonic() - started
        proxy.settle(16)

        assert statuses == [504] * 16
        assert proxy.errors() == {"upstream_timeout": 16.0}
        assert elapsed < 16 * 0.5, "the timeouts ran one after another, not side by side"
        assert wait_for(lambda: proxy.pool() == (0, 0))
        assert wait_for(lambda: server.handled == server.accepted == 16)
