"""Moved: the proxy's upstream client is in :mod:`ccobs.proxy.upstream_client`; re-exported here."""

from ccobs.proxy.upstream_client import (
    MAX_HEAD_BYTES,
    Timeouts,
    UpstreamClient,
    UpstreamConnectionError,
    UpstreamDecodingError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamResponse,
    UpstreamTimeout,
    UpstreamTooLarge,
)

__all__ = [
    "MAX_HEAD_BYTES",
    "Timeouts",
    "UpstreamClient",
    "UpstreamConnectionError",
    "UpstreamDecodingError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamResponse",
    "UpstreamTimeout",
    "UpstreamTooLarge",
]
