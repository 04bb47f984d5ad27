"""The demo's live terminal view, computed from the metrics registry itself.

It reads the same collectors Prometheus scrapes, so what the demo shows and
what a dashboard will show come from one set of numbers. Rates and
percentiles are taken over a sliding window, as ``rate()`` and
``histogram_quantile()`` would.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ccobs.catalog import (
    ACTIVE_REQUESTS,
    ATTRIBUTED_COST,
    ATTRIBUTED_REQUESTS,
    COST,
    ERRORS,
    REQUESTS,
    RESPONSE_DURATION,
    TIME_TO_FIRST_TOKEN,
    TOKEN_TYPES,
    TOKENS,
)


@dataclass
class Sample:
    """Cumulative totals read from the registry at one moment."""

    at: float
    requests: float = 0.0
    errors: float = 0.0
    active: float = 0.0
    errors_by_type: dict[str, float] = field(default_factory=dict)
    requests_by_model: dict[str, float] = field(default_factory=dict)
    tokens: dict[tuple[str, str], float] = field(default_factory=dict)
    """(model, token type) -> tokens."""
    cost_by_model: dict[str, float] = field(default_factory=dict)
    duration_buckets: dict[float, float] = field(default_factory=dict)
    ttft_buckets: dict[float, float] = field(default_factory=dict)
    requests_by_team: dict[str, float] = field(default_factory=dict)
    cost_by_team: dict[str, float] = field(default_factory=dict)
    """From ``attributed_requests_total`` and ``attributed_cost_usd_total``."""


def read_sample(registry: Any, namespace: str, at: float) -> Sample:
    """Sum the registry's series into the totals the view needs."""
    sample = Sample(at=at)
    names = {
        REQUESTS.full_name(namespace): "requests",
        ERRORS.full_name(namespace): "errors",
        TOKENS.full_name(namespace): "tokens",
        COST.full_name(namespace): "cost",
        ACTIVE_REQUESTS.full_name(namespace): "active",
        RESPONSE_DURATION.full_name(namespace) + "_bucket": "duration",
        TIME_TO_FIRST_TOKEN.full_name(namespace) + "_bucket": "ttft",
        ATTRIBUTED_REQUESTS.full_name(namespace): "team_requests",
        ATTRIBUTED_COST.full_name(namespace): "team_cost",
    }
    for family in registry.collect():
        for s in family.samples:
            kind = names.get(s.name)
            if kind is None:
                continue
            labels = s.labels
            if kind == "team_requests":
                team = labels["team"]
                sample.requests_by_team[team] = sample.requests_by_team.get(team, 0.0) + s.value
            elif kind == "team_cost":
                team = labels["team"]
                sample.cost_by_team[team] = sample.cost_by_team.get(team, 0.0) + s.value
            elif kind == "requests":
                sample.requests += s.value
                model = labels.get("model", "unknown")
                sample.requests_by_model[model] = sample.requests_by_model.get(model, 0) + s.value
            elif kind == "errors":
                sample.errors += s.value
                kind_of = labels.get("error_type", "unknown")
                sample.errors_by_type[kind_of] = sample.errors_by_type.get(kind_of, 0) + s.value
            elif kind == "tokens":
                key = (labels.get("model", "unknown"), labels.get("type", "input"))
                sample.tokens[key] = sample.tokens.get(key, 0) + s.value
            elif kind == "cost":
                if labels.get("cost_type") == "total":
                    model = labels.get("model", "unknown")
                    sample.cost_by_model[model] = sample.cost_by_model.get(model, 0) + s.value
            elif kind == "active":
                sample.active += s.value
            else:
                buckets = sample.duration_buckets if kind == "duration" else sample.ttft_buckets
                le = float(labels["le"])
                buckets[le] = buckets.get(le, 0) + s.value
    return sample


def histogram_quantile(q: float, cumulative: dict[float, float]) -> float | None:
    """Prometheus's ``histogram_quantile`` over cumulative bucket counts keyed by ``le``.

    Linear interpolation inside the bucket holding the rank; a rank in the
    ``+Inf`` bucket answers the highest finite bound. None without data.
    """
    bounds = sorted(cumulative)
    if not bounds or cumulative[bounds[-1]] <= 0:
        return None
    total = cumulative[bounds[-1]]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            share = (rank - lower_count) / (count - lower_count)
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def _delta(new: dict[Any, float], old: dict[Any, float]) -> dict[Any, float]:
    return {key: value - old.get(key, 0.0) for key, value in new.items()}


def _seconds(value: float | None) -> str:
    if value is None:
        return "   -   "
    return f"{value * 1000:5.0f} ms" if value < 1 else f"{value:5.2f} s "


class LiveView:
    """Keeps a window of samples and renders the latest picture as text."""

    def __init__(
        self,
        registry: Any,
        namespace: str = "ccproxy",
        *,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.namespace = namespace
        self.window = window
        self._clock = clock
        self._started = clock()
        self._samples: deque[Sample] = deque()

    def sample(self) -> Sample:
        """Read the registry now and keep the sample in the window."""
        now = self._clock()
        current = read_sample(self.registry, self.namespace, now)
        self._samples.append(current)
        while len(self._samples) > 2 and now - self._samples[1].at >= self.window:
            self._samples.popleft()
        return current

    def render(self, header: Iterable[str] = ()) -> str:
        """Sample, then render: throughput, errors, latency, TTFT, tokens and cost by model."""
        current = self.sample()
        oldest = self._samples[0]
        span = current.at - oldest.at
        requests = current.requests - oldest.requests
        errors = current.errors - oldest.errors
        rps = requests / span if span > 0 else 0.0
        error_ratio = errors / requests if requests > 0 else 0.0
        duration = _delta(current.duration_buckets, oldest.duration_buckets)
        ttft = _delta(current.ttft_buckets, oldest.ttft_buckets)
        elapsed = int(current.at - self._started)
        lines = [*header]
        lines.append(
            f"elapsed {elapsed // 60:02d}:{elapsed % 60:02d}   window {span:4.1f} s   "
            f"active {current.active:.0f}"
        )
        lines.append(
            f"requests  {rps:7.2f}/s   total {current.requests:,.0f}   "
            f"errors {error_ratio:6.1%} of window, {current.errors:,.0f} total"
        )
        lines.append(
            "latency   p50 {} p95 {} p99 {}".format(
                *(_seconds(histogram_quantile(q, duration)) for q in (0.5, 0.95, 0.99))
            )
        )
        lines.append(
            "TTFT      p50 {} p95 {}".format(
                *(_seconds(histogram_quantile(q, ttft)) for q in (0.5, 0.95))
            )
        )
        lines.append("")
        lines.append(
            f"{'model':<22}{'req/s':>8}{'input/s':>10}{'output/s':>10}"
            f"{'cache rd/s':>12}{'cache wr/s':>12}{'$/hour':>10}{'$ total':>10}"
        )
        models = sorted(set(current.requests_by_model) | set(current.cost_by_model))
        for model in models:
            model_rps = _rate(current.requests_by_model, oldest.requests_by_model, model, span)
            token_rates = [
                _rate(current.tokens, oldest.tokens, (model, t), span) for t in TOKEN_TYPES
            ]
            cost_rate = _rate(current.cost_by_model, oldest.cost_by_model, model, span) * 3600
            lines.append(
                f"{model[:21]:<22}{model_rps:8.2f}"
                + "".join(
                    f"{rate:{w}.0f}" for rate, w in zip(token_rates, (10, 10, 12, 12), strict=True)
                )
                + f"{cost_rate:10.2f}{current.cost_by_model.get(model, 0.0):10.4f}"
            )
        lines.extend(_team_table(current, oldest, span))
        if current.errors_by_type:
            by_type = ", ".join(
                f"{name} {count:.0f}" for name, count in sorted(current.errors_by_type.items())
            )
            lines.append("")
            lines.append(f"errors by type: {by_type}")
        return "\n".join(lines)


_TEAMS_SHOWN = 8


def _team_table(current: Sample, oldest: Sample, span: float) -> list[str]:
    """Requests and cost by team, the most expensive first; nothing before any team is seen."""
    teams = set(current.requests_by_team) | set(current.cost_by_team)
    if not teams:
        return []
    lines = ["", f"{'team':<22}{'req/s':>8}{'requests':>10}{'$/hour':>10}{'$ total':>10}"]
    ranked = sorted(teams, key=lambda team: (-current.cost_by_team.get(team, 0.0), team))
    for team in ranked[:_TEAMS_SHOWN]:
        team_rps = _rate(current.requests_by_team, oldest.requests_by_team, team, span)
        cost_rate = _rate(current.cost_by_team, oldest.cost_by_team, team, span) * 3600
        lines.append(
            f"{team[:21]:<22}{team_rps:8.2f}{current.requests_by_team.get(team, 0.0):10,.0f}"
            f"{cost_rate:10.2f}{current.cost_by_team.get(team, 0.0):10.4f}"
        )
    return lines


def _rate(new: dict[Any, float], old: dict[Any, float], key: Any, span: float) -> float:
    if span <= 0:
        return 0.0
    return (new.get(key, 0.0) - old.get(key, 0.0)) / span
