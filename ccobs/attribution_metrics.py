"""Who spends, as labels that stay bounded: team, key alias, client app, with model.

The attribution families (``attributed_requests_total``, ``attributed_tokens_total``,
``attributed_cost_usd_total``) answer "which team, which key, which tool" beside the
existing families, whose label sets stay as the reference API has them. Their
labels multiply: a label per key times a label per model times a label per client
app is the cardinality bomb other gateways ship. Three bounds keep it small:

- ``team`` has a cap (``LABEL_CAPS["team"]``), as ``model`` does: later new teams
  are ``other``;
- ``key_alias`` is capped per (team, key alias) pair (``LABEL_CAPS["key_alias"]``):
  past the cap a new key is ``other`` within its team, so team spend stays exact;
- the label sets themselves are capped (:data:`ATTRIBUTION_SET_CAP`): past it, a new
  combination keeps its team and key alias (spend per team and per key, which
  budgets read, stays exact) and folds ``client_app`` and ``model`` into ``other``.

So the distinct label sets are at most ``C + (K + T + 2) x S`` (:func:`max_label_sets`)
and each label set is six series: one request count, four token types, one cost.
Every fold is counted in ``label_overflows_total`` (``label="attribution"`` for the
third bound). Under multiprocess mode each worker has its own guards, so the bound
holds per worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from ccobs.catalog import OTHER, TOKEN_TYPES, UNKNOWN
from ccobs.labels import LabelGuard, label_text
from ccobs.prometheus_internals import Op
from ccobs.series_cache import Labels, Raw, rememberable

ATTRIBUTION_SET_CAP = 2000
"""Distinct (team, key_alias, client_app, model, service_type) label sets kept as they are."""
ATTRIBUTION_OVERFLOW_LABEL = "attribution"
"""The ``label`` value of ``label_overflows_total`` counting label sets past the cap."""
SERIES_PER_LABEL_SET = 1 + len(TOKEN_TYPES) + 1
"""Requests, the four token types, cost: the series one attribution label set makes."""


def max_label_sets(teams: int, keys: int, service_types: int = 1) -> int:
    """Most attribution label sets: the capped sets, plus one folded set per pair and type.

    ``teams`` and ``keys`` are the caps (T, K): admitted pairs are at most K, and
    ``other`` keys pair with the T admitted teams, ``other`` and ``unknown``.
    """
    return ATTRIBUTION_SET_CAP + (keys + teams + 2) * service_types


def max_series(teams: int, keys: int, service_types: int = 1) -> int:
    """Most series of the three attribution families together."""
    return SERIES_PER_LABEL_SET * max_label_sets(teams, keys, service_types)


class KeyAliasGuard:
    """Caps distinct (team, key alias) pairs; past the cap a new key is ``other`` in its team.

    Capped by pair, not by alias alone, so that the ``other`` tier is one series per
    team and ``key_alias`` cannot multiply with ``team``. Lookups of known pairs take
    no lock.
    """

    def __init__(
        self, cap: int, max_length: int, on_overflow: Callable[[str], None] | None = None
    ) -> None:
        self.cap = cap
        self.max_length = max_length
        self._on_overflow = on_overflow
        self._pairs: dict[tuple[str, object], str] = {}
        self._lock = threading.Lock()

    def __call__(self, team: str, alias: object) -> str:
        """The ``key_alias`` label of ``alias`` in (already guarded) ``team``."""
        try:
            known = self._pairs.get((team, alias))
        except TypeError:  # unhashable: use its text
            alias = str(alias)
            known = self._pairs.get((team, alias))
        if known is not None:
            return known
        if alias is None or alias == "":
            return UNKNOWN
        try:
            text = alias if isinstance(alias, str) else str(alias)
        except ValueError:  # an int too long to print (sys.get_int_max_str_digits)
            text = None
        if text is not None:
            label = label_text(text, self.max_length)
            with self._lock:
                known = self._pairs.get((team, label))
                if known is None and len(self._pairs) < self.cap:
                    known = self._pairs[(team, label)] = label
            if known is not None:
                return known
        if self._on_overflow is not None:
            self._on_overflow("key_alias")
        return OTHER

    def admits(self, team: str, alias: object) -> bool:
        """Whether ``alias`` in ``team`` is a pair admitted as is (no fold, no side effect)."""
        return isinstance(alias, str) and self._pairs.get((team, alias)) == alias

    @property
    def distinct_pairs(self) -> int:
        return len(self._pairs)


class AttributionLabels:
    """(team, key_alias, client_app, model, service_type) raw -> bounded label values.

    The guards are :class:`ccobs.metric_labels.MetricLabels`'s: ``model`` and
    ``service_type`` are shared with every family, so a model takes one slot under
    its cap whichever family sees it first.
    """

    def __init__(
        self,
        team: LabelGuard,
        key_pairs_cap: int,
        client_app: LabelGuard,
        model: LabelGuard,
        service_type: LabelGuard,
        max_length: int,
        on_overflow: Callable[[str], None],
        set_cap: int = ATTRIBUTION_SET_CAP,
    ) -> None:
        self.team = team
        self.key_alias = KeyAliasGuard(key_pairs_cap, max_length, on_overflow)
        self.client_app = client_app
        self.model = model
        self.service_type = service_type
        self.set_cap = set_cap
        self._on_overflow = on_overflow
        self._sets: set[Labels] = set()
        self._lock = threading.Lock()

    def __call__(self, raw: Raw) -> Labels:
        team_raw, alias, client_app, model, service_type = raw
        team = self.team(team_raw)
        labels = (
            team,
            self.key_alias(team, alias),
            self.client_app(client_app),
            self.model(model),
            self.service_type(service_type),
        )
        if labels in self._sets:
            return labels
        with self._lock:
            if len(self._sets) < self.set_cap:
                self._sets.add(labels)
                return labels
        self._on_overflow(ATTRIBUTION_OVERFLOW_LABEL)
        return (labels[0], labels[1], OTHER, OTHER, labels[4])

    def remembers(self, raw: Raw, labels: Labels) -> bool:
        """Whether ``raw`` resolved to ``labels`` with no fold, so a cache may keep it.

        :func:`ccobs.series_cache.rememberable` keeps nothing with ``other`` in it, so
        that each fold reaches its guard and is counted; but ``other`` is also the
        client app of every unrecognised client, admitted as any other value. Such a
        raw ``other`` is kept when its guard (and the label set's cap) admitted it.
        """
        if OTHER not in labels:
            return rememberable(raw, labels)
        if labels not in self._sets:  # folded by the label-set cap
            return False
        guards = (self.team, None, self.client_app, self.model, self.service_type)
        for guard, value, label in zip(guards, raw, labels, strict=True):
            if value is not None and not (value.__class__ is str and value == label):
                return False
            if label != OTHER:
                continue
            if guard is None:
                if not self.key_alias.admits(labels[0], value):
                    return False
            elif not guard.admits(value):
                return False
        return True

    @property
    def distinct_sets(self) -> int:
        return len(self._sets)


class AttributionOps:
    """The storage operations of one attribution label set: count, four token types, cost."""

    __slots__ = ("cost", "request", "tokens")

    def __init__(self, request: Op, tokens: tuple[Op, ...], cost: Op) -> None:
        self.request = request
        self.tokens = tokens
        self.cost = cost


class UsageFacts(Protocol):
    """A request's token counts as the record holds them (no import: the record imports us)."""

    @property
    def input(self) -> int: ...
    @property
    def output(self) -> int: ...
    @property
    def cache_read(self) -> int: ...
    @property
    def cache_write(self) -> int: ...


class _Cost(Protocol):
    @property
    def total(self) -> float: ...


class AttributedRecord(Protocol):
    """What :func:`record_attribution` reads of a :class:`ccobs.record.RequestRecord`."""

    @property
    def team(self) -> str | None: ...
    @property
    def key_alias(self) -> str | None: ...
    @property
    def client_app(self) -> str | None: ...
    @property
    def usage(self) -> UsageFacts | None: ...
    @property
    def cost(self) -> _Cost | None: ...


class AttributionRecorder(Protocol):
    """``PrometheusMetrics.record_attributed_request``'s owner."""

    def record_attributed_request(
        self,
        team: str | None,
        key_alias: str | None,
        client_app: str | None,
        model: str | None = None,
        service_type: str | None = None,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        cost_usd: float = 0.0,
    ) -> None: ...


def record_attribution(
    record: AttributedRecord,
    metrics: AttributionRecorder,
    model: str | None,
    service_type: str | None,
) -> None:
    """Feed an identified caller's request to the attribution families.

    Called by ``RequestRecord.record_metrics`` when the record names a team, a key
    alias or a client app; an unpriced request counts with a cost of zero (its gap
    is counted by ``unpriced_requests_total``).
    """
    usage = record.usage
    cost = record.cost
    if usage is None:
        metrics.record_attributed_request(
            record.team,
            record.key_alias,
            record.client_app,
            model,
            service_type,
            cost_usd=0.0 if cost is None else cost.total,
        )
        return
    metrics.record_attributed_request(
        record.team,
        record.key_alias,
        record.client_app,
        model,
        service_type,
        input_tokens=usage.input,
        output_tokens=usage.output,
        cache_read_tokens=usage.cache_read,
        cache_write_tokens=usage.cache_write,
        cost_usd=0.0 if cost is None else cost.total,
    )


def series_bound_markdown(caps: Mapping[str, int]) -> str:
    """The worst-case series count of the attribution families, for docs/reference.md."""
    teams, keys = caps["team"], caps["key_alias"]
    return (
        f"With T teams (cap {teams}), K (team, key alias) pairs (cap {keys}), "
        f"C label sets (cap {ATTRIBUTION_SET_CAP}) and S service types, the attribution "
        "families hold at most `C + (K + T + 2) x S` label sets, each "
        f"{SERIES_PER_LABEL_SET} series (one request count, {len(TOKEN_TYPES)} token types, "
        "one cost): "
        f"`{SERIES_PER_LABEL_SET} x (C + (K + T + 2) x S)`. With the caps and one service type "
        f"that is {max_series(teams, keys):,} series, whatever N teams, K keys and M models "
        "send; below the caps, N teams with K keys using M models from A client apps make at "
        f"most {SERIES_PER_LABEL_SET} x K x M x A, never more than the bound. Past the "
        "label-set cap a new combination keeps its team and key and reads `other` for client "
        "app and model, so spend per team and per key (what budgets read) stays exact. "
        "`ccproxy_budget_usd` has one series per configured budget (at most "
        "1,000 per identity file). Under multiprocess mode each worker has its own caps: W "
        "workers may expose up to W times the bound.\n"
    )
