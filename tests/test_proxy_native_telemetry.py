"""FastAPI's native OpenTelemetry in the proxy: on where OpenTelemetry is set up, else off.

OpenTelemetry's global providers can be set once per process, so the cases
with a real provider run in a fresh interpreter each.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ccobs.proxy.native_telemetry import (
    AUTO_CONFIGURE_ENV,
    OFF,
    PROVIDER_ENV,
    native_telemetry_kwargs,
)

_SCRIPT = """
import asyncio, json
import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from ccobs import PrometheusMetrics
from ccobs.proxy.app import create_proxy_app
from ccobs.proxy.config import ProxyConfig
from ccobs.settings import ObservabilitySettings

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))

def build():
    return create_proxy_app(
        ProxyConfig(upstream_url="http://127.0.0.1:9"),
        metrics=PrometheusMetrics(registry=CollectorRegistry()),
        settings=ObservabilitySettings(),
    )

if {provider_first}:
    trace.set_tracer_provider(provider)
    app = build()
else:
    app = build()
    trace.set_tracer_provider(provider)

async def get():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
        assert (await client.get("/health")).status_code == 200

asyncio.run(get())
print(json.dumps([span.name for span in exporter.get_finished_spans()]))
"""


def _spans(provider_first: bool) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(provider_first=provider_first)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    spans: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return spans


@pytest.fixture
def no_opentelemetry_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (AUTO_CONFIGURE_ENV, *PROVIDER_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_fastapi_telemetry_is_off_without_opentelemetry(
    no_opentelemetry_env: pytest.MonkeyPatch,
) -> None:
    assert native_telemetry_kwargs() == {"telemetry": OFF}


def test_fastapi_auto_configure_keeps_its_telemetry(
    no_opentelemetry_env: pytest.MonkeyPatch,
) -> None:
    no_opentelemetry_env.setenv(AUTO_CONFIGURE_ENV, "true")
    assert native_telemetry_kwargs() == {}


@pytest.mark.parametrize("name", PROVIDER_ENV)
def test_a_provider_named_in_the_environment_keeps_fastapi_telemetry(
    no_opentelemetry_env: pytest.MonkeyPatch, name: str
) -> None:
    no_opentelemetry_env.setenv(name, "sdk_provider")
    assert native_telemetry_kwargs() == {}


def test_a_provider_set_before_the_app_gets_fastapi_spans() -> None:
    assert _spans(provider_first=True) == ["GET /health"]


def test_a_provider_set_after_the_app_is_not_seen() -> None:
    assert _spans(provider_first=False) == []
