"""The tokens and cost dashboard: where tokens and money go."""

from __future__ import annotations

from ccobs.catalog import (
    COST,
    TOKENS,
    UNPRICED_REQUESTS,
)
from ccobs.mixin.config import MixinConfig
from ccobs.mixin.dashboards.common import (
    board_title,
    board_uid,
    variables,
)
from ccobs.mixin.dashboards.queries import TOTAL_COST_MATCHER, Queries, number, or_none
from ccobs.mixin.grafana import (
    RANGE_SECONDS,
    BarGauge,
    Json,
    Stat,
    Timeseries,
    dashboard,
    target,
)

SECONDS_PER_30_DAYS = 30 * 86400
"""The projection horizon of the cost panels."""


def tokens_cost(config: MixinConfig) -> Json:
    """Where tokens and money go: per type and model, with cache efficiency and a projection."""
    q = Queries(config)
    budget = number(config.hourly_cost_budget_usd)
    projected = f"{q.increase(COST, TOTAL_COST_MATCHER)}\n/ {RANGE_SECONDS} * {SECONDS_PER_30_DAYS}"
    return dashboard(
        uid=board_uid(config, "tokens-cost"),
        title=board_title(config, "Tokens and cost"),
        description="Token throughput, prompt-cache efficiency and spend of the proxy.",
        tags=config.dashboard_tags,
        variables=variables(config),
        rows=[
            [
                Stat(
                    "Cost over the range",
                    "Spend over the selected time range (cost_type total).",
                    [target(q.increase(COST, TOTAL_COST_MATCHER), "cost", instant=True)],
                    unit="currencyUSD",
                ),
                Stat(
                    "Projected 30-day spend",
                    "Spend over 30 days at the average rate of the selected time range: widen the "
                    "range to smooth out daily cycles.",
                    [target(projected, "30 days", instant=True)],
                    unit="currencyUSD",
                    steps=[(number(config.hourly_cost_budget_usd * 24 * 30), "red")],
                ),
                Stat(
                    "Cost per hour now",
                    f"Spend per hour per job, averaged over the last {config.cost_window}: the "
                    "recorded rate the cost alert compares with the hourly budget; red above it.",
                    [target(q.hourly_cost(), "{{job}}", instant=True)],
                    unit="currencyUSD",
                    steps=[(budget, "red")],
                ),
                Stat(
                    "Cache hit ratio over the range",
                    "Prompt tokens served from the prompt cache over the selected range, "
                    "cache_read / (input + cache_read + cache_write): higher is cheaper and "
                    "faster.",
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
                    "Prompt tokens read from the cache per prompt token, cache_read / (input + "
                    "cache_read + cache_write), per model; a model at 0 is not using the prompt "
                    "cache.",
                    [target(q.cache_hit_ratio(by=("model",)), "{{model}}")],
                    unit="percentunit",
                ),
            ],
            [
                Timeseries(
                    "Cost per hour by model",
                    f"Spend in USD per hour averaged over the last {config.cost_window}, by model, "
                    "and per job the recorded total the cost alert compares with its budget "
                    "(the dashed line).",
                    [
                        target(q.hourly_cost_by(("model",)), "{{model}}"),
                        target(q.hourly_cost(), "{{job}} total"),
                    ],
                    unit="currencyUSD",
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
                    "zero, so the spend above is too low while any shows; none reads 0.",
                    [
                        target(
                            or_none(
                                f"sort_desc({q.increase(UNPRICED_REQUESTS, by=('model',))})",
                                "model",
                            ),
                            "{{model}}",
                            instant=True,
                        )
                    ],
                    unit="short",
                ),
            ],
        ],
    )
