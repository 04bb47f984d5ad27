"""UpstreamAuthErrors: the upstream refuses the key or does not know the model.

401, 403 and 404 from the upstream (and the stream error events standing for
them, ``catalog.UPSTREAM_AUTH_ERROR_TYPES``) are client errors for the
availability SLO, so a revoked key or a retired model could fail every
request without a page. Tested above the threshold share (fires), just under
it, and with every request failing but fewer errors than the guard (quiet).
"""

from __future__ import annotations

from ccobs.catalog import ERRORS, REQUESTS, UPSTREAM_AUTH_ERROR_TYPES, upstream_event_error_type
from ccobs.mixin.config import MixinConfig, duration_seconds
from ccobs.mixin.names import runbook_url
from ccobs.mixin.oracle.alert_state import ModelledAlert
from ccobs.mixin.oracle.evaluation import is_above, job_ratio, sum_rate
from ccobs.mixin.oracle.promtool import (
    evaluation_step,
    firing_scenario,
    quiet_scenario,
    round_up,
    single_rule_family,
)
from ccobs.mixin.oracle.samples import errors_series, job_only, requests_series, sample_labels
from ccobs.mixin.oracle.series import Store
from ccobs.mixin.promql import as_threshold, by, metric, num, quote, sum_by
from ccobs.mixin.rule_types import AlertFamily, AlertRule
from ccobs.mixin.runbook import RunbookEntry


def upstream_auth_errors(config: MixinConfig) -> AlertFamily:
    """``<prefix>UpstreamAuthErrors``."""
    name = f"{config.alert_prefix}UpstreamAuthErrors"
    job = sample_labels(config)
    threshold = as_threshold(config.upstream_auth_error_ratio)
    minimum = config.upstream_auth_min_errors
    window_text = config.upstream_auth_window
    window = duration_seconds(window_text)
    requests_name, errors_name = config.metric(REQUESTS), config.metric(ERRORS)
    matcher = f"error_type=~{quote('|'.join(UPSTREAM_AUTH_ERROR_TYPES))}"

    def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        refused = store.select(errors_name, error_type=lambda v: v in UPSTREAM_AUTH_ERROR_TYPES)
        ratio = job_ratio(store, refused, store.select(requests_name), t, window)
        count = sum_rate(store, refused, t, window, is_rate=False)
        if is_above(ratio, threshold) and is_above(count, minimum):
            assert ratio is not None
            return [(job_only(config, job), ratio)]
        return []

    errors = sum_by(config, "job", "rate", errors_name, window_text, matcher)
    requests = sum_by(config, "job", "rate", requests_name, window_text)
    count = sum_by(config, "job", "increase", errors_name, window_text, matcher)
    alert = ModelledAlert(
        AlertRule(
            name=name,
            expr=f"{errors}\n/\n{requests}\n> {num(threshold)}\nand\n{count} > {num(minimum)}",
            for_=config.upstream_auth_for,
            severity="warning",
            summary="The upstream refuses the proxy's key or does not know the model.",
            description=(
                "The upstream answered {{ $value | humanizePercentage }} of the requests of "
                "{{ $labels.job }} with 401, 403 or 404 over the last "
                f"{window_text}, above {num(threshold * 100)}%."
            ),
            runbook_url=runbook_url(config, name),
        ),
        model,
    )
    hold = duration_seconds(config.upstream_auth_for)
    step = evaluation_step([window], [hold])
    late = round_up(window + hold + 2 * step, step)
    steps = late // step + 1
    per_step = max(100.0, 4 * minimum)
    event = upstream_event_error_type("not_found_error")

    def traffic(requests_per_step: float, *errors: tuple[str, float]) -> Store:
        return Store(
            step,
            (
                requests_series(config, job, requests_per_step, steps),
                *(
                    errors_series(config, job, kind, [(share * requests_per_step, steps - 1)])
                    for kind, share in errors
                ),
            ),
        )

    # Few requests, every one refused: fewer errors in the window than the guard.
    few = minimum / 2 * step / window
    scenarios = [
        firing_scenario(
            alert,
            [alert],
            traffic(per_step, ("upstream_401", threshold), (event, threshold)),
            late,
            f"twice the threshold share refused (401s and {event} stream events)",
        ),
        quiet_scenario(
            alert,
            [alert],
            traffic(per_step, ("upstream_403", 0.99 * threshold)),
            late,
            "0.99 times the threshold share refused",
        ),
        quiet_scenario(
            alert,
            [alert],
            traffic(few, ("upstream_404", 1.0)),
            late,
            f"every request refused, but only {num(minimum / 2)} per {window_text}",
        ),
    ]
    refused = metric(config, errors_name, matcher)
    runbook = RunbookEntry(
        meaning=(
            f"More than {num(threshold * 100)}% of requests over the last {window_text} (and "
            f"more than {num(minimum)} of them) were refused by the upstream as unauthorized "
            f"(401, 403) or not found (404), before or during the stream (error types "
            f"`{'`, `'.join(UPSTREAM_AUTH_ERROR_TYPES)}`). They are the client's errors for "
            "the availability SLO, so the error-budget alert stays silent even at 100%."
        ),
        impact=(
            "Every affected request fails: a revoked or expired key fails all traffic using "
            "it, a retired model all requests naming it."
        ),
        diagnose=(
            (
                f"sum by ({by(config)}, model, error_type) (rate({refused}[{window_text}]))",
                "Refusals by model and type: one model (retired, 404) or all (the key, 401).",
            ),
        ),
        mitigate=(
            "401/403 on every model: check the upstream API key the proxy or its clients use "
            "(revoked, expired, wrong workspace) and rotate it.",
            "404 for one model: the model name is retired or misspelt; move clients to its "
            "successor.",
        ),
    )
    return single_rule_family(
        config, alert, runbook, "upstream_auth_errors_test.yaml", step, scenarios
    )
