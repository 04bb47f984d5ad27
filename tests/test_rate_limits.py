"""Reading rate-limit headers: the vendors' documented sets, and what is refused."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from rate_limit_headers import (
    ANTHROPIC,
    ANTHROPIC_VALUES,
    GARBAGE,
    GARBAGE_FIELDS,
    NOW,
    OPENAI,
    OPENAI_VALUES,
    UNIFIED,
    UNIFIED_VALUES,
    raw,
)

from ccobs.metrics import PrometheusMetrics
from ccobs.rate_limit_metrics import KEY_ALIAS_CAP, RateLimitGauges
from ccobs.rate_limits import RateLimitReading, read_rate_limits


def limits_of(reading: RateLimitReading | None) -> dict[tuple[str, str], float]:
    assert reading is not None
    values: dict[tuple[str, str], float] = {}
    for kind, entry in reading.limits.items():
        for what, value in (
            ("limit", entry.limit),
            ("remaining", entry.remaining),
            ("reset", entry.reset_at),
        ):
            if value is not None:
                values[(kind, what)] = value
    return values


def test_anthropic_headers_give_four_limit_kinds_with_their_reset_times() -> None:
    reading = read_rate_limits(raw(ANTHROPIC), NOW)

    assert reading is not None
    assert reading.api == "anthropic"
    assert limits_of(reading) == pytest.approx(ANTHROPIC_VALUES)


def test_openai_headers_give_requests_and_tokens_with_durations_turned_into_times() -> None:
    reading = read_rate_limits(raw(OPENAI), NOW)

    assert reading is not None
    assert reading.api == "openai"
    assert limits_of(reading) == pytest.approx(OPENAI_VALUES)


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [("12ms", 0.012), ("1.5s", 1.5), ("6m0s", 360.0), ("1h2m3s", 3723.0), ("20", 20.0)],
)
def test_openai_reset_durations_are_read_in_every_go_form(duration: str, seconds: float) -> None:
    reading = read_rate_limits([(b"x-ratelimit-reset-tokens", duration.encode())], NOW)

    assert limits_of(reading) == pytest.approx({("tokens", "reset"): NOW + seconds})


def test_openai_minus_one_means_no_limit_and_is_neither_recorded_nor_refused() -> None:
    reading = read_rate_limits(
        raw({"x-ratelimit-limit-requests": "-1", "x-ratelimit-remaining-requests": "-1"}), NOW
    )

    assert reading is not None
    assert (reading.limits, reading.rejected) == ({}, [])


def test_unified_headers_give_the_status_and_each_windows_utilization_and_reset() -> None:
    reading = read_rate_limits(raw(UNIFIED), NOW)

    assert reading is not None
    assert reading.status == "allowed_warning"
    values = {
        (window, what): value
        for window, entry in reading.windows.items()
        for what, value in (("utilization", entry.utilization), ("reset", entry.reset_at))
        if value is not None
    }
    assert values == UNIFIED_VALUES
    assert reading.rejected == []


def test_an_unknown_unified_window_is_other_and_an_unknown_status_is_other() -> None:
    reading = read_rate_limits(
        raw(
            {
                "anthropic-ratelimit-unified-30d-utilization": "0.5",
                "anthropic-ratelimit-unified-status": "throttled",
            }
        ),
        NOW,
    )

    assert reading is not None
    assert list(reading.windows) == ["other"]
    assert reading.status == "other"


def test_header_names_are_matched_whatever_their_case() -> None:
    reading = read_rate_limits([(b"Anthropic-RateLimit-Requests-Remaining", b"7")], NOW)

    assert limits_of(reading) == {("requests", "remaining"): 7.0}


def test_an_answer_without_rate_limit_headers_reads_as_none() -> None:
    headers = raw({"content-type": "application/json", "x-request-id": "abc", "retry-after": "1"})

    assert read_rate_limits(headers, NOW) is None


def test_every_malformed_value_is_refused_and_named_by_its_field() -> None:
    reading = read_rate_limits(raw(GARBAGE), NOW)

    assert reading is not None
    assert sorted(reading.rejected) == GARBAGE_FIELDS
    assert limits_of(reading) == {}
    assert all(
        entry.utilization is None and entry.reset_at is None for entry in reading.windows.values()
    )


def test_a_non_ascii_value_is_refused_without_an_error() -> None:
    reading = read_rate_limits([(b"anthropic-ratelimit-requests-limit", "五十".encode())], NOW)

    assert reading is not None
    assert (reading.limits, reading.rejected) == ({}, ["limit"])


def test_recording_sets_every_gauge_to_what_the_headers_said() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)

    metrics.record_rate_limit_headers(raw({**ANTHROPIC, **UNIFIED}), "team-a")

    for (kind, what), value in ANTHROPIC_VALUES.items():
        name = {
            "limit": "ccproxy_ratelimit_limit",
            "remaining": "ccproxy_ratelimit_remaining",
            "reset": "ccproxy_ratelimit_reset_timestamp_seconds",
        }[what]
        labels = {"api": "anthropic", "limit": kind, "key_alias": "team-a"}
        assert registry.get_sample_value(name, labels) == pytest.approx(value), (kind, what)
    status = {
        s.labels["status"]: s.value
        for f in registry.collect()
        for s in f.samples
        if s.name == "ccproxy_ratelimit_unified_status"
    }
    assert status == {"allowed": 0, "allowed_warning": 1, "rejected": 0, "other": 0}


def test_key_aliases_past_the_cap_share_other() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)

    for i in range(KEY_ALIAS_CAP + 5):
        metrics.record_rate_limit_headers(raw({"x-ratelimit-remaining-requests": "5"}), f"k{i}")

    aliases = {
        s.labels["key_alias"]
        for f in registry.collect()
        for s in f.samples
        if s.name == "ccproxy_ratelimit_remaining"
    }
    assert len(aliases) == KEY_ALIAS_CAP + 1
    assert "other" in aliases


def test_a_fault_while_recording_is_logged_not_raised() -> None:
    class Broken:
        def __getattr__(self, name: str) -> object:
            raise RuntimeError("broken family")

    gauges = RateLimitGauges(Broken(), 64, lambda label: None, clock=lambda: NOW)

    assert gauges.record_headers(raw(OPENAI), None) is None
