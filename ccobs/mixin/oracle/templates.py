"""Go template expansion of alert descriptions, as Prometheus renders them.

The expected annotations in the promtool tests are the descriptions
expanded for the values the oracle computes; ``humanize`` and friends
mirror Prometheus' template functions to the printed digit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping


def _go_g4(value: float) -> str:
    """Go's ``%.4g`` (Python's agrees on the format, exponent included)."""
    return "%.4g" % value  # noqa: UP031 - the point is to mirror the printf verb


def humanize(value: float) -> str:
    """Prometheus' ``humanize`` template function."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return _go_g4(value)
    prefix = ""
    if abs(value) >= 1:
        for candidate in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(value) < 1000:
                break
            prefix, value = candidate, value / 1000
        return f"{_go_g4(value)}{prefix}"
    for candidate in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix, value = candidate, value * 1000
    return f"{_go_g4(value)}{prefix}"


def humanize_duration(value: float) -> str:
    """Prometheus' ``humanizeDuration`` template function."""
    if math.isnan(value) or math.isinf(value):
        return _go_g4(value)
    if value == 0:
        return f"{_go_g4(value)}s"
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        value = abs(value)
        whole = int(value)
        seconds, minutes = whole % 60, (whole // 60) % 60
        hours, days = (whole // 3600) % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_go_g4(value)}s"
    prefix = ""
    for candidate in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix, value = candidate, value * 1000
    return f"{_go_g4(value)}{prefix}s"


def humanize_percentage(value: float) -> str:
    """Prometheus' ``humanizePercentage`` template function."""
    return f"{_go_g4(value * 100)}%"


_FILTERS: dict[str, Callable[[float], str]] = {
    "humanize": humanize,
    "humanizeDuration": humanize_duration,
    "humanizePercentage": humanize_percentage,
}
_IF_LABEL = re.compile(r"\{\{ if \$labels\.(\w+) \}\}(.*?)\{\{ else \}\}(.*?)\{\{ end \}\}", re.S)
_ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)


def render_template(template: str, labels: Mapping[str, str], value: float) -> str:
    """Expand the template subset the descriptions use, as Prometheus would.

    Supported: ``{{ $labels.x }}``, ``{{ $value | f }}`` for the humanize
    functions, and ``{{ if $labels.x }}...{{ else }}...{{ end }}``. Anything
    else is an error, so a description cannot silently use something the
    expected test annotations would get wrong.
    """
    text = _IF_LABEL.sub(lambda m: m.group(2) if labels.get(m.group(1)) else m.group(3), template)

    def action(match: re.Match[str]) -> str:
        body = match.group(1).strip()
        if body.startswith("$labels."):
            return labels[body.removeprefix("$labels.")]
        parts = [part.strip() for part in body.split("|")]
        if len(parts) == 2 and parts[0] == "$value" and parts[1] in _FILTERS:
            return _FILTERS[parts[1]](value)
        raise ValueError(f"unsupported template action {{{{{match.group(1)}}}}} in {template!r}")

    return _ACTION.sub(action, text)
