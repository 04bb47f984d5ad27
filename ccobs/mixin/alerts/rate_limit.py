"""UpstreamRateLimited: the share of requests the upstream refused with 429.

Tested with 429s at twice the threshold share (fires), with streams ended by a
``rate_limit_error`` event at twice it (fires: a 429 mid-stream is a 429), and
just under it alongside overloaded 529s, which must not count.
"""

from __future__ import annotations

from ccobs.catalog import (
    ERRORS,
    OVERLOADED,
    RATE_LIMITED_ERROR_TYPE,
    RATE_LIMITED_ERROR_TYPES,
    REQUESTS,
    TOKENS,
    upstream_event_error_type,
)
from ccobs.mixin.config import MixinConfig, duration_seconds
from ccobs.mixin.names import rate_limited_ratio_record, runbook_url
from ccobs.mixin.oracle.alert_state import ModelledAlert
from ccobs.mixin.oracle.evaluation import is_above, job_ratio
from ccobs.mixin.oracle.promtool import (
    evaluation_step,
    firing_scenario,
    quiet_scenario,
    round_up,
    single_rule_family,
)
from ccobs.mixin.oracle.samples import errors_series, job_only, requests_series, sample_labels
from ccobs.mixin.oracle.series import Store
from ccobs.mixin.promql import as_threshold, by, num, sum_by
from ccobs.mixin.recording_rules import rate_limited_errors
from ccobs.mixin.rule_types import AlertFamily, AlertRule
from ccobs.mixin.runbook import RunbookEntry


def upstream_rate_limited(config: MixinConfig) -> AlertFamily:
    """``<prefix>UpstreamRateLimited``."""
    name = f"{config.alert_prefix}UpstreamRateLimited"
    job = sample_labels(config)
    threshold = as_threshold(config.rate_limited_ratio)
    window = duration_seconds(config.rate_limited_window)
    requests_name, errors_name = config.metric(REQUESTS), config.metric(ERRORS)

    def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        limited = store.select(errors_name, error_type=lambda v: v in RATE_LIMITED_ERROR_TYPES)
        ratio = job_ratio(store, limited, store.select(requests_name), t, window)
        if is_above(ratio, threshold):
            assert ratio is not None
            return [(job_only(config, job), ratio)]
        return []

    alert = ModelledAlert(
        AlertRule(
            name=name,
            expr=f"{rate_limited_ratio_record(config)} > {num(threshold)}",
            for_=config.rate_limited_for,
            severity="warning",
            summary="The upstream API is rate limiting proxy requests.",
            description=(
                "The upstream answered {{ $value | humanizePercentage }} of the requests of "
                f"{{{{ $labels.job }}}} with 429 (rate limited) over the last "
                f"{config.rate_limited_window}, above {num(threshold * 100)}%."
            ),
            runbook_url=runbook_url(config, name),
        ),
        model,
    )
    hold = duration_seconds(config.rate_limited_for)
    step = evaluation_step([window], [hold])
    late = round_up(window + hold + 2 * step, step)
    steps = late // step + 1
    per_step = 100.0

    def traffic(*errors: tuple[str, float]) -> Store:
        return Store(
            step,
            (
                requests_series(config, job, per_step, steps),
                *(
                    errors_series(config, job, kind, [(ratio * per_step, steps - 1)])
                    for kind, ratio in errors
                ),
            ),
        )

    scenarios = [
        firing_scenario(
            alert,
            [alert],
            traffic((RATE_LIMITED_ERROR_TYPE, 2 * threshold)),
            late,
            "twice the threshold share of requests rate limited",
        ),
        firing_scenario(
            alert,
            [alert],
            traffic((upstream_event_error_type("rate_limit_error"), 2 * threshold)),
            late,
            "twice the threshold share of streams ended by a rate_limit_error event",
        ),
        quiet_scenario(
            alert,
            [alert],
            traffic(
                (RATE_LIMITED_ERROR_TYPE, 0.99 * threshold),
                (OVERLOADED, 0.25),
                (upstream_event_error_type("overloaded_error"), 0.25),
            ),
            late,
            "0.99 times the threshold share rate limited (overloaded 529s and overloaded_error "
            "events do not count)",
        ),
    ]
    limited = rate_limited_errors(config)
    runbook = RunbookEntry(
        meaning=(
            f"More than {num(threshold * 100)}% of requests over the last "
            f"{config.rate_limited_window} got HTTP 429 from the upstream API, before or during "
            f"the stream (error types `{'`, `'.join(RATE_LIMITED_ERROR_TYPES)}`): the account "
            "or key hit its requests-per-minute or tokens-per-minute limit."
        ),
        impact=("Clients see 429s (or slow retries); agents like Claude Code back off and stall."),
        diagnose=(
            (rate_limited_ratio_record(config), "The recorded share of rate-limited requests."),
            (
                f"sum by ({by(config)}, model) (rate({limited}[{config.rate_limited_window}]))",
                "Rate-limited requests per second by model (limits are often per model).",
            ),
            (
                sum_by(
                    config, "job, type", "rate", config.metric(TOKENS), config.rate_limited_window
                )
                + " * 60",
                "Tokens per minute by type, to compare with the account's limits.",
            ),
        ),
        mitigate=(
            "Compare the traffic with the provider's limits for the account and model; ask "
            "for a higher tier if the load is legitimate.",
            "Spread load over more keys or models, or queue and smooth bursts at the proxy.",
            "Find a client that suddenly sends much more (loadgen left running, an agent loop).",
        ),
    )
    return single_rule_family(
        config, alert, runbook, "upstream_rate_limited_test.yaml", step, scenarios
    )
