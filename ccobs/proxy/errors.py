"""The errors the proxy answers itself, in the shape each API's SDKs parse.

A client talks to the proxy as if it were the API, so an error the proxy
makes (a bad request, an unreachable upstream, a stream cut short) must read
like one the API would send: an error body for a whole answer, an error event
closing a stream.
"""

from __future__ import annotations

from typing import Any

from ccobs.catalog import upstream_status_error_type
from ccobs.proxy.sse import encode_event
from ccobs.proxy.usage import Api

error_type_for_status = upstream_status_error_type
"""The ``error_type`` label of an upstream error status (kept under its old name)."""


def error_body(api: Api, status: int, message: str) -> dict[str, Any]:
    """An error body in the shape the client's SDK expects from this API."""
    if api == "anthropic":
        kind = {400: "invalid_request_error", 413: "request_too_large"}.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind = "invalid_request_error" if status < 500 else "api_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def stream_error_event(api: Api, message: str) -> bytes:
    """The event that ends a broken stream, so the client sees a failure, not a short answer.

    Chat streams are unnamed chunks; Anthropic and Responses streams name their
    events, and a Responses client (Codex) dispatches on the data's ``type``,
    while the openai SDK raises on an ``error`` event whose data has an ``error``.
    """
    body = error_body(api, 502, message)
    if api == "anthropic":
        return encode_event(body, "error")
    if api == "responses":
        return encode_event(
            {"type": "error", "code": "upstream_error", "message": message, **body}, "error"
        )
    return encode_event(body)
