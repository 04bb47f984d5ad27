"""Budgets: the identity file's ``budgets:`` section, and the gauge each budget is exposed as.

A bad section must fail at start with the file, the line and the field; a good
one gives every budget its ``budget_usd`` series before anything is spent.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

import ccobs.demo
from ccobs.budgets import Budget, BudgetFileError, expose_budgets, load_budgets, parse_budgets
from ccobs.catalog import BUDGET
from ccobs.metrics import PrometheusMetrics
from ccobs.proxy.app import create_proxy_app
from ccobs.proxy.config import ProxyConfig

GOOD = """\
keys:
  - fingerprint: 9f2c4e1a7b3d5f60
    alias: alice
    team: platform
budgets:
  - team: platform
    period: 30d
    usd: 500
  - key: alice
    period: 1d
    usd: 20.5
"""


def test_team_and_key_budgets_are_read_in_file_order() -> None:
    assert parse_budgets(GOOD) == (
        Budget("team", "platform", "30d", 500.0),
        Budget("key", "alice", "1d", 20.5),
    )


def test_a_file_without_a_budgets_section_has_no_budgets() -> None:
    assert parse_budgets("keys: []\n") == ()


def test_the_same_team_may_have_a_budget_per_period() -> None:
    text = "budgets:\n  - {team: a, period: 1d, usd: 1}\n  - {team: a, period: 7d, usd: 5}\n"

    assert [b.period for b in parse_budgets(text)] == ["1d", "7d"]


def test_a_file_is_loaded_from_its_path(tmp_path: Path) -> None:
    path = tmp_path / "identities.yaml"
    path.write_text(GOOD)

    assert len(load_budgets(path)) == 2


def error_of(text: str) -> str:
    with pytest.raises(BudgetFileError) as raised:
        parse_budgets(text, "ids.yaml")
    return str(raised.value)


@pytest.mark.parametrize("usd", ["0", "-5", ".nan", ".inf"])
def test_a_usd_that_is_not_positive_and_finite_names_file_line_and_field(usd: str) -> None:
    text = f"budgets:\n  - team: a\n    period: 1d\n    usd: {usd}\n"

    assert error_of(text).startswith("ids.yaml:4: budgets[0].usd: must be a positive number")


def test_a_usd_that_is_text_is_refused() -> None:
    text = "budgets:\n  - team: a\n    period: 1d\n    usd: lots\n"

    assert error_of(text).startswith("ids.yaml:4: budgets[0].usd: must be a number")


def test_an_unknown_period_names_the_allowed_ones() -> None:
    text = "budgets:\n  - team: a\n    period: 1w\n    usd: 5\n"

    assert error_of(text) == (
        "ids.yaml:3: budgets[0].period: unknown period '1w'; allowed: 1d, 7d, 30d"
    )


def test_a_budget_with_neither_team_nor_key_is_refused() -> None:
    text = "budgets:\n  - period: 1d\n    usd: 5\n"

    assert error_of(text) == "ids.yaml:2: budgets[0]: needs exactly one of team and key"


def test_a_budget_with_both_team_and_key_is_refused() -> None:
    text = "budgets:\n  - team: a\n    key: b\n    period: 1d\n    usd: 5\n"

    assert error_of(text) == "ids.yaml:2: budgets[0]: needs exactly one of team and key"


def test_an_unknown_field_is_named_with_its_line() -> None:
    text = "budgets:\n  - team: a\n    period: 1d\n    usd: 5\n    currency: EUR\n"

    assert error_of(text).startswith("ids.yaml:5: budgets[0].currency: unknown field")


def test_a_missing_period_is_named() -> None:
    assert error_of("budgets:\n  - team: a\n    usd: 5\n").startswith(
        "ids.yaml:2: budgets[0].period: missing"
    )


def test_a_duplicate_budget_names_both_lines() -> None:
    text = "budgets:\n  - {team: a, period: 1d, usd: 1}\n  - {team: a, period: 1d, usd: 2}\n"

    assert error_of(text) == (
        "ids.yaml:3: budgets[1]: duplicate of the 1d budget of team 'a' on line 2"
    )


def test_a_budgets_section_that_is_not_a_list_is_refused() -> None:
    assert error_of("budgets: {team: a}\n").startswith("ids.yaml:1: budgets: must be a list")


def test_invalid_yaml_names_the_file() -> None:
    assert error_of("budgets: [\n").startswith("ids.yaml: not valid YAML")


def test_an_unreadable_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"

    with pytest.raises(BudgetFileError, match=r"missing\.yaml: cannot read"):
        load_budgets(missing)


def test_every_budget_has_its_gauge_before_anything_is_spent() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)

    expose_budgets(metrics, parse_budgets(GOOD))

    name = BUDGET.full_name()
    team = {"scope": "team", "team": "platform", "key_alias": "", "period": "30d"}
    key = {"scope": "key", "team": "", "key_alias": "alice", "period": "1d"}
    assert registry.get_sample_value(name, team) == 500.0
    assert registry.get_sample_value(name, key) == 20.5


def test_no_budgets_means_no_budget_series() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)

    expose_budgets(metrics, ())

    assert not [s for f in registry.collect() for s in f.samples if s.name == BUDGET.full_name()]


def test_the_proxy_exposes_the_budgets_it_is_given_on_its_metrics_endpoint() -> None:
    metrics = PrometheusMetrics(registry=CollectorRegistry())
    app = create_proxy_app(ProxyConfig(), metrics=metrics, budgets=parse_budgets(GOOD))

    with TestClient(app) as client:
        text = client.get("/metrics").text

    assert 'ccproxy_budget_usd{key_alias="",period="30d",scope="team",team="platform"} 500.0' in (
        text
    )


def test_the_demo_ships_a_budget_small_enough_to_fire_within_minutes() -> None:
    """The demo spends tens of dollars an hour: a budget under a dollar a day is gone in minutes."""
    path = Path(ccobs.demo.__file__).parent / "identities.yaml"

    budgets = load_budgets(path)
    assert any(b.period == "1d" and b.usd <= 1.0 for b in budgets)
