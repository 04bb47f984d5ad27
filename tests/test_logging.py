"""ccobs.logging: one JSON shape for every logger, request ids, no secrets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import structlog
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st

from ccobs.logging import (
    UVICORN_LOGGERS,
    Timestamper,
    _ReusedEncoderDumps,
    add_timestamp,
    configure_logging,
    get_logger,
    redact_event,
)
from ccobs.redaction import REDACTED

ANTHROPIC_KEY = (
    "sk-ant-api03-" + "Zx8Yw7Vu6Ts5Rq4Po3Nm2Lk1Ji0HgFeDcBa_9-8ZyXwVuTsRqPoNmLkJiHg-BBBBBB"
)
OPENAI_KEY = "sk-proj-" + "Mn7Bv6Cx5Za4Sd3Fg2Hj1Kl0Qw9Er8Ty7" + "T3BlbkFJ" + "Ui6Op5As4"
BEARER_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsb2ctdGVzdCJ9.c2lnbmF0dXJlLW5vdC1yZWFs"
SESSION_COOKIE = "sessionid=9f8e7d6c5b4a39281706f5e4d3c2b1a0"
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


class FakeTTY(io.StringIO):
    """A stream that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


pytestmark = pytest.mark.usefixtures("isolated_logging")


def configure_json(level: str = "DEBUG") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level=level, fmt="json", stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


# --- shape -------------------------------------------------------------------


def test_json_line_starts_with_timestamp_level_logger_event() -> None:
    stream = configure_json()
    get_logger("ccobs.test").info("request_completed", status=200)
    [line] = lines(stream)
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]
    assert line["level"] == "info"
    assert line["logger"] == "ccobs.test"
    assert line["event"] == "request_completed"
    assert line["status"] == 200


def test_timestamp_is_utc_iso8601_with_milliseconds_and_z() -> None:
    stream = configure_json()
    before = datetime.now(UTC).replace(microsecond=0)
    get_logger("t").info("tick")
    [line] = lines(stream)
    assert TIMESTAMP_RE.match(line["timestamp"]), line["timestamp"]
    stamp = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    assert before <= stamp <= datetime.now(UTC)


def test_timestamp_of_stdlib_record_is_its_creation_time() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    record.created = 1795759200.1239  # 2026-11-27T06:00:00.123Z
    event = add_timestamp(None, "info", {"_record": record})
    assert event["timestamp"] == "2026-11-27T06:00:00.123Z"


@pytest.mark.parametrize(
    "now",
    [1795759200.1239, 1795759200.9999, 1795759201.0, 1795759261.5004, 0.0009],
    ids=["in a second", "its last millisecond", "the next second", "a minute on", "the epoch"],
)
def test_timestamper_writes_what_add_timestamp_writes(now: float) -> None:
    """The chain's cached timestamper, called in turn across seconds, agrees with the
    plain processor every time."""
    stamper = Timestamper()
    for moment in (now - 1.0, now, now + 0.0004, now + 1.0):
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
        record.created = moment
        expected = add_timestamp(None, "info", {"_record": record})["timestamp"]

        assert stamper(None, "info", {"_record": record})["timestamp"] == expected


@pytest.mark.parametrize(
    "now",
    [1795759200.1239, 1795759200.9999, 1795759201.0, 1795759261.5004, 1795759261.99999994],
    ids=["in a second", "its last millisecond", "the next second", "a minute on", "just before"],
)
def test_timestampers_now_writes_what_it_writes_for_that_moment(
    now: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``now`` (the access-log line's timestamp) takes its milliseconds from a table."""
    stamper = Timestamper()
    monkeypatch.setattr("ccobs.logging.time.time", lambda: now)

    assert stamper.now() == Timestamper().format(now)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(value=JSONISH)
def test_the_json_renderers_serializer_writes_what_json_dumps_writes(value: Any) -> None:
    dumps = _ReusedEncoderDumps()

    assert dumps(value, default=repr) == json.dumps(value, default=repr)
    assert dumps(value, default=repr) == json.dumps(value, default=repr)  # the reused encoder


def test_the_json_renderers_serializer_uses_the_default_it_is_given() -> None:
    dumps = _ReusedEncoderDumps()

    assert dumps({"x": object}, default=lambda o: "first") == '{"x": "first"}'
    assert dumps({"x": object}, default=lambda o: "second") == '{"x": "second"}'


def test_the_json_renderers_serializer_keeps_no_state_from_a_failed_call() -> None:
    """The encoder is made once and reused: a value it could not encode (its ``default``
    raised halfway through a nested dict) leaves nothing behind for the next line."""
    dumps = _ReusedEncoderDumps()

    def refuse(value: object) -> object:
        raise TypeError("not serialisable")

    shared = {"inner": {"x": 1}}
    with pytest.raises(TypeError):
        dumps({"a": shared, "b": [shared, object()]}, default=refuse)

    assert dumps({"a": shared, "b": [shared]}, default=refuse) == json.dumps(
        {"a": shared, "b": [shared]}
    )


def test_stdlib_logger_lines_have_the_same_json_shape() -> None:
    stream = configure_json()
    logging.getLogger("httpx").warning("retrying %s in %d s", "POST", 2)
    [line] = lines(stream)
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]
    assert line["level"] == "warning"
    assert line["logger"] == "httpx"
    assert line["event"] == "retrying POST in 2 s"
    assert TIMESTAMP_RE.match(line["timestamp"])


def test_stdlib_extra_fields_are_kept() -> None:
    stream = configure_json()
    logging.getLogger("lib").info("pushed", extra={"job": "ccproxy"})
    assert lines(stream)[0]["job"] == "ccproxy"


def test_uvicorn_loggers_lose_their_own_handlers_and_log_through_ours() -> None:
    uvicorn_own = logging.StreamHandler(io.StringIO())
    for name in UVICORN_LOGGERS:
        logging.getLogger(name).addHandler(uvicorn_own)
        logging.getLogger(name).propagate = False
    stream = configure_json()
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "POST", "/v1/messages", "1.1", 200
    )
    logging.getLogger("uvicorn.error").info(
        "Application startup complete.", extra={"color_message": "\x1b[1mApplication\x1b[0m"}
    )
    access, error = lines(stream)
    assert access["logger"] == "uvicorn.access"
    assert access["event"] == '127.0.0.1:5000 - "POST /v1/messages HTTP/1.1" 200'
    assert error["logger"] == "uvicorn.error"
    assert "color_message" not in error
    assert all(not logging.getLogger(name).handlers for name in UVICORN_LOGGERS)


def test_exception_is_formatted_into_the_exception_field() -> None:
    stream = configure_json()
    try:
        raise ValueError("upstream exploded")
    except ValueError:
        get_logger("t").exception("request_failed")
    [line] = lines(stream)
    assert line["level"] == "error"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert "ValueError: upstream exploded" in line["exception"]


def test_positional_arguments_of_structlog_calls_are_interpolated() -> None:
    stream = configure_json()
    get_logger("t").info("served %d requests", 3)
    assert lines(stream)[0]["event"] == "served 3 requests"


def test_get_logger_without_name_uses_the_calling_module() -> None:
    stream = configure_json()
    get_logger().info("named")
    assert lines(stream)[0]["logger"] == __name__


def test_level_filters_structlog_and_stdlib_lines_below_it() -> None:
    stream = configure_json(level="WARNING")
    get_logger("t").info("hidden")
    logging.getLogger("lib").info("hidden too")
    get_logger("t").warning("shown")
    assert [line["event"] for line in lines(stream)] == ["shown"]


def test_level_name_is_case_insensitive() -> None:
    stream = io.StringIO()
    configure_logging(level="debug", fmt="JSON", stream=stream)
    get_logger("t").debug("visible")
    assert lines(stream)[0]["event"] == "visible"


def test_default_stream_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="json")
    get_logger("t").info("to_stderr")
    captured = capsys.readouterr()
    assert json.loads(captured.err.splitlines()[-1])["event"] == "to_stderr"
    assert captured.out == ""


# --- request id via contextvars ---------------------------------------------


def test_request_id_bound_with_contextvars_appears_in_lines() -> None:
    stream = configure_json()
    with structlog.contextvars.bound_contextvars(request_id="req-123"):
        get_logger("t").info("inside")
        logging.getLogger("lib").info("stdlib inside")
    get_logger("t").info("outside")
    inside, stdlib_inside, outside = lines(stream)
    assert inside["request_id"] == "req-123"
    assert stdlib_inside["request_id"] == "req-123"
    assert "request_id" not in outside


@pytest.mark.anyio
async def test_request_id_reaches_lines_from_a_task_spawned_in_the_bound_block() -> None:
    stream = configure_json()

    async def background() -> None:
        await asyncio.sleep(0)
        get_logger("t").info("from_task")

    with structlog.contextvars.bound_contextvars(request_id="req-task"):
        task = asyncio.create_task(background())
    await task  # runs after the block exited; the task kept its copy of the context
    [line] = lines(stream)
    assert line["event"] == "from_task"
    assert line["request_id"] == "req-task"


# --- redaction ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "secret"),
    [
        ({"detail": f"upstream rejected {ANTHROPIC_KEY}"}, ANTHROPIC_KEY),
        ({"detail": f"key {OPENAI_KEY} expired"}, OPENAI_KEY),
        ({"auth": f"Bearer {BEARER_TOKEN}"}, BEARER_TOKEN),
        ({"cookie": SESSION_COOKIE}, SESSION_COOKIE),
        ({"x_api_key": "opaque-secret-value"}, "opaque-secret-value"),
    ],
    ids=["anthropic-key", "openai-key", "bearer-token", "cookie", "api-key-field"],
)
def test_secret_in_event_values_never_reaches_output(fields: dict[str, str], secret: str) -> None:
    stream = configure_json()
    get_logger("t").info("upstream_call", **fields)
    output = stream.getvalue()
    assert secret not in output
    assert REDACTED in output


def test_secret_in_nested_dict_never_reaches_output() -> None:
    stream = configure_json()
    get_logger("t").info("call", request={"body": {"meta": [f"token {ANTHROPIC_KEY}"]}})
    assert ANTHROPIC_KEY not in stream.getvalue()
    assert lines(stream)[0]["request"] == {"body": {"meta": [f"token {REDACTED}"]}}


def test_header_dict_values_are_redacted_by_name() -> None:
    stream = configure_json()
    headers = {
        "Authorization": f"Bearer {BEARER_TOKEN}",
        "x-api-key": "opaque-secret-value",
        "Cookie": SESSION_COOKIE,
        "content-type": "application/json",
    }
    get_logger("t").info("request_headers", headers=headers)
    assert lines(stream)[0]["headers"] == {
        "Authorization": REDACTED,
        "x-api-key": REDACTED,
        "Cookie": REDACTED,
        "content-type": "application/json",
    }


def test_secret_in_structlog_exception_message_never_reaches_output() -> None:
    stream = configure_json()
    try:
        raise PermissionError(f"invalid x-api-key: {ANTHROPIC_KEY}")
    except PermissionError:
        get_logger("t").exception("auth_failed")
    assert ANTHROPIC_KEY not in stream.getvalue()
    assert REDACTED in lines(stream)[0]["exception"]


def test_secret_in_stdlib_exception_and_message_args_never_reaches_output() -> None:
    stream = configure_json()
    try:
        raise RuntimeError(f"Authorization: Bearer {BEARER_TOKEN}")
    except RuntimeError:
        logging.getLogger("httpx").exception("calling with key %s", OPENAI_KEY)
    output = stream.getvalue()
    assert BEARER_TOKEN not in output
    assert OPENAI_KEY not in output


def test_secret_in_object_repr_never_reaches_output() -> None:
    stream = configure_json()
    get_logger("t").info("failed", error=ConnectionError(f"proxy said {ANTHROPIC_KEY}"))
    assert ANTHROPIC_KEY not in stream.getvalue()


def test_secret_in_bound_context_never_reaches_output() -> None:
    stream = configure_json()
    with structlog.contextvars.bound_contextvars(authorization=f"Bearer {BEARER_TOKEN}"):
        get_logger("t").info("bound")
    assert BEARER_TOKEN not in stream.getvalue()


def test_redact_event_is_a_plain_processor_returning_a_redacted_copy() -> None:
    event = {"event": "e", "headers": {"x-api-key": "k"}}
    assert redact_event(None, "info", event) == {"event": "e", "headers": {"x-api-key": REDACTED}}
    assert event["headers"] == {"x-api-key": "k"}


# --- renderer selection ------------------------------------------------------


def test_auto_format_renders_json_when_stream_is_not_a_tty() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    get_logger("t").info("json_please")
    assert lines(stream)[0]["event"] == "json_please"


def test_auto_format_renders_console_lines_on_a_tty() -> None:
    stream = FakeTTY()
    configure_logging(stream=stream)
    get_logger("t").info("human_please", user_count=3)
    output = stream.getvalue()
    assert "human_please" in output
    assert "user_count" in output
    with pytest.raises(json.JSONDecodeError):
        json.loads(output.splitlines()[0])


def test_console_format_on_a_non_tty_has_no_colour_codes_and_still_redacts() -> None:
    stream = io.StringIO()
    configure_logging(fmt="console", stream=stream)
    get_logger("t").info("console", detail=ANTHROPIC_KEY)
    output = stream.getvalue()
    assert "console" in output
    assert "\x1b[" not in output
    assert ANTHROPIC_KEY not in output


# --- configuration -----------------------------------------------------------


def test_configuring_twice_keeps_a_single_handler_and_uses_the_new_stream() -> None:
    first = configure_json()
    handlers_after_first = len(logging.getLogger().handlers)
    second = configure_json()
    assert len(logging.getLogger().handlers) == handlers_after_first
    get_logger("t").info("once")
    logging.getLogger("lib").info("once too")
    assert first.getvalue() == ""
    assert [line["event"] for line in lines(second)] == ["once", "once too"]


def test_configure_leaves_handlers_it_did_not_install() -> None:
    foreign = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(foreign)
    configure_json()
    configure_json()
    assert foreign in logging.getLogger().handlers


def test_invalid_level_raises_value_error_naming_the_allowed_levels() -> None:
    with pytest.raises(ValueError, match="DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        configure_logging(level="LOUD", stream=io.StringIO())


def test_invalid_format_raises_value_error_naming_the_allowed_formats() -> None:
    with pytest.raises(ValueError, match="auto, json, console"):
        configure_logging(fmt="xml", stream=io.StringIO())


def test_invalid_arguments_leave_existing_configuration_in_place() -> None:
    stream = configure_json()
    with pytest.raises(ValueError, match="xml"):
        configure_logging(fmt="xml", stream=io.StringIO())
    get_logger("t").info("still_here")
    assert lines(stream)[0]["event"] == "still_here"


@pytest.mark.anyio
async def test_real_uvicorn_server_lines_come_out_as_json() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    stream = configure_json(level="INFO")
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/healthz")
    assert response.status_code == 204
    server.should_exit = True
    await serving

    by_logger = {line["logger"]: line for line in lines(stream)}
    assert {"uvicorn.error", "uvicorn.access"} <= set(by_logger)
    access = by_logger["uvicorn.access"]
    assert list(access)[:4] == ["timestamp", "level", "logger", "event"]
    assert '"GET /healthz HTTP/1.1" 204' in access["event"]
