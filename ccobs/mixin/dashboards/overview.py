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
    alert_error_ratio,
    board_title,
    board_uid,
    percent,
    variables,
)
from ccobs.mixin.dashboards.queries import (
    ANNOTATION_STEP,
    TOTAL_COST_MATCHER,
    Queries,
    number,
    or_none,
)
from ccobs.mixin.grafana import (
    RANGE,
    Json,
    Stat,
    Timeseries,
    annotation,
    dashboard,
    target,
    value_mapping,
)


def overview(config: MixinConfig) -> Json:
    """Traffic, errors, latency and spend at a glance: the first dashboard an on-call opens.

    Below the range totals, an "is it up" row answers first whether the
    proxy reports at all (scraped or pushed) and what is firing; alerts and
    version changes are annotations on every graph.
    """
    q = Queries(config)
    budget = number(config.error_budget)
    # The alert's percentile last, so the threshold line belongs to the last series.
    ttft_quantiles = sorted({0.5, 0.95, config.ttft_quantile})
    ttft_names = [f"p{number(quantile * 100):g}" for quantile in ttft_quantiles]
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
            f"against the {percent(config.error_ratio_slo)} SLO (client errors excluded); 0 "
            "without traffic. Red above the error budget (1 - SLO): errors came faster than "
            f"the SLO allows, which spends the {config.slo_window} budget early if it lasts.",
            [target(q.error_ratio_over(RANGE), "error ratio", instant=True)],
            unit="percentunit",
            steps=[(budget, "red")],
        ),
    ]
    is_it_up = [
        Stat(
            "Scraped targets up",
            "Prometheus' up series of the proxy's scrape targets: DOWN means the last scrape "
            "failed. Empty when the proxy only pushes (see the push age).",
            [target(q.builtin("up"), "{{instance}}", instant=True)],
            unit="none",
            h=5,
            steps=[(None, "red"), (1, "green")],
            mappings=[value_mapping({"0": ("DOWN", "red"), "1": ("UP", "green")})],
        ),
        Stat(
            "Seconds since the last push",
            "Per pushing job and instance, time since its last successful push to Pushgateway; "
            "red past the stale-push alert threshold; 'none' at 0 when the proxy is only scraped.",
            [
                target(
                    or_none(f"time() - {q.builtin('push_time_seconds')}", "instance"),
                    "{{instance}}",
                    instant=True,
                )
            ],
            unit="s",
            h=5,
            steps=[(number(config.push_stale_seconds), "red")],
        ),
        Stat(
            "Firing alerts",
            f"Alerts of this mixin ({config.alert_prefix}...) firing now, from Prometheus' "
            "ALERTS series: 0 when all is well; the annotations name them.",
            [target(q.firing_alert_count(), instant=True)],
            unit="none",
            w=12,
            h=5,
            steps=[(1, "red")],
        ),
    ]
    annotations = [
        annotation(
            "Firing alerts",
            q.firing_alerts(),
            title="{{alertname}}",
            text="{{severity}} {{job}} {{instance}}",
            color="red",
            step=ANNOTATION_STEP,
        ),
        annotation(
            "Version changes",
            q.version_changes(),
            title="{{job}} runs ccobs {{version}}",
            text="A version new to the job started: a deploy, an upgrade or a rollback.",
            color="blue",
            step=ANNOTATION_STEP,
        ),
    ]
    return dashboard(
        uid=board_uid(config, "overview"),
        title=board_title(config, "Overview"),
        description="Request rate, errors, latency, time to first token and spend of the proxy.",
        tags=config.dashboard_tags,
        variables=variables(config),
        annotations=annotations,
        rows=[
            top_line,
            is_it_up,
            [
                Timeseries(
                    "Request rate by model and status",
                    "Requests per second, by model and HTTP status: which traffic and which "
                    "answers the proxy serves.",
                    [target(q.rate(REQUESTS, by=("model", "status")), "{{model}} {{status}}")],
                    unit="reqps",
                    stack=True,
                ),
                alert_error_ratio(config, "Error ratio"),
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
                    f"Time to first token {' / '.join(ttft_names)}",
                    "Time from request start to the first generated token of streaming "
                    "responses: the wait a user sees before text appears. Dashed line: the "
                    f"{ttft_names[-1]} time-to-first-token alert threshold.",
                    [
                        target(q.quantile(quantile, TIME_TO_FIRST_TOKEN), name)
                        for quantile, name in zip(ttft_quantiles, ttft_names, strict=True)
                    ],
                    unit="s",
                    steps=[(number(config.ttft_p99_seconds), "red")],
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
