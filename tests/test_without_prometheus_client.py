"""Without prometheus_client, ccobs still imports and every metrics call is a harmless no-op.

The proof has to run where the import really fails: a fresh interpreter that
puts ``None`` in ``sys.modules['prometheus_client']`` before importing ccobs
(so ``import prometheus_client`` raises ImportError there), makes each call,
and prints what each one returned or raised as JSON. Each call is its own test
case, so a failure names the call.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

SCRIPT = r"""
import json
import sys

sys.modules["prometheus_client"] = None  # import prometheus_client now raises ImportError

results = {}


def call(name, fn):
    try:
        results[name] = {"returned": fn()}
    except BaseException as exc:
        results[name] = {"raised": f"{type(exc).__name__}: {exc}"}


def prometheus_client_importable():
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


import ccobs
from ccobs import ObservabilitySettings, PrometheusMetrics, PushgatewayClient, get_metrics

call("prometheus_client importable", prometheus_client_importable)
metrics = None


def construct():
    global metrics
    metrics = PrometheusMetrics()
    return type(metrics).__name__


call("PrometheusMetrics()", construct)
m = metrics
call("is_enabled", m.is_enabled)
call("record_request", lambda: m.record_request("POST", "/v1/messages", "m", 200, "proxy"))
call("record_response_time", lambda: m.record_response_time(1.5, "m", "/v1/messages", "proxy"))
call("record_time_to_first_token", lambda: m.record_time_to_first_token(0.3, "m", "/v1/messages"))
call("record_tokens", lambda: m.record_tokens(100, "input", "m", "proxy"))
call("record_cost", lambda: m.record_cost(0.01, "m", "total", "proxy"))
call("record_error", lambda: m.record_error("upstream_timeout", "/v1/messages", "m", "proxy"))
call("set_active_requests", lambda: m.set_active_requests(3))
call("inc_active_requests", m.inc_active_requests)
call("dec_active_requests", m.dec_active_requests)
call("update_system_info", m.update_system_info)
call("exposition_registry", m.exposition_registry)
call("is_pushgateway_enabled", m.is_pushgateway_enabled)
call("push_to_gateway", m.push_to_gateway)
call("push_to_gateway(pushadd)", lambda: m.push_to_gateway("pushadd"))
call("push_add_to_gateway", m.push_add_to_gateway)
call("delete_from_gateway", m.delete_from_gateway)

# A push target configured, as in production: still nothing to push, nothing sent.
client = PushgatewayClient(ObservabilitySettings(pushgateway_url="http://127.0.0.1:9"))
pushing = PrometheusMetrics(pushgateway_client=client)
call("PushgatewayClient.is_enabled", client.is_enabled)
call("PushgatewayClient.delete_metrics", client.delete_metrics)
call("is_pushgateway_enabled with a target", pushing.is_pushgateway_enabled)
call("push_to_gateway with a target", pushing.push_to_gateway)
call("get_metrics().is_enabled", lambda: get_metrics(settings=ObservabilitySettings()).is_enabled())

# An instrumented app keeps serving, and so does its /metrics endpoint.
from fastapi import FastAPI
from starlette.testclient import TestClient

app = FastAPI()
ccobs.instrument(app, PrometheusMetrics())


@app.get("/hello")
async def hello():
    return {"hello": "world"}


with TestClient(app, raise_server_exceptions=False) as http:
    call("instrumented route status", lambda: http.get("/hello").status_code)
    call("GET /metrics status", lambda: http.get("/metrics").status_code)

call("prometheus_client still blocked", lambda: sys.modules["prometheus_client"] is None)
print(json.dumps(results))
"""

EXPECTED: dict[str, Any] = {
    "prometheus_client importable": False,
    "PrometheusMetrics()": "PrometheusMetrics",
    "is_enabled": False,
    "record_request": None,
    "record_response_time": None,
    "record_time_to_first_token": None,
    "record_tokens": None,
    "record_cost": None,
    "record_error": None,
    "set_active_requests": None,
    "inc_active_requests": None,
    "dec_active_requests": None,
    "update_system_info": None,
    "exposition_registry": None,
    "is_pushgateway_enabled": False,
    "push_to_gateway": False,
    "push_to_gateway(pushadd)": False,
    "push_add_to_gateway": False,
    "delete_from_gateway": False,
    "PushgatewayClient.is_enabled": False,
    "PushgatewayClient.delete_metrics": False,
    "is_pushgateway_enabled with a target": False,
    "push_to_gateway with a target": False,
    "get_metrics().is_enabled": False,
    "instrumented route status": 200,
    "GET /metrics status": 200,
    "prometheus_client still blocked": True,
}


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    """Run every call once in an interpreter without prometheus_client."""
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{completed.stderr}"
    outcome: dict[str, Any] = json.loads(lines[-1])
    return outcome


@pytest.mark.parametrize(("call", "expected"), EXPECTED.items(), ids=list(EXPECTED))
def test_call_returns_without_raising(results: dict[str, Any], call: str, expected: Any) -> None:
    assert results.get(call) == {"returned": expected}


def test_every_call_in_the_script_is_checked(results: dict[str, Any]) -> None:
    assert sorted(results) == sorted(EXPECTED)
