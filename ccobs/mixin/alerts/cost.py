"""HourlyCostOverBudget: spending, from the price table, above the configured hourly budget."""

from __future__ import annotations

from ccobs.catalog import COST, REQUESTS, TOKENS
from ccobs.mixin.config import MixinConfig, duration_seconds
from ccobs.mixin.names import cost_rate_record, runbook_url
from ccobs.mixin.oracle.alert_state import ModelledAlert
from ccobs.mixin.oracle.evaluation import is_above, sum_rate
from ccobs.mixin.oracle.promtool import (
    evaluation_step,
    firing_scenario,
    quiet_scenario,
    round_up,
    single_rule_family,
)
from ccobs.mixin.oracle.samples import SAMPLE_INSTANCES, SAMPLE_MODEL, job_only, sample_labels
from ccobs.mixin.oracle.series import Store, build_series
from ccobs.mixin.promql import as_threshold, metric, num, quote, sum_by
from ccobs.mixin.recording_rules import TOTAL_COST_TYPE
from ccobs.mixin.rule_types import AlertFamily, AlertRule
from ccobs.mixin.runbook import RunbookEntry


def hourly_cost_over_budget(config: MixinConfig) -> AlertFamily:
    """``<prefix>HourlyCostOverBudget``."""
    name = f"{config.alert_prefix}HourlyCostOverBudget"
    job = sample_labels(config)
    budget = as_threshold(config.hourly_cost_budget_usd)
    window = duration_seconds(config.cost_window)
    cost_name = config.metric(COST)

    def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        rate = sum_rate(
            store, store.select(cost_name, cost_type=lambda v: v == TOTAL_COST_TYPE), t, window
        )
        if rate is not None and is_above(rate * 3600, budget):
            return [(job_only(job), rate * 3600)]
        return []

    alert = ModelledAlert(
        AlertRule(
            name=name,
            expr=f"{cost_rate_record(config)} * 3600 > {num(budget)}",
            for_=config.cost_for,
            severity="warning",
            summary="Proxy spending is above the hourly budget.",
            description=(
                "{{ $labels.job }} spent at a rate of {{ $value | humanize }} USD per hour over "
                f"the last {config.cost_window}, above the budget of {num(budget)} USD per hour."
            ),
            runbook_url=runbook_url(config, name),
        ),
        model,
    )
    hold = duration_seconds(config.cost_for)
    step = evaluation_step([window], [hold])
    late = round_up(window + hold + 2 * step, step)
    steps = late // step + 1

    def spending(per_hour_total: float, per_hour_input: float) -> Store:
        series = []
        for cost_type, per_hour in ((TOTAL_COST_TYPE, per_hour_total), ("input", per_hour_input)):
            labels = {
                **job,
                "instance": SAMPLE_INSTANCES[0],
                "model": SAMPLE_MODEL,
                "cost_type": cost_type,
                "service_type": "anthropic",
            }
            series.append(build_series(cost_name, labels, 0, [(per_hour * step / 3600, steps - 1)]))
        return Store(step, tuple(series))

    # From a standing start the windowed rate ramps up linearly over the cost
    # window; pick the spend so the ramp crosses the budget half-way between
    # two evaluations, never on one (where float rounding would decide).
    crossing = (window // (2 * step) + 0.5) * step
    firing_spend = budget * window / crossing
    scenarios = [
        firing_scenario(
            alert,
            [alert],
            spending(firing_spend, 0.0),
            late,
            f"spending about {num(firing_spend / budget)} times the budget",
        ),
        quiet_scenario(
            alert,
            [alert],
            spending(0.99 * budget, 10 * budget),
            late,
            "total spend at 0.99 times the budget (the input share alone, above it, is not added)",
        ),
    ]
    cost = metric(config, cost_name, f"cost_type={quote(TOTAL_COST_TYPE)}")
    runbook = RunbookEntry(
        meaning=(
            f"The proxy's traffic cost more than {num(budget)} USD per hour, averaged over "
            f"the last {config.cost_window} (`cost_type={quote(TOTAL_COST_TYPE)}`, from the "
            "price table)."
        ),
        impact=(
            f"Spend is above plan: left alone it costs {num(budget * 24)} USD or more per day."
        ),
        diagnose=(
            (
                f"sum by (job, model) (rate({cost}[{config.cost_window}])) * 3600",
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
    return single_rule_family(
        config, alert, runbook, "hourly_cost_over_budget_test.yaml", step, scenarios
    )
