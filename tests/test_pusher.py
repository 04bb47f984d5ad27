"""BackgroundPusher: interval pushes on its own thread, backoff with jitter, a final push."""

from __future__ import annotations

import random
import threading

import pytest

from ccobs.pusher import BackgroundPusher


class Recorder:
    """A push function that records calls and answers from a script."""

    def __init__(self, results: list[bool] | None = None) -> None:
        self.results = results or []
        self.calls = 0
        self.threads: set[str] = set()
        self.called = threading.Event()

    def __call__(self) -> bool:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        self.called.set()
        return self.results.pop(0) if self.results else True


def test_pushes_on_the_interval_from_its_own_thread() -> None:
    push = Recorder()
    pusher = BackgroundPusher(push, interval=0.01, jitter=0)
    pusher.start()
    assert push.called.wait(5)
    pusher.stop(final_push=False)

    assert push.calls >= 1
    assert push.threads == {"ccobs-pusher"}
    assert not pusher.running


def test_stop_pushes_once_more_and_returns_the_result() -> None:
    push = Recorder([False])
    pusher = BackgroundPusher(push, interval=3600)
    pusher.start()

    assert pusher.stop() is False
    assert push.calls == 1


def test_stop_without_final_push_does_not_push() -> None:
    push = Recorder()
    pusher = BackgroundPusher(push, interval=3600)
    pusher.start()

    assert pusher.stop(final_push=False) is None
    assert push.calls == 0


def test_delay_doubles_with_each_failure_up_to_the_cap() -> None:
    pusher = BackgroundPusher(Recorder(), interval=10, max_backoff=100, jitter=0)

    assert [pusher.next_delay(n) for n in range(6)] == [10, 20, 40, 80, 100, 100]
    assert pusher.next_delay(10_000) == 100


def test_jitter_only_shortens_the_delay_within_its_share() -> None:
    pusher = BackgroundPusher(Recorder(), interval=10, jitter=0.2, rng=random.Random(1))
    delays = [pusher.next_delay(0) for _ in range(1000)]

    assert min(delays) >= 8.0
    assert max(delays) <= 10.0
    assert len(set(delays)) > 1


def test_failures_are_counted_and_a_success_resets_them() -> None:
    push = Recorder([False, False, True])
    pusher = BackgroundPusher(push, interval=3600)
    pusher._push_once()
    pusher._push_once()
    assert pusher.consecutive_failures == 2

    pusher._push_once()
    assert pusher.consecutive_failures == 0


def test_a_raising_push_function_counts_as_a_failure_and_keeps_running() -> None:
    def explode() -> bool:
        raise RuntimeError("boom")

    pusher = BackgroundPusher(explode, interval=3600)

    assert pusher._push_once() is False
    assert pusher.consecutive_failures == 1


@pytest.mark.parametrize(("interval", "jitter"), [(0, 0.1), (1, 1.0), (1, -0.1)])
def test_invalid_configuration_is_rejected(interval: float, jitter: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        BackgroundPusher(Recorder(), interval=interval, jitter=jitter)
