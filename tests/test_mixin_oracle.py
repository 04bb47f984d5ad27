"""The test oracle on its own: Prometheus' arithmetic and template functions, value by value.

The generated promtool tests already judge the oracle against Prometheus
(tests/test_mixin_rules.py); these pin each piece with hand-checked values,
so a change to the oracle fails here, next to the function it broke, before
it shows up as a promtool mismatch. The last test holds the layering: the
rule types and PromQL builders never import the oracle.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from ccobs.catalog import INVALID_REQUEST, upstream_status_error_type
from ccobs.mixin.config import MixinConfig
from ccobs.mixin.oracle.alert_state import ModelledAlert, alert_states
from ccobs.mixin.oracle.evaluation import (
    AmbiguousTestError,
    bucket_quantile,
    extrapolated_rate,
    is_above,
)
from ccobs.mixin.oracle.samples import counted_error_type, excluded_error_type, sample_labels
from ccobs.mixin.oracle.series import Store, build_series
from ccobs.mixin.oracle.templates import (
    humanize,
    humanize_duration,
    humanize_percentage,
    render_template,
)
from ccobs.mixin.promql import duration, seconds_text
from ccobs.mixin.rule_types import AlertRule

MIXIN = Path(__file__).resolve().parent.parent / "ccobs" / "mixin"


@pytest.mark.parametrize(
    ("value", "text"), [(0, "0"), (1234, "1.234k"), (0.001234, "1.234m"), (12.5, "12.5")]
)
def test_humanize_matches_prometheus(value: float, text: str) -> None:
    assert humanize(value) == text


@pytest.mark.parametrize(
    ("value", "text"), [(0, "0s"), (3661, "1h 1m 1s"), (90061, "1d 1h 1m 1s"), (0.5, "500ms")]
)
def test_humanize_duration_matches_prometheus(value: float, text: str) -> None:
    assert humanize_duration(value) == text


def test_humanize_percentage_matches_prometheus() -> None:
    assert humanize_percentage(0.0123) == "1.23%"


def test_render_template_expands_labels_conditionals_and_filters() -> None:
    template = (
        "{{ if $labels.job }}job {{ $labels.job }}{{ else }}the proxy{{ end }}: "
        "{{ $value | humanizePercentage }}"
    )
    assert render_template(template, {"job": "ccproxy"}, 0.5) == "job ccproxy: 50%"
    assert render_template(template, {}, 0.5) == "the proxy: 50%"


def test_render_template_refuses_what_it_cannot_mirror() -> None:
    with pytest.raises(ValueError, match="unsupported template action"):
        render_template("{{ $value | printf }}", {}, 1.0)


def test_rate_over_a_window_that_samples_cover_exactly() -> None:
    assert extrapolated_rate([(0, 0.0), (60, 60.0)], 60, 60, is_rate=True) == 1.0


def test_rate_adds_back_a_counter_reset() -> None:
    # 10 -> 20, reset, -> 5: an increase of 15 over the 60 s window.
    assert extrapolated_rate([(0, 10.0), (30, 20.0), (60, 5.0)], 60, 60, is_rate=True) == 0.25


def test_prometheus_3_ranges_leave_out_the_sample_on_their_start() -> None:
    store = Store(60, (build_series("c", {}, 0, [(1.0, 3)]),))
    (series,) = store.series
    assert [t for t, _ in store.range(series, 120, 120)] == [0, 60, 120]
    assert [t for t, _ in store.under_prometheus_3().range(series, 120, 120)] == [60, 120]


def test_rate_needs_two_samples() -> None:
    assert extrapolated_rate([(0, 1.0)], 60, 60, is_rate=True) is None


def test_bucket_quantile_interpolates_within_a_bucket() -> None:
    buckets = [(1.0, 50.0), (2.0, 100.0), (math.inf, 100.0)]
    assert bucket_quantile(0.5, buckets) == 1.0
    assert bucket_quantile(0.75, buckets) == 1.5
    assert math.isnan(bucket_quantile(0.5, [(1.0, 50.0), (2.0, 100.0)]))


def test_a_value_on_the_threshold_is_refused_unless_exact() -> None:
    with pytest.raises(AmbiguousTestError):
        is_above(0.1 + 0.2, 0.3)
    assert is_above(301, 300, exact=True)
    assert not is_above(None, 0)


def test_series_values_and_notation_agree() -> None:
    series = build_series("x", {"job": "j"}, 0, [(1.0, 2), (0.0, 2)])
    assert series.values == (0, 1.0, 2.0, 2.0, 2.0)
    assert series.notation == "0+1x2 2+0x1"
    assert series.text() == 'x{job="j"}'


def test_an_alert_is_pending_until_its_for_has_elapsed() -> None:
    rule = AlertRule("A", "x > 0", "2m", "warning", "s", "d", "u")
    alert = ModelledAlert(rule, lambda store, t: [({"job": "j"}, 1.0)] if t >= 60 else [])
    states = alert_states([alert], Store(60, ()), 180)
    assert [[firing for *_, firing in states[t]] for t in (0, 60, 120, 180)] == [
        [],
        [False],
        [False],
        [True],
    ]


def test_samples_follow_the_config() -> None:
    config = MixinConfig()
    assert sample_labels(config)["job"]
    assert counted_error_type(config) == upstream_status_error_type(500)
    assert excluded_error_type(config) == INVALID_REQUEST


def test_prometheus_durations() -> None:
    assert [duration(s) for s in (0, 90, 5400, 86400)] == ["0s", "90s", "90m", "1d"]
    assert seconds_text(300) == "5m"


@pytest.mark.parametrize("module", ["rule_types.py", "promql.py", "names.py", "runbook.py"])
def test_rule_types_and_promql_builders_do_not_import_the_oracle(module: str) -> None:
    tree = ast.parse((MIXIN / module).read_text(encoding="utf-8"))
    imported = [
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    ] + [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    assert not [name for name in imported if name.startswith("ccobs.mixin.oracle")]
