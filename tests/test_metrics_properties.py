"""Properties of every PrometheusMetrics recording call, whatever its arguments.

The proxy calls these methods on its request path with values that come
from clients (model names, paths) and from upstream responses (token counts,
costs), so they are tested with hostile inputs: quotes, backslashes,
newlines, NUL, right-to-left marks, emoji, lone surrogates, 100,000-character
strings, NaN, infinities, negatives, zero, 1e308, ints beyond float range.

The behaviour they pin down:

- no call raises into the caller (observability must never fail a request);
- the exposition ccobs serves parses in the text and OpenMetrics formats and
  passes ``promtool check metrics``;
- no counter sample (``_total``, histogram ``_count``, ``_sum``, ``_bucket``)
  ever decreases or becomes NaN;
- each label keeps at most its cap of values, plus ``other`` and ``unknown``;
- an amount that would corrupt a series (negative, NaN, infinite, not a
  number, an int a float cannot hold) is refused: nothing is recorded and
  ``rejected_values_total{metric=...}`` counts it (the log line is throttled,
  see ``test_metrics``); every finite non-negative amount is recorded exactly.

``token_type`` and ``cost_type`` are drawn from their fixed sets only: the
proxy's own code chooses them, and a wrong one is a programming error that
``record_tokens`` and ``record_cost`` report at once (see ``test_metrics``).
"""

from __future__ import annotations

import inspect
import math
import operator
import reprlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families
from realservers import promtool_check_metrics

from ccobs.catalog import COST_TYPES, OTHER, TOKEN_TYPES, UNKNOWN
from ccobs.metrics import _LABEL_CAPS, PrometheusMetrics
from ccobs.metrics_endpoint import render_metrics
from ccobs.settings import ObservabilitySettings

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
TEXT = "text/plain"

# Deterministic for CI: the same examples on every run, no example database.
PROPERTIES = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)

# --- inputs -------------------------------------------------------------------------

NASTY_TEXT = [
    '"',
    "\\",
    "\n",
    "\r\n",
    "\t",
    "\x00",
    'a"b\\c\nd\x00e',
    '"},injected="1',
    "\\n",
    "\u202eevil\u202c",  # right-to-left override
    "\u05e9\u05dc\u05d5\u05dd",  # Hebrew, right to left
    "\u200f\u200b\ufeff",  # RTL mark, zero-width space, BOM
    "\U0001f600\U0001f469\u200d\U0001f4bb",  # emoji, with a zero-width joiner
    "\uffff\U0010ffff\ufffd",  # noncharacters, the last code point, replacement char
    "\ud800",  # lone surrogates: json.loads accepts "\ud800" from any client
    "a\udfffb",
    OTHER,
    UNKNOWN,
    " ",
    "x" * 100_000,
]

label_values: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.sampled_from(NASTY_TEXT),
    st.text(max_size=24),  # any code point but surrogates
    st.text(st.characters(categories=["Cc", "Cf", "Cs", "Zl", "Zp", "Co"]), max_size=6),
    st.builds(
        operator.mul,
        st.sampled_from(["a", "\u00e9", '"', "\\", "\n", "\U0001f600", "\ud800"]),
        st.integers(min_value=100, max_value=100_000),
    ),
    # Not what the type hints allow, but a careless caller may pass them.
    st.sampled_from([0, -1, 2.5, math.nan, b"\xff\x00", ("tuple",), ["list"], {"d": 1}]),
)
statuses: st.SearchStrategy[Any] = st.one_of(
    label_values,
    st.integers(),
    st.sampled_from([200, 429, 500, -1, 10**200, 10**5000]),  # 10**5000 cannot be printed
)
BAD_NUMBERS = [math.nan, math.inf, -math.inf, -1, -1e-300, -(10**400), 10**400, 2**1024]
amounts: st.SearchStrategy[Any] = st.one_of(
    st.floats(),  # includes NaN, infinities, -0.0, subnormals
    st.integers(),
    st.sampled_from(
        [
            *(0, -0.0, 5e-324, 1e-300, 1e308, sys.float_info.max, int(sys.float_info.max)),
            *BAD_NUMBERS,
            *(True, None, "12", b"1"),
        ]
    ),
)


@dataclass
class Call:
    """One call of a PrometheusMetrics method, printed briefly when a property fails."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def apply(self, metrics: PrometheusMetrics) -> None:
        getattr(metrics, self.name)(*self.args, **self.kwargs)

    def __repr__(self) -> str:
        brief = reprlib.Repr()
        brief.maxstring = brief.maxother = 40
        args = [brief.repr(arg) for arg in self.args]
        args += [f"{key}={brief.repr(value)}" for key, value in self.kwargs.items()]
        return f"{self.name}({', '.join(args)})"


def calls_of(name: str, *args: st.SearchStrategy[Any], **kwargs: Any) -> st.SearchStrategy[Call]:
    return st.builds(Call, st.just(name), st.tuples(*args), st.fixed_dictionaries(kwargs))


RATE_LIMIT_NAMES = (
    [
        f"anthropic-ratelimit-{kind}-{what}".encode()
        for kind in ("requests", "tokens", "input-tokens", "output-tokens")
        for what in ("limit", "remaining", "reset")
    ]
    + [
        f"x-ratelimit-{what}-{kind}".encode()
        for kind in ("requests", "tokens")
        for what in ("limit", "remaining", "reset")
    ]
    + [
        f"anthropic-ratelimit-unified-{rest}".encode()
        for rest in ("status", "5h-utilization", "5h-reset", "7d-utilization", "x\n-reset")
    ]
    + [b"retry-after", b"Anthropic-RateLimit-Requests-Remaining"]
)
rate_limit_headers: st.SearchStrategy[Any] = st.lists(
    st.tuples(
        st.sampled_from(RATE_LIMIT_NAMES),
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from([b"-1", b"1e308", b"nan", b"-inf", b"0", b"2026-12-04T16:30:00Z"]),
            st.floats(allow_nan=True).map(lambda f: repr(f).encode()),
            st.integers().map(lambda i: str(i).encode()),
        ),
    ),
    max_size=12,
)
"""Rate-limit headers as an upstream may send them: the known names, any bytes as values."""

CALLS: dict[str, st.SearchStrategy[Call]] = {
    "record_request": calls_of(
        "record_request", label_values, label_values, label_values, statuses, label_values
    ),
    "record_response_time": calls_of(
        "record_response_time", amounts, label_values, label_values, label_values
    ),
    "record_response": calls_of(
        "record_response",
        label_values,
        label_values,
        label_values,
        statuses,
        label_values,
        amounts,
    ),
    "record_time_to_first_token": calls_of(
        "record_time_to_first_token", amounts, label_values, label_values, label_values
    ),
    "record_tokens": calls_of(
        "record_tokens", amounts, st.sampled_from(TOKEN_TYPES), label_values, label_values
    ),
    "record_cost": calls_of(
        "record_cost", amounts, label_values, st.sampled_from(COST_TYPES), label_values
    ),
    "record_error": calls_of(
        "record_error", label_values, label_values, label_values, label_values
    ),
    "record_completed_request": calls_of(
        "record_completed_request",
        label_values,
        label_values,
        label_values,
        statuses,
        label_values,
        duration_seconds=amounts,
        ttft_seconds=st.none() | amounts,
        input_tokens=amounts,
        output_tokens=amounts,
        cache_read_tokens=amounts,
        cache_write_tokens=amounts,
        cost_input_usd=amounts,
        cost_output_usd=amounts,
        cost_cache_usd=amounts,
        cost_total_usd=amounts,
    ),
    "record_unpriced_request": calls_of("record_unpriced_request", label_values, label_values),
    "record_attributed_request": calls_of(
        "record_attributed_request",
        label_values,
        label_values,
        label_values,
        label_values,
        label_values,
        input_tokens=amounts,
        output_tokens=amounts,
        cache_read_tokens=amounts,
        cache_write_tokens=amounts,
        cost_usd=amounts,
    ),
    "set_budget": calls_of(
        "set_budget", label_values, label_values, label_values, label_values, amounts
    ),
    "record_rate_limit_headers": calls_of(
        "record_rate_limit_headers", rate_limit_headers, label_values
    ),
    "record_stop_reason": calls_of(
        "record_stop_reason",
        st.one_of(label_values, st.sampled_from(["end_turn", "length", "max_output_tokens"])),
        label_values,
        label_values,
    ),
    "record_time_per_output_token": calls_of(
        "record_time_per_output_token", amounts, label_values, label_values
    ),
    "record_retried_request": calls_of(
        "record_retried_request",
        st.one_of(amounts, st.integers(min_value=-3, max_value=10)),
        label_values,
        label_values,
    ),
    "set_active_requests": calls_of("set_active_requests", amounts),
    "inc_active_requests": calls_of("inc_active_requests"),
    "dec_active_requests": calls_of("dec_active_requests"),
    "update_system_info": st.builds(
        Call,
        st.just("update_system_info"),
        kwargs=st.fixed_dictionaries(
            {},
            optional={
                "version": label_values,
                "python_version": label_values,
                "platform": label_values,
            },
        ),
    ),
}
any_call = st.one_of(*CALLS.values())
call_sequences = st.lists(any_call, min_size=1, max_size=12)


def fresh_metrics(namespace: str = "ccproxy", model_cap: int = 50) -> PrometheusMetrics:
    settings = ObservabilitySettings(namespace=namespace, model_label_cap=model_cap)
    return PrometheusMetrics(namespace, registry=CollectorRegistry(), settings=settings)


def samples(metrics: PrometheusMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample in the registry, keyed by name and labels."""
    assert metrics.registry is not None
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
    }


def counter_samples(
    metrics: PrometheusMetrics,
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The exposed samples that may only go up: counters and histogram parts, read back."""
    body, _ = render_metrics(metrics, TEXT)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_families(body.decode())
        if family.type in ("counter", "histogram")
        for sample in family.samples
        if sample.name.endswith(("_total", "_count", "_sum", "_bucket"))
    }


# --- no call raises -------------------------------------------------------------------


def test_every_recording_method_has_a_strategy() -> None:
    """A recording method added later must join these properties, not escape them."""
    public = {
        name
        for name, member in inspect.getmembers(PrometheusMetrics, inspect.isfunction)
        if name.startswith(("record_", "set_", "inc_", "dec_", "update_"))
    }

    assert public == set(CALLS)


@pytest.mark.parametrize("method", sorted(CALLS))
def test_no_call_raises_into_the_caller(method: str) -> None:
    """Recording runs inside every request: an exception here would fail the request."""

    @PROPERTIES
    @given(st.lists(CALLS[method], min_size=1, max_size=6))
    def check(calls: list[Call]) -> None:
        metrics = fresh_metrics(model_cap=3)  # small, so overflow into `other` happens too
        for call in calls:
            call.apply(metrics)

    check()


# --- the exposition stays valid -------------------------------------------------------


@PROPERTIES
@given(call_sequences)
def test_exposition_parses_as_text_and_openmetrics(calls: list[Call]) -> None:
    """One bad label value would break every scrape until the process restarts."""
    metrics = fresh_metrics()
    for call in calls:
        call.apply(metrics)

    text, text_type = render_metrics(metrics, TEXT)
    openmetrics, openmetrics_type = render_metrics(metrics, OPENMETRICS)

    assert text_type.startswith("text/plain")
    assert openmetrics_type.startswith("application/openmetrics-text")
    text_names = {family.name for family in text_families(text.decode("utf-8"))}
    openmetrics_names = {family.name for family in openmetrics_families(openmetrics.decode())}
    assert {"ccproxy_requests", "ccproxy_info"} <= text_names
    assert {"ccproxy_requests", "ccproxy_info"} <= openmetrics_names


def test_accumulated_exposition_passes_promtool() -> None:
    """promtool is what Prometheus users lint with; it must accept whatever was recorded.

    Each example records into its own namespace, so the expositions of a whole
    run concatenate into one valid exposition and promtool runs once.
    """
    expositions: list[str] = []

    @PROPERTIES
    @given(call_sequences)
    def record(calls: list[Call]) -> None:
        metrics = fresh_metrics(f"example{len(expositions)}")
        for call in calls:
            call.apply(metrics)
        expositions.append(render_metrics(metrics, TEXT)[0].decode())

    record()
    code, output = promtool_check_metrics("".join(expositions))

    assert len(expositions) >= PROPERTIES.max_examples
    assert (code, output.strip()) == (0, "")


# --- counters only go up ----------------------------------------------------------------


@PROPERTIES
@given(st.lists(any_call, min_size=1, max_size=25))
def test_counter_samples_never_decrease_or_become_nan(calls: list[Call]) -> None:
    """A counter that goes down reads as a reset to rate(), and NaN poisons every sum."""
    metrics = fresh_metrics(model_cap=3)
    before = counter_samples(metrics)
    for call in calls:
        call.apply(metrics)
        after = counter_samples(metrics)
        for key, previous in before.items():
            assert key in after, f"{key} vanished after {call!r}"
            assert after[key] >= previous, f"{key} went from {previous} to {after[key]} by {call!r}"
        assert not [key for key, value in after.items() if math.isnan(value)], call
        before = after


# --- series stay bounded --------------------------------------------------------------------

MODEL_CAP = 5
LABEL_BOUNDS = {
    **{name: cap + 2 for name, cap in _LABEL_CAPS.items()},  # + `other` and `unknown`
    "model": MODEL_CAP + 2,
    "type": len(TOKEN_TYPES),
    "cost_type": len(COST_TYPES),
}


@settings(PROPERTIES, max_examples=10)
@given(st.lists(label_values, min_size=1, max_size=2), amounts)
def test_each_label_keeps_at_most_its_cap_plus_other_and_unknown(
    seeds: list[Any], amount: Any
) -> None:
    """Clients choose model names and paths; the series they can create must stay bounded.

    Every guarded label is flooded with more distinct values than its cap
    (hostile values, each made distinct by a counter), one label at a time.
    """
    metrics = fresh_metrics(model_cap=MODEL_CAP)
    distinct = max(LABEL_BOUNDS.values()) + 10
    for value in (f"{i}{seed}" for seed in seeds for i in range(distinct)):
        metrics.record_completed_request(
            value, "/v1/messages", "m", 200, "proxy", duration_seconds=amount, input_tokens=amount
        )
        metrics.record_completed_request(
            "POST", value, "m", 200, "proxy", duration_seconds=amount, ttft_seconds=amount
        )
        metrics.record_completed_request("POST", "/e", value, value, value, duration_seconds=1.0)
        metrics.record_tokens(1, "output", value, value)
        metrics.record_cost(0.5, value, "total", "proxy")
        metrics.record_error(value, value, value, "proxy")
        metrics.record_unpriced_request(value, value)

    assert metrics.registry is not None
    for family in metrics.registry.collect():
        seen: dict[str, set[str]] = {}
        for sample in family.samples:
            for label, label_value in sample.labels.items():
                seen.setdefault(label, set()).add(label_value)
        for label, values in seen.items():
            if label in LABEL_BOUNDS:
                assert len(values) <= LABEL_BOUNDS[label], (family.name, label, len(values))


# --- what is refused and what is recorded ----------------------------------------------------

AMOUNT_CALLS: dict[str, tuple[Callable[[PrometheusMetrics, Any], None], str]] = {
    "response_duration": (
        lambda m, v: m.record_response_time(v, "m", "/e", "proxy"),
        "ccproxy_response_duration_seconds_sum",
    ),
    "time_to_first_token": (
        lambda m, v: m.record_time_to_first_token(v, "m", "/e", "proxy"),
        "ccproxy_time_to_first_token_seconds_sum",
    ),
    "tokens": (lambda m, v: m.record_tokens(v, "input", "m", "proxy"), "ccproxy_tokens_total"),
    "cost_usd": (lambda m, v: m.record_cost(v, "m", "total", "proxy"), "ccproxy_cost_usd_total"),
    "active_requests": (lambda m, v: m.set_active_requests(v), "ccproxy_active_requests"),
    "time_per_output_token": (
        lambda m, v: m.record_time_per_output_token(v, "m", "proxy"),
        "ccproxy_time_per_output_token_seconds_sum",
    ),
}
bad_amounts: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from([*BAD_NUMBERS, None, "12", b"1", [1]]),
    st.floats(max_value=-math.ulp(0.0)),
    st.integers(max_value=-1),
    st.integers(min_value=int(sys.float_info.max) + 1),  # more than a float series can add
)
good_amounts: st.SearchStrategy[Any] = st.one_of(
    st.floats(min_value=math.ulp(0.0), max_value=sys.float_info.max),
    st.integers(min_value=1, max_value=int(sys.float_info.max)),
    st.sampled_from([5e-324, 1e308, sys.float_info.max, int(sys.float_info.max)]),
)


@pytest.mark.parametrize("metric", sorted(AMOUNT_CALLS))
def test_refused_amounts_change_nothing_but_the_rejection_counter(metric: str) -> None:
    """A negative, NaN or infinite amount would corrupt the series for good; it is counted."""
    record, _ = AMOUNT_CALLS[metric]

    @PROPERTIES
    @given(bad_amounts)
    def check(amount: Any) -> None:
        metrics = fresh_metrics()
        record(metrics, 1)
        before = samples(metrics)

        record(metrics, amount)

        after = samples(metrics)
        rejected = ("ccproxy_rejected_values_total", frozenset({("metric", metric)}))
        assert after.pop(rejected) == before.pop(rejected) + 1 == 1  # it starts at zero
        assert {k: v for k, v in after.items() if not k[0].endswith("_created")} == {
            k: v for k, v in before.items() if not k[0].endswith("_created")
        }

    check()


@pytest.mark.parametrize("metric", sorted(AMOUNT_CALLS))
def test_finite_non_negative_amounts_are_recorded_exactly(metric: str) -> None:
    """Refusing is only for values that would corrupt a series: 5e-324 and 1e308 are kept."""
    record, sample_name = AMOUNT_CALLS[metric]

    @PROPERTIES
    @given(good_amounts)
    def check(amount: Any) -> None:
        metrics = fresh_metrics()
        record(metrics, amount)

        recorded = [v for (name, _), v in samples(metrics).items() if name == sample_name]
        assert recorded == [float(amount)]
        assert metrics.registry is not None
        assert (
            metrics.registry.get_sample_value("ccproxy_rejected_values_total", {"metric": metric})
            == 0
        )

    check()


# --- the bugs these properties found, pinned ----------------------------------------------------


def test_lone_surrogate_label_value_is_replaced_so_the_exposition_still_encodes() -> None:
    """``{"model": "\\ud800"}`` is valid JSON; unencodable, it made every later scrape fail."""
    metrics = fresh_metrics()

    metrics.record_request("POST", "/v1/messages", "claude\ud800", 200)

    body, _ = render_metrics(metrics, TEXT)
    assert 'model="claude?"' in body.decode("utf-8")


def test_info_values_are_made_exposable_like_label_values() -> None:
    """The info series takes operator-supplied text, which must not break the scrape either."""
    metrics = fresh_metrics()

    metrics.update_system_info(version="1.0\udfff" + "x" * 100_000)

    body, _ = render_metrics(metrics, OPENMETRICS)
    (info,) = [f for f in openmetrics_families(body.decode()) if f.name == "ccproxy_info"]
    assert info.samples[0].labels["version"] == ("1.0?" + "x" * 100_000)[:128]


def test_int_amount_beyond_float_range_is_refused_not_raised() -> None:
    """``10**400`` compares below infinity, but adding it to a float raises OverflowError."""
    metrics = fresh_metrics()

    metrics.record_tokens(10**400, "input", "m")
    metrics.record_completed_request("POST", "/e", "m", 200, duration_seconds=10**400)

    assert metrics.registry is not None
    rejected = metrics.registry.get_sample_value
    assert rejected("ccproxy_rejected_values_total", {"metric": "tokens"}) == 1
    assert rejected("ccproxy_rejected_values_total", {"metric": "response_duration"}) == 1


def test_status_too_long_to_print_becomes_other_instead_of_raising() -> None:
    """``str(10**5000)`` raises ValueError (Python's int-to-text digit limit)."""
    metrics = fresh_metrics()

    metrics.record_request("GET", "/e", "m", 10**5000)

    assert metrics.registry is not None
    labels = {"method": "GET", "endpoint": "/e", "model": "m", "status": OTHER}
    assert (
        metrics.registry.get_sample_value(
            "ccproxy_requests_total", {**labels, "service_type": UNKNOWN}
        )
        == 1
    )
