"""What every dashboard shares: its filters (template variables), uid, title and SLO lines."""

from __future__ import annotations

from ccobs.catalog import (
    INFO,
    REQUESTS,
)
from ccobs.mixin.config import MixinConfig
from ccobs.mixin.dashboards.queries import number
from ccobs.mixin.grafana import (
    Json,
    Step,
    datasource_variable,
    query_variable,
)


def variables(config: MixinConfig, *extra: Json) -> list[Json]:
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


def board_uid(config: MixinConfig, name: str) -> str:
    return f"{config.dashboard_uid_prefix}-{name}"


def board_title(config: MixinConfig, name: str) -> str:
    return f"{config.dashboard_uid_prefix} / {name}"


def error_ratio_steps(config: MixinConfig) -> list[Step]:
    """The SLO budget line and, above it, the fastest burn rate's paging threshold."""
    steps: list[Step] = [(number(config.error_budget), "orange")]
    factors = [window.factor for window in config.burn_rate_windows]
    if factors:
        steps.append((number(config.error_budget * max(factors)), "red"))
    return steps
