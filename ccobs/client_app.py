"""Which client application sent a request: one of a fixed set, so it can be a label.

Told from the headers clients send of their own accord (checked against the
real clients in ``tests/clients`` and the SDKs installed beside ccobs):

- Claude Code: ``user-agent: claude-cli/<ver> (external, <entrypoint>)`` and
  ``x-app: cli`` on its messages; ``user-agent: claude-code/<ver>`` on its
  model listing;
- Codex CLI: ``originator: codex_exec`` (``codex_cli_rs`` interactively) and
  ``user-agent: codex_exec/<ver> ...``;
- the official SDKs: ``<Client class>/Python <ver>`` or ``<Client class>/JS <ver>``,
  where the class is ``Anthropic``, ``AsyncAnthropic``, ``AnthropicBedrock``...,
  or ``OpenAI``, ``AsyncOpenAI``, ``AzureOpenAI``...;
- curl: ``curl/<ver>``.

Anything else, or no user agent, is ``other``. Every comparison is on the
header's bytes as received: a prefix test or two per request, no decoding.
"""

from __future__ import annotations

from typing import Final

from ccobs.catalog import CLIENT_APPS

__all__ = ["CLIENT_APPS", "ClientApps", "classify_client_app"]

CLAUDE_CODE: Final = "claude-code"
CODEX: Final = "codex"
ANTHROPIC_SDK_PYTHON: Final = "anthropic-sdk-python"
ANTHROPIC_SDK_TYPESCRIPT: Final = "anthropic-sdk-typescript"
OPENAI_PYTHON: Final = "openai-python"
OPENAI_NODE: Final = "openai-node"
CURL: Final = "curl"
OTHER: Final = "other"

_CLAUDE_CODE_AGENTS = (b"claude-cli/", b"claude-code/")
_CODEX = b"codex"
_CURL = b"curl/"
_SDK_FLAVOURS: Final[dict[bytes, tuple[str, str]]] = {
    # The word after the client class's slash -> (Anthropic's SDK, OpenAI's SDK).
    b"Python": (ANTHROPIC_SDK_PYTHON, OPENAI_PYTHON),
    b"JS": (ANTHROPIC_SDK_TYPESCRIPT, OPENAI_NODE),
}


def classify_client_app(
    user_agent: bytes | None, x_app: bytes | None = None, originator: bytes | None = None
) -> str:
    """The ``client_app`` of a request with these header values (None: header absent)."""
    if originator is not None and originator.startswith(_CODEX):
        return CODEX
    if x_app == b"cli":
        return CLAUDE_CODE
    if user_agent is None:
        return OTHER
    if user_agent.startswith(_CLAUDE_CODE_AGENTS):
        return CLAUDE_CODE
    if user_agent.startswith(_CODEX):
        return CODEX
    if user_agent.startswith(_CURL):
        return CURL
    product, slash, rest = user_agent.partition(b"/")
    if slash:
        flavour = _SDK_FLAVOURS.get(rest.partition(b" ")[0])
        if flavour is not None:
            if b"Anthropic" in product:
                return flavour[0]
            if b"OpenAI" in product:
                return flavour[1]
    return OTHER


MAX_KNOWN_USER_AGENTS: Final = 256
"""User agents :class:`ClientApps` remembers; past it, new ones are classified every time."""
MAX_KNOWN_USER_AGENT_BYTES: Final = 256
"""Longer user agents are never remembered, so the memory stays under 256 x 256 bytes."""


class ClientApps:
    """:func:`classify_client_app`, remembered by user agent for requests that send only that.

    A proxy sees a few user agents again and again (a client's version changes now
    and then); looking one up costs less than its prefix tests. Only requests
    without ``x-app`` and ``originator`` are remembered, by their user agent alone,
    the others classified each time (those headers decide before the user agent).
    Reads take no lock: a dict's ``get`` and item assignment are single C calls.
    """

    __slots__ = ("by_user_agent",)

    def __init__(self) -> None:
        self.by_user_agent: dict[bytes | None, str] = {}
        """User agent (None: absent) -> client app; the caller may read it directly."""

    def classify(
        self, user_agent: bytes | None, x_app: bytes | None = None, originator: bytes | None = None
    ) -> str:
        """The ``client_app`` of these header values, remembering a user agent sent alone."""
        app = classify_client_app(user_agent, x_app, originator)
        known = self.by_user_agent
        if (
            x_app is None
            and originator is None
            and len(known) < MAX_KNOWN_USER_AGENTS
            and (user_agent is None or len(user_agent) <= MAX_KNOWN_USER_AGENT_BYTES)
        ):
            known[user_agent] = app
        return app
