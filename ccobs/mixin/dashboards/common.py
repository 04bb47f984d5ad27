"""What dashboards share: filters (template variables), uid, title and the error-ratio panels."""

from __future__ import annotations

from ccobs.catalog import (
    INFO,
    REQUESTS,
)
from ccobs.mixin.config import BurnRateWindow, MixinConfig
from ccobs.mixin.dashboards.queries import Queries, number
from ccobs.mixin.grafana import (
    Json,
    Step,
    Timeseries,
    datasource_variable,
    query_variable,
    target,
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


def percent(ratio: float) -> str:
    """A ratio as people write an SLO: 0.99 -> ``99 %``."""
    return f"{number(ratio * 100):g} %"


def alert_error_ratio(config: MixinConfig, title: str) -> Timeseries:
    """The recorded error ratios the fastest burn-rate alert reads, against its thresholds.

    The same series and thresholds as the alert, so a line above the red
    one means the alert is pending or firing (not merely a noisy minute).
    """
    q = Queries(config)
    fastest = max(config.burn_rate_windows, key=lambda window: window.factor, default=None)
    windows = (fastest.long, fastest.short) if fastest else (config.latency_window,)
    fires = (
        f"; the {fastest.severity} alert fires once both stay above the red line for {fastest.for_}"
        if fastest
        else ""
    )
    return Timeseries(
        title,
        "Failed requests per request per job over the "
        f"{' and '.join(windows)} windows: the recorded ratios the fastest burn-rate alert "
        f"reads, client errors ({config.error_ratio_excluded}) excluded. Dashed lines: the "
        f"error budget (1 - {config.error_ratio_slo:.4g}) and that budget times the fastest "
        f"burn rate{fires}.",
        [target(q.error_ratio_recorded(window), f"{{{{job}}}} {window}") for window in windows],
        unit="percentunit",
        steps=error_ratio_steps(config),
    )


def burn_rate_pair(config: MixinConfig, window: BurnRateWindow, width: int) -> Timeseries:
    """One burn-rate alert's two recorded ratios against its own threshold."""
    q = Queries(config)
    threshold = number(config.error_budget * window.factor)
    return Timeseries(
        f"Burn rate {window.long} / {window.short} ({window.severity})",
        f"Failed requests per request per job over {window.long} and {window.short}, as "
        f"recorded; the {window.severity} burn-rate alert fires once both stay above the dashed "
        f"line ({window.factor:g} times the error budget) for {window.for_}.",
        [
            target(q.error_ratio_recorded(text), f"{{{{job}}}} {text}")
            for text in (window.long, window.short)
        ],
        unit="percentunit",
        steps=[(threshold, "red" if window.severity == "critical" else "orange")],
        w=width,
    )
