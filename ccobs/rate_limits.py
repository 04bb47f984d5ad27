"""What an upstream's rate-limit headers say: limits, what is left, when it resets.

Anthropic and OpenAI state an account's standing on every answer, errors
included, and Claude subscription (OAuth) traffic carries the "unified"
usage windows as well. This module reads those headers into a
:class:`RateLimitReading`; :mod:`ccobs.rate_limit_metrics` turns a reading
into gauges. It is pure (no metrics, no I/O) so an instrumented app that
calls a vendor itself can use it as the proxy does.

The formats, as the vendors document them (the unified family is not
documented; its names are those Claude Code reads):

- Anthropic: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,
  remaining,reset}``, the reset an RFC 3339 time; ``retry-after`` in seconds.
- OpenAI: ``x-ratelimit-{limit,remaining}-{requests,tokens}`` and
  ``x-ratelimit-reset-{requests,tokens}``, the reset a Go-style duration
  (``1s``, ``6m0s``, ``12ms``); some deployments send ``-1`` for "no limit".
- Unified: ``anthropic-ratelimit-unified-status`` (``allowed``,
  ``allowed_warning``, ``rejected``) and per window
  ``anthropic-ratelimit-unified-<window>-{utilization,reset}``, the
  utilization a fraction (0.42 is 42 % used), the reset Unix seconds.

A value that does not parse, or is negative or absurd, is never recorded:
it is counted in :attr:`RateLimitReading.rejected` by the field it was for,
and a request is never failed over a header. Only headers with the two
prefixes are looked at; the cost is one pass over the answer's header names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "LIMIT_KINDS",
    "RATE_LIMIT_APIS",
    "REJECTED_FIELDS",
    "UNIFIED_STATUSES",
    "UNIFIED_WINDOWS",
    "LimitReading",
    "RateLimitReading",
    "WindowReading",
    "read_rate_limits",
]

RATE_LIMIT_APIS: tuple[str, ...] = ("anthropic", "openai")
"""The ``api`` label: whose header family the reading came from."""
LIMIT_KINDS: tuple[str, ...] = ("requests", "tokens", "input_tokens", "output_tokens")
"""The ``limit`` label: what a limit counts."""
UNIFIED_WINDOWS: tuple[str, ...] = ("5h", "7d", "7d_opus", "7d_sonnet", "overage", "other")
"""The ``window`` label of the subscription windows; a window not listed is ``other``."""
UNIFIED_STATUSES: tuple[str, ...] = ("allowed", "allowed_warning", "rejected", "other")
"""The ``status`` label of the subscription's overall status; anything else is ``other``."""
REJECTED_FIELDS: tuple[str, ...] = (
    "limit",
    "remaining",
    "reset",
    "utilization",
    "retry_after",
)
"""The ``field`` label of the rejected-values counter: which kind of value was refused."""

MAX_COUNT = 1e15
"""Limits and remaining counts above this are refused as absurd (no account has a
quadrillion tokens a minute; a larger number is a corrupted header)."""
MAX_UTILIZATION = 10.0
"""Utilization above this (1000 % used) is refused; a little over 1 is overage, not garbage."""
MAX_RESET_SECONDS = 366 * 86400.0
"""Resets further away than a year, or further in the past, are refused."""

_ANTHROPIC = "anthropic-ratelimit-"
_UNIFIED = "anthropic-ratelimit-unified-"
_OPENAI = "x-ratelimit-"
_ANTHROPIC_KINDS = {
    "requests": "requests",
    "tokens": "tokens",
    "input-tokens": "input_tokens",
    "output-tokens": "output_tokens",
}
_OPENAI_KINDS = {"requests": "requests", "tokens": "tokens"}
_GO_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:h|m|s|ms|us|µs|ns))+$")
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_MAX_VALUE_CHARS = 64
"""Longer header values are refused unread: no format here needs more."""


@dataclass(slots=True)
class LimitReading:
    """One limit (requests, tokens...) as an answer stated it; None where it said nothing."""

    kind: str
    limit: float | None = None
    remaining: float | None = None
    reset_at: float | None = None
    """When the limit resets, as Unix seconds."""


@dataclass(slots=True)
class WindowReading:
    """One subscription usage window: the share used and when it resets."""

    window: str
    utilization: float | None = None
    reset_at: float | None = None


@dataclass(slots=True)
class RateLimitReading:
    """Everything one answer's rate-limit headers said, valid values only."""

    api: str
    limits: dict[str, LimitReading] = field(default_factory=dict)
    windows: dict[str, WindowReading] = field(default_factory=dict)
    status: str | None = None
    """The subscription's overall status (``allowed``, ``allowed_warning``, ``rejected``...)."""
    retry_after: float | None = None
    rejected: list[str] = field(default_factory=list)
    """The fields (``REJECTED_FIELDS``) of values refused as malformed, once per value."""


def _known_names() -> dict[bytes, tuple[str, str, str]]:
    """Every Anthropic and OpenAI limit header name -> (api, limit kind, limit|remaining|reset)."""
    names: dict[bytes, tuple[str, str, str]] = {}
    for what in ("limit", "remaining", "reset"):
        for text, kind in _ANTHROPIC_KINDS.items():
            names[f"{_ANTHROPIC}{text}-{what}".encode()] = ("anthropic", kind, what)
        for text, kind in _OPENAI_KINDS.items():
            names[f"{_OPENAI}{what}-{text}".encode()] = ("openai", kind, what)
    return names


_KNOWN_NAMES = _known_names()
"""One dictionary lookup per header finds the limit headers: the cost of an answer without
any is one ``lower()`` and one lookup per header."""
_UNIFIED_BYTES = _UNIFIED.encode()


def read_rate_limits(headers: Iterable[tuple[bytes, bytes]], now: float) -> RateLimitReading | None:
    """The rate-limit state an answer's raw ``headers`` state, at Unix time ``now``.

    None when the answer has no rate-limit header at all (most answers of a
    self-hosted model): nothing to record. ``now`` turns OpenAI's relative
    resets into times, so every reset is a point in time that stays right
    however long a gauge holding it goes unrefreshed. Values are decoded as
    latin-1, which never fails: a value with other bytes then fails as a
    number would, and is counted.
    """
    reading: RateLimitReading | None = None
    retry_after: bytes | None = None
    for raw_name, raw_value in headers:
        name = raw_name.lower()
        known = _KNOWN_NAMES.get(name)
        if known is not None:
            api, kind, what = known
            if reading is None:
                reading = RateLimitReading(api)
            value = raw_value.decode("latin-1").strip()
            if api == "openai" and value == "-1":
                continue  # "no limit" on some deployments: nothing to watch, nothing wrong
            if what != "reset":
                _set_count(reading, kind, what, value)
            elif api == "anthropic":
                _set_reset(reading, kind, _rfc3339(value), now)
            else:
                duration = _go_duration(value)
                _set_reset(reading, kind, None if duration is None else now + duration, now)
        elif name.startswith(_UNIFIED_BYTES):
            if reading is None:
                reading = RateLimitReading("anthropic")
            rest = name[len(_UNIFIED_BYTES) :].decode("latin-1")
            _unified(reading, rest, raw_value.decode("latin-1").strip(), now)
        elif name == b"retry-after":
            retry_after = raw_value
    if reading is None:
        return None
    if retry_after is not None:
        seconds = _count(retry_after.decode("latin-1").strip())
        if seconds is None or seconds > MAX_RESET_SECONDS:
            reading.rejected.append("retry_after")
        else:
            reading.retry_after = seconds
    return reading


def _unified(reading: RateLimitReading, rest: str, value: str, now: float) -> None:
    """``status``, or ``<window>-<utilization|reset>``; other unified headers are ignored."""
    if rest == "status":
        reading.status = value if value in UNIFIED_STATUSES else "other"
        return
    window_text, _, what = rest.rpartition("-")
    if what not in ("utilization", "reset") or not window_text:
        return  # -representative-claim, -fallback-percentage, -<window>-status...
    window = window_text.replace("-", "_")
    if window not in UNIFIED_WINDOWS:
        window = "other"
    entry = reading.windows.get(window)
    if entry is None:
        entry = reading.windows[window] = WindowReading(window)
    number = _number(value)
    if what == "utilization":
        if number is None or number < 0 or number > MAX_UTILIZATION:
            reading.rejected.append("utilization")
        else:
            entry.utilization = number
    elif number is None or abs(number - now) > MAX_RESET_SECONDS:
        reading.rejected.append("reset")
    else:
        entry.reset_at = number


def _set_count(reading: RateLimitReading, kind: str, what: str, value: str) -> None:
    number = _count(value)
    if number is None:
        reading.rejected.append(what)
        return
    entry = _limit(reading, kind)
    if what == "limit":
        entry.limit = number
    else:
        entry.remaining = number


def _set_reset(reading: RateLimitReading, kind: str, at: float | None, now: float) -> None:
    """Record a reset at Unix time ``at``; None, or more than a year from ``now``, is refused."""
    if at is None or abs(at - now) > MAX_RESET_SECONDS:
        reading.rejected.append("reset")
        return
    _limit(reading, kind).reset_at = at


def _limit(reading: RateLimitReading, kind: str) -> LimitReading:
    entry = reading.limits.get(kind)
    if entry is None:
        entry = reading.limits[kind] = LimitReading(kind)
    return entry


def _number(text: str) -> float | None:
    """A finite float, or None (NaN, infinity, text, too long)."""
    if not text or len(text) > _MAX_VALUE_CHARS:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _count(text: str) -> float | None:
    """A count or a number of seconds: finite, non-negative, not absurd."""
    number = _number(text)
    if number is None or number < 0 or number > MAX_COUNT:
        return None
    return number


def _rfc3339(text: str) -> float | None:
    """Unix seconds of an RFC 3339 time (``2026-12-04T17:00:00Z``), or None."""
    if not text or len(text) > _MAX_VALUE_CHARS or "T" not in text.upper():
        return None
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # RFC 3339 always has an offset; a local time is ambiguous
    seconds = moment.timestamp()
    return seconds if seconds > 0 else None


def _go_duration(text: str) -> float | None:
    """Seconds in a Go duration (``6m0s``, ``1.5s``, ``12ms``); a bare number is seconds."""
    if not text or len(text) > _MAX_VALUE_CHARS:
        return None
    if _GO_DURATION.match(text):
        return sum(float(n) * _GO_UNITS[unit] for n, unit in _GO_PART.findall(text))
    return _count(text)
