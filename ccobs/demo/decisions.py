"""What the mock upstream decides for each request: its configuration, per-request
overrides, and the seeded draw of fault, delays, output length and cache hit.

Apart from the app (:mod:`ccobs.demo.upstream`) so the decisions can be read,
and tested, without the HTTP side.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ccobs.demo.mock_rate_limits import MockRateLimitConfig

Api = Literal["anthropic", "openai", "responses"]
"""The wire API a request came in on: Anthropic Messages, OpenAI Chat Completions or
OpenAI Responses (``POST /v1/responses``, what Codex CLI and the Agents SDK speak)."""
Fault = Literal["rate_limit", "server_error", "overloaded", "invalid_request", "timeout", "drop"]

_MAX_OVERRIDE_MS = 3_600_000.0
STATUS_FAULTS: Mapping[int, Fault | None] = {
    200: None,
    400: "invalid_request",
    429: "rate_limit",
    500: "server_error",
    503: "overloaded",
    529: "overloaded",
}
_WORDS = (
    "the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while",
    "observability", "dashboards", "glow", "softly", "and", "every", "token", "counts",
    "toward", "latency", "histograms", "cache", "hits", "and", "cost",
)  # fmt: skip


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
    of the explicit per-status rates. On the OpenAI routes (Chat and Responses)
    the overloaded fault is a 503, as OpenAI sends it; 529 is Anthropic's status.
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
    tool_use_share: float = 0.0
    """Share of whole (not truncated) Anthropic and Chat answers that stop to call a tool
    (``tool_use``, ``tool_calls``), as agents' answers often do. Decided from the request's
    id rather than drawn, so it shifts no other decision of a seeded run."""
    max_recorded_decisions: int = 10_000
    rate_limits: MockRateLimitConfig = field(default_factory=MockRateLimitConfig)
    """Per-key request and token windows (:mod:`ccobs.demo.mock_rate_limits`)."""
    stamp_deltas: bool = False
    """Each streamed text delta's text is the sender's ``time.monotonic_ns()`` instead of
    words, so a benchmark on the same host can measure each event's delay to its client."""

    def __post_init__(self) -> None:
        for name in (
            "tool_use_share",
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
            if status not in STATUS_FAULTS:
                raise ValueError(
                    f"x-mock-status must be one of {sorted(STATUS_FAULTS)}, got {raw_status!r}"
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
    cache_write``. For OpenAI, ``prompt_tokens`` (Responses: ``input_tokens``)
    is that sum and ``cached_tokens`` is ``cache_read_tokens``. On the
    Responses API ``reasoning_tokens`` of the ``output_tokens`` are reasoning,
    as OpenAI counts them (inside the output), and only the rest is text.
    Tokens were billed only when :attr:`ok`.
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
    reasoning_tokens: int = 0

    @property
    def text_tokens(self) -> int:
        """Output tokens sent as text: the output less its reasoning."""
        return self.output_tokens - self.reasoning_tokens

    @property
    def ok(self) -> bool:
        """True when the response completes normally (status 200, no fault)."""
        return self.status == 200 and self.fault is None

    @property
    def prompt_tokens(self) -> int:
        """All input tokens, cached or not (OpenAI's ``prompt_tokens``)."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens


_PROMPT_FIELDS = ("system", "messages", "instructions", "input")
"""Where each API puts the prompt: Messages/Chat ``system`` and ``messages``,
Responses ``instructions`` and ``input`` (a string or a list of items)."""


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    """About four characters a token over the prompt fields of any API; at least 1.

    Deterministic, so the same request always reports the same input usage.
    """
    chars = sum(_text_chars(body.get(name)) for name in _PROMPT_FIELDS)
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


_TOOL_STOP_REASONS: Mapping[str, str] = {"anthropic": "tool_use", "openai": "tool_calls"}


def tool_call_stop_reason(api: Api, request_id: str, share: float) -> str | None:
    """The stop reason of an answer that calls a tool, for ``share`` of the request ids; else None.

    ``request_id`` is the decision's hex digest: its first 32 bits are uniform, so
    the share holds without a draw from the seeded RNG. The Responses API has no
    such stop reason (a tool call is an output item), so none there.
    """
    reason = _TOOL_STOP_REASONS.get(api)
    if reason is None or share <= 0.0:
        return None
    return reason if int(request_id[:8], 16) < share * 2**32 else None


def split_tokens(decision: Decision, per_delta: int, seed: int) -> list[tuple[str, int]]:
    """The response text as (delta text, tokens in it), ``per_delta`` word-tokens a delta."""
    words = [
        _WORDS[(seed + decision.index * 7 + i) % len(_WORDS)] for i in range(decision.text_tokens)
    ]
    tokens = [words[0]] + [f" {word}" for word in words[1:]]
    return [
        ("".join(tokens[i : i + per_delta]), len(tokens[i : i + per_delta]))
        for i in range(0, len(tokens), per_delta)
    ]
