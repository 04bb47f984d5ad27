"""The upstream's own id for a request, so an operator can quote it to the vendor.

Anthropic names it ``request-id`` (``req_...``), OpenAI ``x-request-id``.
The proxy's own id (the correlation id of its log lines) is a different id;
both reach the client, see docs/proxy.md. The upstream's value is checked
before it is stored: bounded, printable, and never something that looks like
a key, since it goes on every access-log line and into the stored record.
"""

from __future__ import annotations

import re

from ccobs.proxy.upstream_client import UpstreamResponse
from ccobs.proxy.usage import Api
from ccobs.redaction import redact_text

ANTHROPIC_REQUEST_ID = b"request-id"
OPENAI_REQUEST_ID = b"x-request-id"
_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def upstream_request_id(api: Api, upstream: UpstreamResponse) -> str | None:
    """The upstream's id for the request from its answer's headers, or None (absent, odd)."""
    raw = upstream.header(ANTHROPIC_REQUEST_ID if api == "anthropic" else OPENAI_REQUEST_ID)
    return accepted_request_id(raw)


def accepted_request_id(raw: bytes | None) -> str | None:
    """``raw`` as text when it looks like a request id: bounded, printable, not a key."""
    if raw is None:
        return None
    value = raw.decode("latin-1")
    if _ID.fullmatch(value) is None or redact_text(value) != value:
        return None
    return value
