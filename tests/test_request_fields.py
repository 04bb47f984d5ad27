"""A request body's model and stream read by msgspec give what ``json.loads`` gives.

``ccobs/proxy/request_fields.py``: msgspec decides the bodies it accepts
whole, ``json.loads`` the rest; the result (or the error class) must be the
same either way, except for the one divergence the module documents.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccobs.proxy.request_fields import RequestFields, json_request_fields

READ = RequestFields()

KEYS = st.sampled_from(["model", "stream", "messages", "mod\\u0065l", "x", "", "é"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)


def _outcome(read: Any, body: bytes) -> object:
    try:
        return ("value", read(body))
    except RecursionError:
        return ("error", RecursionError)
    except ValueError:
        return ("error", ValueError)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """JSON documents, usually objects with a model and a stream, written in varied ways,
    then sometimes damaged byte by byte."""
    document: Any = draw(st.dictionaries(KEYS, VALUES, max_size=5) | VALUES)
    if isinstance(document, dict) and draw(st.booleans()):
        document["model"] = draw(st.text(max_size=8) | SCALARS)
        document["stream"] = draw(st.booleans() | SCALARS)
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    body = bytearray(text.encode("utf-8", "surrogatepass"))
    quotes = [i + 1 for i, byte in enumerate(body) if byte == ord('"')]
    for _ in range(draw(st.integers(0, 3))):
        # Anywhere, or just inside a string (opening or closing it: both are damage).
        at = draw(st.integers(0, len(body)) | st.sampled_from(quotes or [0]))
        byte = draw(st.sampled_from(b'{}[]",:\\ 0e-.tn\xff\xc3\xa9\x00\t'))
        match draw(st.sampled_from(["insert", "replace", "delete"])):
            case "insert":
                body.insert(at, byte)
            case "replace" if at < len(body):
                body[at] = byte
            case "delete" if at < len(body):
                del body[at]
    return bytes(body)


def test_msgspec_reads_the_bodies_where_it_is_installed() -> None:
    assert READ.accelerated, "msgspec is missing: pip install -e '.[server]' (make install)"


@settings(max_examples=1500, deadline=None)
@given(bodies())
def test_any_body_reads_as_json_loads_reads_it(body: bytes) -> None:
    assert _outcome(READ, body) == _outcome(json_request_fields, body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"a","model":"b","stream":true}',
        b'{"mod\\u0065l":"a"}',
        b'{"model":"a","x":NaN}',
        b'\xef\xbb\xbf{"model":"a"}',
        b'{"model":"a","x":"\\ud800"}',
        b'{"model":"a","x":"\xed\xa0\x80"}',
        b'{"model":1}',
        b'{"model":"a","stream":1}',
        b"[]",
        b"",
        b'{"model":"a","x":' + b"[" * 2000 + b"]" * 2000 + b"}",
        '{"model":"a"}'.encode("utf-16"),
    ],
)
def test_edge_cases_read_as_json_loads_reads_them(body: bytes) -> None:
    assert _outcome(READ, body) == _outcome(json_request_fields, body)


@pytest.mark.parametrize("bad", [b"\xff", b"\xc0\x80", b"\xe2\x82"])
def test_bytes_that_are_not_utf8_in_a_skipped_string_are_refused(bad: bytes) -> None:
    with pytest.raises(UnicodeDecodeError):
        READ(b'{"model":"a","messages":"' + bad + b'"}')


def test_a_long_number_where_the_proxy_does_not_read_is_accepted() -> None:
    """Valid JSON that json.loads refuses only for Python's int-digits limit."""
    body = b'{"model":"a","x":' + b"7" * 5000 + b"}"
    with pytest.raises(ValueError, match="digits"):
        json_request_fields(body)
    assert READ(body) == ("a", None)


def test_without_msgspec_json_reads_every_body() -> None:
    plain = RequestFields(use_msgspec=False)
    assert not plain.accelerated
    assert plain(b'{"model":"a","stream":true}') == ("a", True)
