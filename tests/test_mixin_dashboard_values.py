"""Dashboard queries evaluated for real, by promtool, on hand-made series.

``test_mixin_dashboards.py`` checks the queries' shape; this checks what
they compute in the cases a reader gets wrong (the cache hit ratio's
denominator, a stat with no traffic). Each case is a promtool unit test whose
expression compares the panel query, as Grafana sends it, with the expected
value and returns 1 when they agree within 1e-9.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from realservers import require_binary

from ccobs.catalog import (
    ERRORS,
    INFO,
    RATE_LIMIT_LIMIT,
    RATE_LIMIT_REMAINING,
    REQUESTS,
    RETRIED_REQUESTS,
    STOP_REASONS_COUNTED,
    TOKENS,
    UNPRICED_REQUESTS,
)
from ccobs.mixin.config import MixinConfig
from ccobs.mixin.dashboards import Queries, build_dashboards
from ccobs.mixin.dashboards.queries import or_none
from ccobs.mixin.dashboards.upstream_limits import headroom_share
from ccobs.mixin.grafana import interpolate, iter_panels

pytestmark = pytest.mark.integration

CONFIG = MixinConfig()
VALUES = {
    "__rate_interval": "5m",
    "__range": "1h",
    "__range_s": "3600",
    "job": "ccproxy",
    "instance": ".*",
    "model": ".*",
    "service_type": ".*",
}
"""What Grafana substitutes: one job, every instance, model and service type."""

LABELS = 'job="ccproxy", instance="a:8000", model="claude-sonnet-4-6", service_type="anthropic"'


def tokens(kind: str, per_minute: int) -> dict[str, str]:
    """A token counter of one type growing by ``per_minute`` for an hour."""
    name = CONFIG.metric(TOKENS)
    return {"series": f'{name}{{{LABELS}, type="{kind}"}}', "values": f"0+{per_minute}x60"}


def promtool_passes(
    tmp_path: Path, series: list[dict[str, str]], expr_tests: list[dict[str, Any]]
) -> None:
    """Assert that promtool's ``promql_expr_test`` cases hold over ``series`` (1m apart)."""
    test: dict[str, Any] = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": expr_tests}],
    }
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False), encoding="utf-8")
    result = subprocess.run(
        [require_binary("promtool"), "test", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def evaluates_to(
    tmp_path: Path, series: list[dict[str, str]], expr: str, value: float, labels: str = "{}"
) -> None:
    """Assert that ``expr`` (a panel query) is one series ``labels`` of ``value`` at 1h."""
    check = f"abs(({interpolate(expr, VALUES)}) - {value!r}) < bool 1e-9"
    expected = [{"labels": labels, "value": 1}]
    promtool_passes(tmp_path, series, [{"expr": check, "eval_time": "1h", "exp_samples": expected}])


# --- cache hit ratio ------------------------------------------------------------

ISSUE_EXAMPLE = [
    tokens("input", 1_000),
    tokens("cache_write", 100_000),
    tokens("cache_read", 100_000),
    tokens("output", 5_000),
]
"""The issue's example: 1k input, 100k cache writes and 100k cache reads (and some output)."""


@pytest.mark.parametrize("whole_range", [True, False], ids=["over the range", "rate"])
def test_cache_hit_ratio_divides_by_every_prompt_token(tmp_path: Path, whole_range: bool) -> None:
    # 100k / (1k + 100k + 100k), about 50 %; reads over input + reads alone would say 99 %.
    expr = Queries(CONFIG).cache_hit_ratio(whole_range=whole_range)

    evaluates_to(tmp_path, ISSUE_EXAMPLE, expr, 100_000 / 201_000)


def test_cache_hit_ratio_by_model_is_zero_without_cache_reads(tmp_path: Path) -> None:
    series = [tokens("input", 1_000), tokens("cache_write", 100_000)]

    expr = Queries(CONFIG).cache_hit_ratio(by=("model",))

    evaluates_to(tmp_path, series, expr, 0.0, labels='{model="claude-sonnet-4-6"}')


# --- error ratio and error budget -------------------------------------------------


def requests(per_minute: int) -> dict[str, str]:
    """A request counter growing by ``per_minute`` for an hour (0: present, but idle)."""
    name = CONFIG.metric(REQUESTS)
    labels = f'{LABELS}, endpoint="/v1/messages", method="POST", status="200"'
    return {"series": f"{name}{{{labels}}}", "values": f"0+{per_minute}x60"}


def errors(error_type: str, per_minute: int) -> dict[str, str]:
    name = CONFIG.metric(ERRORS)
    labels = f'{LABELS}, endpoint="/v1/messages", error_type="{error_type}"'
    return {"series": f"{name}{{{labels}}}", "values": f"0+{per_minute}x60"}


def test_error_ratio_over_the_range_is_zero_without_traffic(tmp_path: Path) -> None:
    # 0/0 is NaN in PromQL; the stat shows the errors there were: none.
    evaluates_to(tmp_path, [requests(0)], Queries(CONFIG).error_ratio_over("$__range"), 0.0)


def test_error_ratio_over_the_range_counts_only_budget_errors(tmp_path: Path) -> None:
    series = [requests(100), errors("upstream_overloaded", 2), errors("invalid_request", 50)]

    evaluates_to(tmp_path, series, Queries(CONFIG).error_ratio_over("$__range"), 0.02)


def test_error_budget_remaining_is_whole_without_traffic(tmp_path: Path) -> None:
    evaluates_to(tmp_path, [requests(0)], Queries(CONFIG).error_budget_remaining(), 1.0)


def test_error_budget_remaining_goes_negative_when_overspent(tmp_path: Path) -> None:
    # 2 % errors against a 1 % budget: the budget is spent twice over.
    series = [requests(100), errors("upstream_overloaded", 2)]

    evaluates_to(tmp_path, series, Queries(CONFIG).error_budget_remaining(), -1.0)


# --- annotations ------------------------------------------------------------------


def test_version_change_annotation_marks_the_step_a_new_version_appears(tmp_path: Path) -> None:
    # 1.0 runs for 30 minutes; 1.1 replaces it at minute 30 (a deploy).
    name = CONFIG.metric(INFO)
    base = 'job="ccproxy", instance="a:8000", python_version="3.12", platform="linux"'
    series = [
        {"series": f'{name}{{{base}, version="1.0"}}', "values": "1x30"},
        {"series": f'{name}{{{base}, version="1.1"}}', "values": "_x30 1x29"},
    ]
    expr = interpolate(Queries(CONFIG).version_changes(), VALUES)
    new = [{"labels": '{job="ccproxy", version="1.1"}', "value": 1}]

    promtool_passes(
        tmp_path,
        series,
        [
            {"expr": expr, "eval_time": "10m", "exp_samples": []},
            {"expr": expr, "eval_time": "30m", "exp_samples": new},
            {"expr": expr, "eval_time": "45m", "exp_samples": []},
        ],
    )


# --- panels whose healthy answer is "none" ------------------------------------------


def test_a_by_label_panel_reads_one_zero_none_when_it_has_nothing(tmp_path: Path) -> None:
    query = or_none(Queries(CONFIG).increase(UNPRICED_REQUESTS, by=("model",)), "model")

    evaluates_to(tmp_path, [tokens("input", 1)], query, 0.0, '{model="none"}')


def test_a_by_label_panel_shows_only_its_series_when_it_has_some(tmp_path: Path) -> None:
    unpriced = {
        "series": f"{CONFIG.metric(UNPRICED_REQUESTS)}{{{LABELS}}}",
        "values": "0+1x60",
    }
    query = or_none(Queries(CONFIG).increase(UNPRICED_REQUESTS, by=("model",)), "model")

    evaluates_to(tmp_path, [unpriced], query, 60.0, '{model="claude-sonnet-4-6"}')


def test_firing_alert_count_is_zero_when_nothing_fires(tmp_path: Path) -> None:
    evaluates_to(tmp_path, [tokens("input", 1)], Queries(CONFIG).firing_alert_count(), 0.0)


# --- rate-limit headroom --------------------------------------------------------


def test_headroom_is_the_lowest_share_left_over_instances(tmp_path: Path) -> None:
    """Two proxies in front of one key: the panel shows the one that saw the least left."""
    key = 'job="ccproxy", api="anthropic", limit="requests", key_alias="team-a"'
    series = [
        {"series": f'{CONFIG.metric(spec)}{{{key}, instance="{instance}"}}', "values": value}
        for spec, instance, value in (
            (RATE_LIMIT_LIMIT, "a:8000", "4000+0x60"),
            (RATE_LIMIT_REMAINING, "a:8000", "1000+0x60"),
            (RATE_LIMIT_LIMIT, "b:8000", "4000+0x60"),
            (RATE_LIMIT_REMAINING, "b:8000", "3000+0x60"),
        )
    ]

    evaluates_to(
        tmp_path,
        series,
        headroom_share(Queries(CONFIG)),
        0.25,
        '{api="anthropic", limit="requests", key_alias="team-a"}',
    )


# --- the answers dashboard ---------------------------------------------------------


def answers_query(title: str, ref: int = 0) -> str:
    """The ``ref``-th query of the answers dashboard's panel ``title``, as built."""
    board = build_dashboards(CONFIG)["ccobs-answers.json"]
    (panel,) = [p for p in iter_panels(board) if p["title"] == title]
    expr: str = panel["targets"][ref]["expr"]
    return expr


def stop_reasons(**per_minute: int) -> list[dict[str, str]]:
    name = CONFIG.metric(STOP_REASONS_COUNTED)
    return [
        {"series": f'{name}{{{LABELS}, stop_reason="{reason}"}}', "values": f"0+{count}x60"}
        for reason, count in per_minute.items()
    ]


def test_truncated_share_counts_max_tokens_and_length_among_all_answers(tmp_path: Path) -> None:
    series = stop_reasons(end_turn=6, tool_use=2, max_tokens=1, length=1)

    evaluates_to(tmp_path, series, answers_query("Truncated and refused answers"), 0.2)


def test_truncated_share_is_zero_without_truncated_answers(tmp_path: Path) -> None:
    series = stop_reasons(end_turn=6, refusal=2)

    evaluates_to(tmp_path, series, answers_query("Truncated and refused answers"), 0.0)


def test_refused_share_counts_refusals_and_content_filters(tmp_path: Path) -> None:
    series = stop_reasons(end_turn=6, refusal=1, content_filter=1, max_tokens=2)

    evaluates_to(tmp_path, series, answers_query("Truncated and refused answers", 1), 0.2)


def test_retry_share_is_retried_requests_per_request(tmp_path: Path) -> None:
    retried = CONFIG.metric(RETRIED_REQUESTS)
    requests = CONFIG.metric(REQUESTS)
    series = [
        {"series": f'{retried}{{{LABELS}, retry="1"}}', "values": "0+1x60"},
        {
            "series": f'{requests}{{{LABELS}, method="POST", endpoint="/v1/messages", '
            'status="200"}',
            "values": "0+4x60",
        },
    ]

    evaluates_to(tmp_path, series, answers_query("Retry share"), 0.25)
