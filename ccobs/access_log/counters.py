"""The access-log store's own counters: records written, records dropped by reason.

They live in the registry of the ``PrometheusMetrics`` the store is given, so
they are scraped, pushed and aggregated across workers with everything else.
One set per registry and namespace: a second store on the same registry
(a reopened database, a test) reuses it instead of failing to register.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from ccobs.catalog import ACCESS_LOG_DROP_REASONS, ACCESS_LOG_DROPPED, ACCESS_LOG_WRITTEN

if TYPE_CHECKING:
    from ccobs.metrics import PrometheusMetrics

_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[Any, dict[str, AccessLogCounters]] = (
    weakref.WeakKeyDictionary()
)


class AccessLogCounters:
    """``written`` and ``dropped{reason}``; no-ops without a registry.

    Children for every drop reason exist from the start, so a dashboard's
    ``rate(...dropped_total[...])`` reads 0 rather than nothing while all is well.
    """

    def __init__(self, registry: Any | None, namespace: str) -> None:
        self._written: Any | None = None
        self._dropped: dict[str, Any] = {}
        if registry is None:
            return
        from prometheus_client import Counter

        self._written = Counter(
            ACCESS_LOG_WRITTEN.full_name(namespace),
            ACCESS_LOG_WRITTEN.documentation,
            registry=registry,
        )
        dropped = Counter(
            ACCESS_LOG_DROPPED.full_name(namespace),
            ACCESS_LOG_DROPPED.documentation,
            ACCESS_LOG_DROPPED.labels,
            registry=registry,
        )
        self._dropped = {reason: dropped.labels(reason) for reason in ACCESS_LOG_DROP_REASONS}

    @classmethod
    def for_metrics(cls, metrics: PrometheusMetrics | None) -> AccessLogCounters:
        """The counters in ``metrics``' registry, created on first use; unregistered without."""
        registry = None if metrics is None else metrics.registry
        if registry is None:
            return cls(None, "")
        namespace = metrics.namespace if metrics is not None else ""
        with _lock:
            per_namespace = _by_registry.setdefault(registry, {})
            counters = per_namespace.get(namespace)
            if counters is None:
                counters = per_namespace[namespace] = cls(registry, namespace)
            return counters

    def count_written(self, n: int) -> None:
        if self._written is not None:
            self._written.inc(n)

    def count_dropped(self, reason: str, n: int = 1) -> None:
        child = self._dropped.get(reason)
        if child is not None:
            child.inc(n)
