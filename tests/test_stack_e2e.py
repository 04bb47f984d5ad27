"""End to end on the real servers: native stack, demo proxy, load, dashboards and alerts.

One scenario, bounded to a few minutes by short windows: the stack is built
from a mixin configuration with 30 s burn-rate windows and a 1 s scrape and
evaluation interval (the committed production rules stay as they are).
Each step is its own assertion so a failure names the step.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from ccobs.access_log import SQLiteAccessLog
from ccobs.budgets import parse_budgets
from ccobs.demo.loadgen import LoadConfig, run_load
from ccobs.demo.mock_rate_limits import MockRateLimitConfig
from ccobs.demo.server_thread import ServerThread
from ccobs.demo.upstream import Delay, UpstreamConfig, create_upstream_app
from ccobs.metrics import PrometheusMetrics
from ccobs.mixin.config import BurnRateWindow, MixinConfig
from ccobs.mixin.dashboards import build_dashboards
from ccobs.mixin.grafana import interpolate, iter_queries
from ccobs.pricing import PriceTable
from ccobs.proxy.app import create_proxy_app
from ccobs.proxy.config import ProxyConfig
from ccobs.pushgateway import PushgatewayClient
from ccobs.record import RequestRecord
from ccobs.settings import ObservabilitySettings
from ccobs.stack.native import Stack, StackConfig, StackPorts

pytestmark = pytest.mark.integration

MIXIN = MixinConfig(
    burn_rate_windows=(BurnRateWindow("30s", "15s", 14.4, "critical", "5s"),),
    latency_window="30s",
    latency_for="1m",
    rate_limited_window="30s",
    push_failure_window="1m",
    ttft_p99_seconds=1.0,
    budget_spend_window="15s",
    budget_spend_interval="1s",
    budget_exhausted_for="5s",
    budget_burn_window="30s",
    budget_burn_for="5s",
    rate_limit_headroom_for="5s",
)
ERROR_ALERT = f"{MIXIN.alert_prefix}ErrorBudgetBurn"
TTFT_ALERT = f"{MIXIN.alert_prefix}TTFTHigh"
BUDGET_ALERT = f"{MIXIN.alert_prefix}BudgetExhausted"
HEADROOM_ALERT = f"{MIXIN.alert_prefix}RateLimitHeadroomLow"
BUDGETS = """\
budgets:
  - {team: research, period: 1d, usd: 0.01}
  - {team: platform, period: 30d, usd: 1000}
  - {key: alice, period: 1d, usd: 1000}
"""
"""A research budget the attributed traffic spends within seconds; the others have room left."""
CALLERS = (
    ("research", "bob", "claude-code", "claude-sonnet-4-6"),
    ("platform", "alice", "anthropic-sdk-python", "claude-haiku-4-5"),
    ("unassigned", "key-0badf00d", "curl", "claude-sonnet-4-6"),
)
ASK = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "hi"}],
}
PANEL_VARIABLES = {
    "datasource": "prometheus",
    "vm_datasource": "victoriametrics",
    "job": ".*",
    "instance": ".*",
    "model": ".*",
    "service_type": ".*",
    "__rate_interval": "15s",
    "__interval": "1s",
    "__range": "2m",
    "__range_s": "120",
}
FAST_UPSTREAM = UpstreamConfig(
    seed=21,
    ttft=Delay(0.02),
    latency=Delay(0.03),
    inter_token_delay=0.001,
    output_tokens=(5, 60),
    # Windows the healthy load never runs low; one key is then run low on purpose.
    rate_limits=MockRateLimitConfig(
        window_seconds=600.0, requests=10**6, input_tokens=10**9, output_tokens=10**9
    ),
)


@dataclass
class Webhook:
    """Alertmanager's webhook target: keeps every notification it receives."""

    url: str
    notifications: list[dict[str, Any]] = field(default_factory=list)

    def alerts(self, name: str, status: str) -> list[dict[str, Any]]:
        return [
            alert
            for note in list(self.notifications)
            for alert in note.get("alerts", [])
            if alert["labels"].get("alertname") == name and alert["status"] == status
        ]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    received: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Webhook(f"http://127.0.0.1:{server.server_address[1]}/", received)
    finally:
        server.shutdown()
        server.server_close()


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def query(url: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(url + "/api/v1/query", params={"query": expr}, timeout=10)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def alert_states(url: str, name: str) -> set[str]:
    """States of alert ``name`` on a Prometheus-API alerts endpoint (Prometheus or vmalert)."""
    response = httpx.get(url + "/api/v1/alerts", timeout=10)
    response.raise_for_status()
    return {
        alert["state"]
        for alert in response.json()["data"]["alerts"]
        if alert["labels"].get("alertname") == name
    }


class AttributedTraffic:
    """Requests of identified callers, fed to the metrics through their records.

    What the proxy does once it resolves a caller's identity, without depending on
    how it does: each record carries a team, key alias and client app, usage and cost,
    and goes through ``RequestRecord.record_metrics`` as the middleware's does.
    """

    def __init__(self, metrics: PrometheusMetrics, interval: float = 0.05) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(metrics, interval), daemon=True)
        self._thread.start()

    def _run(self, metrics: PrometheusMetrics, interval: float) -> None:
        prices = PriceTable.default()
        i = 0
        while not self._stop.wait(interval):
            team, alias, app, model = CALLERS[i % len(CALLERS)]
            record = RequestRecord(model=model, team=team, key_alias=alias, client_app=app)
            record.set_usage(input=1200, output=300, cache_read=4000, cache_write=100)
            record.set_cost(prices.cost(model, 1200, 300, 4000, 100))
            record.record_metrics(metrics, "/v1/messages", model, "anthropic")
            i += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


class Load:
    """The load generator on its own thread and event loop, stopped on demand."""

    def __init__(self, config: LoadConfig) -> None:
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[Any] | None = None
        self._thread = threading.Thread(target=self._run, args=(config,), daemon=True)
        self._thread.start()

    def _run(self, config: LoadConfig) -> None:
        async def main() -> None:
            self._task = asyncio.current_task()
            await run_load(config)

        try:
            self._loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass
        finally:
            self._loop.close()

    def stop(self) -> None:
        if self._task is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(30)


def test_stack_end_to_end(tmp_path: Path, webhook: Webhook) -> None:
    # -- the demo: mock upstream and proxy, in this process -------------------------------------
    registry = CollectorRegistry()
    settings = ObservabilitySettings(model_label_cap=4)
    metrics = PrometheusMetrics(registry=registry, settings=settings)
    upstream = ServerThread(create_upstream_app(FAST_UPSTREAM)).start()
    access_log = SQLiteAccessLog(tmp_path / "access.db", metrics=metrics)  # for its panel
    proxy = ServerThread(
        create_proxy_app(
            ProxyConfig(upstream_url=upstream.url),
            metrics=metrics,
            settings=settings,
            storage=access_log,
            budgets=parse_budgets(BUDGETS),
        )
    ).start()
    attributed = AttributedTraffic(metrics)
    stack = Stack(
        StackConfig(
            state_dir=tmp_path / "stack",
            proxy_target=f"127.0.0.1:{proxy.port}",
            ports=StackPorts.free(),
            scrape_interval="1s",
            evaluation_interval="1s",
            mixin=MIXIN,
            webhook_url=webhook.url,
            alertmanager_timings={
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            extra_args={"victoriametrics": ["-search.latencyOffset=0s"]},
        )
    )
    loads: list[Load] = []
    try:
        urls = stack.up().urls()
        prometheus, victoria, vmalert = urls["prometheus"], urls["victoriametrics"], urls["vmalert"]
        pushgateway = urls["pushgateway"]

        # -- traffic: healthy load, failing load, 429s; nothing overflows and nothing is refused,
        # so those panels must read their zero series -------------------------------------
        healthy = LoadConfig(
            target=proxy.url,
            rate=15.0,
            duration=600.0,
            seed=5,
            timeout=30.0,
            models={"claude-sonnet-4-6": 3, "claude-haiku-4-5": 1, "claude-unpriced-x": 1},
            openai_share=0.2,
            stream_share=0.5,
        )
        loads.append(Load(healthy))
        # Retried once, as an SDK would: the retries panels read the retries of these 500s.
        failing = Load(
            replace(healthy, rate=8.0, seed=6, headers={"x-mock-status": "500"}, max_retries=1)
        )
        loads.append(failing)
        for status in ("429", "429"):
            httpx.post(
                proxy.url + "/v1/messages",
                json={"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": []},
                headers={"x-mock-status": status},
            )
        for _ in range(2):  # a Claude subscription client, for the subscription panels
            httpx.post(
                proxy.url + "/v1/messages",
                json=ASK,
                headers={"authorization": "Bearer sk-ant-oat01-e2e"},
            )
        push_settings = ObservabilitySettings(
            pushgateway_url=pushgateway, pushgateway_job="ccproxy_push", pushgateway_instance="e2e"
        )
        pushed = PrometheusMetrics(
            registry=CollectorRegistry(),
            pushgateway_client=PushgatewayClient(push_settings),
            settings=push_settings,
        )
        pushed.record_request("POST", "/v1/messages", "claude-sonnet-4-6", 200, "batch_service")
        assert pushed.push_to_gateway() is True
        assert pushed.push_to_gateway() is True  # carries the count of the first push

        # -- Prometheus scrapes the proxy, and sees what was pushed ---------------------------
        wait_for(
            "the proxy target up",
            lambda: query(prometheus, 'up{job="ccproxy"} == 1'),
            timeout=30,
        )
        wait_for(
            "the pushed series in Prometheus",
            lambda: query(prometheus, 'ccproxy_requests_total{job="ccproxy_push",instance="e2e"}'),
            timeout=30,
        )

        # -- the error alert: pending, then firing, then at Alertmanager's webhook -------------
        seen: set[str] = set()

        def firing() -> bool:
            seen.update(alert_states(prometheus, ERROR_ALERT))
            return "firing" in seen

        wait_for(f"{ERROR_ALERT} firing in Prometheus", firing, timeout=90)
        assert "pending" in seen, seen
        wait_for(
            f"{ERROR_ALERT} at the webhook",
            lambda: webhook.alerts(ERROR_ALERT, "firing"),
            timeout=30,
        )
        wait_for(
            f"{ERROR_ALERT} firing in vmalert",
            lambda: "firing" in alert_states(vmalert, ERROR_ALERT),
            timeout=60,
        )

        # -- the research team spends its budget: the budget alert everywhere ------------------
        wait_for(
            f"{BUDGET_ALERT} firing in Prometheus",
            lambda: "firing" in alert_states(prometheus, BUDGET_ALERT),
            timeout=60,
        )
        budget_alerts = wait_for(
            f"{BUDGET_ALERT} at the webhook",
            lambda: webhook.alerts(BUDGET_ALERT, "firing"),
            timeout=30,
        )
        assert {a["labels"].get("team") for a in budget_alerts} == {"research"}
        wait_for(
            f"{BUDGET_ALERT} firing in vmalert",
            lambda: "firing" in alert_states(vmalert, BUDGET_ALERT),
            timeout=60,
        )

        # -- every panel query of every dashboard answers, from both stores -------------------
        empty: list[str] = []
        for board in build_dashboards(MIXIN).values():
            for uid, title, expr in iter_queries(board):
                promql = interpolate(expr, PANEL_VARIABLES)
                for store, url in (("prometheus", prometheus), ("victoriametrics", victoria)):
                    deadline = time.monotonic() + 20
                    while not query(url, promql) and time.monotonic() < deadline:
                        time.sleep(1)
                    if not query(url, promql):
                        empty.append(f"{store}: {uid} / {title}: {promql}")
        assert empty == []

        # -- errors stop: the alert resolves, and the webhook hears it ------------------------
        failing.stop()
        wait_for(
            f"{ERROR_ALERT} resolved in Prometheus",
            lambda: not alert_states(prometheus, ERROR_ALERT),
            timeout=90,
        )
        wait_for(
            f"{ERROR_ALERT} resolved at the webhook",
            lambda: webhook.alerts(ERROR_ALERT, "resolved"),
            timeout=30,
        )

        # -- first tokens slow down (the mock's TTFT raised): the TTFT alert fires -------------
        assert not alert_states(prometheus, TTFT_ALERT)
        slow = replace(
            healthy, rate=5.0, seed=7, stream_share=1.0, headers={"x-mock-ttft-ms": "1500"}
        )
        loads.append(Load(slow))
        wait_for(
            f"{TTFT_ALERT} firing in Prometheus",
            lambda: "firing" in alert_states(prometheus, TTFT_ALERT),
            timeout=150,
        )

        # -- one key's requests window runs low (the other traffic stopped, so its readings
        # do not overwrite the key's): the headroom alert fires and reaches the webhook ------
        for load in loads:
            load.stop()
        time.sleep(1.0)  # answers still in flight land before the key's
        low = {"x-api-key": "sk-ant-api03-e2e-low", "x-mock-ratelimit-requests": "20"}
        for _ in range(19):
            httpx.post(
                proxy.url + "/v1/messages",
                json=ASK,
                headers=low,
            ).raise_for_status()
        wait_for(
            f"{HEADROOM_ALERT} firing in Prometheus",
            lambda: "firing" in alert_states(prometheus, HEADROOM_ALERT),
            timeout=60,
        )
        wait_for(
            f"{HEADROOM_ALERT} at the webhook",
            lambda: webhook.alerts(HEADROOM_ALERT, "firing"),
            timeout=30,
        )
        wait_for(
            f"{HEADROOM_ALERT} firing in vmalert",
            lambda: "firing" in alert_states(vmalert, HEADROOM_ALERT),
            timeout=60,
        )
    finally:
        attributed.stop()
        for load in loads:
            load.stop()
        stopped = stack.down()
        proxy.stop()
        upstream.stop()
        access_log.close()

    # -- stack down leaves no process behind ----------------------------------------------------
    assert stopped
    for record in stopped:
        with pytest.raises(ProcessLookupError):
            os.kill(record.pid, 0)
