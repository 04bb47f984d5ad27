"""An answer's header names, recognised as a whole: which of them are rate-limit headers.

An upstream sends the same header names, in the same order, on every answer
of a kind (its non-streamed answers, its streams, its errors): only the
values move. Classifying each name (:func:`ccobs.rate_limit_fields.classify`,
or a dictionary of names already classified) costs a hash of every name of
every answer, since each answer's names are new ``bytes`` objects. A
:class:`LayoutTable` instead remembers the whole sequence of names it saw, a
:class:`Layout`: a new answer whose names equal a remembered sequence (one
comparison of tuples, ``memcmp`` per name, no hashing) finds the positions of
its rate-limit headers and what each holds at once.

Layouts whose rate-limit headers read the same fields in the same order share
one :class:`Plan`, so a stream and a non-streamed answer of the same upstream,
which differ only in other headers, write the same gauges through the same plan.

Only *regular* layouts get a plan: no two headers feeding the same gauge, at
most one status and one ``retry-after`` header. Their outcome then does not
depend on the order in which their values are applied, which is what lets a
caller apply only the values that changed since the last answer. Other
layouts (a header repeated, a name that is not ``bytes``) are remembered as
irregular and read header by header, as before.

Pure: no metrics, no I/O; bounded (:data:`MAX_LAYOUTS`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Final

from ccobs.rate_limit_fields import ACTIVATES, RETRY_AFTER, Field, classify

__all__ = ["MAX_LAYOUTS", "Layout", "LayoutTable", "Plan"]

MAX_LAYOUTS: Final = 32
"""Distinct header-name sequences remembered; past it the table starts again (an upstream
sends a handful: answers, streams, errors)."""


class Plan:
    """The rate-limit fields of a regular layout, in header order, with their API.

    Shared by every layout whose rate-limit headers are the same fields in the
    same order, so its identity says "these values feed these gauges".
    """

    __slots__ = ("api", "fields", "indexes")

    def __init__(self, api: str, fields: tuple[Field, ...]) -> None:
        self.api = api
        """The API the answer's gauges are labelled with: its first rate-limit header's."""
        self.fields = fields
        """What each rate-limit header holds (``retry-after`` apart), in header order."""
        self.indexes = tuple(range(len(fields)))


class Layout:
    """One sequence of header names, and where its rate-limit headers are.

    ``plan`` is None for a layout with no rate-limit header (bar ``retry-after``,
    which alone makes no reading): such an answer records nothing. ``regular``
    is False for a layout to be read header by header.
    """

    __slots__ = ("count", "joined", "pairs", "plan", "regular", "retry_after")

    def __init__(
        self,
        joined: bytes,
        count: int,
        plan: Plan | None,
        regular: bool,
        positions: Sequence[int],
        retry_after: int,
    ) -> None:
        self.joined = joined
        """The names joined by newlines."""
        self.count = count
        self.plan = plan
        self.regular = regular
        self.retry_after = retry_after
        """The position of the ``retry-after`` header, or -1."""
        self.pairs = _picker(positions)
        """The (name, value) pairs of the rate-limit headers (``retry-after`` apart)."""


_Pairs = Callable[[list[tuple[bytes, bytes]]], tuple[tuple[bytes, bytes], ...]]


def _picker(positions: Sequence[int]) -> _Pairs:
    """A tuple of the items at ``positions`` (``itemgetter`` returns a lone item bare)."""
    if len(positions) == 1:
        (only,) = positions
        return lambda headers: (headers[only],)
    return itemgetter(*positions) if positions else lambda headers: ()


class LayoutTable:
    """The layouts seen so far, found by comparing names; bounded."""

    def __init__(self) -> None:
        self._layouts: list[Layout] = []
        self._plans: dict[tuple[str, tuple[Field, ...]], Plan] = {}

    def find(self, names: bytes, headers: list[tuple[bytes, bytes]]) -> Layout:
        """The layout of ``headers``, whose names joined by newlines are ``names``; learnt the
        first time it is seen.

        Equal joined names mean equal names only if the count matches and no name
        of the layout holds a newline (the answer's newlines would then be more
        than the layout's): layouts with one are never remembered.
        """
        count = len(headers)
        for layout in self._layouts:
            if layout.joined == names and layout.count == count:
                return layout
        return self._learn(names, headers)

    def _learn(self, joined: bytes, headers: list[tuple[bytes, bytes]]) -> Layout:
        names = tuple(name for name, _ in headers)
        layout = self._compile(joined, names)
        if layout.regular and not any(b"\n" in name for name in names):
            if len(self._layouts) >= MAX_LAYOUTS:
                self._layouts.clear()
                self._plans.clear()
            self._layouts.append(layout)
        return layout

    def _compile(self, joined: bytes, names: tuple[bytes, ...]) -> Layout:
        irregular = Layout(joined, len(names), None, False, (), -1)
        if any(name.__class__ is not bytes for name in names):
            return irregular  # read one by one: classify refuses it
        positions: list[int] = []
        fields: list[Field] = []
        retry_after = -1
        regular = True
        targets: set[tuple[str, str]] = set()
        for position, name in enumerate(names):
            field = classify(name)
            if field is None:
                continue
            if field.how == RETRY_AFTER:
                regular = regular and retry_after < 0
                retry_after = position
                continue
            if field.how != ACTIVATES:
                target = (field.family, field.label)  # the gauge(s) it writes, its API aside
                regular = regular and target not in targets
                targets.add(target)
            positions.append(position)
            fields.append(field)
        if not regular:
            return irregular
        if not fields:
            return Layout(joined, len(names), None, True, (), retry_after)
        key = (fields[0].api, tuple(fields))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = Plan(*key)
        return Layout(joined, len(names), plan, True, positions, retry_after)
