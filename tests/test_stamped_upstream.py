"""The streams benchmark's lean upstream sends the mock's stream, byte for byte but the stamps.

``benchmarks/stamped_upstream.py`` replaces the mock upstream in the streams
benchmark so that the proxy, not the mock, is what runs out of CPU; its
figures only carry over if the proxy relays the same thing. Both servers run
as processes with the same configuration, get the same request, and their
answers are compared on the wire: the same events in the same chunks, the
same usage and ids, the same headers.
"""

from __future__ import annotations

import itertools
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks import streams
from benchmarks.common import python_server
from ccobs.stack.processes import ServerProcess

INTERVAL = 0.02
EVENTS = 5
BODY = (
    b'{"model":"claude-sonnet-4-6","max_tokens":4096,"stream":true,'
    b'"messages":[{"role":"user","content":"Tell me a long story."}]}'
)
_STAMP = re.compile(rb'"text":"(\d+)"')
_VARYING_HEADERS = {"date", "server"}


def _request(port: int, *, close: bool = True) -> bytes:
    return (
        f"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        "content-type: application/json\r\nx-api-key: sk-test-not-a-key\r\n"
        f"{'connection: close' + chr(13) + chr(10) if close else ''}"
        f"content-length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY


def _read_response(sock: socket.socket, buffer: bytes = b"") -> tuple[bytes, list[bytes], bytes]:
    """(head, chunk payloads, bytes left over) of one chunked response, read to its last chunk."""
    while b"\r\n\r\n" not in buffer:
        buffer += _recv(sock)
    head, rest = buffer.split(b"\r\n\r\n", 1)
    chunks = []
    while True:
        while b"\r\n" not in rest:
            rest += _recv(sock)
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line, 16)
        while len(rest) < size + 2:
            rest += _recv(sock)
        if size == 0:
            return head, chunks, rest[2:]
        chunks.append(rest[:size])
        rest = rest[size + 2 :]


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("closed before the response ended")
    return data


def _stream(server: ServerProcess) -> tuple[dict[str, str], list[bytes], list[int]]:
    """One streamed request: headers, chunks with stamps replaced, and the stamps."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_request(server.port))
        head, chunks, _ = _read_response(sock)
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK", lines[0]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    stamps = [int(s) for chunk in chunks for s in _STAMP.findall(chunk)]
    return headers, [_STAMP.sub(b'"text":"STAMP"', chunk) for chunk in chunks], stamps


def _server(kind: str) -> Any:
    env = {streams.INTERVAL_ENV: str(INTERVAL), streams.EVENTS_ENV: str(EVENTS)}
    return python_server(f"upstream-{kind}", streams._UPSTREAM_CODE[kind], env=env, timeout=60)


@pytest.fixture(scope="module")
def mock() -> Iterator[ServerProcess]:
    with _server("mock") as server:
        yield server


@pytest.fixture(scope="module")
def lean() -> Iterator[ServerProcess]:
    with _server("lean") as server:
        yield server


@pytest.fixture(scope="module")
def first_streams(
    mock: ServerProcess, lean: ServerProcess
) -> dict[str, tuple[dict[str, str], list[bytes], list[int]]]:
    """Each server's first stream (the same seeded decision on both)."""
    return {"mock": _stream(mock), "lean": _stream(lean)}


def test_the_lean_stream_is_the_mocks_chunk_for_chunk_but_the_stamps(
    first_streams: dict[str, Any],
) -> None:
    _, mock_chunks, _ = first_streams["mock"]
    _, lean_chunks, _ = first_streams["lean"]
    assert len(mock_chunks) == EVENTS + 6  # three events before the deltas, three after
    assert lean_chunks == mock_chunks


def test_the_lean_upstream_sends_the_mocks_headers(first_streams: dict[str, Any]) -> None:
    mock_headers, _, _ = first_streams["mock"]
    lean_headers, _, _ = first_streams["lean"]
    assert set(lean_headers) == set(mock_headers)
    for name in set(mock_headers) - _VARYING_HEADERS:
        if not name.endswith("-reset"):  # a time a minute ahead, from each one's own clock
            assert lean_headers[name] == mock_headers[name], name


def test_every_delta_is_stamped_with_the_senders_monotonic_clock(lean: ServerProcess) -> None:
    before = time.monotonic_ns()
    _, _, stamps = _stream(lean)
    after = time.monotonic_ns()
    assert len(stamps) == EVENTS
    assert before < stamps[0]
    assert stamps[-1] < after
    assert stamps == sorted(stamps)


def test_deltas_leave_one_interval_apart(lean: ServerProcess) -> None:
    _, _, stamps = _stream(lean)
    gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(stamps)]
    # Scheduled on absolute times by a loop whose timers have millisecond resolution.
    assert sum(gaps) >= (EVENTS - 1) * INTERVAL - 0.002, gaps
    assert min(gaps) >= INTERVAL / 2, gaps


def test_a_kept_alive_connection_is_answered_request_after_request(lean: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", lean.port), timeout=10) as sock:
        sock.sendall(_request(lean.port, close=False))
        _, first, rest = _read_response(sock)
        sock.sendall(_request(lean.port, close=False))
        _, second, _ = _read_response(sock, rest)
    assert len(first) == len(second) == EVENTS + 6
    assert first[-1] == second[-1] == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
