"""PushStale and PushFailing: metrics pushed to a Pushgateway that stopped arriving.

Both read what Prometheus observes itself by scraping the Pushgateway, never
a counter the failing push would have to deliver. ``PushStale`` is per job:
the job's newest push is too old, so a group left behind by a retired pod (the
grouping key holds the host name) does not page while its successors push.
``PushFailing`` fires while the Pushgateway's ``push_failure_time_seconds`` of
a group is newer than its ``push_time_seconds``: the Pushgateway rejects the
pushes it receives. Pushes that never reach it show as ``PushStale``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ccobs.catalog import PUSHES
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
from ccobs.mixin.oracle.samples import SAMPLE_INSTANCES, job_only, sample_labels
from ccobs.mixin.oracle.series import Series, Store, build_series
from ccobs.mixin.promql import by, metric, num, seconds_text, sum_by
from ccobs.mixin.rule_types import AlertFamily, AlertRule
from ccobs.mixin.runbook import RunbookEntry


def push_stale(config: MixinConfig) -> AlertFamily:
    """``<prefix>PushStale``: a push group older than ``push_stale_seconds``."""
    name = f"{config.alert_prefix}PushStale"
    job = sample_labels(config)
    stale = config.push_stale_seconds
    stale_text = seconds_text(stale)

    def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        ages = [
            t - value
            for series in store.select("push_time_seconds")
            if (value := store.instant(series, t)) is not None
        ]
        if ages and is_above(min(ages), stale, exact=True):
            return [(job_only(config, job), min(ages))]
        return []

    alert = ModelledAlert(
        AlertRule(
            name=name,
            expr=(
                f"min by ({by(config)}) (time() - {metric(config, 'push_time_seconds')})"
                f" > {num(stale)}"
            ),
            for_=config.push_stale_for,
            severity="warning",
            summary="Metric pushes to the Pushgateway are stale.",
            description=(
                "No process of {{ $labels.job }} has pushed its metrics for "
                "{{ $value | humanizeDuration }}, more than the "
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
    # A deploy: the old pod's group stops, its successor's group starts pushing.
    successor = build_series(
        "push_time_seconds",
        {**job, "instance": "batch-worker-2"},
        0,
        [(0.0, pushes), (float(step), steps - pushes - 1)],
    )
    scenarios = [
        firing_scenario(alert, [alert], Store(step, (stopped,)), late, "pushes stop"),
        quiet_scenario(
            alert,
            [alert],
            Store(step, (lagging,)),
            late,
            "the last push is always 0.99 times the stale threshold old",
        ),
        quiet_scenario(
            alert,
            [alert],
            Store(step, (stopped, successor)),
            late,
            "after a deploy: the retired pod's group stops, its successor's pushes go on",
        ),
    ]
    push_time = metric(config, "push_time_seconds")
    runbook = RunbookEntry(
        meaning=(
            f"No push group of the job on the Pushgateway has been updated for more than "
            f"{stale_text}: every pushing process stopped, or none of their pushes arrive "
            f"(see `{config.alert_prefix}PushFailing` for pushes the Pushgateway rejects). "
            "It is per job, not per group: groups are keyed by host name, so every deploy "
            "leaves the retired pods' groups behind, stale for ever; while a successor "
            "pushes they do not page. One replica of several that cannot reach the "
            "Pushgateway therefore does not page either; `time() - push_time_seconds` "
            "below shows it."
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
            "when the job is gone for good (retired pods' groups too: they keep old "
            "instances and versions in the dashboards' variables).",
            "If it runs, read its logs for push errors (loggers `ccobs.pusher` and "
            "`ccobs.pushgateway`) and check "
            "the Pushgateway URL and reachability.",
        ),
    )
    return single_rule_family(config, alert, runbook, "push_stale_test.yaml", step, scenarios)


def push_failing(config: MixinConfig) -> AlertFamily:
    """``<prefix>PushFailing``: a group's last rejected push is newer than its last accepted one."""
    name = f"{config.alert_prefix}PushFailing"
    job = sample_labels(config)
    pushes_name = config.metric(PUSHES)
    window_text = config.push_failure_window
    labels = {**job, "instance": SAMPLE_INSTANCES[0]}

    def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        out = []
        for success in store.select("push_time_seconds"):
            group = success.label_dict
            failures = [
                f for f in store.select("push_failure_time_seconds") if f.label_dict == group
            ]
            ok = store.instant(success, t)
            failed = store.instant(failures[0], t) if failures else None
            if ok is not None and failed is not None and is_above(failed, ok, exact=True):
                out.append((group, t - ok))
        return out

    push_time = metric(config, "push_time_seconds")
    failure_time = metric(config, "push_failure_time_seconds")
    alert = ModelledAlert(
        AlertRule(
            name=name,
            expr=f"time() - {push_time}\nand\n{failure_time} > {push_time}",
            for_=config.push_failure_for,
            severity="warning",
            summary="The Pushgateway rejects metric pushes.",
            description=(
                "The Pushgateway rejected the latest pushes of {{ $labels.job }} on "
                "{{ $labels.instance }}; the last one it accepted was "
                "{{ $value | humanizeDuration }} ago."
            ),
            runbook_url=runbook_url(config, name),
        ),
        model,
    )
    hold = duration_seconds(config.push_failure_for)
    step = evaluation_step([], [hold], cap=60)
    ok_steps = 3
    late = round_up(ok_steps * step + hold + 2 * step, step)
    steps = late // step + 1

    def times(name: str, segments: Sequence[tuple[float, int]]) -> Series:
        return build_series(name, labels, 0, segments)

    broken = Store(
        step,
        (
            times("push_time_seconds", [(float(step), ok_steps), (0.0, steps - ok_steps - 1)]),
            # Timestamps: 0 (never failed), then the time of each rejected push.
            times(
                "push_failure_time_seconds",
                [
                    (0.0, ok_steps),
                    (float((ok_steps + 1) * step), 1),
                    (float(step), steps - ok_steps - 2),
                ],
            ),
        ),
    )
    # One rejected push early on, every push accepted since.
    recovered = Store(
        step,
        (
            times("push_time_seconds", [(float(step), steps - 1)]),
            times("push_failure_time_seconds", [(step / 2, 1), (0.0, steps - 1)]),
        ),
    )
    scenarios = [
        firing_scenario(alert, [alert], broken, late, "the Pushgateway rejects every push"),
        quiet_scenario(
            alert, [alert], recovered, late, "one push rejected, every later one accepted"
        ),
    ]
    runbook = RunbookEntry(
        meaning=(
            "The Pushgateway's last failed push of a group (`push_failure_time_seconds`) is "
            "newer than its last accepted one (`push_time_seconds`): pushes arrive and are "
            "rejected. Prometheus sees this by scraping the Pushgateway, so it does not depend "
            "on the failing push delivering anything. Pushes that never arrive (network, the "
            f"Pushgateway down) show as `{config.alert_prefix}PushStale` instead; the "
            "pusher's own counter, in the diagnosis queries, has the detail where the "
            "process is also scraped."
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
            (f"time() - {push_time}", "Age of the pushed groups."),
        ),
        mitigate=(
            "Check that the push target is up and reachable from the process "
            "(`CCOBS_PUSHGATEWAY_URL` or the configured URL).",
            "Read the process' logs (`ccobs.pusher`, `ccobs.pushgateway`): HTTP 400 means the "
            "Pushgateway "
            "rejects the exposition (e.g. a metric pushed with conflicting help or type by "
            "another job).",
            "The circuit breaker retries on its own once the target is back.",
            "If no group is updated at all, check the Pushgateway's own scrape (`up` of its "
            "job in Prometheus' targets page).",
        ),
    )
    return single_rule_family(config, alert, runbook, "push_failing_test.yaml", step, scenarios)
