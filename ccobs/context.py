"""Request context: timing, correlated logging and the active-requests gauge for one request.

``request_context`` binds the request id in structlog's context variables, so
every log line inside the block carries it, including lines from tasks
spawned inside it (asyncio copies context variables into new tasks). Its
start, success and error events carry accurate timing, and the success or
error line, with every piece of metadata the handler added and the facts of
its :class:`~ccobs.record.RequestRecord` (``ctx.record``), is the request's
access-log line.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import Context, ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import structlog
from structlog.contextvars import bind_contextvars

from ccobs.access_line import write_line
from ccobs.record import RequestRecord
from ccobs.storage import AccessLogRecord, AccessLogStorage

_RESERVED_KEYS = frozenset({"event", "request_id", "duration_ms", "exc_info"})
_ERROR_MESSAGE_MAX = 500
_LOGGER_NAME = "ccobs.request"
_STDLIB_REQUEST_LOGGER = logging.getLogger(_LOGGER_NAME)
_STDLIB_FACTORY = structlog.stdlib.LoggerFactory
_DEBUG, _INFO, _WARNING, _ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR
_REQUEST_LOGGER = structlog.get_logger(_LOGGER_NAME)

_current_context: ContextVar[RequestContext | None] = ContextVar(
    "ccobs_request_context", default=None
)

_LOG_REQUEST_ID: ContextVar[Any] = (
    Context().run(bind_contextvars, request_id=None)["request_id"].var
)
"""The context variable behind structlog's ``bind_contextvars(request_id=...)``.

Asked for once (in a throw-away context, so nothing stays bound) and then set
and reset directly: ``bind_contextvars`` and ``reset_contextvars`` rebuild the
variable's name and look it up on every call, which a request pays twice.
"""


class _CopiedStructlogConfig:
    """``structlog.get_config()`` seen through the attribute :data:`_STRUCTLOG_CONFIG` reads."""

    @property
    def logger_factory(self) -> Any:
        return structlog.get_config()["logger_factory"]


_STRUCTLOG_CONFIG: Any = getattr(structlog._config, "_CONFIG", None) or _CopiedStructlogConfig()
"""structlog's live configuration, read where ``structlog.get_config()`` would copy it
into a new dict on every request; private, so ``get_config()`` is the fallback."""


def _check_keys(keys: Any) -> None:
    reserved = _RESERVED_KEYS.intersection(keys)
    if reserved:
        raise ValueError(f"context keys {sorted(reserved)} are reserved by ccobs")


@dataclass
class RequestContext:
    """One request's id, start time (``time.perf_counter()``), logger, metadata and record.

    ``metadata`` is free-form: whatever a handler adds goes on the access-log
    line. :attr:`record` holds the request's typed facts (usage, cost, time to
    first token...), which also reach the metrics and the stored record.
    """

    request_id: str
    start_time: float
    logger: Any
    metadata: dict[str, Any] = field(default_factory=dict)
    storage: Any | None = None
    _record: RequestRecord | None = field(default=None, init=False, repr=False, compare=False)
    """The record once :attr:`record` made it; None for a request that never asked."""

    @property
    def record(self) -> RequestRecord:
        """The request's :class:`~ccobs.record.RequestRecord`, made on first use.

        Made on first use so a request that records no usage allocates
        nothing for it. Fill it once; at the request's end its facts go to the
        metrics (under the middleware, or ``request_context`` given
        ``metrics``), the access-log line and the stored record::

            record = current_request_context().record
            record.model = "claude-sonnet-4-6"
            record.set_usage(input=1200, output=350)
            record.set_cost(prices.cost(record.model, 1200, 350))
        """
        record = self._record
        if record is None:
            record = self._record = RequestRecord()
            # Its facts go on the line where metadata added from now on would.
            record.line_position = len(self.metadata)
        return record

    @property
    def duration_seconds(self) -> float:
        return time.perf_counter() - self.start_time

    @property
    def duration_ms(self) -> float:
        return self.duration_seconds * 1000.0

    def add_metadata(self, **kwargs: Any) -> None:
        """Add fields to the request's final log line and access-log record."""
        _check_keys(kwargs)
        self.metadata.update(kwargs)

    def log_event(self, event: str, **kwargs: Any) -> None:
        """Log an event within the request, with the time elapsed so far."""
        self.logger.info(event, duration_ms=round(self.duration_ms, 3), **kwargs)


def current_request_context() -> RequestContext | None:
    """The innermost active request context in this task, if any.

    Lets a handler deep in the call stack add metadata (model, tokens, cost)
    without the context being passed down explicitly.
    """
    return _current_context.get()


_IDS_PER_DRAW = 64


def _draw_request_ids() -> Iterator[str]:
    # Split by ``hex`` itself (a space every 16 bytes): no Python loop over the ids.
    return iter(os.urandom(16 * _IDS_PER_DRAW).hex(" ", 16).split(" "))


_request_ids: Iterator[str] = iter(())


def _forget_request_ids() -> None:
    """After a fork: the child must not hand out the ids its parent will hand out too."""
    global _request_ids
    _request_ids = iter(())


os.register_at_fork(after_in_child=_forget_request_ids)


def new_request_id() -> str:
    """A fresh 32-hex-digit request id: 128 random bits from ``os.urandom``.

    Drawn 64 ids at a time, since the system call costs as much as the rest of
    making an id. ``next`` on a list iterator is atomic under the GIL, so two
    threads never get the same id; two threads refilling at once each draw
    their own block and at worst leave some ids unused.
    """
    global _request_ids
    try:
        return next(_request_ids)
    except StopIteration:
        ids = _request_ids = _draw_request_ids()
        return next(ids)


_request_line_enabled = _STDLIB_REQUEST_LOGGER.isEnabledFor
"""Whether a ``ccobs.request`` line at a level passes the stdlib logger: the check
``structlog.stdlib.filter_by_level`` makes, answered from the logger's own cache."""

_cached_levels = getattr(_STDLIB_REQUEST_LOGGER, "_cache", None)
_LINE_LEVELS: dict[int, bool] = _cached_levels if isinstance(_cached_levels, dict) else {}
"""That cache itself (level -> :data:`_request_line_enabled`'s answer), for the middleware
to read inline before deciding to build a line, which then asks ``isEnabledFor`` itself.
The logging module only ever clears it (on any ``setLevel`` or ``logging.disable``), so a
hit is ``isEnabledFor``'s answer unless the logger is ``disabled``; a miss asks
``isEnabledFor``, which fills it. Private, so where it is not a dict this one stays empty
and every check asks."""


def _levels_decide() -> bool:
    """Whether the stdlib logger's level decides which ``ccobs.request`` lines are written.

    True when structlog renders through the standard library (``configure_logging``
    does): then :data:`_request_line_enabled` answers with one cheap level
    check, so filtered lines cost nothing, where building a bound logger and
    making a filtered call costs a noticeable share of a trivial request. Under
    any other structlog configuration every line is written, and filtered (or
    not) by the call itself. The middleware makes the same check inline.
    """
    return isinstance(_STRUCTLOG_CONFIG.logger_factory, _STDLIB_FACTORY)


def _log_request_end(ctx: RequestContext, exc: BaseException | None, levels_decide: bool) -> None:
    """Write the request's ``request_success`` or ``request_error`` line.

    ``request_error`` when ``exc`` ended it (at ERROR, with a traceback for a
    fault, none for a cancellation) or the handler named an ``error_type``
    (at WARNING); ``request_success`` at INFO otherwise. The level is checked
    only for the line at hand and before the line's fields are built.
    """
    metadata = ctx.metadata
    record = ctx._record
    # The shared logger under ``configure_logging`` may skip the logging machinery
    # (``ccobs.access_line``); a logger with bindings of its own always takes it.
    direct = levels_decide and ctx.logger is _REQUEST_LOGGER
    if exc is not None:
        metadata.setdefault("error_type", type(exc).__name__)
        if not levels_decide or _request_line_enabled(_ERROR):
            fields = _line_fields(ctx, error_message=str(exc)[:_ERROR_MESSAGE_MAX])
            # Tracebacks for real faults; a cancellation (client gone) needs none.
            fields["exc_info"] = isinstance(exc, Exception)
            _write(ctx, direct, _ERROR, "error", "request_error", fields)
    elif "error_type" in metadata or (record is not None and record.error_type is not None):
        # Answered, but with an error the handler named.
        if not levels_decide or _request_line_enabled(_WARNING):
            _write(ctx, direct, _WARNING, "warning", "request_error", _line_fields(ctx))
    elif not levels_decide or _request_line_enabled(_INFO):
        _write(ctx, direct, _INFO, "info", "request_success", _line_fields(ctx))


def _write(
    ctx: RequestContext, direct: bool, level: int, method: str, event: str, fields: dict[str, Any]
) -> None:
    if direct:
        write_line(ctx.logger, _STDLIB_REQUEST_LOGGER, level, method, event, fields)
    else:
        getattr(ctx.logger, method)(event, **fields)


def _line_fields(ctx: RequestContext, **extra: Any) -> dict[str, Any]:
    """The line's fields: the metadata with the record's facts in place, ``extra``, then
    ``duration_ms`` last."""
    record = ctx._record
    fields = dict(ctx.metadata) if record is None else record.line_fields(ctx.metadata)
    fields.update(extra)
    fields["duration_ms"] = round(ctx.duration_ms, 3)
    return fields


def _record_metrics(metadata: dict[str, Any], record: RequestRecord, metrics: Any) -> None:
    """Feed the record to ``metrics`` for ``request_context``, which has no route or status.

    Labels come from the record, else the metadata (``model``, ``endpoint``,
    ``service_type``), as the middleware's do; the error counted is the
    record's own, since without the middleware no other error was ever counted.
    """
    model = record.model
    if model is None:
        model = metadata.get("model")
    endpoint = metadata.get("endpoint", "unknown")
    service_type = metadata.get("service_type")
    record.record_metrics(metrics, endpoint, model, service_type)
    if record.error_type is not None:
        metrics.record_error(record.error_type, endpoint, model, service_type)


def _store_request(
    ctx: RequestContext, storage: AccessLogStorage, started_at: float | None, duration_ms: float
) -> None:
    """Hand the request's access-log record to ``storage``.

    ``started_at`` is the wall-clock start (``time.time()``), read only when the
    request started with a storage; None when a storage was set on the context
    during the request, whose start is then the wall clock less the duration.
    """
    if started_at is None:
        started_at = time.time() - duration_ms / 1000.0
    started = datetime.fromtimestamp(started_at, UTC)
    _store(storage, ctx.request_id, started, duration_ms, ctx.metadata, ctx._record)


class _RequestScope:
    """The async context manager behind :func:`request_context`.

    A class rather than a generator-based ``asynccontextmanager``: entering and
    leaving it runs on every request, and a generator frame plus its wrapper
    cost several times more than two method calls. The ASGI middleware does
    the same work inline, through the same helpers (:func:`_log_request_end`,
    :func:`_store_request`), without even the method calls.
    """

    __slots__ = (
        "_ctx",
        "_ctx_token",
        "_id_token",
        "_levels_decide",
        "_metrics",
        "_started_at",
    )

    def __init__(
        self,
        request_id: str | None,
        storage: AccessLogStorage | None,
        metrics: Any | None,
        initial_context: dict[str, Any],
    ) -> None:
        self._metrics = metrics
        if initial_context:
            _check_keys(initial_context)
            # A lazy proxy, bound only when a line is written.
            logger = structlog.get_logger(_LOGGER_NAME, **initial_context)
        else:
            logger = _REQUEST_LOGGER  # shared when there is nothing to bind
        # Positional: the dataclass's ``__init__`` takes keywords at a higher cost.
        self._ctx = RequestContext(
            request_id or new_request_id(), 0.0, logger, dict(initial_context), storage
        )

    async def __aenter__(self) -> RequestContext:
        """Start the clock, bind the context and request id, hold the active gauge."""
        ctx = self._ctx
        # The wall clock only for an access-log record.
        self._started_at = time.time() if ctx.storage is not None else None
        ctx.start_time = time.perf_counter()
        self._ctx_token = _current_context.set(ctx)
        self._id_token = _LOG_REQUEST_ID.set(ctx.request_id)
        levels_decide = self._levels_decide = _levels_decide()
        if not levels_decide or _request_line_enabled(_DEBUG):
            ctx.logger.debug("request_start")
        if self._metrics is not None:
            self._metrics.inc_active_requests()
        return ctx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Record the record's metrics, write the line, release the gauge and bindings, store."""
        ctx = self._ctx
        try:
            record = ctx._record
            if record is not None and self._metrics is not None:
                _record_metrics(ctx.metadata, record, self._metrics)
            _log_request_end(ctx, exc, self._levels_decide)
        finally:
            storage = ctx.storage
            if storage is not None:
                duration_ms = ctx.duration_ms
            if self._metrics is not None:
                self._metrics.dec_active_requests()
            _LOG_REQUEST_ID.reset(self._id_token)
            _current_context.reset(self._ctx_token)
            if storage is not None:
                _store_request(ctx, storage, self._started_at, duration_ms)


def request_context(
    request_id: str | None = None,
    storage: AccessLogStorage | None = None,
    metrics: Any | None = None,
    **initial_context: Any,
) -> AbstractAsyncContextManager[RequestContext]:
    """Track one request from start to end, with timing and correlated logging.

    Used as ``async with request_context(...) as ctx``. Logs ``request_start``
    (debug), then ``request_success``, or ``request_error`` when the block
    raised or set an ``error_type``, with ``duration_ms`` and all metadata;
    re-raises any error. With ``metrics``, holds the active-requests gauge for
    the duration of the block and, on exit, records what the handler put in
    ``ctx.record`` (tokens, cost, time to first token, its error). With
    ``storage``, hands one :class:`AccessLogRecord` to it on exit. Lines the
    logging level filters out are never built.
    """
    return _RequestScope(request_id, storage, metrics, initial_context)


def _store(
    storage: AccessLogStorage,
    request_id: str,
    started_at: datetime,
    duration_ms: float,
    metadata: dict[str, Any],
    record: RequestRecord | None = None,
) -> None:
    try:
        storage.store(
            AccessLogRecord.from_request(request_id, started_at, duration_ms, metadata, record)
        )
    except Exception:  # storage must never fail a request
        structlog.get_logger(_LOGGER_NAME).exception("access_log_store_failed")


@asynccontextmanager
async def timed_operation(
    operation_name: str, request_id: str | None = None, **context: Any
) -> AsyncIterator[dict[str, Any]]:
    """Time one step of a request (an upstream call, a parse) and log its duration.

    Yields a dict: the caller may add fields to it, which appear on the
    ``operation_success`` / ``operation_error`` line; ``duration_ms`` is set in
    it when the block ends.
    """
    bound = dict(context, operation=operation_name)
    if request_id is not None:
        bound["request_id"] = request_id
    log = structlog.get_logger("ccobs.operation").bind(**bound)
    start = time.perf_counter()
    op: dict[str, Any] = {
        "operation_name": operation_name,
        "request_id": request_id,
        "start_time": start,
        "logger": log,
    }
    reserved = set(op) | {"duration_ms"}
    log.debug("operation_start")
    try:
        yield op
    except BaseException as exc:
        op["duration_ms"] = round((time.perf_counter() - start) * 1000.0, 3)
        extra = {k: v for k, v in op.items() if k not in reserved}
        log.error(
            "operation_error",
            duration_ms=op["duration_ms"],
            error_type=type(exc).__name__,
            error_message=str(exc)[:_ERROR_MESSAGE_MAX],
            **extra,
        )
        raise
    else:
        op["duration_ms"] = round((time.perf_counter() - start) * 1000.0, 3)
        extra = {k: v for k, v in op.items() if k not in reserved}
        log.info("operation_success", duration_ms=op["duration_ms"], **extra)


class ContextTracker:
    """The requests in flight in this process, by request id.

    Contexts are removed when their block ends, whatever happens in it; the
    ``max_contexts`` bound only matters if a caller adds without removing.
    """

    def __init__(self, max_contexts: int = 10_000) -> None:
        self.max_contexts = max_contexts
        self._contexts: dict[str, RequestContext] = {}
        self._lock = threading.Lock()

    def add_context(self, ctx: RequestContext) -> bool:
        """Track ``ctx``; False (and not tracked) once ``max_contexts`` are tracked."""
        with self._lock:
            if len(self._contexts) >= self.max_contexts and ctx.request_id not in self._contexts:
                return False
            self._contexts[ctx.request_id] = ctx
            return True

    def remove_context(self, request_id: str) -> RequestContext | None:
        with self._lock:
            return self._contexts.pop(request_id, None)

    def get_context(self, request_id: str) -> RequestContext | None:
        with self._lock:
            return self._contexts.get(request_id)

    def get_active_count(self) -> int:
        with self._lock:
            return len(self._contexts)

    def get_active_contexts(self) -> list[RequestContext]:
        with self._lock:
            return list(self._contexts.values())


_tracker: ContextTracker | None = None
_tracker_lock = threading.Lock()


def get_context_tracker() -> ContextTracker:
    """Get or create the process-wide context tracker."""
    global _tracker
    with _tracker_lock:
        if _tracker is None:
            _tracker = ContextTracker()
        return _tracker


def reset_context_tracker() -> None:
    """Forget the process-wide tracker (mainly for tests)."""
    global _tracker
    with _tracker_lock:
        _tracker = None


@asynccontextmanager
async def tracked_request_context(
    request_id: str | None = None, **initial_context: Any
) -> AsyncIterator[RequestContext]:
    """``request_context`` that also registers the request in the global context tracker.

    ``storage=`` and ``metrics=`` pass through to ``request_context``.
    """
    async with request_context(request_id, **initial_context) as ctx:
        tracker = get_context_tracker()
        tracker.add_context(ctx)
        try:
            yield ctx
        finally:
            tracker.remove_context(ctx.request_id)
