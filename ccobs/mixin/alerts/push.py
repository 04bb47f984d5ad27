"""PushStale and PushFailing: metrics pushed to a Pushgateway that stopped arriving.

``PushStale`` reads the Pushgateway's own ``push_time_seconds``; ``PushFailing``
reads ccobs' pusher counter, so it names the cause while ``PushStale`` sees
the effect.
"""

from __future__ import annotations

from collections.abc import Sequence

from ccobs.catalog import PUSHES
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
from ccobs.mixin.oracle.samples import SAMPLE_INSTANCES, sample_labels
from ccobs.mixin.oracle.series import Series, Store, build_series
from ccobs.mixin.promql import metric, num, quote, seconds_text, sum_by
from ccobs.mixin.rule_types import AlertFamily, AlertRule
from ccobs.mixin.runbook import RunbookEntry


def push_stale(config: MixinConfig) -> AlertFamily:
    """``<prefix>PushStale``: a push group older than ``push_stale_seconds``."""
    name = f"{config.alert_prefix}PushStale"
    job = sample_labels(config)
    stale = config.push_stale_seconds
    stale_text = seconds_text(stale)

    def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        out = []
        for series in store.select("push_time_seconds"):
            value = store.instant(series, t)
            if value is not None and is_above(t - value, stale, exact=True):
                out.append((series.label_dict, t - value))
        return out

    alert = ModelledAlert(
        AlertRule(
            name=name,
            expr=f"time() - {metric(config, 'push_time_seconds')} > {num(stale)}",
            for_=config.push_stale_for,
            severity="warning",
            summary="Metric pushes to the Pushgateway are stale.",
            description=(
                "{{ $labels.job }} on {{ $labels.instance }} last pushed its metrics "
                "{{ $value | humanizeDuration }} ago, more than the "
                f"{stale_text} allowed."
            ),
            runbook_url=runbook_url(config, name),
        ),
        model,
    )
    hold = duration_seconds(config.push_stale_for)
    step = evaluation_step([], [hold], cap=max(1, min(60, int(stale) // 2)))
    pushes = 3
    late = round_up(pushes * step + int(stale) + hold + 2 * step, step)
    steps = late // step + 1
    labels = {**job, "instance": "batch-worker-1"}
    stopped = build_series(
        "push_time_seconds", labels, 0, [(float(step), pushes), (0.0, steps - pushes - 1)]
    )
    # Pushes always arrive, but each one lags just under the stale threshold.
    lag = 0.99 * stale
    lagging = build_series("push_time_seconds", labels, -lag, [(float(step), steps - 1)])
    scenarios = [
        firing_scenario(alert, [alert], Store(step, (stopped,)), late, "pushes stop"),
        quiet_scenario(
            alert,
            [alert],
            Store(step, (lagging,)),
            late,
            "the last push is always 0.99 times the stale threshold old",
        ),
    ]
    push_time = metric(config, "push_time_seconds")
    runbook = RunbookEntry(
        meaning=(
            f"A push group on the Pushgateway has not been updated for more than {stale_text}: "
            "the pushing process stopped, or its pushes fail (see "
            f"`{config.alert_prefix}PushFailing`)."
        ),
        impact=(
            "The Pushgateway keeps serving the last pushed values, so dashboards show frozen "
            "numbers instead of gaps and rate-based alerts see no traffic."
        ),
        diagnose=(
            (f"time() - {push_time}", "Age of every push group, in seconds."),
            (
                f"time() - {metric(config, 'push_failure_time_seconds')}",
                "Time since the Pushgateway last rejected a push of the group.",
            ),
            (
                sum_by(config, "job, instance, outcome", "increase", config.metric(PUSHES), "1h"),
                "Pushes per outcome, where the pusher is also scraped.",
            ),
        ),
        mitigate=(
            "Check that the pushing process runs; a finished batch job's group stays until "
            "deleted (`DELETE /metrics/job/<job>/instance/<instance>`), which is the fix "
            "when the job is gone for good.",
            "If it runs, read its logs for push errors (loggers `ccobs.pusher` and "
            "`ccobs.pushgateway`) and check "
            "the Pushgateway URL and reachability.",
        ),
    )
    return single_rule_family(config, alert, runbook, "push_stale_test.yaml", step, scenarios)


def push_failing(config: MixinConfig) -> AlertFamily:
    """``<prefix>PushFailing``: pushes failed and none succeeded over the window."""
    name = f"{config.alert_prefix}PushFailing"
    job = sample_labels(config)
    window = duration_seconds(config.push_failure_window)
    pushes_name = config.metric(PUSHES)

    def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        def increase(outcome: str) -> float | None:
            series = store.select(pushes_name, outcome=lambda v: v == outcome)
            return sum_rate(store, series, t, window, is_rate=False)

        failed, succeeded = increase("failure"), increase("success")
        if is_above(failed, 0, exact=True) and not is_above(succeeded, 0, exact=True):
            assert failed is not None
            return [({"job": job["job"], "instance": SAMPLE_INSTANCES[0]}, failed)]
        return []

    window_text = config.push_failure_window

    def pushes(outcome: str) -> str:
        matcher = f"outcome={quote(outcome)}"
        return sum_by(config, "job, instance", "increase", pushes_name, window_text, matcher)

    alert = ModelledAlert(
        AlertRule(
            name=name,
            expr=f"{pushes('failure')} > 0\nunless\n{pushes('success')} > 0",
            for_=config.push_failure_for,
            severity="warning",
            summary="Metric pushes are failing.",
            description=(
                "{{ $labels.job }} on {{ $labels.instance }} failed {{ $value | humanize }} "
                f"metric pushes in the last {config.push_failure_window} and none succeeded."
            ),
            runbook_url=runbook_url(config, name),
        ),
        model,
    )
    hold = duration_seconds(config.push_failure_for)
    step = evaluation_step([window], [hold])
    ok_steps = 3
    late = round_up(ok_steps * step + window + hold + 2 * step, step)
    steps = late // step + 1

    def counter(outcome: str, segments: Sequence[tuple[float, int]]) -> Series:
        labels = {
            **job,
            "instance": SAMPLE_INSTANCES[0],
            "protocol": "pushgateway",
            "outcome": outcome,
        }
        return build_series(pushes_name, labels, 0, segments)

    broken = Store(
        step,
        (
            counter("success", [(1.0, ok_steps), (0.0, steps - ok_steps - 1)]),
            counter("failure", [(0.0, ok_steps), (1.0, steps - ok_steps - 1)]),
        ),
    )
    flaky = Store(
        step, (counter("success", [(1.0, steps - 1)]), counter("failure", [(1.0, steps - 1)]))
    )
    scenarios = [
        firing_scenario(alert, [alert], broken, late, "every push fails"),
        quiet_scenario(alert, [alert], flaky, late, "half the pushes fail, half succeed"),
    ]
    runbook = RunbookEntry(
        meaning=(
            f"A process using ccobs' pusher failed every metric push in the last "
            f"{config.push_failure_window} (failures include pushes skipped while the circuit "
            "breaker is open)."
        ),
        impact=(
            "The Pushgateway or VictoriaMetrics holds stale values for this process; "
            f"`{config.alert_prefix}PushStale` follows."
        ),
        diagnose=(
            (
                sum_by(
                    config, "job, instance, protocol, outcome", "rate", pushes_name, window_text
                ),
                "Push rate per outcome and protocol.",
            ),
            (f"time() - {metric(config, 'push_time_seconds')}", "Age of the pushed groups."),
        ),
        mitigate=(
            "Check that the push target is up and reachable from the process "
            "(`CCOBS_PUSHGATEWAY_URL` or the configured URL).",
            "Read the process' logs (`ccobs.pusher`, `ccobs.pushgateway`): HTTP 400 means the "
            "Pushgateway "
            "rejects the exposition (e.g. a metric pushed with conflicting help or type by "
            "another job).",
            "The circuit breaker retries on its own once the target is back.",
        ),
    )
    return single_rule_family(config, alert, runbook, "push_failing_test.yaml", step, scenarios)
