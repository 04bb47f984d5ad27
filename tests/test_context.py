"""Request context: timing, correlated log events, the active gauge and the access-log record."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from ccobs.context import (
    ContextTracker,
    RequestContext,
    current_request_context,
    get_context_tracker,
    new_request_id,
    request_context,
    reset_context_tracker,
    timed_operation,
    tracked_request_context,
)
from ccobs.metrics import PrometheusMetrics
from ccobs.storage import AccessLogRecord

pytestmark = pytest.mark.anyio


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with capture_logs(processors=[merge_contextvars]) as captured:
        yield captured


@pytest.fixture
def tracker() -> Iterator[ContextTracker]:
    reset_context_tracker()
    yield get_context_tracker()
    reset_context_tracker()


class ListStorage:
    def __init__(self) -> None:
        self.records: list[AccessLogRecord] = []

    def store(self, record: AccessLogRecord) -> None:
        self.records.append(record)


class FailingStorage:
    def store(self, record: AccessLogRecord) -> None:
        raise OSError("disk full")


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


async def test_uses_the_given_request_id() -> None:
    async with request_context(request_id="req-1") as ctx:
        assert ctx.request_id == "req-1"


async def test_generates_a_request_id_when_none_is_given() -> None:
    async with request_context() as first, request_context() as second:
        assert len(first.request_id) == 32
        assert first.request_id != second.request_id


async def test_logs_start_and_success_with_accurate_timing(logs: list[dict[str, Any]]) -> None:
    async with request_context(request_id="r", method="POST"):
        await asyncio.sleep(0.05)

    assert [e["event"] for e in logs] == ["request_start", "request_success"]
    success = logs[-1]
    assert 50 <= success["duration_ms"] < 1000
    assert success["method"] == "POST"
    assert success["request_id"] == "r"


async def test_success_line_carries_the_metadata_added_during_the_request(
    logs: list[dict[str, Any]],
) -> None:
    async with request_context() as ctx:
        ctx.add_metadata(model="claude-sonnet-4-5", input_tokens=10)

    success = events(logs, "request_success")[0]
    assert success["model"] == "claude-sonnet-4-5"
    assert success["input_tokens"] == 10


async def test_an_error_is_logged_with_its_type_and_re_raised(logs: list[dict[str, Any]]) -> None:
    with pytest.raises(KeyError):
        async with request_context(request_id="r"):
            raise KeyError("missing")

    error = events(logs, "request_error")[0]
    assert error["error_type"] == "KeyError"
    assert "missing" in error["error_message"]
    assert error["duration_ms"] >= 0
    assert events(logs, "request_success") == []


async def test_an_error_type_set_by_the_handler_is_kept(logs: list[dict[str, Any]]) -> None:
    async def handler() -> None:
        async with request_context() as ctx:
            ctx.add_metadata(error_type="upstream_timeout")
            raise RuntimeError("timed out")

    with pytest.raises(RuntimeError):
        await handler()

    assert events(logs, "request_error")[0]["error_type"] == "upstream_timeout"


async def test_request_id_is_bound_for_every_line_inside_the_block(
    logs: list[dict[str, Any]],
) -> None:
    log = structlog.get_logger("handler")
    async with request_context(request_id="bound-1"):
        log.info("inside")
    log.info("outside")

    assert events(logs, "inside")[0]["request_id"] == "bound-1"
    assert "request_id" not in events(logs, "outside")[0]


async def test_request_id_reaches_lines_from_tasks_spawned_inside(
    logs: list[dict[str, Any]],
) -> None:
    async def background() -> None:
        await asyncio.sleep(0)
        structlog.get_logger("task").info("from_task")

    async with request_context(request_id="spawned-1"):
        await asyncio.create_task(background())

    assert events(logs, "from_task")[0]["request_id"] == "spawned-1"


async def test_active_gauge_is_held_for_the_block(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    async with request_context(metrics=metrics):
        assert registry.get_sample_value("ccproxy_active_requests") == 1

    assert registry.get_sample_value("ccproxy_active_requests") == 0


async def test_active_gauge_is_released_when_the_block_fails(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    with pytest.raises(ValueError, match="bad"):
        async with request_context(metrics=metrics):
            raise ValueError("bad")

    assert registry.get_sample_value("ccproxy_active_requests") == 0


async def test_active_gauge_is_released_when_the_task_is_cancelled(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    started = asyncio.Event()

    async def handler() -> None:
        async with request_context(metrics=metrics):
            started.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(handler())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert registry.get_sample_value("ccproxy_active_requests") == 0


async def test_storage_receives_one_record_on_exit() -> None:
    storage = ListStorage()
    before = datetime.now(UTC)
    async with request_context(request_id="rec-1", storage=storage, method="POST") as ctx:
        ctx.add_metadata(model="m", status=200, input_tokens=12, cost_total_usd=0.01)

    [record] = storage.records
    assert record.request_id == "rec-1"
    assert record.method == "POST"
    assert (record.model, record.status, record.input_tokens) == ("m", 200, 12)
    assert record.cost_total_usd == 0.01
    assert record.timestamp >= before
    assert record.timestamp.tzinfo is UTC
    assert record.duration_ms >= 0


async def test_a_storage_set_during_the_request_gets_its_start_from_the_duration() -> None:
    """The wall clock is read at the start only for a context with a storage; one given
    later dates the request by the wall clock at its end less its duration."""
    storage = ListStorage()
    before = datetime.now(UTC)
    async with request_context(request_id="late") as ctx:
        await asyncio.sleep(0.05)
        ctx.storage = storage
    after = datetime.now(UTC)

    [record] = storage.records
    assert record.duration_ms >= 50
    assert before <= record.timestamp <= after - timedelta(milliseconds=record.duration_ms)


async def test_storage_gets_a_record_for_failed_requests_too() -> None:
    storage = ListStorage()
    with pytest.raises(RuntimeError):
        async with request_context(storage=storage):
            raise RuntimeError("x")

    assert storage.records[0].error_type == "RuntimeError"


async def test_record_keeps_only_known_fields() -> None:
    storage = ListStorage()
    async with request_context(storage=storage) as ctx:
        ctx.add_metadata(authorization="Bearer sk-ant-secret", prompt="hello")

    assert "sk-ant-secret" not in repr(storage.records[0])
    assert "hello" not in repr(storage.records[0])


async def test_a_failing_storage_does_not_fail_the_request(logs: list[dict[str, Any]]) -> None:
    async with request_context(storage=FailingStorage()):
        pass

    assert events(logs, "request_success")
    assert events(logs, "access_log_store_failed")


async def test_reserved_metadata_keys_are_refused() -> None:
    async with request_context() as ctx:
        with pytest.raises(ValueError, match="reserved"):
            ctx.add_metadata(event="x")


async def test_current_request_context_is_the_innermost_block() -> None:
    assert current_request_context() is None
    async with request_context(request_id="outer") as outer:
        async with request_context(request_id="inner"):
            assert current_request_context() is not None
            assert current_request_context().request_id == "inner"  # type: ignore[union-attr]
        assert current_request_context() is outer
    assert current_request_context() is None


def test_request_context_durations_agree() -> None:
    ctx = RequestContext("r", start_time=0.0, logger=structlog.get_logger())

    assert ctx.duration_ms == pytest.approx(ctx.duration_seconds * 1000, rel=0.01)
    assert ctx.metadata == {}
    assert ctx.storage is None


async def test_log_event_includes_the_time_so_far(logs: list[dict[str, Any]]) -> None:
    async with request_context(request_id="r") as ctx:
        ctx.log_event("upstream_called", tokens=150)

    event = events(logs, "upstream_called")[0]
    assert event["tokens"] == 150
    assert event["request_id"] == "r"
    assert event["duration_ms"] >= 0


async def test_timed_operation_logs_duration_and_added_fields(logs: list[dict[str, Any]]) -> None:
    async with timed_operation("claude_api_call", request_id="r", attempt=1) as op:
        await asyncio.sleep(0.02)
        op["response_size"] = 42

    success = events(logs, "operation_success")[0]
    assert success["operation"] == "claude_api_call"
    assert success["attempt"] == 1
    assert success["response_size"] == 42
    assert success["request_id"] == "r"
    assert 20 <= success["duration_ms"] < 1000
    assert op["duration_ms"] == success["duration_ms"]


async def test_timed_operation_logs_errors_and_re_raises(logs: list[dict[str, Any]]) -> None:
    with pytest.raises(TimeoutError):
        async with timed_operation("claude_api_call"):
            raise TimeoutError("slow")

    error = events(logs, "operation_error")[0]
    assert error["error_type"] == "TimeoutError"
    assert error["operation"] == "claude_api_call"


async def test_tracked_context_is_visible_to_the_tracker_only_while_open(
    tracker: ContextTracker,
) -> None:
    async with tracked_request_context(request_id="t-1") as ctx:
        assert tracker.get_active_count() == 1
        assert tracker.get_context("t-1") is ctx

    assert tracker.get_active_count() == 0


async def test_tracked_context_is_removed_when_the_block_fails(tracker: ContextTracker) -> None:
    with pytest.raises(RuntimeError):
        async with tracked_request_context(request_id="t-2"):
            raise RuntimeError("x")

    assert tracker.get_context("t-2") is None


async def test_tracked_context_passes_metrics_and_storage_through(
    tracker: ContextTracker, metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    storage = ListStorage()
    async with tracked_request_context(metrics=metrics, storage=storage):
        assert registry.get_sample_value("ccproxy_active_requests") == 1

    assert len(storage.records) == 1


def test_tracker_refuses_contexts_beyond_its_bound() -> None:
    tracker = ContextTracker(max_contexts=2)
    contexts = [RequestContext(f"r{i}", 0.0, structlog.get_logger()) for i in range(3)]

    assert [tracker.add_context(c) for c in contexts] == [True, True, False]
    assert tracker.get_active_count() == 2
    assert tracker.remove_context("r0") is contexts[0]
    assert [c.request_id for c in tracker.get_active_contexts()] == ["r1"]


async def test_an_error_type_without_exception_logs_request_error(
    logs: list[dict[str, Any]],
) -> None:
    async with request_context() as ctx:
        ctx.add_metadata(error_type="rate_limited", status=429)

    assert events(logs, "request_success") == []
    error = events(logs, "request_error")[0]
    assert (error["error_type"], error["log_level"]) == ("rate_limited", "warning")


def test_new_request_ids_are_distinct_128_bit_hex_across_draws() -> None:
    ids = [new_request_id() for _ in range(300)]  # several blocks of pooled ids

    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_forked_child_does_not_repeat_its_parents_request_ids() -> None:
    new_request_id()  # the parent holds a partly used block
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, "".join(new_request_id() for _ in range(8)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = pipe.read()
    parent = [new_request_id() for _ in range(8)]

    assert not {child[i : i + 32] for i in range(0, len(child), 32)} & set(parent)
