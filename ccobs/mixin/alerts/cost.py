"""Cost: spending, from the price table, above the configured hourly and daily budgets.

The budgets are for every job the selector picks together (a budget per job
lets two jobs just under it spend double silently). ``HourlyCostOverBudget``
warns above the hourly budget and pages above ``cost_critical_factor`` times
it (a runaway agent); ``DailyCostOverBudget`` warns when the last 24 hours
cost more than the daily budget, which catches a day of spend just under the
hourly budget.
"""

from __future__ import annotations

from ccobs.catalog import COST, REQUESTS, TOKENS
from ccobs.mixin.config import MixinConfig, duration_seconds
from ccobs.mixin.names import cost_rate_record, runbook_url
from ccobs.mixin.oracle.alert_state import ModelledAlert
from ccobs.mixin.oracle.evaluation import is_above, sum_rate
from ccobs.mixin.oracle.promtool import (
    Scenario,
    evaluation_step,
    firing_scenario,
    promtool_file,
    promtool_group,
    quiet_scenario,
    round_up,
    single_rule_family,
)
from ccobs.mixin.oracle.samples import SAMPLE_INSTANCES, SAMPLE_MODEL, sample_labels
from ccobs.mixin.oracle.series import Store, build_series
from ccobs.mixin.promql import as_threshold, by, metric, num, quote, sum_by
from ccobs.mixin.recording_rules import TOTAL_COST_TYPE
from ccobs.mixin.rule_types import AlertFamily, AlertRule
from ccobs.mixin.runbook import RunbookEntry


def _spending(config: MixinConfig, step: int, steps: int, per_hour: dict[str, float]) -> Store:
    """Cost counters of one instance, by cost type, growing at ``per_hour`` USD an hour."""
    job = sample_labels(config)
    series = []
    for cost_type, usd in per_hour.items():
        labels = {
            **job,
            "instance": SAMPLE_INSTANCES[0],
            "model": SAMPLE_MODEL,
            "cost_type": cost_type,
            "service_type": "anthropic",
        }
        series.append(
            build_series(config.metric(COST), labels, 0, [(usd * step / 3600, steps - 1)])
        )
    return Store(step, tuple(series))


def _crossing_spend(threshold: float, window: int, step: int) -> float:
    """A spend whose ramp from a standing start crosses ``threshold`` half-way between steps.

    The windowed rate ramps up linearly over the window; crossing between
    two evaluations, never on one, keeps float rounding from deciding.
    """
    crossing = (window // (2 * step) + 0.5) * step
    return threshold * window / crossing


def hourly_cost_over_budget(config: MixinConfig) -> AlertFamily:
    """``<prefix>HourlyCostOverBudget``: warning above the budget, critical far above it."""
    name = f"{config.alert_prefix}HourlyCostOverBudget"
    budget = as_threshold(config.hourly_cost_budget_usd)
    window = duration_seconds(config.cost_window)
    cost_name = config.metric(COST)

    def make(factor: float, severity: str) -> ModelledAlert:
        threshold = as_threshold(budget * factor)

        def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
            total = store.select(cost_name, cost_type=lambda v: v == TOTAL_COST_TYPE)
            rate = sum_rate(store, total, t, window)
            if rate is not None and is_above(rate * 3600, threshold):
                return [({}, rate * 3600)]
            return []

        times = "" if factor == 1 else f"{num(factor)} times "
        return ModelledAlert(
            AlertRule(
                name=name,
                expr=f"sum({cost_rate_record(config)}) * 3600 > {num(threshold)}",
                for_=config.cost_for,
                severity=severity,
                summary="Proxy spending is above the hourly budget.",
                description=(
                    "The proxy jobs spent at a rate of {{ $value | humanize }} USD per hour over "
                    f"the last {config.cost_window}, above {times}the budget of {num(budget)} USD "
                    "per hour."
                ),
                runbook_url=runbook_url(config, name),
                labels=(("budget", f"{num(factor)}x"),),
            ),
            model,
        )

    warning = make(1.0, "warning")
    critical = make(config.cost_critical_factor, "critical")
    alerts = (warning, critical)
    hold = duration_seconds(config.cost_for)
    step = evaluation_step([window], [hold])
    late = round_up(window + hold + 2 * step, step)
    steps = late // step + 1
    factor = config.cost_critical_factor
    warn_spend = _crossing_spend(budget, window, step)
    if warn_spend >= 0.99 * budget * factor:
        warn_spend = budget * (1 + factor) / 2
    runaway = _crossing_spend(as_threshold(budget * factor), window, step)
    scenarios: list[Scenario] = [
        firing_scenario(
            warning,
            alerts,
            _spending(config, step, steps, {TOTAL_COST_TYPE: warn_spend}),
            late,
            f"spending about {num(warn_spend / budget)} times the budget",
        ),
        firing_scenario(
            critical,
            alerts,
            _spending(config, step, steps, {TOTAL_COST_TYPE: runaway}),
            late,
            f"a runaway: spending about {num(runaway / budget)} times the budget",
        ),
        quiet_scenario(
            warning,
            alerts,
            _spending(config, step, steps, {TOTAL_COST_TYPE: 0.99 * budget, "input": 10 * budget}),
            late,
            "total spend at 0.99 times the budget (the input share alone, above it, is not added)",
        ),
    ]
    cost = metric(config, cost_name, f"cost_type={quote(TOTAL_COST_TYPE)}")
    runbook = RunbookEntry(
        meaning=(
            f"The proxy's traffic cost more than {num(budget)} USD per hour, averaged over "
            f"the last {config.cost_window} (`cost_type={quote(TOTAL_COST_TYPE)}`, from the "
            "price table), summed over every proxy job: a warning above the budget "
            f"(`budget=1x`), critical above {num(factor)} times it (`budget={num(factor)}x`, "
            "a runaway client)."
        ),
        impact=(
            f"Spend is above plan: left alone it costs {num(budget * 24)} USD or more per day."
        ),
        diagnose=(
            (
                f"sum by ({by(config)}, model) (rate({cost}[{config.cost_window}])) * 3600",
                "USD per hour by model.",
            ),
            (
                sum_by(
                    config, "job, type, model", "rate", config.metric(TOKENS), config.cost_window
                ),
                "Tokens per second by type and model: a surge of input or cache writes points "
                "at a client sending large contexts.",
            ),
            (
                sum_by(
                    config,
                    "job, endpoint, model",
                    "rate",
                    config.metric(REQUESTS),
                    config.cost_window,
                ),
                "Request rate by route and model: more traffic, or the same traffic costing more?",
            ),
        ),
        mitigate=(
            "Find the client behind the spend in the access log or request logs and check it "
            "is expected (a loop or a runaway agent is the usual cause).",
            "Route that traffic to a cheaper model, or rate-limit it at the proxy.",
            "If the spend is expected, raise `hourly_cost_budget_usd` and rebuild the rules.",
        ),
    )
    groups = [promtool_group(name, alerts, scenario) for scenario in scenarios]
    file = promtool_file(config, step, groups)
    return AlertFamily(
        name,
        tuple(a.rule for a in alerts),
        runbook,
        (("hourly_cost_over_budget_test.yaml", file),),
    )


def daily_cost_over_budget(config: MixinConfig) -> AlertFamily:
    """``<prefix>DailyCostOverBudget``: the last 24 hours cost more than the daily budget."""
    name = f"{config.alert_prefix}DailyCostOverBudget"
    budget = as_threshold(config.daily_cost_budget_usd)
    window = 86400
    cost_name = config.metric(COST)
    total = metric(config, cost_name, f"cost_type={quote(TOTAL_COST_TYPE)}")

    def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        series = store.select(cost_name, cost_type=lambda v: v == TOTAL_COST_TYPE)
        spent = sum_rate(store, series, t, window, is_rate=False)
        return [({}, spent)] if spent is not None and is_above(spent, budget) else []

    alert = ModelledAlert(
        AlertRule(
            name=name,
            expr=f"sum(increase({total}[1d])) > {num(budget)}",
            for_=config.daily_cost_for,
            severity="warning",
            summary="Proxy spending over the last day is above the daily budget.",
            description=(
                "The proxy jobs spent {{ $value | humanize }} USD over the last 24 hours, above "
                f"the daily budget of {num(budget)} USD."
            ),
            runbook_url=runbook_url(config, name),
        ),
        model,
    )
    hold = duration_seconds(config.daily_cost_for)
    step = evaluation_step([window], [hold])
    late = round_up(window + hold + 2 * step, step)
    steps = late // step + 1
    # Per hour: the daily budget's crossing spend spread over 24 hours.
    firing = _crossing_spend(budget, window, step) / 24
    scenarios = [
        firing_scenario(
            alert,
            [alert],
            _spending(config, step, steps, {TOTAL_COST_TYPE: firing}),
            late,
            f"spending {num(firing)} USD an hour, all day",
        ),
        quiet_scenario(
            alert,
            [alert],
            _spending(config, step, steps, {TOTAL_COST_TYPE: 0.99 * budget / 24}),
            late,
            "spending 0.99 times the daily budget over 24 hours",
        ),
    ]
    runbook = RunbookEntry(
        meaning=(
            f"The proxy jobs together spent more than {num(budget)} USD over the last 24 hours "
            "(from the price table). Spend just under the hourly budget all day long never "
            "trips the hourly alert; this one catches it."
        ),
        impact=(
            "The day's spend is above plan; a month at this rate costs about "
            f"{num(budget * 30)} USD or more."
        ),
        diagnose=(
            (
                f"sum by ({by(config)}, model) (increase({total}[1d]))",
                "USD over the last day by job and model.",
            ),
            (
                f"sum by ({by(config)}) (increase({total}[1h]))",
                "USD in the last hour per job: is it still going on?",
            ),
        ),
        mitigate=(
            "Find the clients behind the spend in the access log and check it is expected.",
            "If it is expected, raise `daily_cost_budget_usd` and rebuild the rules.",
        ),
    )
    return single_rule_family(
        config, alert, runbook, "daily_cost_over_budget_test.yaml", step, scenarios
    )
