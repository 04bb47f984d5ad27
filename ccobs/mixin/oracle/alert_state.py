"""Prometheus' alert state machine (inactive, pending, firing) over a store of series.

An alert under test is its rule plus an ``AlertModel``: the rule's
condition re-stated in Python. The model stays here, beside the oracle,
so the rule types carry only what the YAML says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ccobs.mixin.config import duration_seconds
from ccobs.mixin.oracle.series import Store
from ccobs.mixin.oracle.templates import render_template
from ccobs.mixin.rule_types import AlertRule

AlertModel = Callable[[Store, int], list[tuple[dict[str, str], float]]]
"""An alert's condition re-stated in Python: (input series, time) -> the
label sets (without ``severity`` and other static labels) for which the
alert's expression returns a sample at that time, with the sample value."""


@dataclass(frozen=True)
class ModelledAlert:
    """An alerting rule together with its model: what the scenarios are built from."""

    rule: AlertRule
    model: AlertModel = field(compare=False, repr=False)


AlertState = tuple[ModelledAlert, dict[str, str], float, bool]
"""One active alert at one time: (alert, labels, value, firing)."""


def alert_states(
    alerts: Sequence[ModelledAlert], store: Store, until: int
) -> dict[int, list[AlertState]]:
    """Per evaluation time up to ``until``: every active alert (alert, labels, value, firing).

    This is Prometheus' ``for`` bookkeeping: an alert becomes pending when its
    expression first returns its label set, fires once it has been returned
    on every evaluation for at least ``for``, and is dropped when it is not.
    """
    active: dict[tuple[int, tuple[tuple[str, str], ...]], int] = {}
    states: dict[int, list[AlertState]] = {}
    for t in range(0, until + 1, store.step):
        now: dict[tuple[int, tuple[tuple[str, str], ...]], int] = {}
        states[t] = []
        for index, alert in enumerate(alerts):
            hold = duration_seconds(alert.rule.for_)
            for labels, value in alert.model(store, t):
                key = (index, tuple(sorted(labels.items())))
                since = active.get(key, t)
                now[key] = since
                states[t].append((alert, labels, value, t - since >= hold))
        active = now
    return states


def expected_alerts(states: Sequence[AlertState]) -> list[dict[str, Any]]:
    """promtool ``exp_alerts`` for the firing alerts: labels and expanded annotations."""
    expected = []
    for alert, labels, value, firing in states:
        if not firing:
            continue
        rule = alert.rule
        all_labels = {**labels, **rule.all_labels}
        annotations = rule.annotations()
        annotations["description"] = render_template(rule.description, all_labels, value)
        expected.append(
            {"exp_labels": dict(sorted(all_labels.items())), "exp_annotations": annotations}
        )
    return sorted(expected, key=lambda item: sorted(item["exp_labels"].items()))
