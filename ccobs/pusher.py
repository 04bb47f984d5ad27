"""The background pusher: pushes on an interval from its own thread, backing off on failure.

A thread rather than an asyncio task because a push blocks: it renders the
exposition and sends it with a synchronous HTTP call (see
:class:`ccobs.pushgateway.PushgatewayClient`); on a thread it can never stall
the event loop serving requests. ``push`` is any callable returning a bool,
wired in by whoever starts the pusher (``instrument()`` passes
:meth:`ccobs.metrics.PrometheusMetrics.push_to_gateway`).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import structlog

logger = structlog.get_logger("ccobs.pusher")

_MAX_BACKOFF_EXPONENT = 16


class BackgroundPusher:
    """Calls ``push`` every ``interval`` seconds until stopped, then once more.

    After ``n`` consecutive failures the wait grows to ``interval * 2**n``,
    capped at ``max_backoff``, and every wait is shortened by a random share
    of up to ``jitter`` so that replicas restarted together do not push in
    lock-step.
    """

    def __init__(
        self,
        push: Callable[[], bool],
        interval: float,
        *,
        max_backoff: float = 60.0,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        self._push = push
        self.interval = interval
        self.max_backoff = max(max_backoff, interval)
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.consecutive_failures = 0

    def next_delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failed pushes."""
        base = min(self.max_backoff, self.interval * 2.0 ** min(failures, _MAX_BACKOFF_EXPONENT))
        return base * (1 - self.jitter * self._rng.random())

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ccobs-pusher", daemon=True)
        self._thread.start()

    def stop(self, *, final_push: bool = True, timeout: float | None = None) -> bool | None:
        """Stop the thread; with ``final_push``, push once more and return its result.

        The final push keeps the counts of a process's last interval from
        being lost when it shuts down.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        return self._push_once() if final_push else None

    def _push_once(self) -> bool:
        try:
            ok = self._push()
        except Exception:  # push functions should not raise; never let one kill the thread
            logger.exception("push_raised")
            ok = False
        self.consecutive_failures = 0 if ok else self.consecutive_failures + 1
        return ok

    def _run(self) -> None:
        while not self._stop.wait(self.next_delay(self.consecutive_failures)):
            self._push_once()
