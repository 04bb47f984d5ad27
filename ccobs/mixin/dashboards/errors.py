"""The errors dashboard: what fails, where, and how fast the error budget burns."""

from __future__ import annotations

from ccobs.catalog import (
    ERRORS,
    RATE_LIMITED_ERROR_TYPE,
    REQUESTS,
)
from ccobs.mixin.config import MixinConfig
from ccobs.mixin.dashboards.common import (
    board_title,
    board_uid,
    error_ratio_steps,
    variables,
)
from ccobs.mixin.dashboards.queries import Queries, number
from ccobs.mixin.grafana import (
    Json,
    Table,
    Timeseries,
    dashboard,
    target,
)


def errors(config: MixinConfig) -> Json:
    """What fails, where and how fast the error budget burns."""
    q = Queries(config)
    return dashboard(
        uid=board_uid(config, "errors"),
        title=board_title(config, "Errors"),
        description="Failed requests by type, status, route and model, against the alert "
        "thresholds.",
        tags=config.dashboard_tags,
        variables=variables(config),
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
                    steps=error_ratio_steps(config),
                ),
                Timeseries(
                    "Rate-limited ratio",
                    f"Requests the upstream refused with 429 (error_type {RATE_LIMITED_ERROR_TYPE})"
                    " per request; the dashed line is the rate-limiting alert threshold.",
                    [target(q.rate_limited_ratio(), "rate limited")],
                    unit="percentunit",
                    steps=[(number(config.rate_limited_ratio), "red")],
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
