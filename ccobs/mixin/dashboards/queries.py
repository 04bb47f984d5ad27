"""PromQL for the dashboards: every selector honours the job selector and the dashboard filters.

:class:`Queries` assembles every panel query, so the conventions hold by
construction rather than by review (see the package docstring).
"""

from __future__ import annotations

from collections.abc import Sequence

from ccobs.catalog import (
    COST,
    ERRORS,
    INFO,
    RATE_LIMITED_ERROR_TYPE,
    REQUESTS,
    TOKENS,
    MetricSpec,
)
from ccobs.mixin.config import MixinConfig
from ccobs.mixin.grafana import (
    RANGE,
    RATE_INTERVAL,
)
from ccobs.mixin.names import cost_rate_record

TOTAL_COST_MATCHER = 'cost_type="total"'
"""The cost series that is the sum of the others; summing every cost_type would double count."""

PROMPT_TOKEN_TYPES = ("input", "cache_read", "cache_write")
"""The token types that make up a prompt: uncached input, cache reads and cache writes."""


def number(value: float) -> float:
    """``value`` without float noise (1 - 0.99 is 0.010000000000000009), for stable JSON."""
    return float(f"{value:.10g}")


def _quote(text: str) -> str:
    """A PromQL double-quoted string literal of ``text``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _by(labels: Sequence[str]) -> str:
    return f" by ({', '.join(labels)})" if labels else ""


class Queries:
    """PromQL for one configuration; every selector honours the dashboard filters."""

    def __init__(self, config: MixinConfig) -> None:
        self.config = config

    def selector(self, spec: MetricSpec, *matchers: str, suffix: str = "") -> str:
        """``spec``'s series under the job selector and the variables its labels allow."""
        labels = spec.labels
        filters = [
            self.config.job_selector,
            'job=~"$job"',
            'instance=~"$instance"',
            *(f'{label}=~"${label}"' for label in ("model", "service_type") if label in labels),
            *matchers,
        ]
        return f"{self.config.metric(spec)}{suffix}{{{', '.join(filters)}}}"

    def builtin(self, name: str) -> str:
        """A Prometheus or Pushgateway series (``up``, ``push_time_seconds``) of the proxy."""
        return f'{name}{{{self.config.job_selector}, job=~"$job", instance=~"$instance"}}'

    def rate(
        self, spec: MetricSpec, *matchers: str, by: Sequence[str] = (), suffix: str = ""
    ) -> str:
        """Per-second rate summed ``by`` the given labels."""
        inner = f"rate({self.selector(spec, *matchers, suffix=suffix)}[{RATE_INTERVAL}])"
        return f"sum{_by(by)} ({inner})"

    def increase(self, spec: MetricSpec, *matchers: str, by: Sequence[str] = ()) -> str:
        """Increase over the whole dashboard range, summed ``by`` the given labels."""
        return f"sum{_by(by)} (increase({self.selector(spec, *matchers)}[{RANGE}]))"

    def quantile(self, q: float, spec: MetricSpec, by: Sequence[str] = ()) -> str:
        """``q``-quantile of a histogram, aggregated over everything but ``by``."""
        buckets = self.rate(spec, by=("le", *by), suffix="_bucket")
        return f"histogram_quantile({q}, {buckets})"

    def _ratio(self, numerator: str, denominator: str) -> str:
        # A numerator with no series (no errors yet) reads as 0, not as "no data".
        return f"({numerator} or vector(0))\n/\n{denominator}"

    def error_ratio(self, whole_range: bool = False) -> str:
        """Errors that count against the SLO per request: the alerting rules' ratio."""
        excluded = f"error_type!~{_quote(self.config.error_ratio_excluded)}"
        window = self.increase if whole_range else self.rate
        return self._ratio(window(ERRORS, excluded), window(REQUESTS))

    def rate_limited_ratio(self) -> str:
        """Requests the upstream refused with 429, per request."""
        limited = f"error_type={_quote(RATE_LIMITED_ERROR_TYPE)}"
        return self._ratio(self.rate(ERRORS, limited), self.rate(REQUESTS))

    def cache_hit_ratio(self, by: Sequence[str] = (), whole_range: bool = False) -> str:
        """Prompt tokens read from the cache per prompt token: ``cache_read / prompt``.

        The prompt is every token sent in: ``input`` counts only the uncached
        part and excludes cache writes, so dividing by ``input + cache_read``
        alone would show a first, cache-writing request as a near-total hit.
        A model with prompts but no cache reads shows 0 (``or ... * 0``), the
        finding worth seeing, instead of disappearing from the panel.
        """
        window = self.increase if whole_range else self.rate
        cached = window(TOKENS, 'type="cache_read"', by=by)
        total = window(TOKENS, f'type=~"{"|".join(PROMPT_TOKEN_TYPES)}"', by=by)
        return f"({cached} or {total} * 0)\n/\n{total}"

    def recorded(self, record: str) -> str:
        """A series of the recording rules, which alerts compare with their thresholds.

        The rules aggregate by job (after applying the job selector), so only
        the job variable applies: instance, model and service type are gone.
        """
        return f'{record}{{job=~"$job"}}'

    def hourly_cost(self) -> str:
        """Spend in USD per hour per job: the recorded rate the cost alert compares with."""
        return f"{self.recorded(cost_rate_record(self.config))} * 3600"

    def hourly_cost_by(self, by: Sequence[str]) -> str:
        """Spend per hour ``by`` labels the recorded rate drops, over the cost alert's window.

        The same window as the alert (not ``$__rate_interval``), so one
        expensive request does not read as a spend rate the alert never sees.
        """
        inner = f"rate({self.selector(COST, TOTAL_COST_MATCHER)}[{self.config.cost_window}])"
        return f"sum{_by(by)} ({inner}) * 3600"

    def newest_sample_age(self) -> str:
        """Seconds since the newest sample of the always-present info series."""
        return f"time() - max(timestamp({self.selector(INFO)}))"
