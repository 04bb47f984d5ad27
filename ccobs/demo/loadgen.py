"""Load generator: real Anthropic/OpenAI-shaped traffic with client-side measurements.

OpenAI traffic goes to Chat Completions or to the Responses API (what Codex
CLI and the Agents SDK speak), each with its own share.

It drives the demo proxy (or the mock upstream directly) so dashboards have
something to show, and its client-side view (latency, time to first token,
tokens, cost, errors) is what the proxy's own metrics are checked against.

Two ways to pace, exactly one of which is chosen:

* ``rate``: open loop, a request every ``1/rate`` seconds whatever the
  responses do, like independent users; at most ``max_in_flight`` requests
  are outstanding, beyond that arrivals wait.
* ``concurrency``: closed loop, that many workers each sending back to back,
  like a fixed pool of agents.

and two ways to stop: after ``requests`` requests or after ``duration``
seconds (requests still in flight then get up to ``timeout`` to finish).
Everything is bounded by count or time; nothing runs unbounded.

Token counts follow the ``ccobs.pricing`` convention: ``input`` is uncached
input, so OpenAI's ``prompt_tokens`` (Responses: ``input_tokens``) is split
into ``input`` and ``cache_read``. Tokens and latencies come from successful requests only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import sys
import time
from collections.abc import AsyncIterable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx

from ccobs.demo.callers import Caller, CallerPicker
from ccobs.demo.load_results import (
    LoadSnapshot,
    LoadSummary,
    Recorder,
    RequestResult,
    percentile,
)
from ccobs.demo.sdk_retries import MAX_RETRIES, RETRY_COUNT_HEADER, retry_delay, sdk_would_retry
from ccobs.pricing import PriceTable
from ccobs.proxy.sse import iter_events
from ccobs.proxy.usage import Api, StreamUsage, TokenCounts, UsageError, response_tokens

__all__ = [
    "LoadConfig",
    "LoadSnapshot",
    "LoadSummary",
    "RequestResult",
    "TokenCounts",
    "percentile",
    "render_progress",
    "render_summary",
    "run_load",
    "run_loadgen_cli",
]

ANTHROPIC_VERSION = "2023-06-01"
_PROMPT_WORDS = (
    "summarise", "the", "latest", "deployment", "logs", "and", "explain", "why", "p99",
    "latency", "rose", "after", "cache", "hit", "ratio", "dropped", "for", "requests", "to",
    "upstream", "model", "with", "tool", "calls", "in", "streaming", "mode", "please",
)  # fmt: skip


# --------------------------------------------------------------------------- configuration


def _check_weights(name: str, weights: Mapping[str, float]) -> None:
    for model, weight in weights.items():
        if not isinstance(model, str) or not model:
            raise ValueError(f"LoadConfig.{name}: model names must be non-empty strings")
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ValueError(f"LoadConfig.{name}[{model!r}] must be a number, got {weight!r}")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"LoadConfig.{name}[{model!r}] must be >= 0, got {weight!r}")
    if sum(weights.values()) <= 0:
        raise ValueError(f"LoadConfig.{name} needs at least one model with a weight > 0")


@dataclass(frozen=True)
class LoadConfig:
    """What load to send. Give exactly one of ``rate``/``concurrency`` and of
    ``duration``/``requests``.

    ``target`` is the base URL (``http://127.0.0.1:8080``); the API paths
    ``/v1/messages``, ``/v1/chat/completions`` and ``/v1/responses`` are
    appended. ``models`` weights the Anthropic requests, ``openai_models`` the
    OpenAI ones (both OpenAI APIs), ``openai_share`` is the share of requests
    sent to Chat Completions and ``responses_share`` the share sent to the
    Responses API; the rest go to Anthropic.
    ``headers`` are added to every request (e.g. an API key); they are kept
    out of the config's repr and never printed.
    """

    target: str
    rate: float | None = None
    concurrency: int | None = None
    duration: float | None = None
    requests: int | None = None
    models: Mapping[str, float] = field(default_factory=lambda: {"claude-sonnet-4-6": 1.0})
    openai_models: Mapping[str, float] = field(default_factory=lambda: {"gpt-4.1-mini": 1.0})
    openai_share: float = 0.0
    responses_share: float = 0.0
    stream_share: float = 0.5
    seed: int | None = None
    timeout: float = 60.0
    max_tokens: int = 512
    max_in_flight: int = 256
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    callers: tuple[Caller, ...] = field(default=(), repr=False)
    """Each request is sent as one of these, drawn per request (``ccobs.demo.callers``)."""
    max_retries: int = 0
    """Retries of a request answered 408, 409, 429 or 5xx, made as the official SDKs make
    them, ``x-stainless-retry-count`` included (see ``ccobs.demo.sdk_retries``); 0: none."""

    def __post_init__(self) -> None:
        if not isinstance(self.target, str) or not self.target.startswith(("http://", "https://")):
            raise ValueError(f"LoadConfig.target must be an http(s) URL, got {self.target!r}")
        if (self.rate is None) == (self.concurrency is None):
            raise ValueError("LoadConfig needs exactly one of rate (req/s) or concurrency")
        if (self.duration is None) == (self.requests is None):
            raise ValueError("LoadConfig needs exactly one of duration (seconds) or requests")
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"LoadConfig.rate must be > 0 requests/s, got {self.rate!r}")
        if self.concurrency is not None and (
            isinstance(self.concurrency, bool)
            or not isinstance(self.concurrency, int)
            or self.concurrency < 1
        ):
            raise ValueError(
                f"LoadConfig.concurrency must be an int >= 1, got {self.concurrency!r}"
            )
        if self.duration is not None and not (math.isfinite(self.duration) and self.duration > 0):
            raise ValueError(f"LoadConfig.duration must be > 0 seconds, got {self.duration!r}")
        if self.requests is not None and (
            isinstance(self.requests, bool)
            or not isinstance(self.requests, int)
            or self.requests < 1
        ):
            raise ValueError(f"LoadConfig.requests must be an int >= 1, got {self.requests!r}")
        for name in ("openai_share", "responses_share", "stream_share"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise ValueError(f"LoadConfig.{name} must be in [0, 1], got {value!r}")
        openai_total = self.openai_share + self.responses_share
        if openai_total > 1.0 + 1e-9:
            raise ValueError(
                f"LoadConfig.openai_share + responses_share must be <= 1, got {openai_total:g}"
            )
        if openai_total < 1.0:
            _check_weights("models", self.models)
        if openai_total > 0.0:
            _check_weights("openai_models", self.openai_models)
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"LoadConfig.timeout must be > 0 seconds, got {self.timeout!r}")
        if self.max_tokens < 1:
            raise ValueError(f"LoadConfig.max_tokens must be >= 1, got {self.max_tokens!r}")
        if self.max_in_flight < 1:
            raise ValueError(f"LoadConfig.max_in_flight must be >= 1, got {self.max_in_flight!r}")
        if not 0 <= self.max_retries <= MAX_RETRIES:
            raise ValueError(
                f"LoadConfig.max_retries must be in [0, {MAX_RETRIES}], got {self.max_retries!r}"
            )


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class _Plan:
    api: Api
    model: str
    stream: bool
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


class _Planner:
    """Draws each request's API, model, streaming flag and prompt from one seeded RNG."""

    def __init__(self, config: LoadConfig) -> None:
        self._config = config
        self._rng = random.Random(config.seed)
        self._models = (list(config.models), list(config.models.values()))
        self._openai_models = (list(config.openai_models), list(config.openai_models.values()))
        self._callers = CallerPicker(config.callers, config.seed) if config.callers else None

    def next(self) -> _Plan:
        cfg, rng = self._config, self._rng
        # One draw picks the API whatever the shares, so the rest of the plan stays seeded alike.
        pick = rng.random()
        api: Api = (
            "openai"
            if pick < cfg.openai_share
            else "responses"
            if pick < cfg.openai_share + cfg.responses_share
            else "anthropic"
        )
        names, weights = self._models if api == "anthropic" else self._openai_models
        model = rng.choices(names, weights)[0]
        stream = rng.random() < cfg.stream_share
        prompt = " ".join(rng.choices(_PROMPT_WORDS, k=rng.randint(8, 400)))
        messages = [{"role": "user", "content": prompt}]
        body: dict[str, Any]
        if api == "responses":
            body = {
                "model": model,
                "input": messages,
                "max_output_tokens": cfg.max_tokens,
                "stream": stream,
            }
            return self._as_caller(_Plan(api=api, model=model, stream=stream, body=body))
        body = {
            "model": model,
            "max_tokens": cfg.max_tokens,
            "messages": messages,
            "stream": stream,
        }
        if api == "openai" and stream:
            body["stream_options"] = {"include_usage": True}
        return self._as_caller(_Plan(api=api, model=model, stream=stream, body=body))

    def _as_caller(self, plan: _Plan) -> _Plan:
        if self._callers is None:
            return plan
        return dataclasses.replace(plan, headers=self._callers.headers(plan.api))


class _StreamError(Exception):
    """The server reported an error inside a 200 stream."""


class _IncompleteStream(Exception):
    """The stream ended cleanly but without its terminating event."""


async def _read_stream(
    api: Api, lines: AsyncIterable[str], started: float
) -> tuple[TokenCounts, float | None]:
    """Usage and time to first token of a stream, read up to its terminating event."""
    usage = StreamUsage(api)
    ttft: float | None = None
    async for event in iter_events(lines):
        if usage.feed(event):
            ttft = time.monotonic() - started
        if usage.error is not None:
            raise _StreamError(usage.error)
        if usage.complete:
            return usage.tokens, ttft
    raise _IncompleteStream


async def _send_retrying(
    client: httpx.AsyncClient, config: LoadConfig, plan: _Plan
) -> RequestResult:
    """:func:`_send`, retried as an official SDK retries; the last attempt's result."""
    retry = 0
    while True:
        result = await _send(client, config, plan, retry)
        if retry >= config.max_retries or not sdk_would_retry(result.status):
            return result
        retry += 1
        await asyncio.sleep(retry_delay(retry))


async def _send(
    client: httpx.AsyncClient, config: LoadConfig, plan: _Plan, retry: int = 0
) -> RequestResult:
    """Send one request and classify the outcome; never raises for network trouble."""
    base = config.target.rstrip("/")
    headers = httpx.Headers({"content-type": "application/json"})
    headers.update(config.headers)
    headers.update(plan.headers)
    if config.max_retries:  # as the SDKs do: 0 on the first try
        headers[RETRY_COUNT_HEADER] = str(retry)
    if plan.api == "anthropic":
        url = f"{base}/v1/messages"
        if "anthropic-version" not in headers:
            headers["anthropic-version"] = ANTHROPIC_VERSION
    elif plan.api == "openai":
        url = f"{base}/v1/chat/completions"
    else:
        url = f"{base}/v1/responses"
    started = time.monotonic()
    status: int | None = None
    fault: str | None = None
    ttft: float | None = None
    tokens = TokenCounts()
    try:
        async with asyncio.timeout(config.timeout):
            request = client.build_request("POST", url, json=plan.body, headers=headers)
            response = await client.send(request, stream=True)
            try:
                status = response.status_code
                if status >= 300:
                    await response.aread()
                elif plan.stream:
                    tokens, ttft = await _read_stream(plan.api, response.aiter_lines(), started)
                else:
                    tokens = response_tokens(plan.api, await response.aread())
            finally:
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException):
        fault = "timeout"
    except httpx.ConnectError:
        fault = "connect_error"
    except httpx.RemoteProtocolError:
        fault = "protocol_error"
    except httpx.ReadError:
        fault = "read_error"
    except (httpx.TransportError, OSError):
        fault = "transport_error"
    except httpx.HTTPError:  # e.g. a body that fails to decode
        fault = "bad_response"
    except _StreamError:
        fault = "stream_error"
    except _IncompleteStream:
        fault = "incomplete_stream"
    except UsageError:
        fault = "bad_response"
    return RequestResult(
        api=plan.api,
        model=plan.model,
        stream=plan.stream,
        status=status,
        fault=fault,
        latency=time.monotonic() - started,
        ttft=ttft,
        tokens=tokens,
    )


# --------------------------------------------------------------------------- driving


async def _closed_loop(
    config: LoadConfig,
    client: httpx.AsyncClient,
    planner: _Planner,
    recorder: Recorder,
    deadline: float | None,
    stop: asyncio.Event,
) -> None:
    """``concurrency`` workers sending back to back until the count or the time runs out."""
    assert config.concurrency is not None

    def more() -> bool:
        if stop.is_set():
            return False
        if config.requests is not None:
            return recorder.sent < config.requests
        return deadline is not None and time.monotonic() < deadline

    async def worker() -> None:
        while more():
            recorder.started()
            plan = planner.next()
            recorder.add(await _send_retrying(client, config, plan))

    async with asyncio.TaskGroup() as group:
        for _ in range(config.concurrency):
            group.create_task(worker())


async def _open_loop(
    config: LoadConfig,
    client: httpx.AsyncClient,
    planner: _Planner,
    recorder: Recorder,
    deadline: float | None,
    stop: asyncio.Event,
) -> None:
    """One arrival every ``1/rate`` s, at most ``max_in_flight`` outstanding."""
    assert config.rate is not None
    interval = 1.0 / config.rate
    slots = asyncio.Semaphore(config.max_in_flight)

    async def one(plan: _Plan) -> None:
        try:
            recorder.add(await _send_retrying(client, config, plan))
        finally:
            slots.release()

    async with asyncio.TaskGroup() as group:
        start = recorder.start
        index = 0
        while config.requests is None or index < config.requests:
            due = start + index * interval
            if deadline is not None and due >= deadline:
                break
            if await _stopped_within(stop, max(0.0, due - time.monotonic())):
                break
            await slots.acquire()
            if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                slots.release()
                break
            recorder.started()
            group.create_task(one(planner.next()))
            index += 1


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``; True as soon as ``stop`` is set."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def run_load(
    config: LoadConfig,
    *,
    on_progress: Callable[[LoadSnapshot], None] | None = None,
    client: httpx.AsyncClient | None = None,
    progress_interval: float = 1.0,
    prices: PriceTable | None = None,
    stop: asyncio.Event | None = None,
) -> LoadSummary:
    """Send the configured load and summarise it.

    ``on_progress`` gets a snapshot every ``progress_interval`` seconds and
    once at the end. A ``client`` passed in is used as is and left open;
    otherwise one sized for the load is created and closed. Cost uses
    ``prices`` (default: :meth:`PriceTable.default`). Setting ``stop`` ends the
    load early but gracefully: nothing new is sent, and the requests in flight
    finish (and are summarised) rather than being cut off.
    """
    stop = stop or asyncio.Event()
    planner = _Planner(config)
    width = config.concurrency if config.concurrency is not None else config.max_in_flight
    own_client = client is None
    http = client or httpx.AsyncClient(
        timeout=httpx.Timeout(config.timeout),
        limits=httpx.Limits(max_connections=width, max_keepalive_connections=width),
    )
    # The clock starts after the client exists: building one (TLS context) can take 100+ ms.
    recorder = Recorder()
    deadline = recorder.start + config.duration if config.duration is not None else None

    async def report() -> None:
        assert on_progress is not None
        while True:
            await asyncio.sleep(progress_interval)
            on_progress(recorder.snapshot())

    ticker = asyncio.create_task(report()) if on_progress is not None else None
    try:
        if config.concurrency is not None:
            await _closed_loop(config, http, planner, recorder, deadline, stop)
        else:
            await _open_loop(config, http, planner, recorder, deadline, stop)
    finally:
        recorder.end = time.monotonic()
        if ticker is not None:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
        if own_client:
            await http.aclose()
    if on_progress is not None:
        on_progress(recorder.snapshot())
    return recorder.summary(prices if prices is not None else PriceTable.default())


# --------------------------------------------------------------------------- display


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}ms"


def render_progress(snapshot: LoadSnapshot) -> str:
    """One status line: elapsed, sent, ok, errors, rate, p50/p99."""
    return (
        f"{snapshot.elapsed:6.1f}s  sent {snapshot.sent}  ok {snapshot.ok}  "
        f"errors {snapshot.errors}  in-flight {snapshot.in_flight}  "
        f"{snapshot.rps:.1f} req/s  p50 {_ms(snapshot.latency_p50)}  "
        f"p99 {_ms(snapshot.latency_p99)}"
    )


def _breakdown(counts: Mapping[Any, int]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in counts.items()) or "-"


def render_summary(summary: LoadSummary) -> str:
    """A plain-text two-column table of the run."""
    t = summary.tokens
    rows = [
        ("requests", str(summary.requests)),
        ("successes", str(summary.successes)),
        ("errors", str(summary.errors)),
        ("  by status", _breakdown(summary.errors_by_status)),
        ("  by fault", _breakdown(summary.errors_by_fault)),
        ("requests by model", _breakdown(summary.requests_by_model)),
        ("elapsed", f"{summary.elapsed:.2f}s"),
        ("achieved rate", f"{summary.achieved_rps:.2f} req/s"),
        (
            "latency p50/p95/p99",
            " / ".join(
                _ms(v) for v in (summary.latency_p50, summary.latency_p95, summary.latency_p99)
            ),
        ),
        ("ttft p50/p95", " / ".join(_ms(v) for v in (summary.ttft_p50, summary.ttft_p95))),
        ("tokens input", str(t.input)),
        ("tokens output", str(t.output)),
        ("tokens cache_read", str(t.cache_read)),
        ("tokens cache_write", str(t.cache_write)),
        ("cost", f"${summary.cost_usd:.6f}"),
    ]
    if summary.unpriced_models:
        rows.append(("unpriced models", ", ".join(summary.unpriced_models)))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)


def run_loadgen_cli(
    config: LoadConfig, *, out: TextIO | None = None, err: TextIO | None = None
) -> LoadSummary:
    """Run the load from synchronous code with a live progress line, then print the summary.

    On a terminal the progress line is redrawn in place every second; when
    stderr is a file or pipe a plain line is written every five seconds so
    logs stay readable. The summary goes to ``out`` (stdout).
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    tty = err.isatty()

    def show(snapshot: LoadSnapshot) -> None:
        line = render_progress(snapshot)
        if tty:
            err.write(f"\r\x1b[2K{line}")
        else:
            err.write(f"{line}\n")
        err.flush()

    summary = asyncio.run(run_load(config, on_progress=show, progress_interval=1.0 if tty else 5.0))
    if tty:
        err.write("\n")
        err.flush()
    out.write(render_summary(summary) + "\n")
    out.flush()
    return summary
