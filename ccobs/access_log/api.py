"""The access-log query API: ``/logs/query``, ``/logs/analytics``, ``/logs/stream``.

Records name models, timings and costs per request, so the routes exist only
when a token is configured, and every call must carry it
(``Authorization: Bearer <token>``). Queries run on a worker thread: a scan
over a day of records must not stall the proxy's event loop.

The stream is server-sent events: ``event: record`` per request as it ends,
``event: overflow`` with ``{"dropped": n}`` where this listener's bounded
queue overflowed, and a comment line as heartbeat. A stream ends after
``max_seconds`` (the client reconnects; ``retry`` says when), because the
server waits for open responses on shutdown and a tail never ends by itself.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ccobs.access_log.breakdown import DEFAULT_TOP, check_top, column_of
from ccobs.access_log.query import MAX_LIMIT, LogFilter, parse_time, record_dict
from ccobs.access_log.store import BatchingAccessLog
from ccobs.access_log.tail import Overflow
from ccobs.bearer_token import bearer_token_matches

logger = structlog.get_logger("ccobs.access_log.api")

QUERY_PATH = "/logs/query"
ANALYTICS_PATH = "/logs/analytics"
STREAM_PATH = "/logs/stream"
ACCESS_LOG_API_PATHS: tuple[str, ...] = (QUERY_PATH, ANALYTICS_PATH, STREAM_PATH)
"""Add these to the middleware's ``skip_paths``: reading the log is not proxy traffic."""

_DEFAULT_ANALYTICS_SPAN = timedelta(hours=24)


class _BadRequest(ValueError):
    pass


def _filter(request: Request, *, default_span: timedelta | None = None) -> LogFilter:
    params = request.query_params
    now = datetime.now(UTC)
    try:
        end = parse_time(params["end"], now) if "end" in params else None
        start = parse_time(params["start"], now) if "start" in params else None
        if start is None and default_span is not None:
            start = (end or now) - default_span
        status = int(params["status"]) if "status" in params else None
        limit = int(params.get("limit", "100"))
        return LogFilter(
            start=start,
            end=end,
            model=params.get("model"),
            status=status,
            service_type=params.get("service_type"),
            limit=limit,
            team=params.get("team"),
            key_alias=params.get("key_alias"),
            client_app=params.get("client_app"),
            session_id=params.get("session_id"),
        )
    except ValueError as exc:
        raise _BadRequest(str(exc)) from None


def _grouping(request: Request) -> tuple[str | None, int]:
    """``by`` (a ``breakdown.GROUPS`` name) and ``top`` of ``/logs/analytics``, checked."""
    params = request.query_params
    try:
        group_by = params.get("by")
        if group_by is not None:
            column_of(group_by)
        top = check_top(int(params.get("top", str(DEFAULT_TOP))))
    except ValueError as exc:
        raise _BadRequest(str(exc)) from None
    return group_by, top


def _unauthorized() -> Response:
    return JSONResponse(
        {"error": "the access-log API requires a bearer token"},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="logs"'},
    )


Endpoint = Callable[[Request], Awaitable[Response]]


def access_log_routes(
    store: BatchingAccessLog,
    token: str,
    *,
    tail_queue_size: int = 1000,
    heartbeat_seconds: float = 15.0,
    max_stream_seconds: float = 300.0,
) -> list[Route]:
    """Starlette routes serving ``store``'s records to holders of ``token``."""
    if not token:
        raise ValueError("the access-log API needs a non-empty token")

    def guarded(handler: Endpoint) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            if not bearer_token_matches(request.headers.get("authorization"), token):
                return _unauthorized()
            try:
                return await handler(request)
            except _BadRequest as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)

        return endpoint

    async def run(method: Callable[[LogFilter], Any], flt: LogFilter) -> Response:
        try:
            result = await anyio.to_thread.run_sync(method, flt)
        except Exception as exc:  # the database is missing, locked or broken
            logger.warning("access_log_query_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            return JSONResponse(
                {"error": f"access-log database unavailable: {type(exc).__name__}"},
                status_code=503,
            )
        return JSONResponse(result)

    async def query(request: Request) -> Response:
        flt = _filter(request)
        return await run(
            lambda f: {"records": (records := store.query(f)), "count": len(records)}, flt
        )

    async def analytics(request: Request) -> Response:
        flt = _filter(request, default_span=_DEFAULT_ANALYTICS_SPAN)
        group_by, top = _grouping(request)
        return await run(lambda f: store.analytics(f, group_by=group_by, top=top), flt)

    async def stream(request: Request) -> Response:
        model = request.query_params.get("model")
        subscription = store.live.subscribe(tail_queue_size)
        if subscription is None:
            return JSONResponse({"error": "too many live-tail listeners"}, status_code=503)

        async def events() -> AsyncIterator[bytes]:
            deadline = anyio.current_time() + max_stream_seconds
            try:
                yield b"retry: 1000\n: ccobs access-log tail\n\n"
                while (remaining := deadline - anyio.current_time()) > 0:
                    item = await subscription.get(min(heartbeat_seconds, remaining))
                    if item is None:
                        yield b": heartbeat\n\n"
                    elif isinstance(item, Overflow):
                        data = json.dumps({"dropped": item.dropped})
                        yield f"event: overflow\ndata: {data}\n\n".encode()
                    elif model is None or item.model == model:
                        data = json.dumps(record_dict(item, store.keep_client_info))
                        yield f"event: record\ndata: {data}\n\n".encode()
            finally:
                store.live.unsubscribe(subscription)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return [
        Route(QUERY_PATH, guarded(query), methods=["GET"]),
        Route(ANALYTICS_PATH, guarded(analytics), methods=["GET"]),
        Route(STREAM_PATH, guarded(stream), methods=["GET"]),
    ]


__all__ = ["ACCESS_LOG_API_PATHS", "MAX_LIMIT", "access_log_routes"]
