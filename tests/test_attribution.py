"""Attribution end to end: every relayed request's record names its team, key, app and session.

The proxy runs on loopback in front of the mock upstream with an identity
file; the official Python SDKs and Claude Code's and Codex's headers go
through it on every API and a passed-through path, and the access-log line
of each request carries what the identity file and the headers say. An
instrumented app of a user's gets the same with ``instrument(identities=...)``
or the ``identities`` setting, and none of it without.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from asgi_server import serve_asgi
from prometheus_client import CollectorRegistry
from proxy_harness import ProxyUnderTest, request_body, running_proxy
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ccobs import instrument
from ccobs.attribution import Attribution
from ccobs.demo.upstream import Delay, UpstreamConfig, create_upstream_app
from ccobs.identity import Identities, Identity, credential_of, fingerprint
from ccobs.logging import configure_logging
from ccobs.metrics import PrometheusMetrics
from ccobs.record import RequestRecord
from ccobs.settings import ObservabilitySettings

ALICE_KEY = "sk-ant-api03-" + "Al1" * 30
BOB_KEY = "sk-proj-" + "B0b" * 20
STRANGER_KEY = "sk-ant-api03-" + "Zz9" * 30
SESSION = "3f2b1c9e-0a4d-4c1e-9b7a-1234567890ab"
CLAUDE_CODE = {"user-agent": "claude-cli/2.1.332 (external, cli)", "x-app": "cli"}
FAST = UpstreamConfig(
    seed=5, ttft=Delay(0.005), latency=Delay(0.005), inter_token_delay=0.0002, output_tokens=(3, 9)
)
ATTRIBUTION_FIELDS = ("team", "key_alias", "key_fingerprint", "client_app", "session_id")


@pytest.fixture
def identity_file(tmp_path: Path) -> Path:
    path = tmp_path / "identities.yaml"
    path.write_text(
        "keys:\n"
        f"  - {{fingerprint: '{fingerprint(ALICE_KEY)}', alias: alice, team: platform}}\n"
        f"  - {{fingerprint: '{fingerprint(BOB_KEY)}', alias: bob, team: research}}\n"
    )
    return path


@pytest.fixture
def upstream_url() -> Iterator[str]:
    with serve_asgi(create_upstream_app(FAST)) as upstream:
        yield upstream.url


@pytest.fixture
def proxy(
    isolated_logging: None, upstream_url: str, identity_file: Path
) -> Iterator[ProxyUnderTest]:
    with running_proxy(upstream_url, identities_path=identity_file) as proxy:
        yield proxy


def attribution(line: dict[str, Any]) -> dict[str, Any]:
    return {name: line.get(name) for name in ATTRIBUTION_FIELDS}


def only_line(proxy: ProxyUnderTest) -> dict[str, Any]:
    proxy.settle(1)
    (line,) = proxy.access_lines()
    return line


# -- the record, from raw headers ------------------------------------------------------------


def test_attribute_fills_every_field_from_raw_headers() -> None:
    record = RequestRecord()
    headers = [
        (b"x-api-key", ALICE_KEY.encode()),
        (b"user-agent", b"claude-cli/2.1.332 (external, cli)"),
        (b"x-app", b"cli"),
        (b"x-claude-code-session-id", SESSION.encode()),
    ]

    alice = Identity(fingerprint(ALICE_KEY), "alice", "platform")
    Attribution(Identities([alice])).attribute(record, headers)

    assert (record.team, record.key_alias, record.key_fingerprint) == (
        "platform",
        "alice",
        fingerprint(ALICE_KEY),
    )
    assert (record.client_app, record.session_id) == ("claude-code", SESSION)


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-api-key", b"sk-a"), (b"authorization", b"Bearer sk-b")],
        [(b"x-api-key", b""), (b"authorization", b"Bearer sk-b")],
        [(b"authorization", b"Bearer  sk-b ")],
        [(b"authorization", b"Basic abc")],
        [(b"x-api-key", b"")],
        [],
    ],
    ids=["key-first", "empty-key-then-bearer", "bearer", "basic", "empty-key", "none"],
)
def test_the_caller_is_the_one_credential_of_names(headers: list[tuple[bytes, bytes]]) -> None:
    record = RequestRecord()
    get = dict(headers).get
    expected = Identities().resolve_credential(
        credential_of(get(b"x-api-key"), get(b"authorization"))
    )

    Attribution().attribute(record, headers)

    assert (record.team, record.key_alias, record.key_fingerprint) == expected


def test_codexs_session_id_header_is_its_session() -> None:
    record = RequestRecord()

    Attribution().attribute(record, [(b"originator", b"codex_exec"), (b"session-id", b"s-1")])

    assert (record.client_app, record.session_id) == ("codex", "s-1")


def test_a_malformed_session_id_is_dropped() -> None:
    record = RequestRecord()

    Attribution().attribute(record, [(b"x-claude-code-session-id", b"x\r\ninjected: 1")])

    assert record.session_id is None


# -- the proxy -------------------------------------------------------------------------------


def test_anthropic_sdk_messages_are_attributed_to_the_named_key(proxy: ProxyUnderTest) -> None:
    client = anthropic.Anthropic(base_url=proxy.url, api_key=ALICE_KEY, max_retries=0)
    client.messages.create(**request_body("anthropic"))

    assert attribution(only_line(proxy)) == {
        "team": "platform",
        "key_alias": "alice",
        "key_fingerprint": fingerprint(ALICE_KEY),
        "client_app": "anthropic-sdk-python",
        "session_id": None,
    }


def test_openai_sdk_chat_completions_are_attributed_by_bearer_token(
    proxy: ProxyUnderTest,
) -> None:
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=BOB_KEY, max_retries=0)
    client.chat.completions.create(**request_body("openai"))

    line = only_line(proxy)
    assert (line["team"], line["key_alias"], line["client_app"]) == (
        "research",
        "bob",
        "openai-python",
    )


def test_codex_like_responses_are_attributed_with_their_session(proxy: ProxyUnderTest) -> None:
    httpx.post(
        proxy.url + "/v1/responses",
        json={"model": "gpt-4.1-mini", "input": "x", "max_output_tokens": 20},
        headers={
            "authorization": f"Bearer {BOB_KEY}",
            "originator": "codex_exec",
            "user-agent": "codex_exec/0.171.0 (Debian 12; x86_64)",
            "session-id": SESSION,
        },
        timeout=10,
    )

    line = only_line(proxy)
    assert (line["key_alias"], line["client_app"], line["session_id"]) == ("bob", "codex", SESSION)


def test_claude_code_like_streams_are_attributed_with_their_session(proxy: ProxyUnderTest) -> None:
    with httpx.stream(
        "POST",
        proxy.url + "/v1/messages?beta=true",
        json=request_body("anthropic", stream=True),
        headers={**CLAUDE_CODE, "x-api-key": ALICE_KEY, "x-claude-code-session-id": SESSION},
        timeout=10,
    ) as response:
        response.read()

    line = only_line(proxy)
    assert (line["key_alias"], line["client_app"], line["session_id"]) == (
        "alice",
        "claude-code",
        SESSION,
    )


def test_passed_through_paths_are_attributed(proxy: ProxyUnderTest) -> None:
    httpx.get(
        proxy.url + "/v1/models",
        headers={"x-api-key": ALICE_KEY, "user-agent": "claude-code/2.1.332"},
        timeout=10,
    )

    line = only_line(proxy)
    assert (line["endpoint"], line["key_alias"], line["client_app"]) == (
        "/v1/models",
        "alice",
        "claude-code",
    )


def test_requests_the_proxy_rejects_itself_are_attributed(proxy: ProxyUnderTest) -> None:
    httpx.post(
        proxy.url + "/v1/messages",
        content=b"not json",
        headers={"x-api-key": ALICE_KEY, "user-agent": "curl/8.5.0"},
        timeout=10,
    )

    line = only_line(proxy)
    assert (line["status"], line["key_alias"], line["client_app"]) == (400, "alice", "curl")


def test_an_unnamed_key_is_unassigned_under_its_fingerprint_alias(proxy: ProxyUnderTest) -> None:
    httpx.post(
        proxy.url + "/v1/messages",
        json=request_body("anthropic"),
        headers={"x-api-key": STRANGER_KEY},
        timeout=10,
    )

    line = only_line(proxy)
    assert (line["team"], line["key_alias"], line["key_fingerprint"]) == (
        "unassigned",
        f"key-{fingerprint(STRANGER_KEY)[:8]}",
        fingerprint(STRANGER_KEY),
    )


def test_a_request_without_a_key_is_anonymous(proxy: ProxyUnderTest) -> None:
    httpx.post(proxy.url + "/v1/messages", json=request_body("anthropic"), timeout=10)

    line = only_line(proxy)
    assert (line["team"], line["key_alias"], line.get("key_fingerprint")) == (
        "unassigned",
        "anonymous",
        None,
    )


def test_without_an_identity_file_every_caller_is_unassigned(
    isolated_logging: None, upstream_url: str
) -> None:
    with running_proxy(upstream_url) as proxy:
        httpx.post(
            proxy.url + "/v1/messages",
            json=request_body("anthropic"),
            headers={"x-api-key": ALICE_KEY},
            timeout=10,
        )
        line = only_line(proxy)

    assert (line["team"], line["key_alias"]) == ("unassigned", f"key-{fingerprint(ALICE_KEY)[:8]}")


def test_ccobs_proxy_refuses_to_start_with_a_bad_identity_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("keys:\n  - {fingerprint: nothex, alias: a, team: t}\n")

    done = subprocess.run(
        [sys.executable, "-m", "ccobs.cli", "proxy", "--port", "0", "--identities", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2
    assert f"{bad}:2: keys[0].fingerprint: malformed fingerprint" in done.stderr


# -- a user's instrumented app ---------------------------------------------------------------


def _users_app() -> Starlette:
    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/hello", hello)])


def _line_of_one_request(app: Starlette, headers: dict[str, str]) -> dict[str, Any]:
    logs = io.StringIO()
    configure_logging("INFO", "json", stream=logs)
    with serve_asgi(app) as server:
        httpx.get(server.url + "/hello", headers=headers, timeout=10)
    (line,) = [
        json.loads(text)
        for text in logs.getvalue().splitlines()
        if json.loads(text).get("event") == "request_success"
    ]
    return line


def test_instrument_with_identities_attributes_a_users_requests(
    isolated_logging: None, identity_file: Path
) -> None:
    app = _users_app()
    instrument(
        app,
        PrometheusMetrics(registry=CollectorRegistry()),
        identities=Identities.load(identity_file),
    )

    line = _line_of_one_request(app, {"x-api-key": ALICE_KEY, "user-agent": "curl/8.5.0"})

    assert (line["team"], line["key_alias"], line["client_app"]) == ("platform", "alice", "curl")


def test_the_identities_setting_attributes_a_users_requests(
    isolated_logging: None, identity_file: Path
) -> None:
    app = _users_app()
    settings = ObservabilitySettings(identities=str(identity_file))
    instrument(app, PrometheusMetrics(registry=CollectorRegistry(), settings=settings), settings)

    line = _line_of_one_request(app, {"x-api-key": ALICE_KEY})

    assert line["key_alias"] == "alice"


def test_instrument_without_identities_attributes_nothing(isolated_logging: None) -> None:
    app = _users_app()
    instrument(app, PrometheusMetrics(registry=CollectorRegistry()))

    line = _line_of_one_request(app, {"x-api-key": ALICE_KEY, "user-agent": "curl/8.5.0"})

    assert not set(ATTRIBUTION_FIELDS) & set(line)
