"""Where ``ccobs proxy`` sends traffic, how long it waits, and the routes it serves.

Kept apart from the relay and the app so the command line can validate a
configuration (and name the environment variables its workers read) without
building either.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_UPSTREAM = "https://api.anthropic.com"
UPSTREAM_ENV = "CCOBS_PROXY_UPSTREAM_URL"
PRICES_ENV = "CCOBS_PRICES_FILE"
ANTHROPIC_PATH = "/v1/messages"
OPENAI_PATH = "/v1/chat/completions"
RESPONSES_PATH = "/v1/responses"


@dataclass(frozen=True)
class ProxyConfig:
    """Where the proxy sends traffic and how long it waits.

    The read timeout is long because a model can think for minutes between
    two streamed chunks; the connect timeout is short because a dead
    upstream should fail fast.
    """

    upstream_url: str = DEFAULT_UPSTREAM
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    write_timeout: float = 60.0
    pool_timeout: float = 10.0
    max_connections: int = 10_000
    """Upstream connections open at once: one per request in flight, so the proxy's limit of
    concurrent requests (a stream holds one for minutes); past it a request waits
    ``pool_timeout``, then gets a 504. Bounded by file descriptors, not by memory."""
    max_keepalive_connections: int = 50
    max_body_bytes: int = 32 * 1024 * 1024
    max_response_bytes: int = 256 * 1024 * 1024
    """A non-streamed answer is held whole to read its usage; past this many bytes it is a 502."""
    service_type: str = "proxy_service"
    identities_path: Path | None = None
    """The identity file naming callers' keys (``ccobs.identity``); None: the
    ``identities`` setting's, else none, and every caller is ``unassigned``."""

    def __post_init__(self) -> None:
        if not self.upstream_url.startswith(("http://", "https://")):
            raise ValueError(f"upstream_url must be an http(s) URL, got {self.upstream_url!r}")
        for name in ("connect_timeout", "read_timeout", "write_timeout", "pool_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in (
            "max_connections",
            "max_keepalive_connections",
            "max_body_bytes",
            "max_response_bytes",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
