"""The access-log line's JSON, redacted and encoded in one pass over its fields.

The logging chain redacts a line into a fresh dict (:func:`~ccobs.redaction.redact`)
and hands that to the JSON encoder; both walk every field and, for a short
line, cost far more than the line's text. Most of a line's strings come back
on every line: the field names, the event, the method, the route, the service
type, the model. :class:`LineEncoder` remembers, for each field name and each
string value the redaction scan (:func:`~ccobs.redaction.redact_text`)
returned unchanged, its JSON text, so a line that repeats them is a few
lookups and a join. Values the proxy makes itself (ints, floats, bools,
``None``) need no scan and are written as the JSON encoder writes them.

Only strings redaction leaves unchanged are remembered: a string in which
anything was redacted is never kept, and a value under a sensitive key is
replaced without being read, so the memo holds nothing the log line does not
show anyway. Bounded: at most :data:`MAX_ENTRIES` strings of at most
:data:`MAX_LENGTH` characters per kind (names, values), emptied when full; ids
unique to one request fill it within a thousand lines, and the strings that
recur are scanned once more and remembered again. One encoder per
:class:`~ccobs.access_line.JsonLineWriter`, so it lives and dies with a logging
configuration. Its dicts are only read, added to and cleared, each atomic
under the GIL, so threads may share it.
"""

from __future__ import annotations

import json.encoder
from collections.abc import Callable, Iterable
from typing import Any, Final

from ccobs.redaction import REDACTED, is_sensitive_key, redact_field_value, redact_text

__all__ = ["MAX_ENTRIES", "MAX_LENGTH", "LineEncoder"]

MAX_ENTRIES: Final = 1024
"""Strings remembered per kind at most; the memo is emptied when it holds this many."""
MAX_LENGTH: Final = 200
"""Longer strings are scanned every time: long text seldom recurs, and it bounds the memory."""

_quote: Final[Callable[[str], str]] = json.encoder.encode_basestring_ascii
"""The JSON string encoder ``json.dumps`` uses with its default ``ensure_ascii``."""
_FLOAT_WORDS: Final = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
"""What ``json.dumps`` writes for the floats ``repr`` spells this way."""


class LineEncoder:
    """A JSON log line made as the chain makes it: ``redact(line, stringify=True)`` encoded
    by the JSON renderer (the module's docstring says what it remembers and why that is safe).

    ``encode`` is the renderer's own encoder (same separators, ASCII only) with
    a ``default`` that raises: a value redaction leaves as something JSON
    cannot hold (a set, say) makes :meth:`line` answer None, and the caller
    leaves the line to the renderer, whose ``default`` decides.
    """

    __slots__ = ("_encode", "_names", "_sensitive_names", "_texts")

    def __init__(self, encode: Callable[[Any], str]) -> None:
        self._encode = encode
        self._names: dict[str, str] = {}
        """Field names redaction leaves unchanged and whose value it keeps: ``, "name": ``."""
        self._sensitive_names: dict[str, str] = {}
        """Field names whose value is a credential: ``, "name": "[REDACTED]"``."""
        self._texts: dict[str, str] = {}
        """String values (exact ``str``) redaction leaves unchanged, with their JSON text."""

    def line(
        self, timestamp: str, level: str, logger: str, fields: Iterable[tuple[Any, Any]]
    ) -> str | None:
        """``{"timestamp": …, "level": …, "logger": …`` then ``fields`` (pairs, the event
        first), the fields redacted, bytes decoded first (structlog's ``UnicodeDecoder``).

        The three first values are the writer's own and are not scanned. None when a
        field name is no exact ``str`` or redaction would change it (two names may
        then become one), or a redacted value is no JSON: the caller then makes
        the line the general way. May raise what the renderer would (a huge int).
        """
        names, texts = self._names, self._texts
        parts = [
            '{"timestamp": ',
            _quote(timestamp),
            ', "level": ',
            _quote(level),
            ', "logger": ',
            _quote(logger),
        ]
        # ``parts.append`` spelled out and dicts subscripted: the forms CPython runs fastest.
        for name, value in fields:
            try:
                parts.append(names[name])
            except KeyError:
                prefix = self._sensitive_names.get(name) or self._learn_name(name)
                if prefix is None:
                    return None
                parts.append(prefix)
                if prefix[-1] == '"':  # the name and "[REDACTED]": the value is not read
                    continue
            kind = type(value)
            if kind is str:
                parts.append(texts[value] if value in texts else self._scan(value))
            elif kind is int:
                parts.append(repr(value))
            elif kind is float:
                text = repr(value)
                parts.append(_FLOAT_WORDS.get(text, text))
            elif value is None:
                parts.append("null")
            elif kind is bool:
                parts.append("true" if value else "false")
            elif kind is bytes:
                parts.append(self._scan(value.decode("utf-8", "replace")))
            else:
                try:
                    parts.append(self._encode(redact_field_value(value)))
                except TypeError:  # no JSON without the renderer's default
                    return None
        parts.append("}")
        return "".join(parts)

    def _scan(self, text: str) -> str:
        """The JSON text of ``redact_text(text)``, remembered when ``text`` came back unchanged."""
        redacted = redact_text(text)
        quoted = _quote(redacted)
        if redacted == text and len(text) <= MAX_LENGTH:
            texts = self._texts
            if len(texts) >= MAX_ENTRIES:
                texts.clear()
            texts[text] = quoted
        return quoted

    def _learn_name(self, name: Any) -> str | None:
        """``, "name": `` (with ``"[REDACTED]"`` after it for a credential's name), remembered;
        None when ``name`` is no exact ``str`` or redaction changes it."""
        if type(name) is not str or redact_text(name) != name:
            return None
        sensitive = is_sensitive_key(name)
        prefix = f", {_quote(name)}: "
        if sensitive:
            prefix += _quote(REDACTED)
        if len(name) <= MAX_LENGTH:
            memo = self._sensitive_names if sensitive else self._names
            if len(memo) >= MAX_ENTRIES:
                memo.clear()
            memo[name] = prefix
        return prefix
