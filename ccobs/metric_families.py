"""The prometheus_client collectors of one :class:`ccobs.metrics.PrometheusMetrics`.

Created from the catalog's specs (names, help, labels) under one namespace,
in one registry, in a fixed order (the exposition's order), and removed
together: an instance unregisters exactly what it registered.
"""

from __future__ import annotations

from typing import Any, Literal

from ccobs.catalog import (
    ACTIVE_REQUESTS,
    COST,
    ERRORS,
    INFO,
    LABEL_OVERFLOWS,
    PUSHES,
    REJECTED_VALUES,
    REQUESTS,
    RESPONSE_DURATION,
    TIME_TO_FIRST_TOKEN,
    TOKENS,
    UNPRICED_REQUESTS,
    MetricSpec,
)
from ccobs.prometheus_internals import PROMETHEUS_AVAILABLE
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
            self.requests = self._counter(REQUESTS)
            self.duration = self._histogram(RESPONSE_DURATION, settings.duration_buckets)
            self.ttft = self._histogram(TIME_TO_FIRST_TOKEN, settings.ttft_buckets)
            self.tokens = self._counter(TOKENS)
            self.cost = self._counter(COST)
            self.errors = self._counter(ERRORS)
            self.unpriced = self._counter(UNPRICED_REQUESTS)
            self.active = self._gauge(ACTIVE_REQUESTS, "livesum")
            self.info = self._gauge(INFO, "max")
            self.pushes = self._counter(PUSHES)
            self.overflows = self._counter(LABEL_OVERFLOWS)
            self.rejected = self._counter(REJECTED_VALUES)
        except ValueError as exc:
            self.unregister()
            raise ValueError(
                f"ccobs metrics with namespace {namespace!r} are already registered in "
                "this registry; reuse them through get_metrics() or pass another registry "
                f"(prometheus_client said: {exc})"
            ) from exc

    def _track(self, collector: Any) -> Any:
        self._collectors.append(collector)
        return collector

    def _counter(self, spec: MetricSpec) -> Any:
        return self._track(
            Counter(
                spec.full_name(self.namespace),
                spec.documentation,
                spec.labels,
                registry=self.registry,
            )
        )

    def _histogram(self, spec: MetricSpec, buckets: tuple[float, ...]) -> Any:
        return self._track(
            Histogram(
                spec.full_name(self.namespace),
                spec.documentation,
                spec.labels,
                registry=self.registry,
                buckets=buckets,
            )
        )

    def _gauge(self, spec: MetricSpec, multiprocess_mode: Literal["livesum", "max"]) -> Any:
        return self._track(
            Gauge(
                spec.full_name(self.namespace),
                spec.documentation,
                spec.labels,
                registry=self.registry,
                multiprocess_mode=multiprocess_mode,
            )
        )

    def unregister(self) -> None:
        """Remove exactly the collectors this instance registered."""
        for collector in self._collectors:
            self.registry.unregister(collector)
        self._collectors.clear()
