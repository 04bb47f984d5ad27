"""promtool test files: scenarios whose expectations the oracle computes.

A scenario is a store of input series and the times at which to check an
alert. ``firing_scenario`` checks the alert pending and then firing,
``quiet_scenario`` that it never even becomes pending; ``single_rule_family``
packs one alert, its runbook and its scenarios into an ``AlertFamily``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ccobs.mixin.config import MixinConfig, duration_seconds
from ccobs.mixin.names import (
    alert_group,
    recording_group,
    slow_recording_group,
    spend_recording_group,
)
from ccobs.mixin.oracle.alert_state import (
    AlertState,
    ModelledAlert,
    alert_states,
    expected_alerts,
)
from ccobs.mixin.oracle.evaluation import AmbiguousTestError
from ccobs.mixin.oracle.series import Store
from ccobs.mixin.promql import duration
from ccobs.mixin.rule_types import AlertFamily
from ccobs.mixin.runbook import RunbookEntry

STEPS = (3600, 1800, 900, 600, 300, 60, 30, 15, 10, 5, 1)
"""Candidate evaluation steps, coarsest first."""


@dataclass(frozen=True)
class Scenario:
    """One promtool test group: input series and the times at which to check the alerts."""

    name: str
    store: Store
    eval_times: tuple[int, ...]


def promtool_group(
    name: str, alerts: Sequence[ModelledAlert], scenario: Scenario
) -> dict[str, Any]:
    """One ``tests`` entry checking alert ``name`` at the scenario's times."""
    states = alert_states(alerts, scenario.store, max(scenario.eval_times))
    _check_prometheus_3(name, alerts, scenario, states)
    return {
        "name": scenario.name,
        "interval": duration(scenario.store.step),
        "input_series": [{"series": s.text(), "values": s.notation} for s in scenario.store.series],
        "alert_rule_test": [
            {
                "eval_time": duration(t),
                "alertname": name,
                "exp_alerts": expected_alerts(states[t]),
            }
            for t in scenario.eval_times
        ],
    }


def _check_prometheus_3(
    name: str,
    alerts: Sequence[ModelledAlert],
    scenario: Scenario,
    states: dict[int, list[AlertState]],
) -> None:
    """Refuse a scenario whose expectations differ under Prometheus 3's left-open ranges.

    Only Prometheus 2's promtool runs here, so the oracle proves the other
    semantics: a sample on a window's start (a counter's jump, a push) must
    not decide an outcome.
    """
    try:
        other = alert_states(alerts, scenario.store.under_prometheus_3(), max(scenario.eval_times))
    except AmbiguousTestError as exc:
        raise AmbiguousTestError(f"{name}: {scenario.name!r} under Prometheus 3: {exc}") from None
    for t in scenario.eval_times:
        if expected_alerts(states[t]) != expected_alerts(other[t]):
            raise ValueError(
                f"{name}: {scenario.name!r} expects other alerts at {duration(t)} under "
                "Prometheus 3's left-open ranges; move samples off the window boundaries"
            )


def recording_groups(config: MixinConfig) -> list[str]:
    """The recording rule groups ``recording_rules.yaml`` holds, in evaluation order.

    The slow group always exists: the budget spend periods (1d, 7d, 30d) are in it.
    """
    return [recording_group(config), spend_recording_group(config), slow_recording_group(config)]


def promtool_file(config: MixinConfig, step: int, groups: list[dict[str, Any]]) -> dict[str, Any]:
    """A promtool test file; rule paths are relative to it (``alerts/tests/``)."""
    return {
        "rule_files": ["../recording_rules.yaml", "../alerts.yaml"],
        "evaluation_interval": duration(step),
        # Recording rules first, as a Prometheus group evaluation would see
        # them; without an order promtool evaluates the groups in map order.
        "group_eval_order": [*recording_groups(config), alert_group(config)],
        "tests": groups,
    }


def evaluation_step(windows: Sequence[int], holds: Sequence[int], cap: int = 3600) -> int:
    """The coarsest evaluation step that still resolves every window and ``for``.

    Coarse steps keep promtool fast for multi-day burn-rate windows; a window
    must span at least two steps (a rate needs two samples) and a ``for`` at
    least one (so "pending, not yet firing" is observable).
    """
    for step in STEPS:
        if step > cap:
            continue
        if all(w % step == 0 and w >= 2 * step for w in windows) and all(
            h == 0 or h >= step for h in holds
        ):
            return step
    return 1


def first_firing(
    target: ModelledAlert, alerts: Sequence[ModelledAlert], store: Store, horizon: int
) -> int:
    """The first evaluation time at which ``target`` fires in ``store``."""
    states = alert_states(alerts, store, horizon)
    for t in sorted(states):
        if any(a is target and firing for a, _, _, firing in states[t]):
            return t
    raise ValueError(
        f"{target.rule.name}: generated scenario never fires within {duration(horizon)}"
    )


def firing_scenario(
    target: ModelledAlert,
    alerts: Sequence[ModelledAlert],
    store: Store,
    horizon: int,
    what: str,
) -> Scenario:
    """Fires at its first firing time; one step earlier it is pending (``for`` not yet elapsed)."""
    fires = first_firing(target, alerts, store, horizon)
    states = alert_states(alerts, store, fires)
    earlier = fires - store.step
    times = [fires]
    if duration_seconds(target.rule.for_) > 0 and earlier >= 0:
        pending = [s for s in states[earlier] if s[0] is target]
        if not pending or any(firing for *_, firing in pending):
            raise ValueError(f"{target.rule.name}: not pending one step before it fires")
        times.insert(0, earlier)
    return Scenario(
        f"{what}: pending at first, firing once `for` ({target.rule.for_}) has elapsed",
        store,
        tuple(times),
    )


def quiet_scenario(
    target: ModelledAlert, alerts: Sequence[ModelledAlert], store: Store, at: int, what: str
) -> Scenario:
    """A scenario in which ``target`` never even becomes pending up to ``at``."""
    states = alert_states(alerts, store, at)
    if any(alert is target for t in states for alert, *_ in states[t]):
        raise ValueError(f"{target.rule.name}: the non-firing scenario {what!r} becomes active")
    return Scenario(f"{what}: never fires", store, (at,))


def clear_multiple(threshold: float, others: Sequence[float], multiples: Sequence[float]) -> float:
    """The first multiple of ``threshold`` at least 1 % away from every other threshold.

    Several rules can share one input (the burn-rate pairs all read the error
    ratio); a test value landing on another rule's threshold would make that
    rule's outcome a matter of float rounding.
    """
    for multiple in multiples:
        value = multiple * threshold
        if all(abs(value - other) > 0.01 * other for other in others if other != threshold):
            return multiple
    raise AmbiguousTestError(f"every test multiple of {threshold} lands on another threshold")


def round_up(value: int, step: int) -> int:
    """``value`` rounded up to a multiple of ``step``."""
    return -(-value // step) * step


def single_rule_family(
    config: MixinConfig,
    alert: ModelledAlert,
    runbook: RunbookEntry,
    file_name: str,
    step: int,
    scenarios: Sequence[Scenario],
) -> AlertFamily:
    """The family of an alert with one rule: its scenarios in one test file."""
    rule = alert.rule
    groups = [promtool_group(rule.name, [alert], scenario) for scenario in scenarios]
    return AlertFamily(
        rule.name, (rule,), runbook, ((file_name, promtool_file(config, step, groups)),)
    )
