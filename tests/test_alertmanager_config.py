"""``stack/alertmanager.yml``: valid for amtool, routes by severity, critical mutes warning.

The routing is checked with amtool's own route tester and the inhibition
with a real Alertmanager, not by reading the YAML alone: both are easy to
get subtly wrong in ways that still parse.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from realservers import http_get_json, require_binary, start_alertmanager, wait_for

from ccobs.mixin.config import MixinConfig
from ccobs.mixin.rules import SEVERITIES, alert_rules

CONFIG_PATH = Path(__file__).resolve().parents[1] / "stack" / "alertmanager.yml"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data = yaml.safe_load(CONFIG_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _receiver_for(**labels: str) -> str:
    args = [
        require_binary("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG_PATH}",
        *(f"{name}={value}" for name, value in labels.items()),
    ]
    result = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_amtool_check_config_is_clean() -> None:
    result = subprocess.run(
        [require_binary("amtool"), "check-config", str(CONFIG_PATH)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_each_severity_routes_to_its_own_receiver() -> None:
    for severity in SEVERITIES:
        receiver = _receiver_for(alertname="CCProxyDown", job="ccproxy", severity=severity)
        assert receiver == severity


def test_alerts_without_a_known_severity_reach_the_default_receiver() -> None:
    assert _receiver_for(alertname="SomethingElse", job="other") == "default"


def test_every_severity_the_rules_use_has_a_route() -> None:
    used = {rule.severity for rule in alert_rules(MixinConfig())}
    routed = {_receiver_for(alertname="X", job="ccproxy", severity=s) for s in used}
    assert "default" not in routed


def test_notifications_are_grouped_by_alert_and_job(config: dict[str, Any]) -> None:
    assert config["route"]["group_by"] == ["alertname", "job"]
    for key in ("group_wait", "group_interval", "repeat_interval"):
        assert key in config["route"], key


def test_critical_inhibits_warning_of_the_same_alert_and_job(config: dict[str, Any]) -> None:
    (rule,) = config["inhibit_rules"]
    assert rule["source_matchers"] == ['severity="critical"']
    assert rule["target_matchers"] == ['severity="warning"']
    assert set(rule["equal"]) == {"alertname", "job"}


def test_every_receiver_is_a_loopback_webhook(config: dict[str, Any]) -> None:
    for receiver in config["receivers"]:
        (hook,) = receiver["webhook_configs"]
        assert urlparse(hook["url"]).hostname == "127.0.0.1", receiver["name"]
        assert hook["send_resolved"] is True


def _post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{url}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


@pytest.mark.integration
def test_real_alertmanager_mutes_warning_while_critical_fires_for_the_same_job(
    tmp_path: Path,
) -> None:
    def alert(severity: str, job: str) -> dict[str, Any]:
        labels = {"alertname": "CCProxyErrorBudgetBurn", "severity": severity, "job": job}
        return {"labels": labels, "annotations": {"summary": "test."}}

    with start_alertmanager(tmp_path, CONFIG_PATH.read_text(encoding="utf-8")) as alertmanager:
        _post_alerts(
            alertmanager.url,
            [alert("critical", "ccproxy"), alert("warning", "ccproxy"), alert("warning", "other")],
        )

        def states() -> dict[tuple[str, str], str] | None:
            alerts = http_get_json(f"{alertmanager.url}/api/v2/alerts")
            found = {
                (a["labels"]["severity"], a["labels"]["job"]): a["status"]["state"] for a in alerts
            }
            return found if found.get(("warning", "ccproxy")) == "suppressed" else None

        found = wait_for(states, timeout=10)
    assert found[("critical", "ccproxy")] == "active"
    assert found[("warning", "other")] == "active"
