"""The catalogue of every metric ccobs emits: names, types, labels and help.

This module is the single source of truth for metric names. The metrics
collector, the dashboards, the alert rules, docs/reference.md's table and the tests all
read it, so a renamed metric cannot drift between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricKind = Literal["counter", "gauge", "histogram"]

DEFAULT_NAMESPACE = "ccproxy"

TOKEN_TYPES: tuple[str, ...] = ("input", "output", "cache_read", "cache_write")
COST_TYPES: tuple[str, ...] = ("input", "output", "cache", "total")

# -- the error_type vocabulary -----------------------------------------------------------
# Every ``error_type`` value ccobs records, in one place: the proxy writes these, the
# alert rules' exclusions are derived from them, the docs list them.

INVALID_REQUEST = "invalid_request"
"""A request the proxy answered itself with 400 or 413 (malformed JSON, no model, too big)."""
CLIENT_DISCONNECT = "client_disconnect"
"""The client left before its answer was complete."""
RATE_LIMITED_ERROR_TYPE = "rate_limited"
"""The ``error_type`` of a request the upstream refused with 429; the rules and dashboards
single it out."""
OVERLOADED = "overloaded"
"""The upstream answered 529 (Anthropic's overloaded)."""
UPSTREAM_TIMEOUT = "upstream_timeout"
UPSTREAM_CONNECTION_ERROR = "upstream_connection_error"
UPSTREAM_STREAM_ERROR = "upstream_stream_error"
"""A stream that broke off."""
UPSTREAM_INCOMPLETE_STREAM = "upstream_incomplete_stream"
"""A stream that ended cleanly but before its last event."""
UPSTREAM_INVALID_RESPONSE = "upstream_invalid_response"
"""An answer whose body could not be decoded or read for usage."""

ERROR_TYPES: tuple[str, ...] = (
    INVALID_REQUEST,
    CLIENT_DISCONNECT,
    RATE_LIMITED_ERROR_TYPE,
    OVERLOADED,
    UPSTREAM_TIMEOUT,
    UPSTREAM_CONNECTION_ERROR,
    UPSTREAM_STREAM_ERROR,
    UPSTREAM_INCOMPLETE_STREAM,
    UPSTREAM_INVALID_RESPONSE,
)
"""The fixed error types. Besides them: ``upstream_<status>`` (other upstream error
statuses), ``upstream_<type>`` (the type of an error event in a stream), ``http_<status>``
(an error status from an instrumented app that named no type) and an exception's class
name (an instrumented app that raised)."""


def upstream_status_error_type(status: int) -> str:
    """The ``error_type`` of an upstream error status."""
    if status == 429:
        return RATE_LIMITED_ERROR_TYPE
    if status == 529:
        return OVERLOADED
    return f"upstream_{status}"


def upstream_event_error_type(kind: str) -> str:
    """The ``error_type`` of an error event in an upstream stream (``overloaded_error``...)."""
    return f"upstream_{kind}"


def http_error_type(status: int) -> str:
    """The ``error_type`` of an error status from an app that named no type of its own."""
    return f"http_{status}"


UPSTREAM_EVENT_STATUSES: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
"""The type of an error event that ends an upstream stream, and the HTTP status it stands
for: a stream's ``upstream_<type>`` must count wherever its status equivalent does."""


def status_equivalent_error_types(*statuses: int) -> tuple[str, ...]:
    """Every ``error_type`` an upstream failure with one of ``statuses`` is recorded as:
    the status's own type and the stream error events standing for it."""
    types = [upstream_status_error_type(status) for status in statuses]
    types += [
        upstream_event_error_type(kind)
        for kind, status in UPSTREAM_EVENT_STATUSES.items()
        if status in statuses
    ]
    return tuple(types)


RATE_LIMITED_ERROR_TYPES: tuple[str, ...] = status_equivalent_error_types(429)
"""A 429, before the stream (``rate_limited``) or as its error event."""
UPSTREAM_AUTH_ERROR_TYPES: tuple[str, ...] = status_equivalent_error_types(401, 403, 404)
"""The upstream refused the key or does not know the model (401, 403, 404, or their stream
events): client errors for the SLO, but 100 % of requests when a key is revoked."""

CLIENT_ERROR_TYPES: tuple[str, ...] = (
    INVALID_REQUEST,
    CLIENT_DISCONNECT,
    "http_4..",
    "upstream_4..",
    *(
        upstream_event_error_type(kind)
        for kind, status in UPSTREAM_EVENT_STATUSES.items()
        if 400 <= status < 500 and status != 429
    ),
)
"""The error types that are the client's doing and do not count against the availability
SLO, as PromQL regular-expression alternatives (``http_4..`` matches every 4xx); a stream's
error events count as their status equivalents do."""

UNKNOWN = "unknown"
"""Label value recorded when a caller passes no model or service type."""
OTHER = "other"
"""Label value that absorbs values past a label's cardinality bound."""


@dataclass(frozen=True)
class MetricSpec:
    """One metric family as exposed: `name` is the suffix after the namespace."""

    name: str
    kind: MetricKind
    documentation: str
    labels: tuple[str, ...] = ()

    def full_name(self, namespace: str = DEFAULT_NAMESPACE) -> str:
        """The exposed family name, e.g. ``ccproxy_requests_total``."""
        return f"{namespace}_{self.name}"


REQUESTS = MetricSpec(
    "requests_total",
    "counter",
    "Requests served, by method, route template, model, HTTP status and service type.",
    ("method", "endpoint", "model", "status", "service_type"),
)
RESPONSE_DURATION = MetricSpec(
    "response_duration_seconds",
    "histogram",
    "Time from request start to the last byte of the response.",
    ("model", "endpoint", "service_type"),
)
TIME_TO_FIRST_TOKEN = MetricSpec(
    "time_to_first_token_seconds",
    "histogram",
    "Time from request start to the first generated token of a streaming response.",
    ("model", "endpoint", "service_type"),
)
TOKENS = MetricSpec(
    "tokens_total",
    "counter",
    "Tokens processed, by type (input, output, cache_read, cache_write) and model.",
    ("type", "model", "service_type"),
)
COST = MetricSpec(
    "cost_usd_total",
    "counter",
    "Cost in US dollars, by model and cost type (input, output, cache, total).",
    ("model", "cost_type", "service_type"),
)
ERRORS = MetricSpec(
    "errors_total",
    "counter",
    "Failed requests, by error type, route template and model.",
    ("error_type", "endpoint", "model", "service_type"),
)
ACTIVE_REQUESTS = MetricSpec(
    "active_requests",
    "gauge",
    "Requests in flight (summed over live worker processes).",
)
INFO = MetricSpec(
    "info",
    "gauge",
    "Always 1; labels describe the running ccobs and Python versions.",
    ("version", "python_version", "platform"),
)
PUSHES = MetricSpec(
    "pushes_total",
    "counter",
    "Metric pushes to Pushgateway or VictoriaMetrics, by protocol and outcome "
    "(success, or failure, which includes pushes skipped while the circuit breaker is open).",
    ("protocol", "outcome"),
)
LABEL_OVERFLOWS = MetricSpec(
    "label_overflows_total",
    "counter",
    "Label values folded into 'other' because the label reached its cardinality bound.",
    ("label",),
)
REJECTED_VALUES = MetricSpec(
    "rejected_values_total",
    "counter",
    "Recorded values refused because they were negative, NaN or infinite.",
    ("metric",),
)
REJECTED_VALUE_METRICS: tuple[str, ...] = (
    "response_duration",
    "time_to_first_token",
    "tokens",
    "cost_usd",
    "active_requests",
    "time_per_output_token",
)
"""The ``metric`` label values of ``rejected_values_total``: what a refused value was for."""

UNPRICED_REQUESTS = MetricSpec(
    "unpriced_requests_total",
    "counter",
    "Requests for models missing from the price table; their cost is recorded as zero.",
    ("model", "service_type"),
)

ACCESS_LOG_WRITTEN = MetricSpec(
    "access_log_written_total",
    "counter",
    "Access-log records written to the access-log database.",
)
ACCESS_LOG_DROPPED = MetricSpec(
    "access_log_dropped_total",
    "counter",
    "Access-log records lost, by reason (queue_full, write_error, closed).",
    ("reason",),
)
ACCESS_LOG_DROP_REASONS: tuple[str, ...] = ("queue_full", "write_error", "closed")
ACCESS_LOG_METRICS: tuple[MetricSpec, ...] = (ACCESS_LOG_WRITTEN, ACCESS_LOG_DROPPED)
"""Registered by the access-log store (``ccobs.access_log``), not by ``PrometheusMetrics``:
they exist only where an access-log database is configured."""

ATTRIBUTION_LABELS: tuple[str, ...] = ("team", "key_alias", "client_app", "model", "service_type")
"""Who spent it: the attribution families' labels (bounded: ``ccobs.attribution_metrics``)."""
ATTRIBUTED_REQUESTS = MetricSpec(
    "attributed_requests_total",
    "counter",
    "Requests of identified callers, by team, key alias, client app, model and service type.",
    ATTRIBUTION_LABELS,
)
ATTRIBUTED_TOKENS = MetricSpec(
    "attributed_tokens_total",
    "counter",
    "Tokens of identified callers, by type, team, key alias, client app, model and service type.",
    ("type", *ATTRIBUTION_LABELS),
)
ATTRIBUTED_COST = MetricSpec(
    "attributed_cost_usd_total",
    "counter",
    "Total cost in US dollars of identified callers, by team, key alias, client app, model "
    "and service type.",
    ATTRIBUTION_LABELS,
)
BUDGET = MetricSpec(
    "budget_usd",
    "gauge",
    "Configured budget in US dollars over a rolling period, per team (scope=team) or per "
    "key alias (scope=key), from the identity file; set at start.",
    ("scope", "team", "key_alias", "period"),
)
ATTRIBUTION_METRICS: tuple[MetricSpec, ...] = (
    ATTRIBUTED_REQUESTS,
    ATTRIBUTED_TOKENS,
    ATTRIBUTED_COST,
    BUDGET,
)

# -- rate-limit headroom (issue 18): what the upstream's rate-limit headers say ---------------
# Set from every upstream answer that carries the headers (ccobs.rate_limits reads them,
# ccobs.rate_limit_metrics records them); ``key_alias`` is the caller's key alias, bounded.

RATE_LIMIT_LIMIT = MetricSpec(
    "ratelimit_limit",
    "gauge",
    "The upstream's rate limit as its last answer stated it, by API, limit kind (requests, "
    "tokens, input_tokens, output_tokens) and key alias.",
    ("api", "limit", "key_alias"),
)
RATE_LIMIT_REMAINING = MetricSpec(
    "ratelimit_remaining",
    "gauge",
    "What is left of the upstream's rate limit as its last answer stated it, by API, limit "
    "kind and key alias.",
    ("api", "limit", "key_alias"),
)
RATE_LIMIT_RESET = MetricSpec(
    "ratelimit_reset_timestamp_seconds",
    "gauge",
    "When the upstream's rate limit resets (Unix time) as its last answer stated it; minus "
    "time(), the seconds to reset.",
    ("api", "limit", "key_alias"),
)
SUBSCRIPTION_UTILIZATION = MetricSpec(
    "ratelimit_unified_utilization_ratio",
    "gauge",
    "Share of a Claude subscription usage window (5h, 7d...) used, as the last answer's "
    "unified rate-limit headers stated it.",
    ("window", "key_alias"),
)
SUBSCRIPTION_RESET = MetricSpec(
    "ratelimit_unified_reset_timestamp_seconds",
    "gauge",
    "When a Claude subscription usage window resets (Unix time), as the last answer stated it.",
    ("window", "key_alias"),
)
SUBSCRIPTION_STATUS = MetricSpec(
    "ratelimit_unified_status",
    "gauge",
    "1 for the Claude subscription's status as the last answer stated it (allowed, "
    "allowed_warning, rejected, other), 0 for the others.",
    ("status", "key_alias"),
)
RATE_LIMIT_REJECTED = MetricSpec(
    "ratelimit_values_rejected_total",
    "counter",
    "Rate-limit header values ignored as malformed (not a number, negative, absurd, an "
    "unparsable time), by API and field.",
    ("api", "field"),
)
RATE_LIMIT_METRICS: tuple[MetricSpec, ...] = (
    RATE_LIMIT_LIMIT,
    RATE_LIMIT_REMAINING,
    RATE_LIMIT_RESET,
    SUBSCRIPTION_UTILIZATION,
    SUBSCRIPTION_RESET,
    SUBSCRIPTION_STATUS,
    RATE_LIMIT_REJECTED,
)
# -- what the answers themselves say: why they stopped, how fast they streamed, retries ------

STOP_REASONS: tuple[str, ...] = (
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "stop",
    "length",
    "tool_calls",
    "content_filter",
)
"""The ``stop_reason`` label values besides ``other``: Anthropic's ``stop_reason`` values,
then OpenAI's ``finish_reason`` values (a Responses answer is mapped onto the latter)."""
TRUNCATED_STOP_REASONS: tuple[str, ...] = ("max_tokens", "length")
"""Stop reasons of an answer cut off by its output-token limit."""
REFUSED_STOP_REASONS: tuple[str, ...] = ("refusal", "content_filter")
"""Stop reasons of an answer the model or the vendor's filter refused."""
RETRY_LABELS: tuple[str, ...] = ("1", "2", "3+")
"""The ``retry`` label values: which retry of a request (an SDK's ``x-stainless-retry-count``)."""

STOP_REASONS_COUNTED = MetricSpec(
    "stop_reasons_total",
    "counter",
    "Answers by why the model stopped (Anthropic stop_reason, OpenAI finish_reason; "
    "else other) and model.",
    ("stop_reason", "model", "service_type"),
)
TIME_PER_OUTPUT_TOKEN = MetricSpec(
    "time_per_output_token_seconds",
    "histogram",
    "Seconds per output token of a streamed answer, from its first token to its end, "
    "over the output tokens after the first.",
    ("model", "service_type"),
)
RETRIED_REQUESTS = MetricSpec(
    "retried_requests_total",
    "counter",
    "Requests that are an SDK's retry (x-stainless-retry-count above 0), by which retry "
    "(1, 2, 3+) and model.",
    ("retry", "model", "service_type"),
)
ANSWER_METRICS: tuple[MetricSpec, ...] = (
    STOP_REASONS_COUNTED,
    TIME_PER_OUTPUT_TOKEN,
    RETRIED_REQUESTS,
)

DEFAULT_TIME_PER_OUTPUT_TOKEN_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)  # fmt: skip
"""The OpenTelemetry GenAI buckets of ``gen_ai.server.time_per_output_token``."""

ALL_METRICS: tuple[MetricSpec, ...] = (
    REQUESTS,
    RESPONSE_DURATION,
    TIME_TO_FIRST_TOKEN,
    TOKENS,
    COST,
    ERRORS,
    UNPRICED_REQUESTS,
    ACTIVE_REQUESTS,
    INFO,
    PUSHES,
    LABEL_OVERFLOWS,
    REJECTED_VALUES,
    ACCESS_LOG_WRITTEN,
    ACCESS_LOG_DROPPED,
    *ATTRIBUTION_METRICS,
    *RATE_LIMIT_METRICS,
    *ANSWER_METRICS,
)

DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0,
)  # fmt: skip
"""Response duration buckets: LLM calls range from sub-second to many minutes."""

DEFAULT_TTFT_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
)  # fmt: skip
"""Time-to-first-token buckets: dense around the 0.2-3 s where streams usually start."""


def metrics_table_markdown(namespace: str = DEFAULT_NAMESPACE) -> str:
    """The metric table of docs/reference.md: name, type, labels, meaning."""
    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for spec in ALL_METRICS:
        labels = ", ".join(f"`{label}`" for label in spec.labels) or "(none)"
        rows.append(
            f"| `{spec.full_name(namespace)}` | {spec.kind} | {labels} | {spec.documentation} |"
        )
    return "\n".join(rows) + "\n"


# -- the client_app vocabulary -------------------------------------------------------------
# The client application a request came from (``ccobs.client_app`` classifies it): a fixed
# set, so it can be a label value of the attribution metrics.

CLIENT_APPS: tuple[str, ...] = (
    "claude-code",
    "codex",
    "anthropic-sdk-python",
    "anthropic-sdk-typescript",
    "openai-python",
    "openai-node",
    "curl",
    "other",
)
"""Every ``client_app`` value; ``other`` is anything not recognised, or no user agent."""
