"""One request's facts in one typed place: filled once, read by every output at its end.

A proxy learns a request's model, its token usage, its cost and its time to
first token while it relays the answer. Written straight to the metrics and
again into the context's untyped metadata, each fact had two writers that had
to agree; here it is written once, into a :class:`RequestRecord`, and at the
end of the request the ASGI middleware (or ``request_context`` given
``metrics``) feeds all three outputs from it:

- the metrics, through the public ``PrometheusMetrics.record_*`` calls
  (:meth:`RequestRecord.record_metrics`);
- the access-log line (:meth:`RequestRecord.line_fields`);
- the stored :class:`~ccobs.storage.AccessLogRecord`
  (:meth:`~ccobs.storage.AccessLogRecord.from_request`).

A handler reaches the record through its request context::

    from ccobs import current_request_context
    from ccobs.pricing import PriceTable

    prices = PriceTable.default()

    async def handler(request):
        ...
        record = current_request_context().record
        record.model = "claude-sonnet-4-6"
        record.set_time_to_first_token(0.42)      # seconds from the request's start
        record.set_usage(input=1200, output=350, cache_read=8000)
        record.set_cost(prices.cost(record.model, 1200, 350, 8000))  # None: unpriced

Metadata added with ``ctx.add_metadata`` keeps working as before; where both
name the same fact (``model``, ``error_type``, ``input_tokens``...), the
record wins, on the labels, the line and the stored record alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any

from ccobs.pricing import Cost, CostParts

if TYPE_CHECKING:
    from ccobs.metrics import PrometheusMetrics

__all__ = ["RequestRecord", "TokenUsage"]


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens of one request by the four ``type`` label values of ``tokens_total``.

    The same four counts as the proxy's ``TokenCounts`` (usage parsing), kept
    here so the library's record does not depend on the proxy's parser.
    """

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0


@dataclass(slots=True)
class RequestRecord:
    """The facts of one request, each None (or False) until someone knows it.

    Slotted and created only when a handler first asks for it
    (``RequestContext.record``), so a request that never touches it costs
    nothing. Fields are plain attributes: set ``model``, ``streaming`` or
    ``error_type`` directly; usage, cost and time to first token go through
    their ``set_*`` methods, which take the figures as an API reports them.

    Usage and cost are kept as plain tuples (:attr:`tokens`, :attr:`costs`), which
    the metrics and the line read; the frozen :class:`TokenUsage` and
    :class:`~ccobs.pricing.Cost` that :attr:`usage` and :attr:`cost` return are built
    only when something reads them, because building a frozen dataclass costs more
    than recording all of a request's tokens.
    """

    model: str | None = None
    """The model asked for: the ``model`` label of every metric of the request."""
    streaming: bool | None = None
    """Whether the answer was streamed; None when the handler does not say."""
    client_addr: str | None = None
    """The client's address; personal data, set only when the operator keeps it."""
    user_agent: str | None = None
    """The client's user agent; personal data, as ``client_addr``."""
    ttft_seconds: float | None = None
    """Seconds from the request's start to the first token of a streamed answer."""
    error_type: str | None = None
    """What went wrong, in ``ccobs.catalog``'s vocabulary (``ERROR_TYPES``); None when
    nothing did, and the middleware then names an exception or an error status."""
    unpriced: bool = False
    """The model has no price: the zero cost is a gap, counted as such."""
    stop_reason: str | None = None
    """Why the model stopped, in the vendor's word (``end_turn``, ``max_tokens``, ``length``...);
    counted in ``stop_reasons_total`` under a bounded label (see ``ccobs.answer_signals``)."""
    team: str | None = None
    """The caller's team, from the operator's identity file (``unassigned`` when unknown)."""
    key_alias: str | None = None
    """The caller's key as an operator-given alias (or a fingerprint-based one): never the key."""
    key_fingerprint: str | None = None
    """A short SHA-256 prefix of the caller's credential: stable, and never the key itself."""
    client_app: str | None = None
    """The client application (Claude Code, an SDK), from a fixed set: a label value."""
    session_id: str | None = None
    """The client's session, for the access log only (never a label); a later issue."""
    upstream_request_id: str | None = None
    """The upstream's id for the request, to match a line to the provider's logs."""
    time_per_output_token_seconds: float | None = None
    """Seconds per output token of a streamed answer after its first token (see
    ``ccobs.answer_signals.time_per_output_token``); None when not streamed or too short."""
    retry_count: int | None = None
    """Which retry of a request this is, as the client's SDK numbers it
    (``x-stainless-retry-count``); 0 or None for a first try."""
    line_position: int = field(default=0, repr=False, compare=False)
    """How many metadata keys the request had when the record was created: the
    facts go on the access-log line there, as ``add_metadata``'s keys go where
    they were added, so the line reads as it did when they were metadata."""
    tokens: tuple[Any, Any, Any, Any] | None = field(default=None, init=False)
    """The four token counts as set, in ``TOKEN_TYPES`` order (input, output, cache read,
    cache write); None until usage is set. Read-only: set usage with :meth:`set_usage`
    or :attr:`usage`."""
    costs: tuple[Any, Any, Any, Any] | None = field(default=None, init=False)
    """The USD cost by ``COST_TYPES`` (input, output, cache, total), as :attr:`cost`'s
    ``input``, ``output``, ``cache`` and ``total``; None until a cost is set. Read-only:
    set the cost with :meth:`set_cost`, :meth:`set_cost_parts` or :attr:`cost`."""
    _usage: TokenUsage | None = field(default=None, init=False, repr=False, compare=False)
    _cost: Cost | None = field(default=None, init=False, repr=False, compare=False)
    _cost_parts: CostParts | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def usage(self) -> TokenUsage | None:
        """Tokens by type; None when the answer reported none, so no token series is added."""
        usage = self._usage
        if usage is None and self.tokens is not None:
            usage = self._usage = TokenUsage(*self.tokens)
        return usage

    @usage.setter
    def usage(self, usage: TokenUsage | None) -> None:
        self._usage = usage
        self.tokens = (
            None
            if usage is None
            else (usage.input, usage.output, usage.cache_read, usage.cache_write)
        )

    @property
    def cost(self) -> Cost | None:
        """USD cost by type (``ccobs.pricing.Cost``); None when unknown."""
        cost = self._cost
        if cost is None and self._cost_parts is not None:
            cost = self._cost = Cost(*self._cost_parts)
        return cost

    @cost.setter
    def cost(self, cost: Cost | None) -> None:
        self._cost = cost
        self._cost_parts = None
        self.costs = None if cost is None else (cost.input, cost.output, cost.cache, cost.total)

    def set_usage(
        self, input: int = 0, output: int = 0, cache_read: int = 0, cache_write: int = 0
    ) -> None:
        """Set the request's token usage; counted in ``tokens_total`` at the request's end.

        All four types are counted, zeros included, as soon as usage is set.
        """
        self._usage = None
        self.tokens = (input, output, cache_read, cache_write)

    def set_cost(self, cost: Cost | None) -> None:
        """Set the request's cost, as ``PriceTable.cost`` returns it.

        None means the model has no price: the line then says ``unpriced`` and
        ``unpriced_requests_total`` counts it, rather than a zero cost passing
        for a free request.
        """
        self.cost = cost
        self.unpriced = cost is None

    def set_cost_parts(self, parts: CostParts | None) -> None:
        """:meth:`set_cost` of ``Cost(*parts)``, as ``PriceTable.cost_parts`` returns them.

        The same cost, on the metrics, the line and the stored record, without
        building a :class:`~ccobs.pricing.Cost` until something reads :attr:`cost`.
        """
        self._cost = None
        self._cost_parts = parts
        if parts is None:
            self.costs = None
            self.unpriced = True
        else:
            input, output, cache_read, cache_write = parts
            # ``Cost.cache`` and ``Cost.total``, added in the same order.
            self.costs = (
                input,
                output,
                cache_read + cache_write,
                input + output + cache_read + cache_write,
            )
            self.unpriced = False

    def set_time_to_first_token(self, seconds: float) -> None:
        """Set the seconds from the request's start to its first token.

        ``RequestContext.duration_seconds`` read when the first token arrives
        is that figure. Observed in the histogram at the request's end.
        """
        self.ttft_seconds = seconds

    def write_facts(self, fields: dict[str, Any]) -> None:
        """Put the facts that are set into ``fields``, in the access-log line's order."""
        if self.model is not None:
            fields["model"] = self.model
        if self.streaming is not None:
            fields["streaming"] = self.streaming
        if self.client_addr is not None:
            fields["client_addr"] = self.client_addr
        if self.user_agent is not None:
            fields["user_agent"] = self.user_agent
        if self.ttft_seconds is not None:
            fields["ttft_ms"] = round(self.ttft_seconds * 1000.0, 3)
        if self.error_type is not None:
            fields["error_type"] = self.error_type
        tokens = self.tokens
        if tokens is not None:
            (
                fields["input_tokens"],
                fields["output_tokens"],
                fields["cache_read_tokens"],
                fields["cache_write_tokens"],
            ) = tokens
        costs = self.costs
        if costs is not None:
            (
                fields["cost_input_usd"],
                fields["cost_output_usd"],
                fields["cost_cache_usd"],
                fields["cost_total_usd"],
            ) = costs
        elif self.unpriced:
            fields["cost_total_usd"] = 0.0
            fields["unpriced"] = True
        # Facts a later issue fills: on the line only once something sets them.
        if self.stop_reason is not None:
            fields["stop_reason"] = self.stop_reason
        if self.team is not None:
            fields["team"] = self.team
        if self.key_alias is not None:
            fields["key_alias"] = self.key_alias
        if self.key_fingerprint is not None:
            fields["key_fingerprint"] = self.key_fingerprint
        if self.client_app is not None:
            fields["client_app"] = self.client_app
        if self.session_id is not None:
            fields["session_id"] = self.session_id
        if self.upstream_request_id is not None:
            fields["upstream_request_id"] = self.upstream_request_id
        if self.time_per_output_token_seconds is not None:
            fields["time_per_output_token_ms"] = round(
                self.time_per_output_token_seconds * 1000.0, 3
            )
        if self.retry_count:  # a retry: SDKs send 0 on every first try, which says nothing
            fields["retry_count"] = self.retry_count

    def line_fields(self, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """``metadata`` with the facts in it: the access-log line's fields, bar the duration.

        The facts go after the first :attr:`line_position` metadata keys; a
        fact replaces a metadata key of the same name (the record wins).
        """
        items = iter(metadata.items())
        fields = dict(islice(items, self.line_position))
        self.write_facts(fields)
        for key, value in items:
            if key not in fields:
                fields[key] = value
        return fields

    def record_metrics(
        self,
        metrics: PrometheusMetrics,
        endpoint: str,
        model: str | None,
        service_type: str | None,
    ) -> None:
        """Feed tokens, cost (or the unpriced count), times, attribution and stop reason.

        Only what is set: a record without usage adds no token series. The
        error is not counted here: the caller resolves it (the record's, the
        metadata's, an exception's) and calls ``record_error`` once. The series
        are the public ``record_*`` calls' (``PrometheusMetrics.record_facts``,
        :mod:`ccobs.record_series`), found with one lookup per request.
        """
        metrics.record_facts(self, endpoint, model, service_type)
