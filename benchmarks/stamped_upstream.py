"""A lean stamped upstream for the streams benchmark: the mock's Anthropic stream, cheaply.

The mock upstream (``ccobs upstream``: FastAPI, Starlette's streaming response,
an async generator and an anyio sleep per event) costs tens of microseconds of
CPU per event, so in one process it fell behind at 1,000 streams at one event
every 50 ms before the proxy did, and the benchmark measured the mock instead
of the proxy. This server sends the same stream for a fraction of that:

- the same decision per request (a :class:`~ccobs.demo.upstream.MockUpstream`
  with the same seeded configuration draws it: ids, usage, stop reason, pace),
  the same headers (request id and the mock's rate-limit windows), the same
  events framed by the same :func:`~ccobs.proxy.sse.encode_event`, one HTTP
  chunk per event as uvicorn sends the mock's;
- per event only a clock read, one ``bytes`` format and one transport write, on
  one loop timer per stream (a bare ``asyncio.Protocol`` on uvloop, like the
  load generator), scheduled on absolute times so pacing does not drift.

Only what the benchmark asks for is served: ``GET /health`` and streamed
``POST /v1/messages``; anything else gets a 404 or 400. Connections are kept
alive between requests, as the proxy's pool reuses them.
``tests/test_stamped_upstream.py`` checks its stream against the mock's.

``python -m benchmarks.stamped_upstream --port P --interval 0.05 --events 600``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from email.utils import formatdate
from typing import Any, cast

from benchmarks.apps import unlimited_rate_limits
from ccobs.demo.decisions import (
    Decision,
    Delay,
    UpstreamConfig,
    estimate_prompt_tokens,
    split_tokens,
)
from ccobs.demo.upstream import MockUpstream
from ccobs.proxy.file_limit import raise_open_file_limit
from ccobs.proxy.sse import encode_event

_MAX_HEAD = 64 * 1024
_MAX_BODY = 1024 * 1024
_DELTA_PREFIX, _DELTA_SUFFIX = encode_event(
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "STAMP"}},
    "content_block_delta",
).split(b"STAMP")
_HEALTH = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n"
    b'{"status":"ok"}'
)


def bench_config(interval: float, events: int) -> UpstreamConfig:
    """The stream both upstreams send: ``events`` stamped one-token deltas, one per ``interval``.

    The rate-limit windows are set out of reach: the benchmark sends hundreds of
    thousands of output tokens a minute on one key, and a 429 would be the mock's
    doing, not the proxy's.
    """
    return UpstreamConfig(
        seed=1,
        ttft=Delay(interval),
        inter_token_delay=interval,
        tokens_per_delta=1,
        output_tokens=(events, events),
        stamp_deltas=True,
        max_recorded_decisions=0,
        rate_limits=unlimited_rate_limits(),
    )


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _error(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"type": "error", "error": {"type": "invalid_request_error",
                       "message": message}}).encode()  # fmt: skip
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


class StampedUpstream:
    """Per-process state: the mock's seeded decisions and rate-limit windows."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.mock = MockUpstream(config)
        self.config = config

    def begin(
        self, headers: dict[str, str], body: dict[str, Any], close: bool = False
    ) -> tuple[bytes, Decision]:
        """The response head and the first three events of one stream, and its decision.

        ``close``: the client asked for ``connection: close``; uvicorn says it will.
        """
        decision = self.mock.decide(
            api="anthropic",
            model=str(body["model"]),
            stream=True,
            prompt_tokens=estimate_prompt_tokens(body),
            max_tokens=int(body["max_tokens"]),
        )
        response_headers = {"request-id": f"req_{decision.request_id}"}
        retry_after = self.mock.rate_limits.charge(
            "anthropic",
            headers,
            decision.prompt_tokens,
            decision.output_tokens,
            decision.status,
            response_headers,
        )
        if retry_after is not None or decision.status != 200:
            return _error(429, "Too Many Requests", "rate limited"), decision
        start: dict[str, Any] = {
            "id": f"msg_{decision.request_id}",
            "type": "message",
            "role": "assistant",
            "model": decision.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": decision.input_tokens,
                "cache_creation_input_tokens": decision.cache_write_tokens,
                "cache_read_input_tokens": decision.cache_read_tokens,
                "output_tokens": 1,
            },
        }
        head = "".join(
            [
                "HTTP/1.1 200 OK\r\n",
                f"date: {formatdate(usegmt=True)}\r\nserver: ccobs-bench\r\n",
                "connection: close\r\n" if close else "",
                "cache-control: no-cache\r\n",
                *(f"{name}: {value}\r\n" for name, value in response_headers.items()),
                "content-type: text/event-stream; charset=utf-8\r\n",
                "transfer-encoding: chunked\r\n\r\n",
            ]
        ).encode()
        events = [
            encode_event({"type": "message_start", "message": start}, "message_start"),
            encode_event(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
            encode_event({"type": "ping"}, "ping"),
        ]
        return head + b"".join(_chunk(event) for event in events), decision

    def end(self, decision: Decision) -> bytes:
        """The last three events and the end of the chunked body."""
        events = [
            encode_event({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            encode_event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": decision.stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": decision.output_tokens},
                },
                "message_delta",
            ),
            encode_event({"type": "message_stop"}, "message_stop"),
        ]
        return b"".join(_chunk(event) for event in events) + b"0\r\n\r\n"

    def gaps(self, decision: Decision) -> list[float]:
        """Seconds before each text delta, as the mock paces them: TTFT, then per token."""
        deltas = split_tokens(decision, self.config.tokens_per_delta, self.config.seed or 0)
        return [
            decision.ttft if i == 0 else decision.inter_token_delay * tokens
            for i, (_, tokens) in enumerate(deltas)
        ]


class UpstreamProtocol(asyncio.Protocol):
    """One client connection: requests one after another, each streamed to its end."""

    def __init__(self, upstream: StampedUpstream) -> None:
        self.upstream = upstream
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.streaming = False
        self.close_after = False
        self.timer: asyncio.TimerHandle | None = None
        self.decision: Decision | None = None
        self.due: list[float] = []
        self.sent = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.streaming:
            self._next_request()

    def _next_request(self) -> None:
        transport = self.transport
        assert transport is not None
        while not self.streaming and not transport.is_closing():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > _MAX_HEAD:
                    transport.close()
                return
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if length > _MAX_BODY:
                transport.close()
                return
            if len(self.buffer) < end + 4 + length:
                return
            body, self.buffer = (
                self.buffer[end + 4 : end + 4 + length],
                self.buffer[end + 4 + length :],
            )
            self.close_after = headers.get("connection", "").lower() == "close"
            self._answer(method, target.split("?", 1)[0], headers, body)

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        transport = self.transport
        assert transport is not None
        if method == "GET" and path == "/health":
            self._write_whole(_HEALTH)
            return
        if method != "POST" or path != "/v1/messages":
            self._write_whole(_error(404, "Not Found", f"no route {method} {path}"))
            return
        try:
            request = json.loads(body)
            if request.get("stream") is not True:
                raise ValueError("only streamed requests are served")
            start, decision = self.upstream.begin(headers, request, self.close_after)
        except (ValueError, KeyError, TypeError) as exc:
            self._write_whole(_error(400, "Bad Request", str(exc)))
            return
        if not start.startswith(b"HTTP/1.1 200"):
            self._write_whole(start)
            return
        transport.write(start)
        self.streaming = True
        self.decision = decision
        now = self.loop.time()
        self.due = []
        for gap in self.upstream.gaps(decision):
            now += gap
            self.due.append(now)
        self.sent = 0
        self._schedule()

    def _schedule(self) -> None:
        if self.sent < len(self.due):
            self.timer = self.loop.call_at(self.due[self.sent], self._send_delta)
        else:
            self._finish()

    def _send_delta(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        stamp = b"%d" % time.monotonic_ns()
        event = _DELTA_PREFIX + stamp + _DELTA_SUFFIX
        transport.write(b"%x\r\n%s\r\n" % (len(event), event))
        self.sent += 1
        self._schedule()

    def _finish(self) -> None:
        assert self.transport is not None
        assert self.decision is not None
        self.transport.write(self.upstream.end(self.decision))
        self.streaming = False
        self.timer = None
        if self.close_after:
            self.transport.close()
        elif self.buffer:
            self._next_request()

    def _write_whole(self, response: bytes) -> None:
        assert self.transport is not None
        self.transport.write(response)
        if self.close_after:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None


async def serve(host: str, port: int, interval: float, events: int) -> None:
    """Serve until killed."""
    upstream = StampedUpstream(bench_config(interval, events))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamProtocol(upstream), host, port, backlog=8192, reuse_address=True
    )
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between deltas")
    parser.add_argument("--events", type=int, default=600, help="text deltas per stream")
    args = parser.parse_args(argv)
    raise_open_file_limit()
    import uvloop

    uvloop.run(serve(args.host, args.port, args.interval, args.events))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
