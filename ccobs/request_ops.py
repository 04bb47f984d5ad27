"""The storage operations of one request, resolved once per label set and called per request.

:meth:`ccobs.metrics.PrometheusMetrics.record_completed_request` calls a
:class:`RequestOps`, and the ASGI middleware a :func:`ccobs.response_op.response_op`
(a :func:`counted_then_observed` for cells it cannot add to itself), instead of
resolving each family's child on every request.
"""

from __future__ import annotations

from ccobs.prometheus_internals import Op
from ccobs.series_cache import Labels


def counted_then_observed(count: Op, observe: Op) -> Op:
    """Count a request, then observe its duration: one call for the ASGI middleware."""

    def record(duration: float) -> None:
        count(1)
        observe(duration)

    return record


class RequestOps:
    """How to record each update of one completed request, for one set of labels.

    Holds the children's storage operations rather than the children: a
    completed request makes eleven updates, and the argument checks
    prometheus_client repeats on each are already done.
    """

    __slots__ = ("costs", "duration", "request", "series", "tokens", "ttft")

    def __init__(
        self,
        request: Op,
        duration: Op,
        series: Labels,
        tokens: tuple[Op, ...],
        costs: tuple[Op, ...],
    ) -> None:
        self.request = request
        self.duration = duration
        self.series = series
        """(model, endpoint, service_type) labels of the histograms."""
        self.ttft: Op | None = None
        """Resolved on the first streamed request, so non-streamed routes get no TTFT series."""
        self.tokens = tokens
        self.costs = costs
