"""Spend per team and per key over each budget period, cheap enough to keep over 30 days.

``increase(attributed_cost_usd_total[30d])`` would read 30 days of raw samples of
every (team, key, app, model) series on every evaluation. Instead, two levels:

1. the spend rate per job, team and key alias, ``sum by (job, team, key_alias)
   (rate(...[budget_spend_window]))``, recorded in a group of its own evaluated
   every ``budget_spend_interval``: ``rate`` handles counter resets (a restarted
   proxy), and the sum comes after it, so replicas and workers add up;
2. the spend over each period (1d, 7d, 30d), the sum of those recorded rates over
   the period times the interval they were recorded at (one sample per team and
   key per interval), in the slow group: the integral of the rate, which is the
   increase, reading one recorded series per team or key instead of every raw one.

A budget is per job (one proxy deployment): replicas of a job share it. Remaining
budget is ``budget - spend``, clamped at 0, with a missing spend (a team that has
spent nothing) counted as 0 through ``or`` against the budget series, so a
configured budget always has a remainder and never reads ``+Inf``.
"""

from __future__ import annotations

from ccobs.budgets import PERIODS
from ccobs.catalog import ATTRIBUTED_COST, BUDGET
from ccobs.mixin.config import MixinConfig, duration_seconds
from ccobs.mixin.names import spend_rate_record, spend_record
from ccobs.mixin.promql import by, metric, quote
from ccobs.mixin.rule_types import RecordingRule

SCOPES: dict[str, str] = {"team": "team", "key": "key_alias"}
"""Budget scope -> the label naming who it is for."""


def spend_rate_rule(config: MixinConfig) -> RecordingRule:
    """USD per second per job, team and key alias: the one rule reading the raw counters."""
    cost = metric(config, config.metric(ATTRIBUTED_COST))
    return RecordingRule(
        spend_rate_record(config),
        f"sum by ({by(config, 'team', 'key_alias')}) (rate({cost}[{config.budget_spend_window}]))",
    )


def spend_period_rules(config: MixinConfig) -> tuple[RecordingRule, ...]:
    """Spend per team and per key over each budget period, labelled ``period``."""
    interval = duration_seconds(config.budget_spend_interval)
    rules = []
    for scope, label in SCOPES.items():
        for period in PERIODS:
            total = (
                f"sum by ({by(config, label)}) "
                f"(sum_over_time({spend_rate_record(config)}[{period}])) * {interval}"
            )
            rules.append(
                RecordingRule(
                    spend_record(config, scope),
                    f'label_replace(\n  {total},\n  "period", {quote(period)}, "", ""\n)',
                )
            )
    return tuple(rules)


def spend_rules(config: MixinConfig) -> tuple[RecordingRule, ...]:
    """Every spend rule: the rate (its own group), then the period sums (the slow group)."""
    return (spend_rate_rule(config), *spend_period_rules(config))


def spend_group_records(config: MixinConfig) -> frozenset[str]:
    """The records of the spend group, evaluated every ``budget_spend_interval``."""
    return frozenset({spend_rate_record(config)})


def spend_slow_records(config: MixinConfig) -> frozenset[str]:
    """The period sums: over a day or more, so in the slow group."""
    return frozenset(spend_record(config, scope) for scope in SCOPES)


def budget(config: MixinConfig, scope: str, *matchers: str) -> str:
    """The configured budgets of ``scope`` per job, who and period (replicas agree: max)."""
    label = SCOPES[scope]
    selected = metric(config, config.metric(BUDGET), f"scope={quote(scope)}", *matchers)
    return f"max by ({by(config, label, 'period')}) ({selected})"


def spend_or_zero(config: MixinConfig, scope: str) -> str:
    """Recorded spend of ``scope`` per budget, 0 for a budget that has spent nothing."""
    clause = by(config, SCOPES[scope], "period")
    return (
        f"(\n  {spend_record(config, scope)}\n  or on ({clause})\n  {budget(config, scope)} * 0\n)"
    )


def remaining(config: MixinConfig, scope: str) -> str:
    """USD left of each budget of ``scope``: budget minus spend, never below 0."""
    clause = by(config, SCOPES[scope], "period")
    return (
        f"clamp_min(\n  {budget(config, scope)}\n  - on ({clause})\n"
        f"  {spend_or_zero(config, scope)},\n  0\n)"
    )
