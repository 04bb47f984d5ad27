"""ccobs.access_line: the access-log line written straight to ccobs's handler is, byte for
byte, the line the logging chain writes, and the chain takes it whenever anything else
(another handler, a filter, another structlog set-up) would see or change it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from conftest import log_records, without_pytest_log_handlers
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

import ccobs
from ccobs.access_line import write_line
from ccobs.context import _REQUEST_LOGGER, _STDLIB_REQUEST_LOGGER, current_request_context
from ccobs.logging import configure_logging
from ccobs.redaction import REDACTED

pytestmark = pytest.mark.usefixtures("isolated_logging")

ANTHROPIC_KEY = "sk-ant-api03-" + "Qw9Er8Ty7Ui6Op5As4Df3Gh2Jk1Lz0Xc_-Vb9Nm8Qw7Er6Ty5-CCCCCC"
BEARER_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhY2Nlc3MtbGluZSJ9.bm90LWEtcmVhbC1zaWduYXR1cmU"
NOW = 1_764_000_000.987654
"""A fixed wall clock, so the two ways' timestamps agree to the millisecond."""

INFO = (logging.INFO, "info")
WARNING = (logging.WARNING, "warning")
ERROR = (logging.ERROR, "error")


class Status(IntEnum):
    OK = 200


class Leaky:
    """An object whose repr carries a key: the renderer would print it."""

    def __repr__(self) -> str:
        return f"Leaky(api_key={ANTHROPIC_KEY})"


@contextmanager
def json_logging(level: str = "DEBUG") -> Iterator[io.StringIO]:
    """ccobs's JSON logging into a buffer, a frozen clock, no other root handler."""
    clock = SimpleNamespace(time=lambda: NOW, strftime=time.strftime, gmtime=time.gmtime)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("ccobs.logging.time", clock)
        out = io.StringIO()
        configure_logging(level, "json", stream=out)
        yield out


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    with json_logging() as out:
        yield out


def ours() -> logging.Handler:
    """The root handler ``configure_logging`` installed."""
    [handler] = [h for h in logging.getLogger().handlers if hasattr(h, "line_writer")]
    return handler


def taken(out: io.StringIO) -> str:
    text = out.getvalue()
    out.seek(0)
    out.truncate()
    return text


def direct(level: tuple[int, str], event: str, fields: dict[str, Any]) -> None:
    """The line as the request's end writes it, pytest's capture handlers set aside."""
    with without_pytest_log_handlers():
        write_line(_REQUEST_LOGGER, _STDLIB_REQUEST_LOGGER, level[0], level[1], event, dict(fields))


def through_chain(level: tuple[int, str], event: str, fields: dict[str, Any]) -> None:
    method: Callable[..., Any] = getattr(_REQUEST_LOGGER, level[1])
    method(event, **fields)


def both_ways(
    out: io.StringIO, level: tuple[int, str], event: str, fields: dict[str, Any]
) -> tuple[str, str, int]:
    """The line written directly, the line the logging chain writes for the same call, and
    how many log records the direct way made."""
    with log_records("ccobs.request") as made:
        direct(level, event, fields)
    first = taken(out)
    through_chain(level, event, fields)
    return first, taken(out), len(made)


PING_LINE = {
    "method": "GET",
    "path": "/ping",
    "service_type": "proxy_service",
    "endpoint": "/ping",
    "status": 200,
    "duration_ms": 0.412,
}
PROXY_LINE = {
    "method": "POST",
    "path": "/v1/messages",
    "model": "claude-sonnet-4-6",
    "streaming": True,
    "ttft_ms": 412.345,
    "input_tokens": 1200,
    "output_tokens": 350,
    "cache_read_tokens": 8000,
    "cache_write_tokens": 0,
    "cost_input_usd": 0.0036,
    "cost_output_usd": 0.00525,
    "cost_cache_usd": 0.0024,
    "cost_total_usd": 0.01125,
    "service_type": "proxy_service",
    "endpoint": "/v1/messages",
    "status": 200,
    "duration_ms": 1234.567,
}
LINES: dict[str, tuple[tuple[int, str], str, dict[str, Any]]] = {
    "ping": (INFO, "request_success", PING_LINE),
    "proxied, priced": (INFO, "request_success", PROXY_LINE),
    "named error": (WARNING, "request_error", {**PING_LINE, "error_type": "upstream_429"}),
    "keys in values": (
        INFO,
        "request_success",
        {
            "detail": f"upstream said {ANTHROPIC_KEY}",
            "auth": f"Bearer {BEARER_TOKEN}",
            "url": "https://user:pa55word@example.com/v1?api_key=abc123&x=1",
            "dump": "{'x-api-key': 'opaque-value'}",
        },
    ),
    "sensitive names": (
        INFO,
        "request_success",
        {"x_api_key": "opaque", "authorization": 42, "cookie": None, "Set_Cookie": ["a"]},
    ),
    "key as a key": (INFO, "request_success", {f"note {ANTHROPIC_KEY}": "value"}),
    "nested": (
        INFO,
        "request_success",
        {
            "headers": {"Authorization": f"Bearer {BEARER_TOKEN}", "accept": "*/*"},
            "list": [1, 2.5, None, True, {"token": "t"}, (f"key {ANTHROPIC_KEY}",)],
            "set": frozenset({"a"}),
        },
    ),
    "odd values": (
        INFO,
        "request_success",
        {
            "bytes": b"caf\xc3\xa9 \xff",
            "unicode": "naïve — ✓",
            "enum": Status.OK,
            "object": Leaky(),
            "float": 1e300,
            "nan": float("nan"),
            "big": 2**70,
        },
    ),
    "overrides the four first keys": (
        INFO,
        "request_success",
        {"level": "x", "logger": "y", "timestamp": "z", "status": 200},
    ),
}


@pytest.mark.parametrize(("level", "event", "fields"), LINES.values(), ids=LINES.keys())
def test_the_direct_line_is_the_chains_line_byte_for_byte(
    stream: io.StringIO, level: tuple[int, str], event: str, fields: dict[str, Any]
) -> None:
    with structlog.contextvars.bound_contextvars(request_id="0fb2deae24b023202de92484713512a9"):
        written, expected, records = both_ways(stream, level, event, fields)

    assert records == 0
    assert written == expected


def test_bound_context_variables_land_where_the_chain_puts_them(stream: io.StringIO) -> None:
    """After the fields, skipped where a field has the name, decoded, redacted, and never in
    place of the four first keys."""
    bound = {
        "request_id": "0fb2deae24b023202de92484713512a9",
        "status": "shadowed by the field",
        "level": "not the level",
        "raw": b"bytes \xc3\xa9",
        "authorization": f"Bearer {BEARER_TOKEN}",
    }
    with structlog.contextvars.bound_contextvars(**bound):
        written, expected, records = both_ways(stream, INFO, "request_success", PING_LINE)

    assert records == 0
    assert written == expected
    assert BEARER_TOKEN not in written


def test_an_exception_line_with_its_traceback_is_the_chains_line(stream: io.StringIO) -> None:
    fields = {**PING_LINE, "error_message": "boom", "exc_info": True}
    try:
        raise RuntimeError(f"upstream rejected {ANTHROPIC_KEY}")
    except RuntimeError:
        written, expected, records = both_ways(stream, ERROR, "request_error", fields)

    assert records == 0
    assert written == expected
    assert ANTHROPIC_KEY not in written
    assert "RuntimeError" in json.loads(written)["exception"]


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def test_any_fields_make_the_same_line_both_ways() -> None:
    with json_logging("INFO") as out:

        @settings(max_examples=60, deadline=None)
        @given(fields=st.dictionaries(st.text(min_size=1).filter(lambda k: k != "event"), JSONISH))
        def same_line(fields: dict[str, Any]) -> None:
            written, expected, records = both_ways(out, INFO, "request_success", fields)

            assert records == 0
            assert written == expected

        same_line()


def test_a_secret_in_any_field_never_reaches_the_direct_line(stream: io.StringIO) -> None:
    _, _, fields = LINES["keys in values"]

    direct(INFO, "request_success", {**fields, "x-api-key": ANTHROPIC_KEY})

    assert ANTHROPIC_KEY not in stream.getvalue()
    assert BEARER_TOKEN not in stream.getvalue()
    assert json.loads(stream.getvalue())["x-api-key"] == REDACTED


def test_the_direct_line_makes_no_log_record(stream: io.StringIO) -> None:
    with log_records("ccobs.request") as made:
        direct(INFO, "request_success", PING_LINE)

    assert made == []
    assert json.loads(stream.getvalue())["event"] == "request_success"


# --- when anything else would see the line, the chain writes it ------------------------------


class Collecting(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_another_root_handler_gets_the_line_and_ours_writes_it_once(stream: io.StringIO) -> None:
    other = Collecting()
    logging.getLogger().addHandler(other)

    direct(INFO, "request_success", PING_LINE)

    assert len(other.records) == 1
    assert len(stream.getvalue().splitlines()) == 1


def test_a_handler_on_an_ancestor_logger_gets_the_line(stream: io.StringIO) -> None:
    other = Collecting()
    ancestor = logging.getLogger("ccobs")
    ancestor.addHandler(other)
    try:
        direct(INFO, "request_success", PING_LINE)
    finally:
        ancestor.removeHandler(other)

    assert len(other.records) == 1
    assert len(stream.getvalue().splitlines()) == 1


def test_an_ancestor_that_stops_propagation_keeps_the_line_from_our_handler(
    stream: io.StringIO,
) -> None:
    ancestor = logging.getLogger("ccobs")
    ancestor.propagate = False
    try:
        direct(INFO, "request_success", PING_LINE)
    finally:
        ancestor.propagate = True

    assert stream.getvalue() == ""


def test_a_filter_on_the_request_logger_is_honoured(stream: io.StringIO) -> None:
    def drop_all(record: logging.LogRecord) -> bool:
        return False

    _STDLIB_REQUEST_LOGGER.addFilter(drop_all)
    try:
        direct(INFO, "request_success", PING_LINE)
    finally:
        _STDLIB_REQUEST_LOGGER.removeFilter(drop_all)

    assert stream.getvalue() == ""


def test_a_filter_on_our_handler_is_honoured(stream: io.StringIO) -> None:
    handler = ours()
    handler.addFilter(lambda record: False)

    direct(INFO, "request_success", PING_LINE)

    assert stream.getvalue() == ""


def test_our_handlers_level_is_honoured(stream: io.StringIO) -> None:
    handler = ours()
    handler.setLevel(logging.WARNING)

    direct(INFO, "request_success", PING_LINE)
    direct(WARNING, "request_error", PING_LINE)

    assert [json.loads(line)["level"] for line in stream.getvalue().splitlines()] == ["warning"]


def test_a_structlog_reconfigured_after_ccobs_runs_its_own_processors(stream: io.StringIO) -> None:
    def tag(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict["tagged"] = True
        return event_dict

    processors = structlog.get_config()["processors"]
    structlog.configure(processors=[*processors[:-1], tag, processors[-1]])

    direct(INFO, "request_success", PING_LINE)

    assert json.loads(stream.getvalue())["tagged"] is True


def test_a_formatter_set_on_our_handler_formats_the_line(stream: io.StringIO) -> None:
    handler = ours()
    handler.setFormatter(logging.Formatter("plain %(levelname)s"))

    direct(INFO, "request_success", PING_LINE)

    assert stream.getvalue() == "plain INFO\n"


def test_the_console_format_has_no_direct_writer_and_still_writes_the_line() -> None:
    out = io.StringIO()
    configure_logging("INFO", "console", stream=out)
    handler = ours()
    direct(INFO, "request_success", {"detail": f"key {ANTHROPIC_KEY}"})

    assert getattr(handler, "line_writer", "missing") is None
    assert "request_success" in out.getvalue()
    assert ANTHROPIC_KEY not in out.getvalue()


def test_a_line_the_renderer_cannot_encode_is_handled_by_the_chain(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tuple as a mapping key is no JSON: the chain's handler reports it, as it always did."""
    handler = ours()
    reported: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", reported.append)

    direct(INFO, "request_success", {"odd": {(1, 2): "x"}})

    assert stream.getvalue() == ""
    assert len(reported) == 1


class BrokenStream(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError("disk full")


def test_a_failed_write_is_reported_by_the_handler_and_never_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure_logging("INFO", "json", stream=BrokenStream())
    handler = ours()
    reported: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", reported.append)
    direct(INFO, "request_success", PING_LINE)

    assert [record.name for record in reported] == ["ccobs.request"]


# --- through the middleware ---------------------------------------------------------------


def _instrumented_app() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/messages")
    async def messages() -> dict[str, bool]:
        ctx = current_request_context()
        assert ctx is not None
        ctx.add_metadata(note=f"Bearer {BEARER_TOKEN}")
        record = ctx.record
        record.model = "claude-sonnet-4-6"
        record.set_usage(input=10, output=20)
        return {"ok": True}

    metrics = ccobs.PrometheusMetrics(registry=CollectorRegistry())
    ccobs.instrument(app, metrics)
    return app


async def _get(app: FastAPI, path: str) -> dict[str, str]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    headers: dict[str, str] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers.update((k.decode(), v.decode()) for k, v in message["headers"])

    await app(scope, receive, send)
    return headers


def test_a_served_requests_line_is_written_directly_with_its_request_id_and_facts() -> None:
    app = _instrumented_app()

    with (
        json_logging("INFO") as stream,
        log_records("ccobs.request") as made,
        without_pytest_log_handlers(),
    ):
        headers = asyncio.run(_get(app, "/v1/messages"))

    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert made == []
    assert line["request_id"] == headers["x-request-id"]
    assert (line["event"], line["model"], line["output_tokens"]) == (
        "request_success",
        "claude-sonnet-4-6",
        20,
    )
    assert line["note"] == f"Bearer {REDACTED}"
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]
