"""The answers dashboard: why answers stop, how fast they stream, and how many are retries.

What the upstream's answers say about themselves (see :mod:`ccobs.answer_signals`):
truncated and refused answers are a quality signal (a ``max_tokens`` set too
low, a filter tripping), time per output token is the model's speed as the
client feels it while a stream runs, and retries tell a retry storm after
429s and 529s from new demand.
"""

from __future__ import annotations

from ccobs.catalog import (
    REFUSED_STOP_REASONS,
    REQUESTS,
    RETRIED_REQUESTS,
    STOP_REASONS_COUNTED,
    TIME_PER_OUTPUT_TOKEN,
    TRUNCATED_STOP_REASONS,
)
from ccobs.mixin.config import MixinConfig
from ccobs.mixin.dashboards.common import board_title, board_uid, variables
from ccobs.mixin.dashboards.queries import Queries, number
from ccobs.mixin.grafana import Json, Timeseries, dashboard, target


def _one_of(values: tuple[str, ...]) -> str:
    return f'stop_reason=~"{"|".join(values)}"'


def answers(config: MixinConfig) -> Json:
    """Stop reasons, output speed and retries of the proxy's answers."""
    q = Queries(config)
    all_answers = q.rate(STOP_REASONS_COUNTED)
    truncated = q.share(q.rate(STOP_REASONS_COUNTED, _one_of(TRUNCATED_STOP_REASONS)), all_answers)
    refused = q.share(q.rate(STOP_REASONS_COUNTED, _one_of(REFUSED_STOP_REASONS)), all_answers)
    retried = q.share(q.rate(RETRIED_REQUESTS), q.rate(REQUESTS))
    p50 = q.quantile(0.5, TIME_PER_OUTPUT_TOKEN, by=("model",))
    p99 = q.quantile(0.99, TIME_PER_OUTPUT_TOKEN, by=("model",))
    return dashboard(
        uid=board_uid(config, "answers"),
        title=board_title(config, "Answers"),
        description="Why the upstream's answers stop, how fast they stream, and how many "
        "requests are retries.",
        tags=config.dashboard_tags,
        variables=variables(config),
        rows=[
            [
                Timeseries(
                    "Answers by stop reason",
                    "Answers per second by why the model stopped: Anthropic's stop_reason, "
                    "OpenAI's finish_reason (a Responses answer mapped onto it), else other.",
                    [target(q.rate(STOP_REASONS_COUNTED, by=("stop_reason",)), "{{stop_reason}}")],
                    unit="reqps",
                    stack=True,
                ),
                Timeseries(
                    "Truncated and refused answers",
                    "Share of answers cut off by their output-token limit (stop reason "
                    f"{' or '.join(TRUNCATED_STOP_REASONS)}) and refused (stop reason "
                    f"{' or '.join(REFUSED_STOP_REASONS)}); the truncated-answers alert fires "
                    f"once the truncated share over {config.truncated_window} stays above the "
                    f"dashed line for {config.truncated_for}.",
                    [target(truncated, "truncated"), target(refused, "refused")],
                    unit="percentunit",
                    steps=[(number(config.truncated_ratio), "red")],
                ),
            ],
            [
                Timeseries(
                    "Time per output token p50 / p99",
                    "Seconds per output token of streamed answers, from the first token to the "
                    "end over the tokens after the first, by model: the model's speed while it "
                    "streams (time to first token is on the overview).",
                    [
                        target(p50, "p50 {{model}}"),
                        target(p99, "p99 {{model}}"),
                    ],
                    unit="s",
                ),
                Timeseries(
                    "Output tokens per second per stream",
                    "Output tokens per second of streamed answers by model: the median stream, "
                    "and the slowest 1 % (1 / time per output token at p50 and p99).",
                    [
                        target(f"1 / {p50}", "median {{model}}"),
                        target(f"1 / {p99}", "slowest 1 % {{model}}"),
                    ],
                    unit="short",
                ),
            ],
            [
                Timeseries(
                    "Retried requests by retry",
                    "Requests per second that are a client SDK's retry (x-stainless-retry-count "
                    "1, 2, 3+): a storm of them after 429s or 529s is retries, not new demand.",
                    [target(q.rate(RETRIED_REQUESTS, by=("retry",)), "retry {{retry}}")],
                    unit="reqps",
                    stack=True,
                ),
                Timeseries(
                    "Retry share",
                    "Retried requests per request: the load that retries add on top of the "
                    "clients' own requests.",
                    [target(retried, "retried")],
                    unit="percentunit",
                ),
            ],
        ],
    )
