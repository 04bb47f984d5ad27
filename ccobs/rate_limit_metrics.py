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

import time
from collections.abc import Callable, Iterable
from typing import Any

from ccobs.labels import LabelGuard
from ccobs.prometheus_internals import Op, fast_set
from ccobs.rate_limit_fields import (
    ACTIVATES,
    COUNT,
    DURATION,
    NO_LIMIT,
    RETRY_AFTER,
    RFC3339,
    STATUS,
    UTILIZATION,
    Field,
    classify,
    count_value,
    duration_value,
    number_value,
    rfc3339_value,
    status_value,
)
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

    def set_from_headers(
        self, headers: Iterable[tuple[bytes, bytes]], key_alias: str | None
    ) -> None:
        """What :meth:`record_headers` records, in one pass over ``headers`` (the proxy's path).

        No reading is built: each header's name is classified once per raw
        name (:func:`ccobs.rate_limit_fields.classify`), its value parsed the
        cheap way first, and its gauge set through an operation kept per
        (key alias, API, field). The gauges and rejected counts end up as
        :meth:`record_headers` leaves them, which a property test checks.
        """
        try:
            self._set_from_headers(headers, key_alias)
        except Exception as exc:  # observability never fails a request
            if self._throttle.allow("rate_limits"):
                logger.warning("rate_limit_headers_unrecorded", error=repr(exc)[:200])

    def _set_from_headers(
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
                ops = self._ops.get((alias, api))
                if ops is None:
                    ops = self._ops[(alias, api)] = {}
                now = self._clock()
            number: float | None
            if how == COUNT:
                if raw_value.isdigit() and len(raw_value) < 16:  # count_value's shortcut, inline
                    try:
                        op = ops[field]
                    except KeyError:
                        op = self._set_op(ops, field, api, alias)
                    op(float(raw_value))
                    continue
                number = count_value(raw_value, field.api)
                if number is None:
                    self._reject(api, field.rejected_as)
                    continue
                if number == NO_LIMIT:
                    continue
            elif how == RFC3339:
                number = self._rfc3339.get(raw_value, _UNSEEN_VALUE)
                if number is _UNSEEN_VALUE:
                    number = _remember(self._rfc3339, raw_value, rfc3339_value(raw_value))
                if number is None or abs(number - now) > MAX_RESET_SECONDS:
                    self._reject(api, "reset")
                    continue
            elif how == DURATION:
                number = self._durations.get(raw_value, _UNSEEN_VALUE)
                if number is _UNSEEN_VALUE:
                    number = _remember(self._durations, raw_value, duration_value(raw_value))
                if number == NO_LIMIT:
                    continue
                # The reference's arithmetic exactly: a time, then its distance from now.
                number = None if number is None else now + number
                if number is None or abs(number - now) > MAX_RESET_SECONDS:
                    self._reject(api, "reset")
                    continue
            elif how == UTILIZATION:
                number = number_value(raw_value)
                if number is None or number < 0 or number > MAX_UTILIZATION:
                    self._reject(api, "utilization")
                    continue
            elif how == STATUS:
                status = status_value(raw_value)
                continue
            elif how == ACTIVATES:
                continue
            else:  # UNIFIED_RESET
                number = self._numbers.get(raw_value, _UNSEEN_VALUE)
                if number is _UNSEEN_VALUE:
                    number = _remember(self._numbers, raw_value, number_value(raw_value))
                if number is None or abs(number - now) > MAX_RESET_SECONDS:
                    self._reject(api, "reset")
                    continue
            try:
                op = ops[field]
            except KeyError:
                op = self._set_op(ops, field, api, alias)
            op(number)
        if ops is None:
            return  # no rate-limit header: nothing to record
        if retry_after is not None:
            seconds = count_value(retry_after, "")
            if seconds is None or seconds > MAX_RESET_SECONDS:
                self._reject(api, "retry_after")
        if status is not None:
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
        op = ops[field] = fast_set(family.labels(*labels))
        return op

    def _status_set(self, alias: str) -> tuple[tuple[str, Op], ...]:
        found = self._status_ops.get(alias)
        if found is None:
            family = self._families.unified_status
            found = self._status_ops[alias] = tuple(
                (status, fast_set(family.labels(status, alias))) for status in UNIFIED_STATUSES
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
