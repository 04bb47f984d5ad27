"""``instrument(app)``: one call to give a FastAPI or Starlette app metrics, logs and push."""

from __future__ import annotations

from collections.abc import Collection

from starlette.applications import Starlette
from starlette.types import ASGIApp

from ccobs.asgi import DEFAULT_SKIP_PATHS, ObservabilityMiddleware
from ccobs.attribution import Attribution
from ccobs.identity import Identities
from ccobs.metrics import PrometheusMetrics, get_metrics
from ccobs.metrics_endpoint import metrics_endpoint
from ccobs.pusher import BackgroundPusher
from ccobs.settings import ObservabilitySettings
from ccobs.storage import AccessLogStorage


def instrument(
    app: Starlette,
    metrics: PrometheusMetrics | None = None,
    settings: ObservabilitySettings | None = None,
    *,
    service_type: str = "proxy_service",
    metrics_path: str = "/metrics",
    skip_paths: Collection[str] = DEFAULT_SKIP_PATHS,
    storage: AccessLogStorage | None = None,
    identities: Identities | None = None,
) -> PrometheusMetrics:
    """Instrument ``app`` and serve its metrics at ``metrics_path``; returns the metrics.

    The middleware is placed outside Starlette's error handling, so the
    ``x-request-id`` header and the 500 status of an unhandled exception are
    seen and recorded like any other response. When the settings name a push
    URL, a background pusher runs for the app's lifetime and pushes a last
    time on shutdown. Call it before the app serves its first request.

    A handler gets its request's tokens, cost and time to first token into the
    metrics, the access-log line and the stored record by filling
    ``current_request_context().record`` (see :mod:`ccobs.record`).

    With ``identities`` (or the ``identities`` setting, an identity file),
    every request's record gets its caller's team, key alias and key
    fingerprint, its client app and its session (see :mod:`ccobs.attribution`).
    """
    if app.middleware_stack is not None:
        raise RuntimeError("instrument() must be called before the app handles its first request")
    if metrics is None:
        metrics = get_metrics(settings=settings)
    settings = settings or metrics.settings
    if identities is None and settings.identities:
        identities = Identities.load(settings.identities)
    attribution = Attribution(identities) if identities is not None else None
    pusher = None
    if metrics.is_pushgateway_enabled():
        pusher = BackgroundPusher(
            metrics.push_to_gateway,
            settings.pushgateway_interval_seconds,
            max_backoff=settings.pushgateway_max_backoff_seconds,
        )
    app.add_route(
        metrics_path,
        metrics_endpoint(metrics, settings.metrics_token),
        methods=["GET"],
        include_in_schema=False,
    )
    build_inner_stack = app.build_middleware_stack
    instrumented = metrics

    def build_middleware_stack() -> ASGIApp:
        return ObservabilityMiddleware(
            build_inner_stack(),
            instrumented,
            service_type=service_type,
            skip_paths={*skip_paths, metrics_path},
            storage=storage,
            pusher=pusher,
            attribution=attribution,
        )

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
    return metrics
