"""A request record's metric updates, found with one lookup per request instead of a dozen.

``RequestRecord.record_metrics`` feeds up to a dozen families at every request's end:
four token types, four cost types (or the unpriced count), time to first token, the
attribution families, the stop reason, time per output token. Through the public
``record_*`` calls each update pays a call, a lookup of its raw arguments, its amount's
checks, and (for a label set with ``other`` in it) the label guards again. Here the
record's ``(endpoint, model, service_type)`` finds a :class:`RecordSeries` holding each
family's operation for those arguments, and the attribution's operations are found
under the caller's arguments in their own cache.

Each operation held is the very one the family's own cache finds for the same
arguments, taken from it once the public call has made it, so a request records
exactly what the public calls would, series for series and refusal for refusal:

- an operation is taken only after the public call has created its series, so a
  series is born when it would have been (a token type first counted when non-zero);
- a :class:`RecordSeries` is made only for arguments every label guard has already
  admitted as they are (:meth:`ccobs.labels.LabelGuard.admits`), so no label of it is
  folded into ``other`` and no overflow goes uncounted; those are at most as many as
  the label sets the guards admit, and :data:`MAX_RECORD_SERIES` bounds them anyway;
- an amount that is not a finite, non-negative number goes through the same refusal
  (counted, logged) as the public call's.

Arguments that fail any of these go through the public calls
(:func:`record_one_by_one`), which stay the reference the tests compare with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ccobs.answer_signals import stop_reason_label
from ccobs.attribution_metrics import (
    AttributionOps,
    AttributionRecorder,
    UsageFacts,
    record_attribution,
)
from ccobs.catalog import COST_TYPES, TOKEN_TYPES
from ccobs.prometheus_internals import Op
from ccobs.refusals import MAX_VALUE
from ccobs.series_cache import Raw, SeriesCache

__all__ = [
    "MAX_RECORD_SERIES",
    "PublicCalls",
    "RecordRecorder",
    "RecordSeries",
    "RequestFacts",
    "record_one_by_one",
]

MAX_RECORD_SERIES = 4096
"""Distinct (endpoint, model, service_type) kept; past it, new ones take the public calls."""

_FAST_NUMBERS = (int, float)
_MAX = MAX_VALUE


class _Cost(Protocol):
    @property
    def input(self) -> float: ...
    @property
    def output(self) -> float: ...
    @property
    def cache(self) -> float: ...
    @property
    def total(self) -> float: ...


class RequestFacts(Protocol):
    """What is recorded of a :class:`ccobs.record.RequestRecord` (no import: it imports us)."""

    @property
    def usage(self) -> UsageFacts | None: ...
    @property
    def cost(self) -> _Cost | None: ...
    @property
    def tokens(self) -> tuple[Any, Any, Any, Any] | None: ...
    @property
    def costs(self) -> tuple[Any, Any, Any, Any] | None: ...
    @property
    def unpriced(self) -> bool: ...
    @property
    def ttft_seconds(self) -> float | None: ...
    @property
    def team(self) -> str | None: ...
    @property
    def key_alias(self) -> str | None: ...
    @property
    def client_app(self) -> str | None: ...
    @property
    def stop_reason(self) -> str | None: ...
    @property
    def time_per_output_token_seconds(self) -> float | None: ...
    @property
    def retry_count(self) -> int | None: ...


class PublicCalls(AttributionRecorder, Protocol):
    """``PrometheusMetrics``'s public ``record_*`` calls (no import: it imports us)."""

    def record_tokens(
        self,
        token_count: int,
        token_type: str,
        model: str | None = None,
        service_type: str | None = None,
    ) -> None: ...
    def record_cost(
        self,
        cost_usd: float,
        model: str | None = None,
        cost_type: str = "total",
        service_type: str | None = None,
    ) -> None: ...
    def record_unpriced_request(
        self, model: str | None, service_type: str | None = None
    ) -> None: ...
    def record_time_to_first_token(
        self,
        seconds: float,
        model: str | None = None,
        endpoint: str = "unknown",
        service_type: str | None = None,
    ) -> None: ...
    def record_stop_reason(
        self, stop_reason: str, model: str | None = None, service_type: str | None = None
    ) -> None: ...
    def record_time_per_output_token(
        self, seconds: float, model: str | None = None, service_type: str | None = None
    ) -> None: ...
    def record_retried_request(
        self, retry_count: int, model: str | None = None, service_type: str | None = None
    ) -> None: ...  # fmt: skip


class RecordSeries:
    """One (endpoint, model, service_type)'s operations, each None until first made."""

    __slots__ = ("costs", "stop_reasons", "tokens", "tpot", "ttft", "unpriced")

    def __init__(self) -> None:
        self.tokens: list[Op | None] = [None] * len(TOKEN_TYPES)
        self.costs: list[Op | None] = [None] * len(COST_TYPES)
        self.unpriced: Op | None = None
        self.ttft: Op | None = None
        self.tpot: Op | None = None
        self.stop_reasons: dict[str, Op] = {}
        """By stop reason label: a fixed set (``ccobs.catalog.STOP_REASONS``, ``other``)."""


def record_one_by_one(
    record: RequestFacts,
    metrics: PublicCalls,
    endpoint: str,
    model: str | None,
    service_type: str | None,
) -> None:
    """The record's updates through the public ``record_*`` calls: the reference.

    Only what is set: a record without usage adds no token series.
    """
    usage = record.usage
    if usage is not None:
        record_tokens = metrics.record_tokens
        record_tokens(usage.input, "input", model, service_type)
        record_tokens(usage.output, "output", model, service_type)
        record_tokens(usage.cache_read, "cache_read", model, service_type)
        record_tokens(usage.cache_write, "cache_write", model, service_type)
    cost = record.cost
    if cost is not None:
        record_cost = metrics.record_cost
        record_cost(cost.input, model, "input", service_type)
        record_cost(cost.output, model, "output", service_type)
        record_cost(cost.cache, model, "cache", service_type)
        record_cost(cost.total, model, "total", service_type)
    elif record.unpriced:
        metrics.record_unpriced_request(model, service_type)
    if record.ttft_seconds is not None:
        metrics.record_time_to_first_token(record.ttft_seconds, model, endpoint, service_type)
    if record.team is not None or record.key_alias is not None or record.client_app is not None:
        record_attribution(record, metrics, model, service_type)
    # What the answer said about itself: why it stopped, its speed, whether it was a retry.
    if record.stop_reason is not None:
        metrics.record_stop_reason(record.stop_reason, model, service_type)
    if record.time_per_output_token_seconds is not None:
        metrics.record_time_per_output_token(
            record.time_per_output_token_seconds, model, service_type
        )
    if record.retry_count:
        metrics.record_retried_request(record.retry_count, model, service_type)


class RecordRecorder:
    """Records a request's record through :class:`RecordSeries`; see the module's docstring.

    The caches are the metrics' own (the ones the public calls use), ``accept`` its
    refusal check, ``admits`` whether the label guards have admitted an
    ``(endpoint, model, service_type)`` exactly as given.
    """

    __slots__ = (
        "_accept",
        "_admits",
        "_attributed",
        "_costs",
        "_enabled",
        "_metrics",
        "_series",
        "_stop_reasons",
        "_tokens",
        "_tpots",
        "_ttfts",
        "_unpriced",
    )

    def __init__(
        self,
        metrics: PublicCalls,
        *,
        enabled: bool,
        tokens: SeriesCache[Op],
        costs: SeriesCache[Op],
        unpriced: SeriesCache[Op],
        ttfts: SeriesCache[Op],
        tpots: SeriesCache[Op],
        stop_reasons: SeriesCache[Op],
        attributed: SeriesCache[AttributionOps],
        accept: Callable[..., bool],
        admits: Callable[[object, object, object], bool],
    ) -> None:
        self._metrics = metrics
        self._enabled = enabled
        self._tokens = tokens
        self._costs = costs
        self._unpriced = unpriced
        self._ttfts = ttfts
        self._tpots = tpots
        self._stop_reasons = stop_reasons
        self._attributed = attributed
        self._accept = accept
        self._admits = admits
        self._series: dict[Raw, RecordSeries] = {}

    def series_count(self) -> int:
        """The :class:`RecordSeries` kept (at most :data:`MAX_RECORD_SERIES`)."""
        return len(self._series)

    def _new_series(self, key: tuple[Any, Any, Any]) -> RecordSeries | None:
        """A series for admitted arguments while under the bound; None otherwise."""
        endpoint, model, service_type = key
        if len(self._series) >= MAX_RECORD_SERIES or not self._admits(
            endpoint, model, service_type
        ):
            return None
        series = self._series[key] = RecordSeries()
        return series

    def record(
        self,
        record: RequestFacts,
        endpoint: str,
        model: str | None,
        service_type: str | None,
    ) -> None:
        """Feed ``record``'s tokens, cost, times, attribution and stop reason to the metrics."""
        metrics = self._metrics
        key = (endpoint, model, service_type)
        try:
            series = self._series[key]
        except KeyError:
            found = self._new_series(key) if self._enabled else None
            if found is None:
                record_one_by_one(record, metrics, endpoint, model, service_type)
                return
            series = found
        except TypeError:  # unhashable arguments
            record_one_by_one(record, metrics, endpoint, model, service_type)
            return
        accept = self._accept
        value: Any
        tokens = record.tokens  # ``usage``'s four counts, in TOKEN_TYPES order
        if tokens is not None:
            ops = series.tokens
            for i, value in enumerate(tokens):
                op = ops[i]
                if op is None:
                    if value.__class__ in _FAST_NUMBERS and value == 0:
                        continue  # the public call adds nothing, and makes no series
                    token_type = TOKEN_TYPES[i]
                    metrics.record_tokens(value, token_type, model, service_type)
                    ops[i] = self._tokens.by_raw.get((token_type, model, service_type))
                elif value.__class__ in _FAST_NUMBERS and 0 <= value <= _MAX:
                    if value:  # zero: nothing to add, and no refusal either
                        op(value)
                elif accept("tokens", value):
                    op(value)
        costs = record.costs  # ``cost``'s input, output, cache, total: COST_TYPES order
        if costs is not None:
            ops = series.costs
            for i, value in enumerate(costs):
                op = ops[i]
                if op is None:
                    if value.__class__ in _FAST_NUMBERS and value == 0:
                        continue
                    cost_type = COST_TYPES[i]
                    metrics.record_cost(value, model, cost_type, service_type)
                    ops[i] = self._costs.by_raw.get((model, cost_type, service_type))
                elif value.__class__ in _FAST_NUMBERS and 0 <= value <= _MAX:
                    if value:
                        op(value)
                elif accept("cost_usd", value):
                    op(value)
        elif record.unpriced:
            op = series.unpriced
            if op is None:
                metrics.record_unpriced_request(model, service_type)
                series.unpriced = self._unpriced.by_raw.get((model, service_type))
            else:
                op(1)
        value = record.ttft_seconds
        if value is not None:
            op = series.ttft
            if op is None:
                metrics.record_time_to_first_token(value, model, endpoint, service_type)
                series.ttft = self._ttfts.by_raw.get((model, endpoint, service_type))
            elif (value.__class__ in _FAST_NUMBERS and 0 <= value <= _MAX) or accept(
                "time_to_first_token", value, allow_zero=True
            ):
                op(value)
        team, key_alias, client_app = record.team, record.key_alias, record.client_app
        if team is not None or key_alias is not None or client_app is not None:
            try:
                attributed = self._attributed.by_raw[
                    (team, key_alias, client_app, model, service_type)
                ]
            except (KeyError, TypeError):
                record_attribution(record, metrics, model, service_type)
            else:
                # ``record_attributed_request`` for arguments its cache holds, as it
                # records them; inline, as a method's call costs as much as the lines.
                attributed.request(1)
                if tokens is not None:
                    attributed_tokens = attributed.tokens
                    for i, value in enumerate(tokens):
                        if (value.__class__ in _FAST_NUMBERS and 0 < value <= _MAX) or (
                            value != 0 and accept("tokens", value)
                        ):
                            attributed_tokens[i](value)
                value = 0.0 if costs is None else costs[3]
                if (value.__class__ in _FAST_NUMBERS and 0 < value <= _MAX) or (
                    value != 0 and accept("cost_usd", value)
                ):
                    attributed.cost(value)
        stop_reason = record.stop_reason
        if stop_reason is not None:
            label = stop_reason_label(stop_reason)
            op = series.stop_reasons.get(label)
            if op is None:
                # What the public call does on a miss; the guards admitted model and
                # service type, and the label is one of a fixed set, so it may be kept.
                op = series.stop_reasons[label] = self._stop_reasons.resolve(
                    (label, model, service_type)
                )
            op(1)
        value = record.time_per_output_token_seconds
        if value is not None:
            op = series.tpot
            if op is None:
                metrics.record_time_per_output_token(value, model, service_type)
                series.tpot = self._tpots.by_raw.get((model, service_type))
            elif (value.__class__ in _FAST_NUMBERS and 0 <= value <= _MAX) or accept(
                "time_per_output_token", value, allow_zero=True
            ):
                op(value)
        if record.retry_count:
            metrics.record_retried_request(record.retry_count, model, service_type)
