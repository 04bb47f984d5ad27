"""What an answer says about itself: why it stopped, how fast it streamed, whether it was a retry.

Three bounded families fed from a request's record at its end:

- ``stop_reasons_total{stop_reason}``: the vendor's own word (Anthropic's
  ``stop_reason``, OpenAI's ``finish_reason``) stays on the access-log line as
  sent; the label takes it only from :data:`~ccobs.catalog.STOP_REASONS`, a
  Responses ``max_output_tokens`` as ``length``, anything else as ``other``,
  so a vendor adding a reason cannot add series;
- ``time_per_output_token_seconds``: from the first token of a stream to its
  end over the output tokens after the first, as the OpenTelemetry GenAI
  conventions define ``gen_ai.server.time_per_output_token``; an answer of
  fewer than two output tokens says nothing about speed and is left out;
- ``retried_requests_total{retry}``: the official SDKs number their retries in
  ``x-stainless-retry-count``; a retry storm after 429s or 529s then shows as
  retries, not as new demand. Bucketed ``1``, ``2``, ``3+``.

The label functions here map each family's raw arguments to its label values,
as :class:`ccobs.metric_labels.MetricLabels` does for the others, sharing its
``model`` and ``service_type`` guards.
"""

from __future__ import annotations

from collections.abc import Iterable

from ccobs.catalog import OTHER, RETRY_LABELS, STOP_REASONS
from ccobs.metric_labels import MetricLabels
from ccobs.series_cache import Labels, Raw

__all__ = [
    "MAX_RETRY_COUNT",
    "RETRY_COUNT_HEADER",
    "AnswerLabels",
    "parse_retry_count",
    "read_retry_count",
    "retry_label",
    "stop_reason_label",
    "time_per_output_token",
]

RETRY_COUNT_HEADER = "x-stainless-retry-count"
"""The header the official Anthropic and OpenAI SDKs number their retries in (0: first try)."""
MAX_RETRY_COUNT = 1000
"""Retry counts above this are not believed (no SDK retries that often): the header is ignored."""

_STOP_REASON_LABELS: dict[str, str] = {reason: reason for reason in STOP_REASONS}
# The Responses API has no finish_reason: an incomplete answer names what cut it off.
_STOP_REASON_LABELS["max_output_tokens"] = "length"


def stop_reason_label(stop_reason: str) -> str:
    """The ``stop_reason`` label of a vendor's stop reason: a known one, or ``other``.

    Anything else, whatever a careless caller passes (None, a list), is ``other``
    too: recording runs inside every request and must not raise.
    """
    try:
        return _STOP_REASON_LABELS.get(stop_reason, OTHER)
    except TypeError:  # unhashable
        return OTHER


def retry_label(retry_count: int) -> str:
    """The ``retry`` label of a retry count above 0: ``1``, ``2`` or ``3+``."""
    return RETRY_LABELS[min(retry_count, len(RETRY_LABELS)) - 1]


def parse_retry_count(value: str | None) -> int | None:
    """The retry count an ``x-stainless-retry-count`` header says, or None.

    None for a missing, non-numeric, negative or absurd value: a header the
    client controls never fails the request nor records nonsense.
    """
    # ASCII digits only: no sign, no space, and no "²", which str.isdigit() admits.
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 4:
        return None
    count = int(value)
    return count if count <= MAX_RETRY_COUNT else None


_RETRY_COUNT_HEADER_RAW = RETRY_COUNT_HEADER.encode()


def read_retry_count(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The retry count of a request's raw ASGI ``headers`` (lower-case names), or None.

    What ``parse_retry_count(request.headers.get(RETRY_COUNT_HEADER))`` gives
    (the first such header, decoded as latin-1), without building Starlette's
    ``Headers``, whose ``get`` raises and catches a ``KeyError`` for the
    header most requests do not carry.
    """
    for name, value in headers:
        if name == _RETRY_COUNT_HEADER_RAW:
            return parse_retry_count(value.decode("latin-1"))
    return None


def time_per_output_token(
    first_token_at: float | None, end_at: float, output_tokens: int
) -> float | None:
    """Seconds per output token after the first, or None when the answer cannot say.

    ``first_token_at`` and ``end_at`` are seconds on one clock (the request's
    own); fewer than two output tokens, no first token, or an end before the
    first token give None rather than a made-up figure.
    """
    if first_token_at is None or output_tokens < 2 or end_at < first_token_at:
        return None
    return (end_at - first_token_at) / (output_tokens - 1)


class AnswerLabels:
    """Raw arguments -> label values of the three families, through ``labels``' guards."""

    def __init__(self, labels: MetricLabels) -> None:
        self._model = labels.model
        self._service_type = labels.service_type

    def stop_reason(self, raw: Raw) -> Labels:
        """(stop_reason label, model, service_type); the stop reason is already a label."""
        stop_reason, model, service_type = raw
        return (str(stop_reason), self._model(model), self._service_type(service_type))

    def series(self, raw: Raw) -> Labels:
        """(model, service_type): the time-per-output-token histogram."""
        model, service_type = raw
        return (self._model(model), self._service_type(service_type))

    def retry(self, raw: Raw) -> Labels:
        """(retry label, model, service_type); the retry is already a label."""
        retry, model, service_type = raw
        return (str(retry), self._model(model), self._service_type(service_type))
