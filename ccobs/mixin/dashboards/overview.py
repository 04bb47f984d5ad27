"""The overview dashboard: traffic, errors, latency and spend at a glance."""

from __future__ import annotations

from ccobs.catalog import (
    ACTIVE_REQUESTS,
    COST,
    REQUESTS,
    RESPONSE_DURATION,
    TIME_TO_FIRST_TOKEN,
    TOKENS,
)
from ccobs.mixin.config import MixinConfig
from ccobs.mixin.dashboards.common import (
    board_title,
    board_uid,
    error_ratio_steps,
    variables,
)
from ccobs.mixin.dashboards.queries import TOTAL_COST_MATCHER, Queries, number
from ccobs.mixin.grafana import (
    Json,
    Stat,
    Timeseries,
    dashboard,
    target,
)


def overview(config: MixinConfig) -> Json:
    """Traffic, errors, latency and spend at a glance: the first dashboard an on-call opens."""
    q = Queries(config)
    budget = number(config.error_budget)
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
            [target(q.increase(COST, TOTAL_COST_MATCHER), "cost", instant=True)],
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
        uid=board_uid(config, "overview"),
        title=board_title(config, "Overview"),
        description="Request rate, errors, latency, time to first token and spend of the proxy.",
        tags=config.dashboard_tags,
        variables=variables(config),
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
                    steps=error_ratio_steps(config),
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
                    steps=[(number(config.latency_p99_seconds), "red")],
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
