"""Bounded label values: every label ccobs writes has a cap on its distinct values.

Prometheus memory grows with the number of series, and a series exists for
each distinct combination of label values. A proxy sees model names and paths
chosen by its clients, so without a bound one client sending made-up model
names could grow the proxy's memory (and Prometheus's) without limit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from ccobs.catalog import OTHER, UNKNOWN
from ccobs.redaction import redact_text

_KEY_MARGIN = 256
"""Longer than any API key format: how far past the cut a key may still reach."""


def truncate(value: str, max_length: int) -> str:
    """Cap a label value's length; long values are almost always free text."""
    return value if len(value) <= max_length else value[:max_length]


def label_text(value: str, max_length: int) -> str:
    """``value`` redacted, truncated and made encodable as UTF-8, so it can always be exposed.

    Redacted because label values come from clients: a key pasted as a model
    name must not become a series every scraper and push target keeps.

    A lone surrogate (``"\\ud800"``, which ``json.loads`` accepts from a client)
    cannot be encoded, and one such label value would make every later
    exposition of the registry fail; it is replaced by ``?``.
    """
    # Cut with a margin first, so a huge value costs little to scan while a key
    # straddling ``max_length`` is still seen whole.
    value = truncate(redact_text(truncate(value, max_length + _KEY_MARGIN)), max_length)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


class LabelGuard:
    """Maps raw values of one label to a bounded set of label values.

    With an allow-list, only listed values pass. Without one, the first
    ``cap`` distinct label values pass and later new ones become ``other``.
    ``None`` and the empty string become ``unknown``. Lookups of values already
    seen take no lock, so the hot path is a dictionary read.

    Values are remembered by their label text, plus an ``int`` by itself (a
    status), never by a longer or unencodable raw value: so the memory taken is
    bounded by ``cap`` and ``max_length`` whatever the size of the values
    callers send, and values that share a truncated prefix share one slot.
    """

    def __init__(
        self,
        name: str,
        cap: int,
        *,
        allowlist: Iterable[str] = (),
        max_length: int = 128,
        on_overflow: Callable[[str], None] | None = None,
    ) -> None:
        if cap <= 0:
            raise ValueError(f"label {name!r}: cap must be positive, got {cap}")
        self.name = name
        self.cap = cap
        self.max_length = max_length
        self._allowlist = frozenset(allowlist)
        self._on_overflow = on_overflow
        self._resolved: dict[object, str] = {}
        self._admitted = 0
        self._lock = threading.Lock()

    def __call__(self, value: object) -> str:
        """The label value for ``value`` (a string, an int such as a status, or None)."""
        try:
            resolved = self._resolved.get(value)
        except TypeError:  # unhashable: use its text
            value = str(value)
            resolved = self._resolved.get(value)
        if resolved is not None:
            return resolved
        if value is None or value == "":
            return UNKNOWN
        return self._admit(value)

    def _admit(self, value: object) -> str:
        try:
            raw = value if isinstance(value, str) else str(value)
        except ValueError:  # an int too long to print (sys.get_int_max_str_digits)
            raw = None
        if raw is not None and (not self._allowlist or raw in self._allowlist):
            label = label_text(raw, self.max_length)
            with self._lock:
                resolved = self._resolved.get(label)
                if resolved is None and (self._allowlist or self._admitted < self.cap):
                    self._admitted += 1
                    resolved = self._resolved[label] = label
                if resolved is not None:
                    if value.__class__ is int and raw == label:
                        self._resolved[value] = label  # so a status skips str() next time
                    return resolved
        if self._on_overflow is not None:
            self._on_overflow(self.name)
        return OTHER

    def admits(self, value: object) -> bool:
        """Whether ``value`` maps to a label without a fold: None, or a value admitted as is.

        Side-effect free (nothing admitted, no overflow counted), so a cache may ask
        it before keeping ``value`` for a path that skips the guard.
        """
        if value is None:
            return True
        try:
            return self._resolved.get(value) == value
        except TypeError:  # unhashable
            return False

    @property
    def distinct_values(self) -> int:
        """Values admitted so far (``other`` and ``unknown`` not included)."""
        return self._admitted
