"""A mock LLM upstream that speaks the Anthropic Messages, OpenAI Chat and OpenAI Responses APIs.

The demo and the tests need an upstream that behaves like the real ones on
the wire (response shapes, the exact SSE event sequence, error bodies and
statuses, streaming with real delays, dropped connections and hangs) without
keys, cost or network. The official SDKs parse everything it sends.

Every request gets a :class:`Decision` drawn from one seeded RNG in arrival
order: fault, time to first token, latency, output length and cache hit. The
same seed and the same request sequence give the same decisions, and each
decision draws the same number of random values whatever its outcome, so a
per-request override never shifts the decisions of later requests. Decisions
are kept (bounded) on :class:`MockUpstream` so tests can compare what a client
saw with what the mock decided.

Per-request headers override the draw, for deterministic tests:

``x-mock-status``
    ``200`` (force success), ``400``, ``429``, ``500``, ``503`` or ``529``.
``x-mock-fault``
    ``timeout`` (hang, then 504) or ``drop`` (abort after the headers/mid-stream).
``x-mock-output-tokens``
    Output length before the ``max_tokens`` cap.
``x-mock-ttft-ms``, ``x-mock-latency-ms``
    Time to first token of a stream; total response time (for a stream the
    inter-token delay is stretched so the whole stream takes that long).

``x-mock-status`` wins over ``x-mock-fault``.

The module is over 600 lines because it holds the three APIs' answer shapes
side by side, each built from the same :class:`Decision`; read together they
show what differs between the APIs and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import secrets
import time
from collections import deque
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import anyio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from ccobs.demo.decisions import (
    STATUS_FAULTS,
    Api,
    Decision,
    Delay,
    Fault,
    Overrides,
    UpstreamConfig,
    estimate_prompt_tokens,
    split_tokens,
    tool_call_stop_reason,
)
from ccobs.demo.mock_errors import (
    FAULT_MESSAGES,
    error_response,
    fault_status,
    json_object,
    model_and_messages,
    validate,
)
from ccobs.demo.mock_models import models_response
from ccobs.demo.mock_rate_limits import MockRateLimits
from ccobs.proxy.sse import encode_event

__all__ = [
    "Api",
    "Decision",
    "Delay",
    "Fault",
    "MockUpstream",
    "Overrides",
    "UpstreamConfig",
    "create_upstream_app",
    "estimate_prompt_tokens",
    "get_upstream",
    "run_upstream",
]


_RATE_LIMIT = 4000
_REASONING_DIVISOR = 4
"""On the Responses API a quarter of the output tokens (rounded down) are reasoning:
reasoning models spend some, and clients must see them inside ``output_tokens``.
Derived, not drawn, so the RNG stream stays the same whatever the API."""


class MockUpstream:
    """The mock's state: the seeded RNG, recorded decisions and live stream counts."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._id_salt = str(config.seed) if config.seed is not None else secrets.token_hex(8)
        self._index = 0
        self.decisions: deque[Decision] = deque(maxlen=config.max_recorded_decisions)
        self.active_streams = 0
        self.completed_streams = 0
        self.aborted_streams = 0
        self.rate_limits = MockRateLimits(config.rate_limits)

    def decide(
        self,
        *,
        api: Api,
        model: str,
        stream: bool,
        prompt_tokens: int,
        max_tokens: int | None,
        overrides: Overrides | None = None,
    ) -> Decision:
        """Draw the next decision. Five draws every time, whatever the overrides."""
        overrides = overrides if overrides is not None else Overrides()
        cfg = self.config
        rng = self._rng
        u_fault = rng.random()
        ttft = cfg.ttft.sample(rng)
        latency = cfg.latency.sample(rng)
        drawn_output = rng.randint(*cfg.output_tokens)
        cache_hit = rng.random() < cfg.cache_hit_share

        fault: Fault | None = None
        threshold = 0.0
        for kind, rate in cfg.fault_rates().items():
            threshold += rate
            if u_fault < threshold:
                fault = kind
                break
        if overrides.fault is not None:
            fault = overrides.fault
        if overrides.status is not None:
            fault = STATUS_FAULTS[overrides.status]
            status = overrides.status
        else:
            status = fault_status(fault, api)

        requested = overrides.output_tokens or drawn_output
        output = min(requested, max_tokens) if max_tokens is not None else requested
        truncated = output < requested
        reasoning = 0
        if api == "anthropic":
            stop_reason = "max_tokens" if truncated else "end_turn"
        elif api == "openai":
            stop_reason = "length" if truncated else "stop"
        else:
            # The response's status, or why it is incomplete (its incomplete_details.reason).
            stop_reason = "max_output_tokens" if truncated else "completed"
            reasoning = output // _REASONING_DIVISOR
        text = output - reasoning

        cached = math.floor(prompt_tokens * cfg.cached_input_share)
        cache_read = cached if cache_hit else 0
        cache_write = cached if (api == "anthropic" and not cache_hit) else 0
        input_tokens = prompt_tokens - cache_read - cache_write

        if overrides.ttft is not None:
            ttft = overrides.ttft
        first = min(cfg.tokens_per_delta, text)
        inter = cfg.inter_token_delay
        if stream:
            if overrides.latency is not None:
                inter = max(0.0, overrides.latency - ttft) / max(1, text - first)
            latency = ttft + inter * (text - first)
        elif overrides.latency is not None:
            latency = overrides.latency

        index = self._index
        self._index += 1
        digest = hashlib.blake2b(f"{self._id_salt}:{index}".encode(), digest_size=12).hexdigest()
        if not truncated:
            stop_reason = tool_call_stop_reason(api, digest, cfg.tool_use_share) or stop_reason
        decision = Decision(
            index=index,
            request_id=digest,
            api=api,
            model=model,
            stream=stream,
            status=status,
            fault=fault,
            ttft=ttft,
            latency=latency,
            inter_token_delay=inter,
            input_tokens=input_tokens,
            output_tokens=output,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            stop_reason=stop_reason,
            reasoning_tokens=reasoning,
        )
        self.decisions.append(decision)
        return decision

    # ----------------------------------------------------------------------- handling

    async def handle(self, request: Request, api: Api) -> Response:
        """Validate, decide, then answer, fail, hang or drop as decided."""
        try:
            body = await json_object(request)
            model, stream, max_tokens, include_usage = validate(api, body)
            overrides = Overrides.from_headers(request.headers)
        except ValueError as exc:
            return error_response(api, 400, str(exc))
        decision = self.decide(
            api=api,
            model=model,
            stream=stream,
            prompt_tokens=estimate_prompt_tokens(body),
            max_tokens=max_tokens,
            overrides=overrides,
        )
        headers = self._headers(decision)
        retry_after = self.rate_limits.charge(
            api,
            request.headers,
            decision.prompt_tokens,
            decision.output_tokens,
            decision.status,
            headers,
        )
        if retry_after is not None:  # a spent window: 429, as the real APIs answer
            return error_response(api, 429, FAULT_MESSAGES[429], headers)

        if decision.fault == "timeout":
            if not await _pause(request, self.config.timeout_hang):
                return Response(status_code=499)  # nobody is listening any more
            return error_response(api, 504, FAULT_MESSAGES[504], headers)
        if decision.status != 200:
            if decision.status == 429:
                headers["retry-after"] = str(self.config.retry_after)
            return error_response(api, decision.status, FAULT_MESSAGES[decision.status], headers)

        if stream:
            if api == "anthropic":
                events = self._anthropic_events(decision)
            elif api == "openai":
                events = self._openai_events(decision, include_usage)
            else:
                events = self._responses_events(decision)
            return _EventStreamResponse(events, headers=headers)

        if not await _pause(request, decision.latency):
            return Response(status_code=499)
        if api == "anthropic":
            payload = self._anthropic_message(decision)
        elif api == "openai":
            payload = self._openai_completion(decision)
        else:
            payload = self._response(decision, self._text(decision))
        if decision.fault == "drop":
            return _EventStreamResponse(
                _truncated(json.dumps(payload).encode()),
                headers=headers,
                media_type="application/json",
            )
        return JSONResponse(payload, headers=headers)

    async def count_tokens(self, request: Request) -> Response:
        """Anthropic's token counter (Claude Code calls it): the same estimate, no decision."""
        try:
            body = await json_object(request)
            model_and_messages(body)
        except ValueError as exc:
            return error_response("anthropic", 400, str(exc))
        # Anthropic names every answer with a request id, this one too.
        headers = {"request-id": f"req_{secrets.token_hex(12)}"}
        return JSONResponse({"input_tokens": estimate_prompt_tokens(body)}, headers=headers)

    def _headers(self, decision: Decision) -> dict[str, str]:
        """Request id and rate-limit headers, named as each vendor names them."""
        remaining = str(0 if decision.status == 429 else _RATE_LIMIT - 1)
        if decision.api == "anthropic":
            reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
            return {
                "request-id": f"req_{decision.request_id}",
                "anthropic-ratelimit-requests-limit": str(_RATE_LIMIT),
                "anthropic-ratelimit-requests-remaining": remaining,
                "anthropic-ratelimit-requests-reset": reset,
            }
        return {
            "x-request-id": f"req_{decision.request_id}",
            "x-ratelimit-limit-requests": str(_RATE_LIMIT),
            "x-ratelimit-remaining-requests": remaining,
            "x-ratelimit-reset-requests": "60s",
        }

    def _anthropic_usage(self, decision: Decision, output_tokens: int) -> dict[str, int]:
        return {
            "input_tokens": decision.input_tokens,
            "cache_creation_input_tokens": decision.cache_write_tokens,
            "cache_read_input_tokens": decision.cache_read_tokens,
            "output_tokens": output_tokens,
        }

    def _anthropic_message(self, decision: Decision) -> dict[str, Any]:
        text = self._text(decision)
        return {
            "id": f"msg_{decision.request_id}",
            "type": "message",
            "role": "assistant",
            "model": decision.model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": decision.stop_reason,
            "stop_sequence": None,
            "usage": self._anthropic_usage(decision, decision.output_tokens),
        }

    async def _anthropic_events(self, decision: Decision) -> AsyncGenerator[bytes, None]:
        """The event sequence Anthropic sends, paced in real time."""
        deltas = self._deltas(decision)
        start = self._anthropic_message(decision)
        start.update(content=[], stop_reason=None, usage=self._anthropic_usage(decision, 1))
        async with self._tracked_stream():
            yield encode_event({"type": "message_start", "message": start}, "message_start")
            yield encode_event(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            )
            yield encode_event({"type": "ping"}, "ping")
            async for text in self._paced(decision, deltas):
                yield encode_event(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": text},
                    },
                    "content_block_delta",
                )
            yield encode_event({"type": "content_block_stop", "index": 0}, "content_block_stop")
            yield encode_event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": decision.stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": decision.output_tokens},
                },
                "message_delta",
            )
            yield encode_event({"type": "message_stop"}, "message_stop")

    def _openai_usage(self, decision: Decision) -> dict[str, Any]:
        return {
            "prompt_tokens": decision.prompt_tokens,
            "completion_tokens": decision.output_tokens,
            "total_tokens": decision.prompt_tokens + decision.output_tokens,
            "prompt_tokens_details": {
                "cached_tokens": decision.cache_read_tokens,
                "audio_tokens": 0,
            },
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _openai_completion(self, decision: Decision) -> dict[str, Any]:
        text = self._text(decision)
        return {
            "id": f"chatcmpl-{decision.request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": decision.model,
            "system_fingerprint": "fp_ccobs_mock",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": decision.stop_reason,
                }
            ],
            "usage": self._openai_usage(decision),
        }

    async def _openai_events(
        self, decision: Decision, include_usage: bool
    ) -> AsyncGenerator[bytes, None]:
        """``chat.completion.chunk`` lines, the usage chunk when asked for, then ``[DONE]``."""
        deltas = self._deltas(decision)
        base: dict[str, Any] = {
            "id": f"chatcmpl-{decision.request_id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": decision.model,
            "system_fingerprint": "fp_ccobs_mock",
        }
        if include_usage:
            base["usage"] = None

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return encode_event({**base, "choices": [choice]})

        async with self._tracked_stream():
            yield chunk({"role": "assistant", "content": "", "refusal": None})
            async for text in self._paced(decision, deltas):
                yield chunk({"content": text})
            yield chunk({}, decision.stop_reason)
            if include_usage:
                yield encode_event({**base, "choices": [], "usage": self._openai_usage(decision)})
            yield encode_event("[DONE]")

    def _responses_usage(self, decision: Decision) -> dict[str, Any]:
        """Responses usage: ``input_tokens`` includes the cached ones, output the reasoning.

        ``cache_write_tokens`` is always 0: the mock models OpenAI's automatic prompt
        caching, which writes nothing billed apart (as on Chat); current SDKs and
        Codex read the field, so it is sent.
        """
        return {
            "input_tokens": decision.prompt_tokens,
            "input_tokens_details": {
                "cached_tokens": decision.cache_read_tokens,
                "cache_write_tokens": 0,
            },
            "output_tokens": decision.output_tokens,
            "output_tokens_details": {"reasoning_tokens": decision.reasoning_tokens},
            "total_tokens": decision.prompt_tokens + decision.output_tokens,
        }

    def _response(
        self, decision: Decision, text: str | None, *, created_at: int | None = None
    ) -> dict[str, Any]:
        """A ``response`` object; ``text=None`` is the in-progress one a stream starts with."""
        incomplete = decision.stop_reason != "completed"
        status = "in_progress" if text is None else "incomplete" if incomplete else "completed"
        output = [] if text is None else [self._response_message(decision, text, status)]
        return {
            "id": f"resp_{decision.request_id}",
            "object": "response",
            "created_at": created_at if created_at is not None else int(time.time()),
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": (
                {"reason": decision.stop_reason} if status == "incomplete" else None
            ),
            "instructions": None,
            "max_output_tokens": None,
            "model": decision.model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": False,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": None if text is None else self._responses_usage(decision),
            "user": None,
            "metadata": {},
        }

    def _response_message(self, decision: Decision, text: str, status: str) -> dict[str, Any]:
        content = [] if status == "in_progress" else [_output_text(text)]
        return {
            "id": f"msg_{decision.request_id}",
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        }

    async def _responses_events(self, decision: Decision) -> AsyncGenerator[bytes, None]:
        """The typed event sequence of a streamed response, numbered, paced in real time.

        ``response.created`` and ``response.in_progress`` carry the response
        without output or usage; then one message item with one ``output_text``
        part, its deltas, the ``.done`` events that repeat the whole text, and
        ``response.completed`` (``response.incomplete`` when ``max_output_tokens``
        cut it) with the usage. Every event is named by an ``event:`` line too.
        """
        deltas = self._deltas(decision)
        created_at = int(time.time())
        item_id = f"msg_{decision.request_id}"
        where = {"item_id": item_id, "output_index": 0, "content_index": 0}
        sequence = 0

        def event(kind: str, **fields: Any) -> bytes:
            nonlocal sequence
            data = {"type": kind, "sequence_number": sequence, **fields}
            sequence += 1
            return encode_event(data, kind)

        async with self._tracked_stream():
            started = self._response(decision, None, created_at=created_at)
            yield event("response.created", response=started)
            yield event("response.in_progress", response=started)
            item = self._response_message(decision, "", "in_progress")
            yield event("response.output_item.added", output_index=0, item=item)
            yield event("response.content_part.added", **where, part=_output_text(""))
            texts: list[str] = []
            async for text in self._paced(decision, deltas):
                texts.append(text)
                yield event("response.output_text.delta", **where, delta=text, logprobs=[])
            whole = "".join(texts)
            yield event("response.output_text.done", **where, text=whole, logprobs=[])
            yield event("response.content_part.done", **where, part=_output_text(whole))
            final = self._response(decision, whole, created_at=created_at)
            yield event("response.output_item.done", output_index=0, item=final["output"][0])
            kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
            yield event(kind, response=final)

    async def _paced(
        self, decision: Decision, deltas: list[tuple[str, int]]
    ) -> AsyncGenerator[str, None]:
        """Yield text deltas on schedule; a ``drop`` fault aborts after about half of them."""
        drop_at = max(1, len(deltas) // 2) if decision.fault == "drop" else None
        stamp = self.config.stamp_deltas
        await anyio.sleep(decision.ttft)
        for i, (text, tokens) in enumerate(deltas):
            if i == drop_at:
                raise _DropConnection
            if i:
                await anyio.sleep(decision.inter_token_delay * tokens)
            yield str(time.monotonic_ns()) if stamp else text
        if drop_at is not None:
            raise _DropConnection

    def _text(self, decision: Decision) -> str:
        return "".join(text for text, _ in self._deltas(decision))

    def _deltas(self, decision: Decision) -> list[tuple[str, int]]:
        return split_tokens(decision, self.config.tokens_per_delta, self.config.seed or 0)

    def _tracked_stream(self) -> _StreamTracker:
        return _StreamTracker(self)


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class _StreamTracker:
    """Counts live, completed and aborted streams, so tests can see a disconnect stop one."""

    def __init__(self, upstream: MockUpstream) -> None:
        self._upstream = upstream

    async def __aenter__(self) -> None:
        self._upstream.active_streams += 1

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._upstream.active_streams -= 1
        if exc_type is None:
            self._upstream.completed_streams += 1
        else:
            self._upstream.aborted_streams += 1


# --------------------------------------------------------------------------- transport


class _DropConnection(Exception):
    """Raised inside a response body to abort the connection without finishing it."""


class _EventStreamResponse(StreamingResponse):
    """Sends each chunk as soon as it is produced; can abort the connection on purpose.

    Returning without the final body message makes uvicorn close the socket,
    which the client sees as an incomplete (protocol) error. The generator is
    always closed, also when Starlette cancels the stream on client disconnect.
    """

    def __init__(
        self,
        events: AsyncGenerator[bytes, None],
        *,
        headers: Mapping[str, str] | None = None,
        media_type: str = "text/event-stream",
    ) -> None:
        merged = {"cache-control": "no-cache", **(headers or {})}
        super().__init__(events, headers=merged, media_type=media_type)
        self._events = events

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        except _DropConnection:
            return
        finally:
            with anyio.CancelScope(shield=True):
                await self._events.aclose()


async def _truncated(payload: bytes) -> AsyncGenerator[bytes, None]:
    """Half a JSON body, then an aborted connection."""
    yield payload[: len(payload) // 2]
    raise _DropConnection


async def _pause(request: Request, seconds: float) -> bool:
    """Wait ``seconds``; return False early if the client disconnects, to free the slot."""
    if seconds <= 0:
        return True
    with anyio.move_on_after(seconds):
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return False
    return True


def create_upstream_app(config: UpstreamConfig | None = None) -> FastAPI:
    """The mock as an ASGI app; its :class:`MockUpstream` is at :func:`get_upstream`."""
    upstream = MockUpstream(config if config is not None else UpstreamConfig())
    app = FastAPI(title="ccobs mock LLM upstream", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.upstream = upstream

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/messages")
    async def messages(request: Request) -> Response:
        return await upstream.handle(request, "anthropic")

    @app.post("/v1/messages/count_tokens")
    async def count_tokens(request: Request) -> Response:
        return await upstream.count_tokens(request)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await upstream.handle(request, "openai")

    @app.post("/v1/responses")
    async def responses(request: Request) -> Response:
        return await upstream.handle(request, "responses")

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        return models_response(request)

    @app.get("/v1/models/{model_id}")
    async def model(request: Request, model_id: str) -> Response:
        return models_response(request, model_id)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        path = request.url.path
        api: Api = (
            "openai"
            if path.startswith("/v1/chat")
            else "responses"
            if path.startswith("/v1/responses")
            else "anthropic"
        )
        return error_response(api, exc.status_code, str(exc.detail))

    return app


def get_upstream(app: FastAPI) -> MockUpstream:
    """The :class:`MockUpstream` behind an app made by :func:`create_upstream_app`."""
    upstream = getattr(app.state, "upstream", None)
    if not isinstance(upstream, MockUpstream):
        raise TypeError("app was not created by create_upstream_app")
    return upstream


def run_upstream(
    host: str,
    port: int,
    config: UpstreamConfig | None = None,
    *,
    log_level: str = "warning",
) -> None:
    """Serve the mock with uvicorn until interrupted. Access logs are off: the proxy logs."""
    uvicorn.run(
        create_upstream_app(config),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
    )
