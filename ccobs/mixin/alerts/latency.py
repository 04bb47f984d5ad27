"""Latency: TTFTHigh (time to first token, pages) and P99LatencyHigh (total time, informational).

For LLM traffic the latency users feel is the time to the first token: a
long generation legitimately takes minutes (the duration buckets reach
1,200 s), so total response time is informational (severity ``info``) and
the TTFT percentile is what warns. Both are tested with a histogram whose
observations all sit in the bucket just above the threshold (fires) or just
under it (quiet); TTFT also with slow streams too few to judge (its traffic
guard).
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
from ccobs.mixin.promql import as_threshold, by, metric, num
from ccobs.mixin.rule_types import AlertFamily, AlertRule
from ccobs.mixin.runbook import RunbookEntry


def _histogram(
    config: MixinConfig,
    name: str,
    threshold: float,
    above: float,
    step: int,
    steps: int,
    per_step: float,
) -> Store:
    """``per_step`` observations a step, all in the bucket just above the bound ``above``.

    Bounds are half, once and twice the threshold; the ``_count`` series
    equals the ``+Inf`` bucket, as a real histogram's does.
    """
    job = sample_labels(config)
    base = {
        **job,
        "instance": SAMPLE_INSTANCES[0],
        "model": SAMPLE_MODEL,
        "endpoint": SAMPLE_ENDPOINT,
        "service_type": "anthropic",
    }
    series = []
    for bound in (threshold / 2, threshold, 2 * threshold, math.inf):
        text = "+Inf" if math.isinf(bound) else num(bound)
        increment = per_step if bound > above else 0.0
        labels = {**base, "le": text}
        series.append(build_series(name + "_bucket", labels, 0, [(increment, steps - 1)]))
    series.append(build_series(name + "_count", base, 0, [(per_step, steps - 1)]))
    return Store(step, tuple(series))


def _quantile_by_job(store: Store, bucket_name: str, q: float, t: int, window: int) -> float | None:
    """``histogram_quantile(q, sum by (job, le) (rate(bucket[window])))`` for the one job."""
    by_le: dict[float, float] = {}
    for series in store.select(bucket_name):
        rate = sum_rate(store, [series], t, window)
        if rate is not None:
            le = float(series.label_dict["le"])
            by_le[le] = by_le.get(le, 0.0) + rate
    return bucket_quantile(q, list(by_le.items())) if by_le else None


def ttft_high(config: MixinConfig) -> AlertFamily:
    """``<prefix>TTFTHigh``: the TTFT percentile above its threshold, given enough streams."""
    name = f"{config.alert_prefix}TTFTHigh"
    threshold = as_threshold(config.ttft_p99_seconds)
    q = config.ttft_quantile
    minimum = config.ttft_min_requests
    window = duration_seconds(config.latency_window)
    job = sample_labels(config)
    ttft = config.metric(TIME_TO_FIRST_TOKEN)
    pct = num(q * 100)

    def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        value = _quantile_by_job(store, ttft + "_bucket", q, t, window)
        seen = sum_rate(store, store.select(ttft + "_count"), t, window, is_rate=False)
        if is_above(value, threshold) and is_above(seen, minimum):
            assert value is not None
            return [(job_only(config, job), value)]
        return []

    buckets = metric(config, ttft + "_bucket")
    alert = ModelledAlert(
        AlertRule(
            name=name,
            expr=(
                f"histogram_quantile(\n  {num(q)},\n"
                f"  sum by ({by(config)}, le) (rate({buckets}[{config.latency_window}]))\n)"
                f" > {num(threshold)}\nand\n"
                f"sum by ({by(config)}) (increase({metric(config, ttft + '_count')}"
                f"[{config.latency_window}])) > {num(minimum)}"
            ),
            for_=config.latency_for,
            severity="warning",
            summary="Time to first token is above its threshold.",
            description=(
                f"The p{pct} time to first token of {{{{ $labels.job }}}} over the last "
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
    busy = max(float(step), 4 * minimum * step / window)
    # Half the guard over a window: slow, but too few streams to page on.
    few = minimum / 2 * step / window

    def streams(above: float, per_step: float) -> Store:
        return _histogram(config, ttft, threshold, above, step, steps, per_step)

    scenarios = [
        firing_scenario(
            alert,
            [alert],
            streams(threshold, busy),
            late,
            f"every first token between {num(threshold)}s and {num(2 * threshold)}s",
        ),
        quiet_scenario(
            alert,
            [alert],
            streams(threshold / 2, busy),
            late,
            f"every first token between {num(threshold / 2)}s and {num(threshold)}s "
            f"(p{pct} just under the threshold)",
        ),
    ]
    if minimum > 0:
        scenarios.append(
            quiet_scenario(
                alert,
                [alert],
                streams(threshold, few),
                late,
                f"every first token slow, but only {num(minimum / 2)} streams per "
                f"{config.latency_window} (the guard is {num(minimum)})",
            )
        )
    runbook = RunbookEntry(
        meaning=(
            f"The {pct}th percentile of time to first token (request start to the first "
            f"generated token of a stream) has been above {num(threshold)}s for "
            f"{config.latency_for}, over more than {num(minimum)} streams per "
            f"{config.latency_window} (fewer are too few to judge a percentile). This is the "
            "latency users feel; total response time depends on how much the client asked "
            "to generate, so `P99LatencyHigh` is informational only."
        ),
        impact=(
            "Interactive users (chat, coding agents) wait before anything appears; clients "
            "with short first-byte timeouts fail and retry, which adds load."
        ),
        diagnose=(
            (
                f"histogram_quantile({num(q)}, sum by ({by(config)}, model, le) (rate({buckets}"
                f"[{config.latency_window}])))",
                "Per model: one model queueing upstream, or all of them?",
            ),
            (
                f"sum by ({by(config)}, model) (rate({metric(config, ttft + '_count')}"
                f"[{config.latency_window}]))",
                "Streams per second per model: a burst of traffic can queue upstream.",
            ),
            (
                f"sum by ({by(config)}) ({metric(config, config.metric(ACTIVE_REQUESTS))})",
                "Requests in flight in the proxy: saturation of the proxy itself.",
            ),
        ),
        mitigate=(
            "Check the provider's status page; move latency-sensitive traffic to another "
            "model or region.",
            "Very long prompts (large contexts without prompt caching) delay the first token: "
            "check cache reads on the tokens dashboard.",
            "If the proxy is saturated (requests in flight piling up, CPU), add replicas.",
        ),
    )
    return single_rule_family(config, alert, runbook, "ttft_high_test.yaml", step, scenarios)


def p99_latency_high(config: MixinConfig) -> AlertFamily:
    """``<prefix>P99LatencyHigh``."""
    name = f"{config.alert_prefix}P99LatencyHigh"
    threshold = as_threshold(config.latency_p99_seconds)
    window = duration_seconds(config.latency_window)
    job = sample_labels(config)
    bucket_name = config.metric(RESPONSE_DURATION) + "_bucket"

    def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        p99 = _quantile_by_job(store, bucket_name, 0.99, t, window)
        if not is_above(p99, threshold):
            return []
        assert p99 is not None
        return [(job_only(config, job), p99)]

    alert = ModelledAlert(
        AlertRule(
            name=name,
            expr=f"{latency_p99_record(config)} > {num(threshold)}",
            for_=config.latency_for,
            severity="info",
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
        return _histogram(
            config, config.metric(RESPONSE_DURATION), threshold, above, step, steps, float(step)
        )

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
            f"included) has been above {num(threshold)}s for {config.latency_for}. "
            "Informational (severity `info`, routed without paging): an LLM response takes "
            "as long as the output the client asked for, so long generations and agent "
            "traffic legitimately reach minutes; the latency users feel, time to first "
            "token, is what `TTFTHigh` warns on. A per-model threshold would still fire on "
            "any model used for long outputs."
        ),
        impact=(
            "The slowest requests take long enough that clients may time out and retry, "
            "which adds load; interactive users wait."
        ),
        diagnose=(
            (latency_p99_record(config), "The recorded p99 per job."),
            (
                f"histogram_quantile(0.99, sum by ({by(config)}, model, le) (rate({buckets}"
                f"[{config.latency_window}])))",
                "p99 per model: long generations of one model, or all of them?",
            ),
            (
                f"histogram_quantile(0.99, sum by ({by(config)}, le) (rate("
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
