"""The mock upstream's rate limits: per-key windows that count down, reset, and refuse.

The real APIs state an account's standing on every answer and answer 429
with ``retry-after`` once a window is spent; the proxy's headroom gauges and
alerts need an upstream that does the same. Each key (the ``x-api-key`` or
the bearer token, kept only as a hash) has fixed windows that start with its
first request: requests, input and output tokens (Anthropic states the sum as
``tokens`` too; OpenAI states requests and tokens). A request that finds a
window spent gets a 429 whose ``retry-after`` is the seconds until that
window resets, and is not charged.

A request on ``/v1/messages`` whose ``Authorization`` is a bearer token
starting ``sk-ant-oat01-`` authenticates like a Claude subscription client
(Claude Code with a Max plan): it is charged against the key's 5-hour and
7-day token windows instead and answered with the unified headers
(``anthropic-ratelimit-unified-status``, ``-5h-utilization``, ``-5h-reset``,
``-7d-utilization``, ``-7d-reset``).

``x-mock-ratelimit-requests`` sets the requests limit of the key's window
(tests use it to run a window low without sending thousands of requests).
Only requests the mock decided to answer with 200 are charged; its own
injected faults leave the windows as they are.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass

__all__ = [
    "DEMO_RATE_LIMITS",
    "SUBSCRIPTION_TOKEN_PREFIX",
    "MockRateLimitConfig",
    "MockRateLimits",
]

SUBSCRIPTION_TOKEN_PREFIX = "sk-ant-oat01-"
"""How a Claude subscription (OAuth) access token starts."""
REQUESTS_LIMIT_HEADER = "x-mock-ratelimit-requests"
_MAX_OVERRIDE = 1_000_000_000


@dataclass(frozen=True)
class MockRateLimitConfig:
    """Limits per key and window. The defaults are generous: no test trips them by accident."""

    window_seconds: float = 60.0
    requests: int = 4000
    input_tokens: int = 2_000_000
    output_tokens: int = 400_000
    subscription_5h_tokens: int = 5_000_000
    subscription_7d_tokens: int = 50_000_000
    subscription_5h_seconds: float = 5 * 3600.0
    subscription_7d_seconds: float = 7 * 86400.0
    warning_utilization: float = 0.8
    """Subscription utilization from which the status is ``allowed_warning``."""
    max_keys: int = 1000
    """Keys remembered; the least recently seen is forgotten past this (its windows restart)."""

    def __post_init__(self) -> None:
        for name in ("requests", "input_tokens", "output_tokens", "max_keys"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"MockRateLimitConfig.{name} must be an int >= 1, got {value!r}")
        for name in (
            "window_seconds",
            "subscription_5h_seconds",
            "subscription_7d_seconds",
            "subscription_5h_tokens",
            "subscription_7d_tokens",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"MockRateLimitConfig.{name} must be > 0, got {value!r}")
        if not 0 < self.warning_utilization <= 1:
            raise ValueError("MockRateLimitConfig.warning_utilization must be within (0, 1]")


DEMO_RATE_LIMITS = MockRateLimitConfig(requests=80, input_tokens=120_000, output_tokens=18_000)
"""What ``ccobs demo`` runs with: its 5 requests a second are spread over the demo's seven
keys, about 50 a minute and 10,000 output tokens each on average, so the busiest keys'
headroom falls low before a minute's reset and their output tokens run out now and then
(a few 429s, not an outage: 60, 70 000 and 11 000 gave 22 in 130 s)."""


class _Window:
    """One fixed window of one key: what it allows, what it used, when it started."""

    __slots__ = ("limit", "seconds", "start", "used")

    def __init__(self, limit: float, seconds: float, now: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.start = now
        self.used = 0.0

    def roll(self, now: float) -> None:
        """Start a new window once this one is over."""
        if now >= self.start + self.seconds:
            self.start = now
            self.used = 0.0

    @property
    def reset_at(self) -> float:
        return self.start + self.seconds

    @property
    def remaining(self) -> float:
        return max(0.0, self.limit - self.used)

    @property
    def spent(self) -> bool:
        return self.used >= self.limit


class _Key:
    """The windows of one key."""

    __slots__ = ("input", "output", "requests", "sub_5h", "sub_7d")

    def __init__(self, config: MockRateLimitConfig, now: float) -> None:
        self.requests = _Window(config.requests, config.window_seconds, now)
        self.input = _Window(config.input_tokens, config.window_seconds, now)
        self.output = _Window(config.output_tokens, config.window_seconds, now)
        self.sub_5h = _Window(config.subscription_5h_tokens, config.subscription_5h_seconds, now)
        self.sub_7d = _Window(config.subscription_7d_tokens, config.subscription_7d_seconds, now)


class MockRateLimits:
    """Every key's windows; :meth:`charge` is called once per request the mock answers."""

    def __init__(self, config: MockRateLimitConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._keys: OrderedDict[bytes, _Key] = OrderedDict()

    def charge(
        self,
        api: str,
        request_headers: Mapping[str, str],
        input_tokens: int,
        output_tokens: int,
        status: int,
        headers: MutableMapping[str, str],
    ) -> int | None:
        """Charge one request and put the rate-limit headers of its answer in ``headers``.

        ``status``: what the mock decided to answer; only a 200 is charged,
        and an injected 429 states its requests window spent. Returns the
        ``retry-after`` seconds of a 429 when a window is spent, else None.
        Rate-limit headers already in ``headers`` are replaced.
        """
        answered = status == 200
        for name in [name for name in headers if "ratelimit" in name]:
            del headers[name]
        now = self._clock()
        key = self._key(request_headers, now)
        override = request_headers.get(REQUESTS_LIMIT_HEADER)
        if override is not None and override.isdigit():
            key.requests.limit = min(int(override), _MAX_OVERRIDE)
        if api == "anthropic" and _is_subscription(request_headers):
            return self._subscription(key, now, input_tokens + output_tokens, answered, headers)
        windows = (key.requests, key.input, key.output)
        for window in windows:
            window.roll(now)
        spent = [window for window in windows if window.spent]
        if answered and not spent:
            key.requests.used += 1
            key.input.used += input_tokens
            key.output.used += output_tokens
        if api == "anthropic":
            _anthropic_headers(key, headers)
        else:
            _openai_headers(key, now, headers)
        if status == 429:  # an injected rate-limit fault: the requests window reads spent
            for name in (
                "anthropic-ratelimit-requests-remaining",
                "x-ratelimit-remaining-requests",
            ):
                if name in headers:
                    headers[name] = "0"
        if not answered or not spent:
            return None
        retry_after = _seconds_until(max(window.reset_at for window in spent), now)
        headers["retry-after"] = str(retry_after)
        return retry_after

    def _subscription(
        self,
        key: _Key,
        now: float,
        tokens: int,
        answered: bool,
        headers: MutableMapping[str, str],
    ) -> int | None:
        windows = (("5h", key.sub_5h), ("7d", key.sub_7d))
        for _, window in windows:
            window.roll(now)
        spent = [window for _, window in windows if window.spent]
        if answered and not spent:
            for _, window in windows:
                window.used += tokens
        utilization = max(window.used / window.limit for _, window in windows)
        status = (
            "rejected"
            if spent
            else "allowed_warning"
            if utilization >= self.config.warning_utilization
            else "allowed"
        )
        headers["anthropic-ratelimit-unified-status"] = status
        for name, window in windows:
            prefix = f"anthropic-ratelimit-unified-{name}"
            headers[f"{prefix}-utilization"] = f"{min(window.used / window.limit, 1.0):.6f}"
            headers[f"{prefix}-reset"] = str(math.ceil(window.reset_at))
        if not answered or not spent:
            return None
        retry_after = _seconds_until(max(window.reset_at for window in spent), now)
        headers["retry-after"] = str(retry_after)
        return retry_after

    def _key(self, request_headers: Mapping[str, str], now: float) -> _Key:
        credential = request_headers.get("x-api-key") or request_headers.get("authorization") or ""
        digest = hashlib.blake2b(credential.encode(), digest_size=16).digest()
        key = self._keys.get(digest)
        if key is None:
            key = self._keys[digest] = _Key(self.config, now)
            while len(self._keys) > self.config.max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(digest)
        return key


def _is_subscription(request_headers: Mapping[str, str]) -> bool:
    scheme, _, token = request_headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token.startswith(SUBSCRIPTION_TOKEN_PREFIX)


def _seconds_until(moment: float, now: float) -> int:
    return max(1, math.ceil(moment - now))


def _rfc3339(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.ceil(moment)))


def _anthropic_headers(key: _Key, headers: MutableMapping[str, str]) -> None:
    """Anthropic's names: a ``tokens`` limit besides input and output (the sum of both)."""
    tokens_limit = key.input.limit + key.output.limit
    tokens_remaining = key.input.remaining + key.output.remaining
    tokens_reset = min(key.input.reset_at, key.output.reset_at)
    for kind, limit, remaining, reset_at in (
        ("requests", key.requests.limit, key.requests.remaining, key.requests.reset_at),
        ("tokens", tokens_limit, tokens_remaining, tokens_reset),
        ("input-tokens", key.input.limit, key.input.remaining, key.input.reset_at),
        ("output-tokens", key.output.limit, key.output.remaining, key.output.reset_at),
    ):
        prefix = f"anthropic-ratelimit-{kind}"
        headers[f"{prefix}-limit"] = str(int(limit))
        headers[f"{prefix}-remaining"] = str(int(remaining))
        headers[f"{prefix}-reset"] = _rfc3339(reset_at)


def _openai_headers(key: _Key, now: float, headers: MutableMapping[str, str]) -> None:
    """OpenAI's names: requests and tokens (input and output together), resets as durations."""
    tokens_reset = min(key.input.reset_at, key.output.reset_at)
    for kind, limit, remaining, reset_at in (
        ("requests", key.requests.limit, key.requests.remaining, key.requests.reset_at),
        (
            "tokens",
            key.input.limit + key.output.limit,
            key.input.remaining + key.output.remaining,
            tokens_reset,
        ),
    ):
        headers[f"x-ratelimit-limit-{kind}"] = str(int(limit))
        headers[f"x-ratelimit-remaining-{kind}"] = str(int(remaining))
        headers[f"x-ratelimit-reset-{kind}"] = _go_duration(max(0.0, reset_at - now))


def _go_duration(seconds: float) -> str:
    """``6m0s``, ``1.5s``, ``120ms``: the form OpenAI's reset headers take."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60.0)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes >= 1 else text
