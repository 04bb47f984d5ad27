"""The load generator sends bounded, real API traffic and reports what it saw.

Runs against the real mock upstream on loopback; the mock's recorded
decisions are the ground truth the summary is checked against.
"""

from __future__ import annotations

import io
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from asgi_server import serve_asgi
from starlette.types import ASGIApp, Receive, Scope, Send

from ccobs.demo.callers import DEMO_CALLERS
from ccobs.demo.loadgen import (
    LoadConfig,
    LoadSnapshot,
    LoadSummary,
    TokenCounts,
    percentile,
    render_progress,
    render_summary,
    run_load,
    run_loadgen_cli,
)
from ccobs.demo.mock_rate_limits import SUBSCRIPTION_TOKEN_PREFIX
from ccobs.demo.upstream import (
    Decision,
    Delay,
    MockUpstream,
    UpstreamConfig,
    create_upstream_app,
    get_upstream,
)
from ccobs.pricing import PriceTable
from ccobs.proxy.sse import ServerSentEvent, SSEDecoder, encode_event, iter_events

FAST = UpstreamConfig(
    seed=1,
    ttft=Delay(0.002),
    latency=Delay(0.003),
    inter_token_delay=0.0002,
    output_tokens=(5, 30),
)
MIX: dict[str, Any] = {
    "models": {"claude-sonnet-4-6": 2.0, "claude-haiku-4-5": 1.0},
    "openai_models": {"gpt-4.1-mini": 1.0},
    "openai_share": 0.4,
    "stream_share": 0.5,
    "seed": 9,
    "timeout": 10.0,
}

pytestmark = pytest.mark.anyio


class Mock:
    def __init__(self, url: str, upstream: MockUpstream) -> None:
        self.url = url
        self.upstream = upstream

    def decisions(self) -> list[Decision]:
        return list(self.upstream.decisions)


@pytest.fixture
def start_mock() -> Iterator[Callable[..., Mock]]:
    """Start mock upstreams (default: fast and fault-free); all stop at teardown."""
    contexts: list[Any] = []

    def start(config: UpstreamConfig = FAST) -> Mock:
        app = create_upstream_app(config)
        context = serve_asgi(app)
        contexts.append(context)
        return Mock(context.__enter__().url, get_upstream(app))

    yield start
    for context in reversed(contexts):
        context.__exit__(None, None, None)


@pytest.fixture
def mock(start_mock: Callable[..., Mock]) -> Mock:
    return start_mock()


def billed(decisions: list[Decision]) -> TokenCounts:
    total = TokenCounts()
    for d in decisions:
        if d.ok:
            total += TokenCounts(
                d.input_tokens, d.output_tokens, d.cache_read_tokens, d.cache_write_tokens
            )
    return total


# --------------------------------------------------------------------------- counting


async def test_request_count_mode_sends_exactly_that_many_requests(mock: Mock) -> None:
    summary = await run_load(LoadConfig(target=mock.url, concurrency=4, requests=37, **MIX))

    assert summary.requests == 37
    assert summary.successes == 37
    assert len(mock.decisions()) == 37


async def test_token_sums_equal_what_the_mock_reported(mock: Mock) -> None:
    summary = await run_load(LoadConfig(target=mock.url, concurrency=5, requests=60, **MIX))

    decisions = mock.decisions()
    assert {d.api for d in decisions} == {"anthropic", "openai"}
    assert {d.stream for d in decisions} == {True, False}
    assert summary.tokens == billed(decisions)


async def test_cost_is_the_default_price_of_the_reported_tokens(mock: Mock) -> None:
    summary = await run_load(LoadConfig(target=mock.url, concurrency=5, requests=30, **MIX))

    prices = PriceTable.default()
    expected = 0.0
    for d in mock.decisions():
        cost = prices.cost(
            d.model, d.input_tokens, d.output_tokens, d.cache_read_tokens, d.cache_write_tokens
        )
        assert cost is not None
        expected += cost.total
    assert summary.cost_usd == pytest.approx(expected)
    assert summary.unpriced_models == ()


async def test_models_without_a_price_are_listed_not_costed(mock: Mock) -> None:
    summary = await run_load(
        LoadConfig(target=mock.url, concurrency=2, requests=4, models={"in-house-llm": 1.0})
    )

    assert summary.cost_usd == 0.0
    assert summary.unpriced_models == ("in-house-llm",)


async def test_requests_are_counted_by_model(mock: Mock) -> None:
    summary = await run_load(LoadConfig(target=mock.url, concurrency=5, requests=40, **MIX))

    assert summary.requests_by_model == dict(
        sorted(Counter(d.model for d in mock.decisions()).items())
    )


async def test_streams_measure_time_to_first_token(mock: Mock) -> None:
    summary = await run_load(
        LoadConfig(
            target=mock.url,
            concurrency=2,
            requests=4,
            stream_share=1.0,
            headers={"x-mock-ttft-ms": "80"},
        )
    )

    assert summary.ttft_p50 is not None
    assert summary.ttft_p50 >= 0.08
    assert summary.latency_p50 is not None
    assert summary.latency_p50 >= summary.ttft_p50


async def test_non_streaming_requests_have_no_time_to_first_token(mock: Mock) -> None:
    summary = await run_load(
        LoadConfig(target=mock.url, concurrency=2, requests=4, stream_share=0.0)
    )

    assert summary.ttft_p50 is None
    assert summary.latency_p50 is not None


# --------------------------------------------------------------------------- errors


async def test_errors_are_counted_by_status_under_injected_error_rate(
    start_mock: Callable[..., Mock],
) -> None:
    failing = start_mock(replace(FAST, seed=3, error_rate=0.45))

    summary = await run_load(LoadConfig(target=failing.url, concurrency=5, requests=120, **MIX))

    decisions = failing.decisions()
    expected = Counter(d.status for d in decisions if d.status != 200)
    assert summary.errors_by_status == dict(sorted(expected.items()))
    assert set(expected) == {429, 500, 503, 529}
    assert summary.errors == sum(expected.values())
    assert summary.tokens == billed(decisions)


async def test_dropped_connections_count_as_protocol_faults(mock: Mock) -> None:
    summary = await run_load(
        LoadConfig(target=mock.url, concurrency=3, requests=6, headers={"x-mock-fault": "drop"})
    )

    assert summary.successes == 0
    assert summary.errors_by_fault == {"protocol_error": 6}
    assert summary.tokens == TokenCounts()


async def test_hung_requests_count_as_timeouts_after_the_request_timeout(mock: Mock) -> None:
    started = time.monotonic()

    summary = await run_load(
        LoadConfig(
            target=mock.url,
            concurrency=3,
            requests=3,
            timeout=0.2,
            headers={"x-mock-fault": "timeout"},
        )
    )

    assert summary.errors_by_fault == {"timeout": 3}
    assert time.monotonic() - started < 2.0


async def test_unreachable_target_counts_as_connect_errors() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more.

    summary = await run_load(
        LoadConfig(target=f"http://127.0.0.1:{port}", concurrency=2, requests=2, timeout=2.0)
    )

    assert summary.errors_by_fault == {"connect_error": 2}


def scripted(*frames: bytes, body: bytes = b"", hold_open: bool = False) -> ASGIApp:
    """Answer every request 200 with ``frames`` as an event stream, or with ``body`` as JSON.

    ``hold_open`` keeps the response open after the frames until the client leaves.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        while (await receive()).get("more_body"):
            pass
        kind = b"text/event-stream" if frames else b"application/json"
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]}
        )
        for frame in frames:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        if hold_open:
            await receive()  # http.disconnect
        await send({"type": "http.response.body", "body": body})

    return app


ANTHROPIC_OPENING = encode_event(
    {"type": "message_start", "message": {"usage": {"input_tokens": 10, "output_tokens": 1}}},
    "message_start",
) + encode_event(
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    "content_block_delta",
)
ANTHROPIC_ENDING = encode_event(
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}},
    "message_delta",
) + encode_event({"type": "message_stop"}, "message_stop")
STREAMS: dict[str, Any] = {"concurrency": 1, "requests": 2, "stream_share": 1.0, "timeout": 5.0}


async def test_error_event_in_a_stream_counts_as_a_stream_error() -> None:
    error = encode_event({"type": "error", "error": {"type": "overloaded_error"}}, "error")

    with serve_asgi(scripted(ANTHROPIC_OPENING, error)) as server:
        summary = await run_load(LoadConfig(target=server.url, **STREAMS))

    assert summary.errors_by_fault == {"stream_error": 2}
    assert summary.tokens == TokenCounts()


async def test_anthropic_stream_ending_before_message_stop_counts_as_incomplete() -> None:
    with serve_asgi(scripted(ANTHROPIC_OPENING)) as server:
        summary = await run_load(LoadConfig(target=server.url, **STREAMS))

    assert summary.errors_by_fault == {"incomplete_stream": 2}


async def test_openai_stream_ending_before_done_counts_as_incomplete() -> None:
    chunk = encode_event({"choices": [{"index": 0, "delta": {"content": "Hi"}}]})

    with serve_asgi(scripted(chunk)) as server:
        summary = await run_load(LoadConfig(target=server.url, openai_share=1.0, **STREAMS))

    assert summary.errors_by_fault == {"incomplete_stream": 2}


async def test_unreadable_stream_event_counts_as_a_bad_response() -> None:
    garbled = b"event: message_start\ndata: {not json\n\n"

    with serve_asgi(scripted(garbled, ANTHROPIC_ENDING)) as server:
        summary = await run_load(LoadConfig(target=server.url, **STREAMS))

    assert summary.errors_by_fault == {"bad_response": 2}


async def test_response_without_usage_counts_as_a_bad_response() -> None:
    with serve_asgi(scripted(body=b'{"type": "message", "content": []}')) as server:
        summary = await run_load(
            LoadConfig(target=server.url, concurrency=1, requests=2, stream_share=0.0)
        )

    assert summary.errors_by_fault == {"bad_response": 2}


async def test_stream_is_read_only_up_to_its_terminating_event() -> None:
    app = scripted(ANTHROPIC_OPENING, ANTHROPIC_ENDING, hold_open=True)

    with serve_asgi(app) as server:
        summary = await run_load(LoadConfig(target=server.url, **STREAMS))

    assert summary.successes == 2
    assert summary.tokens == TokenCounts(input=20, output=14)
    assert summary.ttft_p50 is not None
    assert summary.latency_p99 is not None
    assert summary.latency_p99 < 1.0


# --------------------------------------------------------------------------- pacing and bounds


async def test_rate_mode_stops_at_the_duration(mock: Mock) -> None:
    started = time.monotonic()

    summary = await run_load(LoadConfig(target=mock.url, rate=40, duration=0.5))

    assert time.monotonic() - started < 1.0
    assert 18 <= summary.requests <= 21


async def test_concurrency_mode_stops_at_the_duration(mock: Mock) -> None:
    started = time.monotonic()

    summary = await run_load(LoadConfig(target=mock.url, concurrency=4, duration=0.4))

    assert time.monotonic() - started < 1.0
    assert summary.requests > 4


async def test_rate_mode_spaces_requests_at_the_rate(mock: Mock) -> None:
    started = time.monotonic()

    summary = await run_load(LoadConfig(target=mock.url, rate=50, requests=11))

    assert summary.requests == 11
    assert time.monotonic() - started >= 0.2


async def test_concurrency_bounds_requests_in_flight(start_mock: Callable[..., Mock]) -> None:
    slow = start_mock(replace(FAST, ttft=Delay(0.03), latency=Delay(0.03)))
    snapshots: list[LoadSnapshot] = []

    await run_load(
        LoadConfig(target=slow.url, concurrency=3, requests=15),
        on_progress=snapshots.append,
        progress_interval=0.01,
    )

    assert max(s.in_flight for s in snapshots) == 3


async def test_rate_mode_caps_requests_in_flight(start_mock: Callable[..., Mock]) -> None:
    slow = start_mock(replace(FAST, ttft=Delay(0.1), latency=Delay(0.1)))
    snapshots: list[LoadSnapshot] = []

    summary = await run_load(
        LoadConfig(target=slow.url, rate=500, requests=10, max_in_flight=2),
        on_progress=snapshots.append,
        progress_interval=0.01,
    )

    assert summary.requests == 10
    assert max(s.in_flight for s in snapshots) <= 2


async def test_same_seed_sends_the_same_traffic(start_mock: Callable[..., Mock]) -> None:
    config = replace(FAST, seed=4, error_rate=0.2)
    summaries: list[LoadSummary] = []
    for _ in range(2):
        server = start_mock(config)
        summaries.append(
            await run_load(LoadConfig(target=server.url, concurrency=1, requests=25, **MIX))
        )

    first, second = summaries
    assert first.requests_by_model == second.requests_by_model
    assert first.errors_by_status == second.errors_by_status
    assert first.tokens == second.tokens


async def test_progress_is_reported_periodically_and_at_the_end(mock: Mock) -> None:
    snapshots: list[LoadSnapshot] = []

    await run_load(
        LoadConfig(target=mock.url, rate=50, requests=10),
        on_progress=snapshots.append,
        progress_interval=0.05,
    )

    assert len(snapshots) >= 3
    assert snapshots[-1].completed == 10
    assert snapshots[-1].in_flight == 0


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rate": 5.0, "concurrency": 2, "requests": 1}, "exactly one of rate"),
        ({"requests": 1}, "exactly one of rate"),
        ({"rate": 5.0, "duration": 1.0, "requests": 1}, "exactly one of duration"),
        ({"rate": 5.0}, "exactly one of duration"),
        ({"rate": 0.0, "requests": 1}, "rate must be > 0"),
        ({"concurrency": 0, "requests": 1}, "concurrency must be an int >= 1"),
        ({"concurrency": 1, "requests": 0}, "requests must be an int >= 1"),
        ({"concurrency": 1, "duration": -1.0}, "duration must be > 0"),
        ({"concurrency": 1, "requests": 1, "stream_share": 1.5}, "stream_share"),
        ({"concurrency": 1, "requests": 1, "openai_share": -0.1}, "openai_share"),
        ({"concurrency": 1, "requests": 1, "models": {}}, "models needs at least one"),
        ({"concurrency": 1, "requests": 1, "models": {"m": -1.0}}, r"models\['m'\]"),
        ({"concurrency": 1, "requests": 1, "timeout": 0.0}, "timeout"),
    ],
)
def test_invalid_config_is_rejected_with_a_clear_message(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LoadConfig(target="http://127.0.0.1:1", **overrides)


def test_target_must_be_an_http_url() -> None:
    with pytest.raises(ValueError, match="target"):
        LoadConfig(target="127.0.0.1:8080", concurrency=1, requests=1)


def test_extra_headers_stay_out_of_the_config_repr() -> None:
    config = LoadConfig(
        target="http://x", concurrency=1, requests=1, headers={"x-api-key": "sk-secret"}
    )

    assert "sk-secret" not in repr(config)


def test_openai_models_are_only_required_when_openai_traffic_is_asked_for() -> None:
    LoadConfig(target="http://x", concurrency=1, requests=1, openai_models={})

    with pytest.raises(ValueError, match="openai_models"):
        LoadConfig(target="http://x", concurrency=1, requests=1, openai_models={}, openai_share=1)


# --------------------------------------------------------------------------- Responses API


async def test_responses_share_sends_responses_traffic_counted_as_the_mock_reported(
    mock: Mock,
) -> None:
    summary = await run_load(
        LoadConfig(target=mock.url, concurrency=4, requests=60, responses_share=0.3, **MIX)
    )

    decisions = mock.decisions()
    assert summary.successes == 60
    assert {d.api for d in decisions} == {"anthropic", "openai", "responses"}
    responses = [d for d in decisions if d.api == "responses"]
    assert {d.stream for d in responses} == {True, False}
    assert {d.model for d in responses} == {"gpt-4.1-mini"}
    assert sum(d.reasoning_tokens for d in responses) > 0
    reasoning = sum(d.reasoning_tokens for d in decisions)
    assert summary.tokens == replace(billed(decisions), reasoning=reasoning)
    prices = PriceTable.default()
    expected = 0.0
    for d in decisions:
        cost = prices.cost(
            d.model, d.input_tokens, d.output_tokens, d.cache_read_tokens, d.cache_write_tokens
        )
        assert cost is not None
        expected += cost.total
    assert summary.cost_usd == pytest.approx(expected)


async def test_responses_streams_measure_time_to_first_token(mock: Mock) -> None:
    summary = await run_load(
        LoadConfig(
            target=mock.url,
            concurrency=2,
            requests=4,
            responses_share=1.0,
            stream_share=1.0,
            headers={"x-mock-ttft-ms": "80"},
        )
    )

    assert summary.successes == 4
    assert summary.ttft_p50 is not None
    assert summary.ttft_p50 >= 0.08


async def test_responses_share_only_turns_anthropic_requests_into_responses(
    start_mock: Callable[..., Mock],
) -> None:
    """One draw picks the API, so the rest of each request's plan stays as it was."""
    runs: list[list[Decision]] = []
    for share in (0.0, 0.3):
        server = start_mock(replace(FAST, seed=5))
        await run_load(
            LoadConfig(target=server.url, concurrency=1, requests=30, responses_share=share, **MIX)
        )
        runs.append(server.decisions())

    without, with_responses = runs
    changed = 0
    for before, after in zip(without, with_responses, strict=True):
        assert (before.stream, before.prompt_tokens) == (after.stream, after.prompt_tokens)
        if before.api != after.api:
            assert (before.api, after.api) == ("anthropic", "responses")
            changed += 1
        else:
            assert before.model == after.model
    assert changed > 0


async def test_responses_errors_are_counted_by_status(start_mock: Callable[..., Mock]) -> None:
    failing = start_mock(replace(FAST, seed=3, error_rate=0.45))

    summary = await run_load(
        LoadConfig(target=failing.url, concurrency=5, requests=60, responses_share=1.0)
    )

    decisions = failing.decisions()
    expected = Counter(d.status for d in decisions if d.status != 200)
    assert summary.errors_by_status == dict(sorted(expected.items()))
    assert set(expected) == {429, 500, 503}


async def test_dropped_responses_stream_counts_as_a_protocol_fault(mock: Mock) -> None:
    summary = await run_load(
        LoadConfig(
            target=mock.url,
            concurrency=2,
            requests=4,
            responses_share=1.0,
            stream_share=1.0,
            headers={"x-mock-fault": "drop"},
        )
    )

    assert summary.errors_by_fault == {"protocol_error": 4}
    assert summary.tokens == TokenCounts()


RESPONSES_OPENING = encode_event(
    {"type": "response.created", "sequence_number": 0, "response": {"status": "in_progress"}},
    "response.created",
) + encode_event(
    {"type": "response.output_text.delta", "sequence_number": 1, "delta": "Hi"},
    "response.output_text.delta",
)
RESPONSES_ONLY: dict[str, Any] = {**STREAMS, "responses_share": 1.0}


@pytest.mark.parametrize(
    "ending",
    [
        {"type": "response.failed", "response": {"error": {"code": "server_error"}}},
        {"type": "error", "code": "rate_limit_exceeded", "message": "Slow down."},
    ],
)
async def test_responses_failure_event_counts_as_a_stream_error(ending: dict[str, Any]) -> None:
    frames = RESPONSES_OPENING + encode_event(ending, ending["type"])

    with serve_asgi(scripted(frames)) as server:
        summary = await run_load(LoadConfig(target=server.url, **RESPONSES_ONLY))

    assert summary.errors_by_fault == {"stream_error": 2}


async def test_responses_stream_cut_short_by_a_limit_is_a_whole_answer() -> None:
    ending = {"type": "response.incomplete", "response": {"incomplete_details": {"reason": "x"}}}
    frames = RESPONSES_OPENING + encode_event(ending, ending["type"])

    with serve_asgi(scripted(frames)) as server:
        summary = await run_load(LoadConfig(target=server.url, **RESPONSES_ONLY))

    assert summary.errors_by_fault == {}
    assert summary.successes == 2


async def test_responses_stream_ending_before_completed_counts_as_incomplete() -> None:
    with serve_asgi(scripted(RESPONSES_OPENING)) as server:
        summary = await run_load(LoadConfig(target=server.url, **RESPONSES_ONLY))

    assert summary.errors_by_fault == {"incomplete_stream": 2}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"responses_share": 1.5}, "responses_share"),
        ({"responses_share": -0.1}, "responses_share"),
        ({"responses_share": 0.6, "openai_share": 0.5}, "openai_share \\+ responses_share"),
        ({"responses_share": 0.5, "openai_models": {}}, "openai_models"),
        (
            {"responses_share": 0.5, "openai_share": 0.5, "models": {}, "openai_models": {}},
            "openai_models",
        ),
    ],
)
def test_invalid_responses_share_is_rejected(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoadConfig(target="http://x", concurrency=1, requests=1, **overrides)


def test_anthropic_models_are_not_required_when_every_request_goes_to_openai() -> None:
    LoadConfig(
        target="http://x",
        concurrency=1,
        requests=1,
        models={},
        openai_share=0.5,
        responses_share=0.5,
    )


# --------------------------------------------------------------------------- display


SUMMARY = LoadSummary(
    requests=10,
    successes=8,
    errors_by_status={429: 1},
    errors_by_fault={"timeout": 1},
    requests_by_model={"claude-sonnet-4-6": 10},
    latency_p50=0.1234,
    latency_p95=0.5,
    latency_p99=0.9,
    ttft_p50=0.05,
    ttft_p95=0.08,
    tokens=TokenCounts(input=100, output=200, cache_read=300, cache_write=400),
    cost_usd=0.0123,
    unpriced_models=(),
    elapsed=2.0,
    achieved_rps=5.0,
)


def test_summary_table_shows_every_figure() -> None:
    text = render_summary(SUMMARY)

    for expected in (
        "requests             10",
        "successes            8",
        "errors               2",
        "429: 1",
        "timeout: 1",
        "123ms / 500ms / 900ms",
        "50ms / 80ms",
        "tokens cache_write   400",
        "$0.012300",
        "5.00 req/s",
    ):
        assert expected in text


def test_progress_is_a_single_line_with_the_running_figures() -> None:
    snapshot = LoadSnapshot(
        elapsed=3.0,
        sent=30,
        completed=28,
        ok=27,
        errors=1,
        in_flight=2,
        rps=9.3,
        latency_p50=0.2,
        latency_p99=None,
    )

    line = render_progress(snapshot)

    assert "\n" not in line
    for expected in ("3.0s", "sent 30", "ok 27", "errors 1", "9.3 req/s", "p50 200ms", "p99 -"):
        assert expected in line


def test_percentile_interpolates_between_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0]

    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 100) == 4.0
    assert percentile([], 50) is None


def test_cli_entry_prints_the_summary_and_plain_progress_off_a_terminal(
    start_mock: Callable[..., Mock],
) -> None:
    mock = start_mock()
    out, err = io.StringIO(), io.StringIO()

    summary = run_loadgen_cli(
        LoadConfig(target=mock.url, concurrency=2, requests=5), out=out, err=err
    )

    assert summary.requests == 5
    assert "requests" in out.getvalue()
    assert "sent 5" in err.getvalue()
    assert "\r" not in err.getvalue()


# --------------------------------------------------------------------------- SSE framing


async def parse(text: str) -> list[ServerSentEvent]:
    async def lines() -> AsyncIterator[str]:
        for line in text.split("\n"):
            yield line

    return [event async for event in iter_events(lines())]


async def test_sse_reader_joins_data_lines_and_skips_comments() -> None:
    events = await parse(": keep-alive\nevent: note\ndata: a\ndata: b\n\n")

    assert events == [ServerSentEvent(event="note", data="a\nb")]


async def test_sse_reader_drops_an_event_cut_off_by_the_end_of_the_stream() -> None:
    events = await parse("data: complete\n\ndata: cut off")

    assert [event.data for event in events] == ["complete"]


async def test_sse_writer_output_reads_back_as_the_same_event() -> None:
    frame = encode_event({"type": "ping"}, "ping").decode()

    assert await parse(frame) == [ServerSentEvent(event="ping", data='{"type":"ping"}')]


def test_byte_decoder_reassembles_events_split_anywhere() -> None:
    frames = encode_event('{"text":"h\u00e9llo"}', "delta") + encode_event("[DONE]")
    decoder = SSEDecoder()

    events = [event for i in range(len(frames)) for event in decoder.feed(frames[i : i + 1])]

    assert events == [
        ServerSentEvent(event="delta", data='{"text":"h\u00e9llo"}'),
        ServerSentEvent(event=None, data="[DONE]"),
    ]


def test_byte_decoder_treats_crlf_split_across_chunks_as_one_line_end() -> None:
    decoder = SSEDecoder()

    first = decoder.feed(b"data: a\r")
    rest = decoder.feed(b"\n\r\n")

    assert (first, rest) == ([], [ServerSentEvent(event=None, data="a")])


def test_byte_decoder_never_returns_an_unterminated_event() -> None:
    assert SSEDecoder().feed(b"event: message_stop\ndata: {}\n") == []


async def test_a_subscription_caller_authenticates_with_a_bearer_token_to_anthropic() -> None:
    app = create_upstream_app(FAST)
    seen: list[tuple[str, str]] = []

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            seen.append(
                (
                    headers.get(b"authorization", b"").decode(),
                    headers.get(b"x-api-key", b"").decode(),
                )
            )
        await app(scope, receive, send)

    frank = next(caller for caller in DEMO_CALLERS if caller.subscription)
    with serve_asgi(recording) as server:
        await run_load(LoadConfig(target=server.url, concurrency=1, requests=3, callers=(frank,)))

    assert seen == [(f"Bearer {frank.key}", "")] * 3
    assert frank.key.startswith(SUBSCRIPTION_TOKEN_PREFIX)
