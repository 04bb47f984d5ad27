"""The generated Grafana dashboards: every query parses, and the conventions hold.

The dashboards are checked from the outside: queries are parsed with
promql-parser after Grafana's variables are replaced, and the lints walk the
PromQL syntax tree rather than trusting the builders that produced it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import promql_parser
import pytest

from ccobs.catalog import ALL_METRICS, MetricSpec
from ccobs.mixin.alerts import alert_rules
from ccobs.mixin.config import BurnRateWindow, MixinConfig, duration_seconds
from ccobs.mixin.dashboards import build_dashboards, iter_queries, iter_variable_queries
from ccobs.mixin.grafana import interpolate, iter_annotation_queries, iter_panels, iter_targets
from ccobs.mixin.recording_rules import recording_rules

Json = dict[str, Any]

DEFAULT = MixinConfig()
DASHBOARDS = build_dashboards(DEFAULT)
BOARDS = list(DASHBOARDS.values())

SAMPLE_VALUES = {
    "__rate_interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
    "__interval": "1m",
    "job": "ccproxy",
    "instance": ".*",
    "model": ".*",
    "service_type": ".*",
}
"""What Grafana substitutes at query time, as in the brief: multi-value regex variables are All."""

RATE_WINDOW = timedelta(seconds=61)
RANGE_WINDOW = timedelta(seconds=3599)
LINT_VALUES = {
    "__rate_interval": "61s",
    "__range": "3599s",
    "__range_s": "3599",
    "__interval": "59s",
    **{name: f"VAR_{name}" for name in ("job", "instance", "model", "service_type")},
}
"""Distinct sample values, so a lint can tell which variable ended up where in the syntax tree."""

BUILTINS = frozenset(
    {"up", "push_time_seconds", "push_failure_time_seconds", "scrape_duration_seconds"}
)
"""Series Prometheus and Pushgateway add themselves; they carry only job and instance."""

ALERTS = "ALERTS"
"""Prometheus' series of pending and firing alerts; labelled by the rules, so job at most."""

ALLOWED_UNITS = frozenset(
    {"short", "none", "reqps", "s", "percentunit", "currencyUSD", "opm", "cps"}
)
"""Grafana unit ids the dashboards may use; a typo renders as a raw number."""

ALERT_WINDOWS = frozenset(
    timedelta(seconds=duration_seconds(w)) for w in (DEFAULT.cost_window, DEFAULT.slo_window)
)
"""Fixed windows an alert evaluates over: a panel showing what that alert sees uses the same."""

RANGE_FUNCTIONS = frozenset({"rate", "increase"})
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+), *(?P<label>\w+)\)$", re.DOTALL)


# --- helpers ------------------------------------------------------------------


def parse(expr: str, values: dict[str, str] = SAMPLE_VALUES) -> promql_parser.Expr:
    """``expr`` as Grafana would send it; an unknown variable is a KeyError, so typos fail."""
    return promql_parser.parse(interpolate(expr, values))


def children(node: promql_parser.Expr) -> list[promql_parser.Expr]:
    if isinstance(node, promql_parser.AggregateExpr):
        param = [node.param] if isinstance(node.param, promql_parser.Expr) else []
        return [*param, node.expr]
    if isinstance(node, promql_parser.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, promql_parser.Call):
        return list(node.args)
    if isinstance(
        node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr
    ):
        return [node.expr]
    if isinstance(node, promql_parser.MatrixSelector):
        return [node.vector_selector]
    return []


def walk(
    node: promql_parser.Expr, parents: tuple[promql_parser.Expr, ...] = ()
) -> Iterator[tuple[promql_parser.Expr, tuple[promql_parser.Expr, ...]]]:
    """Every node with the chain of its ancestors, nearest last."""
    yield node, parents
    for child in children(node):
        yield from walk(child, (*parents, node))


def selectors(node: promql_parser.Expr) -> Iterator[promql_parser.VectorSelector]:
    for item, _ in walk(node):
        if isinstance(item, promql_parser.VectorSelector):
            yield item


def matchers(selector: promql_parser.VectorSelector) -> set[tuple[str, str, str]]:
    return {(m.name, str(m.op), m.value) for m in selector.matchers.matchers}


def emitted_names(namespace: str) -> dict[str, MetricSpec]:
    """Every series name ccobs exposes -> its catalogue entry (histograms as three series)."""
    names: dict[str, MetricSpec] = {}
    for spec in ALL_METRICS:
        full = spec.full_name(namespace)
        suffixes = ("_bucket", "_sum", "_count") if spec.kind == "histogram" else ("",)
        names.update({full + suffix: spec for suffix in suffixes})
    return names


def counter_names(namespace: str) -> set[str]:
    return {
        name
        for name, spec in emitted_names(namespace).items()
        if spec.kind in ("counter", "histogram")
    }


def variable_selectors(board: Json) -> Iterator[tuple[str, str]]:
    """(variable name, the series selector inside its ``label_values(...)``)."""
    for _, name, query in iter_variable_queries(board):
        match = _LABEL_VALUES.match(query)
        assert match, f"{name}: {query!r} is not label_values(selector, label)"
        yield name, match.group("selector")


def referenced_names(boards: list[Json], *, with_variables: bool = True) -> set[str]:
    names = set()
    for board in boards:
        exprs = [expr for _, _, expr in iter_queries(board)]
        if with_variables:
            exprs += [selector for _, selector in variable_selectors(board)]
        for expr in exprs:
            names |= {s.name for s in selectors(parse(expr)) if s.name}
    return names


def recorded_names(config: MixinConfig) -> set[str]:
    """The series the recording rules write: aggregated by job, so they carry no other filter."""
    return {rule.record for rule in recording_rules(config)}


def job_selector_matchers(config: MixinConfig) -> set[tuple[str, str, str]]:
    selector = promql_parser.parse(f"x{{{config.job_selector}}}")
    assert isinstance(selector, promql_parser.VectorSelector)
    return matchers(selector)


def filter_violations(config: MixinConfig) -> list[str]:
    """Selectors missing the job selector, job/instance, or model/service_type where labelled.

    A recorded series needs only the job variable: its rule applied the job
    selector and kept nothing but the job label. So does ``ALERTS``, whose
    labels are the alert's.
    """
    labels = {name: spec.labels for name, spec in emitted_names(config.namespace).items()}
    labels.update(dict.fromkeys(BUILTINS, ()))
    recorded = recorded_names(config)
    required_job = job_selector_matchers(config)
    problems = []
    for board in build_dashboards(config).values():
        for uid, title, expr in iter_queries(board):
            for selector in selectors(parse(expr, LINT_VALUES)):
                if selector.name in recorded or selector.name == ALERTS:
                    if ("job", str(promql_parser.MatchOp.Re), "VAR_job") not in matchers(selector):
                        problems.append(f"{uid}/{title}: {selector} lacks the job variable")
                    continue
                assert selector.name in labels, f"{uid}/{title}: unknown {selector.name}"
                wanted = {"job", "instance"} | (
                    {"model", "service_type"} & set(labels[selector.name])
                )
                have = matchers(selector)
                missing = [
                    label
                    for label in sorted(wanted)
                    if (label, str(promql_parser.MatchOp.Re), f"VAR_{label}") not in have
                ]
                if missing or not required_job <= have:
                    problems.append(f"{uid}/{title}: {selector} lacks {missing or required_job}")
    return problems


def panel(uid: str, title: str) -> Json:
    board = next(b for b in BOARDS if b["uid"] == uid)
    return next(p for p in iter_panels(board) if p["title"] == title)


def threshold_values(item: Json) -> list[float]:
    steps = item["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return [step["value"] for step in steps if step["value"] is not None]


def all_targets() -> list[Any]:
    return [
        pytest.param(item["expr"], id=f"{board['uid']}:{p['title']}:{item['refId']}")
        for board in BOARDS
        for p, item in iter_targets(board)
    ]


# --- structure ----------------------------------------------------------------


def test_builds_five_dashboards_named_by_uid() -> None:
    assert {name: board["uid"] for name, board in DASHBOARDS.items()} == {
        "ccobs-overview.json": "ccobs-overview",
        "ccobs-tokens-cost.json": "ccobs-tokens-cost",
        "ccobs-errors.json": "ccobs-errors",
        "ccobs-pipeline.json": "ccobs-pipeline",
        "ccobs-spend.json": "ccobs-spend",
        "ccobs-upstream-limits.json": "ccobs-upstream-limits",
        "ccobs-answers.json": "ccobs-answers",
    }


def test_uids_are_unique_and_valid_grafana_uids() -> None:
    uids = [board["uid"] for board in BOARDS]

    assert len(set(uids)) == len(uids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid) for uid in uids)


def test_dashboard_titles_are_unique() -> None:
    titles = [board["title"] for board in BOARDS]

    assert len(set(titles)) == len(titles)


@pytest.mark.parametrize("board", BOARDS, ids=lambda b: b["uid"])
def test_panel_titles_are_unique_within_a_dashboard(board: Json) -> None:
    titles = [p["title"] for p in iter_panels(board)]

    assert len(set(titles)) == len(titles)


@pytest.mark.parametrize("board", BOARDS, ids=lambda b: b["uid"])
def test_panel_ids_are_unique_within_a_dashboard(board: Json) -> None:
    ids = [p["id"] for p in iter_panels(board)]

    assert len(set(ids)) == len(ids)
    assert all(isinstance(i, int) for i in ids)


@pytest.mark.parametrize("board", BOARDS, ids=lambda b: b["uid"])
def test_panels_fit_the_grid_without_overlapping(board: Json) -> None:
    boxes = [(p["title"], p["gridPos"]) for p in iter_panels(board)]

    for title, g in boxes:
        assert min(g["x"], g["y"]) >= 0, title
        assert g["x"] + g["w"] <= 24, title
        assert g["h"] > 0, title
    for i, (a_title, a) in enumerate(boxes):
        for b_title, b in boxes[i + 1 :]:
            apart = (
                a["x"] + a["w"] <= b["x"]
                or b["x"] + b["w"] <= a["x"]
                or a["y"] + a["h"] <= b["y"]
                or b["y"] + b["h"] <= a["y"]
            )
            assert apart, f"{a_title!r} overlaps {b_title!r}"


def test_only_current_panel_types() -> None:
    kinds = {p["type"] for board in BOARDS for p in iter_panels(board)}

    assert kinds <= {"timeseries", "stat", "bargauge", "table"}


def test_dashboards_import_without_inputs_or_ids() -> None:
    for board in BOARDS:
        assert "__inputs" not in board
        assert "__requires" not in board
        assert board["id"] is None


def test_schema_version_is_recent() -> None:
    assert all(39 <= board["schemaVersion"] <= 41 for board in BOARDS)


def test_dashboards_are_plain_json() -> None:
    for board in BOARDS:
        assert json.loads(json.dumps(board, allow_nan=False)) == board


def test_dashboards_share_tags_and_a_link_to_each_other() -> None:
    for board in BOARDS:
        assert board["tags"] == list(DEFAULT.dashboard_tags)
        assert [link["tags"] for link in board["links"]] == [list(DEFAULT.dashboard_tags)]


# --- variables ----------------------------------------------------------------


@pytest.mark.parametrize("board", BOARDS, ids=lambda b: b["uid"])
def test_every_dashboard_has_the_filter_variables(board: Json) -> None:
    names = [v["name"] for v in board["templating"]["list"]]

    assert names[0] == "datasource"
    assert names[-4:] == ["job", "instance", "model", "service_type"]


def test_datasource_variables_pick_prometheus_api_stores() -> None:
    for board in BOARDS:
        for variable in board["templating"]["list"]:
            if variable["type"] == "datasource":
                assert variable["query"] == "prometheus", variable["name"]


def test_filter_variables_are_multi_value_with_a_regex_all() -> None:
    for board in BOARDS:
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["multi"], variable["name"]
                assert variable["includeAll"], variable["name"]
                assert variable["allValue"] == ".*"
                assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_interpolation_rejects_unknown_variables() -> None:
    assert interpolate('up{job=~"$job"}[${__range}]', SAMPLE_VALUES) == 'up{job=~"ccproxy"}[1h]'
    with pytest.raises(KeyError):
        interpolate('up{job=~"$jbo"}', SAMPLE_VALUES)


def test_variable_queries_parse() -> None:
    for board in BOARDS:
        for name, selector in variable_selectors(board):
            assert isinstance(parse(selector), promql_parser.VectorSelector), name


# --- panels and targets -------------------------------------------------------


@pytest.mark.parametrize("expr", all_targets())
def test_every_panel_query_parses(expr: str) -> None:
    parse(expr)


def test_every_panel_and_target_uses_the_datasource_variable() -> None:
    expected = {"type": "prometheus", "uid": "${datasource}"}
    for board in BOARDS:
        for p in iter_panels(board):
            if p["datasource"]["uid"] == "-- Mixed --":
                continue
            assert p["datasource"] == expected, p["title"]
            assert all(t["datasource"] == expected for t in p["targets"]), p["title"]


def test_mixed_panels_give_every_target_a_datasource_variable() -> None:
    for board in BOARDS:
        variables = {v["name"] for v in board["templating"]["list"] if v["type"] == "datasource"}
        for p in iter_panels(board):
            if p["datasource"] == {"type": "datasource", "uid": "-- Mixed --"}:
                for t in p["targets"]:
                    match = re.fullmatch(r"\$\{(\w+)\}", t["datasource"]["uid"])
                    assert t["datasource"]["type"] == "prometheus", p["title"]
                    assert match, p["title"]
                    assert match.group(1) in variables, p["title"]


def test_every_panel_has_a_known_unit() -> None:
    for board in BOARDS:
        for p in iter_panels(board):
            assert p["fieldConfig"]["defaults"].get("unit") in ALLOWED_UNITS, p["title"]


def test_every_panel_has_a_description() -> None:
    for board in BOARDS:
        for p in iter_panels(board):
            assert p["description"].strip().endswith("."), p["title"]


def test_every_panel_has_queries_with_unique_ref_ids() -> None:
    for board in BOARDS:
        for p in iter_panels(board):
            ref_ids = [t["refId"] for t in p["targets"]]
            assert ref_ids, p["title"]
            assert len(set(ref_ids)) == len(ref_ids), p["title"]


# --- PromQL lints -------------------------------------------------------------


def test_every_range_is_rate_interval_or_the_dashboard_range() -> None:
    for board in BOARDS:
        for uid, title, expr in iter_queries(board):
            for node, _ in walk(parse(expr, LINT_VALUES)):
                if isinstance(node, promql_parser.SubqueryExpr):
                    pytest.fail(f"{uid}/{title}: subquery {node}")
                if isinstance(node, promql_parser.MatrixSelector):
                    allowed = {RATE_WINDOW, RANGE_WINDOW} | ALERT_WINDOWS
                    assert node.range in allowed, f"{uid}/{title}: {node}"
                if isinstance(node, promql_parser.Call) and node.func.name in RANGE_FUNCTIONS:
                    assert isinstance(node.args[0], promql_parser.MatrixSelector), title


def test_counters_are_only_read_through_rate_or_increase() -> None:
    counters = counter_names(DEFAULT.namespace)
    for board in BOARDS:
        for uid, title, expr in iter_queries(board):
            for node, parents in walk(parse(expr)):
                if not isinstance(node, promql_parser.VectorSelector):
                    continue
                if node.name in counters or (node.name or "").endswith(("_total", "_bucket")):
                    where = f"{uid}/{title}: {node}"
                    matrix, call = (parents[-1], parents[-2]) if len(parents) > 1 else (None, None)
                    assert isinstance(matrix, promql_parser.MatrixSelector), where
                    assert isinstance(call, promql_parser.Call), where
                    assert call.func.name in RANGE_FUNCTIONS, where


def test_every_query_honours_the_job_and_filter_variables() -> None:
    assert filter_violations(DEFAULT) == []


def test_every_query_applies_a_configured_job_selector() -> None:
    assert filter_violations(MixinConfig(job_selector='service="llm"')) == []


# --- metric coverage ----------------------------------------------------------


def test_every_referenced_metric_is_emitted_or_builtin() -> None:
    unknown = (
        referenced_names(BOARDS)
        - set(emitted_names(DEFAULT.namespace))
        - BUILTINS
        - recorded_names(DEFAULT)
        - {ALERTS}
    )

    assert unknown == set()


def test_every_emitted_metric_is_charted() -> None:
    charted = referenced_names(BOARDS, with_variables=False)
    names = emitted_names(DEFAULT.namespace)

    uncharted = {spec.name for spec in ALL_METRICS} - {names[n].name for n in charted if n in names}
    assert uncharted == set()


def test_another_namespace_yields_only_its_metric_names() -> None:
    config = MixinConfig(namespace="gateway")
    boards = list(build_dashboards(config).values())

    names = referenced_names(boards) - BUILTINS - recorded_names(config) - {ALERTS}
    assert names
    assert all(name.startswith("gateway_") for name in names)
    assert all(":gateway_" in name for name in referenced_names(boards) & recorded_names(config))
    assert "ccproxy_" not in json.dumps(boards)


def test_build_is_deterministic() -> None:
    assert json.dumps(build_dashboards(DEFAULT)) == json.dumps(build_dashboards(MixinConfig()))


# --- thresholds and panels the issue asks for ---------------------------------


def test_error_ratio_draws_the_slo_budget_and_fastest_burn_threshold() -> None:
    item = panel("ccobs-errors", "Error ratio against the alert thresholds")

    fastest = max(w.factor for w in DEFAULT.burn_rate_windows)
    assert threshold_values(item) == pytest.approx(
        [DEFAULT.error_budget, DEFAULT.error_budget * fastest]
    )
    assert item["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "dashed"


@pytest.mark.parametrize(
    ("uid", "title", "field"),
    [
        ("ccobs-errors", "Rate-limited ratio", "rate_limited_ratio"),
        ("ccobs-pipeline", "Pushgateway push age", "push_stale_seconds"),
        ("ccobs-overview", "Response latency p50 / p95 / p99", "latency_p99_seconds"),
        ("ccobs-tokens-cost", "Cost per hour by model", "hourly_cost_budget_usd"),
        ("ccobs-answers", "Truncated and refused answers", "truncated_ratio"),
    ],
)
def test_alert_threshold_is_drawn(uid: str, title: str, field: str) -> None:
    assert threshold_values(panel(uid, title)) == [getattr(DEFAULT, field)]


def test_thresholds_follow_the_config() -> None:
    config = MixinConfig(
        error_ratio_slo=0.995,
        burn_rate_windows=(BurnRateWindow("1h", "5m", 10.0, "critical", "2m"),),
        push_stale_seconds=120.0,
    )
    boards = {b["uid"]: b for b in build_dashboards(config).values()}

    ratio = next(p for p in iter_panels(boards["ccobs-errors"]) if "alert" in p["title"])
    age = next(p for p in iter_panels(boards["ccobs-pipeline"]) if "push age" in p["title"])
    assert threshold_values(ratio) == [0.005, 0.05]
    assert threshold_values(age) == [120.0]


def test_overview_top_line_stats_cover_the_selected_range() -> None:
    board = DASHBOARDS["ccobs-overview.json"]
    stats = [p for p in iter_panels(board) if p["type"] == "stat" and p["gridPos"]["y"] == 0]

    assert [p["title"] for p in stats] == [
        "Requests",
        "Tokens",
        "Cost",
        "Error ratio over the range",
    ]
    for p in stats:
        assert all(t["instant"] and "[$__range]" in t["expr"] for t in p["targets"]), p["title"]


def test_latency_quantiles_aggregate_buckets_by_le() -> None:
    item = panel("ccobs-overview", "Response latency p50 / p95 / p99")

    for t in item["targets"]:
        call = parse(t["expr"])
        assert isinstance(call, promql_parser.Call)
        assert call.func.name == "histogram_quantile"
        aggregate = call.args[1]
        assert isinstance(aggregate, promql_parser.AggregateExpr)
        assert aggregate.modifier is not None
        assert aggregate.modifier.labels == ["le"]


def test_pipeline_compares_the_newest_samples_of_both_data_sources() -> None:
    item = panel("ccobs-pipeline", "Newest sample age per data source")

    assert item["datasource"] == {"type": "datasource", "uid": "-- Mixed --"}
    assert [t["datasource"]["uid"] for t in item["targets"]] == [
        "${datasource}",
        "${vm_datasource}",
    ]
    assert all(t["expr"].startswith("time() - max(timestamp(") for t in item["targets"])


def test_projected_spend_scales_the_range_cost_to_30_days() -> None:
    (item,) = panel("ccobs-tokens-cost", "Projected 30-day spend")["targets"]

    assert "[$__range]" in item["expr"]
    assert item["expr"].endswith(f"/ $__range_s * {30 * 86400}")


def recorded_in(expr: str, config: MixinConfig = DEFAULT) -> set[str]:
    return {s.name for s in selectors(parse(expr)) if s.name} & recorded_names(config)


def alert_expr(name: str) -> str:
    return next(rule.expr for rule in alert_rules(DEFAULT) if rule.name == name)


def test_cost_per_hour_panels_read_the_cost_alerts_recorded_rate() -> None:
    alert = recorded_in(alert_expr(f"{DEFAULT.alert_prefix}HourlyCostOverBudget"))
    now = panel("ccobs-tokens-cost", "Cost per hour now")
    by_model = panel("ccobs-tokens-cost", "Cost per hour by model")

    assert alert
    assert [recorded_in(t["expr"]) for t in now["targets"]] == [alert]
    assert alert in [recorded_in(t["expr"]) for t in by_model["targets"]]
    for t in [*now["targets"], *by_model["targets"]]:
        assert "$__rate_interval" not in t["expr"]
    assert threshold_values(now) == [DEFAULT.hourly_cost_budget_usd]


def test_error_panels_plot_the_burn_rate_alerts_recorded_series_and_thresholds() -> None:
    # Every burn-rate pair is drawn from the records its alert compares, against its threshold.
    burns = [r for r in alert_rules(DEFAULT) if r.name == f"{DEFAULT.alert_prefix}ErrorBudgetBurn"]
    board = DASHBOARDS["ccobs-errors.json"]
    drawn = {}
    for p in iter_panels(board):
        names = set().union(*(recorded_in(t["expr"]) for t in p["targets"]))
        if names and "errors_per_request" in next(iter(names)):
            drawn[frozenset(names)] = threshold_values(p)[-1]
    assert len(burns) == len(DEFAULT.burn_rate_windows) == len(drawn)
    for rule, window in zip(burns, DEFAULT.burn_rate_windows, strict=True):
        # The ratios it compares; its traffic guard (a request count) is not drawn.
        records = frozenset(n for n in recorded_in(rule.expr) if "errors_per_request" in n)
        assert drawn[records] == pytest.approx(DEFAULT.error_budget * window.factor)
    overview = panel("ccobs-overview", "Error ratio")
    assert set().union(*(recorded_in(t["expr"]) for t in overview["targets"])) in [
        set(names) for names in drawn
    ]


def test_rate_limited_ratio_reads_the_alerts_recorded_ratio() -> None:
    alert = recorded_in(alert_expr(f"{DEFAULT.alert_prefix}UpstreamRateLimited"))
    targets = panel("ccobs-errors", "Rate-limited ratio")["targets"]

    assert alert
    assert [recorded_in(t["expr"]) for t in targets] == [alert]


def test_overview_has_an_is_it_up_row_firing_alerts_and_annotations() -> None:
    board = DASHBOARDS["ccobs-overview.json"]
    second_row = [p["title"] for p in iter_panels(board) if p["gridPos"]["y"] == 4]

    assert second_row == ["Scraped targets up", "Seconds since the last push", "Firing alerts"]
    assert threshold_values(panel("ccobs-overview", "Seconds since the last push")) == [
        DEFAULT.push_stale_seconds
    ]
    (alerts,) = panel("ccobs-overview", "Firing alerts")["targets"]
    assert 'alertstate="firing"' in alerts["expr"]
    assert f'alertname=~"{DEFAULT.alert_prefix}.+"' in alerts["expr"]
    names = [item["name"] for item in board["annotations"]["list"]]
    assert names == ["Firing alerts", "Version changes"]


def test_annotation_queries_parse_and_honour_the_job_variable() -> None:
    for board in BOARDS:
        for uid, name, expr in iter_annotation_queries(board):
            for selector in selectors(parse(expr, LINT_VALUES)):
                have = matchers(selector)
                assert ("job", str(promql_parser.MatchOp.Re), "VAR_job") in have, f"{uid}/{name}"
    for item in DASHBOARDS["ccobs-overview.json"]["annotations"]["list"]:
        assert item["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert item["enable"], item["name"]
        assert item["titleFormat"], item["name"]


def test_overview_draws_the_ttft_percentile_and_its_alert_threshold() -> None:
    item = panel("ccobs-overview", "Time to first token p50 / p95 / p99")

    assert threshold_values(item) == [DEFAULT.ttft_p99_seconds]
    assert [t["legendFormat"] for t in item["targets"]] == ["p50", "p95", "p99"]
    assert item["targets"][-1]["expr"].startswith(f"histogram_quantile({DEFAULT.ttft_quantile}, ")


def test_ttft_panel_follows_the_configured_percentile_and_threshold() -> None:
    config = MixinConfig(ttft_quantile=0.999, ttft_p99_seconds=4.0)
    board = build_dashboards(config)["ccobs-overview.json"]

    item = next(p for p in iter_panels(board) if p["title"].startswith("Time to first token"))
    assert item["title"] == "Time to first token p50 / p95 / p99.9"
    assert threshold_values(item) == [4.0]
