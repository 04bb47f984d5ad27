"""Rate-limit readings (:mod:`ccobs.rate_limits`) recorded as gauges, bounded.

Each answer's reading overwrites the gauges of its label set: they show the
upstream's last word on each limit, per API, limit kind and key alias. Resets
are recorded as points in time, so "seconds to reset" (``reset - time()``)
stays right while no answer refreshes them. The labelled children are
resolved once per label set and kept; ``key_alias`` passes a
:class:`~ccobs.labels.LabelGuard` (``other`` past :data:`KEY_ALIAS_CAP`), the
other labels take values from fixed sets. Recording never raises: a fault
here is logged, and the request it came with goes on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from itertools import compress
from operator import itemgetter, ne
from threading import get_ident
from typing import Any

from ccobs.labels import LabelGuard
from ccobs.prometheus_internals import Op, fast_set, has_in_process_value
from ccobs.rate_limit_fields import (
    ACTIVATES,
    COUNT,
    DURATION,
    NO_LIMIT,
    RETRY_AFTER,
    RFC3339,
    STATUS,
    UNIFIED_RESET,
    UTILIZATION,
    Field,
    classify,
    count_value,
    duration_value,
    number_value,
    rfc3339_value,
    status_value,
)
from ccobs.rate_limit_layouts import LayoutTable, Plan
from ccobs.rate_limits import (
    MAX_RESET_SECONDS,
    MAX_UTILIZATION,
    RATE_LIMIT_APIS,
    REJECTED_FIELDS,
    UNIFIED_STATUSES,
    RateLimitReading,
    read_rate_limits,
)
from ccobs.refusals import LOG_INTERVAL, LogThrottle, logger

__all__ = ["KEY_ALIAS_CAP", "NO_KEY_ALIAS", "RateLimitGauges", "start_rejected_at_zero"]

KEY_ALIAS_CAP = 100
"""Distinct key aliases the rate-limit gauges keep apart; later ones share ``other``."""
NO_KEY_ALIAS = "none"
"""The ``key_alias`` of answers to requests whose caller has no alias (no attribution)."""
MAX_REMEMBERED_NAMES = 256
"""Raw header names whose classification is kept; past it the table starts again (an
upstream sends the same few dozen names on every answer)."""
MAX_REMEMBERED_VALUES = 64
"""Reset values (per format) whose parse is kept; past it the cache starts again (a reset
repeats on every answer until its window rolls)."""

MAX_REMEMBERED_PLANS = 256
"""(key alias, plan) pairs whose gauge operations are kept; past it the table starts again."""

_NAME = itemgetter(0)
_VALUE = itemgetter(1)
_UNSEEN_VALUE = float("nan")
"""What a value cache answers for a value it has not parsed yet (compared by identity; the
parsers never return NaN)."""


def start_rejected_at_zero(counter: Any) -> None:
    """Create every (api, field) child of the rejected-values counter at zero."""
    for api in RATE_LIMIT_APIS:
        for name in REJECTED_FIELDS:
            counter.labels(api, name)


class RateLimitGauges:
    """Records readings into the rate-limit families of one ``MetricFamilies``."""

    def __init__(
        self,
        families: Any,
        max_length: int,
        on_overflow: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._families = families
        self._clock = clock
        self._key_alias = LabelGuard(
            "key_alias", KEY_ALIAS_CAP, max_length=max_length, on_overflow=on_overflow
        )
        self._children: dict[tuple[str, ...], Any] = {}
        self._throttle = LogThrottle(LOG_INTERVAL)
        # The fast path's state (set_from_headers), every table bounded.
        self._fields: dict[bytes, Field | None] = {}
        self._ops: dict[tuple[str, str], dict[Field, Op]] = {}
        self._status_ops: dict[str, tuple[tuple[str, Op], ...]] = {}
        self._rfc3339: dict[bytes, float | None] = {}
        self._durations: dict[bytes, float | None] = {}
        self._numbers: dict[bytes, float | None] = {}
        # The layouts' path (see _set_by_layout).
        self._owner: int | None = None
        """The thread whose calls keep values per key alias (-1: none any more)."""
        self._layouts = LayoutTable()
        self._plan_ops: dict[tuple[str, Plan], list[Op | None]] = {}
        self._written: dict[str, _Written] = {}
        self._in_process = True
        """Whether every gauge child met so far keeps its value in process (not in a file)."""

    def set_from_headers(
        self, headers: Iterable[tuple[bytes, bytes]], key_alias: str | None
    ) -> None:
        """What :meth:`record_headers` records, in one pass over ``headers`` (the proxy's path).

        No reading is built. A list of headers whose names were seen before,
        in the same order (a layout, :mod:`ccobs.rate_limit_layouts`), is
        applied by position, and in process only its values that moved since
        the key alias's last answer are applied (:meth:`_set_by_layout`);
        anything else is read header by header, each name classified once per
        raw name (:func:`ccobs.rate_limit_fields.classify`). Values are parsed
        the cheap way first and gauges set through operations kept per (key
        alias, API, field). The gauges and rejected counts end up as
        :meth:`record_headers` leaves them, which property tests check.
        """
        try:
            if headers.__class__ is list and self._owner == get_ident():
                self._set_by_layout(headers, key_alias)
            else:
                self._set_elsewhere(headers, key_alias)
        except Exception as exc:  # observability never fails a request
            if self._throttle.allow("rate_limits"):
                logger.warning("rate_limit_headers_unrecorded", error=repr(exc)[:200])

    def _set_elsewhere(self, headers: Iterable[tuple[bytes, bytes]], key_alias: str | None) -> None:
        """Headers that are not a list, or from a thread other than the first one's.

        The values kept per key alias are true only while one thread sets the
        gauges: the first call's thread owns them, and a call from another
        thread drops them for good (every thread then sets every value).
        """
        if self._owner is None:
            self._owner = get_ident()
        elif self._owner != get_ident():
            self._owner = -1
            self._written.clear()
        if self._owner != -1 and headers.__class__ is list:
            self._set_by_layout(headers, key_alias)
        else:
            self._set_one_by_one(headers, key_alias)

    def _set_by_layout(self, headers: list[tuple[bytes, bytes]], key_alias: str | None) -> None:
        """The headers' names found as a whole layout; only the values that moved applied.

        The layout (:mod:`ccobs.rate_limit_layouts`) says at once which headers
        are rate-limit ones. In process, the values last applied for each key
        alias are kept (:class:`_Written`): a header whose value equals the one
        that last set its gauge, through the same plan, would set it to what it
        already holds, so it is skipped. Values whose outcome depends on the
        time (OpenAI's durations) or that were refused (counted every time)
        are applied on every answer, and remembered resets only while the
        time is within reach of all of them.
        """
        try:
            joined = b"\n".join(map(_NAME, headers))
        except TypeError:  # a name that is not bytes: header by header, as the reference
            self._set_one_by_one(headers, key_alias)
            return
        layout = self._layouts.find(joined, headers)
        plan = layout.plan
        if plan is None:
            if not layout.regular:
                self._set_one_by_one(headers, key_alias)
            return  # no rate-limit header: nothing to record
        alias = self._key_alias(key_alias) if key_alias else NO_KEY_ALIAS
        pairs = layout.pairs(headers)
        now = self._clock()
        written = self._written.pop(alias, None)  # out of date until the values are applied
        if written is not None and written.plan is plan and written.lo <= now <= written.hi:
            todo: Iterable[int] = list(
                compress(plan.indexes, map(ne, map(_VALUE, pairs), written.values))
            )
        else:
            ops = self._plan_ops.get((alias, plan))
            if ops is None:
                ops = self._ops_of(plan, alias)
            written = _Written(plan, ops)
            todo = plan.indexes
        self._apply(written, todo, pairs, alias, now)
        if layout.retry_after >= 0:
            self._check_retry_after(headers[layout.retry_after][1], plan.api)
        if self._in_process:
            self._written[alias] = written

    def _apply(
        self,
        written: _Written,
        todo: Iterable[int],
        pairs: tuple[tuple[bytes, bytes], ...],
        alias: str,
        now: float,
    ) -> None:
        """Apply the values at ``todo`` as :meth:`_set_one_by_one` would, noting each outcome."""
        plan = written.plan
        fields, api, ops, kept = plan.fields, plan.api, written.ops, written.values
        resets_moved = False
        for index in todo:
            raw_value = pairs[index][1]
            field = fields[index]
            how = field.how
            number: float | None
            if how == COUNT and raw_value.isdigit() and len(raw_value) < 16:
                number = float(raw_value)  # count_value's shortcut, inline
                kept[index] = raw_value
            elif how == STATUS:
                self._set_status(alias, status_value(raw_value))
                kept[index] = raw_value
                continue
            elif how == ACTIVATES:  # nothing to record
                kept[index] = raw_value
                continue
            else:
                number = self._value(field, raw_value, api, now)
                if how in (RFC3339, UNIFIED_RESET):
                    resets_moved = True
                    if number is None:
                        written.resets.pop(index, None)
                    else:
                        written.resets[index] = number
                # Refused (counted again on every answer), no limit, or a duration (a new
                # time from now on every answer): applied again next time.
                kept[index] = None if number is None or how == DURATION else raw_value
                if number is None:
                    continue
            op = ops[index]
            if op is None:
                op = ops[index] = self._op(field, api, alias)
            op(number)
        if resets_moved:
            written.reach()

    def _check_retry_after(self, raw_value: bytes, api: str) -> None:
        seconds = count_value(raw_value, "")
        if seconds is None or seconds > MAX_RESET_SECONDS:
            self._reject(api, "retry_after")

    def _ops_of(self, plan: Plan, alias: str) -> list[Op | None]:
        """The set operations of ``plan``'s fields for ``alias`` made so far (None: not yet, or
        no gauge of its own)."""
        if len(self._plan_ops) >= MAX_REMEMBERED_PLANS:
            self._plan_ops.clear()
        by_field = self._ops.get((alias, plan.api), {})
        ops = self._plan_ops[(alias, plan)] = [by_field.get(field) for field in plan.fields]
        return ops

    def _op(self, field: Field, api: str, alias: str) -> Op:
        """The set operation of ``field``'s gauge for ``api`` and ``alias``, made on first use
        (a child made earlier would show a 0 the headers never said)."""
        ops = self._ops.get((alias, api))
        if ops is None:
            ops = self._ops[(alias, api)] = {}
        op = ops.get(field)
        return self._set_op(ops, field, api, alias) if op is None else op

    def _set_one_by_one(
        self, headers: Iterable[tuple[bytes, bytes]], key_alias: str | None
    ) -> None:
        fields = self._fields
        ops: dict[Field, Op] | None = None
        api = alias = ""
        now = 0.0
        retry_after: bytes | None = None
        status: str | None = None
        for raw_name, raw_value in headers:
            try:  # a subscript: cheaper than a call to get() on the names seen before
                field = fields[raw_name]
            except KeyError:
                field = self._classify(raw_name)
            if field is None:
                continue
            how = field.how
            if how == RETRY_AFTER:
                retry_after = raw_value  # the last one, checked once the answer has a reading
                continue
            if ops is None:  # the first rate-limit header: the answer has a reading
                api = field.api
                alias = self._key_alias(key_alias) if key_alias else NO_KEY_ALIAS
                self._written.pop(alias, None)
                ops = self._ops.get((alias, api))
                if ops is None:
                    ops = self._ops[(alias, api)] = {}
                now = self._clock()
            number: float | None
            if how == COUNT and raw_value.isdigit() and len(raw_value) < 16:
                number = float(raw_value)  # count_value's shortcut, inline
            elif how == STATUS:
                status = status_value(raw_value)
                continue
            elif how == ACTIVATES:
                continue
            else:
                number = self._value(field, raw_value, api, now)
                if number is None:
                    continue
            try:
                op = ops[field]
            except KeyError:
                op = self._set_op(ops, field, api, alias)
            op(number)
        if ops is None:
            return  # no rate-limit header: nothing to record
        if retry_after is not None:
            self._check_retry_after(retry_after, api)
        if status is not None:
            self._set_status(alias, status)

    def _value(self, field: Field, raw_value: bytes, api: str, now: float) -> float | None:
        """What a count, reset, duration or utilization header sets its gauge to; None when
        it sets nothing: no limit, or refused (and counted as refused here)."""
        how = field.how
        number: float | None
        if how == COUNT:
            number = count_value(raw_value, field.api)
            if number is None:
                self._reject(api, field.rejected_as)
                return None
            return None if number == NO_LIMIT else number
        if how == UTILIZATION:
            number = number_value(raw_value)
            if number is None or number < 0 or number > MAX_UTILIZATION:
                self._reject(api, "utilization")
                return None
            return number
        if how == DURATION:
            number = self._durations.get(raw_value, _UNSEEN_VALUE)
            if number is _UNSEEN_VALUE:
                number = _remember(self._durations, raw_value, duration_value(raw_value))
            if number == NO_LIMIT:
                return None
            # The reference's arithmetic exactly: a time, then its distance from now.
            number = None if number is None else now + number
        elif how == RFC3339:
            number = self._rfc3339.get(raw_value, _UNSEEN_VALUE)
            if number is _UNSEEN_VALUE:
                number = _remember(self._rfc3339, raw_value, rfc3339_value(raw_value))
        else:  # UNIFIED_RESET
            number = self._numbers.get(raw_value, _UNSEEN_VALUE)
            if number is _UNSEEN_VALUE:
                number = _remember(self._numbers, raw_value, number_value(raw_value))
        if number is None or abs(number - now) > MAX_RESET_SECONDS:
            self._reject(api, "reset")
            return None
        return number

    def _set_status(self, alias: str, status: str | None) -> None:
        for known, set_status in self._status_set(alias):
            set_status(1.0 if known == status else 0.0)

    def _classify(self, raw_name: bytes) -> Field | None:
        fields = self._fields
        if len(fields) >= MAX_REMEMBERED_NAMES:
            fields.clear()
        field = fields[raw_name] = classify(raw_name)
        return field

    def _set_op(self, ops: dict[Field, Op], field: Field, api: str, alias: str) -> Op:
        """The set operation of ``field``'s child for ``api`` and ``alias``, kept in ``ops``."""
        family = getattr(self._families, field.family)
        labels = (api, field.label, alias) if field.per_api else (field.label, alias)
        child = family.labels(*labels)
        self._in_process = self._in_process and has_in_process_value(child)
        op = ops[field] = fast_set(child)
        return op

    def _status_set(self, alias: str) -> tuple[tuple[str, Op], ...]:
        found = self._status_ops.get(alias)
        if found is None:
            family = self._families.unified_status
            children = [(status, family.labels(status, alias)) for status in UNIFIED_STATUSES]
            for _, child in children:
                self._in_process = self._in_process and has_in_process_value(child)
            found = self._status_ops[alias] = tuple(
                (status, fast_set(child)) for status, child in children
            )
        return found

    def _reject(self, api: str, name: str) -> None:
        """Count a refused value of field ``name`` (and log it, throttled)."""
        self._child("rejected", self._families.ratelimit_rejected, api, name).inc()
        if self._throttle.allow("rejected:" + name):
            logger.warning("rate_limit_value_rejected", api=api, field=name)

    def record_headers(
        self, headers: Iterable[tuple[bytes, bytes]], key_alias: str | None
    ) -> RateLimitReading | None:
        """Read ``headers`` (raw, as received) and record what they state; the reading."""
        try:
            reading = read_rate_limits(headers, self._clock())
            if reading is not None:
                self.record(reading, key_alias)
            return reading
        except Exception as exc:  # observability never fails a request
            if self._throttle.allow("rate_limits"):
                logger.warning("rate_limit_headers_unrecorded", error=repr(exc)[:200])
            return None

    def record(self, reading: RateLimitReading, key_alias: str | None) -> None:
        """Set the gauges of ``reading``'s limits and windows; count its rejected values."""
        alias = self._key_alias(key_alias) if key_alias else NO_KEY_ALIAS
        self._written.pop(alias, None)  # its gauges move: the fast path applies every value
        api = reading.api
        families = self._families
        for kind, entry in reading.limits.items():
            if entry.limit is not None:
                self._child("limit", families.ratelimit_limit, api, kind, alias).set(entry.limit)
            if entry.remaining is not None:
                remaining = families.ratelimit_remaining
                self._child("remaining", remaining, api, kind, alias).set(entry.remaining)
            if entry.reset_at is not None:
                reset = families.ratelimit_reset
                self._child("reset", reset, api, kind, alias).set(entry.reset_at)
        for window, reading_window in reading.windows.items():
            if reading_window.utilization is not None:
                utilization = families.unified_utilization
                self._child("util", utilization, window, alias).set(reading_window.utilization)
            if reading_window.reset_at is not None:
                reset = families.unified_reset
                self._child("ureset", reset, window, alias).set(reading_window.reset_at)
        if reading.status is not None:
            status_family = families.unified_status
            for status in UNIFIED_STATUSES:
                child = self._child("status", status_family, status, alias)
                child.set(1.0 if status == reading.status else 0.0)
        for name in reading.rejected:
            self._reject(api, name)

    def _child(self, family_key: str, family: Any, *labels: str) -> Any:
        """The child of ``family`` for ``labels``, resolved once (the label sets are bounded)."""
        key = (family_key, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        return child


def _remember(cache: dict[bytes, float | None], raw: bytes, value: float | None) -> float | None:
    """Keep ``value`` as the parse of ``raw`` in ``cache`` (bounded: full, it starts again)."""
    if len(cache) >= MAX_REMEMBERED_VALUES:
        cache.clear()
    cache[raw] = value
    return value


class _Written:
    """What the fast path last applied for one key alias, through one plan.

    ``values`` holds, per field of the plan, the raw value whose outcome its
    gauge still shows, or None where the value must be applied again on the
    next answer whatever it is (refused, or a duration from now). ``resets``
    holds the accepted reset times: a remembered reset is valid only while
    the time is within :data:`MAX_RESET_SECONDS` of it, between ``lo`` and ``hi``.
    """

    __slots__ = ("hi", "lo", "ops", "plan", "resets", "values")

    def __init__(self, plan: Plan, ops: list[Op | None]) -> None:
        self.plan = plan
        self.ops = ops
        self.values: list[bytes | None] = [None] * len(plan.fields)
        self.resets: dict[int, float] = {}
        self.lo = -math.inf
        self.hi = math.inf

    def reach(self) -> None:
        """The times at which every remembered reset would still be accepted."""
        resets = self.resets.values()
        self.lo = max(resets) - MAX_RESET_SECONDS if resets else -math.inf
        self.hi = min(resets) + MAX_RESET_SECONDS if resets else math.inf
