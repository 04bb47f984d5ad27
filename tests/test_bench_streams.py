"""Smoke test of the streams benchmark (``benchmarks/streams.py``): 20 streams for 2 s.

The benchmark itself runs thousands of streams for minutes (``make
bench-streams``); this checks that its pieces (the stamping mock, ``ccobs
proxy``, the load generator and the accounting it compares) work together,
so a figure in ``RESULTS.md`` can be reproduced.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import streams

STREAMS = 20
INTERVAL = 0.05
DURATION = 2.0
EVENTS = round(DURATION / INTERVAL)


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    data = streams.run([STREAMS], [1], INTERVAL, DURATION, ramp=0.5, direct=False)
    result: dict[str, Any] = data["runs"][str(STREAMS)]["workers_1"]
    return result


def test_every_stream_ends_whole_through_the_proxy(run: dict[str, Any]) -> None:
    assert run["failed"] == {}
    assert run["completed"] == STREAMS


def test_every_stamped_event_reaches_the_client_with_its_delay(run: dict[str, Any]) -> None:
    assert run["stamped_events"] == STREAMS * EVENTS
    assert 0 <= run["delay_ms"]["p50"] <= run["delay_ms"]["p99"]


def test_tokens_total_grows_by_exactly_the_tokens_the_clients_saw(run: dict[str, Any]) -> None:
    assert run["client_tokens"] > 0
    assert run["miscounted_tokens"] == 0


def test_proxy_cost_and_scrape_time_are_measured(run: dict[str, Any]) -> None:
    assert run["proxy_cpu_per_event_us"] > 0
    assert run["upstream_cpu_per_event_us"] > 0
    assert run["scrapes"]
    assert run["scrape_errors"] == []
