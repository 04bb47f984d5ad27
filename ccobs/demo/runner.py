"""``ccobs demo``: mock upstream, instrumented proxy and load generator in one command.

Everything runs on loopback in one process and needs no API key: the mock
upstream answers like Anthropic and OpenAI would, the proxy accounts it with
ccobs, the load generator keeps traffic flowing, and a live view reads the
proxy's metrics registry once a second. The proxy serves ``/metrics`` on its
port, so a Prometheus (or the bundled stack) can scrape the same numbers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from prometheus_client import CollectorRegistry

from ccobs.access_log.location import shown_location
from ccobs.demo.callers import DEMO_CALLERS
from ccobs.demo.live_view import LiveView
from ccobs.demo.loadgen import LoadConfig, LoadSummary, render_summary, run_load
from ccobs.demo.mock_rate_limits import DEMO_RATE_LIMITS
from ccobs.demo.server_thread import ServerThread
from ccobs.demo.upstream import UpstreamConfig, create_upstream_app
from ccobs.logging import configure_logging
from ccobs.metrics import PrometheusMetrics
from ccobs.proxy.app import create_proxy_app
from ccobs.proxy.config import ProxyConfig
from ccobs.pushgateway import PushgatewayClient
from ccobs.settings import ObservabilitySettings

DEMO_MODELS = {"claude-sonnet-4-6": 0.6, "claude-haiku-4-5": 0.3, "claude-opus-4-6": 0.1}
DEMO_OPENAI_MODELS = {"gpt-4.1-mini": 1.0}
_FOREVER = 10 * 365 * 24 * 3600.0
DEMO_TOOL_USE_SHARE = 0.15
"""Share of the mock's answers that stop to call a tool, as an agent's often do."""
DEMO_MAX_TOKENS = 384
"""The demo's output limit: the mock writes up to 400 tokens, so a few answers are cut off."""
DEMO_MAX_RETRIES = 2
"""Retries of the demo's 429s, 529s and 500s, as the official SDKs make them by default."""


@dataclass(frozen=True)
class DemoConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    duration: float | None = None
    """Seconds to run; None runs until Ctrl-C."""
    rate: float = 5.0
    error_rate: float = 0.02
    openai_share: float = 0.25
    stream_share: float = 0.6
    seed: int | None = None
    pushgateway_url: str | None = None
    log_file: Path = Path("ccobs-demo.log")
    refresh: float = 1.0

    def __post_init__(self) -> None:
        if self.duration is not None and self.duration <= 0:
            raise ValueError(f"duration must be positive, got {self.duration}")
        if self.rate <= 0:
            raise ValueError(f"rate must be positive, got {self.rate}")
        if not 0 <= self.error_rate <= 1:
            raise ValueError(f"error_rate must be within [0, 1], got {self.error_rate}")
        if self.refresh <= 0:
            raise ValueError(f"refresh must be positive, got {self.refresh}")


def run_demo(
    config: DemoConfig,
    settings: ObservabilitySettings | None = None,
    *,
    out: TextIO | None = None,
) -> LoadSummary | None:
    """Run the demo until ``duration`` ends or Ctrl-C; returns the load summary when it ran out."""
    out = out or sys.stdout
    settings = settings or ObservabilitySettings.load()
    if config.pushgateway_url is not None:
        settings = dataclasses.replace(settings, pushgateway_url=config.pushgateway_url)
    log_stream = config.log_file.open("a", encoding="utf-8")
    configure_logging(settings.log_level, "json", stream=log_stream)
    # The load generator's HTTP client logs each request it sends at INFO: half the
    # log would be the client's echo of the proxy's own access-log lines.
    client_logger = logging.getLogger("httpx")
    client_level = client_logger.level
    client_logger.setLevel(max(logging.WARNING, client_level))
    registry = CollectorRegistry()
    pusher = PushgatewayClient(settings) if settings.pushgateway_enabled else None
    metrics = PrometheusMetrics(settings.namespace, registry, pusher, settings=settings)
    upstream_app = create_upstream_app(
        UpstreamConfig(
            seed=config.seed,
            error_rate=config.error_rate,
            rate_limits=DEMO_RATE_LIMITS,
            tool_use_share=DEMO_TOOL_USE_SHARE,
        )
    )
    try:
        with ServerThread(upstream_app, config.host) as upstream:
            proxy_app = create_proxy_app(
                ProxyConfig(upstream_url=upstream.url), metrics=metrics, settings=settings
            )
            with ServerThread(proxy_app, config.host, config.port) as proxy:
                header = [
                    f"ccobs demo   proxy {proxy.url}   metrics {proxy.url}/metrics   "
                    f"mock upstream {upstream.url}",
                    f"access log and JSON logs: {config.log_file}   Ctrl-C stops"
                    + (
                        f"   access-log db: {shown_location(settings.access_log_db)}"
                        if settings.access_log_db
                        else ""
                    ),
                    "",
                ]
                view = LiveView(registry, settings.namespace)
                return _drive(config, proxy.url, view, header, out)
    finally:
        client_logger.setLevel(client_level)
        log_stream.close()


def _drive(
    config: DemoConfig, target: str, view: LiveView, header: list[str], out: TextIO
) -> LoadSummary | None:
    load = LoadConfig(
        target=target,
        rate=config.rate,
        duration=config.duration or _FOREVER,
        max_tokens=DEMO_MAX_TOKENS,
        max_retries=DEMO_MAX_RETRIES,
        models=DEMO_MODELS,
        openai_models=DEMO_OPENAI_MODELS,
        openai_share=config.openai_share,
        stream_share=config.stream_share,
        seed=config.seed,
        callers=DEMO_CALLERS,
    )
    tty = out.isatty()
    # A terminal is redrawn in place; a log file gets a picture every 10 s at most.
    refresh = config.refresh if tty else max(config.refresh, 10.0)
    stopping = [*header[:-1], _STOPPING, ""]

    def show(stop: asyncio.Event | None = None) -> None:
        picture = view.render(stopping if stop is not None and stop.is_set() else header)
        out.write(f"\x1b[H\x1b[2J{picture}\n" if tty else f"{picture}\n\n")
        out.flush()

    async def main() -> tuple[LoadSummary, bool]:
        stop = asyncio.Event()
        task = asyncio.create_task(run_load(load, stop=stop))
        with _first_interrupt_stops(stop, task) as interrupted:
            while not task.done():
                show(stop)
                await asyncio.wait({task}, timeout=refresh)
        return task.result(), interrupted()

    try:
        summary, interrupted = asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        show()
        out.write("stopped.\n")
        return None
    show()
    out.write("\n" + render_summary(summary) + "\n")
    if interrupted:
        out.write("stopped.\n")
        return None
    return summary


_STOPPING = "stopping: no new requests; waiting for those in flight (Ctrl-C again quits now)"
_DRAIN_SECONDS = 8.0
"""How long the requests in flight get to finish after Ctrl-C before they are cut off."""


@contextmanager
def _first_interrupt_stops(
    stop: asyncio.Event, task: asyncio.Task[LoadSummary]
) -> Iterator[Callable[[], bool]]:
    """Ctrl-C stops the load gracefully; a second one (or the drain's end) cancels it.

    Requests cut off by the demo's own shutdown would show as the clients'
    disconnects, errors that no user caused. Where no signal handler can be
    set (not the main thread), Ctrl-C interrupts at once as before.
    """
    loop = asyncio.get_running_loop()
    timer: list[asyncio.TimerHandle] = []

    def interrupt() -> None:
        if stop.is_set():
            task.cancel()
            return
        stop.set()
        timer.append(loop.call_later(_DRAIN_SECONDS, task.cancel))

    try:
        loop.add_signal_handler(signal.SIGINT, interrupt)
    except (NotImplementedError, RuntimeError, ValueError):
        yield stop.is_set
        return
    try:
        yield stop.is_set
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        for handle in timer:
            handle.cancel()
