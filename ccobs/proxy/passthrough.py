"""Every other path of the upstream API, passed through with the same guarantees.

Clients call more than the two accounted endpoints: Claude Code counts tokens
(``POST /v1/messages/count_tokens?beta=true``), SDKs list models. The proxy
relays any method, path, query string, header and body to the upstream and
streams the answer back as it comes, counted under a bounded route template
(the known paths by name, everything else as ``/{path:path}``), credentials
never logged. No tokens or cost: only answers that report usage are
accounted (:mod:`ccobs.proxy.relay`); ``count_tokens`` counts a prompt, it
does not spend one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from ccobs import RequestContext, current_request_context
from ccobs.answer_signals import RETRY_COUNT_HEADER, parse_retry_count
from ccobs.catalog import (
    CLIENT_DISCONNECT,
    UPSTREAM_CONNECTION_ERROR,
    UPSTREAM_STREAM_ERROR,
    UPSTREAM_TIMEOUT,
    upstream_status_error_type,
)
from ccobs.proxy.relay import (
    CLIENT_CLOSED_REQUEST,
    MAX_MODEL_CHARS,
    WATCH_AFTER_SECONDS,
    LeaveWatch,
    LLMProxy,
    RelayedStream,
    forward_headers,
    relay_headers,
)
from ccobs.proxy.upstream_client import UpstreamError, UpstreamResponse, UpstreamTimeout
from ccobs.proxy.upstream_ids import upstream_request_id
from ccobs.proxy.usage import Api

ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

PASSTHROUGH_ROUTES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("/v1/messages/count_tokens", ("POST",)),
    ("/v1/models", ("GET",)),
    ("/v1/models/{model_id}", ("GET",)),
    ("/{path:path}", ALL_METHODS),
)
"""Route templates of the passed-through paths, most specific first: each is a label value
of ``endpoint``, so the catch-all keeps any number of paths to one series."""

_OPENAI_PATHS = ("/v1/chat/", "/v1/completions", "/v1/embeddings", "/v1/responses")


class Passthrough:
    """Relays a request the proxy does not account, on the accounted relay's client."""

    def __init__(self, proxy: LLMProxy) -> None:
        self.proxy = proxy

    async def __call__(self, request: Request) -> Response:
        ctx = current_request_context()
        if ctx is None:  # a path the middleware skips is the proxy's own, never the upstream's
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        proxy = self.proxy
        api = _api_of(request)
        body = await proxy.read_body(request)
        if body is None:
            return proxy.reject(ctx, api, 413, "request body too large")
        model = _model_of(body)
        if model is not None:
            ctx.record.model = model
        ctx.record.retry_count = parse_retry_count(request.headers.get(RETRY_COUNT_HEADER))
        target = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string", b"")
        try:
            path = (target + (b"?" + query if query else b"")).decode("ascii")
        except UnicodeDecodeError:
            return proxy.reject(ctx, api, 400, "request target is not ASCII")
        headers = forward_headers(request.headers.raw, ctx.request_id)
        watch = LeaveWatch(request.receive, after=WATCH_AFTER_SECONDS)
        try:
            upstream = await proxy.client.send(request.method, path, headers, body)
        except asyncio.CancelledError:
            if not watch.client_left():
                raise
            ctx.record.error_type = CLIENT_DISCONNECT
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        except UpstreamTimeout:
            return proxy.fail(ctx, api, 504, UPSTREAM_TIMEOUT, "upstream timed out")
        except UpstreamError as exc:
            return proxy.fail(
                ctx, api, 502, UPSTREAM_CONNECTION_ERROR, f"upstream unreachable: {exc}"
            )
        finally:
            watch.stop()
        ctx.record.upstream_request_id = upstream_request_id(api, upstream)
        if upstream.status_code >= 400:
            ctx.record.error_type = upstream_status_error_type(upstream.status_code)
        return relay_headers(
            RelayedStream(_relayed(upstream, ctx), status_code=upstream.status_code), upstream
        )


async def _relayed(upstream: UpstreamResponse, ctx: RequestContext) -> AsyncGenerator[bytes, None]:
    """The upstream's body as it arrives; a break is the stream's error, the client's leave its."""
    record = ctx.record
    try:
        async for chunk in upstream.iter_bytes():
            yield chunk
    except UpstreamTimeout:
        record.error_type = UPSTREAM_TIMEOUT
    except UpstreamError:
        record.error_type = UPSTREAM_STREAM_ERROR
    except (GeneratorExit, asyncio.CancelledError):
        record.error_type = CLIENT_DISCONNECT
        raise
    finally:
        upstream.close()


def _api_of(request: Request) -> Api:
    """Whose error shape a failure is answered in: OpenAI's paths, else Anthropic's."""
    return "openai" if request.url.path.startswith(_OPENAI_PATHS) else "anthropic"


def _model_of(body: bytes) -> str | None:
    """The ``model`` of a JSON request body, bounded like the accounted routes'; else None."""
    if not body.startswith(b"{"):
        return None
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    model = payload.get("model") if isinstance(payload, dict) else None
    return model[:MAX_MODEL_CHARS] if isinstance(model, str) and model else None
