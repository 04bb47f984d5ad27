"""RequestRecord: one typed record per request, fed to the metrics, the line and the store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

import ccobs
from ccobs.catalog import ERROR_TYPES, UPSTREAM_TIMEOUT
from ccobs.context import RequestContext, current_request_context, request_context
from ccobs.fastapi import instrument
from ccobs.metrics import PrometheusMetrics
from ccobs.pricing import Cost, PriceTable
from ccobs.record import RequestRecord, TokenUsage
from ccobs.storage import AccessLogRecord

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-6"
SERVICE = "proxy_service"


class ListStorage:
    def __init__(self) -> None:
        self.records: list[AccessLogRecord] = []

    def store(self, record: AccessLogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def storage() -> ListStorage:
    return ListStorage()


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with capture_logs(processors=[merge_contextvars]) as captured:
        yield captured


PRICES = PriceTable.default()


def user_app(metrics: PrometheusMetrics, storage: ListStorage) -> FastAPI:
    """An ``instrument()`` user's own handlers, filling the record through the public calls."""
    app = FastAPI()

    @app.post("/v1/messages")
    async def messages() -> dict[str, str]:
        ctx = current_request_context()
        assert ctx is not None
        record = ctx.record
        record.model = MODEL
        record.streaming = True
        record.set_time_to_first_token(0.25)
        record.set_usage(input=100, output=20, cache_read=300, cache_write=4)
        record.set_cost(PRICES.cost(MODEL, 100, 20, 300, 4))
        return {"ok": "yes"}

    @app.post("/unpriced")
    async def unpriced() -> dict[str, str]:
        ctx = current_request_context()
        assert ctx is not None
        ctx.record.model = "house-model-1"
        ctx.record.set_usage(input=5, output=6)
        ctx.record.set_cost(PRICES.cost("house-model-1", 5, 6))
        return {"ok": "yes"}

    @app.post("/both")
    async def both() -> dict[str, str]:
        ctx = current_request_context()
        assert ctx is not None
        ctx.add_metadata(model="from-metadata", input_tokens=1, error_type="metadata_error")
        ctx.record.model = MODEL
        ctx.record.set_usage(input=7)
        ctx.record.error_type = UPSTREAM_TIMEOUT
        return {"ok": "yes"}

    @app.post("/model-only")
    async def model_only() -> dict[str, str]:
        ctx = current_request_context()
        assert ctx is not None
        ctx.record.model = MODEL
        return {"ok": "yes"}

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        return {"ok": "yes"}

    instrument(app, metrics, storage=storage)
    return app


@pytest.fixture
async def client(
    metrics: PrometheusMetrics, storage: ListStorage
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=user_app(metrics, storage), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def samples_named(registry: CollectorRegistry, name: str) -> list[Any]:
    return [s for f in registry.collect() for s in f.samples if s.name == name]


def access_lines(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in logs if line["event"] in ("request_success", "request_error")]


# -- the record itself -------------------------------------------------------------------


def test_record_is_slotted_and_empty_by_default() -> None:
    record = RequestRecord()
    assert not hasattr(record, "__dict__")
    assert record.usage is None
    assert record.cost is None
    assert not record.unpriced
    assert record.team is None
    assert record.key_alias is None
    assert record.key_fingerprint is None
    assert record.session_id is None
    fields: dict[str, Any] = {}
    record.write_facts(fields)
    assert fields == {}


def test_set_cost_none_means_unpriced_and_a_price_clears_it() -> None:
    record = RequestRecord()
    record.set_cost(None)
    assert record.unpriced
    assert record.cost is None
    record.set_cost(Cost(1.0, 2.0, 0.5, 0.25))
    assert not record.unpriced


def test_usage_is_the_four_token_types() -> None:
    record = RequestRecord()
    record.set_usage(1, 2, 3, 4)
    assert record.usage == TokenUsage(input=1, output=2, cache_read=3, cache_write=4)


def test_facts_go_on_the_line_where_the_record_was_first_touched() -> None:
    ctx = RequestContext("id", 0.0, None, {"method": "POST", "path": "/x"})
    ctx.add_metadata(early=1)
    ctx.record.model = MODEL
    ctx.add_metadata(late=2, model="ignored")
    assert list(ctx.record.line_fields(ctx.metadata)) == [
        "method",
        "path",
        "early",
        "model",
        "late",
    ]
    assert ctx.record.line_fields(ctx.metadata)["model"] == MODEL


def test_fields_a_later_issue_fills_reach_the_line_only_when_set() -> None:
    record = RequestRecord()
    record.set_usage(1)
    fields: dict[str, Any] = {}
    record.write_facts(fields)
    assert not {
        "stop_reason",
        "team",
        "key_alias",
        "key_fingerprint",
        "client_app",
        "session_id",
    } & set(fields)
    record.stop_reason = "end_turn"
    record.session_id = "s-1"
    record.upstream_request_id = "req_1"
    record.write_facts(fields)
    assert fields["stop_reason"] == "end_turn"
    assert fields["session_id"] == "s-1"
    assert fields["upstream_request_id"] == "req_1"


def test_public_names_are_exported() -> None:
    assert ccobs.RequestRecord is RequestRecord
    assert ccobs.TokenUsage is TokenUsage
    assert {"RequestRecord", "TokenUsage"} <= set(ccobs.__all__)


# -- through the middleware --------------------------------------------------------------


async def test_user_handler_fills_the_record_and_all_three_outputs_carry_it(
    client: httpx.AsyncClient,
    registry: CollectorRegistry,
    storage: ListStorage,
    logs: list[dict[str, Any]],
) -> None:
    assert (await client.post("/v1/messages")).status_code == 200
    cost = PRICES.cost(MODEL, 100, 20, 300, 4)
    assert cost is not None

    labels = {"model": MODEL, "service_type": SERVICE}
    for token_type, count in (
        ("input", 100),
        ("output", 20),
        ("cache_read", 300),
        ("cache_write", 4),
    ):
        assert sample(registry, "ccproxy_tokens_total", type=token_type, **labels) == count
    for cost_type, amount in (
        ("input", cost.input),
        ("output", cost.output),
        ("cache", cost.cache),
        ("total", cost.total),
    ):
        assert sample(
            registry, "ccproxy_cost_usd_total", cost_type=cost_type, **labels
        ) == pytest.approx(amount)
    ttft = {"endpoint": "/v1/messages", **labels}
    assert sample(registry, "ccproxy_time_to_first_token_seconds_count", **ttft) == 1
    assert sample(registry, "ccproxy_time_to_first_token_seconds_sum", **ttft) == pytest.approx(
        0.25
    )
    assert (
        sample(
            registry,
            "ccproxy_requests_total",
            method="POST",
            endpoint="/v1/messages",
            status="200",
            **labels,
        )
        == 1
    )

    (line,) = access_lines(logs)
    assert line["event"] == "request_success"
    assert list(line)[list(line).index("model") :][:13] == [
        "model",
        "streaming",
        "ttft_ms",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_input_usd",
        "cost_output_usd",
        "cost_cache_usd",
        "cost_total_usd",
        "service_type",
        "endpoint",
    ]
    assert line["model"] == MODEL
    assert line["streaming"] is True
    assert line["ttft_ms"] == 250.0
    assert (line["input_tokens"], line["output_tokens"]) == (100, 20)
    assert (line["cache_read_tokens"], line["cache_write_tokens"]) == (300, 4)
    assert line["cost_total_usd"] == pytest.approx(cost.total)

    (stored,) = storage.records
    assert stored.model == MODEL
    assert stored.streaming
    assert stored.ttft_ms == 250.0
    assert (stored.input_tokens, stored.output_tokens) == (100, 20)
    assert (stored.cache_read_tokens, stored.cache_write_tokens) == (300, 4)
    assert stored.cost_cache_usd == pytest.approx(cost.cache)
    assert stored.cost_total_usd == pytest.approx(cost.total)
    assert stored.status == 200
    assert stored.endpoint == "/v1/messages"


async def test_unpriced_model_is_counted_and_flagged(
    client: httpx.AsyncClient,
    registry: CollectorRegistry,
    storage: ListStorage,
    logs: list[dict[str, Any]],
) -> None:
    await client.post("/unpriced")
    labels = {"model": "house-model-1", "service_type": SERVICE}
    assert sample(registry, "ccproxy_unpriced_requests_total", **labels) == 1
    assert samples_named(registry, "ccproxy_cost_usd_total") == []
    (line,) = access_lines(logs)
    assert (line["cost_total_usd"], line["unpriced"]) == (0.0, True)
    assert storage.records[0].cost_total_usd == 0.0


async def test_the_record_wins_over_metadata_of_the_same_name(
    client: httpx.AsyncClient,
    registry: CollectorRegistry,
    storage: ListStorage,
    logs: list[dict[str, Any]],
) -> None:
    assert UPSTREAM_TIMEOUT in ERROR_TYPES
    await client.post("/both")
    labels = {"model": MODEL, "service_type": SERVICE}
    assert sample(registry, "ccproxy_tokens_total", type="input", **labels) == 7
    assert (
        sample(
            registry,
            "ccproxy_errors_total",
            error_type=UPSTREAM_TIMEOUT,
            endpoint="/both",
            **labels,
        )
        == 1
    )
    assert (
        samples_named(registry, "ccproxy_errors_total")[0].labels["error_type"] == UPSTREAM_TIMEOUT
    )
    assert len(samples_named(registry, "ccproxy_errors_total")) == 1
    (line,) = access_lines(logs)
    assert (line["event"], line["log_level"]) == ("request_error", "warning")
    assert (line["model"], line["input_tokens"], line["error_type"]) == (MODEL, 7, UPSTREAM_TIMEOUT)
    (stored,) = storage.records
    assert (stored.model, stored.input_tokens, stored.error_type) == (MODEL, 7, UPSTREAM_TIMEOUT)


async def test_a_record_without_usage_adds_no_token_series(
    client: httpx.AsyncClient, registry: CollectorRegistry, logs: list[dict[str, Any]]
) -> None:
    await client.post("/model-only")
    await client.get("/plain")
    assert samples_named(registry, "ccproxy_tokens_total") == []
    assert samples_named(registry, "ccproxy_cost_usd_total") == []
    assert samples_named(registry, "ccproxy_time_to_first_token_seconds_count") == []
    assert samples_named(registry, "ccproxy_unpriced_requests_total") == []
    labels = {"method": "POST", "endpoint": "/model-only", "status": "200", "service_type": SERVICE}
    assert sample(registry, "ccproxy_requests_total", model=MODEL, **labels) == 1
    model_only, plain = access_lines(logs)
    assert "input_tokens" not in model_only
    assert model_only["model"] == MODEL
    assert "model" not in plain
    assert "streaming" not in plain


# -- request_context without the middleware ----------------------------------------------


async def test_request_context_with_metrics_feeds_the_record(
    metrics: PrometheusMetrics, registry: CollectorRegistry, storage: ListStorage
) -> None:
    async with request_context(storage=storage, metrics=metrics, endpoint="/jobs") as ctx:
        ctx.record.model = MODEL
        ctx.record.set_usage(input=3, output=4)
        ctx.record.set_cost(None)
        ctx.record.set_time_to_first_token(0.5)
    labels = {"model": MODEL}
    assert (
        sample(registry, "ccproxy_tokens_total", type="output", service_type="unknown", **labels)
        == 4
    )
    assert (
        sample(registry, "ccproxy_unpriced_requests_total", service_type="unknown", **labels) == 1
    )
    assert (
        sample(
            registry,
            "ccproxy_time_to_first_token_seconds_count",
            endpoint="/jobs",
            service_type="unknown",
            **labels,
        )
        == 1
    )
    (stored,) = storage.records
    assert (stored.model, stored.input_tokens, stored.ttft_ms) == (MODEL, 3, 500.0)


async def test_request_context_without_metrics_still_logs_and_stores_the_record(
    storage: ListStorage, logs: list[dict[str, Any]]
) -> None:
    async with request_context(storage=storage) as ctx:
        ctx.record.error_type = UPSTREAM_TIMEOUT
    (line,) = access_lines(logs)
    assert (line["event"], line["error_type"]) == ("request_error", UPSTREAM_TIMEOUT)
    assert storage.records[0].error_type == UPSTREAM_TIMEOUT


def test_from_request_without_a_record_is_from_metadata() -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 1, 1, tzinfo=UTC)
    metadata = {"model": MODEL, "input_tokens": 2}
    assert AccessLogRecord.from_request("r", when, 1.0, metadata, None) == (
        AccessLogRecord.from_metadata("r", when, 1.0, metadata)
    )
