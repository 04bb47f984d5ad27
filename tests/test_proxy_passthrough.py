"""Every path of the upstream API through the proxy, and the root probe Claude Code sends.

The upstream here is a recorder: it answers each request with what it
received, so the tests see exactly what the proxy forwarded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from asgi_server import RunningServer, serve_asgi
from prometheus_client import CollectorRegistry
from proxy_harness import ProxyUnderTest, running_proxy
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ccobs.metrics import PrometheusMetrics
from ccobs.proxy.app import create_proxy_app
from ccobs.proxy.config import ProxyConfig
from ccobs.settings import ObservabilitySettings

pytestmark = pytest.mark.usefixtures("isolated_logging")

KEY = "sk-ant-api03-passthrough-test-key-0123456789abcdefABCDEF"


async def _echo(request: Request) -> Response:
    """The request as the upstream saw it; a 404 for paths under /missing."""
    body = await request.body()
    seen = {
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query,
        "headers": {k: v for k, v in request.headers.items()},
        "body": body.decode(),
    }
    if request.url.path.startswith("/missing"):
        return JSONResponse({"type": "error", "seen": seen}, status_code=404)
    if request.method == "HEAD":
        return Response(headers={"x-seen-method": "HEAD"})
    return JSONResponse(seen, headers={"request-id": "req_upstream_1"})


async def _slow_stream(request: Request) -> Response:
    async def chunks() -> Any:
        yield b"first;"
        await asyncio.sleep(0.5)
        yield b"second"

    return StreamingResponse(chunks(), media_type="application/octet-stream")


@pytest.fixture
def upstream() -> Iterator[RunningServer]:
    app = Starlette(
        routes=[
            Route("/slow", _slow_stream),
            Route("/{path:path}", _echo, methods=["GET", "HEAD", "POST", "PUT", "DELETE"]),
        ]
    )
    with serve_asgi(app) as server:
        yield server


@pytest.fixture
def proxy(upstream: RunningServer) -> Iterator[ProxyUnderTest]:
    with running_proxy(upstream.url) as proxy:
        yield proxy


@pytest.mark.parametrize("path", ["/", "/api/hello"])
@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_a_connectivity_probe_is_answered_healthy_and_not_counted(
    proxy: ProxyUnderTest, method: str, path: str
) -> None:
    response = httpx.request(method, proxy.url + path)

    assert response.status_code == 200
    assert proxy.requests() == 0
    assert proxy.errors() == {}


def test_count_tokens_reaches_the_upstream_with_its_query_headers_and_body(
    proxy: ProxyUnderTest,
) -> None:
    body = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]}

    response = httpx.post(
        proxy.url + "/v1/messages/count_tokens?beta=true",
        json=body,
        headers={"x-api-key": KEY, "anthropic-beta": "token-counting-2024-11-01"},
    )

    assert response.status_code == 200
    seen = response.json()
    assert (seen["method"], seen["path"], seen["query"]) == (
        "POST",
        "/v1/messages/count_tokens",
        "beta=true",
    )
    assert json.loads(seen["body"]) == body
    assert seen["headers"]["x-api-key"] == KEY
    assert seen["headers"]["anthropic-beta"] == "token-counting-2024-11-01"
    assert seen["headers"]["x-request-id"] == response.headers["x-request-id"]  # ours
    assert response.headers["request-id"] == "req_upstream_1"  # the upstream's, relayed


def test_count_tokens_is_counted_by_model_with_no_tokens_or_cost(proxy: ProxyUnderTest) -> None:
    httpx.post(
        proxy.url + "/v1/messages/count_tokens?beta=true",
        json={"model": "claude-sonnet-4-6", "messages": []},
    )
    proxy.settle(1)

    assert (
        proxy.total(
            "ccproxy_requests_total",
            endpoint="/v1/messages/count_tokens",
            model="claude-sonnet-4-6",
            status="200",
        )
        == 1.0
    )
    assert proxy.tokens() == {}
    assert proxy.total("ccproxy_cost_usd_total") == 0.0
    assert proxy.errors() == {}


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD"])
def test_any_method_on_any_path_is_relayed(proxy: ProxyUnderTest, method: str) -> None:
    response = httpx.request(method, proxy.url + "/v1/files/file_123?limit=2")

    assert response.status_code == 200
    if method == "HEAD":
        assert response.headers["x-seen-method"] == "HEAD"
    else:
        assert response.json()["method"] == method
        assert response.json()["query"] == "limit=2"


def test_unknown_paths_share_one_bounded_endpoint_series(proxy: ProxyUnderTest) -> None:
    for n in range(25):
        httpx.get(f"{proxy.url}/v1/files/file_{n}")
    proxy.settle(25)

    assert proxy.by_label("ccproxy_requests_total", "endpoint") == {"/{path:path}": 25.0}


def test_known_paths_are_counted_under_their_own_templates(proxy: ProxyUnderTest) -> None:
    httpx.get(proxy.url + "/v1/models")
    httpx.get(proxy.url + "/v1/models/claude-sonnet-4-6")
    proxy.settle(2)

    assert proxy.by_label("ccproxy_requests_total", "endpoint") == {
        "/v1/models": 1.0,
        "/v1/models/{model_id}": 1.0,
    }


def test_an_upstream_error_is_relayed_and_counted_as_the_upstreams(proxy: ProxyUnderTest) -> None:
    response = httpx.get(proxy.url + "/missing/thing")
    proxy.settle(1)

    assert response.status_code == 404
    assert response.json()["type"] == "error"
    assert proxy.errors() == {"upstream_404": 1.0}


def test_an_unreachable_upstream_is_a_502_in_the_apis_error_shape() -> None:
    with running_proxy("http://127.0.0.1:9") as proxy:
        response = httpx.get(proxy.url + "/v1/models", headers={"x-api-key": KEY})
        proxy.settle(1)

        assert response.status_code == 502
        assert response.json()["type"] == "error"
        assert proxy.errors() == {"upstream_connection_error": 1.0}


def test_a_streamed_answer_reaches_the_client_as_it_arrives(proxy: ProxyUnderTest) -> None:
    with httpx.stream("GET", proxy.url + "/slow") as response:
        chunks = response.iter_raw()
        first = next(chunks)
        rest = b"".join(chunks)

    assert first == b"first;"
    assert rest == b"second"


def test_the_key_is_forwarded_but_never_logged_or_labelled(proxy: ProxyUnderTest) -> None:
    httpx.post(
        proxy.url + "/v1/messages/count_tokens?beta=true",
        json={"model": "claude-sonnet-4-6", "messages": []},
        headers={"x-api-key": KEY, "authorization": f"Bearer {KEY}"},
    )
    httpx.get(proxy.url + "/missing/x", headers={"x-api-key": KEY})
    proxy.settle(2)

    exposition = httpx.get(proxy.url + "/metrics").text
    logs = proxy.logs.getvalue()
    assert KEY[:20] not in exposition
    assert KEY[:20] not in logs
    assert len(proxy.access_lines()) == 2


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions"])
def test_the_accounted_routes_forward_the_query_string_too(
    proxy: ProxyUnderTest, path: str
) -> None:
    response = httpx.post(
        f"{proxy.url}{path}?beta=true", json={"model": "claude-sonnet-4-6", "messages": []}
    )

    assert response.json()["path"] == path
    assert response.json()["query"] == "beta=true"


def test_the_proxy_starts_the_allow_listed_models_series_at_zero() -> None:
    registry = CollectorRegistry()
    settings = ObservabilitySettings(model_allowlist=("claude-sonnet-4-6",))
    create_proxy_app(
        ProxyConfig(upstream_url="http://127.0.0.1:9"),
        metrics=PrometheusMetrics(registry=registry, settings=settings),
        settings=settings,
    )

    labels = {"model": "claude-sonnet-4-6", "service_type": "proxy_service", "type": "output"}
    assert registry.get_sample_value("ccproxy_tokens_total", labels) == 0
