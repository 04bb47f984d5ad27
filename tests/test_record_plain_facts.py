"""A record's usage and cost kept as plain tuples read as the frozen objects they replace.

``RequestRecord.set_usage`` and ``set_cost_parts`` (with ``PriceTable.cost_parts``) keep
the figures as tuples and build ``TokenUsage`` and ``Cost`` only when read; the proxy
takes that path. Whatever path filled it, a record must give the same ``usage``,
``cost``, line fields, stored record and metrics as one filled with the objects.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from ccobs.metrics import PrometheusMetrics
from ccobs.pricing import Cost, PriceTable
from ccobs.record import RequestRecord, TokenUsage
from ccobs.settings import ObservabilitySettings

PROPERTIES = settings(derandomize=True, database=None, deadline=None, max_examples=80)
PRICES = PriceTable.default()
MODELS = st.sampled_from(
    [None, "", "claude-sonnet-4-6", "claude-haiku-4-5-20251001", "gpt-4o-mini", "unknown-1"]
)
COUNTS = st.one_of(st.integers(min_value=0, max_value=2_000_000), st.sampled_from([0, 1, 2**60]))


def with_objects(model: Any, counts: tuple[int, int, int, int]) -> RequestRecord:
    record = RequestRecord()
    record.usage = TokenUsage(*counts)
    record.set_cost(PRICES.cost(model, *counts))
    return record


def with_tuples(model: Any, counts: tuple[int, int, int, int]) -> RequestRecord:
    record = RequestRecord()
    record.set_usage(*counts)
    record.set_cost_parts(PRICES.cost_parts(model, *counts))
    return record


def line(record: RequestRecord) -> list[tuple[str, str]]:
    """The line's fields with each value's exact text (types and float bits included)."""
    return [(key, repr(value)) for key, value in record.line_fields({"method": "POST"}).items()]


@PROPERTIES
@given(MODELS, st.tuples(COUNTS, COUNTS, COUNTS, COUNTS))
def test_cost_parts_are_the_costs_fields(model: Any, counts: tuple[int, int, int, int]) -> None:
    cost = PRICES.cost(model, *counts)
    parts = PRICES.cost_parts(model, *counts)

    if cost is None:
        assert parts is None
    else:
        assert parts == (cost.input, cost.output, cost.cache_read, cost.cache_write)


@PROPERTIES
@given(MODELS, st.tuples(COUNTS, COUNTS, COUNTS, COUNTS))
def test_a_record_filled_with_tuples_reads_as_one_filled_with_objects(
    model: Any, counts: tuple[int, int, int, int]
) -> None:
    fast, slow = with_tuples(model, counts), with_objects(model, counts)

    assert fast.usage == slow.usage == TokenUsage(*counts)
    assert fast.cost == slow.cost
    assert fast.unpriced == slow.unpriced
    assert fast.tokens == slow.tokens
    assert [repr(c) for c in fast.costs or ()] == [repr(c) for c in slow.costs or ()]
    assert line(fast) == line(slow)
    assert fast == slow


def test_the_costs_are_cost_input_output_cache_and_total_exactly() -> None:
    record = RequestRecord()
    record.set_cost_parts((0.1, 0.2, 0.3, 0.4))
    cost = Cost(0.1, 0.2, 0.3, 0.4)

    assert record.costs == (cost.input, cost.output, cost.cache, cost.total)
    assert record.cost == cost
    assert not record.unpriced


def test_no_cost_parts_means_unpriced_as_set_cost_none() -> None:
    record = RequestRecord()
    record.set_cost_parts((1.0, 1.0, 1.0, 1.0))
    record.set_cost_parts(None)

    assert record.unpriced
    assert record.cost is None
    assert record.costs is None
    assert record.line_fields({}) == {"cost_total_usd": 0.0, "unpriced": True}


def test_an_object_set_is_the_object_read() -> None:
    record = RequestRecord()
    usage, cost = TokenUsage(1, 2), Cost(1.0, 2.0, 0.0, 0.0)
    record.usage = usage
    record.set_cost(cost)

    assert record.usage is usage
    assert record.cost is cost


def test_a_later_setting_replaces_the_earlier_one_whichever_path() -> None:
    record = RequestRecord()
    record.set_usage(1, 2, 3, 4)
    assert record.usage == TokenUsage(1, 2, 3, 4)
    record.usage = TokenUsage(5)
    assert record.tokens == (5, 0, 0, 0)
    record.set_usage(7)
    assert record.usage == TokenUsage(7)
    record.usage = None
    assert record.tokens is None
    record.set_cost(Cost(1.0, 0.0, 0.0, 0.0))
    record.set_cost_parts((2.0, 0.0, 0.0, 0.0))
    assert record.cost == Cost(2.0, 0.0, 0.0, 0.0)
    record.set_cost(Cost(3.0, 0.0, 0.0, 0.0))
    assert record.costs == (3.0, 0.0, 0.0, 3.0)


def test_negative_tokens_are_refused_by_cost_parts_as_by_cost() -> None:
    with pytest.raises(ValueError, match="token counts must be >= 0"):
        PRICES.cost_parts("gpt-4o", input_tokens=-1)


def samples(registry: CollectorRegistry) -> list[tuple[str, tuple[tuple[str, str], ...], str]]:
    return sorted(
        (s.name, tuple(sorted(s.labels.items())), repr(s.value))
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    )


@settings(derandomize=True, database=None, deadline=None, max_examples=25)
@given(st.lists(st.tuples(MODELS, st.tuples(COUNTS, COUNTS, COUNTS, COUNTS)), max_size=6))
def test_the_metrics_of_either_record_are_the_same(
    requests: list[tuple[Any, tuple[int, int, int, int]]],
) -> None:
    exposed = []
    for fill in (with_tuples, with_objects):
        registry = CollectorRegistry()
        metrics = PrometheusMetrics(registry=registry, settings=ObservabilitySettings())
        for model, counts in requests * 2:
            record = fill(model, counts)
            record.team, record.key_alias, record.client_app = "t", "k", "curl"
            record.record_metrics(metrics, "/v1/messages", model, "proxy_service")
            metrics.record_response("POST", "/v1/messages", model, 200, "proxy_service", 0.1)
        exposed.append(samples(registry))
    assert exposed[0] == exposed[1]
