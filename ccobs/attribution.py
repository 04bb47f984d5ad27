"""Attribution: who sent a request (team, key), with which client app, in which session.

One pass over the request's raw headers picks up the credential, the user
agent, ``x-app``, ``originator`` and the session header, and fills the
record's ``team``, ``key_alias``, ``key_fingerprint``, ``client_app`` and
``session_id``. The middleware calls it for every instrumented request when
given an :class:`Attribution` (``instrument(..., identities=...)``, or the
``identities`` setting); ``ccobs proxy`` always does, so every relayed
request is attributed, with or without an identity file.

The credential is hashed and dropped here: only its fingerprint goes on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ccobs.client_app import classify_client_app
from ccobs.identity import Identities, credential_of
from ccobs.record import RequestRecord
from ccobs.session import SESSION_HEADERS, accept_session_id

__all__ = ["Attribution"]

_API_KEY: Final = 0
_AUTHORIZATION: Final = 1
_USER_AGENT: Final = 2
_X_APP: Final = 3
_ORIGINATOR: Final = 4
_SESSION: Final = 5
_CODEX_SESSION: Final = 6
_WANTED: Final[dict[bytes, int]] = {
    b"x-api-key": _API_KEY,
    b"authorization": _AUTHORIZATION,
    b"user-agent": _USER_AGENT,
    b"x-app": _X_APP,
    b"originator": _ORIGINATOR,
    SESSION_HEADERS[0]: _SESSION,
    SESSION_HEADERS[1]: _CODEX_SESSION,
}


class Attribution:
    """Fills a request's caller, client app and session from its headers."""

    __slots__ = ("identities",)

    def __init__(self, identities: Identities | None = None) -> None:
        self.identities = identities if identities is not None else Identities()

    def attribute(self, record: RequestRecord, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Fill ``record``'s attribution fields from ASGI ``headers`` (lowercase names).

        Never raises on what a client sends: every value is bytes compared or
        hashed, never decoded but a validated session id.
        """
        found: list[bytes | None] = [None] * 7
        wanted = _WANTED
        for name, value in headers:
            slot = wanted.get(name)
            if slot is not None and found[slot] is None:  # the first of a repeated header
                found[slot] = value
        record.team, record.key_alias, record.key_fingerprint = self.identities.resolve_credential(
            credential_of(found[_API_KEY], found[_AUTHORIZATION])
        )
        record.client_app = classify_client_app(
            found[_USER_AGENT], found[_X_APP], found[_ORIGINATOR]
        )
        session = found[_SESSION]
        if session is None:
            session = found[_CODEX_SESSION]
        record.session_id = accept_session_id(session)
