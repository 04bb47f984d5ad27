"""PromQL for the dashboards: every selector honours the job selector and the dashboard filters.

:class:`Queries` assembles every panel query, so the conventions hold by
construction rather than by review (see the package docstring).
"""

from __future__ import annotations

from collections.abc import Sequence

from ccobs.catalog import (
    BUDGET,
    COST,
    ERRORS,
    INFO,
    REQUESTS,
    TOKENS,
    MetricSpec,
)
from ccobs.mixin.config import MixinConfig
from ccobs.mixin.grafana import (
    RANGE,
    RATE_INTERVAL,
)
from ccobs.mixin.names import (
    cost_rate_record,
    error_ratio_record,
    rate_limited_ratio_record,
    spend_record,
)

TOTAL_COST_MATCHER = 'cost_type="total"'
"""The cost series that is the sum of the others; summing every cost_type would double count."""

ANNOTATION_STEP = "1m"
"""The step of the annotation queries; a new version is one that was absent one step earlier."""

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

    def increase(
        self, spec: MetricSpec, *matchers: str, by: Sequence[str] = (), window: str = RANGE
    ) -> str:
        """Increase over the whole dashboard range (or ``window``), summed ``by`` the labels."""
        return f"sum{_by(by)} (increase({self.selector(spec, *matchers)}[{window}]))"

    def quantile(self, q: float, spec: MetricSpec, by: Sequence[str] = ()) -> str:
        """``q``-quantile of a histogram, aggregated over everything but ``by``."""
        buckets = self.rate(spec, by=("le", *by), suffix="_bucket")
        return f"histogram_quantile({q}, {buckets})"

    def _ratio(self, numerator: str, denominator: str) -> str:
        # A numerator with no series (no errors yet) reads as 0, not as "no data".
        return f"({numerator} or vector(0))\n/\n{denominator}"

    def error_ratio_over(self, window: str) -> str:
        """Errors that count against the SLO per request over ``window``; 0 without traffic.

        With no requests the ratio is 0/0; ``>= 0`` drops that NaN (it
        compares false) and ``or vector(0)`` shows 0, the errors there were.
        """
        excluded = f"error_type!~{_quote(self.config.error_ratio_excluded)}"
        errors = self.increase(ERRORS, excluded, window=window)
        ratio = self._ratio(errors, self.increase(REQUESTS, window=window))
        return f"(\n{ratio}\n) >= 0 or vector(0)"

    def error_budget_remaining(self) -> str:
        """Share of the SLO window's error budget not yet spent; negative once overspent."""
        spent = self.error_ratio_over(self.config.slo_window)
        return f"1 - (\n{spent}\n) / {number(self.config.error_budget)}"

    def error_ratio_recorded(self, window: str) -> str:
        """The recorded error ratio over ``window`` per job, as the burn-rate alerts read it."""
        return self.recorded(error_ratio_record(self.config, window))

    def rate_limited_ratio_recorded(self) -> str:
        """The recorded 429 ratio per job, as the rate-limiting alert reads it."""
        return self.recorded(rate_limited_ratio_record(self.config))

    def firing_alerts(self) -> str:
        """The mixin's firing alerts (Prometheus' ``ALERTS`` series), in the selected jobs.

        Only the job variable applies: alert labels are the rule's, and an
        alert about a missing job (absence) has no job label, which ``.*`` matches.
        """
        prefix = _quote(self.config.alert_prefix + ".+")
        return f'ALERTS{{alertstate="firing", alertname=~{prefix}, job=~"$job"}}'

    def firing_alert_count(self) -> str:
        """How many of the mixin's alerts fire now: 0, not nothing, when none does."""
        return f"count({self.firing_alerts()}) or vector(0)"

    def version_changes(self) -> str:
        """Versions that appeared in a job within the last step: an upgrade or a rollback."""
        info = self.selector(INFO)
        labels = "job, version"
        return (
            f"group by ({labels}) ({info})\nunless\n"
            f"group by ({labels}) ({info} offset {ANNOTATION_STEP})"
        )

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

    def share(self, part: str, whole: str) -> str:
        """``part / whole`` of two rates with the same labels; 0, not "No data", without parts.

        For shares of a total (truncated answers, retries): a series of the
        whole with no part yet reads 0 (``or whole * 0``) rather than vanishing.
        """
        return f"({part} or {whole} * 0)\n/\n{whole}"

    def newest_sample_age(self) -> str:
        """Seconds since the newest sample of the always-present info series."""
        return f"time() - max(timestamp({self.selector(INFO)}))"

    def budget_remaining(self, scope: str) -> str:
        """USD left of each ``scope`` budget: budget minus recorded spend, clamped at 0.

        A budget whose team or key has spent nothing has no spend series: ``or``
        against the budget times 0 makes its spend 0, so it shows its whole budget.
        """
        label = "team" if scope == "team" else "key_alias"
        clause = f"job, {label}, period"
        budget = f"max by ({clause}) ({self.selector(BUDGET, f'scope={_quote(scope)}')})"
        spend = self.recorded(spend_record(self.config, scope))
        return (
            f"clamp_min(\n  {budget}\n  - on ({clause})\n"
            f"  ({spend} or on ({clause}) {budget} * 0),\n  0\n)"
        )


def or_none(expr: str, label: str) -> str:
    """``expr``, or one zero series labelled ``label="none"`` when it has no series.

    For a by-label panel whose healthy answer is "nothing" (no unpriced model,
    no push): it then reads 0 for none rather than "No data", which looks broken.
    """
    return f'({expr}) or on() label_replace(vector(0), "{label}", "none", "", "")'
