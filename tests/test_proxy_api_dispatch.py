"""The proxy's API endpoints skip FastAPI's stack (``ccobs/proxy/api_dispatch.py``) unseen.

What a client and an embedder see stays as it was through the whole stack:
the route's template on the metrics, Starlette's 500 for a handler that
fails, and an embedder's own middleware seeing every request.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Receive, Scope, Send

from ccobs import PrometheusMetrics
from ccobs.proxy.api_dispatch import ApiDispatch
from ccobs.proxy.app import create_proxy_app
from ccobs.proxy.config import ProxyConfig
from ccobs.settings import ObservabilitySettings

UNREACHABLE = "http://127.0.0.1:9"
BODY = {"model": "claude-sonnet-4-6", "max_tokens": 8, "messages": []}


def _app() -> Any:
    metrics = PrometheusMetrics(registry=CollectorRegistry())
    return create_proxy_app(
        ProxyConfig(upstream_url=UNREACHABLE, connect_timeout=2.0),
        metrics=metrics,
        settings=ObservabilitySettings(),
    )


def _post(app: Any, path: str = "/v1/messages") -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            return await client.post(path, json=BODY)

    return asyncio.run(go())


def _stack(app: Any) -> ASGIApp:
    app.middleware_stack = app.build_middleware_stack()
    return app.middleware_stack.app  # type: ignore[no-any-return]  # inside ccobs's middleware


def test_api_requests_are_dispatched_directly_when_the_app_is_the_proxys_own() -> None:
    assert isinstance(_stack(_app()), ApiDispatch)


def test_api_requests_keep_their_route_template_on_the_metrics() -> None:
    app = _app()

    response = _post(app)

    assert response.status_code == 502
    metrics: PrometheusMetrics = app.state.proxy.metrics
    errors = metrics.registry.get_sample_value(
        "ccproxy_errors_total",
        {"error_type": "upstream_connection_error", "endpoint": "/v1/messages",
         "model": "claude-sonnet-4-6", "service_type": "proxy_service"},
    )  # fmt: skip
    assert errors == 1.0


def test_a_failing_handler_answers_starlettes_500_with_the_request_id() -> None:
    app = _app()

    async def broken(request: object) -> None:
        raise RuntimeError("boom")

    app.state.proxy.read_body = broken

    response = _post(app)

    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert response.headers["x-request-id"]


def test_an_embedders_middleware_sees_the_api_requests() -> None:
    app = _app()
    seen: list[str] = []

    class Recorder:
        def __init__(self, inner: ASGIApp) -> None:
            self.inner = inner

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                seen.append(scope["path"])
            await self.inner(scope, receive, send)

    app.add_middleware(Recorder)

    response = _post(app)

    assert response.status_code == 502
    assert seen == ["/v1/messages"]
