"""A pure ASGI middleware: request id, request context, and request metrics by route template.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``, because that one
buffers nothing but runs the app in a separate task and breaks context
variables and streaming back-pressure; this one only wraps ``send``, so a
streamed response flows through untouched and the duration and active gauge
cover it up to its last byte.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Collection
from time import perf_counter

import anyio
import anyio.to_thread
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ccobs.attribution import Attribution
from ccobs.catalog import http_error_type
from ccobs.context import (
    _DEBUG,
    _INFO,
    _LINE_LEVELS,
    _LOG_REQUEST_ID,
    _REQUEST_LOGGER,
    _STDLIB_FACTORY,
    _STRUCTLOG_CONFIG,
    RequestContext,
    _current_context,
    _log_request_end,
    _request_line_enabled,
    _store_request,
    new_request_id,
)
from ccobs.metrics import PrometheusMetrics
from ccobs.pusher import BackgroundPusher
from ccobs.redaction import redact_text
from ccobs.storage import AccessLogStorage

logger = structlog.get_logger("ccobs.asgi")

REQUEST_ID_HEADER = "x-request-id"
OWN_REQUEST_ID_HEADER = "x-ccobs-request-id"
"""Where ccobs's request id goes when the app's response has an ``x-request-id`` of its own
(an upstream's, relayed), which is never overwritten nor doubled; otherwise ours is the
response's ``x-request-id`` and this header is not sent (one header, as any request-id
middleware sends)."""
DEFAULT_SKIP_PATHS: tuple[str, ...] = ("/metrics", "/health", "/healthz", "/livez", "/readyz")
UNMATCHED_ENDPOINT = "unmatched"
"""The ``endpoint`` label of requests no route matched, so scans cannot add series."""

_REQUEST_ID_HEADER_BYTES = REQUEST_ID_HEADER.encode()
_OWN_REQUEST_ID_HEADER_BYTES = OWN_REQUEST_ID_HEADER.encode()
_FINAL_PUSH_GRACE_FACTOR = 3
_UNWIND_TIMEOUT = 10.0
"""How long lifespan shutdown waits for cancelled requests to finish recording."""
"""The final push on shutdown may take this many push timeouts (connect, send, answer)."""
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_new_object = object.__new__


def accept_request_id(value: str | None) -> str:
    """The client's request id when it is safe to log and echo, else a new one.

    Bounded length and a small character set keep a client from forging log
    lines (newlines, quotes) or bloating every line it touches; an id that
    looks like a key is replaced too, since ids are echoed, forwarded and stored.
    """
    if value is not None and _VALID_REQUEST_ID.match(value) and redact_text(value) == value:
        return value
    return new_request_id()


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/items/{id}``), never the raw path."""
    route = scope.get("route")
    if route is None and "endpoint" in scope:
        route = _route_of_endpoint(scope)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ENDPOINT


def _route_of_endpoint(scope: Scope) -> object | None:
    """The router's route serving the scope's endpoint.

    FastAPI's router puts ``route`` in the scope only for its own routes; a
    plain Starlette ``Route`` added to a FastAPI app leaves just its
    ``endpoint`` there.
    """
    endpoint = scope["endpoint"]
    routes: list[object] = getattr(scope.get("router"), "routes", [])
    for route in routes:
        if getattr(route, "endpoint", None) == endpoint:
            return route
    return None


class ObservabilityMiddleware:
    """Instruments every HTTP request except ``skip_paths``.

    Handlers enrich the request through ``ccobs.context.current_request_context()``.
    Its ``record`` (:class:`~ccobs.record.RequestRecord`) takes the typed facts:
    at the request's end its tokens, cost and time to first token are recorded
    in the metrics, and all its facts go to the access-log line and the stored
    record. Metadata works as before: ``model`` and ``service_type`` become
    labels, ``error_type`` names the error of a failed request (otherwise the
    exception class or ``http_<status>`` is used), and everything else goes to
    the line and the stored record. The record wins where both name a fact.
    On lifespan startup it starts ``pusher``; on shutdown it stops it with a
    final push and, under multiprocess mode, marks this worker dead so the
    active-requests gauge sums live workers only.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: PrometheusMetrics,
        *,
        service_type: str = "proxy_service",
        skip_paths: Collection[str] = DEFAULT_SKIP_PATHS,
        storage: AccessLogStorage | None = None,
        pusher: BackgroundPusher | None = None,
        attribution: Attribution | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.service_type = service_type
        self.skip_paths = frozenset(skip_paths)
        self.storage = storage
        self.pusher = pusher
        self.attribution = attribution
        """Fills each record's team, key, client app and session; None: not attributed."""
        self._in_flight: list[None] = []
        """One entry per request in flight, on any thread (an app served by two loops):
        ``list.append`` and ``list.pop`` are each atomic, so no lock and no thread check."""
        self._unwound: anyio.Event | None = None
        # A single process's active-requests gauge reads ``requests_in_flight`` when
        # it is scraped, so requests move no gauge; under multiprocess mode each
        # request moves its process's value in the shared files.
        watched = metrics.watch_in_flight(self)
        self._recorded_responses = metrics.recorded_responses()
        self._add_active = None if watched else metrics.active_requests_adder()

    def requests_in_flight(self) -> int:
        """The requests this middleware is instrumenting now, on every thread."""
        return len(self._in_flight)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip_paths:
            if scope["type"] == "lifespan":
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        # The request's whole instrumentation is in this one coroutine: every
        # coroutine, ``async with`` or call more costs on every request.
        in_flight = self._in_flight
        in_flight.append(None)
        try:
            # The header scan inline: most requests carry no id, and those get a
            # new one without the acceptance checks.
            for key, value in scope.get("headers", ()):
                if key == _REQUEST_ID_HEADER_BYTES:
                    request_id = accept_request_id(value.decode("latin-1"))
                    break
            else:
                request_id = new_request_id()
            request_id_bytes = request_id.encode()
            echoed = (_REQUEST_ID_HEADER_BYTES, request_id_bytes)
            status: int | None = None

            # A plain function returning ``send``'s awaitable: an ``async def`` would
            # add a coroutine of its own to every message the app sends.
            def send_with_request_id(message: Message) -> Awaitable[None]:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    # A copy: the app may send the same message (or headers list) again.
                    message = dict(message)
                    # A list (any iterable is valid ASGI), read once, then scanned.
                    headers = message["headers"] = [*message.get("headers", ())]
                    for key, _ in headers:
                        if key == _REQUEST_ID_HEADER_BYTES:  # the app's own (an upstream's)
                            headers.append((_OWN_REQUEST_ID_HEADER_BYTES, echoed[1]))
                            break
                    else:
                        headers.append(echoed)
                return send(message)

            # What ``async with request_context(request_id, self.storage)`` does, inline:
            # no coroutines, no calls beyond the context's own construction.
            method = scope.get("method", "GET")
            storage = self.storage
            started_at = time.time() if storage is not None else None  # for the record only
            # Metadata rather than logger bindings: binding a logger per
            # request costs more than the rest of the middleware together.
            metadata = {"method": method, "path": scope["path"]}
            # ``RequestContext(request_id, perf_counter(), _REQUEST_LOGGER, metadata, storage)``
            # without the class call and its ``__init__`` frame: every field set here, as
            # ``__init__`` sets it (a test holds the two alike).
            ctx = _new_object(RequestContext)
            ctx.request_id = request_id
            ctx.start_time = perf_counter()
            ctx.logger = _REQUEST_LOGGER
            ctx.metadata = metadata
            ctx.storage = storage  # ``_record`` stays the class's None until ``ctx.record``
            ctx_token = _current_context.set(ctx)
            id_token = _LOG_REQUEST_ID.set(request_id)
            # ``context._levels_decide()`` and ``_request_line_enabled(_INFO)``, inline.
            levels_decide = isinstance(_STRUCTLOG_CONFIG.logger_factory, _STDLIB_FACTORY)
            if levels_decide:
                # INFO first: where it is off, so is DEBUG, and the success line is not written.
                # A hit is isEnabledFor's answer, or a disabled logger's stale one: the
                # line's writer (``_log_request_end``) asks isEnabledFor itself.
                info = _LINE_LEVELS.get(_INFO)
                if info is None:
                    info = _request_line_enabled(_INFO)
            else:
                info = True
            if info and (not levels_decide or _request_line_enabled(_DEBUG)):
                _REQUEST_LOGGER.debug("request_start")
            add_active = self._add_active
            if add_active is not None:
                add_active(1)
            error: BaseException | None = None
            try:
                try:
                    if self.attribution is not None:
                        self.attribution.attribute(ctx.record, scope.get("headers", ()))
                    await self.app(scope, receive, send_with_request_id)
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    # Recorded here, before the request's line is written, inline: a
                    # method's call costs as much as several of these lines.
                    # ``route_template(scope)`` for a matched route, inline; else the call.
                    endpoint = getattr(scope.get("route"), "path", None)
                    if endpoint.__class__ is not str or not endpoint:
                        endpoint = route_template(scope)
                    # No status: an exception before the response started, the server's 500.
                    status_code = 500 if status is None else status
                    metadata = ctx.metadata
                    service_type = metadata.setdefault("service_type", self.service_type)
                    facts = ctx._record  # None unless the handler used ``ctx.record``
                    if facts is None:
                        model = metadata.get("model")
                        error_type = metadata.get("error_type")
                    else:  # the record wins over metadata of the same name
                        model = facts.model
                        if model is None:
                            model = metadata.get("model")
                        error_type = facts.error_type
                        if error_type is None:
                            error_type = metadata.get("error_type")
                    if error_type is None:
                        if error is not None:
                            error_type = type(error).__name__
                        elif status_code >= 400:
                            error_type = http_error_type(status_code)
                    metadata["endpoint"] = endpoint
                    metadata["status"] = status_code
                    if facts is not None:
                        # Before the request is counted, as when the proxy recorded its
                        # tokens itself: whoever sees the count sees its tokens and cost.
                        facts.record_metrics(self.metrics, endpoint, model, service_type)
                    duration = perf_counter() - ctx.start_time
                    labels = (method, endpoint, model, status_code, service_type)
                    try:
                        recorded = self._recorded_responses.get(labels)
                    except TypeError:  # an unhashable model
                        recorded = None
                    if recorded is not None and duration >= 0.0:
                        recorded(duration)
                    else:
                        self.metrics.record_response(*labels, duration)
                    if error_type is not None:
                        metadata["error_type"] = error_type
                        self.metrics.record_error(error_type, endpoint, model, service_type)
            except BaseException as exc:
                error = exc
                raise
            finally:
                try:
                    # ``_log_request_end`` is called only for a line that may be written.
                    if info or error is not None or "error_type" in ctx.metadata:
                        _log_request_end(ctx, error, levels_decide)
                finally:
                    error = None  # no cycle through the traceback to this frame
                    storage = ctx.storage
                    if storage is not None:
                        duration_ms = ctx.duration_ms
                    if add_active is not None:
                        add_active(-1)
                    _LOG_REQUEST_ID.reset(id_token)
                    _current_context.reset(ctx_token)
                    if storage is not None:
                        _store_request(ctx, storage, started_at, duration_ms)
        finally:
            in_flight.pop()
            if self._unwound is not None and not in_flight:
                self._unwound.set()

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def receive_and_start() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup" and self.pusher is not None:
                self.pusher.start()
            elif message["type"] == "lifespan.shutdown" and self.requests_in_flight():
                # Past its graceful timeout uvicorn cancels the requests still running
                # and starts the shutdown without awaiting them: let them record their
                # metrics and access-log records before the app closes its stores and
                # the final push goes out.
                self._unwound = anyio.Event()
                with anyio.move_on_after(_UNWIND_TIMEOUT):
                    await self._unwound.wait()
            return message

        async def send_after_shutdown(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self._shutdown()
            await send(message)

        await self.app(scope, receive_and_start, send_after_shutdown)

    async def _shutdown(self) -> None:
        pusher = self.pusher
        if pusher is not None:
            # A push's timeout bounds each read, not the whole push: a target that
            # trickles its answer could hold the final push, and so the shutdown,
            # for as long as it likes. Past the grace, shutdown goes on without it.
            grace = _FINAL_PUSH_GRACE_FACTOR * self.metrics.settings.pushgateway_timeout_seconds
            with anyio.move_on_after(grace) as scope:
                await anyio.to_thread.run_sync(pusher.stop, abandon_on_cancel=True)
            if scope.cancelled_caught:
                logger.warning("final_push_abandoned", waited_seconds=grace)
        if self.metrics.multiprocess_dir:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
                os.getpid(), self.metrics.multiprocess_dir
            )
