"""The demo's callers: seven keys across three teams, each sent as the client app it would be.

So that ``ccobs demo`` shows attribution, the load generator sends each
request as one of these callers: its key (``x-api-key`` to the Anthropic API,
a bearer token to OpenAI's), and the headers its client sends (Claude Code's
user agent, ``x-app: cli`` and a session id; Codex's originator and session;
the SDKs' user agents; curl's). ``identities.yaml`` beside this module names
six of the keys by fingerprint; the seventh is left out, to show ``unassigned``.

The keys are fake and only ever reach the mock upstream.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ccobs.proxy.usage import Api

__all__ = ["DEMO_CALLERS", "DEMO_IDENTITIES", "Caller", "CallerPicker"]

DEMO_IDENTITIES: Final = Path(__file__).with_name("identities.yaml")
"""The identity file ``ccobs demo`` loads unless told another."""

_SESSIONS_PER_CALLER = 3
_SESSION_NAMESPACE = uuid.UUID("6d1f8a52-3c47-4e0b-9a1d-2f6b7c8e9d01")


@dataclass(frozen=True)
class Caller:
    """One demo key and the client that sends it."""

    name: str
    key: str
    apis: tuple[Api, ...]
    headers: Mapping[str, str]
    session_header: str | None = None
    """Where this client sends its session id; None: it sends none."""
    subscription: bool = False
    """Signs in like a Claude subscription client: its key (an OAuth ``sk-ant-oat01-``
    token) goes as a bearer token to the Anthropic API too."""

    def request_headers(self, api: Api, session: int) -> dict[str, str]:
        """The headers of one request to ``api`` in session number ``session``."""
        headers = dict(self.headers)
        if api == "anthropic" and not self.subscription:
            headers["x-api-key"] = self.key
        else:
            headers["authorization"] = f"Bearer {self.key}"
        if self.session_header is not None:
            headers[self.session_header] = str(
                uuid.uuid5(_SESSION_NAMESPACE, f"{self.name}/{session}")
            )
        return headers


def _key(prefix: str, name: str) -> str:
    return f"{prefix}demo-{name}-" + uuid.uuid5(_SESSION_NAMESPACE, name).hex


DEMO_CALLERS: Final[tuple[Caller, ...]] = (
    Caller(
        "alice",
        _key("sk-ant-api03-", "alice"),
        ("anthropic",),
        {"user-agent": "claude-cli/2.1.332 (external, cli)", "x-app": "cli"},
        session_header="x-claude-code-session-id",
    ),
    Caller(
        "bob",
        _key("sk-proj-", "bob"),
        ("openai", "responses"),  # Codex speaks Chat Completions too (wire_api = "chat")
        {"user-agent": "codex_exec/0.171.0 (Debian 12; x86_64)", "originator": "codex_exec"},
        session_header="session-id",
    ),
    Caller(
        "carol",
        _key("sk-ant-api03-", "carol"),
        ("anthropic",),
        {"user-agent": "Anthropic/Python 0.69.0", "x-stainless-lang": "python"},
    ),
    Caller(
        "dave",
        _key("sk-proj-", "dave"),
        ("openai", "responses"),
        {"user-agent": "OpenAI/Python 1.109.1", "x-stainless-lang": "python"},
    ),
    Caller(
        "erin",
        _key("sk-ant-api03-", "erin"),
        ("anthropic", "openai"),
        {"user-agent": "curl/8.5.0"},
    ),
    Caller(
        "frank",
        _key("sk-ant-oat01-", "frank"),
        ("anthropic",),
        {"user-agent": "claude-cli/2.1.332 (external, cli)", "x-app": "cli"},
        session_header="x-claude-code-session-id",
        subscription=True,
    ),
    Caller(
        "contractor",
        _key("sk-ant-api03-", "contractor"),
        ("anthropic",),
        {"user-agent": "Anthropic/JS 0.60.0", "x-stainless-lang": "js"},
    ),
)
"""alice, bob and frank (Claude Code on a subscription) are team platform, carol and dave
research, erin data (identities.yaml); the contractor's key is in no file: ``unassigned``."""


class CallerPicker:
    """Draws the caller of each request from its own seeded RNG.

    Its own, so the load generator's other draws (API, model, prompt) stay
    what a seed made them before callers existed.
    """

    def __init__(self, callers: Sequence[Caller], seed: int | None) -> None:
        self._rng = random.Random(None if seed is None else f"callers-{seed}")
        self._by_api: dict[str, list[Caller]] = {}
        for caller in callers:
            for api in caller.apis:
                self._by_api.setdefault(api, []).append(caller)

    def headers(self, api: Api) -> dict[str, str]:
        """The headers of a caller of ``api``, in one of its sessions; none if none calls it."""
        callers = self._by_api.get(api)
        if not callers:
            return {}
        caller = self._rng.choice(callers)
        return caller.request_headers(api, self._rng.randrange(_SESSIONS_PER_CALLER))
