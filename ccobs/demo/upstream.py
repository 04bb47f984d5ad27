"""A mock LLM upstream that speaks the Anthropic Messages and OpenAI Chat APIs.

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
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import secrets
import time
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

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

Api = Literal["anthropic", "openai"]
Fault = Literal["rate_limit", "server_error", "overloaded", "invalid_request", "timeout", "drop"]

_MAX_OVERRIDE_MS = 3_600_000.0
_MAX_BODY_DEPTH = 64
"""Deeper request bodies are refused: the mock walks bodies recursively to count tokens."""
_STATUS_FAULTS: Mapping[int, Fault | None] = {
    200: None,
    400: "invalid_request",
    429: "rate_limit",
    500: "server_error",
    503: "overloaded",
    529: "overloaded",
}
_ANTHROPIC_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_OPENAI_ERROR_TYPES: Mapping[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    404: ("invalid_request_error", "unknown_url"),
    405: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", "overloaded"),
    504: ("timeout", None),
    529: ("server_error", "overloaded"),
}
_FAULT_MESSAGES: Mapping[int, str] = {
    400: "Invalid request (injected by the ccobs mock upstream).",
    429: "Rate limit exceeded (injected by the ccobs mock upstream).",
    500: "Internal server error (injected by the ccobs mock upstream).",
    503: "The server is overloaded (injected by the ccobs mock upstream).",
    504: "Request timed out (injected by the ccobs mock upstream).",
    529: "Overloaded (injected by the ccobs mock upstream).",
}
_WORDS = (
    "the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while",
    "observability", "dashboards", "glow", "softly", "and", "every", "token", "counts",
    "toward", "latency", "histograms", "cache", "hits", "and", "cost",
)  # fmt: skip
_RATE_LIMIT = 4000


# --------------------------------------------------------------------------- config


def _check_rate(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise ValueError(f"UpstreamConfig.{name} must be in [0, 1], got {value!r}")


def _check_seconds(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")


@dataclass(frozen=True)
class Delay:
    """A lognormal delay in seconds: ``median`` and log-space ``sigma``, capped at ``maximum``.

    Lognormal because LLM latencies are right-skewed: most requests cluster
    near the median and a long tail runs far above it. ``sigma=0`` gives a
    constant delay, which tests use.
    """

    median: float
    sigma: float = 0.0
    maximum: float | None = None

    def __post_init__(self) -> None:
        _check_seconds("Delay.median", self.median)
        _check_seconds("Delay.sigma", self.sigma)
        if self.maximum is not None:
            _check_seconds("Delay.maximum", self.maximum)
            if self.maximum < self.median:
                raise ValueError(
                    f"Delay.maximum must be >= median, got {self.maximum!r} < {self.median!r}"
                )

    def sample(self, rng: random.Random) -> float:
        """One draw. Always consumes exactly one normal variate, to keep RNG streams aligned."""
        z = rng.gauss(0.0, 1.0)
        value = self.median * math.exp(self.sigma * z)
        return value if self.maximum is None else min(value, self.maximum)


@dataclass(frozen=True)
class UpstreamConfig:
    """How the mock behaves. Defaults look like a healthy production API.

    Streams wait ``ttft`` before the first text delta, then
    ``inter_token_delay`` per output token; non-streaming responses take
    ``latency``. ``error_rate`` is spread evenly over 429, 500 and 529 on top
    of the explicit per-status rates. On the OpenAI route the overloaded fault
    is a 503, as OpenAI sends it; 529 is Anthropic's status.
    """

    seed: int | None = None
    ttft: Delay = Delay(0.4, 0.5, 10.0)
    latency: Delay = Delay(2.0, 0.6, 60.0)
    inter_token_delay: float = 0.01
    tokens_per_delta: int = 4
    output_tokens: tuple[int, int] = (16, 400)
    cache_hit_share: float = 0.6
    cached_input_share: float = 0.8
    error_rate: float = 0.0
    status_429_rate: float = 0.0
    status_500_rate: float = 0.0
    status_529_rate: float = 0.0
    timeout_rate: float = 0.0
    drop_rate: float = 0.0
    timeout_hang: float = 900.0
    """Longer than any SDK's default timeout (Anthropic's is 600 s), yet bounded."""
    retry_after: int = 2
    max_recorded_decisions: int = 10_000

    def __post_init__(self) -> None:
        for name in (
            "cache_hit_share",
            "cached_input_share",
            "error_rate",
            "status_429_rate",
            "status_500_rate",
            "status_529_rate",
            "timeout_rate",
            "drop_rate",
        ):
            _check_rate(name, getattr(self, name))
        total = sum(self.fault_rates().values())
        if total > 1.0 + 1e-9:
            raise ValueError(
                "UpstreamConfig.error_rate + status_429_rate + status_500_rate + "
                f"status_529_rate + timeout_rate + drop_rate must be <= 1, got {total:g}"
            )
        _check_seconds("UpstreamConfig.inter_token_delay", self.inter_token_delay)
        _check_seconds("UpstreamConfig.timeout_hang", self.timeout_hang)
        if self.timeout_hang <= 0:
            raise ValueError("UpstreamConfig.timeout_hang must be > 0")
        low, high = self.output_tokens
        if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high):
            raise ValueError(
                f"UpstreamConfig.output_tokens must be (min, max) with 1 <= min <= max, "
                f"got {self.output_tokens!r}"
            )
        if self.tokens_per_delta < 1:
            raise ValueError(
                f"UpstreamConfig.tokens_per_delta must be >= 1, got {self.tokens_per_delta!r}"
            )
        if self.retry_after < 0:
            raise ValueError(f"UpstreamConfig.retry_after must be >= 0, got {self.retry_after!r}")
        if self.max_recorded_decisions < 0:
            raise ValueError("UpstreamConfig.max_recorded_decisions must be >= 0")

    def fault_rates(self) -> dict[Fault, float]:
        """Effective probability of each injected fault, ``error_rate`` spread in."""
        spread = self.error_rate / 3.0
        return {
            "rate_limit": self.status_429_rate + spread,
            "server_error": self.status_500_rate + spread,
            "overloaded": self.status_529_rate + spread,
            "timeout": self.timeout_rate,
            "drop": self.drop_rate,
        }


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Overrides:
    """Per-request overrides parsed from ``x-mock-*`` headers."""

    status: int | None = None
    fault: Literal["timeout", "drop"] | None = None
    output_tokens: int | None = None
    ttft: float | None = None
    latency: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Overrides:
        """Parse headers; ValueError names the bad header so a test failure is obvious."""
        status: int | None = None
        fault: Literal["timeout", "drop"] | None = None
        raw_status = headers.get("x-mock-status")
        if raw_status is not None:
            try:
                status = int(raw_status)
            except ValueError:
                status = -1
            if status not in _STATUS_FAULTS:
                raise ValueError(
                    f"x-mock-status must be one of {sorted(_STATUS_FAULTS)}, got {raw_status!r}"
                )
        raw_fault = headers.get("x-mock-fault")
        if raw_fault is not None:
            if raw_fault == "timeout":
                fault = "timeout"
            elif raw_fault == "drop":
                fault = "drop"
            else:
                raise ValueError(f"x-mock-fault must be 'timeout' or 'drop', got {raw_fault!r}")
        output_tokens: int | None = None
        raw_output = headers.get("x-mock-output-tokens")
        if raw_output is not None:
            try:
                output_tokens = int(raw_output)
            except ValueError:
                output_tokens = 0
            if output_tokens < 1:
                raise ValueError(
                    f"x-mock-output-tokens must be an integer >= 1, got {raw_output!r}"
                )
        return cls(
            status=status,
            fault=fault,
            output_tokens=output_tokens,
            ttft=_header_seconds(headers, "x-mock-ttft-ms"),
            latency=_header_seconds(headers, "x-mock-latency-ms"),
        )


def _header_seconds(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        millis = float(raw)
    except ValueError:
        millis = -1.0
    if not (math.isfinite(millis) and 0 <= millis <= _MAX_OVERRIDE_MS):
        raise ValueError(f"{name} must be milliseconds in [0, {_MAX_OVERRIDE_MS:g}], got {raw!r}")
    return millis / 1000.0


@dataclass(frozen=True)
class Decision:
    """What the mock decided for one request; token counts follow Anthropic's convention.

    ``input_tokens`` are uncached; the prompt is ``input + cache_read +
    cache_write``. For OpenAI, ``prompt_tokens`` is that sum and
    ``cached_tokens`` is ``cache_read_tokens``. Tokens were billed only when
    :attr:`ok`.
    """

    index: int
    request_id: str
    api: Api
    model: str
    stream: bool
    status: int
    fault: Fault | None
    ttft: float
    latency: float
    inter_token_delay: float
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    stop_reason: str

    @property
    def ok(self) -> bool:
        """True when the response completes normally (status 200, no fault)."""
        return self.status == 200 and self.fault is None

    @property
    def prompt_tokens(self) -> int:
        """All input tokens, cached or not (OpenAI's ``prompt_tokens``)."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    """About four characters a token over system prompt and messages; at least 1.

    Deterministic, so the same request always reports the same input usage.
    """
    chars = _text_chars(body.get("system")) + _text_chars(body.get("messages"))
    return max(1, math.ceil(chars / 4))


def _text_chars(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_chars(item) for item in value)
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return len(value["text"])
        if "content" in value:
            return _text_chars(value["content"])
        return len(json.dumps(value, separators=(",", ":")))
    return len(str(value))


def _split_tokens(decision: Decision, per_delta: int, seed: int) -> list[tuple[str, int]]:
    """The response text as (delta text, tokens in it), ``per_delta`` word-tokens a delta."""
    words = [
        _WORDS[(seed + decision.index * 7 + i) % len(_WORDS)] for i in range(decision.output_tokens)
    ]
    tokens = [words[0]] + [f" {word}" for word in words[1:]]
    return [
        ("".join(tokens[i : i + per_delta]), len(tokens[i : i + per_delta]))
        for i in range(0, len(tokens), per_delta)
    ]


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
            fault = _STATUS_FAULTS[overrides.status]
            status = overrides.status
        else:
            status = _fault_status(fault, api)

        requested = overrides.output_tokens or drawn_output
        output = min(requested, max_tokens) if max_tokens is not None else requested
        truncated = output < requested
        if api == "anthropic":
            stop_reason = "max_tokens" if truncated else "end_turn"
        else:
            stop_reason = "length" if truncated else "stop"

        cached = math.floor(prompt_tokens * cfg.cached_input_share)
        cache_read = cached if cache_hit else 0
        cache_write = cached if (api == "anthropic" and not cache_hit) else 0
        input_tokens = prompt_tokens - cache_read - cache_write

        if overrides.ttft is not None:
            ttft = overrides.ttft
        first = min(cfg.tokens_per_delta, output)
        inter = cfg.inter_token_delay
        if stream:
            if overrides.latency is not None:
                inter = max(0.0, overrides.latency - ttft) / max(1, output - first)
            latency = ttft + inter * (output - first)
        elif overrides.latency is not None:
            latency = overrides.latency

        index = self._index
        self._index += 1
        digest = hashlib.blake2b(f"{self._id_salt}:{index}".encode(), digest_size=12).hexdigest()
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
        )
        self.decisions.append(decision)
        return decision

    # ----------------------------------------------------------------------- handling

    async def handle(self, request: Request, api: Api) -> Response:
        """Validate, decide, then answer, fail, hang or drop as decided."""
        try:
            body = await _json_object(request)
            model, stream, max_tokens, include_usage = _validate(api, body)
            overrides = Overrides.from_headers(request.headers)
        except ValueError as exc:
            return _error_response(api, 400, str(exc))
        decision = self.decide(
            api=api,
            model=model,
            stream=stream,
            prompt_tokens=estimate_prompt_tokens(body),
            max_tokens=max_tokens,
            overrides=overrides,
        )
        headers = self._headers(decision)

        if decision.fault == "timeout":
            if not await _pause(request, self.config.timeout_hang):
                return Response(status_code=499)  # nobody is listening any more
            return _error_response(api, 504, _FAULT_MESSAGES[504], headers)
        if decision.status != 200:
            if decision.status == 429:
                headers["retry-after"] = str(self.config.retry_after)
            return _error_response(api, decision.status, _FAULT_MESSAGES[decision.status], headers)

        if stream:
            events = (
                self._anthropic_events(decision)
                if api == "anthropic"
                else self._openai_events(decision, include_usage)
            )
            return _EventStreamResponse(events, headers=headers)

        if not await _pause(request, decision.latency):
            return Response(status_code=499)
        payload = (
            self._anthropic_message(decision)
            if api == "anthropic"
            else self._openai_completion(decision)
        )
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
            body = await _json_object(request)
            _model_and_messages(body)
        except ValueError as exc:
            return _error_response("anthropic", 400, str(exc))
        return JSONResponse({"input_tokens": estimate_prompt_tokens(body)})

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

    async def _paced(
        self, decision: Decision, deltas: list[tuple[str, int]]
    ) -> AsyncGenerator[str, None]:
        """Yield text deltas on schedule; a ``drop`` fault aborts after about half of them."""
        drop_at = max(1, len(deltas) // 2) if decision.fault == "drop" else None
        await anyio.sleep(decision.ttft)
        for i, (text, tokens) in enumerate(deltas):
            if i == drop_at:
                raise _DropConnection
            if i:
                await anyio.sleep(decision.inter_token_delay * tokens)
            yield text
        if drop_at is not None:
            raise _DropConnection

    def _text(self, decision: Decision) -> str:
        return "".join(text for text, _ in self._deltas(decision))

    def _deltas(self, decision: Decision) -> list[tuple[str, int]]:
        return _split_tokens(decision, self.config.tokens_per_delta, self.config.seed or 0)

    def _tracked_stream(self) -> _StreamTracker:
        return _StreamTracker(self)


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


_FAULT_STATUSES: Mapping[Fault, int] = {
    "rate_limit": 429,
    "server_error": 500,
    "invalid_request": 400,
    "timeout": 504,
}


def _fault_status(fault: Fault | None, api: Api) -> int:
    """The status a fault answers with (a timeout's 504 only if the client still waits)."""
    if fault is None or fault == "drop":
        return 200
    if fault == "overloaded":
        return 529 if api == "anthropic" else 503
    return _FAULT_STATUSES[fault]


def _error_response(
    api: Api, status: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An error body in the vendor's shape, so SDKs raise their matching error class."""
    body: dict[str, Any]
    if api == "anthropic":
        error_type = _ANTHROPIC_ERROR_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        body = {"type": "error", "error": {"type": error_type, "message": message}}
        if headers and "request-id" in headers:
            body["request_id"] = headers["request-id"]
    else:
        error_type, code = _OPENAI_ERROR_TYPES.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None)
        )
        body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _positive_int(body: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ValueError(f"{name}: Field required")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: Input should be an integer >= 1")
    return value


async def _json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; ValueError (answered with a 400) otherwise."""
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("Request body is not valid JSON.") from exc
    except RecursionError:
        raise ValueError("Request body is nested too deeply.") from None
    if not isinstance(body, dict):
        raise ValueError("Request body must be a JSON object.")
    if _depth_exceeds(body, _MAX_BODY_DEPTH):
        raise ValueError(f"Request body is nested deeper than {_MAX_BODY_DEPTH} levels.")
    return body


def _depth_exceeds(value: object, limit: int) -> bool:
    """True when containers nest deeper than ``limit``; iterative, so any depth is safe."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[object]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _model_and_messages(body: Mapping[str, Any]) -> str:
    """Check the fields both APIs require; return the model."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError("model: Field required")
    if not model.isprintable():
        # The model is echoed in every answer: a lone surrogate could not even be encoded.
        raise ValueError("model: Input should be a printable string")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages: Field required (a non-empty list)")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise ValueError("messages: each message must be an object with a role")
    return model


def _validate(api: Api, body: Mapping[str, Any]) -> tuple[str, bool, int | None, bool]:
    """Check the fields the mock relies on: (model, stream, max_tokens, include_usage)."""
    model = _model_and_messages(body)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ValueError("stream: Input should be a valid boolean")
    include_usage = False
    if api == "anthropic":
        max_tokens = _positive_int(body, "max_tokens", required=True)
    else:
        max_tokens = _positive_int(body, "max_completion_tokens", required=False)
        if max_tokens is None:
            max_tokens = _positive_int(body, "max_tokens", required=False)
        options = body.get("stream_options")
        if options is not None:
            if not stream:
                raise ValueError(
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled."
                )
            if not isinstance(options, dict):
                raise ValueError("stream_options: Input should be an object")
            include_usage = options.get("include_usage") is True
    return model, stream, max_tokens, include_usage


# --------------------------------------------------------------------------- app


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

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        api: Api = "openai" if request.url.path.startswith("/v1/chat") else "anthropic"
        return _error_response(api, exc.status_code, str(exc.detail))

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
