"""The errors dashboard: what fails, where, and how fast the error budget burns."""

from __future__ import annotations

from ccobs.catalog import (
    ERRORS,
    RATE_LIMITED_ERROR_TYPE,
    REQUESTS,
)
from ccobs.mixin.config import MixinConfig
from ccobs.mixin.dashboards.common import (
    alert_error_ratio,
    board_title,
    board_uid,
    burn_rate_pair,
    percent,
    variables,
)
from ccobs.mixin.dashboards.queries import Queries, number
from ccobs.mixin.grafana import (
    GRID_WIDTH,
    Json,
    Stat,
    Table,
    Timeseries,
    dashboard,
    target,
)


def errors(config: MixinConfig) -> Json:
    """What fails, where and how fast the error budget burns."""
    q = Queries(config)
    budget_width = 6
    fastest = max(config.burn_rate_windows, key=lambda window: window.factor, default=None)
    others = [window for window in config.burn_rate_windows if window is not fastest]
    pair_width = (GRID_WIDTH - budget_width) // max(len(others), 1)
    budget_remaining = Stat(
        f"Error budget remaining over {config.slo_window}",
        f"Share of the error budget of the {percent(config.error_ratio_slo)} SLO left over the "
        f"last {config.slo_window}, for the selected traffic: 1 - error ratio / (1 - SLO), "
        "client errors excluded. Negative once overspent; 100 % without traffic.",
        [target(q.error_budget_remaining(), "remaining", instant=True)],
        unit="percentunit",
        steps=[(None, "red"), (0, "orange"), (0.25, "green")],
        w=budget_width,
        h=8,
    )
    return dashboard(
        uid=board_uid(config, "errors"),
        title=board_title(config, "Errors"),
        description="Failed requests by type, status, route and model, against the alert "
        "thresholds.",
        tags=config.dashboard_tags,
        variables=variables(config),
        rows=[
            [
                alert_error_ratio(config, "Error ratio against the alert thresholds"),
                Timeseries(
                    "Rate-limited ratio",
                    f"Requests the upstream refused with 429 (error_type {RATE_LIMITED_ERROR_TYPE})"
                    f" per request per job over {config.rate_limited_window}, as recorded for the "
                    "rate-limiting alert; it fires once the ratio stays above the dashed line for "
                    f"{config.rate_limited_for}.",
                    [target(q.rate_limited_ratio_recorded(), "{{job}}")],
                    unit="percentunit",
                    steps=[(number(config.rate_limited_ratio), "red")],
                ),
            ],
            [budget_remaining, *(burn_rate_pair(config, w, pair_width) for w in others)],
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
