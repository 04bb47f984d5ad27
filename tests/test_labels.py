"""LabelGuard: every label value set is bounded, whatever the callers send."""

from __future__ import annotations

import threading

from ccobs.labels import LabelGuard, truncate


def test_values_pass_until_the_cap_then_become_other() -> None:
    guard = LabelGuard("model", 2)

    assert [guard(v) for v in ("a", "b", "c", "a", "d")] == ["a", "b", "other", "a", "other"]
    assert guard.distinct_values == 2


def test_none_and_empty_are_unknown_and_do_not_use_the_cap() -> None:
    guard = LabelGuard("model", 1)

    assert guard(None) == "unknown"
    assert guard("") == "unknown"
    assert guard("a") == "a"


def test_allowlist_admits_only_listed_values() -> None:
    guard = LabelGuard("model", 100, allowlist=["claude-sonnet-4-5"])

    assert guard("claude-sonnet-4-5") == "claude-sonnet-4-5"
    assert guard("claude-sonnet-4-5-evil") == "other"


def test_integers_resolve_to_their_text() -> None:
    guard = LabelGuard("status", 10)

    assert guard(200) == "200"
    assert guard("200") == "200"


def test_long_values_are_truncated() -> None:
    assert LabelGuard("endpoint", 5, max_length=4)("abcdefgh") == "abcd"
    assert truncate("abc", 10) == "abc"


def test_overflow_callback_names_the_label() -> None:
    seen: list[str] = []
    guard = LabelGuard("model", 1, on_overflow=seen.append)
    guard("a")
    guard("b")
    guard("c")

    assert seen == ["model", "model"]


def test_memory_is_bounded_under_a_flood_of_values() -> None:
    guard = LabelGuard("model", 10)
    for i in range(100_000):
        guard(f"flood-{i}")

    assert len(guard._resolved) == 10


def test_concurrent_callers_never_exceed_the_cap() -> None:
    guard = LabelGuard("model", 50)

    def flood(offset: int) -> None:
        for i in range(2_000):
            guard(f"v{offset}-{i}")

    threads = [threading.Thread(target=flood, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert guard.distinct_values == 50
