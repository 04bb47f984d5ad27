"""CircuitBreaker: closed, open, half-open with a single probe."""

from __future__ import annotations

import pytest

from ccobs.circuit_breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, reset_timeout=10.0, clock=clock)


def test_starts_closed_and_allows_calls(breaker: CircuitBreaker) -> None:
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_opens_after_threshold_consecutive_failures(breaker: CircuitBreaker) -> None:
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.allow()

    assert breaker.record_failure() is BreakerState.OPEN
    assert not breaker.allow()


def test_a_success_resets_the_failure_count(breaker: CircuitBreaker) -> None:
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()

    assert breaker.state is BreakerState.CLOSED


def test_half_open_after_reset_timeout_lets_exactly_one_probe_through(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    for _ in range(3):
        breaker.record_failure()
    clock.now = 10.0

    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()


def test_successful_probe_closes_the_breaker(breaker: CircuitBreaker, clock: FakeClock) -> None:
    for _ in range(3):
        breaker.record_failure()
    clock.now = 10.0
    breaker.allow()

    assert breaker.record_success() is BreakerState.HALF_OPEN
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_failed_probe_opens_again_for_another_period(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    for _ in range(3):
        breaker.record_failure()
    clock.now = 10.0
    breaker.allow()

    assert breaker.record_failure() is BreakerState.OPEN
    clock.now = 19.0
    assert not breaker.allow()
    clock.now = 20.0
    assert breaker.allow()


@pytest.mark.parametrize(("threshold", "timeout"), [(0, 1.0), (1, 0.0)])
def test_invalid_configuration_is_rejected(threshold: int, timeout: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        CircuitBreaker(threshold, timeout)
