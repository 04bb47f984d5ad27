"""Each rate-limit header name classified once, and its value parsed the cheap way first.

:func:`ccobs.rate_limits.read_rate_limits` is the reference reader: it lowers
every header name, builds a :class:`~ccobs.rate_limits.RateLimitReading` and
parses every value through the general parsers. The proxy reads a dozen of
these headers on every answer, so :class:`ccobs.rate_limit_metrics.RateLimitGauges`
reads them straight into its gauges instead, with what this module gives it:

- :func:`classify`: what a header name holds (a :class:`Field`, one of a fixed
  set of constant objects, or None for a header that is not a rate-limit one).
  Callers remember the answer per raw name, so an answer's headers cost one
  dictionary lookup each; the names an upstream sends are the same on every
  answer.
- :func:`count_value`, :func:`rfc3339_value`, :func:`duration_value`,
  :func:`number_value`: a header value (raw bytes) to what the reference reader
  makes of it, equal by construction (the reference's own parsers, after the
  same latin-1 decoding and stripping) and by a property test. Only a count of
  plain ASCII digits takes a shortcut; the callers cache resets, which repeat
  across answers until the window rolls.

Pure: no metrics, no I/O, no state.
"""

from __future__ import annotations

from typing import Final

from ccobs.rate_limits import (
    UNIFIED_STATUSES,
    UNIFIED_WINDOWS,
    _count,
    _go_duration,
    _known_names,
    _number,
    _rfc3339,
)

__all__ = [
    "ACTIVATES",
    "COUNT",
    "DURATION",
    "NO_LIMIT",
    "RETRY_AFTER",
    "RFC3339",
    "STATUS",
    "UNIFIED_RESET",
    "UTILIZATION",
    "Field",
    "classify",
    "count_value",
    "duration_value",
    "number_value",
    "rfc3339_value",
    "status_value",
]

# How a field's value is read (``Field.how``): small ints, compared with ``==`` in the hot loop.
COUNT: Final = 0
"""A limit or a remaining count (``-limit``, ``-remaining``)."""
RFC3339: Final = 1
"""Anthropic's reset: an RFC 3339 time."""
DURATION: Final = 2
"""OpenAI's reset: a Go duration from now."""
UTILIZATION: Final = 3
"""A subscription window's share used."""
UNIFIED_RESET: Final = 4
"""A subscription window's reset, Unix seconds."""
STATUS: Final = 5
"""The subscription's overall status."""
ACTIVATES: Final = 6
"""Another unified header (``-representative-claim``, ``-<window>-status``...): nothing to
record, but like any rate-limit header it makes the answer one that has a reading."""
RETRY_AFTER: Final = 7
"""``retry-after``: checked (and its refusal counted) only when the answer has a reading."""

NO_LIMIT: Final = -1.0
"""What the value parsers return for OpenAI's ``-1`` ("no limit"): neither recorded nor
refused. No accepted value is negative, so it cannot be mistaken for one."""

_UNIFIED = b"anthropic-ratelimit-unified-"


class Field:
    """What one header name holds: how to read its value and which gauge it feeds.

    Every name maps to one of a fixed set of these objects (see
    :data:`FIELDS`), so they can key a cache of gauge children whose size is
    bounded whatever names an upstream sends.
    """

    __slots__ = ("api", "family", "how", "label", "rejected_as")

    def __init__(self, how: int, api: str, family: str, label: str, rejected_as: str) -> None:
        self.how = how
        self.api = api
        """The API the header belongs to (unified ones: ``anthropic``)."""
        self.family = family
        """The ``MetricFamilies`` attribute of the gauge it feeds ("" for none)."""
        self.label = label
        """The limit kind or the window: the gauge's label after ``api`` (if it has one)."""
        self.rejected_as = rejected_as
        """The ``field`` label a refused value counts under (``REJECTED_FIELDS``)."""

    @property
    def per_api(self) -> bool:
        """Whether the gauge has an ``api`` label (the limit gauges; not the unified ones)."""
        return self.how in (COUNT, RFC3339, DURATION)

    def __repr__(self) -> str:
        return f"Field({self.how}, {self.api!r}, {self.family!r}, {self.label!r})"


def _fields() -> tuple[dict[bytes, Field], dict[str, Field], dict[str, Field]]:
    """The Anthropic and OpenAI names, and the unified fields by window."""
    families = {
        "limit": "ratelimit_limit",
        "remaining": "ratelimit_remaining",
        "reset": "ratelimit_reset",
    }
    by_name: dict[bytes, Field] = {}
    for name, (api, kind, what) in _known_names().items():
        how = COUNT if what != "reset" else RFC3339 if api == "anthropic" else DURATION
        by_name[name] = Field(how, api, families[what], kind, what)
    utilization = {
        window: Field(UTILIZATION, "anthropic", "unified_utilization", window, "utilization")
        for window in UNIFIED_WINDOWS
    }
    resets = {
        window: Field(UNIFIED_RESET, "anthropic", "unified_reset", window, "reset")
        for window in UNIFIED_WINDOWS
    }
    return by_name, utilization, resets


_BY_NAME, _UTILIZATION, _UNIFIED_RESETS = _fields()
_STATUS_FIELD: Final = Field(STATUS, "anthropic", "unified_status", "", "")
_ACTIVATES_FIELD: Final = Field(ACTIVATES, "anthropic", "", "", "")
_RETRY_AFTER_FIELD: Final = Field(RETRY_AFTER, "", "", "", "retry_after")
FIELDS: Final[tuple[Field, ...]] = (
    *_BY_NAME.values(),
    *_UTILIZATION.values(),
    *_UNIFIED_RESETS.values(),
    _STATUS_FIELD,
    _ACTIVATES_FIELD,
    _RETRY_AFTER_FIELD,
)
"""Every field a name can be classified as."""


def classify(raw_name: bytes) -> Field | None:
    """What the header ``raw_name`` (any case) holds, as the reference reader sees it; None:
    not a rate-limit header."""
    if raw_name.__class__ is not bytes:
        raise TypeError(f"header names are bytes, got {type(raw_name).__name__}")
    name = raw_name.lower()
    known = _BY_NAME.get(name)
    if known is not None:
        return known
    if name.startswith(_UNIFIED):
        rest = name[len(_UNIFIED) :].decode("latin-1")
        if rest == "status":
            return _STATUS_FIELD
        window_text, _, what = rest.rpartition("-")
        if what not in ("utilization", "reset") or not window_text:
            return _ACTIVATES_FIELD
        window = window_text.replace("-", "_")
        if window not in UNIFIED_WINDOWS:
            window = "other"
        return (_UTILIZATION if what == "utilization" else _UNIFIED_RESETS)[window]
    if name == b"retry-after":
        return _RETRY_AFTER_FIELD
    return None


def _text(raw: bytes) -> str:
    return raw.decode("latin-1").strip()


def count_value(raw: bytes, api: str) -> float | None:
    """A ``-limit`` or ``-remaining`` value: the count, None (refused) or :data:`NO_LIMIT`.

    Fifteen ASCII digits or fewer are read directly: the reference's checks
    (finite, not negative, at most ``MAX_COUNT``) hold for them by their form.
    """
    if raw.isdigit() and len(raw) < 16:
        return float(raw)
    value = _text(raw)
    if api == "openai" and value == "-1":
        return NO_LIMIT
    return _count(value)


def rfc3339_value(raw: bytes) -> float | None:
    """An Anthropic reset as Unix seconds, or None (refused)."""
    return _rfc3339(_text(raw))


def duration_value(raw: bytes) -> float | None:
    """An OpenAI reset as seconds from now, None (refused) or :data:`NO_LIMIT`."""
    value = _text(raw)
    if value == "-1":
        return NO_LIMIT
    return _go_duration(value)


def number_value(raw: bytes) -> float | None:
    """A unified utilization or reset (any finite number; the caller checks its range)."""
    return _number(_text(raw))


def status_value(raw: bytes) -> str:
    """The subscription status's label: a known status, or ``other``."""
    value = _text(raw)
    return value if value in UNIFIED_STATUSES else "other"
