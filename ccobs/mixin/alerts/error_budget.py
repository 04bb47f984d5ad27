"""ErrorBudgetBurn: multi-window, multi-burn-rate alerts on the availability SLO.

One alert name, one rule per ``BurnRateWindow`` (severity and windows as
labels), one promtool test file per pair. Each pair is tested firing on a
burn above its threshold, quiet just under it (plus excluded error types,
which must not count), resolving through its short window once the
errors stop while the long window still burns, and quiet at low traffic
(a few requests an hour with one failure) where the pair would page without
its minimum-traffic guard (``MixinConfig.burn_rate_min_requests``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ccobs.catalog import (
    ERRORS,
    REQUESTS,
    upstream_event_error_type,
    upstream_status_error_type,
)
from ccobs.mixin.config import BurnRateWindow, MixinConfig, duration_seconds
from ccobs.mixin.names import error_ratio_record, requests_increase_record, runbook_url
from ccobs.mixin.oracle.alert_state import ModelledAlert, alert_states
from ccobs.mixin.oracle.evaluation import (
    AmbiguousTestError,
    is_above,
    job_ratio,
    satisfies,
    sum_rate,
)
from ccobs.mixin.oracle.promtool import (
    Scenario,
    clear_multiple,
    evaluation_step,
    firing_scenario,
    first_firing,
    promtool_file,
    promtool_group,
    quiet_scenario,
    round_up,
)
from ccobs.mixin.oracle.samples import (
    counted_error_type,
    errors_series,
    excluded_error_type,
    job_only,
    requests_series,
    sample_labels,
)
from ccobs.mixin.oracle.series import Store
from ccobs.mixin.promql import as_threshold, by, metric, num, sum_by
from ccobs.mixin.recording_rules import counted_errors
from ccobs.mixin.rule_types import AlertFamily, AlertRule
from ccobs.mixin.runbook import RunbookEntry

LOW_TRAFFIC_PER_HOUR = (2.0, 6.0)
"""Requests an hour of the low-traffic scenarios (a small team's proxy at night)."""


def _per_step(config: MixinConfig) -> float:
    """Requests per step of the burn scenarios: past the traffic guard from the first step on.

    A counter starting at 0 shows an increase of exactly one step's requests
    at the first evaluation; twice the guard keeps that clear of it.
    """
    return max(100.0, 100.0 * -(-2 * config.burn_rate_min_requests // 100))


def _guard(config: MixinConfig, window: str) -> str:
    """More requests than the minimum in ``window`` (recorded): the pair may page."""
    return f"{requests_increase_record(config, window)} > {num(config.burn_rate_min_requests)}"


def _low_traffic_scenarios(
    config: MixinConfig,
    burn: BurnRateWindow,
    unguarded: ModelledAlert,
    alerts: Sequence[ModelledAlert],
    step: int,
) -> list[Scenario]:
    """One upstream 529 among a few requests an hour: no pair pages.

    Included for the rates at which the pair without its traffic guard (the
    rules before the guard existed) would fire, checked at the times it would
    have been firing: so each of these tests fails on unguarded rules.
    """
    long_s, short_s = duration_seconds(burn.long), duration_seconds(burn.short)
    hold = duration_seconds(burn.for_)
    job = sample_labels(config)
    error_type = upstream_status_error_type(529)
    if satisfies(error_type, "=~", config.error_ratio_excluded):
        error_type = counted_error_type(config)
    error_at = round_up(long_s, step)
    horizon = error_at + round_up(short_s + hold, step) + 2 * step
    steps = horizon // step + 1
    scenarios = []
    for per_hour in LOW_TRAFFIC_PER_HOUR:
        segments = [(0.0, error_at // step), (1.0, 1), (0.0, steps - 1 - error_at // step - 1)]
        store = Store(
            step,
            (
                requests_series(config, job, per_hour * step / 3600, steps),
                errors_series(config, job, error_type, segments),
            ),
        )
        unguarded_states = alert_states([unguarded], store, horizon)
        would_fire = [t for t in sorted(unguarded_states) if any(s[3] for s in unguarded_states[t])]
        if not would_fire:
            continue
        states = alert_states(alerts, store, horizon)
        if any(states[t] for t in states):
            raise ValueError(
                f"{burn.long}/{burn.short}: one error at {num(per_hour)} requests an hour pages"
            )
        scenarios.append(
            Scenario(
                f"{num(per_hour)} requests an hour and one {error_type} error: below the "
                f"{num(config.burn_rate_min_requests)}-request guard, never pages (the "
                f"{burn.long}/{burn.short} pair would without it)",
                store,
                tuple(would_fire),
            )
        )
    return scenarios


def _recovery_scenario(
    config: MixinConfig,
    burn: BurnRateWindow,
    alert: ModelledAlert,
    alerts: Sequence[ModelledAlert],
    step: int,
    burn_end: int,
    end: int,
) -> Scenario:
    """Errors until ``burn_end``, none after: fired by then, resolved at ``end``.

    The error ratio is chosen so the long window still sees more than the
    threshold at ``end``; a candidate whose ratios land on some pair's
    threshold on the way (a float tie) is skipped for the next.
    """
    name = alert.rule.name
    threshold = as_threshold(burn.factor * config.error_budget)
    long_s = duration_seconds(burn.long)
    job = sample_labels(config)
    counted = counted_error_type(config)
    per_step = _per_step(config)
    minimum = max(2.0, 2 * min(end, long_s) / (burn_end - max(0, end - long_s)))
    for multiple in (minimum, 1.1 * minimum, 1.25 * minimum, 1.5 * minimum):
        segments = [(multiple * threshold * per_step, burn_end // step)]
        segments.append((0.0, (end - burn_end) // step))
        store = Store(
            step,
            (
                requests_series(config, job, per_step, end // step + 1),
                errors_series(config, job, counted, segments),
            ),
        )
        try:
            fired = first_firing(alert, alerts, store, burn_end)
            final = alert_states(alerts, store, end)[end]
            long_ratio = job_ratio(
                store,
                store.select(config.metric(ERRORS)),
                store.select(config.metric(REQUESTS)),
                end,
                long_s,
            )
            still_burning = is_above(long_ratio, threshold)
        except AmbiguousTestError:
            continue
        if any(a is alert for a, *_ in final) or not still_burning:
            raise ValueError(f"{name} {burn.long}/{burn.short}: recovery scenario is invalid")
        return Scenario(
            f"errors at {num(multiple)} times the threshold stop after the alert fired: the "
            f"{burn.short} window resolves it while the {burn.long} window still burns",
            store,
            (fired, end),
        )
    raise AmbiguousTestError(f"{name} {burn.long}/{burn.short}: no unambiguous recovery")


def _burn_rate_tests(
    config: MixinConfig,
    burn: BurnRateWindow,
    alert: ModelledAlert,
    unguarded: ModelledAlert,
    alerts: Sequence[ModelledAlert],
) -> dict[str, Any]:
    """The test file of one burn-rate pair; every pair's rule is in the expectations.

    The pairs share one alert name and one input, so a scenario for this pair
    may also fire another (a heavy burn trips every threshold eventually);
    the expectations list whatever the oracle says fires.
    """
    budget = config.error_budget
    threshold = as_threshold(burn.factor * budget)
    others = [as_threshold(b.factor * budget) for b in config.burn_rate_windows]
    long_s, short_s = duration_seconds(burn.long), duration_seconds(burn.short)
    hold = duration_seconds(burn.for_)
    step = evaluation_step([long_s, short_s], [hold])
    # With a constant error ratio from the start, both windows see it from
    # the first step on: the alert fires one step plus `for` after the start.
    fires = step + round_up(hold, step)
    late = fires + step
    job = sample_labels(config)
    counted, excluded = counted_error_type(config), excluded_error_type(config)
    per_step = _per_step(config)

    def store(errors: Sequence[tuple[str, Sequence[tuple[float, int]]]], steps: int) -> Store:
        series = [errors_series(config, job, kind, segments) for kind, segments in errors]
        return Store(step, (requests_series(config, job, per_step, steps), *series))

    above = clear_multiple(threshold, others, (2.0, 1.8, 2.2, 1.6, 2.5, 3.0))
    under = clear_multiple(threshold, others, (0.99, 0.98, 0.97, 0.95))
    steps = late // step + 1
    scenarios = [
        firing_scenario(
            alert,
            alerts,
            store([(counted, [(above * threshold * per_step, steps - 1)])], steps),
            late,
            f"errors at {num(above)} times the {burn.long}/{burn.short} burn threshold",
        )
    ]
    quiet = [(counted, [(under * threshold * per_step, steps - 1)])]
    if excluded is not None:
        # Errors the SLO ignores, at half the traffic: they must not count.
        quiet.append((excluded, [(per_step / 2, steps - 1)]))
    event = upstream_event_error_type("invalid_request_error")
    if satisfies(event, "=~", config.error_ratio_excluded):
        # A stream ended by a client-error event counts as its status (400) does.
        quiet.append((event, [(per_step / 2, steps - 1)]))
    scenarios.append(
        quiet_scenario(
            alert,
            alerts,
            store(quiet, steps),
            late,
            f"errors at {num(under)} times the burn threshold, plus excluded error types",
        )
    )
    # The multi-window point: once the errors stop, the short window clears
    # the alert within about its length, although the long one still burns.
    burn_end = fires
    end = burn_end + round_up(short_s + step, step)
    burning_in_long = burn_end - max(0, end - long_s)
    if burning_in_long > 0:
        scenarios.append(_recovery_scenario(config, burn, alert, alerts, step, burn_end, end))
    scenarios += _low_traffic_scenarios(config, burn, unguarded, alerts, step)
    return promtool_file(
        config, step, [promtool_group(alert.rule.name, alerts, s) for s in scenarios]
    )


def error_budget_burn(config: MixinConfig) -> AlertFamily:
    """``<prefix>ErrorBudgetBurn``: one rule per burn-rate window pair."""
    name = f"{config.alert_prefix}ErrorBudgetBurn"
    budget = config.error_budget
    slo_pct, budget_pct = num(config.error_ratio_slo * 100), num(budget * 100)
    job = sample_labels(config)
    requests_name = config.metric(REQUESTS)
    errors_name = config.metric(ERRORS)

    def make(burn: BurnRateWindow, guarded: bool = True) -> ModelledAlert:
        """The pair's rule; ``guarded=False`` drops the traffic guard (only to prove the tests)."""
        threshold = as_threshold(burn.factor * budget)
        long_s, short_s = duration_seconds(burn.long), duration_seconds(burn.short)

        def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
            requests = store.select(requests_name)
            errors = store.select(
                errors_name,
                error_type=lambda v: not satisfies(v, "=~", config.error_ratio_excluded),
            )
            long_ratio = job_ratio(store, errors, requests, t, long_s)
            short_ratio = job_ratio(store, errors, requests, t, short_s)
            if not (is_above(long_ratio, threshold) and is_above(short_ratio, threshold)):
                return []
            if guarded:
                seen = sum_rate(store, requests, t, long_s, is_rate=False)
                if not is_above(seen, config.burn_rate_min_requests):
                    return []
            assert long_ratio is not None
            return [(job_only(config, job), long_ratio)]

        expr = (
            f"{error_ratio_record(config, burn.long)} > {num(threshold)}\n"
            f"and\n{error_ratio_record(config, burn.short)} > {num(threshold)}"
        )
        if guarded:
            # `on (aggregation labels)`: only they identify a pair's series (a recorded
            # series read back from remote storage may carry external labels).
            expr += f"\nand on ({by(config)})\n{_guard(config, burn.long)}"

        rule = AlertRule(
            name=name,
            expr=expr,
            for_=burn.for_,
            severity=burn.severity,
            summary="The proxy is spending its error budget too fast.",
            description=(
                "{{ $labels.job }} failed {{ $value | humanizePercentage }} of its requests "
                f"over the last {burn.long}, and more than {num(threshold * 100)}% over the "
                f"last {burn.short} too: a burn rate above {num(burn.factor)} for the "
                f"{budget_pct}% error budget of the {slo_pct}% availability objective."
            ),
            runbook_url=runbook_url(config, name),
            labels=(("long_window", burn.long), ("short_window", burn.short)),
        )
        return ModelledAlert(rule, model)

    alerts = tuple(make(burn) for burn in config.burn_rate_windows)
    files = tuple(
        (
            f"error_budget_burn_{burn.long}_{burn.short}_test.yaml",
            _burn_rate_tests(config, burn, alert, make(burn, guarded=False), alerts),
        )
        for burn, alert in zip(config.burn_rate_windows, alerts, strict=True)
    )

    errors_by_type = sum_by(config, "error_type", "rate", errors_name, config.latency_window)
    runbook = RunbookEntry(
        meaning=(
            f"Requests are failing fast enough to spend the error budget of the "
            f"{slo_pct}% availability objective early. Errors of types matching "
            f"`{config.error_ratio_excluded}` (the client's own mistakes) do not count. "
            "Each severity pairs a long window (is the budget really being spent?) with a "
            "short one (is it still being spent right now?), so the alert fires quickly on a "
            "heavy burn, catches a slow one, and resolves soon after the errors stop. The "
            "`long_window` and `short_window` labels say which pair fired. A pair pages only "
            f"once its long window has seen more than {num(config.burn_rate_min_requests)} "
            "requests (`burn_rate_min_requests`): at a few requests an hour one routine "
            "upstream failure would otherwise look like a burn; the slower pairs, whose "
            "windows hold more requests, still catch a sustained failure at low traffic."
        ),
        impact=(
            "Users see failed API calls (5xx, timeouts, broken streams). A critical burn "
            "exhausts a 30-day budget within days; a warning one within weeks."
        ),
        diagnose=(
            (
                error_ratio_record(config, config.latency_window),
                "The current error ratio per job (recorded).",
            ),
            (
                errors_by_type,
                "Which error types are failing: `upstream_5xx`, `overloaded`, "
                "`upstream_timeout` point at the upstream; exception names at the proxy.",
            ),
            (
                f"topk(10, sum by ({by(config)}, endpoint, model) (rate({counted_errors(config)}"
                f"[{config.latency_window}])))",
                "Which routes and models fail.",
            ),
            (
                f"sum by ({by(config)}, status) (rate({metric(config, requests_name)}"
                f"[{config.latency_window}]))",
                "Response statuses the proxy returned.",
            ),
        ),
        mitigate=(
            "If the errors come from the upstream (`upstream_*`, `overloaded`), check the "
            "provider's status page; reduce concurrency or fail over to another region, "
            "model or key.",
            "If they started with a deploy of the proxy, roll it back.",
            "Read the proxy's JSON logs for the failing `request_id`s (`upstream_failed` "
            "events carry the error type and detail).",
            "Once mitigated, the short window clears the alert within "
            f"{min((b.short for b in config.burn_rate_windows), key=duration_seconds)}.",
        ),
    )
    return AlertFamily(name, tuple(alert.rule for alert in alerts), runbook, files)
