"""P99LatencyHigh: the recorded p99 response time above its threshold.

Tested with a histogram whose observations all sit in the bucket just above
the threshold (fires) or just under it (quiet).
"""

from __future__ import annotations

import math

from ccobs.catalog import ACTIVE_REQUESTS, RESPONSE_DURATION, TIME_TO_FIRST_TOKEN
from ccobs.mixin.config import MixinConfig, duration_seconds
from ccobs.mixin.names import latency_p99_record, runbook_url
from ccobs.mixin.oracle.alert_state import ModelledAlert
from ccobs.mixin.oracle.evaluation import bucket_quantile, is_above, sum_rate
from ccobs.mixin.oracle.promtool import (
    evaluation_step,
    firing_scenario,
    quiet_scenario,
    round_up,
    single_rule_family,
)
from ccobs.mixin.oracle.samples import (
    SAMPLE_ENDPOINT,
    SAMPLE_INSTANCES,
    SAMPLE_MODEL,
    job_only,
    sample_labels,
)
from ccobs.mixin.oracle.series import Store, build_series
from ccobs.mixin.promql import as_threshold, metric, num
from ccobs.mixin.rule_types import AlertFamily, AlertRule
from ccobs.mixin.runbook import RunbookEntry


def p99_latency_high(config: MixinConfig) -> AlertFamily:
    """``<prefix>P99LatencyHigh``."""
    name = f"{config.alert_prefix}P99LatencyHigh"
    threshold = as_threshold(config.latency_p99_seconds)
    window = duration_seconds(config.latency_window)
    job = sample_labels(config)
    bucket_name = config.metric(RESPONSE_DURATION) + "_bucket"

    def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        by_le: dict[float, float] = {}
        for series in store.select(bucket_name):
            rate = sum_rate(store, [series], t, window)
            if rate is not None:
                le = float(series.label_dict["le"])
                by_le[le] = by_le.get(le, 0.0) + rate
        if not by_le:
            return []
        p99 = bucket_quantile(0.99, list(by_le.items()))
        return [(job_only(job), p99)] if is_above(p99, threshold) else []

    alert = ModelledAlert(
        AlertRule(
            name=name,
            expr=f"{latency_p99_record(config)} > {num(threshold)}",
            for_=config.latency_for,
            severity="warning",
            summary="Proxy p99 response time is above its threshold.",
            description=(
                "The p99 response time of {{ $labels.job }} over the last "
                f"{config.latency_window} is {{{{ $value | humanizeDuration }}}}, above the "
                f"{num(threshold)}s threshold."
            ),
            runbook_url=runbook_url(config, name),
        ),
        model,
    )
    hold = duration_seconds(config.latency_for)
    step = evaluation_step([window], [hold])
    late = round_up(window + hold + step, step)
    steps = late // step + 1

    def histogram(above: float) -> Store:
        """Every observation in the bucket just above the bound ``above`` (of those below)."""
        bounds = (threshold / 2, threshold, 2 * threshold, math.inf)
        series = []
        for bound in bounds:
            text = "+Inf" if math.isinf(bound) else num(bound)
            per_step = float(step) if bound > above else 0.0
            labels = {
                **job,
                "instance": SAMPLE_INSTANCES[0],
                "model": SAMPLE_MODEL,
                "endpoint": SAMPLE_ENDPOINT,
                "service_type": "anthropic",
                "le": text,
            }
            series.append(build_series(bucket_name, labels, 0, [(per_step, steps - 1)]))
        return Store(step, tuple(series))

    scenarios = [
        firing_scenario(
            alert,
            [alert],
            histogram(threshold),
            late,
            f"every request between {num(threshold)}s and {num(2 * threshold)}s",
        ),
        quiet_scenario(
            alert,
            [alert],
            histogram(threshold / 2),
            late,
            f"every request between {num(threshold / 2)}s and {num(threshold)}s "
            "(p99 just under the threshold)",
        ),
    ]
    buckets = metric(config, bucket_name)
    runbook = RunbookEntry(
        meaning=(
            f"The 99th percentile of response time (request start to last byte, streams "
            f"included) has been above {num(threshold)}s for {config.latency_for}."
        ),
        impact=(
            "The slowest requests take long enough that clients may time out and retry, "
            "which adds load; interactive users wait."
        ),
        diagnose=(
            (latency_p99_record(config), "The recorded p99 per job."),
            (
                f"histogram_quantile(0.99, sum by (job, model, le) (rate({buckets}"
                f"[{config.latency_window}])))",
                "p99 per model: long generations of one model, or all of them?",
            ),
            (
                "histogram_quantile(0.99, sum by (job, le) (rate("
                f"{metric(config, config.metric(TIME_TO_FIRST_TOKEN) + '_bucket')}"
                f"[{config.latency_window}])))",
                "p99 time to first token: a slow start means upstream queueing, a slow "
                "finish long outputs.",
            ),
        ),
        mitigate=(
            "If one model is slow, check the provider's status page and move traffic to "
            "another model or region.",
            "If outputs are long (`max_tokens`), that latency is expected: raise the threshold "
            "for that traffic or alert per model.",
            "Check the proxy itself for saturation: CPU, and requests in flight "
            f"(`{config.metric(ACTIVE_REQUESTS)}`) piling up.",
        ),
    )
    return single_rule_family(config, alert, runbook, "p99_latency_high_test.yaml", step, scenarios)
