"""Every use of prometheus_client's private internals, and what happens when they change.

ccobs records and renders through prometheus_client's own value cells instead
of its public methods where those repeat work ccobs has already done: checking
an amount on every ``inc``, scanning histogram buckets linearly, building a
dict and a tuple per sample on every scrape. Those cells (``_value``,
``_lock``, ``_buckets``, ``_upper_bounds``, ``_sum``, ``_created``,
``_exemplar``, a collector's ``_metrics``, ``_labelnames``, ``_name``, a
registry's ``_collector_to_names``, ...) are not prometheus_client's API and
may move in any release, so nothing else in ccobs touches them: a change in
prometheus_client is then a change to this module alone.

The fallbacks, so that a prometheus_client whose internals moved costs speed,
never correctness:

- recording (:func:`fast_inc`, :func:`fast_observe`) checks each child when
  its operation is built and falls back to the child's public ``inc`` or
  ``observe`` when its cells are not the plain in-process ones expected;
- rendering (:func:`plain_kind`, :func:`plain_rows`, :func:`registry_collectors`)
  raises :class:`Unsupported`, ``AttributeError`` or ``TypeError`` when it
  meets anything unexpected, and the renderer then hands the whole render to
  prometheus_client's own encoders.
"""

from __future__ import annotations

import math
import os
import struct
from bisect import bisect_left
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

try:
    from prometheus_client import Counter, Gauge, Histogram
    from prometheus_client import metrics as _pc_metrics
    from prometheus_client import values as _pc_values
    from prometheus_client.values import MutexValue

    PROMETHEUS_AVAILABLE = True
except ImportError:  # pragma: no cover - exercised in a subprocess test
    PROMETHEUS_AVAILABLE = False

__all__ = [
    "PROMETHEUS_AVAILABLE",
    "Op",
    "Row",
    "Unsupported",
    "fast_inc",
    "fast_observe",
    "fast_set",
    "has_in_process_value",
    "locked_add",
    "mapped_add",
    "mapped_observe",
    "plain_kind",
    "plain_rows",
    "registry_collectors",
]

Op = Callable[[float], None]
"""A child's storage operation: an increment or an observation."""

Row = tuple[str, float, bool]
"""One sample line: its text up to the value (``name{labels} ``), its value, and
whether the text format moves it into a ``_created``-style family of its own."""

PrefixBuilder = Callable[[str, str, tuple[str, ...], tuple[str, ...], tuple[float, ...]], Any]
"""Builds a child's line prefixes from its metric's name, kind, label names, label
values and (histograms) bucket bounds."""


class Unsupported(Exception):
    """Something only prometheus_client's own encoder writes (exemplars, timestamps, odd names,
    internals that moved)."""


# -- recording ------------------------------------------------------------------------------


def is_mutex_value(cell: Any) -> bool:
    """Whether ``cell`` is prometheus_client's in-process value: a float under a lock."""
    return cell.__class__ is MutexValue and isinstance(getattr(cell, "_value", None), float)


def has_in_process_value(collector: Any) -> bool:
    """Whether an unlabelled counter or gauge keeps its value in process (not in a file)."""
    return is_mutex_value(getattr(collector, "_value", None))


def fast_inc(child: Any) -> Op:
    """``child``'s storage increment, skipping the checks ccobs has already made.

    Counters and gauges keep their value in ``_value`` (a mutex-guarded float,
    or a memory-mapped file under multiprocess mode); exposition reads it from
    there, so incrementing it is exactly what ``child.inc`` does minus the
    argument checks. Falls back to ``child.inc`` if prometheus_client changes.
    """
    value = getattr(child, "_value", None)
    if is_mutex_value(value):
        return locked_add(value)
    mapped = mapped_add(value)  # multiprocess mode: the value lives in this process's file
    if mapped is not None:
        return mapped
    inc = getattr(value, "inc", None)
    return inc if callable(inc) else child.inc  # type: ignore[no-any-return]


def locked_add(value: Any) -> Op:
    """``MutexValue.inc``: the same addition under the same lock, without the ``with``.

    ``MutexValue.inc`` takes its lock with ``with``, and entering and leaving a
    ``with`` block costs more than the lock's own ``acquire`` and ``release``
    calls, which every request counted pays for. ``value`` is any object with a
    ``_lock`` and a float ``_value`` (ccobs's own active-requests value too).
    """
    lock = value._lock
    acquire, release = lock.acquire, lock.release

    def inc(amount: float) -> None:
        acquire()
        try:
            value._value += amount
        finally:
            release()

    return inc


def _histogram_cells(child: Any) -> tuple[list[float], list[Any], Any] | None:
    """A histogram child's bucket bounds, bucket cells and sum cell, when they are plain cells.

    None unless every cell is prometheus_client's in-process value (a float
    under a lock) and the last bound is ``+Inf``; prometheus_client's own
    ``observe`` then records the child (see :func:`fast_observe`).
    """
    try:
        bounds = list(child._upper_bounds)
        cells = list(child._buckets)
        total = child._sum
    except (AttributeError, TypeError):
        return None
    if len(bounds) != len(cells) or not bounds or bounds[-1] != math.inf:
        return None
    if not all(is_mutex_value(cell) for cell in (total, *cells)):
        return None
    return bounds, cells, total


def fast_observe(child: Any) -> Op:
    """``child.observe`` with a binary search for the bucket instead of a linear scan.

    Only for values already checked to be finite and non-negative, which the
    last bucket (``+Inf``) always holds. Adds to the sum and the bucket under
    one lock, the sum cell's, where ``child.observe`` takes each cell's own:
    every addition to a plain child's cells is made here, under that lock, so
    no two additions to a cell ever overlap (prometheus_client reads a cell's
    float whole, with or without its own lock). Falls back to
    ``child.observe`` for other cells.
    """
    found = _histogram_cells(child)
    if found is None:
        mapped = mapped_observe(child)
        return child.observe if mapped is None else mapped
    bounds, cells, total = found
    lock = total._lock
    first = bounds[0]

    def observe(amount: float) -> None:
        lock.acquire()
        try:
            total._value += amount
            # The first bucket without a search: it holds every quick answer, and a float
            # comparison costs a fraction of ``bisect_left``'s call; the same bucket either way.
            cells[0 if amount <= first else bisect_left(bounds, amount)]._value += 1.0
        finally:
            lock.release()

    return observe


# -- recording under multiprocess mode ------------------------------------------------------

_forks = [0]
"""Forks this process came out of: operations built before a fork write through the value's
own ``inc`` after it, which moves the values to the child's own file."""


def _count_fork() -> None:
    _forks[0] += 1


os.register_at_fork(after_in_child=_count_fork)

_pack_value = struct.Struct("dd").pack
"""A value and its timestamp, as ``prometheus_client.mmap_dict`` writes them."""


def _mapped_cell(value: Any) -> tuple[Any, Any, slice] | None:
    """A multiprocess value's lock, file and slice of the file, when they are as expected.

    prometheus_client's ``MmapedValue`` keeps its float in ``_value`` and its
    (value, timestamp) pair in a memory-mapped file (``_file``, a ``MmapedDict``)
    at a fixed position; every value of the process shares one lock, the
    ``lock`` its methods close over. None when any of that is not found.
    """
    if not getattr(value, "_multiprocess", False) or not isinstance(
        getattr(value, "_value", None), float
    ):
        return None
    try:
        # Its own check first: a value made before a fork moves to this process's file
        # now, before its file and position are taken (not on a later write).
        value.get()
        inc = type(value).inc
        cells = dict(zip(inc.__code__.co_freevars, inc.__closure__ or (), strict=True))
        lock = cells["lock"].cell_contents
        file = value._file
        position = file._positions[value._key]
        file._m  # noqa: B018 - the mmap, read on every write: it is replaced when the file grows
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    if not (callable(getattr(lock, "acquire", None)) and isinstance(position, int)):
        return None
    return lock, file, slice(position, position + 16)


def mapped_add(value: Any) -> Op | None:
    """``MmapedValue.inc`` without its process-id check on every call; None if not one.

    prometheus_client asks ``os.getpid()`` (a system call) on every update to notice
    a fork; here a fork is noticed by ``os.register_at_fork``, and an operation built
    before one falls back to ``value.inc``, which then moves the values to the child's
    file. Otherwise the same: under the same lock, the same float, the same 16 bytes
    written at the same place.
    """
    found = _mapped_cell(value)
    if found is None:
        return None
    lock, file, where = found
    acquire, release = lock.acquire, lock.release
    forks, built, slow = _forks, _forks[0], value.inc

    def inc(amount: float) -> None:
        if forks[0] != built:
            slow(amount)
            return
        acquire()
        try:
            total = value._value = value._value + amount
            value._timestamp = 0.0
            file._m[where] = _pack_value(total, 0.0)
        finally:
            release()

    return inc


def mapped_observe(child: Any) -> Op | None:
    """A multiprocess histogram child's ``observe``: one lock, a binary search, two writes.

    For values already checked to be finite and non-negative, as :func:`fast_observe`;
    None unless every cell is a multiprocess value :func:`mapped_add` can write.
    """
    try:
        bounds = list(child._upper_bounds)
        values = [child._sum, *child._buckets]
    except (AttributeError, TypeError):
        return None
    if len(bounds) != len(values) - 1 or not bounds or bounds[-1] != math.inf:
        return None
    cells: list[tuple[Any, Any, slice]] = []
    locks = set()
    for value in values:
        found = _mapped_cell(value)
        if found is None:
            return None
        locks.add(found[0])
        cells.append((value, found[1], found[2]))
    if len(locks) != 1:
        return None
    lock = locks.pop()
    total, *buckets = cells
    acquire, release = lock.acquire, lock.release
    forks, built, slow = _forks, _forks[0], child.observe

    def write(cell: tuple[Any, Any, slice], amount: float) -> None:
        value, file, where = cell
        new = value._value = value._value + amount
        value._timestamp = 0.0
        file._m[where] = _pack_value(new, 0.0)

    def observe(amount: float) -> None:
        if forks[0] != built:
            slow(amount)
            return
        acquire()
        try:
            write(total, amount)
            write(buckets[bisect_left(bounds, amount)], 1.0)
        finally:
            release()

    return observe


# -- rendering ------------------------------------------------------------------------------


def registry_collectors(registry: Any) -> tuple[list[Any], Any | None]:
    """``registry``'s collectors in ``collect()`` order, and its target-info metric if any."""
    with registry._lock:
        collectors = list(registry._collector_to_names)
        target_info = registry._target_info_metric() if registry._target_info else None
    return collectors, target_info


def plain_kind(collector: Any) -> str | None:
    """``counter``/``gauge``/``histogram`` when ``collector`` can be read without ``collect()``.

    Only the plain classes holding in-process values (``MutexValue``); anything
    else, subclasses, multiprocess values and a gauge read through
    ``set_function`` (ccobs's active-requests gauge) included, is collected.
    """
    kinds: dict[type, str] = {Counter: "counter", Gauge: "gauge", Histogram: "histogram"}
    kind = kinds.get(type(collector))
    if kind is None or not isinstance(getattr(collector, "_labelnames", None), tuple):
        return None
    if not collector._labelnames:
        if "_child_samples" in collector.__dict__:  # a Gauge with set_function: collected
            return None
        cell = collector._buckets[0] if kind == "histogram" else collector._value
        if type(cell) is not MutexValue:
            return None
    elif _pc_values.ValueClass is not MutexValue:  # multiprocess mode: values live in files
        return None
    return kind


def plain_family(collector: Any) -> tuple[str, str, str]:
    """A plain collector's (see :func:`plain_kind`) name, help text and unit."""
    return collector._name, collector._documentation, collector._unit


def plain_rows(
    metric: Any,
    kind: str,
    known: dict[Any, Any],
    kept: dict[Any, Any],
    build_prefixes: PrefixBuilder,
    created_apart: bool,
) -> Iterator[Row]:
    """Rows read straight from a plain Counter, Gauge or Histogram's children.

    Each child's line prefixes come from ``known`` (the previous render's), or
    from ``build_prefixes`` the first time, and go into ``kept`` (this render's),
    under the key ``(metric, label values)``: in the order ``collect()`` yields
    the child's samples. ``created_apart``: ``_created`` rows are marked to be
    moved into a family of their own (the text format).
    """
    created = _pc_metrics._use_created
    if metric._labelnames:
        with metric._lock:
            children = list(metric._metrics.items())
    else:
        children = [((), metric)]
    name, labelnames = metric._name, metric._labelnames
    for values, child in children:
        if "_child_samples" in child.__dict__:  # a Gauge with set_function
            raise Unsupported(name)
        key = (metric, values)
        prefixes = known.get(key)
        if prefixes is None:
            bounds = tuple(child._upper_bounds) if kind == "histogram" else ()
            prefixes = build_prefixes(name, kind, labelnames, values, bounds)
        kept[key] = prefixes
        if kind == "histogram":
            cumulative = 0.0
            for prefix, cell in zip(prefixes, child._buckets, strict=False):
                if cell._exemplar is not None:
                    raise Unsupported(name)
                cumulative += cell._value
                yield prefix, cumulative, False
            extra = prefixes[len(child._buckets) :]
            yield extra[0], cumulative, False
            if child._upper_bounds[0] >= 0:
                yield extra[1], child._sum._value, False
            if created:
                yield extra[-1], child._created, created_apart
        else:
            cell = child._value
            if cell._exemplar is not None:
                raise Unsupported(name)
            yield prefixes[0], cell._value, False
            if kind == "counter" and created:
                yield prefixes[1], child._created, created_apart


# -- setting gauges -------------------------------------------------------------------------


def fast_set(child: Any) -> Op:
    """``child.set`` for a gauge child whose value is in process: a plain store of the float.

    ``Gauge.set`` checks the child, converts the value and, for a
    ``mostrecent`` gauge, reads the clock for a timestamp the in-process value
    ignores; callers here pass floats. The store is ``functools.partial`` over
    ``setattr``, with no Python frame: storing one attribute is atomic, and the
    lock ``MutexValue.set`` takes only orders a store against an ``inc``, which
    the gauges set this way (the last word of an upstream) never get. Any
    other cell (a multiprocess file, where the timestamp decides which
    process's value is shown) keeps ``child.set``.
    """
    value: Any = getattr(child, "_value", None)
    if not is_mutex_value(value):
        return child.set  # type: ignore[no-any-return]
    return partial(setattr, value, "_value")
