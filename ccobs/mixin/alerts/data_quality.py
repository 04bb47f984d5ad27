"""Data quality: the numbers the dashboards show are incomplete, though nothing fails.

``UnpricedRequests`` (a model missing from the price table: spend reads low),
``LabelOverflow`` (a label hit its cardinality bound and folds values into
``other``: per-model views are silently wrong) and ``AccessLogDropped``
(access-log records lost). Each is a counter that should never increase;
each is tested with one increment (fires) and a counter that stopped
increasing long ago (quiet).
"""

from __future__ import annotations

from dataclasses import dataclass

from ccobs.catalog import ACCESS_LOG_DROPPED, LABEL_OVERFLOWS, UNPRICED_REQUESTS, MetricSpec
from ccobs.mixin.config import MixinConfig, duration_seconds
from ccobs.mixin.names import runbook_url
from ccobs.mixin.oracle.alert_state import ModelledAlert
from ccobs.mixin.oracle.evaluation import is_above, sum_rate
from ccobs.mixin.oracle.promtool import (
    evaluation_step,
    firing_scenario,
    quiet_scenario,
    round_up,
    single_rule_family,
)
from ccobs.mixin.oracle.samples import SAMPLE_INSTANCES, job_only, sample_labels
from ccobs.mixin.oracle.series import Series, Store, build_series
from ccobs.mixin.promql import sum_by
from ccobs.mixin.rule_types import AlertFamily, AlertRule
from ccobs.mixin.runbook import RunbookEntry


@dataclass(frozen=True)
class _CounterAlert:
    """What differs between the data-quality alerts: the counter, its label and the prose."""

    suffix: str
    spec: MetricSpec
    label: str
    sample_value: str
    summary: str
    description: str
    meaning: str
    impact: str
    diagnose_note: str
    mitigate: tuple[str, ...]
    file: str


def _counter_alert(config: MixinConfig, what: _CounterAlert) -> AlertFamily:
    """``sum by (job, label) (increase(counter[window])) > 0`` with its scenarios."""
    name = f"{config.alert_prefix}{what.suffix}"
    job = sample_labels(config)
    counter = config.metric(what.spec)
    window = duration_seconds(config.data_quality_window)
    extra = {key: "anthropic" for key in what.spec.labels if key == "service_type"}

    def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        groups: dict[str, list[Series]] = {}
        for series in store.select(counter):
            groups.setdefault(series.label_dict.get(what.label, ""), []).append(series)
        out = []
        for value, members in sorted(groups.items()):
            seen = sum_rate(store, members, t, window, is_rate=False)
            if is_above(seen, 0, exact=True):
                assert seen is not None
                out.append(({**job_only(config, job), what.label: value}, seen))
        return out

    by = f"job, {what.label}"
    increase = sum_by(config, by, "increase", counter, config.data_quality_window)
    alert = ModelledAlert(
        AlertRule(
            name=name,
            expr=f"{increase} > 0",
            for_=config.data_quality_for,
            severity="warning",
            summary=what.summary,
            description=what.description,
            runbook_url=runbook_url(config, name),
        ),
        model,
    )
    hold = duration_seconds(config.data_quality_for)
    step = evaluation_step([window], [hold])
    quiet_steps = 3
    late = round_up(quiet_steps * step + hold + 2 * step, step)
    steps = late // step + 1
    labels = {**job, "instance": SAMPLE_INSTANCES[0], what.label: what.sample_value, **extra}
    once = build_series(counter, labels, 0, [(0.0, quiet_steps), (1.0, 1), (0.0, steps)])
    long_ago = build_series(counter, labels, 7, [(0.0, steps - 1)])
    scenarios = [
        firing_scenario(alert, [alert], Store(step, (once,)), late, "the counter increases once"),
        quiet_scenario(
            alert,
            [alert],
            Store(step, (long_ago,)),
            late,
            f"the counter stopped increasing more than {config.data_quality_window} ago",
        ),
    ]
    runbook = RunbookEntry(
        meaning=what.meaning,
        impact=what.impact,
        diagnose=(
            (
                sum_by(config, f"job, instance, {what.label}", "increase", counter, "1h"),
                what.diagnose_note,
            ),
        ),
        mitigate=what.mitigate,
    )
    return single_rule_family(config, alert, runbook, what.file, step, scenarios)


def unpriced_requests(config: MixinConfig) -> AlertFamily:
    """``<prefix>UnpricedRequests``: requests for a model the price table lacks."""
    return _counter_alert(
        config,
        _CounterAlert(
            suffix="UnpricedRequests",
            spec=UNPRICED_REQUESTS,
            label="model",
            sample_value="claude-new-model",
            summary="Requests for a model missing from the price table.",
            description=(
                "{{ $labels.job }} served {{ $value | humanize }} requests for model "
                f"{{{{ $labels.model }}}} in the last {config.data_quality_window} that the "
                "price table does not know: their cost is recorded as zero."
            ),
            meaning=(
                "Requests named a model the price table has no price for; ccobs records their "
                "cost as zero, so spend, the cost dashboards and the cost alerts read low."
            ),
            impact="Spend is under-reported: budgets can be overrun without an alert.",
            diagnose_note="Unpriced requests by instance and model.",
            mitigate=(
                "Add the model to the price table (or upgrade ccobs, whose table may know it) "
                "and restart the proxy.",
                "If clients send a misspelt or retired model name, fix the client.",
            ),
            file="unpriced_requests_test.yaml",
        ),
    )


def label_overflow(config: MixinConfig) -> AlertFamily:
    """``<prefix>LabelOverflow``: label values folded into ``other``."""
    return _counter_alert(
        config,
        _CounterAlert(
            suffix="LabelOverflow",
            spec=LABEL_OVERFLOWS,
            label="label",
            sample_value="model",
            summary="A label reached its cardinality bound; new values are folded into other.",
            description=(
                "{{ $labels.job }} folded {{ $value | humanize }} values of label "
                f'{{{{ $labels.label }}}} into "other" in the last {config.data_quality_window}.'
            ),
            meaning=(
                "A label (usually `model` or `endpoint`) reached the number of distinct values "
                "ccobs allows; further values are recorded as `other`, so per-model and "
                "per-route views silently merge them."
            ),
            impact="Per-model cost, tokens and errors are wrong for the folded values.",
            diagnose_note="Overflows by instance and label.",
            mitigate=(
                "Find who sends so many distinct values (random model names, unrouted paths) "
                "and fix the client or the route templates.",
                "If the values are legitimate, raise the label's bound in the settings.",
            ),
            file="label_overflow_test.yaml",
        ),
    )


def access_log_dropped(config: MixinConfig) -> AlertFamily:
    """``<prefix>AccessLogDropped``: access-log records lost."""
    return _counter_alert(
        config,
        _CounterAlert(
            suffix="AccessLogDropped",
            spec=ACCESS_LOG_DROPPED,
            label="reason",
            sample_value="queue_full",
            summary="Access-log records are being lost.",
            description=(
                "{{ $labels.job }} lost {{ $value | humanize }} access-log records "
                f"({{{{ $labels.reason }}}}) in the last {config.data_quality_window}."
            ),
            meaning=(
                "The access-log store dropped records: its queue was full (the database "
                "cannot keep up), a write failed, or records arrived after it closed."
            ),
            impact="Who-spent-what reports and request lookups miss those requests.",
            diagnose_note="Drops by instance and reason.",
            mitigate=(
                "`queue_full`: the database is too slow for the traffic; move it to faster "
                "storage or raise the queue size.",
                "`write_error`: read the proxy's logs for the database error (disk full, "
                "permissions).",
                "`closed`: records written during shutdown; harmless if it follows deploys.",
            ),
            file="access_log_dropped_test.yaml",
        ),
    )
