"""Attribution metrics: who spent it (team, key alias, client app, model), and bounded.

The families are fed from the request's record (``RequestRecord.record_metrics``),
so these tests go through it as the middleware does. The flood sends 10,000
distinct unknown keys, each with its fingerprint-based alias, as a client that
rotates keys would: the series stay under the bound stated in the docs, memory
stays flat once the caps fill, and every request is still counted.
"""

from __future__ import annotations

import gc
import hashlib
import tracemalloc
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from ccobs.attribution_metrics import (
    ATTRIBUTION_OVERFLOW_LABEL,
    ATTRIBUTION_SET_CAP,
    SERIES_PER_LABEL_SET,
    max_series,
)
from ccobs.catalog import (
    ATTRIBUTED_COST,
    ATTRIBUTED_REQUESTS,
    ATTRIBUTED_TOKENS,
    COST,
    OTHER,
    TOKENS,
)
from ccobs.metric_labels import LABEL_CAPS
from ccobs.metrics import PrometheusMetrics
from ccobs.pricing import Cost
from ccobs.record import RequestRecord

TEAM_CAP = LABEL_CAPS["team"]
KEY_CAP = LABEL_CAPS["key_alias"]
CLIENT_APPS = ("claude-code", "codex", "anthropic-sdk-python", "openai-python", "curl", "other")
MODELS = ("claude-sonnet-4-6", "claude-haiku-4-5", "gpt-5")
MEMORY_GROWTH_LIMIT = 256 * 1024
"""Bytes traced allocations may grow from 2,000 to 10,000 flooded keys: under 33 bytes per
request, far below what keeping anything per key (an alias string is ~60 bytes) would take."""


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> PrometheusMetrics:
    return PrometheusMetrics(registry=registry)


def finish(
    metrics: PrometheusMetrics,
    *,
    team: str | None = "platform",
    key_alias: str | None = "alice",
    client_app: str | None = "claude-code",
    model: str = "claude-sonnet-4-6",
    cost: float | None = 0.25,
) -> RequestRecord:
    """One request's record, filled as the proxy fills it, fed to the metrics."""
    record = RequestRecord(model=model, team=team, key_alias=key_alias, client_app=client_app)
    record.set_usage(input=100, output=20, cache_read=1000, cache_write=10)
    record.set_cost(None if cost is None else Cost(cost, 0.0, 0.0, 0.0))
    record.record_metrics(metrics, "/v1/messages", model, "anthropic")
    return record


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def samples(registry: CollectorRegistry, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name
    ]


WHO = {
    "team": "platform",
    "key_alias": "alice",
    "client_app": "claude-code",
    "model": "claude-sonnet-4-6",
    "service_type": "anthropic",
}


def test_an_identified_request_is_counted_with_its_team_key_app_and_model(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    finish(metrics)

    assert value(registry, ATTRIBUTED_REQUESTS.full_name(), **WHO) == 1


def test_its_tokens_are_counted_by_type(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    finish(metrics)

    tokens = ATTRIBUTED_TOKENS.full_name()
    assert value(registry, tokens, type="input", **WHO) == 100
    assert value(registry, tokens, type="output", **WHO) == 20
    assert value(registry, tokens, type="cache_read", **WHO) == 1000
    assert value(registry, tokens, type="cache_write", **WHO) == 10


def test_its_total_cost_is_added(metrics: PrometheusMetrics, registry: CollectorRegistry) -> None:
    finish(metrics, cost=0.25)
    finish(metrics, cost=0.5)

    assert value(registry, ATTRIBUTED_COST.full_name(), **WHO) == 0.75


def test_an_unpriced_request_has_a_cost_series_at_zero(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    finish(metrics, cost=None)

    assert value(registry, ATTRIBUTED_COST.full_name(), **WHO) == 0


def test_a_request_without_identity_adds_no_attribution_series(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    finish(metrics, team=None, key_alias=None, client_app=None)

    assert samples(registry, ATTRIBUTED_REQUESTS.full_name()) == []


def test_the_existing_families_keep_their_label_sets(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    finish(metrics)

    for spec in (TOKENS, COST):
        for labels, _ in samples(registry, spec.full_name()):
            assert set(labels) == set(spec.labels)


def test_a_missing_part_of_the_identity_reads_unknown(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    finish(metrics, team="platform", key_alias=None, client_app=None)

    [(labels, count)] = samples(registry, ATTRIBUTED_REQUESTS.full_name())
    assert (labels["key_alias"], labels["client_app"], count) == ("unknown", "unknown", 1)


def test_teams_past_the_cap_are_other(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    for i in range(TEAM_CAP + 5):
        finish(metrics, team=f"team-{i}", key_alias="shared")

    teams = {labels["team"] for labels, _ in samples(registry, ATTRIBUTED_REQUESTS.full_name())}
    assert len(teams) == TEAM_CAP + 1
    assert OTHER in teams
    assert value(registry, "ccproxy_label_overflows_total", label="team") == 5


def test_keys_past_the_cap_are_other_within_their_team(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    for i in range(KEY_CAP):
        finish(metrics, team="platform", key_alias=f"key-{i}")
    finish(metrics, team="research", key_alias="late-key")

    late = value(registry, ATTRIBUTED_REQUESTS.full_name(), **{**WHO, "team": "research"})
    assert late is None
    assert (
        value(
            registry,
            ATTRIBUTED_REQUESTS.full_name(),
            **{**WHO, "team": "research", "key_alias": OTHER},
        )
        == 1
    )
    assert value(registry, "ccproxy_label_overflows_total", label="key_alias") == 1


def test_label_sets_past_the_cap_keep_team_and_key_and_fold_app_and_model() -> None:
    """Team and key spend stay exact (budgets read them); app and model detail is dropped."""
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    for i in range(ATTRIBUTION_SET_CAP):
        finish(metrics, key_alias=f"key-{i % 500}", model=f"m-{i // 500}")

    finish(metrics, team="platform", key_alias="alice", model="claude-haiku-4-5", cost=1.0)

    folded = {**WHO, "client_app": OTHER, "model": OTHER}
    assert value(registry, ATTRIBUTED_COST.full_name(), **folded) == 1.0
    assert value(registry, "ccproxy_label_overflows_total", label=ATTRIBUTION_OVERFLOW_LABEL) == 1


def fingerprint_alias(i: int) -> str:
    """An unknown caller's alias, as the identity resolver derives it from the key."""
    return "key-" + hashlib.sha256(f"sk-ant-api03-flood-{i}".encode()).hexdigest()[:8]


def flood(metrics: PrometheusMetrics, start: int, stop: int) -> None:
    for i in range(start, stop):
        finish(
            metrics,
            team="unassigned",
            key_alias=fingerprint_alias(i),
            client_app=CLIENT_APPS[i % len(CLIENT_APPS)],
            model=MODELS[i % len(MODELS)],
            cost=0.001,
        )


def attribution_series(registry: CollectorRegistry) -> int:
    names = {spec.full_name() for spec in (ATTRIBUTED_REQUESTS, ATTRIBUTED_TOKENS, ATTRIBUTED_COST)}
    return sum(
        1 for family in registry.collect() for sample in family.samples if sample.name in names
    )


def test_10k_distinct_keys_stay_under_the_series_bound_lose_no_request_and_add_no_memory() -> None:
    """The bound of docs/reference.md: ``max_series(T, K)`` for one service type."""
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    flood(metrics, 0, 2_000)
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        flood(metrics, 2_000, 10_000)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    series = attribution_series(registry)
    requests = sum(count for _, count in samples(registry, ATTRIBUTED_REQUESTS.full_name()))
    assert series <= max_series(TEAM_CAP, KEY_CAP)
    # The first K keys with their one app and model, then "other" with each app (and its model).
    assert series == SERIES_PER_LABEL_SET * (KEY_CAP + len(CLIENT_APPS))
    assert requests == 10_000
    assert (
        value(
            registry,
            ATTRIBUTED_COST.full_name(),
            **{
                "team": "unassigned",
                "key_alias": OTHER,
                "client_app": "claude-code",
                "model": "claude-sonnet-4-6",
                "service_type": "anthropic",
            },
        )
        is not None
    )
    assert after - before < MEMORY_GROWTH_LIMIT, f"grew {after - before} bytes over 8,000 keys"


def test_the_readme_states_the_bound_the_caps_give() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()

    assert f"{max_series(TEAM_CAP, KEY_CAP):,} series" in readme


def test_a_key_alias_that_cannot_be_printed_is_other_not_an_error(
    metrics: PrometheusMetrics, registry: CollectorRegistry
) -> None:
    metrics.record_attributed_request("platform", 10**5000, "curl")  # type: ignore[arg-type]

    [(labels, count)] = samples(registry, ATTRIBUTED_REQUESTS.full_name())
    assert (labels["key_alias"], count) == (OTHER, 1)
