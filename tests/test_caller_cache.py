"""The callers of recent credentials: the identities' answer, bounded, and no key kept."""

from __future__ import annotations

import gc

from ccobs.caller_cache import CallerCache
from ccobs.client_app import (
    MAX_KNOWN_USER_AGENT_BYTES,
    MAX_KNOWN_USER_AGENTS,
    ClientApps,
    classify_client_app,
)
from ccobs.identity import Identities, Identity, fingerprint

NAMED_KEY = b"sk-ant-api03-named-" + b"n" * 40
UNNAMED_KEY = b"sk-ant-api03-unnamed-" + b"u" * 40
IDENTITIES = Identities([Identity(fingerprint(NAMED_KEY), "alice", "platform")])


def test_a_cached_caller_is_what_the_identities_resolve() -> None:
    cache = CallerCache(IDENTITIES)

    for credential in (NAMED_KEY, UNNAMED_KEY, None, NAMED_KEY, UNNAMED_KEY, None):
        assert cache.resolve(credential) == IDENTITIES.resolve_credential(credential)


def test_the_cache_holds_at_most_its_capacity_of_credentials() -> None:
    cache = CallerCache(IDENTITIES, capacity=3)

    for i in range(10):
        cache.resolve(b"sk-ant-api03-rotating-%d" % i)

    assert len(cache) == 3


def test_the_least_recently_used_credential_goes_first() -> None:
    cache = CallerCache(IDENTITIES, capacity=2)
    cache.resolve(NAMED_KEY)
    cache.resolve(UNNAMED_KEY)
    cache.resolve(NAMED_KEY)  # used again: now the most recent
    cache.resolve(b"sk-ant-api03-third-" + b"t" * 40)  # pushes UNNAMED_KEY out

    assert reachable_bytes_and_text(cache).isdisjoint({fingerprint(UNNAMED_KEY)})
    assert fingerprint(NAMED_KEY) in reachable_bytes_and_text(cache)


def reachable_bytes_and_text(root: object, depth: int = 6) -> set[object]:
    """Every bytes and str object reachable from ``root`` within ``depth`` references."""
    found: set[object] = set()
    frontier = [root]
    for _ in range(depth):
        frontier = [ref for obj in frontier for ref in gc.get_referents(obj)]
        found.update(obj for obj in frontier if isinstance(obj, bytes | str))
    return found


def test_the_cache_keeps_no_credential() -> None:
    cache = CallerCache(IDENTITIES)
    for credential in (NAMED_KEY, UNNAMED_KEY):
        cache.resolve(credential)

    kept = reachable_bytes_and_text(cache)
    assert not any(
        key in obj if isinstance(obj, bytes) else key.decode() in obj
        for obj in kept
        for key in (NAMED_KEY, UNNAMED_KEY)
    )


USER_AGENTS = [
    None,
    b"claude-cli/2.0.14 (external, cli)",
    b"Anthropic/Python 0.69.0",
    b"AsyncOpenAI/JS 5.1.0",
    b"curl/8.5.0",
    b"codex_exec/0.40.0",
    b"bench/1.0",
]


def test_client_apps_remembered_or_not_are_what_the_classifier_says() -> None:
    apps = ClientApps()

    for _ in range(2):
        for user_agent in USER_AGENTS:
            for x_app, originator in ((None, None), (b"cli", None), (None, b"codex_exec")):
                expected = classify_client_app(user_agent, x_app, originator)
                assert apps.classify(user_agent, x_app, originator) == expected
                if x_app is None and originator is None:
                    assert apps.by_user_agent[user_agent] == expected


def test_a_user_agent_sent_with_x_app_or_originator_is_not_remembered() -> None:
    apps = ClientApps()
    apps.classify(b"bench/1.0", b"cli")
    apps.classify(b"bench/1.0", None, b"codex_exec")

    assert b"bench/1.0" not in apps.by_user_agent


def test_remembered_user_agents_are_bounded_in_number_and_length() -> None:
    apps = ClientApps()
    apps.classify(b"x" * (MAX_KNOWN_USER_AGENT_BYTES + 1))
    for i in range(MAX_KNOWN_USER_AGENTS + 10):
        apps.classify(b"agent/%d" % i)

    assert len(apps.by_user_agent) == MAX_KNOWN_USER_AGENTS
    assert all(len(agent or b"") <= MAX_KNOWN_USER_AGENT_BYTES for agent in apps.by_user_agent)
