"""Serving `/metrics`: content negotiation, an optional bearer token, rendering off the loop.

The exposition itself is prometheus_client's, byte for byte, but written by
:class:`ExpositionRenderer`: prometheus_client formats every sample's labels
from scratch on every scrape (sorting, escaping, joining), which at 10,000
series takes most of a quarter second; the renderer formats a series' labels
once and reuses the text while the series exists.
"""

from __future__ import annotations

import hmac
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from ccobs.metrics import PrometheusMetrics


TEXT = "text"
OPENMETRICS = "openmetrics"

_LEGACY_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
"""Names every format and escaping scheme writes unchanged (no colons: OpenMetrics
escaping would rewrite them)."""

_LINES_PER_YIELD = 100
"""Lines written between offers of the GIL (a few tenths of a millisecond of rendering). A
render runs on a worker or pusher thread; without the offers the event loop waits up to a
whole switch interval (5 ms) each time it needs the interpreter during a 10k-series render,
which raised request p99 by ~8.6 ms while pushing 10k series every 0.2 s (1 to 1.6 ms with them)."""

_TEXT_TYPES = {"counter": "counter", "info": "gauge", "stateset": "gauge"}
_TEXT_TYPES.update({"gaugehistogram": "histogram", "unknown": "untyped"})
_TEXT_SUFFIXES = {"counter": "_total", "info": "_info"}
_TEXT_SEPARATE = ("_created", "_gcount", "_gsum")
"""Samples the text format moves into gauge families of their own, in this order."""


class _Unsupported(Exception):
    """Something only prometheus_client's own encoder writes (exemplars, timestamps, odd names)."""


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _label_text(labels: dict[str, str]) -> str:
    for name in labels:
        if not _LEGACY_NAME.match(name):
            raise _Unsupported(name)
    pairs = ",".join(f'{k}="{_escape_value(v)}"' for k, v in sorted(labels.items()))
    return "{" + pairs + "}"


_Row = tuple[str, float, bool]
"""One sample line: its text up to the value (``name{labels} ``), its value, and
whether the text format moves it into a ``_created``-style family of its own."""


class ExpositionRenderer:
    """Writes a registry's exposition exactly as prometheus_client would, several times faster.

    prometheus_client's ``collect()`` builds a dict and a tuple per sample and
    its encoders format every label set anew; at 10,000 series that is most
    of a quarter second per scrape. This renderer reads the plain Counter,
    Gauge and Histogram children straight from their value cells and keeps
    each series' line prefix (``name_bucket{model="x",le="0.5"} ``) between
    renders; other collectors go through ``collect()`` with the same prefix
    cache. A render keeps only the prefixes it used, so the cache is never
    larger than the exposition. What it does not write itself (exemplars,
    sample timestamps, names outside ``[a-zA-Z_][a-zA-Z0-9_]*``, native
    histograms, a prometheus_client whose internals moved) hands the whole
    render to prometheus_client. Safe to share between threads: renders
    take turns.
    """

    def __init__(self) -> None:
        self._prefixes: dict[Any, Any] = {}
        self._kept: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def render(self, registry: Any, fmt: str = TEXT) -> bytes:
        """``registry``'s exposition in ``fmt`` (:data:`TEXT` or :data:`OPENMETRICS` 1.0.0)."""
        with self._lock:
            try:
                return self._render(registry, fmt == OPENMETRICS)
            except (_Unsupported, AttributeError, TypeError, ValueError):
                self._prefixes = {}
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
                raise _Unsupported(name)
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
    ) -> Iterable[tuple[str, str, str, str, Iterable[_Row]]]:
        """Each family's name, type, help, unit and rows, in ``registry.collect()`` order."""
        with registry._lock:
            collectors = list(registry._collector_to_names)
            target_info = registry._target_info_metric() if registry._target_info else None
        if target_info is not None:
            yield from self._collected([target_info], openmetrics)
        for collector in collectors:
            direct = _direct_kind(collector)
            if direct is None:
                yield from self._collected(collector.collect(), openmetrics)
            else:
                rows = self._direct_rows(collector, direct, openmetrics)
                yield collector._name, direct, collector._documentation, collector._unit, rows

    def _collected(
        self, families: Iterable[Any], openmetrics: bool
    ) -> Iterable[tuple[str, str, str, str, Iterable[_Row]]]:
        for family in families:
            rows = self._sample_rows(family, openmetrics)
            yield family.name, family.type, family.documentation, family.unit, rows

    def _sample_rows(self, family: Any, openmetrics: bool) -> Iterable[_Row]:
        known, kept = self._prefixes, self._kept
        separate = () if openmetrics else {family.name + suffix for suffix in _TEXT_SEPARATE}
        for sample in family.samples:
            name, labels, value, timestamp, exemplar, native = sample
            if timestamp is not None or exemplar or native or value is None:
                raise _Unsupported(name)
            key = (name, tuple(labels.items()))
            prefix = known.get(key)
            if prefix is None:
                if not _LEGACY_NAME.match(name):
                    raise _Unsupported(name)
                prefix = f"{name}{_label_text(labels) if labels else ''} "
            kept[key] = prefix
            yield prefix, value, name in separate

    def _direct_rows(self, metric: Any, kind: str, openmetrics: bool) -> Iterable[_Row]:
        """Rows read straight from a Counter, Gauge or Histogram's children."""
        from prometheus_client import metrics as pc_metrics

        created = pc_metrics._use_created
        if metric._labelnames:
            with metric._lock:
                children = list(metric._metrics.items())
        else:
            children = [((), metric)]
        known, kept = self._prefixes, self._kept
        moved_created = not openmetrics
        for values, child in children:
            if "_child_samples" in child.__dict__:  # a Gauge with set_function
                raise _Unsupported(metric._name)
            key = (metric, values)
            prefixes = known.get(key)
            if prefixes is None:
                labels = dict(zip(metric._labelnames, values, strict=True))
                prefixes = _child_prefixes(metric, kind, labels, child)
            kept[key] = prefixes
            if kind == "histogram":
                cumulative = 0.0
                for prefix, cell in zip(prefixes, child._buckets, strict=False):
                    if cell._exemplar is not None:
                        raise _Unsupported(metric._name)
                    cumulative += cell._value
                    yield prefix, cumulative, False
                extra = prefixes[len(child._buckets) :]
                yield extra[0], cumulative, False
                if child._upper_bounds[0] >= 0:
                    yield extra[1], child._sum._value, False
                if created:
                    yield extra[-1], child._created, moved_created
            else:
                cell = child._value
                if cell._exemplar is not None:
                    raise _Unsupported(metric._name)
                yield prefixes[0], cell._value, False
                if kind == "counter" and created:
                    yield prefixes[1], child._created, moved_created


def _direct_kind(collector: Any) -> str | None:
    """``counter``/``gauge``/``histogram`` when ``collector`` can be read without ``collect()``.

    Only the plain classes holding in-process values (``MutexValue``); anything
    else, subclasses, multiprocess values and a gauge read through
    ``set_function`` (ccobs's active-requests gauge) included, is collected.
    """
    from prometheus_client import Counter, Gauge, Histogram, values
    from prometheus_client.values import MutexValue

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
    elif values.ValueClass is not MutexValue:  # multiprocess mode: values live in files
        return None
    return kind


def _child_prefixes(metric: Any, kind: str, labels: dict[str, str], child: Any) -> tuple[str, ...]:
    """The line prefixes of one child, in the order ``collect()`` yields its samples."""
    from prometheus_client.utils import floatToGoString

    name = metric._name
    if not _LEGACY_NAME.match(name):
        raise _Unsupported(name)
    base = _label_text(labels) if labels else ""
    if kind == "histogram":
        buckets = tuple(
            f"{name}_bucket{_label_text(dict(labels, le=floatToGoString(bound)))} "  # type: ignore[no-untyped-call]
            for bound in child._upper_bounds
        )
        return (*buckets, f"{name}_count{base} ", f"{name}_sum{base} ", f"{name}_created{base} ")
    if kind == "counter":
        return (f"{name}_total{base} ", f"{name}_created{base} ")
    return (f"{name}{base} ",)


def render_metrics(
    metrics: PrometheusMetrics, accept: str | None, renderer: ExpositionRenderer | None = None
) -> tuple[bytes, str]:
    """The exposition and its content type: OpenMetrics when the scraper asks for it.

    ``renderer`` writes the formats it knows (text, OpenMetrics 1.0.0 with the
    default escaping); pass the same one on every scrape so that its label
    cache pays off. Without it, or for anything else, prometheus_client writes.
    """
    registry = metrics.exposition_registry()
    if registry is None:  # prometheus_client is not installed
        return b"", "text/plain; version=0.0.4; charset=utf-8"
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(accept or "")
    fmt = _renderer_format(encoder) if renderer is not None else None
    if renderer is None or fmt is None:
        return encoder(registry), content_type
    return renderer.render(registry, fmt), content_type


def _renderer_format(encoder: Callable[..., bytes]) -> str | None:
    """Which of the renderer's formats ``choose_encoder`` picked, if it is one of them."""
    from prometheus_client.exposition import generate_latest
    from prometheus_client.openmetrics import exposition as om

    if encoder is generate_latest:
        return TEXT
    if (
        isinstance(encoder, partial)
        and encoder.func is om.generate_latest
        and encoder.keywords == {"escaping": om.UNDERSCORES, "version": "1.0.0"}
    ):
        return OPENMETRICS
    return None


def bearer_token_matches(authorization: str | None, token: str) -> bool:
    """Constant-time check of an ``Authorization: Bearer ...`` header against ``token``."""
    if not authorization:
        return False
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def metrics_endpoint(
    metrics: PrometheusMetrics, token: str | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint serving ``metrics``; with ``token``, only to that bearer token.

    Rendering runs on a worker thread: at tens of thousands of series, or
    reading multiprocess files, it takes long enough to stall other requests.
    An empty ``token`` is refused: ``Bearer`` with nothing after it would match it.
    """
    if token == "":
        raise ValueError("the metrics token must not be empty; pass None for no token")
    renderer = ExpositionRenderer()

    async def endpoint(request: Request) -> Response:
        if token is not None and not bearer_token_matches(
            request.headers.get("authorization"), token
        ):
            return Response(
                "metrics require a bearer token\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                media_type="text/plain",
            )
        body, content_type = await anyio.to_thread.run_sync(
            render_metrics, metrics, request.headers.get("accept"), renderer
        )
        return Response(body, headers={"Content-Type": content_type})

    return endpoint
