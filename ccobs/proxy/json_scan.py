"""``json.loads`` for the relay's hot path: the same value and errors, without its wrapper.

The proxy parses every request body, every non-streamed answer and every
stream event it accounts. For one JSON value and nothing else, which is what
those are, ``json.loads`` spends more in its Python layers (encoding
detection, ``decode``, ``raw_decode``, two regular-expression matches for
whitespace) than the C scanner spends on the value itself. :func:`loads`
calls the scanner directly in that case and hands everything else (leading
or trailing whitespace, another encoding, no value, more after it) to
``json.loads``, which decides and raises exactly as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
"""The standard decoder's scanner (C when available): one value from an index."""


def loads(data: str | bytes) -> Any:
    """``json.loads(data)``, through the scanner alone when ``data`` is one bare value."""
    if isinstance(data, bytes):
        if data[:2] != b'{"':  # json.loads's encoding detection says UTF-8 for these alone
            return json.loads(data)
        text = data.decode("utf-8", "surrogatepass")  # as json.loads decodes it
    else:
        text = data
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return json.loads(data)
    if end != len(text):
        return json.loads(data)
    return value
