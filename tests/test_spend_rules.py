"""Spend and remaining budget, evaluated by promtool on hand-made series.

The generated promtool tests (``alerts/tests/budget_*``) pin the rules to the
oracle; these state the properties a budget owner relies on, against the
committed rule file: spend survives a proxy restart and adds up across
replicas, and remaining budget is the budget itself before anything is spent,
0 (never negative) once overspent, and never ``+Inf`` or missing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from realservers import require_binary

from ccobs.catalog import ATTRIBUTED_COST, BUDGET
from ccobs.mixin.config import MixinConfig, duration_seconds
from ccobs.mixin.dashboards import Queries
from ccobs.mixin.grafana import interpolate
from ccobs.mixin.names import spend_record
from ccobs.mixin.oracle.promtool import recording_groups

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
CONFIG = MixinConfig()
STEP = CONFIG.budget_spend_interval
STEPS_PER_HOUR = 3600 // duration_seconds(STEP)
WHO = 'job="ccproxy", team="platform", key_alias="alice", client_app="claude-code"'
VALUES = {"job": "ccproxy", "instance": ".*", "model": ".*", "service_type": ".*"}


def cost(instance: str, values: str) -> dict[str, str]:
    labels = f'{WHO}, instance="{instance}", model="claude-sonnet-4-6", service_type="anthropic"'
    return {"series": f"{CONFIG.metric(ATTRIBUTED_COST)}{{{labels}}}", "values": values}


def budget(scope: str, who: str, usd: float) -> dict[str, str]:
    label = "team" if scope == "team" else "key_alias"
    labels = f'job="ccproxy", instance="a:8000", scope="{scope}", {label}="{who}", period="1d"'
    return {"series": f"{CONFIG.metric(BUDGET)}{{{labels}}}", "values": f"{usd}+0x{STEPS_PER_HOUR}"}


def holds(tmp_path: Path, series: list[dict[str, str]], check: str, at: str = "1h") -> None:
    """Assert that ``check`` (an expression returning 1 where it holds) is one 1 at ``at``."""
    test: dict[str, Any] = {
        "rule_files": [str(ROOT / "alerts" / "recording_rules.yaml")],
        "evaluation_interval": STEP,
        # Spend is recorded from the rate the first groups record: without this order
        # promtool evaluates the groups in a random order and the test flakes.
        "group_eval_order": recording_groups(CONFIG),
        "tests": [
            {
                "interval": STEP,
                "input_series": series,
                "promql_expr_test": [
                    {"expr": check, "eval_time": at, "exp_samples": [{"labels": "{}", "value": 1}]}
                ],
            }
        ],
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


def team_spend_about(usd: float, tolerance: float) -> str:
    """1 when the platform team's recorded 1d spend is ``usd`` within ``tolerance`` (relative)."""
    spend = f'{spend_record(CONFIG, "team")}{{team="platform", period="1d"}}'
    return f"sum(abs({spend} - {usd}) < bool {usd * tolerance})"


# The spend is a sum of 5-minute rates: it lags the counter by up to the rate window, so
# after an hour of 1 USD per 30 s (120 USD), the recorded spend is within 5 % of it.


def test_spend_over_the_period_is_what_the_counters_rose_by(tmp_path: Path) -> None:
    series = [cost("a:8000", f"0+1x{STEPS_PER_HOUR}")]

    holds(tmp_path, series, team_spend_about(STEPS_PER_HOUR, 0.05))


def test_a_proxy_restart_does_not_reset_the_spend(tmp_path: Path) -> None:
    half = STEPS_PER_HOUR // 2
    restarted = f"0+1x{half} 0+1x{STEPS_PER_HOUR - half - 1}"  # back to 0 half-way

    holds(tmp_path, [cost("a:8000", restarted)], team_spend_about(STEPS_PER_HOUR, 0.05))


def test_replicas_spend_adds_up(tmp_path: Path) -> None:
    series = [cost("a:8000", f"0+1x{STEPS_PER_HOUR}"), cost("b:8000", f"0+1x{STEPS_PER_HOUR}")]

    holds(tmp_path, series, team_spend_about(2 * STEPS_PER_HOUR, 0.05))


def remaining_is(scope: str, usd: float, within: float = 1e-9) -> str:
    """1 when the panel's remaining budget of ``scope`` is one series of ``usd`` (± ``within``)."""
    expr = interpolate(Queries(CONFIG).budget_remaining(scope), VALUES)
    return f"sum(abs(({expr}) - {usd}) < bool {within})"


def test_a_budget_nobody_spent_from_has_all_of_it_remaining(tmp_path: Path) -> None:
    series = [budget("team", "research", 50.0), cost("a:8000", f"0+1x{STEPS_PER_HOUR}")]

    holds(tmp_path, series, remaining_is("team", 50.0))


def test_remaining_is_the_budget_less_the_spend(tmp_path: Path) -> None:
    series = [budget("team", "platform", 500.0), cost("a:8000", f"0+1x{STEPS_PER_HOUR}")]

    holds(tmp_path, series, remaining_is("team", 500.0 - STEPS_PER_HOUR, 0.05 * STEPS_PER_HOUR))


def test_an_overspent_budget_has_zero_remaining_not_a_negative_amount(tmp_path: Path) -> None:
    series = [budget("key", "alice", 10.0), cost("a:8000", f"0+1x{STEPS_PER_HOUR}")]

    holds(tmp_path, series, remaining_is("key", 0.0))
