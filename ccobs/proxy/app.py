"""The proxy as an app: the relay's routes, ``/health``, the access log, and ccobs's middleware.

``create_proxy_app`` is what tests and embedders call with objects;
``create_app_from_env`` is what each ``ccobs proxy`` worker calls (uvicorn's
factory), building the same app from the environment the command set.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.routing import Route

from ccobs import PrometheusMetrics, get_metrics, instrument
from ccobs.access_log import BatchingAccessLog, open_access_log
from ccobs.access_log.api import ACCESS_LOG_API_PATHS, access_log_routes
from ccobs.asgi import DEFAULT_SKIP_PATHS
from ccobs.budgets import Budget, expose_budgets
from ccobs.identity import Identities
from ccobs.identity_file import load_identity_file
from ccobs.pricing import PriceTable
from ccobs.proxy.api_dispatch import serve_api_routes_directly
from ccobs.proxy.config import (
    ANTHROPIC_PATH,
    DEFAULT_UPSTREAM,
    OPENAI_PATH,
    PRICES_ENV,
    RESPONSES_PATH,
    UPSTREAM_ENV,
    ProxyConfig,
)
from ccobs.proxy.native_telemetry import native_telemetry_kwargs
from ccobs.proxy.passthrough import PASSTHROUGH_ROUTES, Passthrough
from ccobs.proxy.relay import ApiRoute, LLMProxy
from ccobs.proxy.upstream_client import Timeouts, UpstreamClient
from ccobs.settings import ObservabilitySettings
from ccobs.storage import AccessLogStorage

HEALTH_PATH = "/health"
PROBE_PATHS = ("/", "/api/hello")
"""Connectivity probes clients send their base URL before the first request (Claude Code:
``HEAD /api/hello``; others ``HEAD /`` or ``GET /``), answered here, never forwarded (they
carry no key and their answer is not read), and not counted as traffic."""


async def _healthy(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_proxy_app(
    config: ProxyConfig | None = None,
    *,
    metrics: PrometheusMetrics | None = None,
    settings: ObservabilitySettings | None = None,
    prices: PriceTable | None = None,
    storage: AccessLogStorage | None = None,
    budgets: tuple[Budget, ...] = (),
) -> FastAPI:
    """The proxy as a FastAPI app, instrumented, with a pooled upstream client.

    Without ``storage``, the settings' ``access_log_db`` (if any) opens a store
    the app owns: it is flushed and closed when the app shuts down, after the
    last request has ended. With ``access_log_api_token`` too, ``/logs/*`` serve it.
    The identity file (``config.identities_path``, else the ``identities``
    setting) names the callers and its budgets get their ``budget_usd`` series
    at start; ``budgets`` given here replace the file's.
    """
    config = config or ProxyConfig()
    if metrics is None:
        metrics = get_metrics(settings=settings)
    effective = settings or metrics.settings
    # The allow-listed models' token and cost series exist from the start, at zero.
    metrics.start_model_series(effective.model_allowlist, config.service_type)
    identities_path = config.identities_path or effective.identities
    identities = Identities()
    if identities_path:
        identities, file_budgets = load_identity_file(identities_path)
        budgets = budgets or file_budgets
    expose_budgets(metrics, budgets)
    owned_store = None
    if storage is None and effective.access_log_db:
        storage = owned_store = open_access_log(
            effective.access_log_db,
            metrics=metrics,
            retention_days=effective.access_log_retention_days,
            queue_size=effective.access_log_queue_size,
            keep_client_info=effective.access_log_client_info,
        )
    client = UpstreamClient(
        config.upstream_url,
        Timeouts(
            connect=config.connect_timeout,
            read=config.read_timeout,
            write=config.write_timeout,
            pool=config.pool_timeout,
        ),
        max_connections=config.max_connections,
        max_keepalive_connections=config.max_keepalive_connections,
    )
    proxy = LLMProxy(
        client,
        metrics,
        prices or PriceTable.default(),
        config,
        client_info=effective.access_log_client_info,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        client.close()
        if owned_store is not None:  # every request has ended: write what they left
            await anyio.to_thread.run_sync(owned_store.close)

    # No documentation routes: every path is the upstream's (see ccobs.proxy.passthrough).
    app = FastAPI(
        title="ccobs proxy",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        **native_telemetry_kwargs(),  # FastAPI's OpenTelemetry: only where it is set up
    )
    app.state.proxy = proxy
    app.state.access_log = storage
    if effective.access_log_api_token and isinstance(storage, BatchingAccessLog):
        app.router.routes.extend(access_log_routes(storage, effective.access_log_api_token))
    # Plain Starlette routes serving plain ASGI apps (see ApiRoute), ahead of FastAPI's
    # documentation routes so the router tries them first.
    api_routes = [
        Route(ANTHROPIC_PATH, ApiRoute(proxy.anthropic_messages), methods=["POST"]),
        Route(OPENAI_PATH, ApiRoute(proxy.openai_chat_completions), methods=["POST"]),
        Route(RESPONSES_PATH, ApiRoute(proxy.openai_responses), methods=["POST"]),
    ]
    app.router.routes[:0] = api_routes
    serve_api_routes_directly(app, api_routes)  # before instrument(): ccobs stays outermost

    # ``/health``, and the probes clients send their base URL: a healthy answer, and not
    # traffic (skipped below), so a healthy session shows no errors.
    app.router.routes.extend(
        Route(path, _healthy, methods=["GET", "HEAD"]) for path in (HEALTH_PATH, *PROBE_PATHS)
    )
    instrument(
        app,
        metrics,
        settings,
        service_type=config.service_type,
        skip_paths=(*DEFAULT_SKIP_PATHS, *PROBE_PATHS, *ACCESS_LOG_API_PATHS),
        storage=storage,
        identities=identities,
    )
    # Last, after /health, /metrics and /logs/*: every other path goes to the upstream.
    passthrough = Passthrough(proxy)
    app.router.routes.extend(
        Route(template, ApiRoute(passthrough), methods=list(methods))
        for template, methods in PASSTHROUGH_ROUTES
    )
    return app


def create_app_from_env() -> FastAPI:
    """The proxy as configured by ``ccobs proxy``, for uvicorn's factory mode and workers.

    Each worker process builds its own app from the environment the command
    set: the upstream URL, the price file and the usual ``CCOBS_*`` settings.
    """
    settings = ObservabilitySettings.load()
    prices_file = os.environ.get(PRICES_ENV)
    prices = PriceTable.from_yaml(prices_file) if prices_file else None
    config = ProxyConfig(upstream_url=os.environ.get(UPSTREAM_ENV, DEFAULT_UPSTREAM))
    return create_proxy_app(config, settings=settings, prices=prices)
