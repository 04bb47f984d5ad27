"""Prometheus metrics for an LLM API proxy: requests, latency, tokens, cost and errors.

Every ``record_*`` call sits on the request path, so each one resolves its
labelled child once per distinct set of arguments and reuses it afterwards
(one dictionary lookup keyed by the raw arguments), takes no lock of its own
and does no I/O. :meth:`PrometheusMetrics.record_completed_request` records a
whole request under a single lookup. Label values pass through bounded guards
(see ``ccobs.labels``), and values that would corrupt a series (negative, NaN,
infinite) are refused and logged instead of recorded.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any, Literal, Protocol

import structlog

from ccobs import __version__
from ccobs.catalog import (
    ACTIVE_REQUESTS,
    COST,
    COST_TYPES,
    DEFAULT_NAMESPACE,
    ERRORS,
    INFO,
    LABEL_OVERFLOWS,
    OTHER,
    PUSHES,
    REJECTED_VALUES,
    REQUESTS,
    RESPONSE_DURATION,
    TIME_TO_FIRST_TOKEN,
    TOKEN_TYPES,
    TOKENS,
    UNPRICED_REQUESTS,
    MetricSpec,
)
from ccobs.labels import LabelGuard, label_text
from ccobs.settings import ObservabilitySettings

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.multiprocess import MultiProcessCollector
    from prometheus_client.values import MutexValue

    PROMETHEUS_AVAILABLE = True
except ImportError:  # pragma: no cover - exercised in a subprocess test
    PROMETHEUS_AVAILABLE = False

logger = structlog.get_logger("ccobs.metrics")

MULTIPROC_ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"
_REJECTION_LOG_INTERVAL = 60.0

_MAX = sys.float_info.max
"""The largest amount recorded: a larger ``int`` cannot be added to a float series."""
_FAST_NUMBERS = (int, float)

_Op = Callable[[float], None]
"""A child's storage operation: an increment or an observation."""

_LABEL_CAPS = {"method": 16, "endpoint": 200, "status": 64, "service_type": 32, "error_type": 64}


class _LogThrottle:
    """Allows one log line per key per interval, so a bad caller cannot flood the logs."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}

    def allow(self, key: str) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        self._last[key] = now
        return True


def _fast_inc(child: Any) -> Callable[[float], None]:
    """``child``'s storage increment, skipping the checks ccobs has already made.

    Counters and gauges keep their value in ``_value`` (a mutex-guarded float,
    or a memory-mapped file under multiprocess mode); exposition reads it from
    there, so incrementing it is exactly what ``child.inc`` does minus the
    argument checks. Falls back to ``child.inc`` if prometheus_client changes.
    """
    value = getattr(child, "_value", None)
    if _is_mutex_value(value):
        return _locked_add(value)
    inc = getattr(value, "inc", None)
    return inc if callable(inc) else child.inc  # type: ignore[no-any-return]


def _locked_add(value: Any) -> Callable[[float], None]:
    """``MutexValue.inc``: the same addition under the same lock, for less than half the cost.

    ``MutexValue.inc`` takes its lock with ``with``, and entering and leaving a
    ``with`` block costs twice the lock's own ``acquire`` and ``release``
    calls, and every request counted pays for it.
    """
    lock = value._lock
    acquire, release = lock.acquire, lock.release

    def inc(amount: float) -> None:
        acquire()
        try:
            value._value += amount
        finally:
            release()

    return inc


def _histogram_cells(child: Any) -> tuple[list[float], list[Any], Any] | None:
    """A histogram child's bucket bounds, bucket cells and sum cell, when they are plain cells.

    None unless every cell is prometheus_client's in-process value (a float
    under a lock) and the last bound is ``+Inf``; prometheus_client's own
    ``observe`` then records the child (see :func:`_fast_observe`).
    """
    try:
        bounds = list(child._upper_bounds)
        cells = list(child._buckets)
        total = child._sum
    except (AttributeError, TypeError):
        return None
    if len(bounds) != len(cells) or not bounds or bounds[-1] != math.inf:
        return None
    if not all(_is_mutex_value(cell) for cell in (total, *cells)):
        return None
    return bounds, cells, total


def _fast_observe(child: Any) -> Callable[[float], None]:
    """``child.observe`` with a binary search for the bucket instead of a linear scan.

    Only for values already checked to be finite and non-negative, which the
    last bucket (``+Inf``) always holds. Adds to the sum and the bucket under
    one lock, the sum cell's, where ``child.observe`` takes each cell's own:
    every addition to a plain child's cells is made here, under that lock, so
    no two additions to a cell ever overlap (prometheus_client reads a cell's
    float whole, with or without its own lock). Falls back to
    ``child.observe`` for other cells.
    """
    found = _histogram_cells(child)
    if found is None:
        return child.observe  # type: ignore[no-any-return]
    bounds, cells, total = found
    lock = total._lock

    def observe(amount: float) -> None:
        lock.acquire()
        try:
            total._value += amount
            cells[bisect_left(bounds, amount)]._value += 1.0
        finally:
            lock.release()

    return observe


def _counted_then_observed(count: _Op, observe: _Op) -> _Op:
    """Count a request, then observe its duration: one call for the ASGI middleware."""

    def record(duration: float) -> None:
        count(1)
        observe(duration)

    return record


def _is_mutex_value(cell: Any) -> bool:
    """Whether ``cell`` is prometheus_client's in-process value: a float under a lock."""
    return cell.__class__ is MutexValue and isinstance(getattr(cell, "_value", None), float)


def _rememberable(raw: tuple[object, ...], key: tuple[str, ...]) -> bool:
    """Whether a cache may keep the raw arguments ``raw`` that resolved to the labels ``key``.

    Only when each argument is its label exactly, None, or an int whose text is
    its label: then the caches hold no more than the label guards admit. Values
    the guards folded into ``other`` must reach them every time, so that each
    overflow is counted; truncated or re-encoded values are not kept either,
    since any number of them can share one label.
    """
    if OTHER in key:
        return False
    for value, label in zip(raw, key, strict=True):
        if value is not None and not (value.__class__ in (str, int) and str(value) == label):
            return False
    return True


class _RequestChildren:
    """How to record each update of one completed request, for one set of raw label arguments.

    Holds the children's storage operations (see :func:`_fast_inc`) rather
    than the children: a completed request makes eleven updates, and the
    argument checks prometheus_client repeats on each are already done.
    """

    __slots__ = ("costs", "duration", "request", "series", "tokens", "ttft")

    def __init__(
        self,
        request: Callable[[float], None],
        duration: Callable[[float], None],
        series: tuple[str, str, str],
        tokens: tuple[Callable[[float], None], ...],
        costs: tuple[Callable[[float], None], ...],
    ) -> None:
        self.request = request
        self.duration = duration
        self.series = series
        """(model, endpoint, service_type) labels of the histograms."""
        self.ttft: Callable[[float], None] | None = None
        """Resolved on the first streamed request, so non-streamed routes get no TTFT series."""
        self.tokens = tokens
        self.costs = costs


class InFlightSource(Protocol):
    """What counts requests in flight for the active-requests gauge (the ASGI middleware)."""

    def requests_in_flight(self) -> int: ...


class _ActiveRequests:
    """The active-requests gauge of a single process, worked out when the gauge is read.

    Its value is what :meth:`PrometheusMetrics.set_active_requests`, ``inc`` and
    ``dec`` made it, plus the requests the watched sources (ASGI middlewares)
    count in flight: a middleware then moves no gauge per request, which saves
    two locked additions on every request, and a scrape still sees every
    request in flight. A ``set`` remembers the count in flight at that moment,
    so the gauge reads exactly the value set and moves from there as requests
    finish or start, as it did when each request moved it. ``_lock`` and
    ``_value`` are what :func:`_locked_add` moves.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0.0
        self._in_flight_at_set = 0
        self._sources: weakref.WeakSet[InFlightSource] = weakref.WeakSet()

    def watch(self, source: InFlightSource) -> None:
        with self._lock:
            self._sources.add(source)

    def _in_flight(self) -> int:
        with self._lock:
            sources = list(self._sources)
        return sum(source.requests_in_flight() for source in sources)

    def set(self, value: float) -> None:
        in_flight = self._in_flight()
        with self._lock:
            self._value = value
            self._in_flight_at_set = in_flight

    def get(self) -> float:
        in_flight = self._in_flight()
        with self._lock:
            return self._value + (in_flight - self._in_flight_at_set)


class PrometheusMetrics:
    """Prometheus metrics collector for operational monitoring of an LLM proxy.

    ``registry=None`` registers in prometheus_client's default registry.
    Under prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``
    set before prometheus_client is imported) values are written to shared
    files and :meth:`exposition_registry` aggregates all workers.
    """

    def __init__(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        registry: CollectorRegistry | None = None,
        pushgateway_client: Any | None = None,
        *,
        settings: ObservabilitySettings | None = None,
    ) -> None:
        self.settings = settings or ObservabilitySettings(namespace=namespace)
        self.namespace = namespace
        self.pushgateway_client = pushgateway_client
        self._enabled = PROMETHEUS_AVAILABLE
        self._throttle = _LogThrottle(_REJECTION_LOG_INTERVAL)
        self._collectors: list[Any] = []
        self._request_children: dict[tuple[str, ...], Any] = {}
        self._duration_children: dict[tuple[str, ...], Any] = {}
        self._ttft_children: dict[tuple[str, ...], Any] = {}
        self._token_children: dict[tuple[str, ...], Any] = {}
        self._cost_children: dict[tuple[str, ...], Any] = {}
        self._error_children: dict[tuple[str, ...], Any] = {}
        self._misc_children: dict[tuple[object, ...], Any] = {}
        # Raw call arguments -> the child's storage operation (see _fast_inc), so a
        # repeated call skips the label guards and prometheus_client's own checks.
        # Only arguments that no guard turned into ``other`` are remembered: those
        # must reach the guard every time so each overflow is counted, and
        # admitted values are bounded by the guards' caps, so these stay bounded.
        self._request_fast: dict[tuple[object, ...], Callable[[float], None]] = {}
        self._duration_fast: dict[tuple[object, ...], Callable[[float], None]] = {}
        self._ttft_fast: dict[tuple[object, ...], Callable[[float], None]] = {}
        self._token_fast: dict[tuple[object, ...], Callable[[float], None]] = {}
        self._cost_fast: dict[tuple[object, ...], Callable[[float], None]] = {}
        self._bundles: dict[tuple[object, ...], _RequestChildren] = {}
        # record_response's pairs of the two operations above, for raw arguments
        # both caches remember.
        self._response_fast: dict[tuple[object, ...], tuple[_Op, _Op]] = {}
        self._response_ops: dict[tuple[object, ...], _Op] = {}
        # The same, keyed by resolved labels: bounded like the series, and what
        # arguments the caches above may not keep (overflowing, truncated) use,
        # so that a flood of made-up values costs a guard lookup, not a rebuild.
        self._bundles_by_labels: dict[tuple[str, ...], _RequestChildren] = {}
        self._observers: dict[tuple[int, tuple[str, ...]], Callable[[float], None]] = {}
        self._misc_lock = threading.Lock()
        self._info_labels: tuple[str, ...] | None = None
        self._active_value: _ActiveRequests | None = None
        max_length = self.settings.label_value_max_length
        self._model = LabelGuard(
            "model",
            self.settings.model_label_cap,
            allowlist=self.settings.model_allowlist,
            max_length=max_length,
            on_overflow=self._count_overflow,
        )
        guards = {
            name: LabelGuard(name, cap, max_length=max_length, on_overflow=self._count_overflow)
            for name, cap in _LABEL_CAPS.items()
        }
        self._method = guards["method"]
        self._endpoint = guards["endpoint"]
        self._status = guards["status"]
        self._service_type = guards["service_type"]
        self._error_type = guards["error_type"]
        if not self._enabled:
            self.registry = None
            self.multiprocess_dir = None
            return
        self.registry = REGISTRY if registry is None else registry
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV_VAR) or None
        self._create_collectors()
        self.update_system_info()

    # -- construction -------------------------------------------------------------------

    def _create_collectors(self) -> None:
        settings = self.settings
        try:
            self._requests = self._counter(REQUESTS)
            self._duration = self._histogram(RESPONSE_DURATION, settings.duration_buckets)
            self._ttft = self._histogram(TIME_TO_FIRST_TOKEN, settings.ttft_buckets)
            self._tokens = self._counter(TOKENS)
            self._cost = self._counter(COST)
            self._errors = self._counter(ERRORS)
            self._unpriced = self._counter(UNPRICED_REQUESTS)
            self._active = self._gauge(ACTIVE_REQUESTS, "livesum")
            if not self.multiprocess_dir and _is_mutex_value(getattr(self._active, "_value", None)):
                # In-process values: the gauge is read from here (see _ActiveRequests).
                self._active_value = _ActiveRequests()
                self._active.set_function(self._active_value.get)
                self._add_active = _locked_add(self._active_value)
            else:  # multiprocess: every process writes its own value to its file
                self._add_active = _fast_inc(self._active)
            self._info = self._gauge(INFO, "max")
            self._pushes = self._counter(PUSHES)
            self._overflows = self._counter(LABEL_OVERFLOWS)
            self._rejected = self._counter(REJECTED_VALUES)
        except ValueError as exc:
            self.unregister()
            raise ValueError(
                f"ccobs metrics with namespace {self.namespace!r} are already registered in "
                "this registry; reuse them through get_metrics() or pass another registry "
                f"(prometheus_client said: {exc})"
            ) from exc

    def _track(self, collector: Any) -> Any:
        self._collectors.append(collector)
        return collector

    def _counter(self, spec: MetricSpec) -> Any:
        return self._track(
            Counter(
                spec.full_name(self.namespace),
                spec.documentation,
                spec.labels,
                registry=self.registry,
            )
        )

    def _histogram(self, spec: MetricSpec, buckets: tuple[float, ...]) -> Any:
        return self._track(
            Histogram(
                spec.full_name(self.namespace),
                spec.documentation,
                spec.labels,
                registry=self.registry,
                buckets=buckets,
            )
        )

    def _gauge(self, spec: MetricSpec, multiprocess_mode: Literal["livesum", "max"]) -> Any:
        return self._track(
            Gauge(
                spec.full_name(self.namespace),
                spec.documentation,
                spec.labels,
                registry=self.registry,
                multiprocess_mode=multiprocess_mode,
            )
        )

    def unregister(self) -> None:
        """Remove exactly the collectors this instance registered."""
        if self.registry is not None:
            for collector in self._collectors:
                self.registry.unregister(collector)
        self._collectors.clear()

    # -- guards ---------------------------------------------------------------------------

    def _count_overflow(self, label: str) -> None:
        if self._enabled:
            self._misc_child(self._overflows, (label,)).inc()
        if self._throttle.allow("overflow:" + label):
            logger.warning("label_value_overflow", label=label, recorded_as="other")

    def _misc_child(self, collector: Any, key: tuple[str, ...]) -> Any:
        """Children of the seldom-used metrics, cached under one dict keyed by collector."""
        cache_key = (id(collector), *key)
        child = self._misc_children.get(cache_key)
        if child is None:
            with self._misc_lock:
                child = self._misc_children[cache_key] = collector.labels(*key)
        return child

    @staticmethod
    def _child(children: dict[tuple[str, ...], Any], collector: Any, key: tuple[str, ...]) -> Any:
        """The child for label values ``key``, created on first use."""
        child = children.get(key)
        if child is None:
            child = children[key] = collector.labels(*key)
        return child

    def _observer(
        self, children: dict[tuple[str, ...], Any], collector: Any, key: tuple[str, ...]
    ) -> Callable[[float], None]:
        """The fast observe operation of ``collector``'s child for ``key``, built once."""
        cache_key = (id(collector), key)
        observe = self._observers.get(cache_key)
        if observe is None:
            observe = self._observers[cache_key] = _fast_observe(
                self._child(children, collector, key)
            )
        return observe

    @staticmethod
    def _remember(
        fast: dict[tuple[object, ...], Callable[[float], None]],
        raw: tuple[object, ...],
        key: tuple[str, ...],
        op: Callable[[float], None],
    ) -> Callable[[float], None]:
        """Remember ``op`` under the raw arguments ``raw`` when :func:`_rememberable`."""
        if _rememberable(raw, key):
            with suppress(TypeError):  # unhashable arguments are resolved every time
                fast[raw] = op
        return op

    def _accept(self, metric: str, value: Any, *, allow_zero: bool = False) -> bool:
        """True when ``value`` may be recorded; refuses and logs what would corrupt a series."""
        try:
            if 0 < value <= _MAX:
                return True
            if value == 0:
                return allow_zero
        except TypeError:
            pass
        if self._enabled:
            self._misc_child(self._rejected, (metric,)).inc()
        if self._throttle.allow("rejected:" + metric):
            logger.warning(
                "metric_value_rejected",
                metric=metric,
                value=repr(value)[:64],
                reason="must be a finite, non-negative number",
            )
        return False

    # -- recording ------------------------------------------------------------------------

    def record_request(
        self,
        method: str,
        endpoint: str,
        model: str | None = None,
        status: str | int = "unknown",
        service_type: str | None = None,
    ) -> None:
        """Count one served request."""
        if not self._enabled:
            return
        raw = (method, endpoint, model, status, service_type)
        try:
            record = self._request_fast[raw]
        except (KeyError, TypeError):
            key = (
                self._method(method),
                self._endpoint(endpoint),
                self._model(model),
                self._status(status),
                self._service_type(service_type),
            )
            child = self._child(self._request_children, self._requests, key)
            record = self._remember(self._request_fast, raw, key, _fast_inc(child))
        record(1)

    def record_response_time(
        self,
        duration_seconds: float,
        model: str | None = None,
        endpoint: str = "unknown",
        service_type: str | None = None,
    ) -> None:
        """Observe a response duration in seconds (start to last byte)."""
        if not self._enabled or not self._accept(
            "response_duration", duration_seconds, allow_zero=True
        ):
            return
        raw = (model, endpoint, service_type)
        try:
            record = self._duration_fast[raw]
        except (KeyError, TypeError):
            key = (self._model(model), self._endpoint(endpoint), self._service_type(service_type))
            observe = self._observer(self._duration_children, self._duration, key)
            record = self._remember(self._duration_fast, raw, key, observe)
        record(duration_seconds)

    def record_response(
        self,
        method: str,
        endpoint: str,
        model: str | None,
        status: str | int,
        service_type: str | None,
        duration_seconds: float,
    ) -> None:
        """:meth:`record_request` then :meth:`record_response_time`, under one cache lookup.

        What the ASGI middleware records for every request. Arguments the two
        methods' caches do not both remember (overflowing, truncated, unhashable
        values) go through the two methods themselves, so the guards see, and
        count, exactly what they would see from two separate calls.
        """
        if not self._enabled:
            return
        raw = (method, endpoint, model, status, service_type)
        try:
            count, observe = self._response_fast[raw]
        except (KeyError, TypeError):
            self.record_request(method, endpoint, model, status, service_type)
            self.record_response_time(duration_seconds, model, endpoint, service_type)
            self._remember_response(raw)
            return
        count(1)
        value: Any = duration_seconds
        if (value.__class__ in _FAST_NUMBERS and 0 <= value <= _MAX) or self._accept(
            "response_duration", value, allow_zero=True
        ):
            observe(value)

    def _remember_response(self, raw: tuple[object, ...]) -> None:
        """Pair the operations the two caches hold for ``raw``, when both hold one.

        Both caches hold ``raw`` only when every guard admitted its value as it
        is, so the pair records exactly what the two methods would.
        """
        _, endpoint, model, _, service_type = raw
        with suppress(TypeError):  # unhashable arguments are resolved every time
            count = self._request_fast.get(raw)
            observe = self._duration_fast.get((model, endpoint, service_type))
            if count is None or observe is None:
                return
            self._response_fast[raw] = (count, observe)
            self._response_ops[raw] = _counted_then_observed(count, observe)

    def recorded_responses(self) -> Mapping[tuple[object, ...], Callable[[float], None]]:
        """:meth:`record_response`'s arguments but the duration -> its operation for them.

        The ASGI middleware calls the operation itself, with a duration it
        knows to be a finite, non-negative float, for a request whose arguments
        are there; every other request goes through :meth:`record_response`,
        which adds the arguments it may remember (see :meth:`_remember_response`).
        """
        return self._response_ops

    def record_time_to_first_token(
        self,
        seconds: float,
        model: str | None = None,
        endpoint: str = "unknown",
        service_type: str | None = None,
    ) -> None:
        """Observe the time from request start to the first token of a streaming response."""
        if not self._enabled or not self._accept("time_to_first_token", seconds, allow_zero=True):
            return
        raw = (model, endpoint, service_type)
        try:
            record = self._ttft_fast[raw]
        except (KeyError, TypeError):
            key = (self._model(model), self._endpoint(endpoint), self._service_type(service_type))
            observe = self._observer(self._ttft_children, self._ttft, key)
            record = self._remember(self._ttft_fast, raw, key, observe)
        record(seconds)

    def record_tokens(
        self,
        token_count: int,
        token_type: str,
        model: str | None = None,
        service_type: str | None = None,
    ) -> None:
        """Count tokens of one type: input, output, cache_read or cache_write."""
        raw = (token_type, model, service_type)
        try:
            record = self._token_fast[raw]  # only valid token types are ever remembered
        except (KeyError, TypeError):
            if token_type not in TOKEN_TYPES:
                raise ValueError(
                    f"unknown token_type {token_type!r}; allowed: {', '.join(TOKEN_TYPES)}"
                ) from None
            record = None
        if not self._enabled or not self._accept("tokens", token_count):
            return
        if record is None:
            key = (token_type, self._model(model), self._service_type(service_type))
            child = self._child(self._token_children, self._tokens, key)
            record = self._remember(self._token_fast, raw, key, _fast_inc(child))
        record(token_count)

    def record_cost(
        self,
        cost_usd: float,
        model: str | None = None,
        cost_type: str = "total",
        service_type: str | None = None,
    ) -> None:
        """Add a cost in USD of one type: input, output, cache or total."""
        raw = (model, cost_type, service_type)
        try:
            record = self._cost_fast[raw]  # only valid cost types are ever remembered
        except (KeyError, TypeError):
            if cost_type not in COST_TYPES:
                raise ValueError(
                    f"unknown cost_type {cost_type!r}; allowed: {', '.join(COST_TYPES)}"
                ) from None
            record = None
        if not self._enabled or not self._accept("cost_usd", cost_usd):
            return
        if record is None:
            key = (self._model(model), cost_type, self._service_type(service_type))
            child = self._child(self._cost_children, self._cost, key)
            record = self._remember(self._cost_fast, raw, key, _fast_inc(child))
        record(cost_usd)

    def record_error(
        self,
        error_type: str,
        endpoint: str = "unknown",
        model: str | None = None,
        service_type: str | None = None,
    ) -> None:
        """Count one failed request under its error type."""
        if not self._enabled:
            return
        key = (
            self._error_type(error_type),
            self._endpoint(endpoint),
            self._model(model),
            self._service_type(service_type),
        )
        self._child(self._error_children, self._errors, key).inc()

    def record_completed_request(
        self,
        method: str,
        endpoint: str,
        model: str | None = None,
        status: str | int = "unknown",
        service_type: str | None = None,
        *,
        duration_seconds: float,
        ttft_seconds: float | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        cost_input_usd: float = 0.0,
        cost_output_usd: float = 0.0,
        cost_cache_usd: float = 0.0,
        cost_total_usd: float = 0.0,
    ) -> None:
        """Record one finished request: count, duration, time to first token, tokens and cost.

        The same series as :meth:`record_request`, :meth:`record_response_time`,
        :meth:`record_time_to_first_token`, :meth:`record_tokens` and
        :meth:`record_cost`, resolved under one cache lookup instead of eleven,
        which makes the whole request cost little more than prometheus_client
        on pre-resolved children. Zero token counts and costs are skipped (not
        refused); the token and cost series of a label set start at zero on its
        first request. ``ttft_seconds=None`` (not streamed) records no TTFT.
        """
        if not self._enabled:
            return
        raw = (method, endpoint, model, status, service_type)
        try:
            bundle = self._bundles[raw]
        except (KeyError, TypeError):
            bundle = self._bundle(raw)
        bundle.request(1)
        value: Any = duration_seconds
        if (value.__class__ in _FAST_NUMBERS and 0 <= value <= _MAX) or self._accept(
            "response_duration", value, allow_zero=True
        ):
            bundle.duration(value)
        value = ttft_seconds
        if value is not None and (
            (value.__class__ in _FAST_NUMBERS and 0 <= value <= _MAX)
            or self._accept("time_to_first_token", value, allow_zero=True)
        ):
            ttft = bundle.ttft
            if ttft is None:
                ttft = self._observer(self._ttft_children, self._ttft, bundle.series)
                bundle.ttft = ttft
            ttft(value)
        tokens = bundle.tokens
        for i, value in enumerate(
            (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)
        ):
            if (value.__class__ in _FAST_NUMBERS and 0 < value <= _MAX) or (
                value != 0 and self._accept("tokens", value)
            ):
                tokens[i](value)
        costs = bundle.costs
        for i, value in enumerate(
            (cost_input_usd, cost_output_usd, cost_cache_usd, cost_total_usd)
        ):
            if (value.__class__ in _FAST_NUMBERS and 0 < value <= _MAX) or (
                value != 0 and self._accept("cost_usd", value)
            ):
                costs[i](value)

    def _bundle(self, raw: tuple[Any, ...]) -> _RequestChildren:
        method, endpoint, model, status, service_type = raw
        model_label = self._model(model)
        endpoint_label = self._endpoint(endpoint)
        service_label = self._service_type(service_type)
        request_key = (
            self._method(method),
            endpoint_label,
            model_label,
            self._status(status),
            service_label,
        )
        bundle = self._bundles_by_labels.get(request_key)
        if bundle is None:
            bundle = self._bundles_by_labels[request_key] = self._new_bundle(request_key)
        if _rememberable(raw, request_key):
            with suppress(TypeError):
                self._bundles[raw] = bundle
        return bundle

    def _new_bundle(self, request_key: tuple[str, ...]) -> _RequestChildren:
        _, endpoint_label, model_label, _, service_label = request_key
        series = (model_label, endpoint_label, service_label)
        return _RequestChildren(
            _fast_inc(self._child(self._request_children, self._requests, request_key)),
            self._observer(self._duration_children, self._duration, series),
            series,
            tuple(
                _fast_inc(
                    self._child(self._token_children, self._tokens, (t, model_label, service_label))
                )
                for t in TOKEN_TYPES
            ),
            tuple(
                _fast_inc(
                    self._child(self._cost_children, self._cost, (model_label, t, service_label))
                )
                for t in COST_TYPES
            ),
        )

    def record_unpriced_request(self, model: str | None, service_type: str | None = None) -> None:
        """Count a request whose model has no price, so its zero cost is visibly a gap."""
        if not self._enabled:
            return
        key = (self._model(model), self._service_type(service_type))
        self._misc_child(self._unpriced, key).inc()

    def set_active_requests(self, count: int) -> None:
        """Set the number of requests in flight in this process."""
        if self._enabled and self._accept("active_requests", count, allow_zero=True):
            if self._active_value is not None:
                self._active_value.set(count)
            else:
                self._active.set(count)

    def watch_in_flight(self, source: InFlightSource) -> bool:
        """Have the active-requests gauge count ``source``'s requests in flight when it is read.

        True when it will: ``source`` then moves no gauge itself. False under
        multiprocess mode, where the gauge's value lives in each process's
        file and the caller moves it with :meth:`active_requests_adder`, and
        when prometheus_client is missing. ``source`` is held weakly.
        """
        if not self._enabled or self._active_value is None:
            return False
        self._active_value.watch(source)
        return True

    def active_requests_adder(self) -> Callable[[float], None] | None:
        """The active-requests gauge's own increment, for ``+1`` and ``-1``; None when disabled.

        For an ASGI middleware the gauge cannot watch (see :meth:`watch_in_flight`),
        which moves the gauge twice on every request: calling this directly skips
        :meth:`inc_active_requests`'s call and check.
        """
        return self._add_active if self._enabled else None

    def inc_active_requests(self) -> None:
        if self._enabled:
            self._add_active(1)

    def dec_active_requests(self) -> None:
        if self._enabled:
            self._add_active(-1)

    def update_system_info(self, **extra: str) -> None:
        """Set the info series: ccobs version, Python version and platform.

        ``extra`` overrides those values; the label set itself is fixed.
        """
        if not self._enabled:
            return
        values = {
            "version": __version__,
            "python_version": platform.python_version(),
            "platform": sys.platform,
        }
        unknown = set(extra) - set(values)
        if unknown:
            raise ValueError(f"unknown info labels {sorted(unknown)}; allowed: {sorted(values)}")
        values.update(extra)
        max_length = self.settings.label_value_max_length
        labels = tuple(label_text(str(values[name]), max_length) for name in INFO.labels)
        previous, self._info_labels = self._info_labels, labels
        if previous is not None and previous != labels:
            if self.multiprocess_dir:  # removal is not supported across worker files
                self._info.labels(*previous).set(0)
            else:
                self._info.remove(*previous)
        self._info.labels(*labels).set(1)

    def is_enabled(self) -> bool:
        """False when prometheus_client is not installed; every method is then a no-op."""
        return self._enabled

    # -- exposition and push --------------------------------------------------------------

    def exposition_registry(self) -> CollectorRegistry | None:
        """The registry to expose or push: all workers' files under multiprocess mode."""
        if not self._enabled:
            return None
        if self.multiprocess_dir:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
            return registry
        return self.registry

    def is_pushgateway_enabled(self) -> bool:
        """Whether a push client is configured with a target URL."""
        client = self.pushgateway_client
        return self._enabled and client is not None and bool(client.is_enabled())

    def push_to_gateway(self, method: str = "push") -> bool:
        """Push to the configured target with push (replace), pushadd (add) or delete."""
        client = self.pushgateway_client
        if client is None or not self.is_pushgateway_enabled():
            return False
        ok = bool(client.push_metrics(self.exposition_registry(), method))
        protocol = getattr(getattr(client, "settings", None), "pushgateway_protocol", "unknown")
        outcome = "success" if ok else "failure"
        self._misc_child(self._pushes, (str(protocol), outcome)).inc()
        return ok

    def push_add_to_gateway(self) -> bool:
        """Add the current metrics to this job and instance on the target (pushadd)."""
        return self.push_to_gateway(method="pushadd")

    def delete_from_gateway(self) -> bool:
        """Delete this job and instance's metrics from the target."""
        return self.push_to_gateway(method="delete")


_metrics: PrometheusMetrics | None = None
_metrics_lock = threading.Lock()


def get_metrics(
    namespace: str = DEFAULT_NAMESPACE,
    registry: CollectorRegistry | None = None,
    pushgateway_client: Any | None = None,
    settings: ObservabilitySettings | None = None,
) -> PrometheusMetrics:
    """The process-wide metrics instance, created on first call.

    ``settings`` supplies buckets, label bounds and the push target; a
    ``namespace`` other than the default wins over ``settings.namespace``.
    Without a ``pushgateway_client``, one is made from the settings when they
    name a push URL. Later calls return the first instance unchanged.
    """
    global _metrics
    with _metrics_lock:
        if _metrics is not None:
            return _metrics
        if settings is None:
            settings = ObservabilitySettings.load()
        if namespace == DEFAULT_NAMESPACE:
            namespace = settings.namespace
        if pushgateway_client is None and settings.pushgateway_enabled:
            from ccobs.pushgateway import get_pushgateway_client

            pushgateway_client = get_pushgateway_client(settings)
        _metrics = PrometheusMetrics(namespace, registry, pushgateway_client, settings=settings)
        return _metrics


def reset_metrics() -> None:
    """Unregister the process-wide instance's collectors and forget it (mainly for tests)."""
    global _metrics
    with _metrics_lock:
        if _metrics is not None:
            _metrics.unregister()
        _metrics = None
