"""Serving `/metrics`: content negotiation, an optional bearer token, rendering off the loop."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from ccobs.metrics import PrometheusMetrics


def render_metrics(metrics: PrometheusMetrics, accept: str | None) -> tuple[bytes, str]:
    """The exposition and its content type: OpenMetrics when the scraper asks for it."""
    registry = metrics.exposition_registry()
    if registry is None:  # prometheus_client is not installed
        return b"", "text/plain; version=0.0.4; charset=utf-8"
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def bearer_token_matches(authorization: str | None, token: str) -> bool:
    """Constant-time check of an ``Authorization: Bearer ...`` header against ``token``."""
    if not authorization:
        return False
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def metrics_endpoint(
    metrics: PrometheusMetrics, token: str | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint serving ``metrics``; with ``token``, only to that bearer token.

    Rendering runs on a worker thread: at tens of thousands of series, or
    reading multiprocess files, it takes long enough to stall other requests.
    """

    async def endpoint(request: Request) -> Response:
        if token is not None and not bearer_token_matches(
            request.headers.get("authorization"), token
        ):
            return Response(
                "metrics require a bearer token\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                media_type="text/plain",
            )
        body, content_type = await anyio.to_thread.run_sync(
            render_metrics, metrics, request.headers.get("accept")
        )
        return Response(body, headers={"Content-Type": content_type})

    return endpoint
