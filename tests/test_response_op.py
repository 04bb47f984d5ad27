"""The middleware's one-call count and observation records what the two operations record."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram

from ccobs.prometheus_internals import fast_inc, fast_observe
from ccobs.request_ops import counted_then_observed
from ccobs.response_op import response_op

BUCKETS = (0.005, 0.1, 1.0, 30.0, 600.0)


def families() -> tuple[CollectorRegistry, Counter, Histogram]:
    registry = CollectorRegistry()
    counter = Counter("requests", "Requests.", ["route"], registry=registry)
    histogram = Histogram("duration", "Duration.", ["route"], buckets=BUCKETS, registry=registry)
    return registry, counter, histogram


def samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    ]


durations = st.lists(
    st.one_of(
        st.sampled_from([0.0, *BUCKETS]),  # on a bucket's bound: the bound's bucket holds it
        st.floats(min_value=0.0, max_value=0.01),  # about the first bound, found without search
        st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(durations)
def test_one_call_records_what_counting_then_observing_records(values: list[float]) -> None:
    ours, our_counter, our_histogram = families()
    theirs, their_counter, their_histogram = families()
    record = response_op(our_counter.labels("/r"), our_histogram.labels("/r"))
    reference = counted_then_observed(
        fast_inc(their_counter.labels("/r")), fast_observe(their_histogram.labels("/r"))
    )
    for value in values:
        record(value)
        reference(value)

    assert samples(ours) == samples(theirs)


def test_one_call_takes_each_cells_own_lock() -> None:
    """Another writer of the same cells (``record_request``, ``fast_observe``) takes those
    locks too, so no addition of either is lost."""
    _, counter, histogram = families()
    child: Any = counter.labels("/r")
    observed: Any = histogram.labels("/r")
    record = response_op(child, observed)
    child._value._lock.acquire()
    try:
        assert not _finishes_without_lock(record)
    finally:
        child._value._lock.release()
    observed._sum._lock.acquire()
    try:
        assert not _finishes_without_lock(record)
    finally:
        observed._sum._lock.release()
    assert _finishes_without_lock(record)


def _finishes_without_lock(record: Any) -> bool:
    """Whether ``record(0.5)`` finishes within a moment in another thread."""
    import threading

    done = threading.Event()
    thread = threading.Thread(target=lambda: (record(0.5), done.set()), daemon=True)
    thread.start()
    finished = done.wait(0.2)
    return finished


def test_cells_it_cannot_add_to_directly_take_the_two_operations() -> None:
    class OtherValue:
        def __init__(self) -> None:
            self.added: list[float] = []

        def inc(self, amount: float) -> None:
            self.added.append(amount)

    _, counter, histogram = families()
    child: Any = counter.labels("/r")
    child._value = OtherValue()
    record = response_op(child, histogram.labels("/r"))

    record(0.5)

    assert child._value.added == [1]
    assert histogram.labels("/r")._sum.get() == 0.5
