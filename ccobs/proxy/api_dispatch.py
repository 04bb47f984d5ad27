"""The proxy's API endpoints served straight from inside ccobs's middleware, past FastAPI's stack.

A request through a FastAPI app passes seven layers before its endpoint:
Starlette's error middleware, FastAPI's exception telemetry, body limit,
exception middleware and exit stack, the router trying each route's pattern
in turn, and the route. The proxy's three API endpoints (``POST
/v1/messages``, ``/v1/chat/completions``, ``/v1/responses``) need none of
them: their handlers take the raw request, raise no ``HTTPException``, use no
dependency or upload, and the proxy sets no body limit. Each layer costs a
coroutine (and several a closure) on every request, and a stream's every
event passes the error middleware's ``send`` wrapper, so
:class:`ApiDispatch` hands those requests to their handler directly, with
what the router would have put in the scope, and sends the error
middleware's 500 for an exception raised before the answer starts.

Everything else (other paths and methods, ``/metrics``, ``/health``, the
pass-through) goes through the whole stack as before; so does everything
when the app has user middleware or a 500 handler of its own (an embedder's
``add_middleware`` must see every request), or runs in debug mode.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI, Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ccobs.proxy.relay import ApiRoute


class ApiDispatch:
    """Routes ``POST`` to the API paths to their handlers; anything else to ``app``."""

    def __init__(self, app: ASGIApp, router: object, routes: Sequence[Route]) -> None:
        self.app = app
        self.router = router
        self.routes: dict[str, tuple[Route, ApiRoute]] = {}
        for route in routes:
            endpoint = route.endpoint
            if isinstance(endpoint, ApiRoute) and route.methods == {"POST"}:
                self.routes[route.path] = (route, endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            found = self.routes.get(scope["path"])
            if found is not None:
                route, endpoint = found
                # What the router leaves in the scope: ccobs reads the route's template.
                scope["router"] = self.router
                scope["route"] = route
                scope["endpoint"] = endpoint
                scope["path_params"] = {}
                try:
                    response = await endpoint.handler(Request(scope, receive, send))
                except Exception:
                    # Starlette's ServerErrorMiddleware: a 500 the client can read, then
                    # the exception on to the server, which logs it.
                    await PlainTextResponse("Internal Server Error", status_code=500)(
                        scope, receive, send
                    )
                    raise
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def serve_api_routes_directly(app: FastAPI, routes: Sequence[Route]) -> None:
    """Put :class:`ApiDispatch` in front of ``app``'s stack when the stack can be skipped.

    Call it before :func:`ccobs.instrument`, so ccobs's middleware stays the
    outermost layer and sees every request. Decided when the stack is built,
    at the first request, after any middleware an embedder added.
    """
    build_inner_stack = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        inner = build_inner_stack()
        handles_errors = any(key in (500, Exception) for key in app.exception_handlers)
        if app.user_middleware or handles_errors or app.debug or app.max_body_size is not None:
            return inner
        return ApiDispatch(inner, app.router, routes)

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
