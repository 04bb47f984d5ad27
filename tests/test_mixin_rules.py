"""The generated alert and recording rules: real-binary checks and the mixin conventions.

Every test runs for the default configuration and for a deliberately
different one (another namespace, a job selector on other labels, short
windows, other thresholds), because users build their own copies: the
conventions and the generated promtool tests must hold for any config, not
just the committed one.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from realservers import require_binary

from ccobs.catalog import ALL_METRICS, COST_TYPES, RATE_LIMITED_ERROR_TYPE
from ccobs.mixin.config import BurnRateWindow, MixinConfig, duration_seconds
from ccobs.mixin.names import requests_increase_record, spend_recording_group
from ccobs.mixin.rules import (
    SEVERITIES,
    TOTAL_COST_TYPE,
    build_rule_files,
    error_ratio_record,
)
from ccobs.mixin.runbook import github_anchor, runbook_queries
from ccobs.proxy.errors import error_type_for_status

CUSTOM = MixinConfig(
    namespace="llmgw",
    job_selector='service="llm-gateway", env!="dev", job=~"gw-.+"',
    alert_prefix="LLMGateway",
    aggregation_labels=("job", "cluster"),
    runbook_url="https://runbooks.example.com/llmgw.md",
    error_ratio_slo=0.995,
    error_ratio_excluded="invalid_request|client_disconnect|rate_limited",
    burn_rate_windows=(
        BurnRateWindow("5m", "1m", 10.0, "critical", "1m"),
        BurnRateWindow("30m", "2m", 2.0, "warning", "5m"),
    ),
    latency_p99_seconds=2.5,
    latency_window="2m",
    latency_for="1m",
    hourly_cost_budget_usd=3.0,
    cost_window="5m",
    cost_for="2m",
    rate_limited_ratio=0.2,
    rate_limited_window="1m",
    rate_limited_for="1m",
    proxy_down_for="1m",
    push_stale_seconds=90.0,
    push_stale_for="1m",
    push_failure_window="2m",
    push_failure_for="1m",
    budget_spend_window="2m",
    budget_spend_interval="15s",
    budget_exhausted_for="1m",
    budget_burn_window="30m",
    budget_burn_for="5m",
)
CONFIGS = {"default": MixinConfig(), "custom": CUSTOM}

BUILTIN_METRICS = {
    "up",
    "scrape_duration_seconds",
    "push_time_seconds",
    "push_failure_time_seconds",
    "prometheus_sd_discovered_targets",
}
"""Series Prometheus or the Pushgateway create themselves, not ccobs."""

RANGE_FUNCTIONS = {"rate", "increase", "irate"}
RECORD_NAME = re.compile(r"^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$")


@dataclass(frozen=True)
class Built:
    """One fresh build of the rule files, written where promtool and vmalert can read them."""

    config: MixinConfig
    root: Path
    files: dict[str, str]

    @cached_property
    def alerts(self) -> list[dict[str, Any]]:
        data = yaml.safe_load(self.files["alerts.yaml"])
        return [rule for group in data["groups"] for rule in group["rules"]]

    @cached_property
    def recording(self) -> list[dict[str, Any]]:
        data = yaml.safe_load(self.files["recording_rules.yaml"])
        return [rule for group in data["groups"] for rule in group["rules"]]

    @cached_property
    def test_groups(self) -> list[dict[str, Any]]:
        return [
            group
            for name, text in sorted(self.files.items())
            if name.startswith("tests/")
            for group in yaml.safe_load(text)["tests"]
        ]

    @property
    def rule_paths(self) -> list[Path]:
        return [self.root / "recording_rules.yaml", self.root / "alerts.yaml"]

    @property
    def test_paths(self) -> list[Path]:
        return sorted((self.root / "tests").glob("*.yaml"))

    @property
    def expressions(self) -> list[str]:
        """Every PromQL expression: rules, and the runbook's diagnosis queries."""
        rules: list[str] = [rule["expr"] for rule in self.recording + self.alerts]
        return rules + runbook_queries(self.files["runbook.md"])

    @property
    def recorded_names(self) -> set[str]:
        return {rule["record"] for rule in self.recording}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Built:
    config = CONFIGS[request.param]
    root = tmp_path_factory.mktemp(f"alerts-{request.param}")
    files = build_rule_files(config)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return Built(config, root, files)


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


def _children(node: Any) -> Iterator[Any]:
    for attribute in ("expr", "param", "lhs", "rhs", "vector_selector"):
        child = getattr(node, attribute, None)
        if isinstance(child, promql_parser.Expr):
            yield child
    if isinstance(node, promql_parser.Call):
        yield from (arg for arg in node.args if isinstance(arg, promql_parser.Expr))


def _selectors(node: Any) -> Iterator[Any]:
    """Every vector selector of an expression tree (including those inside ranges)."""
    if isinstance(node, promql_parser.VectorSelector):
        yield node
    for child in _children(node):
        yield from _selectors(child)


def _bare_counter_reads(node: Any, counters: set[str]) -> Iterator[str]:
    """Counter selectors not read as the range argument of rate/increase/irate."""
    if isinstance(node, promql_parser.Call) and node.func.name in RANGE_FUNCTIONS:
        for arg in node.args:
            if not isinstance(arg, promql_parser.MatrixSelector):
                yield from _bare_counter_reads(arg, counters)
        return
    if isinstance(node, promql_parser.VectorSelector) and node.name in counters:
        yield str(node)
    for child in _children(node):
        yield from _bare_counter_reads(child, counters)


def _counter_names(config: MixinConfig) -> set[str]:
    names = set()
    for spec in ALL_METRICS:
        if spec.kind == "counter":
            names.add(config.metric(spec))
        elif spec.kind == "histogram":
            names.update(config.metric(spec) + suffix for suffix in ("_bucket", "_count", "_sum"))
    return names


def _emitted_names(config: MixinConfig) -> set[str]:
    names = set()
    for spec in ALL_METRICS:
        names.add(config.metric(spec))
        if spec.kind == "histogram":
            names.update(config.metric(spec) + suffix for suffix in ("_bucket", "_count", "_sum"))
    return names


def _matchers(selector: Any) -> set[tuple[str, str, str]]:
    return {(m.name, str(m.op), m.value) for m in selector.matchers.matchers}


# --- real binaries ------------------------------------------------------------


def test_promtool_check_rules_is_clean(built: Built) -> None:
    result = _run([require_binary("promtool"), "check", "rules", *map(str, built.rule_paths)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


def test_promtool_unit_tests_pass_from_any_directory(built: Built, tmp_path: Path) -> None:
    # Run from an unrelated directory: the tests find their rule files by
    # paths relative to themselves.
    args = [require_binary("promtool"), "test", "rules", *map(str, built.test_paths)]
    result = _run(args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_catch_a_changed_threshold(built: Built, tmp_path: Path) -> None:
    # The tests must test something: double the latency threshold in a copy
    # of the rules and the latency tests have to fail.
    name = f"{built.config.alert_prefix}P99LatencyHigh"
    alerts = yaml.safe_load(built.files["alerts.yaml"])
    for rule in alerts["groups"][0]["rules"]:
        if rule.get("alert") == name:
            rule["expr"] = rule["expr"].replace(" > ", " > 2 * ")
    (tmp_path / "tests").mkdir()
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump(alerts))
    (tmp_path / "recording_rules.yaml").write_text(built.files["recording_rules.yaml"])
    test_file = tmp_path / "tests" / "p99_latency_high_test.yaml"
    test_file.write_text(built.files["tests/p99_latency_high_test.yaml"])
    result = _run([require_binary("promtool"), "test", "rules", str(test_file)])
    assert result.returncode != 0
    assert name in result.stdout + result.stderr


def test_vmalert_dry_run_accepts_every_rule_file(built: Built) -> None:
    for path in built.rule_paths:
        result = _run([require_binary("vmalert"), "-dryRun", f"-rule={path}"])
        assert result.returncode == 0, f"{path.name}: {result.stderr[-2000:]}"


# --- alert conventions --------------------------------------------------------


def test_alert_names_are_camel_case_with_the_prefix(built: Built) -> None:
    prefix = built.config.alert_prefix
    for rule in built.alerts:
        assert re.fullmatch(rf"{prefix}[A-Z][A-Za-z0-9]*", rule["alert"]), rule["alert"]


def test_every_alert_has_a_known_severity(built: Built) -> None:
    assert {rule["labels"]["severity"] for rule in built.alerts} <= set(SEVERITIES)


def test_summaries_are_static_sentences(built: Built) -> None:
    for rule in built.alerts:
        summary = rule["annotations"]["summary"]
        assert summary.endswith("."), summary
        assert "{{" not in summary, summary
        assert "$" not in summary, summary


def test_descriptions_are_templated(built: Built) -> None:
    for rule in built.alerts:
        description = rule["annotations"]["description"]
        assert re.search(r"\{\{[^}]*\$(labels|value)", description), description


def test_runbook_urls_point_at_existing_runbook_sections(built: Built) -> None:
    headings = re.findall(r"^## (.+)$", built.files["runbook.md"], flags=re.MULTILINE)
    anchors = {github_anchor(heading) for heading in headings}
    for rule in built.alerts:
        url = rule["annotations"]["runbook_url"]
        base, _, anchor = url.partition("#")
        assert base == built.config.runbook_url
        assert anchor == rule["alert"].lower()
        assert anchor in anchors, url


def test_every_alert_waits_at_least_a_minute(built: Built) -> None:
    for rule in built.alerts:
        assert duration_seconds(rule["for"]) >= 60, rule["alert"]


def test_runbook_explains_every_alert(built: Built) -> None:
    runbook = built.files["runbook.md"]
    sections = re.split(r"^## ", runbook, flags=re.MULTILINE)[1:]
    by_name = {section.splitlines()[0]: section for section in sections}
    assert set(by_name) == {rule["alert"] for rule in built.alerts}
    for name, section in by_name.items():
        for part in ("**Meaning.**", "**Impact.**", "**Diagnose.**", "**Mitigate.**"):
            assert part in section, f"{name} lacks {part}"
        assert "```promql" in section, name


def test_error_budget_burn_pairs_share_one_alert_name(built: Built) -> None:
    # One name, so Alertmanager's critical-inhibits-warning (equal alertname
    # and job) lets a fast burn mute the slow one.
    name = f"{built.config.alert_prefix}ErrorBudgetBurn"
    burns = [rule for rule in built.alerts if rule["alert"] == name]
    assert len(burns) == len(built.config.burn_rate_windows)
    assert {rule["labels"]["severity"] for rule in burns} == {"critical", "warning"}
    for rule, window in zip(burns, built.config.burn_rate_windows, strict=True):
        assert error_ratio_record(built.config, window.long) in rule["expr"]
        assert error_ratio_record(built.config, window.short) in rule["expr"]
        assert rule["for"] == window.for_


def test_every_burn_rate_pair_has_a_traffic_guard(built: Built) -> None:
    # One routine upstream failure at a few requests an hour must not page.
    name = f"{built.config.alert_prefix}ErrorBudgetBurn"
    minimum = f"{built.config.burn_rate_min_requests:.10g}"
    burns = [rule for rule in built.alerts if rule["alert"] == name]
    for rule, window in zip(burns, built.config.burn_rate_windows, strict=True):
        guard = f"{requests_increase_record(built.config, window.long)} > {minimum}"
        assert guard in rule["expr"], rule["expr"]
    low = [g for g in built.test_groups if "requests an hour and one" in g["name"]]
    if built.config == MixinConfig():
        # Generated where the unguarded pair would fire: 1h/5m and 6h/30m here.
        assert len(low) >= 3, "the low-traffic scenarios are missing: the guard is untested"
    for group in low:
        assert all(not case["exp_alerts"] for case in group["alert_rule_test"])


def test_long_window_records_are_evaluated_in_a_slower_group(built: Built) -> None:
    # A 1d or 3d window read every 15 s is most of the rules' cost.
    data = yaml.safe_load(built.files["recording_rules.yaml"])
    intervals = {group["name"]: group.get("interval") for group in data["groups"]}
    limit = duration_seconds(built.config.slow_rules_min_window)
    for group in data["groups"]:
        if group["name"] == spend_recording_group(built.config):
            # The spend rate: a short window, at the interval its period sums multiply by.
            assert group["interval"] == built.config.budget_spend_interval
            continue
        for rule in group["rules"]:
            window = re.search(r"\[(\d+[smhd])\]", rule["expr"])
            assert window is not None, rule["expr"]
            slow = duration_seconds(window.group(1)) >= limit
            assert (intervals[group["name"]] == built.config.slow_rules_interval) == slow, rule


def test_every_aggregation_keeps_the_aggregation_labels(built: Built) -> None:
    # Grouping labels (cluster, namespace) survive every sum, as in kubernetes-mixin.
    clause = ", ".join(built.config.aggregation_labels)
    texts = [rule["expr"] for rule in (*built.recording, *built.alerts)]
    for text in texts:
        for found in re.findall(r"\b(?:sum|min|count) by \(([^)]*)\)", text):
            assert found.startswith(clause), text
        for found in re.findall(r"\band on \(([^)]*)\)", text):
            assert found == clause, text


# --- the generated unit tests -------------------------------------------------


def _alert_cases(built: Built, rule: dict[str, Any]) -> Iterator[tuple[str, list[bool]]]:
    """Per test group, whether ``rule`` fires at each of its eval times, in time order."""
    static = rule["labels"].items()
    for group in built.test_groups:
        cases = [c for c in group.get("alert_rule_test", []) if c["alertname"] == rule["alert"]]
        cases.sort(key=lambda c: duration_seconds(c["eval_time"]))
        if cases:
            yield (
                group["name"],
                [
                    any(static <= alert["exp_labels"].items() for alert in c["exp_alerts"])
                    for c in cases
                ],
            )


def test_every_alert_rule_has_firing_and_non_firing_tests(built: Built) -> None:
    for rule in built.alerts:
        outcomes = [fires for _, times in _alert_cases(built, rule) for fires in times]
        assert True in outcomes, f"{rule['alert']} {rule['labels']} never fires in a test"
        assert False in outcomes, f"{rule['alert']} {rule['labels']} never stays quiet"


def test_every_alert_rule_is_tested_before_its_for_elapses(built: Built) -> None:
    # A group where the alert is quiet at first and fires later proves `for`.
    for rule in built.alerts:
        assert any(times[:2] == [False, True] for _, times in _alert_cases(built, rule)), (
            f"{rule['alert']} {rule['labels']} has no pending-then-firing test"
        )


def test_every_alert_has_a_just_under_the_threshold_test(built: Built) -> None:
    names = {rule["alert"] for rule in built.alerts}
    for name in names:
        quiet = [
            group["name"]
            for group in built.test_groups
            if any(c["alertname"] == name for c in group.get("alert_rule_test", []))
            and all(not c["exp_alerts"] for c in group["alert_rule_test"])
        ]
        assert quiet, f"{name} has no scenario in which it never fires"


def test_every_recording_rule_has_an_expression_test(built: Built) -> None:
    tested = {
        case["expr"] for group in built.test_groups for case in group.get("promql_expr_test", [])
    }
    assert built.recorded_names <= tested


def test_unit_tests_name_rule_files_relative_to_themselves(built: Built) -> None:
    for name, text in built.files.items():
        if name.startswith("tests/"):
            assert yaml.safe_load(text)["rule_files"] == [
                "../recording_rules.yaml",
                "../alerts.yaml",
            ]


# --- recording rules and PromQL -----------------------------------------------


def test_recording_rule_names_follow_level_metric_operations(built: Built) -> None:
    for name in built.recorded_names:
        assert RECORD_NAME.match(name), name
        assert name.split(":")[1].startswith(built.config.namespace + "_"), name


def test_error_ratio_is_recorded_for_every_burn_rate_window(built: Built) -> None:
    for window in built.config.burn_rate_windows:
        for length in (window.long, window.short):
            assert error_ratio_record(built.config, length) in built.recorded_names


def test_every_expression_parses(built: Built) -> None:
    for expr in built.expressions:
        promql_parser.parse(expr)


def test_counters_are_only_read_through_rate_or_increase(built: Built) -> None:
    counters = _counter_names(built.config)
    for expr in built.expressions:
        assert not list(_bare_counter_reads(promql_parser.parse(expr), counters)), expr


def test_every_raw_metric_selector_carries_the_job_selector(built: Built) -> None:
    job = _matchers(next(_selectors(promql_parser.parse(f"up{{{built.config.job_selector}}}"))))
    for expr in built.expressions:
        for selector in _selectors(promql_parser.parse(expr)):
            if selector.name in built.recorded_names or selector.name.startswith("prometheus_"):
                continue
            assert job <= _matchers(selector), f"{selector} in {expr}"


def test_every_referenced_metric_is_emitted_or_built_in(built: Built) -> None:
    known = _emitted_names(built.config) | BUILTIN_METRICS | built.recorded_names
    for expr in built.expressions:
        for selector in _selectors(promql_parser.parse(expr)):
            assert selector.name in known, f"{selector.name} in {expr}"


# --- build properties ---------------------------------------------------------


def test_build_is_deterministic(built: Built) -> None:
    assert build_rule_files(built.config) == built.files


def test_rate_limited_error_type_is_what_the_proxy_records_for_a_429() -> None:
    assert error_type_for_status(429) == RATE_LIMITED_ERROR_TYPE


def test_total_cost_type_is_a_catalogued_cost_type() -> None:
    assert TOTAL_COST_TYPE in COST_TYPES


def test_job_selector_without_a_satisfiable_job_value_is_rejected() -> None:
    with pytest.raises(ValueError, match="job_selector"):
        build_rule_files(MixinConfig(job_selector='job="a", job="b"'))


def test_burn_rate_window_must_be_longer_than_its_short_window() -> None:
    windows = (BurnRateWindow("5m", "5m", 14.4, "critical", "2m"),)
    with pytest.raises(ValueError, match="longer"):
        build_rule_files(MixinConfig(burn_rate_windows=windows))


def test_budget_spend_window_must_span_two_spend_evaluations() -> None:
    with pytest.raises(ValueError, match="budget_spend_window"):
        MixinConfig(budget_spend_window="30s", budget_spend_interval="30s")
