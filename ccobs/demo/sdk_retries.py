"""The load generator's retries, made as the official Anthropic and OpenAI SDKs make them.

The SDKs retry a failed request (``max_retries``, two by default) on 408,
409, 429 and 5xx answers, numbering each attempt in ``x-stainless-retry-count``
(0 for the first); the proxy counts the retries from that header. The demo's
load generator does the same so that its 429s and 529s come back as retries
and light the retries panels, as a real client's would.

The wait is the SDKs' exponential backoff without its jitter, so a seeded
run sends the same retries at the same offsets; the mock's ``retry-after``
(seconds) is not honoured, to keep the demo's retries prompt.
"""

from __future__ import annotations

RETRY_COUNT_HEADER = "x-stainless-retry-count"
MAX_RETRIES = 10
"""The most retries a load configuration may ask for."""
_INITIAL_DELAY = 0.5
_MAX_DELAY = 8.0
_RETRIED_STATUSES = frozenset({408, 409, 429})


def sdk_would_retry(status: int | None) -> bool:
    """Whether an official SDK retries an answer with HTTP ``status``."""
    return status is not None and (status in _RETRIED_STATUSES or status >= 500)


def retry_delay(retry: int) -> float:
    """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
    return min(_INITIAL_DELAY * 2.0 ** (retry - 1), _MAX_DELAY)
