"""The access-log storage protocol: one record per request, handed over on exit.

Prometheus keeps aggregates; a store keeps each request. The record has a
fixed set of fields, so nothing a handler puts in its context metadata (a
header, a prompt, a key) can reach storage by accident.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ccobs.redaction import redact_text

if TYPE_CHECKING:
    from ccobs.record import RequestRecord


@dataclass(frozen=True)
class AccessLogRecord:
    """What is kept of one request. Token counts are integers, costs USD."""

    request_id: str
    timestamp: datetime
    """Request start, timezone-aware UTC."""
    duration_ms: float
    method: str | None = None
    endpoint: str | None = None
    model: str | None = None
    status: int | None = None
    streaming: bool = False
    ttft_ms: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_input_usd: float = 0.0
    cost_output_usd: float = 0.0
    cost_cache_usd: float = 0.0
    cost_total_usd: float = 0.0
    service_type: str | None = None
    error_type: str | None = None
    client_addr: str | None = None
    user_agent: str | None = None
    stop_reason: str | None = None
    team: str | None = None
    key_alias: str | None = None
    key_fingerprint: str | None = None
    client_app: str | None = None
    session_id: str | None = None
    upstream_request_id: str | None = None
    """The seven fields above are the ``RequestRecord`` facts later issues fill (stop
    reason, team, key alias and fingerprint, client app, session, upstream id):
    kept by the SQL stores as columns (``ccobs/access_log/columns.py``)."""

    @classmethod
    def from_request(
        cls,
        request_id: str,
        timestamp: datetime,
        duration_ms: float,
        metadata: Mapping[str, Any],
        record: RequestRecord | None,
    ) -> AccessLogRecord:
        """Build the record of a request from its ``RequestRecord`` and its metadata.

        The record's facts win over metadata of the same name; metadata a
        handler added by hand (``add_metadata(input_tokens=...)``) fills the
        rest, as in :meth:`from_metadata`, with the same checks on both.
        """
        if record is not None:
            metadata = record.line_fields(metadata)
        return cls.from_metadata(request_id, timestamp, duration_ms, metadata)

    @classmethod
    def from_metadata(
        cls,
        request_id: str,
        timestamp: datetime,
        duration_ms: float,
        metadata: Mapping[str, Any],
    ) -> AccessLogRecord:
        """Build a record from a request context's metadata, keeping only known fields.

        Values of the wrong type are dropped rather than stored, so a bad
        caller costs a field, never the record.
        """
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in ("request_id", "timestamp", "duration_ms") or f.name not in metadata:
                continue
            value = _coerce(f.name, metadata[f.name])
            if value is not None:
                values[f.name] = value
        return cls(request_id=request_id, timestamp=timestamp, duration_ms=duration_ms, **values)


_INT_FIELDS = {"status", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"}
_FLOAT_FIELDS = {
    "ttft_ms",
    "cost_input_usd",
    "cost_output_usd",
    "cost_cache_usd",
    "cost_total_usd",
}


def _coerce(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "streaming":
        return bool(value)
    if name in _INT_FIELDS or name in _FLOAT_FIELDS:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            return None
        return int(value) if name in _INT_FIELDS else float(value)
    # Free text (user agent, model, path) can carry a key a client put there.
    return redact_text(str(value))[:512]


@runtime_checkable
class AccessLogStorage(Protocol):
    """Where access-log records go.

    ``store`` is called on the event loop at the end of every request, so it
    must return at once (queue the record, write elsewhere) and must not
    raise; ccobs logs and swallows an exception if one escapes anyway.
    """

    def store(self, record: AccessLogRecord) -> None: ...
