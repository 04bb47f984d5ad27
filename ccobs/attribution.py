"""Attribution: who sent a request (team, key), with which client app, in which session.

One pass over the request's raw headers picks up the credential, the user
agent, ``x-app``, ``originator`` and the session header, and fills the
record's ``team``, ``key_alias``, ``key_fingerprint``, ``client_app`` and
``session_id``. The middleware calls it for every instrumented request when
given an :class:`Attribution` (``instrument(..., identities=...)``, or the
``identities`` setting); ``ccobs proxy`` always does, so every relayed
request is attributed, with or without an identity file.

The credential is hashed and dropped here: only its fingerprint goes on. The
callers of recent credentials (:mod:`ccobs.caller_cache`, which keeps no credential)
and the client apps of recent user agents (:class:`ccobs.client_app.ClientApps`) are
remembered, bounded, so a repeated caller costs a lookup or two.
"""

from __future__ import annotations

from collections.abc import Iterable

from ccobs.caller_cache import CallerCache
from ccobs.client_app import ClientApps
from ccobs.identity import Identities, credential_of
from ccobs.record import RequestRecord
from ccobs.session import CLAUDE_CODE_SESSION_HEADER, CODEX_SESSION_HEADER, accept_session_id

__all__ = ["Attribution"]


class Attribution:
    """Fills a request's caller, client app and session from its headers."""

    __slots__ = ("_callers", "_client_apps", "identities")

    def __init__(self, identities: Identities | None = None) -> None:
        self.identities = identities if identities is not None else Identities()
        self._callers = CallerCache(self.identities)
        self._client_apps = ClientApps()

    def attribute(self, record: RequestRecord, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Fill ``record``'s attribution fields from ASGI ``headers`` (lowercase names).

        Never raises on what a client sends: every value is bytes compared or
        hashed, never decoded but a validated session id.
        """
        # One dict built in C beats a Python loop over the headers: a request carries
        # 10 to 20 of them. A repeated header keeps its last value.
        get = dict(headers).get
        # ``credential_of(x-api-key, authorization)``, without its call when a key is sent.
        credential = get(b"x-api-key") or credential_of(None, get(b"authorization"))
        record.team, record.key_alias, record.key_fingerprint = self._callers.resolve(credential)
        user_agent, x_app, originator = get(b"user-agent"), get(b"x-app"), get(b"originator")
        app = None
        if x_app is None and originator is None:
            app = self._client_apps.by_user_agent.get(user_agent)
        if app is None:
            app = self._client_apps.classify(user_agent, x_app, originator)
        record.client_app = app
        session = get(CLAUDE_CODE_SESSION_HEADER)
        if session is None:
            session = get(CODEX_SESSION_HEADER)
        record.session_id = accept_session_id(session)
