"""A client's session id, kept for the access log only when it is safe to store.

Claude Code sends ``x-claude-code-session-id`` (a UUID) on every request of a
session, Codex CLI ``session-id``: grouping the access log by it answers
"which session spent the money". It is client-chosen text, so it is kept
only in a bounded, plain shape (a UUID, or up to 64 letters, digits and
``._:-``) and only if it does not look like a credential (nothing with
``sk-`` in it, nothing the log redaction would hide); anything else is
dropped. Never a metric label: sessions are unbounded.
"""

from __future__ import annotations

import re
from typing import Final

from ccobs.redaction import redact_text

__all__ = [
    "CLAUDE_CODE_SESSION_HEADER",
    "CODEX_SESSION_HEADER",
    "MAX_SESSION_ID_CHARS",
    "accept_session_id",
]

CLAUDE_CODE_SESSION_HEADER: Final = b"x-claude-code-session-id"
CODEX_SESSION_HEADER: Final = b"session-id"
"""Where clients send their session id: Claude Code's header first, then Codex CLI's."""
MAX_SESSION_ID_CHARS: Final = 64

_SESSION_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


def accept_session_id(value: bytes | None) -> str | None:
    """The session id to store, or None when absent, malformed or credential-like."""
    if value is None or not _SESSION_ID.fullmatch(value) or b"sk-" in value.lower():
        return None  # no session id of a client has "sk-" in it; a key may
    text = value.decode("ascii")
    # Without ':' only an "sk-" key could be redacted, and that is out already: a UUID
    # skips the scan. With one, ``api-key:...`` and the like are caught.
    if b":" in value and redact_text(text) != text:
        return None
    return text
