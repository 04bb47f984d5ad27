"""The spend and budgets dashboard: who spends (team, key, client app) and what budget is left."""

from __future__ import annotations

from ccobs.catalog import ATTRIBUTED_COST, ATTRIBUTED_REQUESTS, ATTRIBUTED_TOKENS, BUDGET
from ccobs.mixin.config import MixinConfig
from ccobs.mixin.dashboards.common import board_title, board_uid, variables
from ccobs.mixin.dashboards.queries import Queries
from ccobs.mixin.grafana import BarGauge, Json, Stat, Table, Timeseries, dashboard, target

TOP_KEYS = 10
"""Keys the top-keys panel lists."""


def spend(config: MixinConfig) -> Json:
    """Spend by team, key and client app, and each configured budget's remainder."""
    q = Queries(config)
    cost = ATTRIBUTED_COST
    per_hour = " * 3600"
    return dashboard(
        uid=board_uid(config, "spend"),
        title=board_title(config, "Spend and budgets"),
        description=(
            "Who spends: cost, tokens and requests of identified callers by team, key alias and "
            "client app, and how much of each configured budget is left."
        ),
        tags=config.dashboard_tags,
        variables=variables(config),
        rows=[
            [
                Stat(
                    "Attributed spend over the range",
                    "Spend of identified callers over the selected range (every team, key and "
                    "client app; unknown keys are team 'unassigned').",
                    [target(q.increase(cost), "spend", instant=True)],
                    unit="currencyUSD",
                ),
                BarGauge(
                    "Budget remaining per team",
                    "USD left of each team budget over its rolling period (budget minus the "
                    "recorded spend, never below 0); a team that spent nothing shows its whole "
                    "budget.",
                    [target(q.budget_remaining("team"), "{{team}} {{period}}", instant=True)],
                    unit="currencyUSD",
                    w=9,
                ),
                BarGauge(
                    "Budget remaining per key",
                    "USD left of each key budget over its rolling period (budget minus the "
                    "recorded spend, never below 0).",
                    [target(q.budget_remaining("key"), "{{key_alias}} {{period}}", instant=True)],
                    unit="currencyUSD",
                    w=9,
                ),
            ],
            [
                Timeseries(
                    "Spend per hour by team",
                    "USD per hour by team, at the rate of the last few scrapes.",
                    [target(q.rate(cost, by=("team",)) + per_hour, "{{team}}")],
                    unit="currencyUSD",
                    stack=True,
                ),
                Timeseries(
                    "Spend per hour by client app",
                    "USD per hour by client application (Claude Code, Codex, the SDKs, curl...).",
                    [target(q.rate(cost, by=("client_app",)) + per_hour, "{{client_app}}")],
                    unit="currencyUSD",
                    stack=True,
                ),
            ],
            [
                BarGauge(
                    f"Top {TOP_KEYS} keys over the range",
                    f"The {TOP_KEYS} key aliases that spent most over the selected range, with "
                    "their team; 'other' holds the keys past the label cap.",
                    [
                        target(
                            f"topk({TOP_KEYS}, {q.increase(cost, by=('team', 'key_alias'))})",
                            "{{key_alias}} ({{team}})",
                            instant=True,
                        )
                    ],
                    unit="currencyUSD",
                    w=8,
                ),
                BarGauge(
                    "Cost per client app over the range",
                    "Spend over the selected range by client application.",
                    [
                        target(
                            f"sort_desc({q.increase(cost, by=('client_app',))})",
                            "{{client_app}}",
                            instant=True,
                        )
                    ],
                    unit="currencyUSD",
                    w=8,
                ),
                Table(
                    "Spend by team and model over the range",
                    "Spend over the selected range per team and model.",
                    [
                        target(
                            f"sort_desc({q.increase(cost, by=('team', 'model'))})",
                            "{{team}} {{model}}",
                            instant=True,
                        )
                    ],
                    unit="currencyUSD",
                    w=8,
                ),
            ],
            [
                Timeseries(
                    "Tokens per second by team and type",
                    "Token throughput of identified callers by team and token type.",
                    [
                        target(
                            q.rate(ATTRIBUTED_TOKENS, by=("team", "type")),
                            "{{team}} {{type}}",
                        )
                    ],
                    unit="short",
                    w=8,
                    stack=True,
                ),
                Timeseries(
                    "Requests per second by client app",
                    "Requests of identified callers by client application.",
                    [
                        target(
                            q.rate(ATTRIBUTED_REQUESTS, by=("client_app",)),
                            "{{client_app}}",
                        )
                    ],
                    unit="reqps",
                    w=8,
                ),
                Table(
                    "Configured budgets",
                    "Every budget of the identity file, as the proxies expose it "
                    "(budget_usd, set at start).",
                    [
                        target(
                            f"max by (scope, team, key_alias, period) ({q.selector(BUDGET)})",
                            "{{scope}} {{team}}{{key_alias}} {{period}}",
                            instant=True,
                        )
                    ],
                    unit="currencyUSD",
                    w=8,
                ),
            ],
        ],
    )
