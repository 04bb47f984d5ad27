"""The bearer-token check both token-protected endpoints (``/metrics``, ``/logs``) make."""

from __future__ import annotations

import hmac


def bearer_token_matches(authorization: str | None, token: str) -> bool:
    """Constant-time check of an ``Authorization: Bearer ...`` header against ``token``.

    ``hmac.compare_digest`` also when the lengths differ: no early return that
    would let response times give away the token's length or a prefix.
    """
    if not authorization:
        return False
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())
