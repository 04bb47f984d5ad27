"""The apps the middleware benchmark serves: one trivial endpoint, three ways.

Each is a factory (``module:function``) so uvicorn builds it in the server
subprocess. Logging is configured the same way for all three (JSON at
WARNING), so only the instrumentation differs; ``ccobs_access_log`` adds
ccobs's per-request access-log line at INFO, written to ``/dev/null``, and
``ccobs_access_log_chain`` the same line through the ordinary logging chain.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _logging(level: str, *, direct_line: bool = True) -> None:
    """JSON lines to ``/dev/null``; ``direct_line=False`` sends the access-log line
    through the ordinary logging chain, as every line went before ``ccobs.access_line``."""
    import logging

    from ccobs.logging import configure_logging

    configure_logging(level, "json", stream=open("/dev/null", "w"))  # noqa: SIM115
    if not direct_line:
        for handler in logging.getLogger().handlers:
            if hasattr(handler, "line_writer"):
                handler.line_writer = None


def plain() -> FastAPI:
    _logging("WARNING")
    return _app()


def ccobs() -> FastAPI:
    import ccobs as lib

    _logging("WARNING")
    app = _app()
    lib.instrument(app, lib.get_metrics(settings=lib.ObservabilitySettings()))
    return app


def ccobs_access_log() -> FastAPI:
    import ccobs as lib

    _logging("INFO")
    app = _app()
    lib.instrument(app, lib.get_metrics(settings=lib.ObservabilitySettings()))
    return app


def ccobs_access_log_chain() -> FastAPI:
    """``ccobs_access_log`` with the line through the ordinary chain: the baseline of the
    access-log line's direct path (``ccobs.access_line``), same code otherwise."""
    import ccobs as lib

    _logging("INFO", direct_line=False)
    app = _app()
    lib.instrument(app, lib.get_metrics(settings=lib.ObservabilitySettings()))
    return app


def echo_request_id() -> FastAPI:
    """Uninstrumented, behind a middleware that only echoes a new ``x-request-id``.

    The floor under ccobs's middleware: the same send wrapper and the same
    one response header, which the server must check and write, and nothing
    else (no context, no metrics, no logging decisions).
    """
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ccobs.context import new_request_id

    class EchoRequestId:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            echoed = (b"x-request-id", new_request_id().encode())

            def send_with_request_id(message: Message) -> Any:
                if message["type"] == "http.response.start":
                    message = dict(message)
                    message["headers"] = [*message.get("headers", ()), echoed]
                return send(message)

            await self.app(scope, receive, send_with_request_id)

    _logging("WARNING")
    app = _app()
    build_inner_stack = app.build_middleware_stack  # placed where instrument() places ccobs
    app.build_middleware_stack = lambda: EchoRequestId(build_inner_stack())  # type: ignore[method-assign]
    return app


def instrumentator() -> FastAPI:
    from prometheus_fastapi_instrumentator import Instrumentator

    _logging("WARNING")
    app = _app()
    Instrumentator().instrument(app).expose(app)
    return app


# -- benchmark 3: the mock upstream and the demo proxy in front of it -----------------------

UPSTREAM_URL_ENV = "BENCH_UPSTREAM_URL"
"""Where the benchmark proxy sends traffic (not ``CCOBS_PROXY_UPSTREAM_URL``: the
benchmark environment drops every ``CCOBS_`` variable)."""


STREAM_DELTAS_ENV = "BENCH_STREAM_DELTAS"
"""Text deltas per answer (four tokens each; default 4), to take the per-event cost apart."""
DELTA_GAP_ENV = "BENCH_DELTA_GAP"
"""Seconds between text deltas (default 0): a gap lets each event arrive in a read of its own."""


def unlimited_rate_limits() -> Any:
    """The mock's per-key windows out of reach: benchmarks send thousands of requests a
    minute on one key, and a 429 would be the mock's doing, not the code measured. The
    answers still carry the rate-limit headers, which the proxy reads as in production."""
    from ccobs.demo.mock_rate_limits import MockRateLimitConfig

    unlimited = 10**12
    return MockRateLimitConfig(requests=unlimited, input_tokens=unlimited, output_tokens=unlimited)


def upstream() -> FastAPI:
    """The mock upstream with constant, tiny delays and no faults.

    1 ms before the first text delta of a stream, 1 ms for a whole
    non-streamed answer, 16 output tokens in four deltas with no delay between
    them: the upstream costs next to nothing, so what the proxy adds shows.
    ``$BENCH_STREAM_DELTAS`` and ``$BENCH_DELTA_GAP`` change the deltas' number and spacing.
    """
    import os

    from ccobs.demo.upstream import Delay, UpstreamConfig, create_upstream_app

    _logging("WARNING")
    tokens = 4 * int(os.environ.get(STREAM_DELTAS_ENV, "4"))
    return create_upstream_app(
        UpstreamConfig(
            seed=1,
            ttft=Delay(0.001),
            latency=Delay(0.001),
            inter_token_delay=float(os.environ.get(DELTA_GAP_ENV, "0")) / 4,
            output_tokens=(tokens, tokens),
            max_recorded_decisions=0,
            rate_limits=unlimited_rate_limits(),
        )
    )


def proxy() -> FastAPI:
    """The demo proxy (instrumented, priced) in front of ``$BENCH_UPSTREAM_URL``."""
    import os

    import ccobs as lib
    from ccobs.proxy.app import create_proxy_app
    from ccobs.proxy.config import ProxyConfig

    _logging("WARNING")
    return create_proxy_app(
        ProxyConfig(upstream_url=os.environ[UPSTREAM_URL_ENV]),
        settings=lib.ObservabilitySettings(),
    )


# -- benchmark 5: a trivial instrumented app holding ~10k series, pushing or not -------------

PUSH_URL_ENV = "BENCH_PUSHGATEWAY_URL"
SERIES_ENV = "BENCH_SERIES"
PUSH_INTERVAL_ENV = "BENCH_PUSH_INTERVAL"


def _filled(push_url: str | None) -> FastAPI:
    import os

    import ccobs as lib
    from benchmarks.exposition import fill, models_for

    _logging("WARNING")
    series = int(os.environ.get(SERIES_ENV, "10000"))
    models = models_for(series)
    settings = lib.ObservabilitySettings(
        model_label_cap=models + 10,
        pushgateway_url=push_url,
        pushgateway_interval_seconds=float(os.environ.get(PUSH_INTERVAL_ENV, "0.2")),
        pushgateway_instance="bench",
    )
    metrics = lib.get_metrics(settings=settings)
    fill(metrics, models)
    app = _app()
    lib.instrument(app, metrics)
    return app


def quiet() -> FastAPI:
    """``ccobs`` with ~``$BENCH_SERIES`` series recorded and no pusher."""
    return _filled(None)


def pushing() -> FastAPI:
    """The same, with the background pusher sending them to ``$BENCH_PUSHGATEWAY_URL``."""
    import os

    return _filled(os.environ[PUSH_URL_ENV])


def bare_proxy() -> FastAPI:
    """A pass-through proxy with no observability: the floor for the demo proxy.

    The same framework (FastAPI, a plain Starlette route), upstream client
    (:class:`ccobs.proxy.upstream_client.UpstreamClient`, the demo proxy's
    limits) and streaming relay as the demo proxy, minus everything ccobs adds:
    no middleware, no request context, no usage parsing, no metrics, no logs.
    What the demo proxy costs beyond this is observability (and the demo's own
    checks); what this costs is proxying in Python.
    """
    import os
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from starlette.routing import Route

    from ccobs.proxy.config import ProxyConfig
    from ccobs.proxy.upstream_client import Timeouts, UpstreamClient

    _logging("WARNING")
    config = ProxyConfig()
    client = UpstreamClient(
        os.environ[UPSTREAM_URL_ENV],
        Timeouts(config.connect_timeout, config.read_timeout, config.write_timeout,
                 config.pool_timeout),
        max_connections=config.max_connections,
        max_keepalive_connections=config.max_keepalive_connections,
    )  # fmt: skip
    forwarded = [(b"content-type", b"application/json"), (b"anthropic-version", b"2023-06-01")]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        client.close()

    async def messages(request: Request) -> Response:
        upstream = await client.send("POST", "/v1/messages", forwarded, await request.body())
        content_type = upstream.header(b"content-type") or b"application/json"
        headers = {"content-type": content_type.decode("latin-1")}
        if not content_type.startswith(b"text/event-stream"):
            try:
                content = await upstream.read()
            finally:
                upstream.close()
            return Response(content, status_code=upstream.status_code, headers=headers)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.iter_bytes():
                    yield chunk
            finally:
                upstream.close()

        return StreamingResponse(relay(), status_code=upstream.status_code, headers=headers)

    app = FastAPI(lifespan=lifespan)
    app.router.routes.append(Route("/v1/messages", messages, methods=["POST"]))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def httpx_proxy() -> FastAPI:
    """:func:`bare_proxy` with httpx as its upstream client, as the demo proxy had before.

    Pooled with the demo proxy's limits, relayed the same way: the difference
    to :func:`bare_proxy` is what replacing httpx bought.
    """
    import os
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    import httpx

    # Request and Response are imported at module level: FastAPI resolves the endpoint's
    # (postponed) annotations in the module's namespace.
    _logging("WARNING")
    client = httpx.AsyncClient(
        base_url=os.environ[UPSTREAM_URL_ENV],
        timeout=httpx.Timeout(600.0, connect=10.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/messages")
    async def messages(request: Request) -> Response:
        body = await request.body()
        upstream = await client.send(
            client.build_request(
                "POST",
                "/v1/messages",
                content=body,
                headers={"content-type": "application/json", "anthropic-version": "2023-06-01"},
            ),
            stream=True,
        )
        headers = {"content-type": upstream.headers.get("content-type", "application/json")}
        if not upstream.headers.get("content-type", "").startswith("text/event-stream"):
            content = await upstream.aread()
            await upstream.aclose()
            return Response(content, status_code=upstream.status_code, headers=headers)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()

        return StreamingResponse(relay(), status_code=upstream.status_code, headers=headers)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


# -- attribution through the proxy: the identity file loaded or not --------------------------

IDENTITIES_ENV = "BENCH_IDENTITIES"
"""An identity file for :func:`proxy_identified` (``CCOBS_IDENTITIES`` is dropped here too)."""


def proxy_identified() -> FastAPI:
    """:func:`proxy` with the identity file at ``$BENCH_IDENTITIES`` loaded."""
    import os
    from pathlib import Path

    import ccobs as lib
    from ccobs.proxy.app import create_proxy_app
    from ccobs.proxy.config import ProxyConfig

    _logging("WARNING")
    return create_proxy_app(
        ProxyConfig(
            upstream_url=os.environ[UPSTREAM_URL_ENV],
            identities_path=Path(os.environ[IDENTITIES_ENV]),
        ),
        settings=lib.ObservabilitySettings(),
    )
