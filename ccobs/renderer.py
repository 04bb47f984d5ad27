"""The text and OpenMetrics exposition of a registry, as prometheus_client writes it, reused.

prometheus_client formats every sample's labels from scratch on every scrape
(sorting, escaping, joining), which at tens of thousands of series dominates
a scrape; :class:`ExpositionRenderer` formats a series' labels once and
reuses the text while the series exists. It knows only a registry: serving
it over HTTP is :mod:`ccobs.metrics_endpoint`'s job, pushing it
:mod:`ccobs.pushgateway`'s. The collectors' cells are read through
:mod:`ccobs.prometheus_internals`, the one module that knows them.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from ccobs.prometheus_internals import (
    Row,
    Unsupported,
    plain_family,
    plain_kind,
    plain_rows,
    registry_collectors,
)

TEXT = "text"
OPENMETRICS = "openmetrics"
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LEGACY_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
"""Names every format and escaping scheme writes unchanged (no colons: OpenMetrics
escaping would rewrite them)."""

_LINES_PER_YIELD = 100
"""Lines written between offers of the GIL. A render runs on a worker or pusher thread;
without the offers the event loop waits up to a whole switch interval
(``sys.getswitchinterval()``) each time it needs the interpreter during a large render,
which shows in request latency."""

_TEXT_TYPES = {"counter": "counter", "info": "gauge", "stateset": "gauge"}
_TEXT_TYPES.update({"gaugehistogram": "histogram", "unknown": "untyped"})
_TEXT_SUFFIXES = {"counter": "_total", "info": "_info"}
_TEXT_SEPARATE = ("_created", "_gcount", "_gsum")
"""Samples the text format moves into gauge families of their own, in this order."""


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _label_text(labels: dict[str, str]) -> str:
    for name in labels:
        if not _LEGACY_NAME.match(name):
            raise Unsupported(name)
    pairs = ",".join(f'{k}="{_escape_value(v)}"' for k, v in sorted(labels.items()))
    return "{" + pairs + "}"


class ExpositionRenderer:
    """Writes a registry's exposition exactly as prometheus_client would, faster.

    prometheus_client's ``collect()`` builds a dict and a tuple per sample and
    its encoders format every label set anew. This renderer reads the plain
    Counter, Gauge and Histogram children straight from their value cells and
    keeps each series' line prefix (``name_bucket{model="x",le="0.5"} ``)
    between renders; other collectors go through ``collect()`` with the same
    prefix cache. A render keeps only the prefixes it used, so the cache is
    never larger than the exposition. What it does not write itself
    (exemplars, sample timestamps, names outside ``[a-zA-Z_][a-zA-Z0-9_]*``,
    native histograms, a prometheus_client whose internals moved) hands the
    whole render to prometheus_client. Safe to share between threads: renders
    take turns.
    """

    def __init__(self) -> None:
        self._prefixes: dict[Any, Any] = {}
        self._kept: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def render(
        self,
        registry: Any,
        fmt: str = TEXT,
        fallback: Callable[[Any], bytes] | None = None,
    ) -> bytes:
        """``registry``'s exposition in ``fmt`` (:data:`TEXT` or :data:`OPENMETRICS` 1.0.0).

        What it does not write (a name that is not a legacy name, a collector it
        cannot read) is written by ``fallback``, else by prometheus_client's
        encoder of ``fmt``.
        """
        with self._lock:
            try:
                return self._render(registry, fmt == OPENMETRICS)
            except (Unsupported, AttributeError, TypeError, ValueError):
                self._prefixes = {}
        if fallback is not None:
            return fallback(registry)
        if fmt == OPENMETRICS:
            from prometheus_client.openmetrics.exposition import generate_latest as om_latest

            return om_latest(registry)  # type: ignore[no-any-return,no-untyped-call]
        from prometheus_client.exposition import generate_latest

        return generate_latest(registry)

    def _render(self, registry: Any, openmetrics: bool) -> bytes:
        from prometheus_client.utils import floatToGoString

        self._kept = {}
        out: list[str] = []
        append = out.append
        written = 0
        for name, kind, documentation, unit, rows in self._families(registry, openmetrics):
            if not _LEGACY_NAME.match(name):
                raise Unsupported(name)
            if openmetrics:
                help_text = _escape_value(documentation)
                append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
                if unit:
                    append(f"# UNIT {name} {unit}\n")
            else:
                help_text = documentation.replace("\\", r"\\").replace("\n", r"\n")
                shown, shown_kind = name + _TEXT_SUFFIXES.get(kind, ""), _TEXT_TYPES.get(kind, kind)
                append(f"# HELP {shown} {help_text}\n# TYPE {shown} {shown_kind}\n")
            moved: list[str] = []
            for prefix, value, separate in rows:
                line = f"{prefix}{floatToGoString(value)}\n"  # type: ignore[no-untyped-call]
                written += 1
                if not written % _LINES_PER_YIELD:
                    time.sleep(0)  # let a waiting thread (the event loop) have the GIL
                if separate:
                    moved.append(line)
                else:
                    append(line)
            if moved:
                self._append_separate(out, name, help_text, moved)
        if openmetrics:
            append("# EOF\n")
        self._prefixes = self._kept
        return "".join(out).encode()

    @staticmethod
    def _append_separate(out: list[str], name: str, help_text: str, lines: list[str]) -> None:
        """The text format's trailing gauge families (``_created``, ...), in suffix order."""
        by_suffix: dict[str, list[str]] = {}
        for line in lines:
            suffix = next(s for s in _TEXT_SEPARATE if line.startswith(name + s))
            by_suffix.setdefault(suffix, []).append(line)
        for suffix, group in sorted(by_suffix.items()):
            out.append(f"# HELP {name}{suffix} {help_text}\n# TYPE {name}{suffix} gauge\n")
            out.extend(group)

    def _families(
        self, registry: Any, openmetrics: bool
    ) -> Iterable[tuple[str, str, str, str, Iterable[Row]]]:
        """Each family's name, type, help, unit and rows, in ``registry.collect()`` order."""
        collectors, target_info = registry_collectors(registry)
        if target_info is not None:
            yield from self._collected([target_info], openmetrics)
        for collector in collectors:
            kind = plain_kind(collector)
            if kind is None:
                yield from self._collected(collector.collect(), openmetrics)
            else:
                name, documentation, unit = plain_family(collector)
                rows = plain_rows(
                    collector, kind, self._prefixes, self._kept, _child_prefixes, not openmetrics
                )
                yield name, kind, documentation, unit, rows

    def _collected(
        self, families: Iterable[Any], openmetrics: bool
    ) -> Iterable[tuple[str, str, str, str, Iterable[Row]]]:
        for family in families:
            rows = self._sample_rows(family, openmetrics)
            yield family.name, family.type, family.documentation, family.unit, rows

    def _sample_rows(self, family: Any, openmetrics: bool) -> Iterable[Row]:
        known, kept = self._prefixes, self._kept
        separate = () if openmetrics else {family.name + suffix for suffix in _TEXT_SEPARATE}
        for sample in family.samples:
            name, labels, value, timestamp, exemplar, native = sample
            if timestamp is not None or exemplar or native or value is None:
                raise Unsupported(name)
            key = (name, tuple(labels.items()))
            prefix = known.get(key)
            if prefix is None:
                if not _LEGACY_NAME.match(name):
                    raise Unsupported(name)
                prefix = f"{name}{_label_text(labels) if labels else ''} "
            kept[key] = prefix
            yield prefix, value, name in separate


def _child_prefixes(
    name: str,
    kind: str,
    labelnames: tuple[str, ...],
    values: tuple[str, ...],
    bounds: tuple[float, ...],
) -> tuple[str, ...]:
    """The line prefixes of one child, in the order ``collect()`` yields its samples."""
    from prometheus_client.utils import floatToGoString

    if not _LEGACY_NAME.match(name):
        raise Unsupported(name)
    labels = dict(zip(labelnames, values, strict=True))
    base = _label_text(labels) if labels else ""
    if kind == "histogram":
        buckets = tuple(
            f"{name}_bucket{_label_text(dict(labels, le=floatToGoString(bound)))} "  # type: ignore[no-untyped-call]
            for bound in bounds
        )
        return (*buckets, f"{name}_count{base} ", f"{name}_sum{base} ", f"{name}_created{base} ")
    if kind == "counter":
        return (f"{name}_total{base} ", f"{name}_created{base} ")
    return (f"{name}{base} ",)


def render_registry(
    registry: Any, accept: str | None, renderer: ExpositionRenderer | None = None
) -> tuple[bytes, str]:
    """``registry``'s exposition and its content type: OpenMetrics when ``accept`` asks for it.

    ``renderer`` writes the formats it knows (text, OpenMetrics 1.0.0 with the
    default escaping); pass the same one every time so that its label cache
    pays off. Without it, or for anything else, prometheus_client writes.
    """
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(accept or "")
    fmt = _renderer_format(encoder) if renderer is not None else None
    if renderer is None or fmt is None:
        return encoder(registry), content_type
    return renderer.render(registry, fmt, fallback=encoder), content_type


def _renderer_format(encoder: Callable[..., bytes]) -> str | None:
    """Which of the renderer's formats ``choose_encoder`` picked, if it is one of them."""
    from prometheus_client.exposition import generate_latest
    from prometheus_client.openmetrics import exposition as om

    if encoder is generate_latest or (
        isinstance(encoder, partial)
        and encoder.func is generate_latest
        and set(encoder.keywords) == {"escaping"}
        and encoder.keywords["escaping"] in (om.UNDERSCORES, om.ALLOWUTF8)
    ):
        return TEXT
    # Prometheus 3 asks for ``escaping=allow-utf-8``. Legacy names are written the same
    # under both escapings, and the renderer writes nothing but legacy names: any other
    # name goes to ``fallback``, which is prometheus_client's encoder for that escaping.
    if (
        isinstance(encoder, partial)
        and encoder.func is om.generate_latest
        and encoder.keywords.get("version") == "1.0.0"
        and encoder.keywords.get("escaping") in (om.UNDERSCORES, om.ALLOWUTF8)
    ):
        return OPENMETRICS
    return None
