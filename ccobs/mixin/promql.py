"""Building PromQL text: selectors, aggregations, numbers and durations as the rules write them.

Every raw metric read goes through ``metric`` so it carries the configured
job selector; thresholds go through ``num`` so the expression states them the
way people read them. The test oracle reads the same helpers, never the
other way round.
"""

from __future__ import annotations

import json

from ccobs.mixin.config import MixinConfig


def quote(value: str) -> str:
    """A PromQL string literal (Go escaping, which JSON's matches for these characters)."""
    return json.dumps(value)


def selector(config: MixinConfig, *extra: str) -> str:
    """``{job selector, extra matchers}``: every raw metric read goes through here."""
    parts = [part for part in (config.job_selector.strip(), *extra) if part]
    return "{" + ",".join(parts) + "}"


def metric(config: MixinConfig, name: str, *extra: str) -> str:
    """A metric read with the job selector (bare, if the selector is empty and no extras)."""
    text = selector(config, *extra)
    return name if text == "{}" else name + text


def by(config: MixinConfig, *labels: str) -> str:
    """The aggregation labels (``job`` and any configured), then ``labels``: a ``by`` clause."""
    extra = [label for label in labels if label not in config.aggregation_labels]
    return ", ".join((*config.aggregation_labels, *extra))


def sum_by(
    config: MixinConfig, labels: str, function: str, name: str, window: str, *extra: str
) -> str:
    """``sum by (aggregation labels, labels) (function(name{selector, extra}[window]))``."""
    clause = by(config, *(part.strip() for part in labels.split(",") if part.strip()))
    return f"sum by ({clause}) ({function}({metric(config, name, *extra)}[{window}]))"


def num(value: float) -> str:
    """A threshold as PromQL and people read it: ``0.144``, not ``0.14400000000000002``."""
    return f"{value:.10g}"


def as_threshold(value: float) -> float:
    """The threshold exactly as the emitted expression states it."""
    return float(num(value))


def duration(seconds: int) -> str:
    """A single-unit Prometheus duration (``90m``, ``3d``): what promtool's eval_time accepts."""
    if seconds == 0:
        return "0s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def seconds_text(seconds: float) -> str:
    """A configured number of seconds as a duration for prose (``300`` -> ``5m``)."""
    return duration(int(seconds)) if float(seconds).is_integer() else f"{num(seconds)}s"
