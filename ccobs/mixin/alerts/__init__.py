"""Every alert, one module per alert area, registered in ``ALERT_FAMILIES`` in file order.

An area module holds its alerts' rules, runbook entries and promtool
scenarios; adding an alert means writing one function returning an
``AlertFamily`` (see ``latency.py`` for the smallest) and adding it below
(a new area module is also one line of the import list).
"""

from __future__ import annotations

from collections.abc import Callable

from ccobs.mixin.alerts import (
    answers,
    availability,
    budget,
    cost,
    data_quality,
    error_budget,
    latency,
    push,
    rate_limit,
    rate_limit_headroom,
    upstream_auth,
)
from ccobs.mixin.config import MixinConfig, duration_seconds
from ccobs.mixin.rule_types import AlertFamily, AlertRule

ALERT_FAMILIES: tuple[Callable[[MixinConfig], AlertFamily], ...] = (
    error_budget.error_budget_burn,
    latency.ttft_high,
    latency.p99_latency_high,
    availability.down,
    availability.absent,
    push.push_stale,
    push.push_failing,
    cost.hourly_cost_over_budget,
    cost.daily_cost_over_budget,
    rate_limit.upstream_rate_limited,
    rate_limit_headroom.rate_limit_headroom_low,
    rate_limit_headroom.subscription_window_nearly_used,
    upstream_auth.upstream_auth_errors,
    data_quality.unpriced_requests,
    data_quality.label_overflow,
    data_quality.access_log_dropped,
    budget.budget_exhausted,
    budget.budget_burn_rate,
    answers.truncated_answers_high,
)
"""The alert families in the order ``alerts.yaml`` and the runbook list them."""


def alert_families(config: MixinConfig) -> tuple[AlertFamily, ...]:
    """Every alert family for ``config``, after checking the burn-rate windows make sense."""
    keys = [(b.long, b.short) for b in config.burn_rate_windows]
    if len(set(keys)) != len(keys):
        raise ValueError("burn_rate_windows repeat a (long, short) pair")
    for burn in config.burn_rate_windows:
        if duration_seconds(burn.long) <= duration_seconds(burn.short):
            raise ValueError(f"burn-rate window {burn.long} must be longer than {burn.short}")
    return tuple(family(config) for family in ALERT_FAMILIES)


def alert_rules(config: MixinConfig) -> tuple[AlertRule, ...]:
    """Every alerting rule, in file order."""
    return tuple(rule for family in alert_families(config) for rule in family.rules)
