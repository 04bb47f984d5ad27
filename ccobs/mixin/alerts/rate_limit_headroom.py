"""RateLimitHeadroomLow and SubscriptionWindowNearlyUsed: the upstream's limits, before the 429s.

Both read the gauges the proxy sets from the upstream's rate-limit headers
(``ccobs.rate_limits``): what the last answer said is left of each limit, and
how much of each Claude subscription window is used. A gauge keeps its last
value while no answer refreshes it, so a reading counts only until the reset
it stated (``reset_timestamp > time()``): a key that ran low and then went
quiet has a full window again by now, and must not page for ever.

Tested with a limit held at half the threshold share (fires, after ``for``),
just above it (quiet), and a low reading whose reset has passed (quiet); the
subscription alert likewise with its utilization.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ccobs.catalog import (
    RATE_LIMIT_LIMIT,
    RATE_LIMIT_REMAINING,
    RATE_LIMIT_RESET,
    SUBSCRIPTION_RESET,
    SUBSCRIPTION_STATUS,
    SUBSCRIPTION_UTILIZATION,
)
from ccobs.mixin.config import MixinConfig, duration_seconds
from ccobs.mixin.names import runbook_url
from ccobs.mixin.oracle.alert_state import ModelledAlert
from ccobs.mixin.oracle.evaluation import is_above
from ccobs.mixin.oracle.promtool import (
    evaluation_step,
    firing_scenario,
    quiet_scenario,
    round_up,
    single_rule_family,
)
from ccobs.mixin.oracle.samples import SAMPLE_INSTANCES, sample_labels
from ccobs.mixin.oracle.series import Series, Store, gauge_series
from ccobs.mixin.promql import as_threshold, by, metric, num
from ccobs.mixin.rule_types import AlertFamily, AlertRule
from ccobs.mixin.runbook import RunbookEntry

FAR_RESET = 4_000_000_000.0
"""A reset time (Unix seconds) far after any test's clock: the reading is current."""
PAST_RESET = 0.0
"""A reset time at the test's start: the reading is stale from the first evaluation."""


def _current_readings(
    store: Store,
    t: int,
    value_name: str,
    reset_name: str,
    keep: tuple[str, ...],
    value_of: Callable[[Series, Store, int], float | None],
) -> dict[tuple[tuple[str, str], ...], list[float]]:
    """Per kept label set, the values of series whose reset (same labels) is after ``t``."""
    resets = {s.labels: s for s in store.select(reset_name)}
    groups: dict[tuple[tuple[str, str], ...], list[float]] = {}
    for series in store.select(value_name):
        reset = resets.get(series.labels)
        reset_at = None if reset is None else store.instant(reset, t)
        value = value_of(series, store, t)
        if reset_at is None or value is None or not reset_at > t:
            continue
        labels = series.label_dict
        key = tuple((label, labels[label]) for label in keep)
        groups.setdefault(key, []).append(value)
    return groups


def rate_limit_headroom_low(config: MixinConfig) -> AlertFamily:
    """``<prefix>RateLimitHeadroomLow``: remaining / limit under a share, for a while."""
    name = f"{config.alert_prefix}RateLimitHeadroomLow"
    job = sample_labels(config)
    threshold = as_threshold(config.rate_limit_headroom_ratio)
    remaining_name = config.metric(RATE_LIMIT_REMAINING)
    limit_name = config.metric(RATE_LIMIT_LIMIT)
    reset_name = config.metric(RATE_LIMIT_RESET)
    keep = (*config.aggregation_labels, "api", "limit", "key_alias")
    keep = tuple(dict.fromkeys(keep))

    def share(series: Series, store: Store, t: int) -> float | None:
        limits = [s for s in store.select(limit_name) if s.labels == series.labels]
        remaining = store.instant(series, t)
        limit = store.instant(limits[0], t) if limits else None
        if remaining is None or not limit:
            return None
        return remaining / limit

    def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        groups = _current_readings(store, t, remaining_name, reset_name, keep, share)
        return [
            (dict(key), min(values))
            for key, values in groups.items()
            if is_above(-min(values), -threshold)
        ]

    alert = ModelledAlert(
        AlertRule(
            name=name,
            expr=(
                f"min by ({by(config, 'api', 'limit', 'key_alias')}) (\n"
                f"  ({metric(config, remaining_name)} / {metric(config, limit_name)})\n"
                f"  and ({metric(config, reset_name)} > time())\n"
                f") < {num(threshold)}"
            ),
            for_=config.rate_limit_headroom_for,
            severity="warning",
            summary="An upstream rate limit is nearly used up.",
            description=(
                "The upstream says {{ $value | humanizePercentage }} is left of the "
                "{{ $labels.limit }} limit of key {{ $labels.key_alias }} on "
                "{{ $labels.api }} ({{ $labels.job }}), under the "
                f"{num(threshold * 100)}% warned at; 429s follow when it runs out."
            ),
            runbook_url=runbook_url(config, name),
        ),
        model,
    )
    hold = duration_seconds(config.rate_limit_headroom_for)
    step = evaluation_step([], [hold])
    late = round_up(hold + 3 * step, step)
    steps = late // step + 1
    labels = {
        **job,
        "instance": SAMPLE_INSTANCES[0],
        "api": "anthropic",
        "limit": "output_tokens",
        "key_alias": "team-a",
    }
    limit = 80_000.0

    def reading(remaining_share: float, reset_at: float) -> Store:
        return Store(
            step,
            (
                gauge_series(remaining_name, labels, [(remaining_share * limit, steps)]),
                gauge_series(limit_name, labels, [(limit, steps)]),
                gauge_series(reset_name, labels, [(reset_at, steps)]),
            ),
        )

    scenarios = [
        firing_scenario(
            alert,
            [alert],
            reading(threshold / 2, FAR_RESET),
            late,
            "half the threshold share of the limit left",
        ),
        quiet_scenario(
            alert,
            [alert],
            reading(threshold * 1.01, FAR_RESET),
            late,
            "1.01 times the threshold share of the limit left",
        ),
        quiet_scenario(
            alert,
            [alert],
            reading(threshold / 2, PAST_RESET),
            late,
            "a low reading whose window has reset since (no answer came after it)",
        ),
    ]
    headroom = (
        f"({metric(config, remaining_name)} / {metric(config, limit_name)})"
        f" and ({metric(config, reset_name)} > time())"
    )
    runbook = RunbookEntry(
        meaning=(
            f"For {config.rate_limit_headroom_for}, the upstream's rate-limit headers said "
            f"less than {num(threshold * 100)}% of a limit was left (requests, tokens, input "
            "or output tokens per minute, per key): the traffic of that key runs at the limit, "
            "and requests will soon be refused with 429."
        ),
        impact=(
            "Nothing yet: requests still succeed. Once the limit is spent, the upstream answers "
            "429 until it resets; clients retry and stall (see UpstreamRateLimited)."
        ),
        diagnose=(
            (headroom, "Share of each limit left, per key alias, while its window runs."),
            (
                f"{metric(config, reset_name)} - time()",
                "Seconds until each limit resets.",
            ),
            (
                metric(config, limit_name),
                "The limits themselves: a key on a lower tier than expected shows here.",
            ),
        ),
        mitigate=(
            "Find what drives the traffic of that key (dashboards: requests and tokens by "
            "model); a runaway agent or a load test left running is the usual cause.",
            "Spread the load over more keys or models, or smooth bursts in front of the proxy.",
            "Ask the provider for a higher rate-limit tier if the load is legitimate.",
        ),
    )
    return single_rule_family(
        config, alert, runbook, "rate_limit_headroom_low_test.yaml", step, scenarios
    )


def subscription_window_nearly_used(config: MixinConfig) -> AlertFamily:
    """``<prefix>SubscriptionWindowNearlyUsed``: a Claude subscription window almost spent."""
    name = f"{config.alert_prefix}SubscriptionWindowNearlyUsed"
    job = sample_labels(config)
    threshold = as_threshold(config.subscription_utilization_ratio)
    utilization_name = config.metric(SUBSCRIPTION_UTILIZATION)
    reset_name = config.metric(SUBSCRIPTION_RESET)
    keep = tuple(dict.fromkeys((*config.aggregation_labels, "window", "key_alias")))

    def value(series: Series, store: Store, t: int) -> float | None:
        return store.instant(series, t)

    def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        groups = _current_readings(store, t, utilization_name, reset_name, keep, value)
        return [
            (dict(key), max(values))
            for key, values in groups.items()
            if is_above(max(values), threshold)
        ]

    alert = ModelledAlert(
        AlertRule(
            name=name,
            expr=(
                f"max by ({by(config, 'window', 'key_alias')}) (\n"
                f"  {metric(config, utilization_name)}\n"
                f"  and ({metric(config, reset_name)} > time())\n"
                f") > {num(threshold)}"
            ),
            for_=config.subscription_utilization_for,
            severity="warning",
            summary="A Claude subscription usage window is nearly used up.",
            description=(
                "{{ $value | humanizePercentage }} of the {{ $labels.window }} usage window of "
                "key {{ $labels.key_alias }} ({{ $labels.job }}) is used, above the "
                f"{num(threshold * 100)}% warned at; the subscription refuses requests "
                "once it is spent, until the window resets."
            ),
            runbook_url=runbook_url(config, name),
        ),
        model,
    )
    hold = duration_seconds(config.subscription_utilization_for)
    step = evaluation_step([], [hold])
    late = round_up(hold + 3 * step, step)
    steps = late // step + 1
    labels: Mapping[str, str] = {
        **job,
        "instance": SAMPLE_INSTANCES[0],
        "window": "5h",
        "key_alias": "team-a",
    }

    def reading(utilization: float, reset_at: float) -> Store:
        return Store(
            step,
            (
                gauge_series(utilization_name, labels, [(utilization, steps)]),
                gauge_series(reset_name, labels, [(reset_at, steps)]),
            ),
        )

    between = threshold + (1 - threshold) / 2
    scenarios = [
        firing_scenario(
            alert,
            [alert],
            reading(between, FAR_RESET),
            late,
            "the window used halfway between the threshold and 100%",
        ),
        quiet_scenario(
            alert,
            [alert],
            reading(threshold * 0.99, FAR_RESET),
            late,
            "0.99 times the threshold used",
        ),
        quiet_scenario(
            alert,
            [alert],
            reading(1.0, PAST_RESET),
            late,
            "a spent window that has reset since (no answer came after it)",
        ),
    ]
    runbook = RunbookEntry(
        meaning=(
            f"For {config.subscription_utilization_for}, the unified rate-limit headers of "
            "Claude subscription (OAuth) traffic said more than "
            f"{num(threshold * 100)}% of a usage window (5h, 7d...) was used by that key."
        ),
        impact=(
            "Once the window is spent the subscription answers 429 (status `rejected`) until "
            "it resets, hours or days later: Claude Code stops for everyone sharing the account."
        ),
        diagnose=(
            (
                f"{metric(config, utilization_name)} and ({metric(config, reset_name)} > time())",
                "Share used of each window, per key alias, while the window runs.",
            ),
            (
                f"{metric(config, reset_name)} - time()",
                "Seconds until each window resets.",
            ),
            (
                metric(config, config.metric(SUBSCRIPTION_STATUS)),
                "The subscription's status (allowed, allowed_warning, rejected) per key alias.",
            ),
        ),
        mitigate=(
            "Tell the people sharing the account; move long agent runs to an API key, or wait "
            "for the reset.",
            "Check for a runaway session (access log: requests by key alias and session).",
            "Consider a larger plan if the window runs out routinely.",
        ),
    )
    return single_rule_family(
        config, alert, runbook, "subscription_window_nearly_used_test.yaml", step, scenarios
    )
