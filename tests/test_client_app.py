"""Client app: each known client's headers give its name; anything else is ``other``.

The user agents of the SDKs are taken from the SDKs installed beside ccobs
(not retyped), and those of Claude Code and Codex CLI as their real binaries
send them (``tests/test_real_clients.py`` pins them with a recorder).
"""

from __future__ import annotations

import anthropic
import openai
import pytest

from ccobs.catalog import CLIENT_APPS
from ccobs.client_app import classify_client_app


def _sdk_user_agent(client: object) -> bytes:
    user_agent = client.user_agent  # type: ignore[attr-defined]
    assert isinstance(user_agent, str)
    return user_agent.encode()


def test_client_apps_are_the_contracts_fixed_set() -> None:
    assert CLIENT_APPS == (
        "claude-code",
        "codex",
        "anthropic-sdk-python",
        "anthropic-sdk-typescript",
        "openai-python",
        "openai-node",
        "curl",
        "other",
    )


def test_claude_code_is_told_by_its_user_agent_and_x_app() -> None:
    assert classify_client_app(b"claude-cli/2.1.332 (external, sdk-cli)", b"cli") == "claude-code"


def test_claude_code_is_told_by_x_app_alone() -> None:
    assert classify_client_app(b"Bun/1.4.6", b"cli") == "claude-code"


def test_claude_codes_model_listing_user_agent_is_claude_code() -> None:
    assert classify_client_app(b"claude-code/2.1.332") == "claude-code"


def test_codex_is_told_by_its_originator() -> None:
    assert classify_client_app(b"something/1.0", None, b"codex_exec") == "codex"


def test_codex_is_told_by_its_user_agent() -> None:
    assert classify_client_app(b"codex_exec/0.171.0 (Debian 12.0.0; x86_64) dumb") == "codex"


@pytest.mark.parametrize("cls", [anthropic.Anthropic, anthropic.AsyncAnthropic])
def test_the_installed_anthropic_python_sdk_is_anthropic_sdk_python(cls: type) -> None:
    user_agent = _sdk_user_agent(cls(api_key="k"))

    assert classify_client_app(user_agent) == "anthropic-sdk-python", user_agent


@pytest.mark.parametrize("cls", [openai.OpenAI, openai.AsyncOpenAI])
def test_the_installed_openai_python_sdk_is_openai_python(cls: type) -> None:
    user_agent = _sdk_user_agent(cls(api_key="k"))

    assert classify_client_app(user_agent) == "openai-python", user_agent


def test_azure_openai_from_the_python_sdk_is_openai_python() -> None:
    client = openai.AzureOpenAI(
        api_key="k", api_version="2024-06-01", azure_endpoint="https://x.invalid"
    )

    assert classify_client_app(_sdk_user_agent(client)) == "openai-python"


def test_the_anthropic_typescript_sdk_is_anthropic_sdk_typescript() -> None:
    assert classify_client_app(b"Anthropic/JS 0.60.0") == "anthropic-sdk-typescript"


def test_the_openai_node_sdk_is_openai_node() -> None:
    assert classify_client_app(b"OpenAI/JS 5.12.0") == "openai-node"


def test_curl_is_curl() -> None:
    assert classify_client_app(b"curl/8.5.0") == "curl"


@pytest.mark.parametrize(
    "user_agent",
    [
        None,
        b"",
        b"python-httpx/0.28.1",
        b"Mozilla/5.0 (X11; Linux x86_64)",
        b"Anthropic",
        b"MyAnthropicWrapper/Ruby 1.0",
        b"\xff\xfe/\x00",
        b"x" * 10_000,
    ],
)
def test_anything_else_is_other(user_agent: bytes | None) -> None:
    assert classify_client_app(user_agent) == "other"


def test_every_answer_is_in_the_fixed_set() -> None:
    agents = [b"claude-cli/1", b"codex_exec/1", b"Anthropic/JS 1", b"OpenAI/Python 1", b"curl/1"]

    assert {classify_client_app(agent) for agent in agents} <= set(CLIENT_APPS)
