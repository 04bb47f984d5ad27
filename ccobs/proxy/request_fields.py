"""The two fields of a request body the proxy reads, without building the rest of it.

A request to the LLM APIs is mostly conversation: Claude Code's first
request of a session is about 88 KB (system prompt, tools, history) and
grows with the session, and the proxy reads two of its fields, ``model`` and
``stream``. ``json.loads`` builds every string, list and object of it, which
cost the proxy more than everything else it does for the request
(benchmarks/RESULTS.md section 7). :class:`~ccobs.proxy.json_fields.JsonFields`
reads the two without building the rest where msgspec is installed, and
leaves every body it does not decide (a non-string model, NaN, another
encoding...) to ``json.loads``, so the answers and the proxy's 400s stay as
they were, but for the one case that module names.
"""

from __future__ import annotations

from ccobs.proxy.json_fields import JsonFields
from ccobs.proxy.json_scan import loads


def json_request_fields(body: bytes) -> tuple[object, object] | None:
    """``(model, stream)`` by ``json.loads``; None for JSON that is not an object.

    Raises ``ValueError`` (``UnicodeDecodeError`` included) and
    ``RecursionError`` as ``json.loads`` does.
    """
    payload = loads(body)
    if not isinstance(payload, dict):
        return None
    return payload.get("model"), payload.get("stream")


class RequestFields:
    """Reads ``(model, stream)`` from request bodies: msgspec where it decides, else json."""

    def __init__(self, use_msgspec: bool = True) -> None:
        self._fields = JsonFields((("model", str | None), ("stream", bool | None)), use_msgspec)

    @property
    def accelerated(self) -> bool:
        """True when msgspec reads the bodies it can."""
        return self._fields.accelerated

    def __call__(self, body: bytes) -> tuple[object, object] | None:
        """What :func:`json_request_fields` returns or raises for ``body``."""
        found = self._fields.read(body)
        if found is None:
            return json_request_fields(body)
        return found.get("model"), found.get("stream")
