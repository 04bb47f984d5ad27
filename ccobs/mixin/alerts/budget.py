"""Budgets: a team or key spent its budget (BudgetExhausted), or is on course to (BudgetBurnRate).

Budgets come from the identity file as the ``budget_usd`` gauge (per job, team or
key alias, period); spend is the recorded ``increase_period`` series (see
``ccobs.mixin.spend_rules``). Both alerts read only recorded series and the gauge,
so they stay cheap over 30-day periods. The spend rules' expression tests live in
this module's test file, beside the alerts that read them.

The scenarios run at a step equal to ``budget_spend_interval``: promtool evaluates
every group at its own evaluation interval, and the spend over a period is the sum
of the recorded rates times the interval they were recorded at.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ccobs.budgets import PERIODS
from ccobs.catalog import ATTRIBUTED_COST, BUDGET
from ccobs.mixin.config import MixinConfig, duration_seconds
from ccobs.mixin.names import runbook_url, spend_rate_record, spend_record
from ccobs.mixin.oracle.alert_state import ModelledAlert
from ccobs.mixin.oracle.evaluation import is_above, sum_rate
from ccobs.mixin.oracle.promtool import (
    Scenario,
    firing_scenario,
    promtool_file,
    promtool_group,
    quiet_scenario,
    round_up,
)
from ccobs.mixin.oracle.samples import SAMPLE_INSTANCES, SAMPLE_MODEL, job_only, sample_labels
from ccobs.mixin.oracle.series import Series, Store, build_series, gauge_series
from ccobs.mixin.promql import by, duration, metric, num, quote
from ccobs.mixin.rule_types import AlertFamily
from ccobs.mixin.rule_types import AlertRule as Rule
from ccobs.mixin.runbook import RunbookEntry
from ccobs.mixin.spend_rules import SCOPES, budget, remaining, spend_or_zero

WHO = "{{ if $labels.team }}team {{ $labels.team }}{{ else }}key {{ $labels.key_alias }}{{ end }}"
"""A budget alert's subject, whichever scope it is."""
SAMPLE_TEAM = "platform"
SAMPLE_KEY = "alice"
SAMPLE_PERIOD = "1d"

Found = list[tuple[dict[str, str], float]]


# -- the oracle's view of the spend rules ---------------------------------------------------


def _window(store: Store, t: int, window: int) -> list[int]:
    """The steps in a range ending at ``t``: closed (Prometheus 2) or left-open (3)."""
    start = t - window
    return [
        s for s in range(0, t + 1, store.step) if (start < s if store.left_open else start <= s)
    ]


class SpendOracle:
    """The spend rules re-stated for the oracle: the recorded spend rate, and sums of it.

    Each step's recorded rates are computed once per store (a model reads every step
    of a window at every step); the stores are kept with their results, so an id
    is never reused for another store while its results are.
    """

    def __init__(self, config: MixinConfig) -> None:
        self.config = config
        self._stores: dict[int, tuple[Store, dict[int, dict[tuple[str, str], float]]]] = {}

    def rates_at(self, store: Store, t: int) -> dict[tuple[str, str], float]:
        """The spend-rate record at ``t``: USD per second per (team, key_alias)."""
        kept = self._stores.setdefault(id(store), (store, {}))[1]
        if t not in kept:
            window = duration_seconds(self.config.budget_spend_window)
            groups: dict[tuple[str, str], list[Series]] = {}
            for series in store.select(self.config.metric(ATTRIBUTED_COST)):
                labels = series.label_dict
                groups.setdefault((labels["team"], labels["key_alias"]), []).append(series)
            rates = {}
            for who, members in groups.items():
                rate = sum_rate(store, members, t, window)
                if rate is not None:
                    rates[who] = rate
            kept[t] = rates
        return kept[t]

    def _recorded(
        self, store: Store, t: int, window: int, scope: str
    ) -> dict[str, list[list[float]]]:
        """Per team (or key): for each of its (team, key) series, its recorded rates in range."""
        index = 0 if scope == "team" else 1
        found: dict[str, dict[tuple[str, str], list[float]]] = {}
        for s in _window(store, t, window):
            for pair, rate in self.rates_at(store, s).items():
                found.setdefault(pair[index], {}).setdefault(pair, []).append(rate)
        return {who: list(series.values()) for who, series in found.items()}

    def spend(self, store: Store, t: int, scope: str, period: str) -> dict[str, float]:
        """The ``increase_period`` record of ``scope`` for ``period`` at ``t``, per who."""
        interval = duration_seconds(self.config.budget_spend_interval)
        spent = {}
        for who, series in self._recorded(store, t, PERIODS[period], scope).items():
            total = 0.0
            for rates in series:
                over = 0.0
                for rate in rates:
                    over += rate
                total += over
            spent[who] = total * interval
        return spent

    def burn(self, store: Store, t: int, scope: str) -> dict[str, float]:
        """``sum by (who) (avg_over_time(spend rate[burn window]))`` at ``t``."""
        window = duration_seconds(self.config.budget_burn_window)
        burn = {}
        for who, series in self._recorded(store, t, window, scope).items():
            total = 0.0
            for rates in series:
                over = 0.0
                for rate in rates:
                    over += rate
                total += over / len(rates)
            burn[who] = total
        return burn


def _budgets(config: MixinConfig, store: Store, t: int, scope: str) -> dict[tuple[str, str], float]:
    """(who, period) -> the budget gauge's value at ``t``, for ``scope``."""
    found: dict[tuple[str, str], float] = {}
    for series in store.select(config.metric(BUDGET), scope=lambda v: v == scope):
        value = store.instant(series, t)
        if value is not None:
            labels = series.label_dict
            key = (labels[SCOPES[scope]], labels["period"])
            found[key] = max(found.get(key, value), value)
    return found


# -- the scenarios' series ---------------------------------------------------------------------


def _spending(config: MixinConfig, steps: int, per_second: float, team: str, key: str) -> Series:
    """One instance's attributed cost for (team, key), rising ``per_second`` USD from 0."""
    labels = {
        **sample_labels(config),
        "instance": SAMPLE_INSTANCES[0],
        "team": team,
        "key_alias": key,
        "client_app": "claude-code",
        "model": SAMPLE_MODEL,
        "service_type": "anthropic",
    }
    step = duration_seconds(config.budget_spend_interval)
    return build_series(config.metric(ATTRIBUTED_COST), labels, 0, [(per_second * step, steps - 1)])


def _budget_series(config: MixinConfig, steps: int, scope: str, who: str, usd: float) -> Series:
    labels = {
        **sample_labels(config),
        "instance": SAMPLE_INSTANCES[0],
        "scope": scope,
        "team": who if scope == "team" else "",
        "key_alias": who if scope == "key" else "",
        "period": SAMPLE_PERIOD,
    }
    labels = {name: value for name, value in labels.items() if value}
    return gauge_series(config.metric(BUDGET), labels, [(usd, steps)])


def _store(config: MixinConfig, steps: int, per_second: float, budgets: dict[str, float]) -> Store:
    """Team ``platform``'s key ``alice`` spending ``per_second``, under ``budgets`` by scope."""
    series = [_spending(config, steps, per_second, SAMPLE_TEAM, SAMPLE_KEY)]
    for scope, usd in budgets.items():
        who = SAMPLE_TEAM if scope == "team" else SAMPLE_KEY
        series.append(_budget_series(config, steps, scope, who, usd))
    return Store(duration_seconds(config.budget_spend_interval), tuple(series))


def _model(
    config: MixinConfig, value: Callable[[Store, int, str, str], dict[str, float]]
) -> Callable[[Store, int], Found]:
    """An alert model: ``value(store, t, scope, period)`` per who, compared with 1."""

    def model(store: Store, t: int) -> Found:
        job = job_only(config, sample_labels(config))
        found: Found = []
        for scope, label in SCOPES.items():
            budgets = _budgets(config, store, t, scope)
            for period in PERIODS:
                for who, amount in value(store, t, scope, period).items():
                    usd = budgets.get((who, period))
                    if usd is None:
                        continue
                    ratio = amount / usd
                    if is_above(ratio, 1.0):
                        found.append(({**job, label: who, "period": period}, ratio))
        return found

    return model


def _scenario_length(config: MixinConfig, hold: str) -> int:
    step = duration_seconds(config.budget_spend_interval)
    return round_up(duration_seconds(config.budget_spend_window) + duration_seconds(hold), step)


# -- BudgetExhausted ---------------------------------------------------------------------------


def budget_exhausted(config: MixinConfig) -> AlertFamily:
    """``<prefix>BudgetExhausted``: a team or key spent more than its budget over the period."""
    name = f"{config.alert_prefix}BudgetExhausted"
    clauses = []
    for scope, label in SCOPES.items():
        clause = by(config, label, "period")
        clauses.append(
            f"(\n  {spend_record(config, scope)}\n  / on ({clause})\n"
            f"  {budget(config, scope)}\n) > 1"
        )
    rule = Rule(
        name=name,
        expr="\nor\n".join(clauses),
        for_=config.budget_exhausted_for,
        severity="warning",
        summary="A team or key has spent more than its budget.",
        description=(
            f"{WHO} has spent {{{{ $value | humanizePercentage }}}} of its "
            "{{ $labels.period }} budget (rolling) in job {{ $labels.job }}."
        ),
        runbook_url=runbook_url(config, name),
    )

    alert = ModelledAlert(rule, _model(config, SpendOracle(config).spend))
    step = duration_seconds(config.budget_spend_interval)
    late = round_up(_scenario_length(config, config.budget_exhausted_for) * 3, step)
    steps = late // step + 1
    # 1 USD per second: the budget lies half-way between the spends recorded a third of the
    # way in and one step later, so no evaluation sits on it.
    probe = _store(config, steps, 1.0, {})
    third = round_up(late // 3, step)
    spent = [
        SpendOracle(config).spend(probe, t, "team", SAMPLE_PERIOD)[SAMPLE_TEAM]
        for t in (third, third + step)
    ]
    budget_usd = (spent[0] + spent[1]) / 2
    scenarios: list[Scenario] = [
        firing_scenario(
            alert,
            [alert],
            _store(config, steps, 1.0, {"team": budget_usd}),
            late,
            f"team {SAMPLE_TEAM} spending 1 USD per second against a {num(budget_usd)} USD "
            f"{SAMPLE_PERIOD} budget",
        ),
        firing_scenario(
            alert,
            [alert],
            _store(config, steps, 1.0, {"key": budget_usd}),
            late,
            f"key {SAMPLE_KEY} spending 1 USD per second against a {num(budget_usd)} USD "
            f"{SAMPLE_PERIOD} budget",
        ),
        quiet_scenario(
            alert,
            [alert],
            _store(config, steps, 1.0, {"team": 2.0 * late, "key": 2.0 * late}),
            late,
            "spending 1 USD per second against budgets twice what the scenario spends",
        ),
    ]
    runbook = RunbookEntry(
        meaning=(
            "A team or key (by alias) has spent more than its budget over the budget's rolling "
            "period (1d, 7d or 30d), as the identity file's `budgets:` section declares it "
            "(`budget_usd`). Spend is the recorded sum of the attributed cost rate "
            f"(`{spend_record(config, 'team')}` and `{spend_record(config, 'key')}`), per job: "
            "replicas of a job share its budgets."
        ),
        impact=(
            "Spend is above what was agreed for that team or key; it keeps growing while the "
            "traffic goes on. The proxy does not block requests on a budget."
        ),
        diagnose=(
            (remaining(config, "team"), "USD left of each team budget (0: exhausted)."),
            (remaining(config, "key"), "USD left of each key budget."),
            (
                f"topk(10, sum by ({by(config, 'team', 'key_alias', 'client_app', 'model')}) "
                f"(increase({metric(config, config.metric(ATTRIBUTED_COST))}[1d])))",
                "Who spent most over the last day, by key, client app and model.",
            ),
        ),
        mitigate=(
            "Tell the team or key owner; find the sessions behind the spend in the access log "
            "(`ccobs logs analytics` by team or key).",
            "Revoke or rate-limit the key upstream if the spend is not expected.",
            "If the spend is expected, raise the budget in the identity file and restart the "
            "proxies (the budget gauge is set at start).",
        ),
    )
    groups = [promtool_group(name, [alert], scenario) for scenario in scenarios]
    groups.append(_spend_rules_test(config))
    return AlertFamily(
        name,
        (rule,),
        runbook,
        (("budget_exhausted_test.yaml", promtool_file(config, step, groups)),),
    )


# -- BudgetBurnRate ----------------------------------------------------------------------------


def budget_burn_rate(config: MixinConfig) -> AlertFamily:
    """``<prefix>BudgetBurnRate``: at the current spend rate a period costs more than its budget."""
    name = f"{config.alert_prefix}BudgetBurnRate"
    window = config.budget_burn_window
    clauses = []
    for scope, label in SCOPES.items():
        for period, seconds in PERIODS.items():
            rate = (
                f"sum by ({by(config, label)}) "
                f"(avg_over_time({spend_rate_record(config)}[{window}])) * {seconds}"
            )
            clauses.append(
                f"(\n  {rate}\n  / on ({by(config, label)}) group_right\n"
                f"  {budget(config, scope, f'period={quote(period)}')}\n) > 1"
            )
    rule = Rule(
        name=name,
        expr="\nor\n".join(clauses),
        for_=config.budget_burn_for,
        severity="warning",
        summary="A team or key is on course to spend more than its budget.",
        description=(
            f"At its spend rate of the last {window}, {WHO} would spend "
            "{{ $value | humanizePercentage }} of its {{ $labels.period }} budget over a "
            "{{ $labels.period }} period (job {{ $labels.job }})."
        ),
        runbook_url=runbook_url(config, name),
    )
    burn_window = duration_seconds(window)

    oracle = SpendOracle(config)

    def projected(store: Store, t: int, scope: str, period: str) -> dict[str, float]:
        return {who: rate * PERIODS[period] for who, rate in oracle.burn(store, t, scope).items()}

    alert = ModelledAlert(rule, _model(config, projected))
    step = duration_seconds(config.budget_spend_interval)
    late = round_up(
        min(_scenario_length(config, config.budget_burn_for) + 4 * step, burn_window), step
    )
    if late < _scenario_length(config, config.budget_burn_for):
        raise ValueError("budget_burn_window must be longer than the spend window plus its for")
    steps = late // step + 1
    day = PERIODS[SAMPLE_PERIOD]
    # 1 USD per second burns this budget (20,000 USD a day) 4.32 times as fast as it lasts.
    budget_usd = day / 4.32
    scenarios = [
        firing_scenario(
            alert,
            [alert],
            _store(config, steps, 1.0, {"team": budget_usd}),
            late,
            f"team {SAMPLE_TEAM} spending at 4.32 times its {SAMPLE_PERIOD} budget's rate",
        ),
        quiet_scenario(
            alert,
            [alert],
            _store(config, steps, 0.99 * budget_usd / day, {"team": budget_usd, "key": budget_usd}),
            late,
            f"spending at 0.99 times the {SAMPLE_PERIOD} budgets' rate",
        ),
    ]
    runbook = RunbookEntry(
        meaning=(
            f"At the spend rate of the last {window}, a team or key would spend more than its "
            "budget over the budget's period: on course to exhaust it before a period's worth "
            "of spend is in. The rate is the average of the recorded spend rate "
            f"(`{spend_rate_record(config)}`) over {window}, times the period."
        ),
        impact=(
            "No money is lost yet; left alone, the budget runs out and BudgetExhausted follows."
        ),
        diagnose=(
            (
                f"sum by ({by(config, 'team', 'key_alias')}) "
                f"(avg_over_time({spend_rate_record(config)}[{window}])) * 3600",
                f"USD per hour by team and key over the last {window}.",
            ),
            (spend_or_zero(config, "team"), "Spend so far per team budget and period."),
        ),
        mitigate=(
            "Check with the team or key owner whether the surge is expected (a batch job, a "
            "runaway agent loop).",
            "Move the traffic to a cheaper model, or rate-limit the key.",
            "If the new rate is the plan, raise the budget in the identity file.",
        ),
    )
    groups = [promtool_group(name, [alert], scenario) for scenario in scenarios]
    return AlertFamily(
        name,
        (rule,),
        runbook,
        (("budget_burn_rate_test.yaml", promtool_file(config, step, groups)),),
    )


# -- the spend rules' expression tests ---------------------------------------------------------


def _spend_rules_test(config: MixinConfig) -> dict[str, Any]:
    """``promql_expr_test`` of the spend rate and of both period records, at one time.

    2 USD per second from a standing start: the rate is whole past the spend window,
    and the sums add whole numbers, so promtool's exact comparison holds.
    """
    step = duration_seconds(config.budget_spend_interval)
    at = round_up(2 * duration_seconds(config.budget_spend_window), step)
    steps = at // step + 1
    store = _store(config, steps, 2.0, {"team": 1e6, "key": 1e6})
    job = job_only(config, sample_labels(config))

    oracle = SpendOracle(config)

    def expected(store: Store) -> list[dict[str, Any]]:
        rates = oracle.rates_at(store, at)
        tests = [
            {
                "expr": spend_rate_record(config),
                "eval_time": duration(at),
                "exp_samples": [
                    {
                        "labels": _labels(
                            spend_rate_record(config),
                            {**job, "team": team, "key_alias": key},
                        ),
                        "value": rate,
                    }
                    for (team, key), rate in sorted(rates.items())
                ],
            }
        ]
        for scope, label in SCOPES.items():
            record = spend_record(config, scope)
            samples = [
                {
                    "labels": _labels(record, {**job, label: who, "period": period}),
                    "value": spent,
                }
                for period in PERIODS
                for who, spent in oracle.spend(store, at, scope, period).items()
            ]
            tests.append({"expr": record, "eval_time": duration(at), "exp_samples": samples})
        return tests

    tests = expected(store)
    if expected(store.under_prometheus_3()) != tests:
        raise ValueError("the spend rules' tests differ under Prometheus 3's left-open ranges")
    for test in tests:
        for sample in test["exp_samples"]:
            if math.isnan(sample["value"]):
                raise ValueError(f"{test['expr']} has no value")
    return {
        "name": "spend rate and spend per period, 2 USD per second from a standing start",
        "interval": duration(step),
        "input_series": [{"series": s.text(), "values": s.notation} for s in store.series],
        "promql_expr_test": tests,
    }


def _labels(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f"{key}={quote(value)}" for key, value in sorted(labels.items()))
    return f"{name}{{{inner}}}"
