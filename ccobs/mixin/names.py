"""The names the rules give things: recorded series, rule groups, runbook links.

Record names follow the ``level:metric:operations`` convention; alerts and
dashboards read the recorded series by these names, so they are built in
one place.
"""

from __future__ import annotations

from ccobs.mixin.config import MixinConfig, duration_seconds
from ccobs.mixin.runbook import github_anchor


def _base(config: MixinConfig, suffix: str) -> str:
    return f"{config.namespace}_{suffix}"


def requests_rate_record(config: MixinConfig) -> str:
    """Requests per second per job over the latency window (the dashboards' traffic rate)."""
    return f"job:{_base(config, 'requests')}:rate{config.latency_window}"


def error_ratio_record(config: MixinConfig, window: str) -> str:
    """Share of requests per job that failed, counting only errors that spend the budget."""
    return f"job:{_base(config, 'errors_per_request')}:ratio_rate{window}"


def requests_increase_record(config: MixinConfig, window: str) -> str:
    """Requests per job over ``window`` (the burn-rate pairs' traffic guard)."""
    return f"job:{_base(config, 'requests')}:increase{window}"


def rate_limited_ratio_record(config: MixinConfig) -> str:
    """Share of requests per job the upstream answered with 429."""
    return f"job:{_base(config, 'rate_limited_per_request')}:ratio_rate{config.rate_limited_window}"


def cost_rate_record(config: MixinConfig) -> str:
    """US dollars per second per job, averaged over the cost window."""
    return f"job:{_base(config, 'cost_usd')}:rate{config.cost_window}"


def latency_p99_record(config: MixinConfig) -> str:
    """p99 response time per job over the latency window."""
    return f"job:{_base(config, 'response_duration_seconds')}:p99_rate{config.latency_window}"


def error_ratio_windows(config: MixinConfig) -> tuple[str, ...]:
    """Every window the burn-rate alerts read, plus the latency window (for dashboards)."""
    windows = {config.latency_window}
    for burn in config.burn_rate_windows:
        windows.update((burn.long, burn.short))
    return tuple(sorted(windows, key=duration_seconds))


def recording_group(config: MixinConfig) -> str:
    """The rule group of ``recording_rules.yaml``."""
    return f"{config.namespace}-recording-rules"


def slow_recording_group(config: MixinConfig) -> str:
    """The rule group of the recording rules over long windows, evaluated less often."""
    return f"{config.namespace}-recording-rules-slow"


def is_slow_window(config: MixinConfig, window: str) -> bool:
    """Whether a rule over ``window`` belongs in the slow group."""
    return duration_seconds(window) >= duration_seconds(config.slow_rules_min_window)


def burn_long_windows(config: MixinConfig) -> tuple[str, ...]:
    """The distinct long windows of the burn-rate pairs, shortest first."""
    windows = {burn.long for burn in config.burn_rate_windows}
    return tuple(sorted(windows, key=duration_seconds))


def alert_group(config: MixinConfig) -> str:
    """The rule group of ``alerts.yaml``."""
    return f"{config.namespace}-alerts"


def runbook_url(config: MixinConfig, name: str) -> str:
    """The link to an alert's runbook section (its heading is the alert name)."""
    return f"{config.runbook_url}#{github_anchor(name)}"


def spend_rate_record(config: MixinConfig) -> str:
    """US dollars per second per job, team and key alias (attributed cost), for the budgets."""
    return f"job_team_key:{_base(config, 'attributed_cost_usd')}:rate{config.budget_spend_window}"


def spend_record(config: MixinConfig, scope: str) -> str:
    """Spend per job and team (``scope="team"``) or key alias over each budget period."""
    level = "job_team" if scope == "team" else "job_key"
    return f"{level}:{_base(config, 'attributed_cost_usd')}:increase_period"


def spend_recording_group(config: MixinConfig) -> str:
    """The rule group of the spend rate, evaluated at ``budget_spend_interval``."""
    return f"{config.namespace}-spend-rules"
