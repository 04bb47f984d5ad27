"""Cardinality attack: clients sending 100,000 made-up model names and paths.

A proxy takes model names from request bodies and paths from URLs, both
chosen by clients. Each distinct label value would be a new series, in the
proxy's memory and in Prometheus's, so these tests flood both and check that
once the label caps fill, no series and no memory are added, however long
the flood goes on. The bounds come from the default settings: ``model`` keeps
``model_label_cap`` (50) values, ``endpoint`` 200 (and through the
middleware it is a route template or ``unmatched``, never a raw path);
everything past a cap is ``other``.

The 100,000-input flood goes through ``PrometheusMetrics.record_*``; the
middleware flood is 10,000 requests (5,000 distinct paths on a path-parameter
route, 5,000 distinct unmatched paths, each with a new model name), because
a FastAPI request costs ~0.25 ms here and 100,000 of them would take longer
than the whole suite should.
"""

from __future__ import annotations

import asyncio
import gc
import io
import tracemalloc

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Message

from ccobs.catalog import COST_TYPES, OTHER, TOKEN_TYPES, UNKNOWN
from ccobs.context import current_request_context
from ccobs.fastapi import instrument
from ccobs.labels import LabelGuard
from ccobs.logging import configure_logging
from ccobs.metrics import _LABEL_CAPS, PrometheusMetrics
from ccobs.metrics_endpoint import render_metrics
from ccobs.settings import ObservabilitySettings

SETTINGS = ObservabilitySettings()
MODEL_CAP = SETTINGS.model_label_cap  # 50
ENDPOINT_CAP = _LABEL_CAPS["endpoint"]  # 200
RSS_GROWTH_LIMIT = 4 * 1024 * 1024
"""Bytes the process may grow while the flood goes on past the caps: 4 MiB, under 47 bytes
per input over 90,000 record_* inputs and under 530 per request over 8,000 middleware
requests, well below what keeping any per-request object would take."""

ROUTE = "/v1/items/{item_id}"
UNMATCHED = "unmatched"


def rss_bytes() -> int:
    """Resident set size of this process (Linux), after a full collection."""
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def series(exposition: str) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    """Every labelled series of the exposition, as (family, label set)."""
    return {
        (family.name, frozenset((k, v) for k, v in sample.labels.items() if k != "le"))
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def label_values(exposition: str, label: str) -> set[str]:
    return {
        sample.labels[label]
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if label in sample.labels
    }


def series_bound(exposition: str, allowed: dict[str, int]) -> int:
    """Most label sets the families of ``exposition`` can hold, from the label caps.

    A family may hold the product, over its labels, of the values each may take;
    labels the flood holds constant take one.
    """
    bound = 0
    for family in text_string_to_metric_families(exposition):
        names = {name for sample in family.samples for name in sample.labels if name != "le"}
        product = 1
        for name in names:
            product *= allowed.get(name, 1)
        bound += product
    return bound


def exposition(metrics: PrometheusMetrics) -> str:
    return render_metrics(metrics, "text/plain")[0].decode()


# --- the record_* API: 100,000 inputs ---------------------------------------------------


def flood_record_api(metrics: PrometheusMetrics, start: int, stop: int) -> None:
    for i in range(start, stop):
        model, path = f"attacker-model-{i}", f"/v1/raw/{i}/messages"
        metrics.record_completed_request(
            "POST",
            path,
            model,
            200,
            "proxy_service",
            duration_seconds=0.5,
            ttft_seconds=0.1,
            input_tokens=10,
            output_tokens=5,
            cost_total_usd=0.001,
        )
        if i % 10 == 0:
            metrics.record_error("upstream_timeout", path, model, "proxy_service")


def test_100k_models_and_raw_paths_add_no_series_or_memory_once_the_caps_fill() -> None:
    """The record_* API is what a proxy calls with the model from the body, so it is the target.

    Bound: with method, status, service type and error type held constant,
    a family keeps at most (model cap + 1) x (endpoint cap + 1) label sets
    (``other`` included), times 4 token or cost types where it has them.
    """
    metrics = PrometheusMetrics(registry=CollectorRegistry(), settings=SETTINGS)
    flood_record_api(metrics, 0, 10_000)
    series_at_10k = series(exposition(metrics))
    rss_at_10k = rss_bytes()

    flood_record_api(metrics, 10_000, 100_000)

    rss_growth = rss_bytes() - rss_at_10k
    text = exposition(metrics)
    series_at_100k = series(text)
    allowed = {
        "model": MODEL_CAP + 1,
        "endpoint": ENDPOINT_CAP + 1,
        "type": len(TOKEN_TYPES),
        "cost_type": len(COST_TYPES),
        "label": len(_LABEL_CAPS) + 1,
    }
    assert series_at_100k == series_at_10k
    assert len(series_at_100k) <= series_bound(text, allowed)
    assert len(label_values(text, "model")) == MODEL_CAP + 1
    assert len(label_values(text, "endpoint")) == ENDPOINT_CAP + 1
    assert rss_growth < RSS_GROWTH_LIMIT, f"RSS grew {rss_growth} bytes from 10k to 100k inputs"


def test_overflowed_inputs_are_all_counted_in_other() -> None:
    """Folding into ``other`` must not lose traffic: every request is still counted."""
    metrics = PrometheusMetrics(registry=CollectorRegistry(), settings=SETTINGS)

    flood_record_api(metrics, 0, 5_000)

    assert metrics.registry is not None
    families = {family.name: family for family in metrics.registry.collect()}
    requests = families["ccproxy_requests"].samples
    assert sum(s.value for s in requests if s.name == "ccproxy_requests_total") == 5_000
    overflowed = sum(
        s.value
        for s in requests
        if s.name == "ccproxy_requests_total" and OTHER in (s.labels["model"], s.labels["endpoint"])
    )
    assert overflowed == 5_000 - MODEL_CAP  # the first 50 had both their model and path admitted


# --- the real middleware: 10,000 requests -----------------------------------------------


@pytest.fixture
def quiet_logging(isolated_logging: None) -> None:
    """Request log lines off (production runs at WARNING or above): the test measures metrics.

    ``isolated_logging`` restores the previous configuration afterwards.
    """
    configure_logging(level="CRITICAL", stream=io.StringIO())


def proxy_like_app(metrics: PrometheusMetrics) -> FastAPI:
    """A path-parameter route whose handler names the model, as a proxy does from the body."""
    app = FastAPI()

    @app.post(ROUTE, response_class=PlainTextResponse)
    async def item(request: Request) -> PlainTextResponse:
        context = current_request_context()
        assert context is not None
        context.add_metadata(model=request.headers.get("x-model"))
        return PlainTextResponse("ok")

    instrument(app, metrics)
    return app


async def call_asgi(
    app: FastAPI, method: str, path: str, headers: list[tuple[bytes, bytes]]
) -> tuple[int, bytes]:
    """One request through the app's full ASGI stack in-process; returns (status, body)."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"proxy.test"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(sent[0]["status"]), body


async def flood_middleware(app: FastAPI, start: int, stop: int) -> dict[int, int]:
    statuses: dict[int, int] = {}
    for i in range(start, stop):
        model = [(b"x-model", f"attacker-model-{i}".encode())]
        matched, _ = await call_asgi(app, "POST", f"/v1/items/{i}", model)
        unmatched, _ = await call_asgi(app, "POST", f"/scan/{i}/.env", model)
        statuses[matched] = statuses.get(matched, 0) + 1
        statuses[unmatched] = statuses.get(unmatched, 0) + 1
    return statuses


@pytest.mark.usefixtures("quiet_logging")
def test_10k_distinct_paths_through_the_middleware_add_no_series_or_memory() -> None:
    """Paths become route templates or ``unmatched``, never raw paths, so scans add nothing.

    Bound: endpoint is one of 2 values, model one of the 50 admitted, ``other``
    or ``unknown`` (unmatched requests name no model), status 200 or 404: at
    most 2 x 52 x 2 = 208 request series, however many paths.
    """
    metrics = PrometheusMetrics(registry=CollectorRegistry(), settings=SETTINGS)
    app = proxy_like_app(metrics)

    async def attack() -> tuple[dict[int, int], str, int, str]:
        statuses = await flood_middleware(app, 0, 1_000)
        _, before = await call_asgi(app, "GET", "/metrics", [])
        rss_before = rss_bytes()
        more = await flood_middleware(app, 1_000, 5_000)
        rss_growth = rss_bytes() - rss_before
        _, after = await call_asgi(app, "GET", "/metrics", [])
        for status, count in more.items():
            statuses[status] = statuses.get(status, 0) + count
        return statuses, before.decode(), rss_growth, after.decode()

    statuses, before, rss_growth, after = asyncio.run(attack())

    assert statuses == {200: 5_000, 404: 5_000}
    assert series(after) == series(before)
    assert label_values(after, "endpoint") == {ROUTE, UNMATCHED}
    assert label_values(after, "model") <= label_values(before, "model")
    assert len(label_values(after, "model")) == MODEL_CAP + 2  # + other, unknown
    assert {OTHER, UNKNOWN} <= label_values(after, "model")
    requests = {labels for name, labels in series(after) if name == "ccproxy_requests"}
    assert len(requests) <= 2 * (MODEL_CAP + 2) * 2
    assert rss_growth < RSS_GROWTH_LIMIT, f"RSS grew {rss_growth} bytes over 8,000 requests"


# --- long values: bounded by the cap and the length limit, not by what clients send -------------


def test_label_values_of_100k_characters_are_not_kept_in_memory() -> None:
    """A model name is as long as the client makes it; memory must follow the truncated label.

    Before the fix each admitted raw value was kept whole as a cache key: 250
    values of 100,000 characters held 25 MB for the life of the process.
    """
    metrics = PrometheusMetrics(registry=CollectorRegistry(), settings=SETTINGS)
    tracemalloc.start()
    try:
        for i in range(250):
            long_value = f"{i:04d}" + "x" * 100_000
            metrics.record_completed_request(
                "POST", long_value, long_value, 200, duration_seconds=1.0, input_tokens=1
            )
            metrics.record_response_time(1.0, long_value, long_value)
            metrics.record_error("e", long_value, long_value)
        gc.collect()
        retained, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # What remains is the series and their caches (a few kB per admitted label set).
    assert retained < 4 * 1024 * 1024, f"{retained} bytes retained"


def test_values_sharing_a_truncated_prefix_share_one_label_slot() -> None:
    """They are one label value once truncated, so they must not use up the cap one by one."""
    guard = LabelGuard("model", 3, max_length=8)

    labels = {guard(f"same-pre-{i}") for i in range(1_000)}

    assert labels == {"same-pre"}
    assert guard.distinct_values == 1
    assert guard("another") == "another"
