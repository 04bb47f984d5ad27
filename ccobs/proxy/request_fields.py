"""The two fields of a request body the proxy reads, without building the rest of it.

A request to the LLM APIs is mostly conversation: Claude Code's first
request of a session is about 88 KB (system prompt, tools, history) and
grows with the session, and the proxy reads two of its fields, ``model`` and
``stream``. ``json.loads`` builds every string, list and object of it, which
costs several times everything else the proxy does for the request.
msgspec, decoding into a struct of just those two fields, checks the whole
document and skips the rest without building it (benchmarks/RESULTS.md
section 7 has the figures).

The answers are ``json.loads``'s, the proxy's 400s included. msgspec decides
only a document it accepts whole with a string (or null) ``model`` and a
boolean (or null) ``stream``; anything else (NaN, a byte-order mark, a lone
surrogate escape, another encoding, a non-string model, too deep) goes to
``json.loads``, which decides as before. Where msgspec accepts what
``json.loads`` refuses:

- bytes that are not UTF-8 inside a string it skips: a body that is not
  ASCII is decoded here as ``json.loads`` decodes it, and refused the same way;
- a number of more than 4,300 digits where the proxy does not read: valid
  JSON (RFC 8259) that ``json.loads`` refuses only for Python's limit on
  converting digits to an ``int``; such a body is now forwarded.

Without msgspec (it comes with ``ccobs[server]``), ``json.loads`` reads every body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ccobs.proxy.json_scan import loads

_Decoder = tuple[Callable[[bytes], Any], tuple[type[BaseException], ...]]


def _msgspec_decoder() -> _Decoder | None:
    """msgspec's decoder of the two fields, and the errors with which it leaves a body to json."""
    try:
        import msgspec
    except ImportError:
        return None

    class _Fields(msgspec.Struct):
        model: str | None = None
        stream: bool | None = None

    return msgspec.json.Decoder(_Fields).decode, (msgspec.MsgspecError, RecursionError)


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
        self._decoder = _msgspec_decoder() if use_msgspec else None

    @property
    def accelerated(self) -> bool:
        """True when msgspec reads the bodies it can."""
        return self._decoder is not None

    def __call__(self, body: bytes) -> tuple[object, object] | None:
        """What :func:`json_request_fields` returns or raises for ``body``."""
        if self._decoder is not None:
            decode, refused = self._decoder
            try:
                found = decode(body)
            except refused:
                pass
            else:
                if not body.isascii():
                    body.decode("utf-8", "surrogatepass")  # json.loads's decoding, and errors
                return found.model, found.stream
        return json_request_fields(body)
