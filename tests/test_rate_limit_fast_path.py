"""The proxy's one-pass rate-limit recording leaves every gauge and count as the reference does.

``RateLimitGauges.set_from_headers`` (what ``record_rate_limit_headers``
runs) reads the headers straight into the gauges with learnt names, cached
resets and a shortcut for plain counts; ``RateLimitGauges.record_headers``
reads them into a ``RateLimitReading`` with ``read_rate_limits`` and records
that. Both are fed the same answers here, valid and malformed, and must leave
the same exposition.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Gauge
from rate_limit_headers import ANTHROPIC, GARBAGE, NOW, OPENAI, UNIFIED, GaugeSide, raw

from ccobs.prometheus_internals import fast_set
from ccobs.rate_limit_fields import count_value, duration_value, rfc3339_value
from ccobs.rate_limit_metrics import (
    MAX_REMEMBERED_NAMES,
    MAX_REMEMBERED_VALUES,
    RateLimitGauges,
)
from ccobs.rate_limits import MAX_RESET_SECONDS, _count, _go_duration, _rfc3339

Headers = list[tuple[bytes, bytes]]


def both(answers: list[tuple[Headers, str | None]]) -> tuple[GaugeSide, GaugeSide]:
    """The reference and the fast path, each fed ``answers`` in order."""
    reference, fast = GaugeSide(), GaugeSide()
    for headers, alias in answers:
        reference.gauges.record_headers(headers, alias)
        fast.gauges.set_from_headers(headers, alias)
    return reference, fast


def case(name: bytes) -> st.SearchStrategy[bytes]:
    return st.sampled_from([name, name.upper(), name.title()])


NAMES = [
    *(name.encode() for name in (*ANTHROPIC, *OPENAI, *UNIFIED, *GARBAGE)),
    b"anthropic-ratelimit-unified-7d-opus-utilization",
    b"anthropic-ratelimit-unified-7d_sonnet-reset",
    b"anthropic-ratelimit-unified-30d-utilization",
    b"anthropic-ratelimit-unified--reset",
    b"anthropic-ratelimit-unified-",
    b"anthropic-ratelimit-tokens",
    b"x-ratelimit-reset",
    b"retry-after",
    b"content-type",
    b"server",
]
VALUES = [
    b"0",
    b"4000",
    b"-1",
    b" -1 ",
    b" 42 ",
    b"999999999999999",
    b"9999999999999999",
    b"1000000000000000",
    b"10000000000000000",
    b"1_000",
    b"1e3",
    b"0.82",
    b"-0.1",
    b"10.5",
    b"NaN",
    b"inf",
    b"",
    b"2026-12-04T16:30:01Z",
    b"2026-12-04t16:30:01z",
    b"2026-12-04T16:30:00.500+00:00",
    b"2026-12-04T16:30:01",
    b"3026-12-04T16:30:01Z",
    b"6m0s",
    b"1h2m3s",
    b"12ms",
    b"1.5s",
    b"8760h1s",
    b"8784h",
    b"8784h0.5s",
    b"8783h59m59.999s",
    str(NOW + MAX_RESET_SECONDS).encode(),
    str(NOW + MAX_RESET_SECONDS + 0.5).encode(),
    str(NOW - MAX_RESET_SECONDS - 0.5).encode(),
    b"2027-12-05T16:30:00Z",
    b"2027-12-05T16:30:00.5Z",
    b"366d",
    str(int(NOW) + 7200).encode(),
    str(int(NOW) + 400 * 86400).encode(),
    b"allowed",
    b"allowed_warning",
    b"rejected",
    b"throttled",
    "五十".encode(),
    b"\xa012\xa0",
    b"\x85" + b"7",
    b"1" * 70,
]
header = st.tuples(
    st.one_of(st.sampled_from(NAMES).flatmap(case), st.binary(max_size=12)),
    st.one_of(
        st.sampled_from(VALUES), st.binary(max_size=24), st.integers().map(str).map(str.encode)
    ),
)
answers = st.lists(
    st.tuples(st.lists(header, max_size=14), st.sampled_from([None, "", "team-a", "team-b"])),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(answers)
def test_the_fast_path_leaves_the_same_gauges_and_counts_as_the_reference(
    answers: list[tuple[Headers, str | None]],
) -> None:
    reference, fast = both(answers)

    assert fast.samples() == reference.samples()
    assert fast.overflows == reference.overflows


EDGES: dict[str, Headers] = {
    "a repeated header, valid then refused": [
        (b"anthropic-ratelimit-requests-limit", b"5"),
        (b"anthropic-ratelimit-requests-limit", b"x"),
    ],
    "a repeated header, refused then valid": [
        (b"x-ratelimit-limit-tokens", b"x"),
        (b"x-ratelimit-limit-tokens", b"7"),
    ],
    "two retry-afters, the last one refused": [
        (b"x-ratelimit-remaining-tokens", b"1"),
        (b"retry-after", b"3"),
        (b"retry-after", b"-3"),
    ],
    "two retry-afters, the last one valid": [
        (b"retry-after", b"-3"),
        (b"retry-after", b"3"),
        (b"x-ratelimit-remaining-tokens", b"1"),
    ],
    "a retry-after alone": [(b"retry-after", b"soon")],
    "a retry-after and an ignored unified header": [
        (b"retry-after", b"soon"),
        (b"anthropic-ratelimit-unified-representative-claim", b"five_hour"),
    ],
    "both vendors: the first one names the api": [
        (b"x-ratelimit-remaining-requests", b"9"),
        (b"anthropic-ratelimit-requests-remaining", b"8"),
        (b"anthropic-ratelimit-tokens-limit", b"lots"),
    ],
    "a unified header first, then OpenAI's": [
        (b"anthropic-ratelimit-unified-status", b"rejected"),
        (b"x-ratelimit-limit-requests", b"-1"),
        (b"x-ratelimit-remaining-requests", b"4"),
    ],
    "OpenAI's -1 everywhere": [
        (b"x-ratelimit-limit-requests", b"-1"),
        (b"x-ratelimit-reset-requests", b" -1"),
        (b"anthropic-ratelimit-requests-limit", b"-1"),
    ],
    "resets at the year's edge": [
        (b"x-ratelimit-reset-requests", b"8784h"),
        (b"x-ratelimit-reset-tokens", b"8784h0.5s"),
        (b"anthropic-ratelimit-requests-reset", b"2027-12-05T16:30:00Z"),
        (b"anthropic-ratelimit-tokens-reset", b"2027-12-05T16:30:00.5Z"),
        (b"anthropic-ratelimit-unified-5h-reset", str(NOW + MAX_RESET_SECONDS).encode()),
        (b"anthropic-ratelimit-unified-7d-reset", str(NOW + MAX_RESET_SECONDS + 0.5).encode()),
    ],
    "counts at the cap": [
        (b"anthropic-ratelimit-requests-limit", b"1000000000000000"),
        (b"anthropic-ratelimit-tokens-limit", b"1000000000000001"),
        (b"anthropic-ratelimit-input-tokens-limit", b"9999999999999999"),
        (b"retry-after", str(int(MAX_RESET_SECONDS) + 1).encode()),
    ],
}


@pytest.mark.parametrize("headers", EDGES.values(), ids=EDGES.keys())
def test_edge_cases_give_the_same_gauges_and_counts(headers: Headers) -> None:
    reference, fast = both([(headers, "team-a"), (headers, "team-a")])

    assert fast.samples() == reference.samples()


def test_the_documented_header_sets_give_the_same_gauges_twice_over() -> None:
    """The second answer of each kind finds its names learnt and its resets cached."""
    sets = [raw(ANTHROPIC), raw(OPENAI), raw(UNIFIED), raw(GARBAGE)]
    reference, fast = both([(headers, "team-a") for headers in sets * 2])

    assert fast.samples() == reference.samples()
    assert fast.samples()  # the sets did set gauges


def test_key_aliases_past_the_cap_share_other_on_the_fast_path_as_on_the_reference() -> None:
    answers: list[tuple[Headers, str | None]] = [
        (raw({"x-ratelimit-remaining-requests": "5"}), f"k{i}") for i in range(105)
    ]
    reference, fast = both(answers)

    assert fast.samples() == reference.samples()
    assert fast.overflows == reference.overflows != []


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.sampled_from(VALUES), st.binary(max_size=24)))
def test_a_count_reads_as_the_reference_count_whatever_its_bytes(value: bytes) -> None:
    expected = _count(value.decode("latin-1").strip())

    assert count_value(value, "anthropic") == expected


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.sampled_from(VALUES), st.binary(max_size=24)))
def test_reset_values_read_as_the_reference_reads_them(value: bytes) -> None:
    text = value.decode("latin-1").strip()

    assert rfc3339_value(value) == _rfc3339(text)
    assert duration_value(value) == (-1.0 if text == "-1" else _go_duration(text))


def test_the_learnt_names_and_cached_resets_stay_bounded() -> None:
    side = GaugeSide()
    for i in range(3 * MAX_REMEMBERED_NAMES):
        side.gauges.set_from_headers(
            [
                (f"x-junk-{i}".encode(), b"1"),
                (b"anthropic-ratelimit-requests-reset", f"2026-12-04T16:{i % 60:02}:00Z".encode()),
                (b"x-ratelimit-reset-requests", f"{i}ms".encode()),
                (b"anthropic-ratelimit-unified-5h-reset", str(int(NOW) + i).encode()),
            ],
            None,
        )
    gauges: Any = side.gauges

    assert len(gauges._fields) <= MAX_REMEMBERED_NAMES
    for cache in (gauges._rfc3339, gauges._durations, gauges._numbers):
        assert 0 < len(cache) <= MAX_REMEMBERED_VALUES


def test_a_fault_on_the_fast_path_is_logged_not_raised() -> None:
    class Broken:
        def __getattr__(self, name: str) -> object:
            raise RuntimeError("broken family")

    gauges = RateLimitGauges(Broken(), 64, lambda label: None, clock=lambda: NOW)

    gauges.set_from_headers(raw(OPENAI), None)  # no exception


def test_header_names_that_are_not_bytes_are_refused_without_an_error() -> None:
    side = GaugeSide()
    headers: Any = [("x-ratelimit-remaining-requests", "5")]

    side.gauges.set_from_headers(headers, None)  # no exception

    assert all(value == 0 for value in side.samples().values())


@pytest.mark.parametrize("value", [0.0, 1.5, 1e15, 1779000000.0])
def test_a_fast_set_stores_what_set_would(value: float) -> None:
    registry = CollectorRegistry()
    gauge = Gauge("g", "help", ["a"], registry=registry, multiprocess_mode="mostrecent")

    fast_set(gauge.labels("fast"))(value)
    gauge.labels("slow").set(value)

    assert registry.get_sample_value("g", {"a": "fast"}) == value
    assert registry.get_sample_value("g", {"a": "slow"}) == value


def test_a_gauge_whose_value_is_not_in_process_keeps_its_own_set() -> None:
    class FileValue:  # what a multiprocess gauge child holds instead of a MutexValue
        def set(self, value: float, timestamp: float | None = None) -> None: ...

    class Child:
        def __init__(self) -> None:
            self._value = FileValue()

        def set(self, value: float) -> None: ...

    child = Child()

    assert fast_set(child) == child.set
