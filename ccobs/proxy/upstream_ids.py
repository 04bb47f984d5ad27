"""The upstream's own id for a request, so an operator can quote it to the vendor.

Anthropic names it ``request-id`` (``req_...``), OpenAI ``x-request-id``.
The proxy's own id (the correlation id of its log lines) is a different id;
both reach the client, see docs/proxy.md. The upstream's value is checked
before it is stored: bounded, printable, and never something that looks like
a key, since it goes on every access-log line and into the stored record.
"""

from __future__ import annotations

from ccobs.proxy.upstream_client import UpstreamResponse
from ccobs.proxy.usage import Api
from ccobs.redaction import redact_text

ANTHROPIC_REQUEST_ID = b"request-id"
OPENAI_REQUEST_ID = b"x-request-id"
MAX_REQUEST_ID_CHARS = 128
_ID_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
"""What a request id may hold. Checked with ``bytes.translate``, which deletes them: one C
call where a regular expression's ``fullmatch`` costs several times as much."""


def upstream_request_id(api: Api, upstream: UpstreamResponse) -> str | None:
    """The upstream's id for the request from its answer's headers, or None (absent, odd).

    The first header of that name in any case, as ``upstream.header`` finds
    it, comparing a name as sent before lowering it (only when the lengths
    agree): names arrive in lower case from most upstreams.
    """
    wanted = ANTHROPIC_REQUEST_ID if api == "anthropic" else OPENAI_REQUEST_ID
    size = len(wanted)
    for key, value in upstream.headers:
        if key == wanted or (len(key) == size and key.lower() == wanted):
            return accepted_request_id(value)
    return None


def accepted_request_id(raw: bytes | None) -> str | None:
    """``raw`` as text when it looks like a request id: bounded, printable, not a key."""
    if raw is None or not 0 < len(raw) <= MAX_REQUEST_ID_CHARS or raw.translate(None, _ID_CHARS):
        return None
    value = raw.decode("ascii")
    if redact_text(value) != value:
        return None
    return value
