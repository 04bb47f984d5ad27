"""The proxy's relay: a request passed to the upstream, its answer passed back and accounted.

This is the example users copy, so it uses nothing but the public ccobs API:
``instrument`` for the request metrics, and ``current_request_context`` for
the request's record (``ctx.record``), filled once with its model, tokens,
cost, time to first token and error type; at the request's end the
middleware feeds the metrics, the access-log line and the stored record from
it. The app around it (routes, lifespan, access-log store) is
:mod:`ccobs.proxy.app`.

Streams are relayed event by event as they arrive, never buffered whole; the
proxy only reads along to pick up usage and the first token. When a stream
breaks off or ends early, the event left half-sent is dropped and an error
event in the API's format ends the stream, so the client sees the failure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable

import structlog
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from ccobs import (
    PrometheusMetrics,
    RequestContext,
    current_request_context,
)
from ccobs.answer_signals import read_retry_count, time_per_output_token
from ccobs.catalog import (
    CLIENT_DISCONNECT,
    INVALID_REQUEST,
    UPSTREAM_CONNECTION_ERROR,
    UPSTREAM_INCOMPLETE_STREAM,
    UPSTREAM_INVALID_RESPONSE,
    UPSTREAM_STREAM_ERROR,
    UPSTREAM_TIMEOUT,
    upstream_event_error_type,
    upstream_status_error_type,
)
from ccobs.pricing import PriceTable
from ccobs.proxy.config import ANTHROPIC_PATH, OPENAI_PATH, RESPONSES_PATH, ProxyConfig
from ccobs.proxy.errors import error_body, stream_error_event
from ccobs.proxy.quiet_events import quiet_event_matchers, quiet_matchers
from ccobs.proxy.request_fields import RequestFields
from ccobs.proxy.sse import ServerSentEvent, SSEDecoder
from ccobs.proxy.upstream_client import (
    UpstreamClient,
    UpstreamDecodingError,
    UpstreamError,
    UpstreamResponse,
    UpstreamTimeout,
    UpstreamTooLarge,
)
from ccobs.proxy.upstream_ids import upstream_request_id
from ccobs.proxy.usage import AnswerUsage, Api, StreamUsage, TokenCounts, UsageError

logger = structlog.get_logger("ccobs.demo.proxy")

# Hop-by-hop headers (RFC 9110 7.6.1) and those the proxy sets itself.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "accept-encoding",
        "content-encoding",
        "x-request-id",
    }
)
_NOT_FORWARDED_RAW = frozenset(name.encode() for name in _NOT_FORWARDED)
# The upstream's own x-request-id (OpenAI's) reaches the client; the proxy's id goes beside it.
_NOT_RELAYED_RAW = _NOT_FORWARDED_RAW - {b"x-request-id"}
_MAX_UNPRICED_LOGGED = 1000
MAX_MODEL_CHARS = 256
"""Longer model names are cut to this length in the access log, metrics and cost lookup."""


def forward_headers(
    raw: Iterable[tuple[bytes, bytes]], request_id: str
) -> list[tuple[bytes, bytes]]:
    """The client's headers as the bytes it sent, minus hop-by-hop and proxy-owned ones.

    Bytes, as received: a value with non-ASCII bytes (a UTF-8 user agent) is
    valid HTTP and is passed on unchanged.
    """
    forwarded = [(k, v) for k, v in raw if k.lower() not in _NOT_FORWARDED_RAW]
    # Identity encoding, so the proxy can read usage out of the bytes it relays.
    forwarded.append((b"accept-encoding", b"identity"))
    forwarded.append((b"x-request-id", request_id.encode()))
    return forwarded


def relay_headers(response: Response, upstream: UpstreamResponse) -> Response:
    """Give ``response`` the upstream's headers byte for byte, minus hop-by-hop ones.

    Raw bytes again: Starlette would encode ``str`` header values as latin-1,
    which a UTF-8 value does not survive.
    """
    raw_headers = response.raw_headers
    for key, value in upstream.headers:
        name = key.lower()
        if name not in _NOT_RELAYED_RAW:
            raw_headers.append((name, value))
    return response


def _is_event_stream(upstream: UpstreamResponse) -> bool:
    content_type = upstream.header(b"content-type") or b""
    return content_type.partition(b";")[0].strip().lower() == b"text/event-stream"


WATCH_AFTER_SECONDS = 0.05
"""How long an upstream call runs before the proxy starts watching for the client leaving."""
CLIENT_CLOSED_REQUEST = 499
"""The status recorded for a client that left before its answer (nginx's convention)."""


class LeaveWatch:
    """Cancels the current task when the client disconnects (its body has been read already).

    A plain asyncio task beside the request's: an anyio task group, which
    Starlette's ``StreamingResponse`` uses for the same, costs much more. Even
    a task costs more than the rest of the proxy's accounting together, so
    while waiting for the answer it starts only after ``after`` seconds: an
    answer faster than that is in before a departed client could save
    anything, and a client gone sooner is noticed then. While streaming
    (``after=None``) it watches from the start, as a stream sent on to a
    departed client goes nowhere without an error.

    Stopped, the watcher is not cancelled (a cancellation thrown through its
    ``receive`` costs more than the task did): servers answer ``receive()``
    with ``http.disconnect`` once the response is complete (uvicorn, httpx's
    and Starlette's test transports do), so it ends by itself, cancelling
    nothing. One still waiting a loop iteration after :meth:`stop` (a
    server that does not wake it, or a stop before the response is sent) is
    cancelled then, so no task is left waiting forever.
    """

    def __init__(self, receive: Receive, after: float | None) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.receive = receive
        self.watcher: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.stopped = False
        self.left = False
        """True once the watcher cancelled the task because the client left."""
        if after is None:
            self._start()
        else:
            self.timer = asyncio.get_running_loop().call_later(after, self._start)

    def _start(self) -> None:
        self.watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        if not self.stopped:
            self.left = True
            self.task.cancel()

    def client_left(self) -> bool:
        """Called on ``CancelledError``: True, and the cancellation absorbed, if it was ours."""
        if not self.left:  # someone else's
            return False
        self.left = False  # absorbed once
        self.task.uncancel()
        return True

    def stop(self) -> None:
        self.stopped = True
        if self.timer is not None:
            self.timer.cancel()
        watcher = self.watcher
        if watcher is not None and not watcher.done():
            watcher.get_loop().call_soon(self._reap)

    def _reap(self) -> None:
        watcher = self.watcher
        if watcher is not None and not watcher.done():
            watcher.cancel()


class LLMProxy:
    """Relays requests to the upstream and accounts what comes back."""

    def __init__(
        self,
        client: UpstreamClient,
        metrics: PrometheusMetrics,
        prices: PriceTable,
        config: ProxyConfig,
        *,
        client_info: bool = False,
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.prices = prices
        self.config = config
        self.client_info = client_info
        self._unpriced_logged: set[str] = set()
        self.request_fields = RequestFields()
        self.answer_usage = AnswerUsage()

    async def anthropic_messages(self, request: Request) -> Response:
        """POST /v1/messages: the Anthropic Messages API."""
        return await self.relay(request, "anthropic", ANTHROPIC_PATH)

    async def openai_chat_completions(self, request: Request) -> Response:
        """POST /v1/chat/completions: the OpenAI-compatible Chat Completions API."""
        return await self.relay(request, "openai", OPENAI_PATH)

    async def openai_responses(self, request: Request) -> Response:
        """POST /v1/responses: OpenAI's Responses API (Codex CLI, the Agents SDK)."""
        return await self.relay(request, "responses", RESPONSES_PATH)

    async def relay(self, request: Request, api: Api, path: str) -> Response:
        ctx = current_request_context()
        if ctx is None:  # only when mounted without instrument(); keep working
            raise RuntimeError("the proxy must be instrumented with ccobs.instrument()")
        body = await self.read_body(request)
        if body is None:
            return self.reject(ctx, api, 413, "request body too large")
        try:
            fields = self.request_fields(body)
        except ValueError:  # UnicodeDecodeError too: the body is not UTF-8/16/32
            return self.reject(ctx, api, 400, "request body is not valid JSON")
        except RecursionError:
            return self.reject(ctx, api, 400, "request body is nested too deeply")
        if fields is None:
            return self.reject(ctx, api, 400, "request body must be a JSON object")
        model, stream = fields
        if not isinstance(model, str) or not model:
            return self.reject(ctx, api, 400, "model: field required")
        # The upstream gets the body untouched; the access log and the metrics get a bounded
        # name, so a client cannot write megabytes into every line its requests leave.
        model = model[:MAX_MODEL_CHARS]
        streaming = stream is True
        record = ctx.record
        record.model = model
        record.streaming = streaming
        record.retry_count = read_retry_count(request.scope["headers"])
        if self.client_info:  # personal data: only when the operator asked for it
            record.client_addr = request.client.host if request.client else None
            record.user_agent = request.headers.get("user-agent")

        query = request.scope.get("query_string")
        if query:  # Claude Code's ``?beta=true``: the upstream gets the query as sent
            try:
                path = f"{path}?{query.decode('ascii')}"
            except UnicodeDecodeError:
                return self.reject(ctx, api, 400, "query string is not ASCII")
        headers = forward_headers(request.scope["headers"], ctx.request_id)
        # Until the answer is in hand, a client that leaves must not keep the upstream call
        # (and its pooled connection) busy until the read timeout for nobody. A stream is
        # watched from the start, by the watch its relay goes on with: one task, rather
        # than a timer and then a task.
        watch = LeaveWatch(request.receive, after=None if streaming else WATCH_AFTER_SECONDS)
        handed_over = False
        try:
            response = await self._answer(ctx, api, path, model, streaming, headers, body, watch)
            handed_over = isinstance(response, _AccountedStream)
            return response
        except asyncio.CancelledError:
            if not watch.client_left():
                raise
            record.error_type = CLIENT_DISCONNECT
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        finally:
            if not handed_over:
                watch.stop()

    async def _answer(
        self,
        ctx: RequestContext,
        api: Api,
        path: str,
        model: str,
        streaming: bool,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        watch: LeaveWatch,
    ) -> Response:
        try:
            upstream = await self.client.send("POST", path, headers, body)
        except UpstreamTimeout:
            return self.fail(ctx, api, 504, UPSTREAM_TIMEOUT, "upstream timed out")
        except UpstreamError as exc:
            return self.fail(
                ctx,
                api,
                502,
                UPSTREAM_CONNECTION_ERROR,
                f"upstream unreachable: {exc}",
            )
        # Rate-limit headroom from the answer's headers, errors included (they are relayed as is).
        self.metrics.record_rate_limit_headers(upstream.headers, ctx.record.key_alias)

        ctx.record.upstream_request_id = upstream_request_id(api, upstream)
        if upstream.status_code >= 400 or not streaming:
            return await self._whole(ctx, api, model, upstream)
        return self._stream(ctx, api, model, upstream, watch)

    async def read_body(self, request: Request) -> bytes | None:
        """The request body, or None past ``max_body_bytes`` (read no further)."""
        limit = self.config.max_body_bytes
        for key, value in request.scope["headers"]:  # the raw list: no Headers object
            if key == b"content-length":
                if value.isdigit() and int(value) > limit:
                    return None
                break
        # ``receive`` itself, as ``request.stream()`` reads it, without its generator.
        receive = request.receive
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def reject(self, ctx: RequestContext, api: Api, status: int, message: str) -> Response:
        """A bad request answered by the proxy itself."""
        ctx.record.error_type = INVALID_REQUEST
        return JSONResponse(error_body(api, status, message), status_code=status)

    def fail(
        self, ctx: RequestContext, api: Api, status: int, error_type: str, message: str
    ) -> Response:
        ctx.record.error_type = error_type
        logger.warning("upstream_failed", error_type=error_type, detail=message[:300])
        return JSONResponse(error_body(api, status, message), status_code=status)

    async def _whole(
        self, ctx: RequestContext, api: Api, model: str, upstream: UpstreamResponse
    ) -> Response:
        """A non-streaming answer (or any error answer): read it, account it, pass it on."""
        try:
            content = await upstream.read(self.config.max_response_bytes)
        except UpstreamTimeout:
            return self.fail(ctx, api, 504, UPSTREAM_TIMEOUT, "upstream timed out")
        except UpstreamDecodingError as exc:  # a content-encoding its body does not match
            return self.fail(
                ctx,
                api,
                502,
                UPSTREAM_INVALID_RESPONSE,
                f"upstream response could not be decoded: {exc}",
            )
        except UpstreamTooLarge as exc:
            return self.fail(ctx, api, 502, UPSTREAM_INVALID_RESPONSE, f"upstream {exc}")
        except UpstreamError as exc:
            return self.fail(
                ctx,
                api,
                502,
                UPSTREAM_CONNECTION_ERROR,
                f"upstream dropped the response: {exc}",
            )
        finally:
            upstream.close()  # closed even when the client left
        status = upstream.status_code
        if status >= 400:
            ctx.record.error_type = upstream_status_error_type(status)
            return relay_headers(Response(content, status_code=status), upstream)
        response = _AccountedResponse(
            content, status, lambda: self._account_whole(ctx, api, model, content)
        )
        return relay_headers(response, upstream)

    def _account_whole(self, ctx: RequestContext, api: Api, model: str, content: bytes) -> None:
        try:
            tokens, ctx.record.stop_reason = self.answer_usage(api, content)
            self._account(ctx, model, tokens)
        except UsageError as exc:
            ctx.record.error_type = UPSTREAM_INVALID_RESPONSE
            logger.warning("upstream_usage_unreadable", detail=str(exc)[:200])

    def _stream(
        self,
        ctx: RequestContext,
        api: Api,
        model: str,
        upstream: UpstreamResponse,
        watch: LeaveWatch,
    ) -> Response:
        """The stream's response; ``watch``, the request's, goes on watching while it is sent."""
        usage = StreamUsage(api)
        decoder = SSEDecoder()
        record = ctx.record

        def read(events: list[ServerSentEvent], arrived: float) -> None:
            """Take the usage and first token out of events that arrived at ``arrived``."""
            for event in events:
                try:
                    if usage.feed(event):
                        record.set_time_to_first_token(arrived)
                except UsageError as exc:
                    if record.error_type is None:  # the first error is the one to name
                        record.error_type = UPSTREAM_INVALID_RESPONSE
                    logger.warning("upstream_event_unreadable", detail=str(exc)[:200])

        quiet_before, quiet_after = quiet_matchers(api)
        skip_before, skip_after = quiet_event_matchers(api)
        clock, started = time.perf_counter, ctx.start_time

        async def relay(send: Send, start: Message) -> None:
            """Send ``start``, then the stream as it arrives, reading along; close the upstream.

            A coroutine sending the body itself, not a generator that a
            response iterates: no generator step per piece, no aclose.
            """
            events_seen = False
            # Bytes of the event still open. Only whole events are passed on, so an error
            # event appended after a cut can never be glued onto half an event before it.
            held = bytearray()
            open_bytes = 0
            # Events passed on but not yet read: the client gets its bytes first.
            unread: list[ServerSentEvent] = []
            arrived = 0.0
            # Decoded bytes: identity was asked for, but an upstream that compresses
            # anyway must not reach the client compressed without its content-encoding.
            next_bytes = upstream.next_bytes
            sending = False  # an exception out of ``send``: the client is gone
            try:
                sending = True
                await send(start)
                sending = False
                while chunk := await next_bytes():
                    arrived = clock() - started  # ctx.duration_seconds, without its call
                    if not open_bytes:  # between events (so nothing is held)
                        # Events with nothing to account go on undecoded (quiet_events.py).
                        quiet = quiet_after if usage.first_token else quiet_before
                        if quiet is not None and quiet(chunk) is not None:
                            events_seen = True
                            sending = True
                            await send(
                                {"type": "http.response.body", "body": chunk, "more_body": True}
                            )
                            sending = False
                            continue
                    unread = decoder.feed(chunk, skip_after if usage.first_token else skip_before)
                    events_seen = events_seen or bool(unread)
                    open_bytes = decoder.open_bytes
                    if not held and not open_bytes:  # whole events, the usual case: no copy
                        sending = True
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                        sending = False
                    else:
                        held += chunk
                        ready = len(held) - open_bytes
                        if ready > 0:
                            piece = bytes(held[:ready])
                            del held[:ready]
                            sending = True
                            await send(
                                {"type": "http.response.body", "body": piece, "more_body": True}
                            )
                            sending = False
                    read(unread, arrived)
                    unread = []
                last = b""
                if usage.complete or usage.error is not None:
                    last = bytes(held)  # trailing bytes after the last event
                elif events_seen or _is_event_stream(upstream):
                    # Ended cleanly but early (a close-delimited body, a proxy between): the
                    # open event is dropped, and without an error event the client would
                    # take what it got for a whole answer.
                    record.error_type = UPSTREAM_INCOMPLETE_STREAM
                    last = stream_error_event(api, "upstream stream ended before its last event")
                else:  # not a stream at all (JSON to a stream request): relayed as it came
                    if record.error_type is None:
                        record.error_type = UPSTREAM_INVALID_RESPONSE
                    last = bytes(held)
            except UpstreamTimeout:
                record.error_type = UPSTREAM_TIMEOUT
                last = stream_error_event(api, "upstream timed out mid-stream")
            except UpstreamDecodingError:
                record.error_type = UPSTREAM_INVALID_RESPONSE
                last = stream_error_event(api, "upstream stream could not be decoded")
            except UpstreamError:
                record.error_type = UPSTREAM_STREAM_ERROR
                last = stream_error_event(api, "upstream stream broke off")
            except BaseException as exc:
                if sending or isinstance(exc, asyncio.CancelledError):  # the client went away
                    read(unread, arrived)  # events it was sent count
                    # After the last event it has the whole answer: SDKs and the load
                    # generator stop reading there, before the upstream's end of body
                    # reaches them.
                    if not usage.complete:
                        record.error_type = CLIENT_DISCONNECT
                raise
            finally:
                upstream.close()
                self._finish_stream(ctx, model, usage, arrived)
            # The stream's last bytes (if any) in its last message.
            await send({"type": "http.response.body", "body": last, "more_body": False})

        return relay_headers(_AccountedStream(relay, upstream.status_code, watch), upstream)

    def _finish_stream(
        self, ctx: RequestContext, model: str, usage: StreamUsage, ended_at: float
    ) -> None:
        """Name the stream's error, or its stop reason and speed; account its usage.

        ``ended_at``: when its last bytes arrived, in seconds from the request's start.
        """
        record = ctx.record
        if record.error_type is None:  # an error named while relaying stands
            if usage.error is not None:
                record.error_type = upstream_event_error_type(usage.error)
            elif not usage.complete:
                record.error_type = UPSTREAM_INCOMPLETE_STREAM
        if usage.usage_seen:
            self._account(ctx, model, usage.tokens)
        if record.error_type is None:  # only a whole answer says why it stopped, and how fast
            record.stop_reason = usage.stop_reason
            record.time_per_output_token_seconds = time_per_output_token(
                record.ttft_seconds, ended_at, usage.tokens.output
            )

    def _account(self, ctx: RequestContext, model: str, tokens: TokenCounts) -> None:
        """Put the tokens and their cost in the request's record, once.

        The middleware records both in the metrics and on the access-log line
        at the request's end.
        """
        record = ctx.record
        input, output, cache_read, cache_write = (
            tokens.input, tokens.output, tokens.cache_read, tokens.cache_write
        )  # fmt: skip
        record.set_usage(input, output, cache_read, cache_write)
        # The cost's four amounts, with no frozen ``Cost`` built per request.
        cost = self.prices.cost_parts(model, input, output, cache_read, cache_write)
        record.set_cost_parts(cost)  # None: unpriced, and counted as such
        if cost is None:
            self._unpriced(model)

    def _unpriced(self, model: str) -> None:
        """Warn once per model (up to a bound) that it has no price."""
        if model not in self._unpriced_logged and len(self._unpriced_logged) < _MAX_UNPRICED_LOGGED:
            self._unpriced_logged.add(model)
            logger.warning("model_unpriced", model=model, cost_recorded_usd=0.0)


class _AccountedResponse(Response):
    """A whole answer, accounted once it is sent, however the sending ends.

    Reading the usage out of the body and recording tokens and cost takes
    tens of microseconds that the client need not wait for; the access-log
    line and the request's metrics are written after this returns, so they
    still carry them.
    """

    def __init__(self, content: bytes, status_code: int, account: Callable[[], None]) -> None:
        # What ``Response(content, status_code)`` sets for bytes without a media type,
        # without its rendering and header checks: the upstream's headers follow.
        self.status_code = status_code
        self.body = content
        self.background = None
        self.raw_headers = (
            [] if status_code < 200 or status_code in (204, 304)
            else [(b"content-length", b"%d" % len(content))]
        )  # fmt: skip
        self.account = account

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code,
                 "headers": self.raw_headers}
            )  # fmt: skip
            await send({"type": "http.response.body", "body": self.body})
        finally:
            self.account()


class RelayedStream(Response):
    """The relayed stream: stopped when the client leaves, its generator closed however it ends.

    In place of Starlette's ``StreamingResponse``, which watches for the client
    with an anyio task group (see :class:`LeaveWatch`) and leaves a generator
    interrupted at a ``yield`` to the garbage collector; closing it here
    releases the upstream connection and does the accounting now, not eventually.
    Headers are the upstream's, added by :func:`relay_headers`.
    """

    def __init__(self, chunks: AsyncGenerator[bytes, None], status_code: int) -> None:
        self.chunks = chunks
        self.status_code = status_code
        self.raw_headers = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watch = LeaveWatch(receive, after=None)
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code,
                 "headers": self.raw_headers}
            )  # fmt: skip
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watch.client_left():
                raise
        finally:
            watch.stop()
            await self.chunks.aclose()  # its cleanup never waits: safe in a cancelled task


class _AccountedStream(Response):
    """The accounted stream: its relay sends it whole; stopped when the client leaves.

    Like :class:`RelayedStream`, with the relay a coroutine that sends the
    body itself (``LLMProxy._stream``), so no generator is between the
    upstream's reads and ``send``. Headers are the upstream's, added by
    :func:`relay_headers`.
    """

    def __init__(
        self,
        relay: Callable[[Send, Message], Awaitable[None]],
        status_code: int,
        watch: LeaveWatch,
    ) -> None:
        self.relay = relay
        self.status_code = status_code
        self.raw_headers = []
        self.watch = watch
        """The request's, watching since before the answer; stopped once the stream is sent."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watch = self.watch
        try:
            await self.relay(
                send,
                {"type": "http.response.start", "status": self.status_code,
                 "headers": self.raw_headers},
            )  # fmt: skip
        except asyncio.CancelledError:
            if not watch.client_left():
                raise
        finally:
            watch.stop()


class ApiRoute:
    """One API endpoint as a plain ASGI app: the request handed straight to its handler.

    FastAPI's route would solve dependencies, and Starlette's function endpoint
    adds an exception-handler wrapper (two closures, two coroutines) to every
    call; the handlers need neither, as they take the raw request and raise no
    ``HTTPException``. An error still goes up to Starlette's error middleware
    and ccobs's, as before.
    """

    def __init__(self, handler: Callable[[Request], Awaitable[Response]]) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handler(Request(scope, receive, send))
        await response(scope, receive, send)
