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


def truncate(value: str, max_length: int) -> str:
    """Cap a label value's length; long values are almost always free text."""
    return value if len(value) <= max_length else value[:max_length]


class LabelGuard:
    """Maps raw values of one label to a bounded set of label values.

    With an allow-list, only listed values pass. Without one, the first
    ``cap`` distinct values pass and later new ones become ``other``.
    ``None`` and the empty string become ``unknown``. Lookups of values already
    seen take no lock, so the hot path is a dictionary read.
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
        raw = value if isinstance(value, str) else str(value)
        label = truncate(raw, self.max_length)
        with self._lock:
            if value in self._resolved:
                return self._resolved[value]
            admitted = raw in self._allowlist if self._allowlist else self._admitted < self.cap
            if admitted:
                self._admitted += 1
                # Only admitted values are remembered, so the memory this
                # dictionary takes is bounded by the cap as well.
                self._resolved[value] = label
                return label
        if self._on_overflow is not None:
            self._on_overflow(self.name)
        return OTHER

    @property
    def distinct_values(self) -> int:
        """Values admitted so far (``other`` and ``unknown`` not included)."""
        return self._admitted
