"""Serving ``/metrics``: content negotiation, an optional bearer token, rendering off the loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from ccobs.bearer_token import bearer_token_matches
from ccobs.metrics import PrometheusMetrics
from ccobs.renderer import TEXT_CONTENT_TYPE, ExpositionRenderer, render_registry


def render_metrics(
    metrics: PrometheusMetrics, accept: str | None, renderer: ExpositionRenderer | None = None
) -> tuple[bytes, str]:
    """The exposition and its content type: OpenMetrics when the scraper asks for it.

    ``renderer`` writes the formats it knows (text, OpenMetrics 1.0.0 with the
    default escaping); pass the same one on every scrape so that its label
    cache pays off. Without it, or for anything else, prometheus_client writes.
    """
    registry = metrics.exposition_registry()
    if registry is None:  # prometheus_client is not installed
        return b"", TEXT_CONTENT_TYPE
    return render_registry(registry, accept, renderer)


def metrics_endpoint(
    metrics: PrometheusMetrics, token: str | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint serving ``metrics``; with ``token``, only to that bearer token.

    Rendering runs on a worker thread: at tens of thousands of series, or
    reading multiprocess files, it takes long enough to stall other requests.
    An empty ``token`` is refused: ``Bearer`` with nothing after it would match it.
    """
    if token == "":
        raise ValueError("the metrics token must not be empty; pass None for no token")
    renderer = ExpositionRenderer()

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
            render_metrics, metrics, request.headers.get("accept"), renderer
        )
        return Response(body, headers={"Content-Type": content_type})

    return endpoint
