"""The four ccobs Grafana dashboards, built from a ``MixinConfig``.

Every query is assembled by :class:`Queries` so that the conventions hold by
construction rather than by review: each selector carries the job selector
and the ``job``/``instance`` variables, plus the ``model``/``service_type``
filters wherever the catalogue says the metric has those labels; counters
are only read through ``rate``/``increase`` over ``$__rate_interval`` (or
``$__range`` for the range totals); metric names come from the catalogue.
The tests then check the built JSON independently, by parsing every query.
"""

from __future__ import annotations

from collections.abc import Sequence

from ccobs.catalog import (
    ACCESS_LOG_DROPPED,
    ACCESS_LOG_WRITTEN,
    ACTIVE_REQUESTS,
    COST,
    ERRORS,
    INFO,
    LABEL_OVERFLOWS,
    PUSHES,
    RATE_LIMITED_ERROR_TYPE,
    REJECTED_VALUES,
    REQUESTS,
    RESPONSE_DURATION,
    TIME_TO_FIRST_TOKEN,
    TOKENS,
    UNPRICED_REQUESTS,
    MetricSpec,
)
from ccobs.mixin.config import MixinConfig
from ccobs.mixin.grafana import (
    DATASOURCE,
    MIXED_DATASOURCE,
    RANGE,
    RANGE_SECONDS,
    RATE_INTERVAL,
    BarGauge,
    Json,
    Stat,
    Step,
    Table,
    Timeseries,
    dashboard,
    datasource_ref,
    datasource_variable,
    iter_queries,
    iter_variable_queries,
    query_variable,
    target,
    value_mapping,
)

__all__ = [
    "VM_DATASOURCE_VARIABLE",
    "Queries",
    "build_dashboards",
    "iter_queries",
    "iter_variable_queries",
]

"""The ``error_type`` the proxy records for an upstream 429 (see the demo proxy)."""

VM_DATASOURCE_VARIABLE = "vm_datasource"
"""The second data source the pipeline dashboard compares with the first."""

SECONDS_PER_30_DAYS = 30 * 86400

_TOTAL_COST = 'cost_type="total"'
"""The cost series that is the sum of the others; summing every cost_type would double count."""


def _number(value: float) -> float:
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
        """Cached input tokens per input token: ``cache_read / (input + cache_read)``.

        A model with input but no cache reads shows 0 (``or ... * 0``), which is
        the finding worth seeing, instead of disappearing from the panel.
        """
        window = self.increase if whole_range else self.rate
        cached = window(TOKENS, 'type="cache_read"', by=by)
        total = window(TOKENS, 'type=~"input|cache_read"', by=by)
        return f"({cached} or {total} * 0)\n/\n{total}"

    def hourly_cost(self, by: Sequence[str] = ()) -> str:
        """Spend in USD per hour at the current rate."""
        return f"{self.rate(COST, _TOTAL_COST, by=by)} * 3600"

    def newest_sample_age(self) -> str:
        """Seconds since the newest sample of the always-present info series."""
        return f"time() - max(timestamp({self.selector(INFO)}))"


def _variables(config: MixinConfig, *extra: Json) -> list[Json]:
    """Data source, job, instance, model and service type: the filters every query honours."""
    info = config.metric(INFO)
    requests = config.metric(REQUESTS)
    scope = f'{config.job_selector}, job=~"$job", instance=~"$instance"'
    return [
        datasource_variable(
            "datasource",
            "Data source",
            "Prometheus or VictoriaMetrics holding the proxy's metrics.",
        ),
        *extra,
        query_variable(
            "job",
            "job",
            f"label_values({info}{{{config.job_selector}}}, job)",
            "Scrape or push job of the proxy; read from the info series, present from start-up.",
        ),
        query_variable(
            "instance",
            "instance",
            f'label_values({info}{{{config.job_selector}, job=~"$job"}}, instance)',
            "Proxy instance (host:port when scraped, the grouping key when pushed).",
        ),
        query_variable(
            "model",
            "model",
            f"label_values({requests}{{{scope}}}, model)",
            "Upstream model; models past the label cap are folded into 'other'.",
        ),
        query_variable(
            "service_type",
            "service type",
            f"label_values({requests}{{{scope}}}, service_type)",
            "Which service of the proxy handled the request.",
        ),
    ]


def _uid(config: MixinConfig, name: str) -> str:
    return f"{config.dashboard_uid_prefix}-{name}"


def _title(config: MixinConfig, name: str) -> str:
    return f"{config.dashboard_uid_prefix} / {name}"


def _error_ratio_steps(config: MixinConfig) -> list[Step]:
    """The SLO budget line and, above it, the fastest burn rate's paging threshold."""
    steps: list[Step] = [(_number(config.error_budget), "orange")]
    factors = [window.factor for window in config.burn_rate_windows]
    if factors:
        steps.append((_number(config.error_budget * max(factors)), "red"))
    return steps


def overview(config: MixinConfig) -> Json:
    """Traffic, errors, latency and spend at a glance: the first dashboard an on-call opens."""
    q = Queries(config)
    budget = _number(config.error_budget)
    top_line = [
        Stat(
            "Requests",
            "Requests served over the selected time range.",
            [target(q.increase(REQUESTS), "requests", instant=True)],
            unit="short",
        ),
        Stat(
            "Tokens",
            "Tokens processed over the selected time range, all types (input, output, cache).",
            [target(q.increase(TOKENS), "tokens", instant=True)],
            unit="short",
        ),
        Stat(
            "Cost",
            "Spend over the selected time range, from the price table (cost_type total).",
            [target(q.increase(COST, _TOTAL_COST), "cost", instant=True)],
            unit="currencyUSD",
        ),
        Stat(
            "Error ratio over the range",
            "Share of requests over the selected range that failed with an error counting "
            f"against the {config.error_ratio_slo:.4g} SLO; red once the whole budget is spent.",
            [target(q.error_ratio(whole_range=True), "error ratio", instant=True)],
            unit="percentunit",
            steps=[(budget, "red")],
        ),
    ]
    return dashboard(
        uid=_uid(config, "overview"),
        title=_title(config, "Overview"),
        description="Request rate, errors, latency, time to first token and spend of the proxy.",
        tags=config.dashboard_tags,
        variables=_variables(config),
        rows=[
            top_line,
            [
                Timeseries(
                    "Request rate by model and status",
                    "Requests per second, by model and HTTP status: which traffic and which "
                    "answers the proxy serves.",
                    [target(q.rate(REQUESTS, by=("model", "status")), "{{model}} {{status}}")],
                    unit="reqps",
                    stack=True,
                ),
                Timeseries(
                    "Error ratio",
                    "Failed requests per request, excluding client errors "
                    f"({config.error_ratio_excluded}). Dashed lines: the SLO error budget and the "
                    "fastest burn rate that pages.",
                    [target(q.error_ratio(), "error ratio")],
                    unit="percentunit",
                    steps=_error_ratio_steps(config),
                ),
            ],
            [
                Timeseries(
                    "Response latency p50 / p95 / p99",
                    "Time from request start to the last byte, over all selected traffic. Dashed "
                    "line: the p99 latency alert threshold.",
                    [
                        target(q.quantile(quantile, RESPONSE_DURATION), f"p{round(quantile * 100)}")
                        for quantile in (0.5, 0.95, 0.99)
                    ],
                    unit="s",
                    steps=[(_number(config.latency_p99_seconds), "red")],
                ),
                Timeseries(
                    "Time to first token p50 / p95",
                    "Time from request start to the first generated token of streaming "
                    "responses: the wait a user sees before text appears.",
                    [
                        target(
                            q.quantile(quantile, TIME_TO_FIRST_TOKEN), f"p{round(quantile * 100)}"
                        )
                        for quantile in (0.5, 0.95)
                    ],
                    unit="s",
                ),
            ],
            [
                Timeseries(
                    "Active requests",
                    "Requests in flight, summed over worker processes; long LLM calls make this "
                    "the first sign of a slow upstream.",
                    [target(f"sum by (instance) ({q.selector(ACTIVE_REQUESTS)})", "{{instance}}")],
                    unit="short",
                ),
                Timeseries(
                    "Response latency p95 by model",
                    "95th percentile of response time per model: finds the model that is slow.",
                    [target(q.quantile(0.95, RESPONSE_DURATION, by=("model",)), "{{model}}")],
                    unit="s",
                ),
            ],
        ],
    )


def tokens_cost(config: MixinConfig) -> Json:
    """Where tokens and money go: per type and model, with cache efficiency and a projection."""
    q = Queries(config)
    budget = _number(config.hourly_cost_budget_usd)
    projected = f"{q.increase(COST, _TOTAL_COST)}\n/ {RANGE_SECONDS} * {SECONDS_PER_30_DAYS}"
    return dashboard(
        uid=_uid(config, "tokens-cost"),
        title=_title(config, "Tokens and cost"),
        description="Token throughput, prompt-cache efficiency and spend of the proxy.",
        tags=config.dashboard_tags,
        variables=_variables(config),
        rows=[
            [
                Stat(
                    "Cost over the range",
                    "Spend over the selected time range (cost_type total).",
                    [target(q.increase(COST, _TOTAL_COST), "cost", instant=True)],
                    unit="currencyUSD",
                ),
                Stat(
                    "Projected 30-day spend",
                    "Spend over 30 days at the average rate of the selected time range: widen the "
                    "range to smooth out daily cycles.",
                    [target(projected, "30 days", instant=True)],
                    unit="currencyUSD",
                    steps=[(_number(config.hourly_cost_budget_usd * 24 * 30), "red")],
                ),
                Stat(
                    "Cost per hour now",
                    "Spend per hour at the current rate; red above the hourly cost budget the "
                    "cost alert uses.",
                    [target(q.hourly_cost(), "per hour", instant=True)],
                    unit="currencyUSD",
                    steps=[(budget, "red")],
                ),
                Stat(
                    "Cache hit ratio over the range",
                    "Input tokens served from the prompt cache, cache_read / (input + cache_read), "
                    "over the selected range: higher is cheaper and faster.",
                    [target(q.cache_hit_ratio(whole_range=True), "cache hit", instant=True)],
                    unit="percentunit",
                ),
            ],
            [
                Timeseries(
                    "Tokens per second by type and model",
                    "Token throughput by type (input, output, cache_read, cache_write) and model.",
                    [target(q.rate(TOKENS, by=("type", "model")), "{{model}} {{type}}")],
                    unit="short",
                    stack=True,
                ),
                Timeseries(
                    "Cache hit ratio by model",
                    "cache_read / (input + cache_read) per model; a model at 0 is not using the "
                    "prompt cache.",
                    [target(q.cache_hit_ratio(by=("model",)), "{{model}}")],
                    unit="percentunit",
                ),
            ],
            [
                Timeseries(
                    "Cost per hour by model",
                    "Spend in USD per hour at the current rate, stacked by model; the dashed line "
                    "is the hourly cost budget the cost alert compares the total with.",
                    [target(q.hourly_cost(by=("model",)), "{{model}}")],
                    unit="currencyUSD",
                    stack=True,
                    steps=[(budget, "red")],
                ),
                BarGauge(
                    "Cost over the range by model and cost type",
                    "Spend over the selected range per model, split into input, output and cache "
                    "cost, with their total.",
                    [
                        target(
                            f"sort_desc({q.increase(COST, by=('model', 'cost_type'))})",
                            "{{model}} {{cost_type}}",
                            instant=True,
                        )
                    ],
                    unit="currencyUSD",
                ),
            ],
            [
                BarGauge(
                    "Tokens over the range by model and type",
                    "Tokens processed over the selected range per model and token type.",
                    [
                        target(
                            f"sort_desc({q.increase(TOKENS, by=('model', 'type'))})",
                            "{{model}} {{type}}",
                            instant=True,
                        )
                    ],
                    unit="short",
                ),
                BarGauge(
                    "Unpriced requests over the range by model",
                    "Requests for models missing from the price table: their cost is recorded as "
                    "zero, so the spend above is too low while this is not empty.",
                    [
                        target(
                            f"sort_desc({q.increase(UNPRICED_REQUESTS, by=('model',))})",
                            "{{model}}",
                            instant=True,
                        )
                    ],
                    unit="short",
                ),
            ],
        ],
    )


def errors(config: MixinConfig) -> Json:
    """What fails, where and how fast the error budget burns."""
    q = Queries(config)
    return dashboard(
        uid=_uid(config, "errors"),
        title=_title(config, "Errors"),
        description="Failed requests by type, status, route and model, against the alert "
        "thresholds.",
        tags=config.dashboard_tags,
        variables=_variables(config),
        rows=[
            [
                Timeseries(
                    "Error ratio against the alert thresholds",
                    "Failed requests per request, excluding client errors "
                    f"({config.error_ratio_excluded}). Dashed lines: the SLO error budget "
                    f"(1 - {config.error_ratio_slo:.4g}) and that budget times the fastest burn "
                    "rate, where the error-ratio alert pages.",
                    [target(q.error_ratio(), "error ratio")],
                    unit="percentunit",
                    steps=_error_ratio_steps(config),
                ),
                Timeseries(
                    "Rate-limited ratio",
                    f"Requests the upstream refused with 429 (error_type {RATE_LIMITED_ERROR_TYPE})"
                    " per request; the dashed line is the rate-limiting alert threshold.",
                    [target(q.rate_limited_ratio(), "rate limited")],
                    unit="percentunit",
                    steps=[(_number(config.rate_limited_ratio), "red")],
                ),
            ],
            [
                Timeseries(
                    "Errors by error type",
                    "Failed requests per second by error type, including the client errors the "
                    "error ratio leaves out.",
                    [target(q.rate(ERRORS, by=("error_type",)), "{{error_type}}")],
                    unit="reqps",
                    stack=True,
                ),
                Timeseries(
                    "Failed requests by status",
                    "Requests per second answered with a 4xx or 5xx HTTP status, by status.",
                    [target(q.rate(REQUESTS, 'status=~"[45].."', by=("status",)), "{{status}}")],
                    unit="reqps",
                    stack=True,
                ),
            ],
            [
                Timeseries(
                    "Errors by endpoint",
                    "Failed requests per second by route template.",
                    [target(q.rate(ERRORS, by=("endpoint",)), "{{endpoint}}")],
                    unit="reqps",
                    stack=True,
                ),
                Timeseries(
                    "Errors by model",
                    "Failed requests per second by model: an outage of one model shows here.",
                    [target(q.rate(ERRORS, by=("model",)), "{{model}}")],
                    unit="reqps",
                    stack=True,
                ),
            ],
            [
                Table(
                    "Errors over the range",
                    "Failed requests over the selected range by error type, endpoint and model, "
                    "most frequent first.",
                    [
                        target(
                            "sort_desc("
                            f"{q.increase(ERRORS, by=('error_type', 'endpoint', 'model'))})",
                            instant=True,
                            table=True,
                        )
                    ],
                    unit="short",
                    h=8,
                ),
            ],
        ],
    )


def pipeline(config: MixinConfig) -> Json:
    """Whether the numbers on the other dashboards can be trusted: scrape, push and storage."""
    q = Queries(config)
    vm = datasource_ref(VM_DATASOURCE_VARIABLE)
    # ``:text`` shows the data source's name in the legend rather than its uid.
    both = ((DATASOURCE, "${datasource:text}"), (vm, "${vm_datasource:text}"))
    info_labels = ", ".join(("job", "instance", *INFO.labels))
    return dashboard(
        uid=_uid(config, "pipeline"),
        title=_title(config, "Pipeline health"),
        description="Scrape, Pushgateway push and VictoriaMetrics agreement for the proxy's "
        "metrics, and the library's own safety counters.",
        tags=config.dashboard_tags,
        variables=_variables(
            config,
            datasource_variable(
                VM_DATASOURCE_VARIABLE,
                "Compare with",
                "Second store (VictoriaMetrics) whose newest samples are compared with the "
                "first data source.",
                default_uid=config.vm_datasource_uid,
            ),
        ),
        rows=[
            [
                Stat(
                    "Proxy scrape up",
                    "Prometheus' up series of the proxy's scrape targets: DOWN means the last "
                    "scrape failed. Empty when the proxy only pushes.",
                    [target(q.builtin("up"), "{{instance}}", instant=True)],
                    unit="none",
                    w=8,
                    h=6,
                    steps=[(None, "red"), (1, "green")],
                    mappings=[value_mapping({"0": ("DOWN", "red"), "1": ("UP", "green")})],
                ),
                Timeseries(
                    "Pushgateway push age",
                    "Seconds since the last successful push to Pushgateway per job and instance; "
                    "the dashed line is the stale-push alert threshold. Empty when the proxy is "
                    "scraped or pushes to VictoriaMetrics directly.",
                    [
                        target(
                            f"time() - {q.builtin('push_time_seconds')}",
                            "{{job}} {{instance}}",
                        )
                    ],
                    unit="s",
                    w=8,
                    h=6,
                    steps=[(_number(config.push_stale_seconds), "red")],
                ),
                Timeseries(
                    "Pushes by protocol and outcome",
                    "Pushes per minute by protocol and outcome; failure includes pushes skipped "
                    "while the circuit breaker is open.",
                    [
                        target(
                            f"{q.rate(PUSHES, by=('protocol', 'outcome'))} * 60",
                            "{{protocol}} {{outcome}}",
                        )
                    ],
                    unit="opm",
                    w=8,
                    h=6,
                ),
            ],
            [
                Timeseries(
                    "Newest sample age per data source",
                    "Seconds since the newest info sample in each store. Both lines should stay "
                    "within a scrape or push interval (plus VictoriaMetrics' 30 s search latency "
                    "offset); a line that climbs or ends alone means that store stopped "
                    "receiving data.",
                    [target(q.newest_sample_age(), name, datasource=ds) for ds, name in both],
                    unit="s",
                    datasource=MIXED_DATASOURCE,
                ),
                Timeseries(
                    "Request rate per data source",
                    "The same request rate read from both stores: the lines should overlap; a gap "
                    "means one store lost or duplicated samples.",
                    [target(q.rate(REQUESTS), name, datasource=ds) for ds, name in both],
                    unit="reqps",
                    datasource=MIXED_DATASOURCE,
                ),
            ],
            [
                Timeseries(
                    "Label overflows by label",
                    "Label values folded into 'other' per second because the label reached its "
                    "cardinality bound: raise the bound or fix the caller.",
                    [target(q.rate(LABEL_OVERFLOWS, by=("label",)), "{{label}}")],
                    unit="cps",
                ),
                Timeseries(
                    "Rejected values by metric",
                    "Recorded values refused per second because they were negative, NaN or "
                    "infinite: a bug in the caller's measurements.",
                    [target(q.rate(REJECTED_VALUES, by=("metric",)), "{{metric}}")],
                    unit="cps",
                ),
            ],
            [
                Timeseries(
                    "Access-log records written and dropped",
                    "Access-log records written to the database per second, and records lost "
                    "by reason: queue_full (writes fall behind), write_error (the database "
                    "fails: disk full, read-only, locked), closed (handed over after shutdown "
                    "began). Empty when no access-log database is configured.",
                    [
                        target(q.rate(ACCESS_LOG_WRITTEN), "written"),
                        target(q.rate(ACCESS_LOG_DROPPED, by=("reason",)), "dropped {{reason}}"),
                    ],
                    unit="cps",
                ),
            ],
            [
                Table(
                    "ccobs versions",
                    "ccobs and Python versions and platform of every running proxy instance: "
                    "confirms a rollout reached every instance.",
                    [
                        target(
                            f"max by ({info_labels}) ({q.selector(INFO)})",
                            instant=True,
                            table=True,
                        )
                    ],
                    unit="none",
                    hide_columns=("Time", "Value"),
                ),
            ],
        ],
    )


def build_dashboards(config: MixinConfig) -> dict[str, Json]:
    """File name under ``dashboards/`` -> dashboard JSON object."""
    return {
        f"{config.dashboard_uid_prefix}-overview.json": overview(config),
        f"{config.dashboard_uid_prefix}-tokens-cost.json": tokens_cost(config),
        f"{config.dashboard_uid_prefix}-errors.json": errors(config),
        f"{config.dashboard_uid_prefix}-pipeline.json": pipeline(config),
    }
