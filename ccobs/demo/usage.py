"""Moved: usage parsing is part of the proxy, in :mod:`ccobs.proxy.usage`; re-exported here."""

from ccobs.proxy.usage import (
    Api,
    StreamUsage,
    TokenCounts,
    UsageError,
    anthropic_tokens,
    openai_tokens,
    response_tokens,
)

__all__ = [
    "Api",
    "StreamUsage",
    "TokenCounts",
    "UsageError",
    "anthropic_tokens",
    "openai_tokens",
    "response_tokens",
]
