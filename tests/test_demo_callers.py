"""The demo's traffic shows attribution: several teams, client apps and sessions, one unassigned.

The load generator sends each request as one of the demo's callers; through
the proxy with the demo's identity file, the access log names three teams and
``unassigned``, six client apps, and Claude Code's and Codex's sessions.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest
from asgi_server import serve_asgi
from proxy_harness import ProxyUnderTest, running_proxy

from ccobs.demo.callers import DEMO_CALLERS, DEMO_IDENTITIES, CallerPicker
from ccobs.demo.loadgen import LoadConfig, _Planner, run_load
from ccobs.demo.runner import DEMO_MODELS, DEMO_OPENAI_MODELS
from ccobs.demo.upstream import Delay, UpstreamConfig, create_upstream_app
from ccobs.identity import Identities, fingerprint

FAST = UpstreamConfig(
    seed=3, ttft=Delay(0.002), latency=Delay(0.002), inter_token_delay=0.0001, output_tokens=(2, 6)
)
REQUESTS = 120


def test_the_demo_identity_file_names_every_demo_key_but_one() -> None:
    identities = Identities.load(DEMO_IDENTITIES)
    named = {identity.fingerprint for identity in identities.identities}

    unnamed = [caller.name for caller in DEMO_CALLERS if fingerprint(caller.key) not in named]

    assert unnamed == ["contractor"]
    assert identities.teams == ("platform", "research", "data")


def test_callers_leave_the_load_generators_other_draws_as_the_seed_made_them() -> None:
    plain = LoadConfig(target="http://x", concurrency=1, requests=1, openai_share=0.3, seed=9)
    with_callers = LoadConfig(
        target="http://x", concurrency=1, requests=1, openai_share=0.3, seed=9,
        callers=DEMO_CALLERS,
    )  # fmt: skip
    a, b = _Planner(plain), _Planner(with_callers)

    for _ in range(50):
        left, right = a.next(), b.next()
        assert (left.api, left.model, left.body) == (right.api, right.model, right.body)
        assert right.headers


def test_a_caller_sends_its_key_as_its_api_expects() -> None:
    picker = CallerPicker(DEMO_CALLERS, seed=1)

    assert "x-api-key" in picker.headers("anthropic")
    assert picker.headers("responses")["authorization"].startswith("Bearer sk-proj-")


@pytest.fixture(scope="module")
def demo_lines() -> Iterator[list[dict[str, object]]]:
    from conftest import restored_logging

    with restored_logging(), serve_asgi(create_upstream_app(FAST)) as upstream:
        proxy: ProxyUnderTest
        with running_proxy(upstream.url, identities_path=DEMO_IDENTITIES) as proxy:
            load = LoadConfig(
                target=proxy.url,
                concurrency=8,
                requests=REQUESTS,
                models=DEMO_MODELS,
                openai_models=DEMO_OPENAI_MODELS,
                openai_share=0.25,
                responses_share=0.1,
                seed=4,
                callers=DEMO_CALLERS,
            )
            asyncio.run(run_load(load))
            proxy.settle(REQUESTS)
            yield proxy.access_lines()


def test_the_demo_traffic_spans_three_teams_and_unassigned(
    demo_lines: list[dict[str, object]],
) -> None:
    assert set(Counter(line["team"] for line in demo_lines)) == {
        "platform",
        "research",
        "data",
        "unassigned",
    }


def test_the_demo_traffic_comes_from_six_client_apps(demo_lines: list[dict[str, object]]) -> None:
    assert {line["client_app"] for line in demo_lines} == {
        "claude-code",
        "codex",
        "anthropic-sdk-python",
        "anthropic-sdk-typescript",
        "openai-python",
        "curl",
    }


def test_claude_code_and_codex_requests_carry_sessions(
    demo_lines: list[dict[str, object]],
) -> None:
    sessions = {
        line["client_app"]: line.get("session_id")
        for line in demo_lines
        if line["client_app"] in ("claude-code", "codex")
    }

    assert all(sessions.values()), sessions
    assert len(sessions) == 2


def test_the_unnamed_key_is_unassigned_under_its_fingerprint_alias(
    demo_lines: list[dict[str, object]],
) -> None:
    contractor = next(caller for caller in DEMO_CALLERS if caller.name == "contractor")

    aliases = {line["key_alias"] for line in demo_lines if line["team"] == "unassigned"}

    assert aliases == {f"key-{fingerprint(contractor.key)[:8]}"}
