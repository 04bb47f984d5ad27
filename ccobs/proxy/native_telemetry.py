"""FastAPI's native OpenTelemetry for the proxy: kept where OpenTelemetry is set up, else off.

FastAPI (from 0.165) asks on every request whether a global OpenTelemetry
provider has been configured since the last one: three environment reads and
three provider checks, about 32,000 instructions per proxied request with no
OpenTelemetry anywhere (``benchmarks.proxy_instructions``), more than the
proxy spends reading an answer's usage. The proxy's own telemetry is ccobs's
metrics and access log, so it decides once, when the app is built: FastAPI's
spans, metrics and logs stay on exactly when OpenTelemetry is already set up
then (``opentelemetry-instrument``, which configures the providers before the
app is imported; a provider named in ``OTEL_PYTHON_*_PROVIDER``; FastAPI's own
``FASTAPI_OTEL_AUTO_CONFIGURE=true``), and are off otherwise. A provider set
only after the app is built is not seen: set it up first.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from fastapi import FastAPI

PROVIDER_ENV = (
    "OTEL_PYTHON_TRACER_PROVIDER",
    "OTEL_PYTHON_METER_PROVIDER",
    "OTEL_PYTHON_LOGGER_PROVIDER",
)
"""OpenTelemetry's variables naming a provider it loads on first use."""
AUTO_CONFIGURE_ENV = "FASTAPI_OTEL_AUTO_CONFIGURE"

OFF: dict[str, Any] = {"tracing": False, "metrics": False, "logs": False}

_DEFERRED_PROVIDERS = frozenset(
    {
        ("opentelemetry.trace", "ProxyTracerProvider"),
        ("opentelemetry.metrics._internal", "_ProxyMeterProvider"),
        ("opentelemetry._logs._internal", "ProxyLoggerProvider"),
    }
)
"""The placeholders OpenTelemetry's API hands out until a provider is set: the same
classes FastAPI's own per-request check treats as "not configured"."""


def _configured_provider() -> bool:
    """True if any global OpenTelemetry provider is a real one (not the API's placeholder)."""
    try:
        from opentelemetry import _logs, metrics, trace
    except ImportError:  # FastAPI before 0.165 does not depend on it
        return False
    providers = (
        trace.get_tracer_provider(),
        metrics.get_meter_provider(),
        _logs.get_logger_provider(),
    )
    return any((type(p).__module__, type(p).__name__) not in _DEFERRED_PROVIDERS for p in providers)


def native_telemetry_kwargs() -> dict[str, Any]:
    """``FastAPI(**this)``: nothing (FastAPI's default) when OpenTelemetry is set up, else off.

    Empty too for a FastAPI without native telemetry (before 0.165), which
    would refuse the argument.
    """
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    if os.environ.get(AUTO_CONFIGURE_ENV, "").lower() == "true":
        return {}
    if any(os.environ.get(name) for name in PROVIDER_ENV) or _configured_provider():
        return {}
    return {"telemetry": dict(OFF)}
