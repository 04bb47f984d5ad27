"""TruncatedAnswersHigh: a rising share of answers cut off by their output-token limit.

A truncated answer (stop reason ``max_tokens``, or ``length`` on OpenAI) came
back whole and with status 200, so no error alert sees it; yet the client
got half a reply. Tested with truncated answers at twice the threshold share
(fires, the Anthropic and the OpenAI word alike), just under it alongside
refusals and tool calls, which must not count, and at twice it over too few
answers to judge (its traffic guard).
"""

from __future__ import annotations

from ccobs.catalog import STOP_REASONS_COUNTED, TRUNCATED_STOP_REASONS
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
from ccobs.mixin.oracle.samples import (
    SAMPLE_INSTANCES,
    SAMPLE_MODEL,
    job_only,
    sample_labels,
)
from ccobs.mixin.oracle.series import Series, Store, build_series
from ccobs.mixin.promql import as_threshold, by, metric, num, quote
from ccobs.mixin.rule_types import AlertFamily, AlertRule
from ccobs.mixin.runbook import RunbookEntry


def _answers_series(
    config: MixinConfig, job: dict[str, str], stop_reason: str, per_step: float, steps: int
) -> Series:
    """The stop-reasons counter of one stop reason, growing ``per_step`` a step."""
    labels = {
        **job,
        "instance": SAMPLE_INSTANCES[0],
        "stop_reason": stop_reason,
        "model": SAMPLE_MODEL,
        "service_type": "anthropic",
    }
    return build_series(config.metric(STOP_REASONS_COUNTED), labels, 0, [(per_step, steps - 1)])


def truncated_answers_high(config: MixinConfig) -> AlertFamily:
    """``<prefix>TruncatedAnswersHigh``: the truncated share above its threshold, given traffic."""
    name = f"{config.alert_prefix}TruncatedAnswersHigh"
    job = sample_labels(config)
    threshold = as_threshold(config.truncated_ratio)
    minimum = config.truncated_min_answers
    window = duration_seconds(config.truncated_window)
    answers = config.metric(STOP_REASONS_COUNTED)
    truncated = f"stop_reason=~{quote('|'.join(TRUNCATED_STOP_REASONS))}"

    def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        cut = sum_rate(
            store, store.select(answers, stop_reason=TRUNCATED_STOP_REASONS.__contains__), t, window
        )
        whole = sum_rate(store, store.select(answers), t, window)
        seen = sum_rate(store, store.select(answers), t, window, is_rate=False)
        if cut is None or not whole:
            return []
        ratio = cut / whole
        if is_above(ratio, threshold) and is_above(seen, minimum):
            return [(job_only(config, job), ratio)]
        return []

    w = config.truncated_window
    alert = ModelledAlert(
        AlertRule(
            name=name,
            expr=(
                f"(\n  sum by ({by(config)}) (rate({metric(config, answers, truncated)}[{w}]))\n"
                f"/\n  sum by ({by(config)}) (rate({metric(config, answers)}[{w}]))\n"
                f") > {num(threshold)}\nand\n"
                f"sum by ({by(config)}) (increase({metric(config, answers)}[{w}])) > {num(minimum)}"
            ),
            for_=config.truncated_for,
            severity="warning",
            summary="Many answers are cut off by their output-token limit.",
            description=(
                "{{ $value | humanizePercentage }} of the answers of {{ $labels.job }} over the "
                f"last {w} stopped at their output-token limit "
                f"({' or '.join(TRUNCATED_STOP_REASONS)}), above {num(threshold * 100)}%."
            ),
            runbook_url=runbook_url(config, name),
        ),
        model,
    )
    hold = duration_seconds(config.truncated_for)
    step = evaluation_step([window], [hold])
    late = round_up(window + hold + 2 * step, step)
    steps = late // step + 1
    busy = max(100.0, 4 * minimum * step / window)
    few = minimum / 2 * step / window

    def traffic(per_step: float, **shares: float) -> Store:
        rest = 1.0 - sum(shares.values())
        mix = {"end_turn": rest, **shares}
        return Store(
            step,
            tuple(
                _answers_series(config, job, reason, share * per_step, steps)
                for reason, share in mix.items()
            ),
        )

    scenarios = [
        firing_scenario(
            alert,
            [alert],
            traffic(busy, max_tokens=2 * threshold),
            late,
            "twice the threshold share of answers stopped at max_tokens",
        ),
        firing_scenario(
            alert,
            [alert],
            traffic(busy, length=2 * threshold),
            late,
            "twice the threshold share of OpenAI answers stopped at length",
        ),
        quiet_scenario(
            alert,
            [alert],
            traffic(busy, max_tokens=0.99 * threshold, refusal=0.2, tool_use=0.2),
            late,
            "0.99 times the threshold share truncated (refusals and tool calls do not count)",
        ),
    ]
    if minimum > 0:
        scenarios.append(
            quiet_scenario(
                alert,
                [alert],
                traffic(few, max_tokens=2 * threshold),
                late,
                f"twice the threshold share truncated, but only {num(minimum / 2)} answers per "
                f"{w} (the guard is {num(minimum)})",
            )
        )
    runbook = RunbookEntry(
        meaning=(
            f"More than {num(threshold * 100)}% of the answers over the last {w} stopped "
            f"because they reached their output-token limit (stop reason "
            f"`{'` or `'.join(TRUNCATED_STOP_REASONS)}`), over more than {num(minimum)} "
            "answers. They are 200s, so no error alert counts them."
        ),
        impact=(
            "Clients get cut-off replies: half a code edit, a JSON document without its end, "
            "an agent that has to ask again (paying for the output twice)."
        ),
        diagnose=(
            (
                f"sum by ({by(config)}, model, stop_reason) (rate({metric(config, answers)}[{w}]))",
                "Answers per second by model and stop reason: one model, or every one?",
            ),
            (
                f"sum by ({by(config)}, model) (rate({metric(config, answers, truncated)}[{w}]))"
                f"\n/\nsum by ({by(config)}, model) (rate({metric(config, answers)}[{w}]))",
                "The truncated share per model.",
            ),
        ),
        mitigate=(
            "Find the client that sets a low max_tokens (max_output_tokens): the access log "
            "has stop_reason and output_tokens per request, with the caller.",
            "A model change (a new default model that writes longer answers, or reasoning "
            "that eats the budget) shows as a step on the answers dashboard: raise the limit "
            "in the client or pin the model.",
        ),
    )
    return single_rule_family(
        config, alert, runbook, "truncated_answers_high_test.yaml", step, scenarios
    )
