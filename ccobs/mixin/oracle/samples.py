"""The labels and series the scenarios are made of, derived from the config.

The series carry target labels that the configured job selector selects,
and error types the config counts (or excludes), so the generated tests hold
for any ``MixinConfig``; an unsatisfiable config is refused with a message
saying what to simplify.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from ccobs.catalog import (
    CLIENT_DISCONNECT,
    ERRORS,
    INVALID_REQUEST,
    OVERLOADED,
    REQUESTS,
    UPSTREAM_STREAM_ERROR,
    UPSTREAM_TIMEOUT,
    http_error_type,
    upstream_status_error_type,
)
from ccobs.mixin.config import MixinConfig
from ccobs.mixin.oracle.evaluation import satisfies
from ccobs.mixin.oracle.series import Series, build_series

SAMPLE_INSTANCES = ("proxy-1:8000", "proxy-2:8000")
SAMPLE_MODEL = "claude-sonnet-4"
SAMPLE_ENDPOINT = "/v1/messages"

_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def job_matchers(config: MixinConfig) -> list[tuple[str, str, str]]:
    """The job selector as (label, operator, unescaped value) triples."""
    text, position, matchers = config.job_selector.strip(), 0, []
    while position < len(text):
        match = _MATCHER.match(text, position)
        if match is None:
            raise ValueError(
                f"job_selector {config.job_selector!r} is not a comma-separated list of "
                'label matchers such as job=~"ccproxy.*"'
            )
        name, op, raw = match.groups()
        if name == "__name__":
            raise ValueError("job_selector must not match __name__; rules choose the metric")
        matchers.append((name, op, json.loads(f'"{raw}"')))
        position = match.end()
    return matchers


def regex_examples(pattern: str) -> list[str]:
    """Strings a simple regex probably matches (``ccproxy.*`` -> ``ccproxy``); callers verify."""
    examples = []
    for alternative in (pattern, *pattern.split("|")):
        out, i = [], 0
        while i < len(alternative):
            char = alternative[i]
            nxt = alternative[i + 1] if i + 1 < len(alternative) else ""
            if char == "\\" and nxt:
                out.append(nxt)
                i += 2
                continue
            if char == "." and nxt in ("*", "?"):
                i += 2
                continue
            if char == "[":
                end = alternative.find("]", i + 1)
                body = alternative[i + 1 : end if end > 0 else None].lstrip("^")
                out.append(body[:1] or "x")
                i = end + 1 if end > 0 else len(alternative)
                continue
            if char == ".":
                out.append("x")
            elif char not in "^$()*+?:":
                out.append(char)
            i += 1
        examples.append("".join(out))
    return examples


def _value_for(label: str, constraints: Sequence[tuple[str, str]], preferred: Sequence[str]) -> str:
    """A non-empty value of ``label`` that passes every matcher on it, preferring ``preferred``."""
    candidates = [value for op, value in constraints if op == "="]
    candidates += list(preferred)
    candidates += [ex for op, value in constraints if op == "=~" for ex in regex_examples(value)]
    candidates += ["x", "ccobs-test"]
    for candidate in candidates:
        if candidate and all(satisfies(candidate, op, value) for op, value in constraints):
            return candidate
    raise ValueError(
        f"cannot derive a value of label {label!r} that satisfies the job_selector matchers "
        f"{list(constraints)}; the generated unit tests need one (simplify the selector)"
    )


def sample_labels(config: MixinConfig) -> dict[str, str]:
    """Target labels that the job selector selects: the unit tests' series carry them."""
    by_label: dict[str, list[tuple[str, str]]] = {}
    for name, op, value in job_matchers(config):
        by_label.setdefault(name, []).append((op, value))
    for label in config.aggregation_labels:
        by_label.setdefault(label, [])
    return {
        name: _value_for(name, constraints, (config.namespace, "ccproxy"))
        for name, constraints in by_label.items()
    }


def absent_labels(config: MixinConfig) -> dict[str, str]:
    """The labels ``absent(up{selector})`` returns: those fixed by a single equality matcher."""
    labels: dict[str, str] = {}
    dropped: set[str] = set()
    for name, op, value in job_matchers(config):
        if op == "=" and name not in labels:
            labels[name] = value
        else:
            dropped.add(name)
    return {name: value for name, value in labels.items() if name not in dropped and value}


def counted_error_type(config: MixinConfig) -> str:
    """An error type the proxy emits that counts against the SLO (not excluded)."""
    candidates = (
        upstream_status_error_type(500),
        OVERLOADED,
        UPSTREAM_TIMEOUT,
        UPSTREAM_STREAM_ERROR,
    )
    for candidate in candidates:
        if not satisfies(candidate, "=~", config.error_ratio_excluded):
            return candidate
    raise ValueError(
        f"error_ratio_excluded {config.error_ratio_excluded!r} excludes every server-side "
        "error type; the error-budget alert could never fire"
    )


def excluded_error_type(config: MixinConfig) -> str | None:
    """An error type the proxy emits that the SLO ignores, if the config excludes any."""
    candidates = (
        INVALID_REQUEST,
        CLIENT_DISCONNECT,
        http_error_type(400),
        upstream_status_error_type(400),
    )
    for candidate in (*candidates, *regex_examples(config.error_ratio_excluded)):
        if candidate and satisfies(candidate, "=~", config.error_ratio_excluded):
            return candidate
    return None


def job_only(config: MixinConfig, labels: Mapping[str, str]) -> dict[str, str]:
    """The labels a ``sum by (aggregation labels)`` keeps (``job`` by default)."""
    return {label: labels[label] for label in config.aggregation_labels}


def requests_series(
    config: MixinConfig, job: Mapping[str, str], per_step: float, steps: int
) -> Series:
    """The requests counter of one instance, growing by ``per_step`` every step."""
    labels = {
        **job,
        "instance": SAMPLE_INSTANCES[0],
        "method": "POST",
        "endpoint": SAMPLE_ENDPOINT,
        "model": SAMPLE_MODEL,
        "status": "200",
        "service_type": "anthropic",
    }
    return build_series(config.metric(REQUESTS), labels, 0, [(per_step, steps - 1)])


def errors_series(
    config: MixinConfig,
    job: Mapping[str, str],
    error_type: str,
    segments: Sequence[tuple[float, int]],
    instance: str = SAMPLE_INSTANCES[0],
) -> Series:
    """The errors counter of one error type, growing as ``segments`` say."""
    labels = {
        **job,
        "instance": instance,
        "error_type": error_type,
        "endpoint": SAMPLE_ENDPOINT,
        "model": SAMPLE_MODEL,
        "service_type": "anthropic",
    }
    return build_series(config.metric(ERRORS), labels, 0, segments)
