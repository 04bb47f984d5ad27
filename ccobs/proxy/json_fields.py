"""A few top-level fields of a JSON object, read by msgspec without building the rest.

The proxy reads two fields of every request body and two or three of every
answer, and those documents are mostly text it never looks at. msgspec,
decoding into a struct of just the fields wanted, checks the whole document
and skips the rest without building it; ``json.loads`` builds all of it.
:class:`JsonFields` answers only for a document msgspec accepts whole, in
UTF-8, with each wanted field of its type; for anything else it answers None
and the caller's ``json.loads`` decides, exactly as before. So the values
are ``json.loads``'s wherever it answers, but for one case, where msgspec
accepts what ``json.loads`` refuses: a number of more than 4,300 digits in a
field not read, valid JSON (RFC 8259) that ``json.loads`` refuses only for
Python's limit on converting digits to an ``int``.

Without msgspec (it comes with ``ccobs[server]``) it always answers None.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class JsonFields:
    """Reads the named top-level fields of a JSON object, or leaves the document to json."""

    def __init__(self, fields: Sequence[tuple[str, Any]], use_msgspec: bool = True) -> None:
        """``fields``: (name, type) pairs; a field present with another type leaves the
        document to json, which is how a caller keeps its own checks of odd values."""
        self.names = tuple(name for name, _ in fields)
        self._decode: Callable[[bytes], Any] | None = None
        self._refused: tuple[type[BaseException], ...] = ()
        self._unset: object = None
        if not use_msgspec:
            return
        try:
            import msgspec
        except ImportError:
            return
        struct = msgspec.defstruct(
            "JsonFields", [(name, kind, msgspec.UNSET) for name, kind in fields]
        )
        self._decode = msgspec.json.Decoder(struct).decode
        self._refused = (msgspec.MsgspecError, RecursionError)
        self._unset = msgspec.UNSET

    @property
    def accelerated(self) -> bool:
        """True when msgspec reads the documents it can."""
        return self._decode is not None

    def read(self, document: bytes) -> dict[str, Any] | None:
        """The wanted fields present in ``document``, by name; None: json must decide.

        None when msgspec is missing or refuses the document (malformed, not an
        object, a field of another type, too deep), or the document's bytes are
        not UTF-8 (msgspec does not check the strings it skips; ``json.loads``
        refuses them).
        """
        decode = self._decode
        if decode is None:
            return None
        try:
            found = decode(document)
        except self._refused:
            return None
        if not document.isascii():
            try:
                document.decode("utf-8", "surrogatepass")  # as json.loads decodes bytes
            except UnicodeDecodeError:
                return None
        unset = self._unset
        return {name: value for name in self.names if (value := getattr(found, name)) is not unset}
