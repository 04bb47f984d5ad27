"""What every ``record_*`` call looks up: call arguments -> how to record them, built once.

Resolving a call's arguments to a child means running every label through its
guard (see :mod:`ccobs.labels`) and asking prometheus_client for the child;
recording then takes a lock and an addition. A :class:`SeriesCache` keeps, for
one metric family (or for a bundle of families), what records each resolved
label set, built once, and remembers it under the raw arguments too, so that
a repeated call costs one dictionary lookup.

It is bounded: label sets are bounded by the guards' caps, and raw arguments
are remembered only when :func:`rememberable`, which admits no more of them
than there are label sets.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import Generic, TypeVar

from ccobs.catalog import OTHER

T = TypeVar("T")

Raw = tuple[object, ...]
"""A ``record_*`` call's label arguments, as the caller passed them."""
Labels = tuple[str, ...]
"""The label values they resolved to."""


def rememberable(raw: Raw, labels: Labels) -> bool:
    """Whether a cache may keep the raw arguments ``raw`` that resolved to ``labels``.

    Only when each argument is its label exactly, None, or an int whose text is
    its label: then the caches hold no more than the label guards admit. Values
    the guards folded into ``other`` must reach them every time, so that each
    overflow is counted; truncated or re-encoded values are not kept either,
    since any number of them can share one label.
    """
    if OTHER in labels:
        return False
    for value, label in zip(raw, labels, strict=True):
        if value is not None and not (value.__class__ in (str, int) and str(value) == label):
            return False
    return True


def _no_check(raw: Raw) -> None:
    """Every raw argument may be resolved."""


def one_of(position: int, argument: str, allowed: tuple[str, ...]) -> Callable[[Raw], None]:
    """A ``check`` that raw argument ``position`` (named ``argument``) is one of ``allowed``."""

    def check(raw: Raw) -> None:
        if raw[position] not in allowed:
            raise ValueError(f"unknown {argument} {raw[position]!r}; allowed: {', '.join(allowed)}")

    return check


class SeriesCache(Generic[T]):
    """Label sets and raw call arguments -> what records them (an operation, or a bundle).

    ``build`` makes the value for a label set, once; ``labels_of`` resolves raw
    arguments through the label guards; ``check`` raises ValueError for raw
    arguments no label may take (an unknown token type), before anything is
    recorded. ``by_raw`` is a plain dict so that the hot path is one lookup,
    ``cache.by_raw[raw]``, inline in the caller; a miss (KeyError, or
    TypeError for unhashable arguments) goes through :meth:`resolve`.

    No lock: building the same value twice in a race is harmless (both record
    the same child's cells), and a dict store is atomic.
    """

    __slots__ = ("build", "by_labels", "by_raw", "check", "labels_of", "remembers")

    def __init__(
        self,
        build: Callable[[Labels], T],
        labels_of: Callable[[Raw], Labels] | None = None,
        check: Callable[[Raw], None] = _no_check,
        remembers: Callable[[Raw, Labels], bool] = rememberable,
    ) -> None:
        self.build = build
        self.remembers = remembers
        """Whether raw arguments may be kept: :func:`rememberable`, unless the labels'
        owner can tell an ``other`` it admitted from one it folded."""
        self.labels_of = labels_of
        self.check = check
        self.by_raw: dict[Raw, T] = {}
        self.by_labels: dict[Labels, T] = {}

    def for_labels(self, labels: Labels) -> T:
        """The value for resolved ``labels``, built on first use."""
        value = self.by_labels.get(labels)
        if value is None:
            value = self.by_labels[labels] = self.build(labels)
        return value

    def resolve(self, raw: Raw) -> T:
        """The value for raw arguments ``raw``, remembered under them when :func:`rememberable`.

        Runs the label guards, so each call counts its overflows; what the
        guards folded into ``other`` is never remembered, so it comes back here.
        """
        assert self.labels_of is not None, "a cache without labels_of resolves labels only"
        labels = self.labels_of(raw)
        value = self.for_labels(labels)
        if self.remembers(raw, labels):
            with suppress(TypeError):  # unhashable arguments are resolved every time
                self.by_raw[raw] = value
        return value
