"""The recording rules (shared ratios and rates that alerts and dashboards read) and their test.

The test is one ``promql_expr_test`` per rule, its expected values computed
by the oracle from inputs chosen so that they are exact in binary floating
point (promtool compares them exactly).
"""

from __future__ import annotations

import math
from typing import Any

from ccobs.catalog import (
    COST,
    DEFAULT_DURATION_BUCKETS,
    ERRORS,
    RATE_LIMITED_ERROR_TYPE,
    RATE_LIMITED_ERROR_TYPES,
    REQUESTS,
    RESPONSE_DURATION,
)
from ccobs.mixin.config import MixinConfig, duration_seconds
from ccobs.mixin.names import (
    burn_long_windows,
    cost_rate_record,
    error_ratio_record,
    error_ratio_windows,
    is_slow_window,
    latency_p99_record,
    rate_limited_ratio_record,
    requests_increase_record,
    requests_rate_record,
)
from ccobs.mixin.oracle.evaluation import bucket_quantile, job_ratio, satisfies, sum_rate
from ccobs.mixin.oracle.promtool import STEPS, promtool_file, round_up
from ccobs.mixin.oracle.samples import (
    SAMPLE_ENDPOINT,
    SAMPLE_INSTANCES,
    SAMPLE_MODEL,
    counted_error_type,
    errors_series,
    excluded_error_type,
    job_only,
    sample_labels,
)
from ccobs.mixin.oracle.series import Store, build_series
from ccobs.mixin.promql import by, duration, metric, quote
from ccobs.mixin.rule_types import RecordingRule
from ccobs.mixin.spend_rules import spend_rules, spend_slow_records

TOTAL_COST_TYPE = "total"
"""The ``cost_type`` that sums the others: summing every cost type would double count."""


def _ratio_expr(config: MixinConfig, numerator: str, window: str) -> str:
    """``sum(rate(numerator)) / sum(rate(requests))`` per job, 0 (not absent) without errors.

    The ``or ... * 0`` keeps the ratio at 0 while there is traffic but no
    matching error series yet (ccobs creates a label child on first use), so
    dashboards show 0 instead of "no data" and the ratio never has gaps.
    """
    clause = by(config)
    requests = f"sum by ({clause}) (rate({metric(config, config.metric(REQUESTS))}[{window}]))"
    return (
        f"(\n  sum by ({clause}) (rate({numerator}[{window}]))\n  or\n  {requests} * 0\n)"
        f"\n/\n{requests}"
    )


def counted_errors(config: MixinConfig) -> str:
    """The errors that spend the error budget (every type but the excluded ones)."""
    return metric(
        config, config.metric(ERRORS), f"error_type!~{quote(config.error_ratio_excluded)}"
    )


def rate_limited_errors(config: MixinConfig) -> str:
    """The errors of requests the upstream refused with 429, before or during the stream."""
    pattern = "|".join(RATE_LIMITED_ERROR_TYPES)
    return metric(config, config.metric(ERRORS), f"error_type=~{quote(pattern)}")


def recording_rules(config: MixinConfig) -> tuple[RecordingRule, ...]:
    """Every recording rule: the shared ratios and rates that alerts and dashboards read."""
    requests = metric(config, config.metric(REQUESTS))
    rules = [
        RecordingRule(
            requests_rate_record(config),
            f"sum by ({by(config)}) (rate({requests}[{config.latency_window}]))",
        )
    ]
    rules += [
        RecordingRule(
            error_ratio_record(config, window), _ratio_expr(config, counted_errors(config), window)
        )
        for window in error_ratio_windows(config)
    ]
    rules += [
        RecordingRule(
            requests_increase_record(config, window),
            f"sum by ({by(config)}) (increase({requests}[{window}]))",
        )
        for window in burn_long_windows(config)
    ]
    rules.append(
        RecordingRule(
            rate_limited_ratio_record(config),
            _ratio_expr(config, rate_limited_errors(config), config.rate_limited_window),
        )
    )
    cost = metric(config, config.metric(COST), f"cost_type={quote(TOTAL_COST_TYPE)}")
    rules.append(
        RecordingRule(
            cost_rate_record(config), f"sum by ({by(config)}) (rate({cost}[{config.cost_window}]))"
        )
    )
    buckets = metric(config, config.metric(RESPONSE_DURATION) + "_bucket")
    rules.append(
        RecordingRule(
            latency_p99_record(config),
            "histogram_quantile(\n  0.99,\n"
            f"  sum by ({by(config)}, le) (rate({buckets}[{config.latency_window}]))\n)",
        )
    )
    rules += spend_rules(config)  # tested in the budget alerts' file (ccobs/mixin/alerts/budget.py)
    return tuple(rules)


def slow_records(config: MixinConfig) -> frozenset[str]:
    """The records over windows of at least ``slow_rules_min_window``: the slow group's."""
    records = {
        error_ratio_record(config, w)
        for w in error_ratio_windows(config)
        if is_slow_window(config, w)
    }
    records |= {
        requests_increase_record(config, w)
        for w in burn_long_windows(config)
        if is_slow_window(config, w)
    }
    records |= spend_slow_records(config)
    return frozenset(records)


def recording_rules_test(config: MixinConfig) -> dict[str, Any]:
    """One ``promql_expr_test`` per recording rule, with values exact in binary floating point.

    Every rate is a whole number per second over a window that starts on a
    sample, and every ratio a power of two (1/4, 1/8), so the expected values
    equal Prometheus' to the last bit (promtool compares them exactly).
    """
    job = sample_labels(config)
    latency_s, cost_s = (
        duration_seconds(config.latency_window),
        duration_seconds(config.cost_window),
    )
    windows = [duration_seconds(w) for w in error_ratio_windows(config)]
    windows += [duration_seconds(config.rate_limited_window), latency_s, cost_s]
    step = next(
        (s for s in STEPS if latency_s % s == 0 and all(w >= 2 * s for w in windows)),
        1,
    )
    # Past the latency window (its rates are whole numbers); the longer
    # windows see less history than they span, which Prometheus extrapolates
    # identically for every series, so the ratios stay exact.
    at = round_up(max(latency_s, 2 * step), step)
    steps = at // step + 1
    counted, excluded = counted_error_type(config), excluded_error_type(config)
    base = {"endpoint": SAMPLE_ENDPOINT, "model": SAMPLE_MODEL, "service_type": "anthropic"}
    series = [
        build_series(
            config.metric(REQUESTS),
            {**job, "instance": instance, "method": "POST", **base, "status": "200"},
            0,
            [(32.0 * step, steps - 1)],
        )
        for instance in SAMPLE_INSTANCES
    ]
    error_types = [(counted, 8.0, 0), (RATE_LIMITED_ERROR_TYPE, 8.0, 1)]
    if excluded is not None:
        error_types.append((excluded, 32.0, 0))
    series += [
        errors_series(
            config, job, kind, [(per_second * step, steps - 1)], SAMPLE_INSTANCES[instance]
        )
        for kind, per_second, instance in error_types
    ]
    for model, cost_type, per_second in (
        (SAMPLE_MODEL, TOTAL_COST_TYPE, 2.0),
        ("claude-haiku-4", TOTAL_COST_TYPE, 2.0),
        (SAMPLE_MODEL, "input", 100.0),
    ):
        labels = {
            **job,
            "instance": SAMPLE_INSTANCES[0],
            "model": model,
            "cost_type": cost_type,
            "service_type": "anthropic",
        }
        series.append(
            build_series(config.metric(COST), labels, 0, [(per_second * step, steps - 1)])
        )
    lower = DEFAULT_DURATION_BUCKETS.index(1.0)
    bucket_name = config.metric(RESPONSE_DURATION) + "_bucket"
    for bound, per_second in (
        (DEFAULT_DURATION_BUCKETS[lower], 0.0),
        (DEFAULT_DURATION_BUCKETS[lower + 1], 1.0),
        (math.inf, 1.0),
    ):
        labels = {
            **job,
            "instance": SAMPLE_INSTANCES[0],
            **base,
            "le": "+Inf" if math.isinf(bound) else repr(bound),
        }
        series.append(build_series(bucket_name, labels, 0, [(per_second * step, steps - 1)]))
    store = Store(step, tuple(series))

    def expected_values(store: Store) -> dict[str, float | None]:
        """Every record's value at ``at``, as the oracle computes it from ``store``."""
        requests = store.select(config.metric(REQUESTS))
        errors_name = config.metric(ERRORS)
        expected: dict[str, float | None] = {
            requests_rate_record(config): sum_rate(store, requests, at, latency_s),
        }
        for window in error_ratio_windows(config):
            counted_series = store.select(
                errors_name,
                error_type=lambda v: not satisfies(v, "=~", config.error_ratio_excluded),
            )
            expected[error_ratio_record(config, window)] = job_ratio(
                store, counted_series, requests, at, duration_seconds(window)
            )
        for window in burn_long_windows(config):
            expected[requests_increase_record(config, window)] = sum_rate(
                store, requests, at, duration_seconds(window), is_rate=False
            )
        limited = store.select(errors_name, error_type=lambda v: v in RATE_LIMITED_ERROR_TYPES)
        expected[rate_limited_ratio_record(config)] = job_ratio(
            store, limited, requests, at, duration_seconds(config.rate_limited_window)
        )
        expected[cost_rate_record(config)] = sum_rate(
            store,
            store.select(config.metric(COST), cost_type=lambda v: v == TOTAL_COST_TYPE),
            at,
            cost_s,
        )
        buckets = [
            (float(s.label_dict["le"]), sum_rate(store, [s], at, latency_s) or 0.0)
            for s in store.select(bucket_name)
        ]
        expected[latency_p99_record(config)] = bucket_quantile(0.99, buckets)
        return expected

    expected = expected_values(store)
    if expected_values(store.under_prometheus_3()) != expected:
        raise ValueError("recording rule tests differ under Prometheus 3's left-open ranges")
    spend = {rule.record for rule in spend_rules(config)}
    recorded = [rule.record for rule in recording_rules(config) if rule.record not in spend]
    if sorted(expected) != sorted(recorded):
        raise AssertionError(f"recording rule tests {sorted(expected)} != rules {sorted(recorded)}")
    kept = ",".join(f"{label}={quote(value)}" for label, value in job_only(config, job).items())
    tests = []
    for record in recorded:
        value = expected[record]
        if value is None or math.isnan(value):
            raise ValueError(f"recording rule test of {record} has no value")
        tests.append(
            {
                "expr": record,
                "eval_time": duration(at),
                "exp_samples": [{"labels": f"{record}{{{kept}}}", "value": value}],
            }
        )
    group = {
        "name": "every recording rule over two instances, excluded errors and cost types",
        "interval": duration(step),
        "input_series": [{"series": s.text(), "values": s.notation} for s in store.series],
        "promql_expr_test": tests,
    }
    return promtool_file(config, step, [group])
