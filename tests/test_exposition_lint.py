"""The library's exposition is clean for `promtool check metrics` and parses in both formats."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from realservers import promtool_check_metrics

from ccobs.catalog import COST_TYPES, TOKEN_TYPES
from ccobs.metrics import PrometheusMetrics
from ccobs.metrics_endpoint import render_metrics

pytestmark = pytest.mark.integration


@pytest.fixture
def metrics() -> PrometheusMetrics:
    """Metrics after one of every kind of record, so every family has samples."""
    metrics = PrometheusMetrics(registry=CollectorRegistry())
    metrics.record_request("POST", "/v1/messages", "claude-sonnet-4-5", 200, "proxy_service")
    metrics.record_response_time(1.2, "claude-sonnet-4-5", "/v1/messages", "proxy_service")
    metrics.record_time_to_first_token(0.4, "claude-sonnet-4-5", "/v1/messages", "proxy_service")
    for token_type in TOKEN_TYPES:
        metrics.record_tokens(100, token_type, "claude-sonnet-4-5", "proxy_service")
    for cost_type in COST_TYPES:
        metrics.record_cost(0.01, "claude-sonnet-4-5", cost_type, "proxy_service")
    metrics.record_error("rate_limited", "/v1/messages", "claude-sonnet-4-5", "proxy_service")
    metrics.inc_active_requests()
    metrics.record_cost(-1.0, "claude-sonnet-4-5")
    metrics.push_to_gateway()
    return metrics


def test_promtool_check_metrics_reports_nothing(metrics: PrometheusMetrics) -> None:
    body, _ = render_metrics(metrics, None)

    code, output = promtool_check_metrics(body.decode())

    assert (code, output.strip()) == (0, "")


def test_text_exposition_parses(metrics: PrometheusMetrics) -> None:
    body, content_type = render_metrics(metrics, "text/plain")

    assert content_type.startswith("text/plain; version=0.0.4")
    assert len(list(text_string_to_metric_families(body.decode()))) >= 10


def test_openmetrics_exposition_parses(metrics: PrometheusMetrics) -> None:
    body, content_type = render_metrics(metrics, "application/openmetrics-text; version=1.0.0")

    assert content_type.startswith("application/openmetrics-text")
    names = {family.name for family in openmetrics_families(body.decode())}
    assert {"ccproxy_requests", "ccproxy_tokens", "ccproxy_cost_usd"} <= names
