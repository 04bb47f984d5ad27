"""Rate-limit header sets as the vendors document them, for the parser and proxy tests.

Built from the formats in Anthropic's and OpenAI's rate-limit documentation
(the unified subscription family from what Claude Code reads): the names,
the value forms (an RFC 3339 reset, a Go-style duration, Unix seconds, a
fraction) and the kinds of limit each vendor states.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from ccobs.metric_families import MetricFamilies
from ccobs.rate_limit_metrics import RateLimitGauges
from ccobs.settings import ObservabilitySettings

NOW = datetime(2026, 12, 4, 16, 30, 0, tzinfo=UTC).timestamp()
"""The moment the header sets were "captured" at."""

ANTHROPIC = {
    "anthropic-ratelimit-requests-limit": "4000",
    "anthropic-ratelimit-requests-remaining": "3999",
    "anthropic-ratelimit-requests-reset": "2026-12-04T16:30:01Z",
    "anthropic-ratelimit-tokens-limit": "480000",
    "anthropic-ratelimit-tokens-remaining": "479000",
    "anthropic-ratelimit-tokens-reset": "2026-12-04T16:30:02Z",
    "anthropic-ratelimit-input-tokens-limit": "400000",
    "anthropic-ratelimit-input-tokens-remaining": "399000",
    "anthropic-ratelimit-input-tokens-reset": "2026-12-04T16:30:02Z",
    "anthropic-ratelimit-output-tokens-limit": "80000",
    "anthropic-ratelimit-output-tokens-remaining": "80000",
    "anthropic-ratelimit-output-tokens-reset": "2026-12-04T16:30:00.500+00:00",
    "request-id": "req_018EeWyXxfu5pfWkrYcMdjWG",
}
"""Anthropic's answer: four limit kinds, resets as RFC 3339 times (one with an offset)."""
ANTHROPIC_VALUES = {
    ("requests", "limit"): 4000.0,
    ("requests", "remaining"): 3999.0,
    ("requests", "reset"): NOW + 1,
    ("tokens", "limit"): 480000.0,
    ("tokens", "remaining"): 479000.0,
    ("tokens", "reset"): NOW + 2,
    ("input_tokens", "limit"): 400000.0,
    ("input_tokens", "remaining"): 399000.0,
    ("input_tokens", "reset"): NOW + 2,
    ("output_tokens", "limit"): 80000.0,
    ("output_tokens", "remaining"): 80000.0,
    ("output_tokens", "reset"): NOW + 0.5,
}

OPENAI = {
    "x-ratelimit-limit-requests": "60",
    "x-ratelimit-limit-tokens": "150000",
    "x-ratelimit-remaining-requests": "59",
    "x-ratelimit-remaining-tokens": "149984",
    "x-ratelimit-reset-requests": "1s",
    "x-ratelimit-reset-tokens": "6m0s",
    "x-request-id": "req_a1b2c3",
}
"""OpenAI's answer: requests and tokens, resets as Go durations."""
OPENAI_VALUES = {
    ("requests", "limit"): 60.0,
    ("requests", "remaining"): 59.0,
    ("requests", "reset"): NOW + 1,
    ("tokens", "limit"): 150000.0,
    ("tokens", "remaining"): 149984.0,
    ("tokens", "reset"): NOW + 360,
}

UNIFIED = {
    "anthropic-ratelimit-unified-status": "allowed_warning",
    "anthropic-ratelimit-unified-5h-status": "allowed_warning",
    "anthropic-ratelimit-unified-5h-utilization": "0.82",
    "anthropic-ratelimit-unified-5h-reset": str(int(NOW) + 7200),
    "anthropic-ratelimit-unified-7d-status": "allowed",
    "anthropic-ratelimit-unified-7d-utilization": "0.3",
    "anthropic-ratelimit-unified-7d-reset": str(int(NOW) + 400000),
    "anthropic-ratelimit-unified-representative-claim": "five_hour",
    "anthropic-ratelimit-unified-fallback-percentage": "0.5",
    "anthropic-ratelimit-unified-reset": str(int(NOW) + 7200),
}
"""A Claude subscription's answer: the overall status, two windows, and headers ignored."""
UNIFIED_VALUES = {
    ("5h", "utilization"): 0.82,
    ("5h", "reset"): float(int(NOW) + 7200),
    ("7d", "utilization"): 0.3,
    ("7d", "reset"): float(int(NOW) + 400000),
}

GARBAGE = {
    "anthropic-ratelimit-requests-limit": "lots",
    "anthropic-ratelimit-requests-remaining": "-5",
    "anthropic-ratelimit-requests-reset": "tomorrow",
    "anthropic-ratelimit-tokens-limit": "1e300",
    "anthropic-ratelimit-tokens-remaining": "NaN",
    "anthropic-ratelimit-tokens-reset": "2026-12-04T16:30:01",
    "anthropic-ratelimit-input-tokens-remaining": "inf",
    "anthropic-ratelimit-output-tokens-reset": "3026-12-04T16:30:01Z",
    "anthropic-ratelimit-unified-5h-utilization": "-0.1",
    "anthropic-ratelimit-unified-7d-utilization": "eleven",
    "anthropic-ratelimit-unified-5h-reset": "soon",
    "retry-after": "-3",
}
"""Every value malformed: non-numeric, negative, absurd, NaN, infinite, times without an
offset or a millennium away. Twelve values, each refused once."""
GARBAGE_FIELDS = sorted(
    [
        "limit",
        "remaining",
        "reset",
        "limit",
        "remaining",
        "reset",
        "remaining",
        "reset",
        "utilization",
        "utilization",
        "reset",
        "retry_after",
    ]
)


def raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """Headers as the proxy holds them: (name, value) bytes."""
    return [(name.encode(), value.encode()) for name, value in headers.items()]


class GaugeSide:
    """One registry, its families and its rate-limit gauges reading ``clock``: one side of
    a comparison between two ways of feeding the gauges."""

    def __init__(self, clock: Callable[[], float] = lambda: NOW) -> None:
        self.registry = CollectorRegistry()
        families = MetricFamilies("ccproxy", self.registry, ObservabilitySettings())
        self.overflows: list[str] = []
        self.gauges = RateLimitGauges(families, 64, self.overflows.append, clock=clock)

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The rate-limit families' samples (no ``_created``: those are creation times)."""
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in self.registry.collect()
            if "ratelimit" in family.name
            for s in family.samples
            if not s.name.endswith("_created")
        }
