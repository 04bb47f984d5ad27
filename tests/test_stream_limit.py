"""When the streams benchmark's limit search calls a run broken down (benchmarks/stream_limit.py).

The limit it reports is the last N before a breakdown, so the criterion is the
figure's definition: any stream failed or miscounted, or the added delay's p99
past ``ADDED_P99_LIMIT_MS``.
"""

from __future__ import annotations

from typing import Any

from benchmarks.stream_limit import ADDED_P50_LIMIT_MS, ADDED_P99_LIMIT_MS, breakdown, summary


def _run(p99: float, completed: int = 10, failed: dict[str, int] | None = None,
         miscounted: float = 0.0) -> dict[str, Any]:  # fmt: skip
    return {
        "streams": 10,
        "completed": completed,
        "failed": failed or {},
        "delay_ms": {"p50": 1.0, "p99": p99},
        "miscounted_tokens": miscounted,
    }


DIRECT = _run(5.0)


def test_a_run_whose_streams_all_end_in_time_holds() -> None:
    assert breakdown(_run(5.0 + ADDED_P99_LIMIT_MS), DIRECT) is None


def test_an_added_delay_p99_past_the_limit_is_a_breakdown() -> None:
    why = breakdown(_run(6.0 + ADDED_P99_LIMIT_MS), DIRECT)
    assert why is not None
    assert "added delay p99" in why


def test_a_raised_p99_limit_lets_a_tail_through() -> None:
    assert breakdown(_run(6.0 + ADDED_P99_LIMIT_MS), DIRECT, max_added_p99_ms=500) is None


def test_an_added_delay_p50_past_its_limit_is_a_breakdown() -> None:
    run = _run(10.0)
    run["delay_ms"]["p50"] = DIRECT["delay_ms"]["p50"] + ADDED_P50_LIMIT_MS + 1
    why = breakdown(run, DIRECT, max_added_p99_ms=500)
    assert why is not None
    assert "added delay p50" in why


def test_a_stream_ending_late_is_a_breakdown() -> None:
    run = _run(5.0)
    run["late_seconds"] = 2.5
    assert breakdown(run, DIRECT) == "the last stream ended 2.5 s late"


def test_a_failed_stream_is_a_breakdown() -> None:
    why = breakdown(_run(5.0, completed=9, failed={"status 504": 1}), DIRECT)
    assert why == "1 streams failed (1 status 504)"


def test_miscounted_tokens_are_a_breakdown() -> None:
    assert breakdown(_run(5.0, miscounted=3), DIRECT) == "tokens miscounted by +3"


def test_a_hung_load_generator_is_a_breakdown() -> None:
    assert breakdown({"hung": True}, DIRECT) == "the load generator hung"


def test_the_summary_names_the_last_n_that_held_and_why_the_next_broke() -> None:
    limits = {
        "workers_1": {"held": 400, "broke_at": 600, "why": "added delay p99 340 ms > 100 ms"},
        "workers_2": {"held": 800, "broke_at": None, "why": None},
    }
    assert summary(limits) == [
        "- workers 1: 400 streams held; 600 broke down: added delay p99 340 ms > 100 ms.",
        "- workers 2: 800 streams held; the largest N tried held.",
    ]
