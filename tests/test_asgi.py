"""instrument(app): request ids, route templates, errors, streaming and /metrics."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Route
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from ccobs.asgi import accept_request_id
from ccobs.context import current_request_context
from ccobs.fastapi import instrument
from ccobs.metrics import PrometheusMetrics
from ccobs.metrics_endpoint import metrics_endpoint
from ccobs.settings import ObservabilitySettings
from ccobs.storage import AccessLogRecord

pytestmark = pytest.mark.anyio


class ListStorage:
    def __init__(self) -> None:
        self.records: list[AccessLogRecord] = []

    def store(self, record: AccessLogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def storage() -> ListStorage:
    return ListStorage()


def build_app(
    metrics: PrometheusMetrics,
    *,
    settings: ObservabilitySettings | None = None,
    storage: ListStorage | None = None,
) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/v1/messages")
    async def messages() -> dict[str, str]:
        ctx = current_request_context()
        assert ctx is not None
        ctx.add_metadata(model="claude-sonnet-4-5", input_tokens=3)
        return {"ok": "yes"}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaput")

    @app.get("/unavailable")
    async def unavailable() -> None:
        raise HTTPException(status_code=503, detail="down")

    @app.get("/rate-limited")
    async def rate_limited() -> None:
        ctx = current_request_context()
        assert ctx is not None
        ctx.add_metadata(error_type="rate_limited", model="m")
        raise HTTPException(status_code=429, detail="slow down")

    @app.get("/batch")
    async def batch() -> dict[str, str]:
        ctx = current_request_context()
        assert ctx is not None
        ctx.add_metadata(service_type="batch_service")
        return {}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                await asyncio.sleep(0.05)
                active = metrics.registry.get_sample_value("ccproxy_active_requests")  # type: ignore[union-attr]
                yield f"{active}\n".encode()

        return StreamingResponse(chunks())

    async def plain(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.path_params["name"])

    app.router.routes.append(Route("/plain/{name}", plain))

    instrument(app, metrics, settings, storage=storage)
    return app


@pytest.fixture
def app(metrics: PrometheusMetrics, storage: ListStorage) -> FastAPI:
    return build_app(metrics, storage=storage)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with capture_logs(processors=[merge_contextvars]) as captured:
        yield captured


def requests_total(registry: CollectorRegistry, **labels: str) -> float | None:
    full = {"method": "GET", "model": "unknown", "service_type": "proxy_service", **labels}
    return registry.get_sample_value("ccproxy_requests_total", full)


async def test_valid_client_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/1", headers={"x-request-id": "client-req_1.a:b"})

    assert response.headers["x-request-id"] == "client-req_1.a:b"


async def test_missing_request_id_is_created_and_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/1")

    assert len(response.headers["x-request-id"]) == 32


@pytest.mark.parametrize(
    "forged", ["a\nfake_log_line", "x" * 129, 'quote"d', "sp ace", "", "semi;colon"]
)
def test_unsafe_request_ids_are_replaced(forged: str) -> None:
    assert accept_request_id(forged) != forged
    assert len(accept_request_id(forged)) == 32


async def test_request_id_is_echoed_on_unhandled_500(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom", headers={"x-request-id": "req-500"})

    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-500"


async def test_requests_are_labelled_by_route_template_not_raw_path(
    client: httpx.AsyncClient, registry: CollectorRegistry
) -> None:
    for n in range(5):
        await client.get(f"/items/{n}")

    assert requests_total(registry, endpoint="/items/{item_id}", status="200") == 5


async def test_plain_starlette_routes_are_labelled_by_their_template_too(
    client: httpx.AsyncClient, registry: CollectorRegistry
) -> None:
    """FastAPI's router names the matched route in the scope only for its own routes."""
    for n in range(3):
        assert (await client.get(f"/plain/{n}")).text == str(n)

    assert requests_total(registry, endpoint="/plain/{name}", status="200") == 3


async def test_unmatched_paths_share_one_endpoint_value(
    client: httpx.AsyncClient, registry: CollectorRegistry
) -> None:
    for n in range(5):
        await client.get(f"/scan/{n}/.env")

    assert requests_total(registry, endpoint="unmatched", status="404") == 5


async def test_unhandled_exception_is_a_500_with_its_error_type(
    client: httpx.AsyncClient, registry: CollectorRegistry
) -> None:
    await client.get("/boom")

    assert requests_total(registry, endpoint="/boom", status="500") == 1
    assert (
        registry.get_sample_value(
            "ccproxy_errors_total",
            {
                "error_type": "RuntimeError",
                "endpoint": "/boom",
                "model": "unknown",
                "service_type": "proxy_service",
            },
        )
        == 1
    )


async def test_error_status_without_exception_is_counted_as_http_status(
    client: httpx.AsyncClient, registry: CollectorRegistry
) -> None:
    await client.get("/unavailable")

    assert (
        registry.get_sample_value(
            "ccproxy_errors_total",
            {
                "error_type": "http_503",
                "endpoint": "/unavailable",
                "model": "unknown",
                "service_type": "proxy_service",
            },
        )
        == 1
    )


async def test_handler_error_type_and_model_are_used_once(
    client: httpx.AsyncClient, registry: CollectorRegistry
) -> None:
    await client.get("/rate-limited")

    families = {f.name: f for f in registry.collect()}
    errors = [s for s in families["ccproxy_errors"].samples if s.name == "ccproxy_errors_total"]
    assert [(s.labels["error_type"], s.labels["model"], s.value) for s in errors] == [
        ("rate_limited", "m", 1.0)
    ]


async def test_successful_requests_count_no_error(
    client: httpx.AsyncClient, registry: CollectorRegistry
) -> None:
    await client.get("/items/1")

    families = {f.name: f for f in registry.collect()}
    assert [s for s in families["ccproxy_errors"].samples if s.name == "ccproxy_errors_total"] == []


async def test_model_set_by_the_handler_becomes_the_label(
    client: httpx.AsyncClient, registry: CollectorRegistry
) -> None:
    await client.post("/v1/messages", json={})

    assert (
        requests_total(
            registry,
            method="POST",
            endpoint="/v1/messages",
            model="claude-sonnet-4-5",
            status="200",
        )
        == 1
    )


async def test_handler_can_override_the_service_type(
    client: httpx.AsyncClient, registry: CollectorRegistry
) -> None:
    await client.get("/batch")

    assert (
        requests_total(registry, endpoint="/batch", status="200", service_type="batch_service") == 1
    )


async def test_health_and_metrics_are_not_instrumented(
    client: httpx.AsyncClient, registry: CollectorRegistry
) -> None:
    await client.get("/health")
    await client.get("/metrics")

    text = (await client.get("/metrics")).text
    assert 'endpoint="/health"' not in text
    assert 'endpoint="/metrics"' not in text


async def test_streaming_duration_and_active_gauge_cover_the_last_byte(
    client: httpx.AsyncClient, registry: CollectorRegistry
) -> None:
    response = await client.get("/stream")

    assert response.text.split() == ["1.0", "1.0", "1.0"]
    assert registry.get_sample_value("ccproxy_active_requests") == 0
    duration = registry.get_sample_value(
        "ccproxy_response_duration_seconds_sum",
        {"model": "unknown", "endpoint": "/stream", "service_type": "proxy_service"},
    )
    assert duration is not None
    assert duration >= 0.15


def test_the_active_gauge_counts_requests_in_flight_on_every_thread(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    """One app served by three event loops at once: the gauge, read at scrape time, sees all."""
    app = FastAPI()
    entered = threading.Semaphore(0)
    release = threading.Event()

    @app.get("/wait")
    async def wait() -> dict[str, str]:
        entered.release()
        await asyncio.to_thread(release.wait, 10)
        return {}

    instrument(app, metrics)

    async def one_request() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            (await client.get("/wait")).raise_for_status()

    threads = [threading.Thread(target=lambda: asyncio.run(one_request())) for _ in range(3)]
    try:
        for thread in threads:  # one at a time: each request is in flight before the next
            thread.start()
            assert entered.acquire(timeout=10)
        assert registry.get_sample_value("ccproxy_active_requests") == 3
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout=10)
    assert registry.get_sample_value("ccproxy_active_requests") == 0


async def test_under_multiprocess_mode_each_request_moves_the_active_gauge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers' values are summed from their files, so the middleware writes its own."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    registry = CollectorRegistry()
    app = build_app(PrometheusMetrics(registry=registry))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/stream")

    assert response.text.split() == ["1.0", "1.0", "1.0"]
    assert registry.get_sample_value("ccproxy_active_requests") == 0


async def test_one_access_log_line_per_request(
    client: httpx.AsyncClient, logs: list[dict[str, Any]]
) -> None:
    await client.post("/v1/messages", json={}, headers={"x-request-id": "line-1"})

    lines = [e for e in logs if e["event"] in ("request_success", "request_error")]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "line-1"
    assert (line["method"], line["endpoint"], line["status"]) == ("POST", "/v1/messages", 200)
    assert line["model"] == "claude-sonnet-4-5"
    assert line["duration_ms"] >= 0


async def test_storage_receives_the_record_with_route_and_status(
    client: httpx.AsyncClient, storage: ListStorage
) -> None:
    await client.post("/v1/messages", json={}, headers={"x-request-id": "stored-1"})

    [record] = storage.records
    assert record.request_id == "stored-1"
    assert (record.endpoint, record.status, record.model) == (
        "/v1/messages",
        200,
        "claude-sonnet-4-5",
    )
    assert record.input_tokens == 3


async def test_metrics_endpoint_serves_the_text_format(client: httpx.AsyncClient) -> None:
    await client.get("/items/1")
    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    names = {f.name for f in text_string_to_metric_families(response.text)}
    assert "ccproxy_requests" in names


async def test_metrics_endpoint_serves_openmetrics_when_asked(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
    )

    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), ("Bearer wrong", 401), ("Basic czNjcmV0", 401), ("Bearer s3cret", 200)],
)
async def test_metrics_token_is_required_when_configured(
    metrics: PrometheusMetrics, authorization: str | None, status: int
) -> None:
    app = build_app(metrics, settings=ObservabilitySettings(metrics_token="s3cret"))
    headers = {"authorization": authorization} if authorization else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/metrics", headers=headers)

    assert response.status_code == status
    assert "s3cret" not in response.text


def test_an_empty_metrics_token_is_refused(metrics: PrometheusMetrics) -> None:
    """``Bearer`` with nothing after it would match an empty token."""
    with pytest.raises(ValueError, match="must not be empty"):
        metrics_endpoint(metrics, token="")


async def test_instrumenting_a_running_app_is_refused(
    app: FastAPI, client: httpx.AsyncClient, metrics: PrometheusMetrics
) -> None:
    await client.get("/items/1")

    with pytest.raises(RuntimeError, match="before the app handles"):
        instrument(app, metrics)


# --- an app that relays someone else's x-request-id -----------------------------------------


async def test_a_response_without_its_own_x_request_id_carries_ours_in_it_alone(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/items/1", headers={"x-request-id": "client-2"})

    assert response.headers.get_list("x-request-id") == ["client-2"]
    assert "x-ccobs-request-id" not in response.headers


async def test_an_apps_own_x_request_id_is_kept_and_ours_goes_beside_it(
    metrics: PrometheusMetrics,
) -> None:
    app = FastAPI()

    @app.get("/relayed")
    async def relayed() -> PlainTextResponse:  # as a proxy relays OpenAI's x-request-id
        return PlainTextResponse("ok", headers={"x-request-id": "upstream-7"})

    instrument(app, metrics)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/relayed", headers={"x-request-id": "client-3"})

    assert response.headers.get_list("x-request-id") == ["upstream-7"]
    assert response.headers["x-ccobs-request-id"] == "client-3"


# --- the request line's level, read from the stdlib logger's cache --------------------------


@pytest.mark.usefixtures("isolated_logging")
async def test_a_disabled_request_logger_writes_no_line_though_its_level_was_cached(
    client: httpx.AsyncClient,
) -> None:
    import io
    import json
    import logging

    from ccobs.logging import configure_logging

    stream = io.StringIO()
    configure_logging(level="info", fmt="json", stream=stream)
    await client.get("/items/1")  # fills the logger's level cache
    logging.getLogger("ccobs.request").disabled = True
    try:
        await client.get("/items/2")
    finally:
        logging.getLogger("ccobs.request").disabled = False
    await client.get("/items/3")

    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    paths = [e["path"] for e in events if e["event"] == "request_success"]
    assert paths == ["/items/1", "/items/3"]


async def test_the_middlewares_request_context_is_the_one_its_class_builds(
    metrics: PrometheusMetrics, storage: ListStorage
) -> None:
    """The middleware sets the context's fields itself, without ``RequestContext(...)``:
    the same fields, in the same order, with the same values, none missing."""
    from ccobs.context import RequestContext

    app = FastAPI()
    seen: list[tuple[dict[str, Any], dict[str, Any], bool]] = []

    @app.get("/ctx")
    async def ctx_route() -> dict[str, str]:
        ctx = current_request_context()
        assert ctx is not None
        built = RequestContext(
            ctx.request_id, ctx.start_time, ctx.logger, ctx.metadata, ctx.storage
        )
        seen.append((dict(vars(ctx)), dict(vars(built)), ctx == built))
        return {}

    instrument(app, metrics, storage=storage)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        (await client.get("/ctx")).raise_for_status()

    [(fields, built_fields, equal)] = seen
    assert list(fields.items()) == list(built_fields.items())
    assert equal
