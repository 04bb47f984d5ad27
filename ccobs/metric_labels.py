"""The label guards of ccobs's metric families, and each family's call arguments -> labels.

Every label a ``record_*`` call takes from its caller passes through a
:class:`ccobs.labels.LabelGuard`, one per label name shared by all families,
so that ``model`` is bounded once across requests, tokens, cost and errors.
Each method here maps one family's raw arguments, in the order its
``record_*`` call takes them (the order a :class:`ccobs.series_cache.SeriesCache`
remembers them in), to that family's label values in its catalog order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ccobs.attribution_metrics import ATTRIBUTION_OVERFLOW_LABEL, AttributionLabels
from ccobs.labels import LabelGuard
from ccobs.series_cache import Labels, Raw

LABEL_CAPS = {"method": 16, "endpoint": 200, "status": 64, "service_type": 32, "error_type": 64}
"""Distinct values each label other than ``model`` admits (``model``'s cap is a setting)."""
# The attribution labels' caps; ``key_alias``'s counts (team, key alias) pairs
# (ccobs.attribution_metrics).
LABEL_CAPS.update(team=100, key_alias=1000, client_app=16)
GUARDED_LABELS: tuple[str, ...] = ("model", *LABEL_CAPS, ATTRIBUTION_OVERFLOW_LABEL)
"""The labels whose overflows ``label_overflows_total`` counts."""


class MetricLabels:
    """The guards of one :class:`ccobs.metrics.PrometheusMetrics`; ``on_overflow`` counts a fold."""

    def __init__(
        self,
        model_cap: int,
        model_allowlist: Iterable[str],
        max_length: int,
        on_overflow: Callable[[str], None],
    ) -> None:
        self.model = LabelGuard(
            "model",
            model_cap,
            allowlist=model_allowlist,
            max_length=max_length,
            on_overflow=on_overflow,
        )
        guards = {
            name: LabelGuard(name, cap, max_length=max_length, on_overflow=on_overflow)
            for name, cap in LABEL_CAPS.items()
        }
        self.method = guards["method"]
        self.endpoint = guards["endpoint"]
        self.status = guards["status"]
        self.service_type = guards["service_type"]
        self.error_type = guards["error_type"]
        self.attribution = AttributionLabels(
            guards["team"],
            LABEL_CAPS["key_alias"],
            guards["client_app"],
            self.model,
            self.service_type,
            max_length,
            on_overflow,
        )

    def request(self, raw: Raw) -> Labels:
        """(method, endpoint, model, status, service_type): requests, and whole requests."""
        method, endpoint, model, status, service_type = raw
        return (
            self.method(method),
            self.endpoint(endpoint),
            self.model(model),
            self.status(status),
            self.service_type(service_type),
        )

    def series(self, raw: Raw) -> Labels:
        """(model, endpoint, service_type): the duration and time-to-first-token histograms."""
        model, endpoint, service_type = raw
        return (self.model(model), self.endpoint(endpoint), self.service_type(service_type))

    def tokens(self, raw: Raw) -> Labels:
        """(token_type, model, service_type); the token type is checked, not guarded."""
        token_type, model, service_type = raw
        return (str(token_type), self.model(model), self.service_type(service_type))

    def cost(self, raw: Raw) -> Labels:
        """(model, cost_type, service_type); the cost type is checked, not guarded."""
        model, cost_type, service_type = raw
        return (self.model(model), str(cost_type), self.service_type(service_type))

    def error(self, raw: Raw) -> Labels:
        """(error_type, endpoint, model, service_type)."""
        error_type, endpoint, model, service_type = raw
        return (
            self.error_type(error_type),
            self.endpoint(endpoint),
            self.model(model),
            self.service_type(service_type),
        )

    def unpriced(self, raw: Raw) -> Labels:
        """(model, service_type)."""
        model, service_type = raw
        return (self.model(model), self.service_type(service_type))
