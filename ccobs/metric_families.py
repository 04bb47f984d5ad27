"""The prometheus_client collectors of one :class:`ccobs.metrics.PrometheusMetrics`.

Created from the catalog's specs (names, help, labels) under one namespace,
in one registry, in a fixed order (the exposition's order), and removed
together: an instance unregisters exactly what it registered.
"""

from __future__ import annotations

from typing import Any

from ccobs.catalog import (
    ACTIVE_REQUESTS,
    ATTRIBUTED_COST,
    ATTRIBUTED_REQUESTS,
    ATTRIBUTED_TOKENS,
    BUDGET,
    COST,
    DEFAULT_TIME_PER_OUTPUT_TOKEN_BUCKETS,
    ERRORS,
    INFO,
    LABEL_OVERFLOWS,
    PUSHES,
    RATE_LIMIT_LIMIT,
    RATE_LIMIT_REJECTED,
    RATE_LIMIT_REMAINING,
    RATE_LIMIT_RESET,
    REJECTED_VALUE_METRICS,
    REJECTED_VALUES,
    REQUESTS,
    RESPONSE_DURATION,
    RETRIED_REQUESTS,
    STOP_REASONS_COUNTED,
    SUBSCRIPTION_RESET,
    SUBSCRIPTION_STATUS,
    SUBSCRIPTION_UTILIZATION,
    TIME_PER_OUTPUT_TOKEN,
    TIME_TO_FIRST_TOKEN,
    TOKENS,
    UNPRICED_REQUESTS,
    MetricSpec,
)
from ccobs.metric_labels import GUARDED_LABELS
from ccobs.prometheus_internals import PROMETHEUS_AVAILABLE
from ccobs.rate_limit_metrics import start_rejected_at_zero
from ccobs.settings import ObservabilitySettings

if PROMETHEUS_AVAILABLE:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class MetricFamilies:
    """Every collector ccobs records to, registered in ``registry`` under ``namespace``.

    Raises ValueError, with every collector it had registered removed again,
    when the registry already holds one of the names (a second instance with
    the same namespace).
    """

    def __init__(
        self, namespace: str, registry: CollectorRegistry, settings: ObservabilitySettings
    ) -> None:
        self.namespace = namespace
        self.registry = registry
        self._collectors: list[Any] = []
        try:
            add = self._register
            self.requests = add(Counter, REQUESTS)
            self.duration = add(Histogram, RESPONSE_DURATION, buckets=settings.duration_buckets)
            self.ttft = add(Histogram, TIME_TO_FIRST_TOKEN, buckets=settings.ttft_buckets)
            self.tokens = add(Counter, TOKENS)
            self.cost = add(Counter, COST)
            self.errors = add(Counter, ERRORS)
            self.unpriced = add(Counter, UNPRICED_REQUESTS)
            self.active = add(Gauge, ACTIVE_REQUESTS, multiprocess_mode="livesum")
            self.info = add(Gauge, INFO, multiprocess_mode="max")
            self.pushes = add(Counter, PUSHES)
            self.overflows = add(Counter, LABEL_OVERFLOWS)
            self.rejected = add(Counter, REJECTED_VALUES)
            self.attributed_requests = add(Counter, ATTRIBUTED_REQUESTS)
            self.attributed_tokens = add(Counter, ATTRIBUTED_TOKENS)
            self.attributed_cost = add(Counter, ATTRIBUTED_COST)
            self.budgets = add(Gauge, BUDGET, multiprocess_mode="max")
            self.stop_reasons = add(Counter, STOP_REASONS_COUNTED)
            self.time_per_output_token = add(
                Histogram, TIME_PER_OUTPUT_TOKEN, buckets=DEFAULT_TIME_PER_OUTPUT_TOKEN_BUCKETS
            )
            self.retried = add(Counter, RETRIED_REQUESTS)
            # Every known label value at zero from the start: a healthy process reads 0 on
            # the pipeline dashboard rather than "No data", and increase() sees the first one.
            for label in GUARDED_LABELS:
                self.overflows.labels(label)
            for metric in REJECTED_VALUE_METRICS:
                self.rejected.labels(metric)
            # Rate-limit headroom: gauges hold the last answer's value, so under multiprocess
            # mode the newest write of any worker is the one shown.
            latest = "mostrecent"
            self.ratelimit_limit = add(Gauge, RATE_LIMIT_LIMIT, multiprocess_mode=latest)
            self.ratelimit_remaining = add(Gauge, RATE_LIMIT_REMAINING, multiprocess_mode=latest)
            self.ratelimit_reset = add(Gauge, RATE_LIMIT_RESET, multiprocess_mode=latest)
            self.unified_utilization = add(
                Gauge, SUBSCRIPTION_UTILIZATION, multiprocess_mode=latest
            )
            self.unified_reset = add(Gauge, SUBSCRIPTION_RESET, multiprocess_mode=latest)
            self.unified_status = add(Gauge, SUBSCRIPTION_STATUS, multiprocess_mode=latest)
            self.ratelimit_rejected = add(Counter, RATE_LIMIT_REJECTED)
            start_rejected_at_zero(self.ratelimit_rejected)
        except ValueError as exc:
            self.unregister()
            raise ValueError(
                f"ccobs metrics with namespace {namespace!r} are already registered in "
                "this registry; reuse them through get_metrics() or pass another registry "
                f"(prometheus_client said: {exc})"
            ) from exc

    def _register(self, kind: Any, spec: MetricSpec, **options: Any) -> Any:
        """A ``kind`` (Counter, Gauge, Histogram) collector for ``spec``, registered and tracked."""
        collector = kind(
            spec.full_name(self.namespace),
            spec.documentation,
            spec.labels,
            registry=self.registry,
            **options,
        )
        self._collectors.append(collector)
        return collector

    def unregister(self) -> None:
        """Remove exactly the collectors this instance registered."""
        for collector in self._collectors:
            self.registry.unregister(collector)
        self._collectors.clear()
