"""ccobs.line_encoder: the access-log line's usual form, redacted and encoded in one pass, is
byte for byte the general pass's line; its memo holds only strings redaction left
unchanged, and stays bounded."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from ccobs.access_line import JsonLineWriter
from ccobs.line_encoder import MAX_ENTRIES, MAX_LENGTH, LineEncoder
from ccobs.logging import configure_logging

pytestmark = pytest.mark.usefixtures("isolated_logging")

ANTHROPIC_KEY = "sk-ant-api03-" + "Zx8Cv7Bn6Mm5Ll4Kk3Jj2Hh1Gg0Ff_-Dd9Ss8Aa7Qq6Ww5-EEEEEE"
BEARER_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsaW5lLWVuY29kZXIifQ.bm90LWEtcmVhbC1zaWduYXR1cmU"
LOGGER = logging.getLogger("ccobs.request")

USUAL_LINES: dict[str, dict[str, Any]] = {
    "ping": {
        "method": "GET",
        "path": "/ping",
        "service_type": "proxy_service",
        "endpoint": "/ping",
        "status": 200,
        "duration_ms": 0.412,
    },
    "proxied": {
        "method": "POST",
        "path": "/v1/messages",
        "model": "claude-sonnet-4-6",
        "streaming": True,
        "ttft_ms": 412.345,
        "input_tokens": 1200,
        "cost_total_usd": 0.01125,
        "stop_reason": None,
        "status": 200,
        "duration_ms": 1234.567,
    },
    "secrets and odd values": {
        "detail": f"upstream said {ANTHROPIC_KEY}",
        "auth": f"Bearer {BEARER_TOKEN}",
        "x_api_key": "opaque",
        "authorization": 42,
        "raw": b"caf\xc3\xa9 \xff",
        "headers": {"Authorization": f"Bearer {BEARER_TOKEN}", "accept": "*/*"},
        "list": [1, 2.5, None, (f"key {ANTHROPIC_KEY}",)],
        "nan": float("nan"),
        "inf": float("-inf"),
        "unicode": 'naïve — ✓ "quoted"',
    },
}


def fresh_writer() -> JsonLineWriter:
    """The writer of a fresh ``configure_logging`` (JSON), its memo empty."""
    configure_logging("DEBUG", "json", stream=io.StringIO())
    [handler] = [h for h in logging.getLogger().handlers if hasattr(h, "line_writer")]
    line_writer = handler.line_writer
    assert isinstance(line_writer, JsonLineWriter)
    return line_writer


@pytest.fixture
def writer() -> JsonLineWriter:
    return fresh_writer()


def the_two_ways(writer: JsonLineWriter, fields: dict[str, Any]) -> tuple[str | None, str]:
    """The usual form's line and the general pass's, timestamps aside (the clock moves)."""
    plain = writer._plain_line(LOGGER, "info", "request_success", dict(fields))
    general = writer._one_pass(LOGGER, "info", "request_success", dict(fields))
    assert isinstance(general, str)
    return (None if plain is None else plain[40:]), general[40:]


@pytest.mark.parametrize("fields", USUAL_LINES.values(), ids=USUAL_LINES.keys())
def test_a_usual_line_takes_the_one_pass_encoder_and_is_the_general_line(
    writer: JsonLineWriter, fields: dict[str, Any]
) -> None:
    with structlog.contextvars.bound_contextvars(request_id="0fb2deae24b023202de92484713512a9"):
        for _ in range(2):  # the memo empty, then holding the line's strings
            plain, general = the_two_ways(writer, fields)

            assert plain is not None
            assert plain == general


def test_a_value_json_cannot_hold_is_left_to_the_general_pass(writer: JsonLineWriter) -> None:
    plain, general = the_two_ways(writer, {"set": frozenset({"a"})})

    assert plain is None
    assert "frozenset" in general


def test_a_field_name_redaction_changes_is_left_to_the_general_pass(
    writer: JsonLineWriter,
) -> None:
    """Two names with different keys in them redact to one: only the general pass merges them."""
    fields = {f"note {ANTHROPIC_KEY}": 1, f"note {ANTHROPIC_KEY[:-1]}X": 2}

    plain, general = the_two_ways(writer, fields)

    assert plain is None
    assert ANTHROPIC_KEY not in general


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.binary(max_size=8)
    | st.sampled_from([ANTHROPIC_KEY, f"Bearer {BEARER_TOKEN}", "GET", "/v1/messages"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
NAMES = st.text(min_size=1) | st.sampled_from(["x-api-key", "Authorization", "status", "path"])


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(st.dictionaries(NAMES, JSONISH, max_size=8), min_size=1, max_size=3))
def test_any_fields_make_the_general_lines_bytes_when_the_encoder_takes_them(
    lines: list[dict[str, Any]],
) -> None:
    writer = fresh_writer()
    for fields in lines + lines:  # each line twice: with the memo cold, then warm
        plain, general = the_two_ways(writer, fields)

        assert plain is None or plain == general


def memo_entries(encoder: LineEncoder) -> list[str]:
    names, sensitive, texts = encoder._names, encoder._sensitive_names, encoder._texts
    return [*names, *names.values(), *sensitive, *sensitive.values(), *texts, *texts.values()]


def test_nothing_redaction_changed_is_remembered(writer: JsonLineWriter) -> None:
    fields = {
        **USUAL_LINES["secrets and odd values"],
        "cookie": ANTHROPIC_KEY,
        "plain": ANTHROPIC_KEY,
        "session": "sess-ordinary",
    }
    plain, _ = the_two_ways(writer, fields)

    remembered = memo_entries(writer._line_encoder)
    assert plain is not None
    assert not [entry for entry in remembered if ANTHROPIC_KEY in entry or BEARER_TOKEN in entry]
    assert "sess-ordinary" in remembered  # what came back unchanged is remembered


def test_the_memo_holds_at_most_its_bound_and_no_long_string() -> None:
    encoder = LineEncoder(lambda value: "x")
    long_text = "y" * (MAX_LENGTH + 1)
    for number in range(MAX_ENTRIES * 3):
        line = encoder.line("t", "info", "l", [("event", f"id-{number}"), (long_text, long_text)])

        assert line is not None
        assert len(encoder._texts) <= MAX_ENTRIES
    assert long_text not in memo_entries(encoder)
    assert len(encoder._names) == 1  # "event"
