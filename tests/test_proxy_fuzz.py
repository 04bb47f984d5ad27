"""Fuzzing the proxy's request bodies and headers: it refuses or forwards, never crashes.

Clients send anything: wrong types for every field, nested garbage, huge or
non-UTF-8 bodies, odd content types, header values with non-ASCII bytes. For
every request the proxy either refuses it itself, with a 4xx whose JSON body
has the endpoint's API error shape, or forwards it and hands back exactly what
the mock upstream answered. It never answers 500 from its own code, counts
every request once, writes one access-log line for it, and its metrics still
parse afterwards.

Speed: the client reaches the proxy in-process (``httpx.ASGITransport``,
which raises any exception the app lets escape, so a crash fails the example
with its traceback); the proxy reaches the mock upstream over real loopback
HTTP, so what it forwards passes a real HTTP/1.1 parser. The last tests
replay the cases the fuzzing found through real uvicorn servers on both hops.

Hypothesis is derandomized: every run tries the same examples.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import structlog
from anyio.from_thread import start_blocking_portal
from asgi_server import serve_asgi
from fastapi import FastAPI
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from proxy_harness import ANTHROPIC_MODEL, OPENAI_MODEL
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ccobs.demo.upstream import Delay, UpstreamConfig, create_upstream_app
from ccobs.logging import configure_logging
from ccobs.metrics import PrometheusMetrics
from ccobs.proxy.app import create_proxy_app
from ccobs.proxy.config import ProxyConfig
from ccobs.settings import ObservabilitySettings

FAST = UpstreamConfig(
    seed=7, ttft=Delay(0.002), latency=Delay(0.002), inter_token_delay=0.0, output_tokens=(1, 12)
)
PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NOT_FORWARDED = {
    b"connection",
    b"keep-alive",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"upgrade",
    b"accept-encoding",
    b"content-encoding",
    b"x-request-id",
}
"""Client headers the proxy does not pass on: hop-by-hop ones, and those it sets itself."""
NEVER_FORWARDED = {b"keep-alive", b"proxy-authorization", b"te", b"trailer", b"upgrade"}
"""Of those, the ones the proxy's own HTTP client never sets either."""


# -- the upstream, recorded ---------------------------------------------------------------------


@dataclass
class Seen:
    """One request as the upstream received it and the answer it sent."""

    headers: list[tuple[bytes, bytes]]
    body: bytearray = field(default_factory=bytearray)
    status: int | None = None
    answer_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    answer: bytearray = field(default_factory=bytearray)


class Recorder:
    """Wraps the mock upstream app and keeps every exchange by the ``x-request-id`` it got.

    Each answer is recorded before it is sent, so once the proxy's client has
    its response the record is complete.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: dict[str, Seen] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = list(scope["headers"])
        request_id = dict(headers).get(b"x-request-id", b"").decode("latin-1")
        seen = self.seen[request_id] = Seen(headers)

        async def recording_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen.body += message.get("body", b"")
            return message

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen.status = message["status"]
                seen.answer_headers = list(message.get("headers", ()))
            elif message["type"] == "http.response.body":
                seen.answer += message.get("body", b"")
            await send(message)

        await self.app(scope, recording_receive, recording_send)


# -- the proxy, in-process ----------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: httpx.Headers
    content: bytes


class LogLines:
    """A logging stream that keeps what is written as a list, so reading new lines is cheap."""

    def __init__(self) -> None:
        self.written: list[str] = []

    def write(self, text: str) -> int:
        self.written.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def access_lines_since(self, mark: int) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in "".join(self.written[mark:]).splitlines() if line]
        return [line for line in lines if line["event"] in ("request_success", "request_error")]


Requester = Callable[[str, str, bytes, list[tuple[bytes, bytes]]], Reply]


@dataclass
class ProxyStack:
    """A proxy in front of the recorded upstream: how to reach it, its metrics, its log lines."""

    request: Requester
    recorder: Recorder
    registry: CollectorRegistry
    logs: LogLines

    def post(self, path: str, content: bytes, headers: list[tuple[bytes, bytes]]) -> Reply:
        return self.request("POST", path, content, headers)

    def get(self, path: str) -> Reply:
        return self.request("GET", path, b"", [])

    def requests(self) -> float:
        return sum(
            sample.value
            for family in self.registry.collect()
            for sample in family.samples
            if sample.name == "ccproxy_requests_total"
        )


# Module-scoped: starting servers per example would dominate the run time.


@pytest.fixture(scope="module")
def logs() -> Iterator[LogLines]:
    """JSON log lines of every request in this module; logging is restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    lines = LogLines()
    configure_logging("INFO", "json", stream=lines)  # type: ignore[arg-type]
    yield lines
    structlog.reset_defaults()
    root.handlers[:], root.level = saved


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Recorder]]:
    """The mock upstream on a loopback port, recorded."""
    recorder = Recorder(create_upstream_app(FAST))
    with serve_asgi(recorder) as server:
        yield server.url, recorder


def _proxy_app(upstream_url: str, registry: CollectorRegistry) -> FastAPI:
    return create_proxy_app(
        ProxyConfig(upstream_url=upstream_url, read_timeout=10.0),
        metrics=PrometheusMetrics(registry=registry),
        settings=ObservabilitySettings(),
    )


@pytest.fixture(scope="module")
def in_process(logs: LogLines, upstream: tuple[str, Recorder]) -> Iterator[ProxyStack]:
    """The proxy app called in-process through ``httpx.ASGITransport``, on a portal's loop."""
    url, recorder = upstream
    registry = CollectorRegistry()
    app = _proxy_app(url, registry)
    with start_blocking_portal() as portal:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://proxy", timeout=30
        )

        def request(
            method: str, path: str, content: bytes, headers: list[tuple[bytes, bytes]]
        ) -> Reply:
            async def send() -> Reply:
                response = await client.request(method, path, content=content, headers=headers)
                return Reply(response.status_code, response.headers, response.content)

            return portal.call(send)

        with portal.wrap_async_context_manager(app.router.lifespan_context(app)):
            yield ProxyStack(request, recorder, registry, logs)
            portal.call(client.aclose)


@pytest.fixture(scope="module")
def over_http(logs: LogLines, upstream: tuple[str, Recorder]) -> Iterator[ProxyStack]:
    """The proxy served by uvicorn on a loopback port."""
    url, recorder = upstream
    registry = CollectorRegistry()
    with (
        serve_asgi(_proxy_app(url, registry), lifespan="on") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):

        def request(
            method: str, path: str, content: bytes, headers: list[tuple[bytes, bytes]]
        ) -> Reply:
            response = client.request(method, path, content=content, headers=headers)
            return Reply(response.status_code, response.headers, response.content)

        yield ProxyStack(request, recorder, registry, logs)


# -- what every answer must satisfy -------------------------------------------------------------


def assert_api_error_body(api: str, reply: Reply) -> None:
    """The error shape the endpoint's SDK parses: Anthropic's or OpenAI's."""
    assert reply.headers["content-type"].startswith("application/json")
    body = json.loads(reply.content)
    if api == "anthropic":
        assert body["type"] == "error"
        assert isinstance(body["error"]["type"], str)
        assert body["error"]["message"]
    else:
        assert isinstance(body["error"]["type"], str)
        assert body["error"]["message"]
        assert set(body["error"]) >= {"message", "type", "param", "code"}


def our_request_id(headers: httpx.Headers) -> str:
    """The proxy's request id in a reply: ``x-request-id``, unless the upstream's answer had
    one of its own (OpenAI's), relayed untouched, with ours beside it in ``x-ccobs-request-id``.
    """
    ids = headers.get_list("x-request-id")
    assert len(ids) == 1, ids  # one x-request-id: the upstream's or ours, never both
    return headers.get("x-ccobs-request-id", ids[0])


def exchange(
    stack: ProxyStack, api: str, content: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[Reply, Seen | None]:
    """Send one request; check it was answered, counted and logged once; return what happened.

    A reply is either the upstream's answer, byte for byte, or the proxy's own
    refusal: a 4xx in the endpoint's error format. Anything else fails.
    """
    counted = stack.requests()
    mark = len(stack.logs.written)
    reply = stack.post(PATHS[api], content, headers)

    request_id = our_request_id(reply.headers)
    assert SAFE_REQUEST_ID.match(request_id)
    seen = stack.recorder.seen.pop(request_id, None)
    if seen is None:  # refused by the proxy itself
        assert 400 <= reply.status < 500, reply.content[:300]
        assert_api_error_body(api, reply)
    else:  # forwarded: the client gets what the upstream answered
        assert reply.status == seen.status
        assert reply.content == bytes(seen.answer)
        content_type = dict(seen.answer_headers).get(b"content-type", b"").decode("latin-1")
        assert reply.headers.get("content-type", "") == content_type
        assert bytes(seen.body) == content
    deadline = time.monotonic() + 10  # over HTTP, counting and logging follow the last byte
    while time.monotonic() < deadline and (
        stack.requests() == counted or not stack.logs.access_lines_since(mark)
    ):
        time.sleep(0.005)
    assert stack.requests() == counted + 1
    lines = stack.logs.access_lines_since(mark)
    assert [line["request_id"] for line in lines] == [request_id]
    assert lines[0]["status"] == reply.status
    return reply, seen


def assert_metrics_parse(stack: ProxyStack) -> None:
    """``/metrics`` still renders, parses, and holds no negative or NaN token count."""
    reply = stack.get("/metrics")
    assert reply.status == 200
    families = {f.name: f for f in text_string_to_metric_families(reply.content.decode())}
    assert "ccproxy_requests" in families
    for family in ("ccproxy_tokens", "ccproxy_cost_usd"):
        for sample in families[family].samples if family in families else ():
            assert sample.value >= 0  # NaN fails this too


# -- strategies ---------------------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),
    st.text(max_size=20),
)
GARBAGE = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
MESSAGES = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system"]), "content": st.text(max_size=40)}
    ),
    min_size=1,
    max_size=3,
)


def request_objects(api: str) -> st.SearchStrategy[dict[str, Any]]:
    """Request-shaped JSON objects: each field present or not, well-typed or garbage."""
    model = ANTHROPIC_MODEL if api == "anthropic" else OPENAI_MODEL
    fields = st.fixed_dictionaries(
        {},
        optional={
            "model": st.one_of(
                st.sampled_from([model, "claude-imaginary-9", ""]), st.text(max_size=30), GARBAGE
            ),
            "max_tokens": st.one_of(st.integers(min_value=1, max_value=16), GARBAGE),
            "max_completion_tokens": GARBAGE,
            "messages": st.one_of(MESSAGES, GARBAGE),
            "stream": st.one_of(st.booleans(), GARBAGE),
            "stream_options": st.one_of(st.just({"include_usage": True}), GARBAGE),
            "system": GARBAGE,
            "temperature": GARBAGE,
        },
    )
    extra = st.dictionaries(st.text(max_size=10), GARBAGE, max_size=2)
    return st.builds(lambda f, e: {**e, **f}, fields, extra)


def well_formed(api: str) -> st.SearchStrategy[dict[str, Any]]:
    """Requests the upstream accepts, so forwarding and streaming are exercised too."""
    model = ANTHROPIC_MODEL if api == "anthropic" else OPENAI_MODEL
    return st.fixed_dictionaries(
        {
            "model": st.just(model),
            "max_tokens": st.integers(min_value=1, max_value=16),
            "messages": MESSAGES,
            "stream": st.booleans(),
        }
    )


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def encodings(objects: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """JSON text as UTF-8, raw non-ASCII (lone surrogates become invalid UTF-8), or UTF-16."""
    return st.one_of(
        objects.map(lambda o: json.dumps(o).encode()),
        objects.map(lambda o: json.dumps(o, ensure_ascii=False).encode("utf-8", "surrogatepass")),
        objects.map(lambda o: json.dumps(o).encode("utf-16")),
    )


@st.composite
def truncated(draw: st.DrawFn, objects: st.SearchStrategy[dict[str, Any]]) -> bytes:
    text = json.dumps(draw(objects)).encode()
    return text[: draw(st.integers(min_value=0, max_value=max(0, len(text) - 1)))]


def bodies(api: str) -> st.SearchStrategy[bytes]:
    model = (ANTHROPIC_MODEL if api == "anthropic" else OPENAI_MODEL).encode()
    depths = st.sampled_from([1, 60, 200, 950, 5_000, 200_000])
    sizes = st.sampled_from([1_000, 100_000, 2_000_000])
    return st.one_of(
        encodings(request_objects(api)),
        encodings(well_formed(api)),
        truncated(request_objects(api)),
        GARBAGE.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=300),
        st.just(b""),
        depths.map(nested),
        depths.map(
            lambda d: (
                b'{"model":"' + model + b'","max_tokens":5,"messages":[{"role":"user",'
                b'"content":' + nested(d) + b"}]}"
            )
        ),
        sizes.map(
            lambda n: json.dumps(
                {"model": "m" * n, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
            ).encode()
        ),
        sizes.map(
            lambda n: json.dumps(
                {
                    "model": model.decode(),
                    "max_tokens": 5,
                    "messages": [{"role": "user", "content": "é☃\U0001f600" * (n // 3)}],
                },
                ensure_ascii=False,
            ).encode()
        ),
    )


CONTENT_TYPES = st.sampled_from(
    [
        None,
        b"application/json",
        b"application/json; charset=utf-16",
        b"text/plain",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=zz",
        b"text/event-stream",
        "☃/é".encode(),
    ]
)
MOCK_STATUS = st.sampled_from([None, b"200", b"400", b"429", b"500", b"529", b"nope"])

# What a real HTTP/1.1 server hands on as a header value: no NUL, CR, LF, VT or FF,
# no whitespace at either end (servers strip it); any other byte, obs-text included.
_VALUE_BYTES = st.sampled_from([b for b in range(256) if b not in (0, 9, 10, 11, 12, 13, 32)]).map(
    lambda b: bytes([b])
)
HEADER_VALUES = st.one_of(
    st.lists(st.one_of(_VALUE_BYTES, st.just(b" "), st.just(b"\t")), max_size=40)
    .map(b"".join)
    .map(lambda v: v.strip(b" \t")),
    st.text(st.characters(exclude_characters="\x00\n\r\x0b\x0c"), min_size=1, max_size=20).map(
        lambda t: t.encode("utf-8", "surrogatepass").strip(b" \t")
    ),
    st.sampled_from([b"", b"a" * 4_000, "naïve ☃".encode(), b"\xff\xfe\xfd", b"\x01\x7f"]),
)
HEADER_NAMES = st.sampled_from(
    [
        b"x-request-id",
        b"user-agent",
        b"x-note",
        b"anthropic-version",
        b"anthropic-beta",
        b"authorization",
        b"x-api-key",
        b"accept",
        b"accept-encoding",
        b"content-encoding",
        b"cookie",
        b"content-type",
        b"expect",
        b"te",
        b"connection",
        b"via",
        b"x-forwarded-for",
        b"x-mock-output-tokens",
    ]
)


def with_content_type(content_type: bytes | None) -> list[tuple[bytes, bytes]]:
    return [] if content_type is None else [(b"content-type", content_type)]


# -- bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_any_body_is_refused_in_the_api_format_or_answered_by_the_upstream(
    in_process: ProxyStack, api: str
) -> None:
    """Wrong types, garbage, huge, deep or undecodable bodies never reach a 500 from the proxy.

    Also holds for a mock status the upstream applies: the proxy passes its
    answer on whatever it is.
    """

    @FUZZ
    @given(body=bodies(api), content_type=CONTENT_TYPES, mock_status=MOCK_STATUS)
    @example(body=nested(200_000), content_type=b"application/json", mock_status=None)
    @example(body=b'{"model": "\xff\xfe"}', content_type=None, mock_status=None)
    @example(
        body=b'{"model":"\\ud800","max_tokens":5,"messages":[{"role":"user","content":"x"}]}',
        content_type=b"application/json",
        mock_status=None,
    )
    def run(body: bytes, content_type: bytes | None, mock_status: bytes | None) -> None:
        headers = with_content_type(content_type)
        if mock_status is not None:
            headers.append((b"x-mock-status", mock_status))
        exchange(in_process, api, body, headers)

    run()
    assert_metrics_parse(in_process)


def test_fuzzed_bodies_reach_the_upstream_and_the_refusal_path_alike(
    in_process: ProxyStack,
) -> None:
    """The body strategies are not all refusals: streams and whole answers go through too.

    Guards the fuzz tests above from passing by never forwarding anything.
    """
    outcomes: set[tuple[int, bool, bool]] = set()  # (status, forwarded, streamed)

    @settings(FUZZ, max_examples=100)
    @given(body=bodies("anthropic"))
    def run(body: bytes) -> None:
        reply, seen = exchange(in_process, "anthropic", body, [])
        streamed = reply.headers.get("content-type", "").startswith("text/event-stream")
        outcomes.add((reply.status, seen is not None, streamed))

    run()
    assert (200, True, True) in outcomes
    assert (200, True, False) in outcomes
    assert (400, False, False) in outcomes  # refused by the proxy
    assert (400, True, False) in outcomes  # refused by the upstream


def test_huge_model_name_is_forwarded_whole_but_logged_bounded(over_http: ProxyStack) -> None:
    """A 1 MB model name reaches the upstream untouched (it is the upstream's to refuse),
    while the access-log line and the labels keep only its first 256 characters."""
    body = json.dumps(
        {"model": "m" * 1_000_000, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    ).encode()
    mark = len(over_http.logs.written)

    exchange(over_http, "anthropic", body, [])

    (line,) = over_http.logs.access_lines_since(mark)
    assert line["model"] == "m" * 256
    assert sum(map(len, over_http.logs.written[mark:])) < 5_000


# -- headers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_any_header_value_is_forwarded_byte_for_byte_or_dropped_as_hop_by_hop(
    in_process: ProxyStack, api: str
) -> None:
    """Non-ASCII, binary, empty or 4 KB header values: forwarded as sent, never a 500.

    ``x-request-id`` is special: the proxy keeps a safe client id and replaces
    any other, and the upstream sees the same id the client gets back.
    """

    @settings(FUZZ, max_examples=150)
    @given(
        headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=4),
        stream=st.booleans(),
    )
    @example(headers=[(b"user-agent", "é".encode())], stream=False)
    @example(headers=[(b"x-note", b"\xff\xfe")], stream=True)
    @example(headers=[(b"x-request-id", "☃".encode())], stream=False)
    def run(headers: list[tuple[bytes, bytes]], stream: bool) -> None:
        body = json.dumps(
            {
                "model": ANTHROPIC_MODEL if api == "anthropic" else OPENAI_MODEL,
                "max_tokens": 8,
                "stream": stream,
                "messages": [{"role": "user", "content": "hi"}],
            }
        ).encode()
        reply, seen = exchange(in_process, api, body, headers)
        assert seen is not None, "a valid body with any headers is forwarded"
        sent_id = [v for k, v in headers if k == b"x-request-id"]
        upstream_ids = [v for k, v in seen.headers if k == b"x-request-id"]
        assert upstream_ids == [our_request_id(reply.headers).encode()]
        if len(sent_id) == 1 and SAFE_REQUEST_ID.match(sent_id[0].decode("latin-1")):
            assert upstream_ids == sent_id
        forwarded = [(k, v) for k, v in headers if k not in NOT_FORWARDED]
        for header in forwarded:
            assert header in seen.headers
        assert not any(k in NEVER_FORWARDED for k, _ in seen.headers)

    run()
    assert_metrics_parse(in_process)


# -- the same cases over real HTTP on both hops -------------------------------------------------


NASTY: list[tuple[str, bytes | None, list[tuple[bytes, bytes]]]] = [
    # (case, body or None for a valid one, headers)
    ("deeply nested body", nested(200_000), []),
    ("invalid UTF-8 body", b'{"model": "\xff\xfe"}', []),
    ("empty body", b"", [(b"content-type", b"application/json")]),
    ("lone surrogate model", b'{"model":"\\ud800","max_tokens":5,"messages":[]}', []),
    ("UTF-8 user agent", None, [(b"user-agent", "naïve ☃".encode())]),
    ("obs-text header", None, [(b"x-note", b"\xff\xfe")]),
    ("unsafe request id", None, [(b"x-request-id", b"a b\xff")]),
]


@pytest.mark.parametrize(("case", "content", "headers"), NASTY, ids=[n for n, _, _ in NASTY])
@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_cases_found_by_fuzzing_hold_over_real_http(
    over_http: ProxyStack,
    api: str,
    case: str,
    content: bytes | None,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """What the in-process fuzzing found holds with uvicorn parsing both hops: never a 500."""
    valid = {
        "model": ANTHROPIC_MODEL if api == "anthropic" else OPENAI_MODEL,
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
    }
    body = json.dumps(valid).encode() if content is None else content
    reply, _ = exchange(over_http, api, body, headers)

    assert reply.status in (200, 400)
    assert_metrics_parse(over_http)
