"""``ccobs.proxy.json_scan.loads`` answers as ``json.loads`` does: the same value or error.

The relay parses request bodies, answers and stream events with it; its
shortcut through the decoder's scanner must never change a value, accept
what ``json.loads`` refuses, or refuse what it accepts.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ccobs.proxy.json_scan import loads

JSONISH = st.text(alphabet='{}[]":,0123456789 .-eEtrufalsnNI\n\\ab\u00e9\ud800', max_size=16)


def _outcome(call: Any, data: str | bytes) -> tuple[str, str]:
    try:
        return ("value", repr(call(data)))
    except (ValueError, RecursionError) as exc:
        return (type(exc).__name__, str(exc))


@settings(max_examples=500, deadline=None)
@given(tail=JSONISH, prefixed=st.booleans(), as_bytes=st.booleans())
def test_loads_gives_what_json_loads_gives(tail: str, prefixed: bool, as_bytes: bool) -> None:
    text = ('{"' if prefixed else "") + tail
    data: str | bytes = text.encode("utf-8", "surrogatepass") if as_bytes else text

    assert _outcome(loads, data) == _outcome(json.loads, data)


def test_loads_leaves_other_encodings_to_json_loads() -> None:
    for data in ('{"a": 1}'.encode("utf-16"), b'\xef\xbb\xbf{"a": 1}', b'{"a": \xff}'):
        assert _outcome(loads, data) == _outcome(json.loads, data)
