"""ccobs: observability for LLM API proxies.

Prometheus metrics (requests, latency, time to first token, tokens, cost,
errors), structured logs correlated by request id, request context tracking,
one typed record per request (``RequestContext.record``) feeding all three,
and push to a Pushgateway or VictoriaMetrics.
"""

from ccobs.context import (
    ContextTracker,
    RequestContext,
    current_request_context,
    get_context_tracker,
    request_context,
    reset_context_tracker,
    timed_operation,
    tracked_request_context,
)
from ccobs.fastapi import instrument
from ccobs.logging import configure_logging
from ccobs.metrics import PrometheusMetrics, get_metrics, reset_metrics
from ccobs.pushgateway import PushgatewayClient, get_pushgateway_client, reset_pushgateway_client
from ccobs.record import RequestRecord, TokenUsage
from ccobs.settings import ObservabilitySettings, SettingsError
from ccobs.storage import AccessLogRecord, AccessLogStorage
from ccobs.version import __version__

__all__ = [
    "AccessLogRecord",
    "AccessLogStorage",
    "ContextTracker",
    "ObservabilitySettings",
    "PrometheusMetrics",
    "PushgatewayClient",
    "RequestContext",
    "RequestRecord",
    "SettingsError",
    "TokenUsage",
    "__version__",
    "configure_logging",
    "current_request_context",
    "get_context_tracker",
    "get_metrics",
    "get_pushgateway_client",
    "instrument",
    "request_context",
    "reset_context_tracker",
    "reset_metrics",
    "reset_pushgateway_client",
    "timed_operation",
    "tracked_request_context",
]
