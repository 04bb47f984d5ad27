"""Prometheus metrics for an LLM API proxy: requests, latency, tokens, cost and errors.

Every ``record_*`` call sits on the request path, so each one resolves its
labelled child once per distinct set of arguments and reuses it afterwards
(one dictionary lookup keyed by the raw arguments, see
:class:`ccobs.series_cache.SeriesCache`), takes no lock of its own and does
no I/O. :meth:`PrometheusMetrics.record_completed_request` records a whole
request under a single lookup. Label values pass through bounded guards (see
``ccobs.labels``), and values that would corrupt a series (negative, NaN,
infinite) are refused and logged instead of recorded. The children are
recorded through their storage operations (see
:mod:`ccobs.prometheus_internals`), not their public methods.

This module knows no push protocol: :class:`PrometheusMetrics` is handed a
push client by whoever starts it; :func:`get_metrics`, the process-wide
starter, makes one from the settings.
"""

from __future__ import annotations

import os
import platform
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ccobs.answer_signals import AnswerLabels, retry_label, stop_reason_label
from ccobs.attribution_metrics import AttributionOps
from ccobs.catalog import COST_TYPES, DEFAULT_NAMESPACE, INFO, TOKEN_TYPES
from ccobs.in_flight import ActiveRequests, InFlightSource
from ccobs.labels import label_text
from ccobs.metric_families import MetricFamilies
from ccobs.metric_labels import LABEL_CAPS, MetricLabels
from ccobs.prometheus_internals import (
    PROMETHEUS_AVAILABLE,
    Op,
    fast_inc,
    fast_observe,
    has_in_process_value,
    locked_add,
)
from ccobs.pushgateway import get_pushgateway_client
from ccobs.rate_limit_metrics import RateLimitGauges
from ccobs.record_series import RecordRecorder
from ccobs.refusals import MAX_VALUE, Refusals, logger
from ccobs.request_ops import RequestOps
from ccobs.response_op import response_op
from ccobs.series_cache import Labels, Raw, SeriesCache, one_of
from ccobs.settings import ObservabilitySettings
from ccobs.version import __version__

if PROMETHEUS_AVAILABLE:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

__all__ = [
    "MULTIPROC_ENV_VAR",
    "PROMETHEUS_AVAILABLE",
    "InFlightSource",
    "PrometheusMetrics",
    "get_metrics",
    "reset_metrics",
]

MULTIPROC_ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"

_MAX = MAX_VALUE
_FAST_NUMBERS = (int, float)

_LABEL_CAPS = LABEL_CAPS
"""Moved to :data:`ccobs.metric_labels.LABEL_CAPS`; the old name stays for its importers."""


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
        self._families: MetricFamilies | None = None
        self._info_labels: tuple[str, ...] | None = None
        self._active_value: ActiveRequests | None = None
        self._rate_limits: RateLimitGauges | None = None
        self._create_caches()
        if not self._enabled:
            self.registry = None
            self.multiprocess_dir = None
            return
        self.registry = REGISTRY if registry is None else registry
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV_VAR) or None
        self._create_collectors(self.registry)
        self.update_system_info()

    # -- construction -------------------------------------------------------------------

    def _create_caches(self) -> None:
        """One :class:`SeriesCache` per family recorded; built lazily, so also when disabled."""
        inc, observe = self._inc_op, self._observe_op
        self._pushes: SeriesCache[Op] = SeriesCache(inc("pushes"))
        enabled = self._enabled
        refusals = Refusals(
            SeriesCache(inc("rejected")) if enabled else None,
            SeriesCache(inc("overflows")) if enabled else None,
        )
        self._accept = refusals.accept
        settings = self.settings
        labels = MetricLabels(
            settings.model_label_cap,
            settings.model_allowlist,
            settings.label_value_max_length,
            refusals.overflow,
        )
        self._requests: SeriesCache[Op] = SeriesCache(inc("requests"), labels.request)
        self._durations: SeriesCache[Op] = SeriesCache(observe("duration"), labels.series)
        self._ttfts: SeriesCache[Op] = SeriesCache(observe("ttft"), labels.series)
        self._tokens: SeriesCache[Op] = SeriesCache(
            inc("tokens"), labels.tokens, one_of(0, "token_type", TOKEN_TYPES)
        )
        self._costs: SeriesCache[Op] = SeriesCache(
            inc("cost"), labels.cost, one_of(1, "cost_type", COST_TYPES)
        )
        self._errors: SeriesCache[Op] = SeriesCache(inc("errors"), labels.error)
        self._unpriced: SeriesCache[Op] = SeriesCache(inc("unpriced"), labels.unpriced)
        # A whole request's operations, and the middleware's count-then-observe.
        self._bundles: SeriesCache[RequestOps] = SeriesCache(self._new_bundle, labels.request)
        self._responses: SeriesCache[Op] = SeriesCache(self._new_response, labels.request)
        self._attributed: SeriesCache[AttributionOps] = SeriesCache(
            self._new_attribution, labels.attribution, remembers=labels.attribution.remembers
        )
        answers = AnswerLabels(labels)  # stop reasons, output speed, retries
        self._stop_reasons: SeriesCache[Op] = SeriesCache(inc("stop_reasons"), answers.stop_reason)
        self._tpots: SeriesCache[Op] = SeriesCache(observe("time_per_output_token"), answers.series)
        self._retried: SeriesCache[Op] = SeriesCache(inc("retried"), answers.retry)
        self._create_record_recorder(labels)

    def _create_record_recorder(self, labels: MetricLabels) -> None:
        """What ``RequestRecord.record_metrics`` records through (:mod:`ccobs.record_series`)."""
        endpoint, model, service_type = labels.endpoint, labels.model, labels.service_type

        def admits(endpoint_raw: object, model_raw: object, service_type_raw: object) -> bool:
            return (
                endpoint.admits(endpoint_raw)
                and model.admits(model_raw)
                and service_type.admits(service_type_raw)
            )

        self._record_recorder = RecordRecorder(
            self,
            enabled=self._enabled,
            tokens=self._tokens,
            costs=self._costs,
            unpriced=self._unpriced,
            ttfts=self._ttfts,
            tpots=self._tpots,
            stop_reasons=self._stop_reasons,
            attributed=self._attributed,
            accept=self._accept,
            admits=admits,
        )
        self.record_facts = self._record_recorder.record
        """Feed a :class:`~ccobs.record.RequestRecord`'s facts to the metrics, as
        ``RequestRecord.record_metrics`` does: the same series as the public calls."""

    def _inc_op(self, family: str) -> Callable[[Labels], Op]:
        return lambda labels: fast_inc(getattr(self._families, family).labels(*labels))

    def _observe_op(self, family: str) -> Callable[[Labels], Op]:
        return lambda labels: fast_observe(getattr(self._families, family).labels(*labels))

    def _create_collectors(self, registry: CollectorRegistry) -> None:
        self._families = MetricFamilies(self.namespace, registry, self.settings)
        overflows = self._families.overflows
        self._rate_limits = RateLimitGauges(
            self._families,
            self.settings.label_value_max_length,
            lambda label: overflows.labels(label).inc(),
        )
        active = self._families.active
        if not self.multiprocess_dir and has_in_process_value(active):
            # In-process values: the gauge is read from here (see ActiveRequests).
            self._active_value = ActiveRequests()
            active.set_function(self._active_value.get)
            self._add_active = locked_add(self._active_value)
        else:  # multiprocess: every process writes its own value to its file
            self._add_active = fast_inc(active)

    def unregister(self) -> None:
        """Remove exactly the collectors this instance registered."""
        if self._families is not None:
            self._families.unregister()

    # -- recording ------------------------------------------------------------------------

    def _count(self, cache: SeriesCache[Op], raw: Raw) -> None:
        """Count one under ``raw``: what :meth:`record_error` and the like share."""
        try:
            record = cache.by_raw[raw]
        except (KeyError, TypeError):
            if not self._enabled:
                return
            record = cache.resolve(raw)
        record(1)

    def _add(
        self, cache: SeriesCache[Op], metric: str, raw: Raw, amount: Any, allow_zero: bool
    ) -> None:
        """Add or observe ``amount`` under ``raw``: what every ``record_*`` of an amount shares.

        ``amount`` is checked before anything is resolved, so a refused value
        creates no series; ``cache.check`` runs first of all, on a miss (only
        arguments that passed it are ever remembered).
        """
        try:
            record = cache.by_raw[raw]
        except (KeyError, TypeError):
            cache.check(raw)
            if self._enabled and self._accept(metric, amount, allow_zero=allow_zero):
                cache.resolve(raw)(amount)
            return
        if (amount.__class__ in _FAST_NUMBERS and 0 < amount <= _MAX) or self._accept(
            metric, amount, allow_zero=allow_zero
        ):
            record(amount)

    def record_request(
        self,
        method: str,
        endpoint: str,
        model: str | None = None,
        status: str | int = "unknown",
        service_type: str | None = None,
    ) -> None:
        """Count one served request."""
        raw = (method, endpoint, model, status, service_type)
        try:  # :meth:`_count`, inline: one call less on every request
            record = self._requests.by_raw[raw]
        except (KeyError, TypeError):
            if not self._enabled:
                return
            record = self._requests.resolve(raw)
        record(1)

    def record_response_time(
        self,
        duration_seconds: float,
        model: str | None = None,
        endpoint: str = "unknown",
        service_type: str | None = None,
    ) -> None:
        """Observe a response duration in seconds (start to last byte)."""
        raw = (model, endpoint, service_type)
        self._add(self._durations, "response_duration", raw, duration_seconds, True)

    def record_time_to_first_token(
        self,
        seconds: float,
        model: str | None = None,
        endpoint: str = "unknown",
        service_type: str | None = None,
    ) -> None:
        """Observe the time from request start to the first token of a streaming response."""
        raw = (model, endpoint, service_type)
        self._add(self._ttfts, "time_to_first_token", raw, seconds, True)

    def record_tokens(
        self,
        token_count: int,
        token_type: str,
        model: str | None = None,
        service_type: str | None = None,
    ) -> None:
        """Count tokens of one type: input, output, cache_read or cache_write."""
        self._add(self._tokens, "tokens", (token_type, model, service_type), token_count, False)

    def record_cost(
        self,
        cost_usd: float,
        model: str | None = None,
        cost_type: str = "total",
        service_type: str | None = None,
    ) -> None:
        """Add a cost in USD of one type: input, output, cache or total."""
        self._add(self._costs, "cost_usd", (model, cost_type, service_type), cost_usd, False)

    def record_error(
        self,
        error_type: str,
        endpoint: str = "unknown",
        model: str | None = None,
        service_type: str | None = None,
    ) -> None:
        """Count one failed request under its error type."""
        self._count(self._errors, (error_type, endpoint, model, service_type))

    def start_model_series(self, models: Iterable[str], service_type: str | None = None) -> None:
        """Create the token and cost series of ``models`` at zero, before their first request.

        For models known in advance (an allow-list): ``increase()`` over a
        series born with its first request's value misses that value, after
        every restart, and a panel reads "No data" where it should read 0.
        The models pass the label guard like any others: an allow-listed one
        always keeps its name, any other takes a slot under the cap.
        """
        if not self._enabled:
            return
        for model in models:
            for token_type in TOKEN_TYPES:
                self._tokens.resolve((token_type, model, service_type))
            for cost_type in COST_TYPES:
                self._costs.resolve((model, cost_type, service_type))

    def record_unpriced_request(self, model: str | None, service_type: str | None = None) -> None:
        """Count a request whose model has no price, so its zero cost is visibly a gap."""
        self._count(self._unpriced, (model, service_type))

    def record_stop_reason(
        self, stop_reason: str, model: str | None = None, service_type: str | None = None
    ) -> None:
        """Count one answer under why it stopped; an unknown reason counts as ``other``."""
        self._count(self._stop_reasons, (stop_reason_label(stop_reason), model, service_type))

    def record_time_per_output_token(
        self, seconds: float, model: str | None = None, service_type: str | None = None
    ) -> None:
        """Observe a streamed answer's seconds per output token after its first."""
        raw = (model, service_type)
        self._add(self._tpots, "time_per_output_token", raw, seconds, True)

    def record_retried_request(
        self, retry_count: int, model: str | None = None, service_type: str | None = None
    ) -> None:
        """Count a request that is a client's retry (``retry_count`` above 0; 0 is not).

        A count that is not an ``int`` counts nothing: recording must not raise.
        """
        if retry_count.__class__ is int and retry_count > 0:
            self._count(self._retried, (retry_label(retry_count), model, service_type))

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
        raw = (method, endpoint, model, status, service_type)
        try:
            record = self._responses.by_raw[raw]
        except (KeyError, TypeError):
            if not self._enabled:
                return
            self.record_request(method, endpoint, model, status, service_type)
            self.record_response_time(duration_seconds, model, endpoint, service_type)
            self._remember_response(raw)
            return
        value: Any = duration_seconds
        if value.__class__ in _FAST_NUMBERS and 0 <= value <= _MAX:
            record(value)
        else:  # count it; observe only what _accept admits
            self._requests.by_raw[raw](1)
            if self._accept("response_duration", value, allow_zero=True):
                self._durations.by_raw[(model, endpoint, service_type)](value)

    def _remember_response(self, raw: Raw) -> None:
        """Pair the two caches' operations for ``raw``, when both hold one.

        Both hold ``raw`` only when every guard admitted its value as it is, so
        the pair records exactly what the two methods would, and resolving it
        again counts no overflow. Without a duration remembered (refused), no
        pair: it would create a duration series no value was observed in.
        """
        _, endpoint, model, _, service_type = raw
        try:
            if raw in self._requests.by_raw and (model, endpoint, service_type) in (
                self._durations.by_raw
            ):
                self._responses.resolve(raw)
        except TypeError:  # unhashable arguments are resolved every time
            pass

    def _new_response(self, labels: Labels) -> Op:
        _, endpoint, model, _, service_type = labels
        families = self._families
        assert families is not None  # a response is recorded only when enabled
        return response_op(
            families.requests.labels(*labels),
            families.duration.labels(model, endpoint, service_type),
        )

    def recorded_responses(self) -> Mapping[tuple[object, ...], Callable[[float], None]]:
        """:meth:`record_response`'s arguments but the duration -> its operation for them.

        The ASGI middleware calls the operation itself, with a duration it
        knows to be a finite, non-negative float, for a request whose arguments
        are there; every other request goes through :meth:`record_response`,
        which adds the arguments it may remember (see :meth:`_remember_response`).
        """
        return self._responses.by_raw

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
        :meth:`record_cost`, resolved under one cache lookup instead of eleven.
        Zero token counts and costs are skipped (not refused); the token and
        cost series of a label set start at zero on its first request.
        ``ttft_seconds=None`` (not streamed) records no TTFT.
        """
        if not self._enabled:
            return
        raw = (method, endpoint, model, status, service_type)
        try:
            bundle = self._bundles.by_raw[raw]
        except (KeyError, TypeError):
            bundle = self._bundles.resolve(raw)
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
                ttft = bundle.ttft = self._ttfts.for_labels(bundle.series)
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

    def _new_bundle(self, labels: Labels) -> RequestOps:
        _, endpoint, model, _, service_type = labels
        series = (model, endpoint, service_type)
        return RequestOps(
            self._requests.for_labels(labels),
            self._durations.for_labels(series),
            series,
            tuple(self._tokens.for_labels((t, model, service_type)) for t in TOKEN_TYPES),
            tuple(self._costs.for_labels((model, t, service_type)) for t in COST_TYPES),
        )

    def record_attributed_request(
        self,
        team: str | None,
        key_alias: str | None,
        client_app: str | None,
        model: str | None = None,
        service_type: str | None = None,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        cost_usd: float = 0.0,
    ) -> None:
        """Count one request of an identified caller, with its tokens and total cost.

        The attribution families (see :mod:`ccobs.attribution_metrics` for their bounds);
        a label set's token and cost series start at zero with its first request,
        so ``increase()`` counts that request and a caller who spent nothing reads 0.
        """
        if not self._enabled:
            return
        raw = (team, key_alias, client_app, model, service_type)
        try:
            ops = self._attributed.by_raw[raw]
        except (KeyError, TypeError):
            ops = self._attributed.resolve(raw)
        ops.request(1)
        tokens = ops.tokens
        value: Any
        for i, value in enumerate(
            (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)
        ):
            if (value.__class__ in _FAST_NUMBERS and 0 < value <= _MAX) or (
                value != 0 and self._accept("tokens", value)
            ):
                tokens[i](value)
        value = cost_usd
        if (value.__class__ in _FAST_NUMBERS and 0 < value <= _MAX) or (
            value != 0 and self._accept("cost_usd", value)
        ):
            ops.cost(value)

    def _new_attribution(self, labels: Labels) -> AttributionOps:
        families = self._families
        assert families is not None
        return AttributionOps(
            fast_inc(families.attributed_requests.labels(*labels)),
            tuple(fast_inc(families.attributed_tokens.labels(t, *labels)) for t in TOKEN_TYPES),
            fast_inc(families.attributed_cost.labels(*labels)),
        )

    def set_budget(self, scope: str, team: str, key_alias: str, period: str, usd: float) -> None:
        """Set one configured budget's gauge (see :func:`ccobs.budgets.expose_budgets`).

        An empty ``team`` or ``key_alias`` is a label PromQL sees as absent: a team
        budget has no key alias, a key budget no team. A budget that is not a positive,
        finite number is logged and not set (``ccobs.budgets`` refuses it at parse).
        """
        if self._families is None:
            return
        value: Any = usd
        if not (value.__class__ in _FAST_NUMBERS and 0 < value <= _MAX):
            logger.warning("budget_refused", usd=repr(value)[:64], reason="must be positive")
            return
        max_length = self.settings.label_value_max_length
        try:
            labels = [
                label_text(str(part), max_length) for part in (scope, team, key_alias, period)
            ]
        except ValueError:  # an int too long to print
            logger.warning("budget_refused", reason="a label cannot be printed")
            return
        self._families.budgets.labels(*labels).set(value)

    def record_rate_limit_headers(
        self, headers: Iterable[tuple[bytes, bytes]], key_alias: str | None = None
    ) -> None:
        """Set the rate-limit gauges from an upstream answer's raw headers (name, value bytes).

        Anthropic's, OpenAI's and the Claude subscription's headers (see
        :mod:`ccobs.rate_limits`), errors' answers included; ``key_alias``
        labels them (None: ``none``). Malformed values are counted in
        ``ratelimit_values_rejected_total``, never recorded; this never raises.
        """
        if self._rate_limits is not None:
            self._rate_limits.set_from_headers(headers, key_alias)

    def set_active_requests(self, count: int) -> None:
        """Set the number of requests in flight in this process."""
        if self._families is not None and self._accept("active_requests", count, allow_zero=True):
            if self._active_value is not None:
                self._active_value.set(count)
            else:
                self._families.active.set(count)

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

    def update_system_info(self, info: Mapping[str, str] | None = None, **extra: str) -> None:
        """Set the info series: ccobs version, Python version and platform.

        ``info`` is the reference API's form (``update_system_info({"version": ...})``)
        and ``extra`` ccobs's (``update_system_info(version=...)``); both override
        those values, and the label set itself stays fixed, so it stays one
        series. A keyword outside it is an error (a typo); a key of ``info``
        outside it, as code written for the reference may pass (``environment``,
        ``hostname``), is dropped and logged, never a label.
        """
        if self._families is None:
            return
        values = {
            "version": __version__,
            "python_version": platform.python_version(),
            "platform": sys.platform,
        }
        unknown = set(extra) - set(values)
        if unknown:
            raise ValueError(f"unknown info labels {sorted(unknown)}; allowed: {sorted(values)}")
        if info is not None:
            dropped = sorted(str(key) for key in info if key not in values)
            if dropped:
                logger.warning("info_labels_dropped", dropped=dropped[:16], allowed=sorted(values))
            values.update((key, str(value)) for key, value in info.items() if key in values)
        values.update(extra)
        info_family = self._families.info
        max_length = self.settings.label_value_max_length
        labels = tuple(label_text(str(values[name]), max_length) for name in INFO.labels)
        previous, self._info_labels = self._info_labels, labels
        if previous is not None and previous != labels:
            if self.multiprocess_dir:  # removal is not supported across worker files
                info_family.labels(*previous).set(0)
            else:
                info_family.remove(*previous)
        info_family.labels(*labels).set(1)

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
        self._pushes.for_labels((str(protocol), outcome))(1)
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
