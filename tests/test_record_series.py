"""A record's metric updates through its kept operations equal the public calls', exactly.

``PrometheusMetrics.record_facts`` (what ``RequestRecord.record_metrics`` calls) finds
each family's operation with one lookup per request (``ccobs.record_series``);
``record_one_by_one`` makes the public ``record_*`` calls, the reference. Fed the
same records, two metrics instances must expose the same samples: same series,
same values, same refusals and overflows counted, caps small enough to fold.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from ccobs import record_series
from ccobs.attribution_metrics import AttributionLabels
from ccobs.catalog import OTHER
from ccobs.labels import LabelGuard
from ccobs.metric_labels import LABEL_CAPS
from ccobs.metrics import PrometheusMetrics
from ccobs.pricing import Cost
from ccobs.record import RequestRecord
from ccobs.record_series import record_one_by_one
from ccobs.settings import ObservabilitySettings

PROPERTIES = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)

MODELS = [None, "claude-sonnet-4-6", "gpt-5", "m-3", "m-4", "other", "sk-ant-api03-" + "k" * 40]
ENDPOINTS = ["/v1/messages", "/v1/responses", "/e3", "/e4"]
SERVICES = [None, "proxy_service", "anthropic"]
TEAMS = [None, "platform", "research", "t3", "other", ""]
ALIASES = [None, "alice", "bob", "key-0a1b2c3d", "other", 7]
APPS = [None, "claude-code", "codex", "curl", "other", "x-5"]
STOP_REASONS = ["end_turn", "max_tokens", "max_output_tokens", "weird", None]
COSTS = st.one_of(
    st.sampled_from([0.0, -0.0, 0.25, 1e308, -1.0, float("nan"), math.inf]),
    st.floats(min_value=0, max_value=10),
)
"""Costs are floats: ``Cost.total`` adds them up."""
AMOUNTS = st.one_of(
    st.sampled_from([0, 0.0, -0.0, 1, 12, 3.5, 1e308, -1, float("nan"), math.inf, 2**1100]),
    st.integers(min_value=0, max_value=10_000),
    st.sampled_from([True, "12", None]),
)
SECONDS = st.one_of(st.none(), st.sampled_from([0.0, 0.25, 2, -1.0, float("nan"), "x"]))


@st.composite
def records(draw: st.DrawFn) -> tuple[RequestRecord, str, Any, Any]:
    """A finished request's record as any handler may fill it, and its labels."""
    record = RequestRecord(
        team=draw(st.sampled_from(TEAMS)),
        key_alias=draw(st.sampled_from(ALIASES)),
        client_app=draw(st.sampled_from(APPS)),
        stop_reason=draw(st.sampled_from(STOP_REASONS)),
        ttft_seconds=draw(SECONDS),
        time_per_output_token_seconds=draw(SECONDS),
        retry_count=draw(st.sampled_from([None, 0, 1, 2, 5])),
    )
    if draw(st.booleans()):
        record.set_usage(*(draw(AMOUNTS) for _ in range(4)))
    priced = draw(st.sampled_from(["priced", "unpriced", "unset"]))
    if priced == "priced":
        record.set_cost(Cost(*(draw(COSTS) for _ in range(4))))
    elif priced == "unpriced":
        record.set_cost(None)
    endpoint = draw(st.sampled_from(ENDPOINTS))
    return record, endpoint, draw(st.sampled_from(MODELS)), draw(st.sampled_from(SERVICES))


def small_caps() -> Iterator[None]:
    """Caps small enough that the records above fold labels into ``other``."""
    with pytest.MonkeyPatch.context() as patch:
        for label, cap in (("team", 3), ("key_alias", 4), ("client_app", 3), ("endpoint", 3)):
            patch.setitem(LABEL_CAPS, label, cap)
        yield


def new_metrics() -> tuple[PrometheusMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(
        registry=registry, settings=ObservabilitySettings(model_label_cap=3)
    )
    return metrics, registry


def exposed(registry: CollectorRegistry) -> list[tuple[str, tuple[tuple[str, str], ...], str]]:
    """Every sample but the creation times, with its value's exact text (NaN equals NaN)."""
    return sorted(
        (sample.name, tuple(sorted(sample.labels.items())), repr(sample.value))
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    )


def finish(metrics: PrometheusMetrics, record: RequestRecord, endpoint: str, model: Any,
           service: Any, *, one_by_one: bool) -> None:  # fmt: skip
    """The middleware's end of a request: the record, then the response's count and time."""
    if one_by_one:
        record_one_by_one(record, metrics, endpoint, model, service)
    else:
        record.record_metrics(metrics, endpoint, model, service)
    metrics.record_response("POST", endpoint, model, 200, service, 0.5)


@PROPERTIES
@given(st.lists(records(), min_size=1, max_size=40))
def test_record_metrics_exposes_what_the_public_calls_expose(
    requests: list[tuple[RequestRecord, str, Any, Any]],
) -> None:
    for _ in small_caps():
        fast, fast_registry = new_metrics()
        reference, reference_registry = new_metrics()
        for record, endpoint, model, service in requests * 2:  # the second pass: kept ops
            finish(fast, record, endpoint, model, service, one_by_one=False)
            finish(reference, record, endpoint, model, service, one_by_one=True)
        assert exposed(fast_registry) == exposed(reference_registry)


def streamed_record() -> RequestRecord:
    record = RequestRecord(
        team="platform", key_alias="alice", client_app=OTHER, stop_reason="end_turn"
    )
    record.set_usage(12, 16, 0, 3)
    record.set_cost(Cost(0.1, 0.2, 0.0, 0.3))
    record.set_time_to_first_token(0.2)
    record.time_per_output_token_seconds = 0.01
    return record


def test_after_its_first_request_a_label_set_is_recorded_without_the_public_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metrics, registry = new_metrics()
    finish(metrics, streamed_record(), "/v1/messages", "m", "s", one_by_one=False)
    finish(metrics, streamed_record(), "/v1/messages", "m", "s", one_by_one=False)
    for name in ("record_tokens", "record_cost", "record_time_to_first_token",
                 "record_attributed_request", "record_stop_reason",
                 "record_time_per_output_token"):  # fmt: skip
        monkeypatch.setattr(metrics, name, None)  # a call would raise TypeError

    metrics.record_facts(streamed_record(), "/v1/messages", "m", "s")

    tokens = {"type": "input", "model": "m", "service_type": "s"}
    assert registry.get_sample_value("ccproxy_tokens_total", tokens) == 36


def test_label_sets_past_the_bound_take_the_public_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_series, "MAX_RECORD_SERIES", 2)
    metrics, registry = new_metrics()
    for endpoint in ("/a", "/b", "/c", "/a", "/b", "/c"):
        finish(metrics, streamed_record(), endpoint, "m", "s", one_by_one=False)

    assert metrics.record_facts.__self__.series_count() == 2
    tokens = {"type": "input", "model": "m", "service_type": "s"}
    assert registry.get_sample_value("ccproxy_tokens_total", tokens) == 72


def test_a_guard_admits_none_and_values_it_kept_as_they_are() -> None:
    guard = LabelGuard("model", 1)
    guard("kept")
    guard("folded")

    assert [guard.admits(v) for v in (None, "kept", "folded", "new", [1])] == [
        True, True, False, False, False,
    ]  # fmt: skip


def attribution_labels(set_cap: int = 10) -> AttributionLabels:
    def guard(name: str) -> LabelGuard:
        return LabelGuard(name, 2)

    return AttributionLabels(
        guard("team"), 2, guard("client_app"), guard("model"), guard("service_type"), 64,
        lambda label: None, set_cap,
    )  # fmt: skip


def test_an_admitted_other_client_app_may_be_remembered() -> None:
    labels = attribution_labels()
    raw = ("platform", "alice", OTHER, "m", "s")

    assert labels.remembers(raw, labels(raw))


def test_a_folded_client_app_is_never_remembered() -> None:
    labels = attribution_labels()
    labels(("platform", "alice", "a", "m", "s"))
    labels(("platform", "alice", "b", "m", "s"))
    raw = ("platform", "alice", OTHER, "m", "s")  # the cap is full: this ``other`` is a fold

    assert not labels.remembers(raw, labels(raw))


def test_a_label_set_folded_by_the_set_cap_is_never_remembered() -> None:
    labels = attribution_labels(set_cap=1)
    labels(("platform", "alice", "codex", "m", "s"))
    raw = ("platform", "alice", OTHER, OTHER, "s")  # admitted values, but past the set cap

    assert not labels.remembers(raw, labels(raw))
