"""Benchmark 4: ``/metrics`` at 1k, 10k and 100k series, and the cardinality guard.

A registry is filled through ``record_completed_request`` with distinct
``model`` values (the cap raised to admit them) until it holds about the
wanted number of series, where a series is one sample line of the text
exposition, as Prometheus stores it (every histogram bucket, ``_sum``,
``_count`` and ``_created`` counts). Then the exposition is rendered a few
times by prometheus_client's encoders and by ccobs's renderer (what
``GET /metrics`` serves), in turns, after checking both give the same bytes:
median time and size. Memory per series is
the process's RSS growth while filling, divided by the series added.

The guard: 100,000 distinct made-up model names under the default settings
(cap 50). Series count and RSS are taken after the first 1,000 names and
after all 100,000; a working guard keeps both flat.

Each size runs in a fresh interpreter (``--child``), so one size's memory
does not colour the next.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from functools import cache
from typing import TYPE_CHECKING, Any

from benchmarks.common import median, rss_bytes, run_json

if TYPE_CHECKING:
    from ccobs.metrics import PrometheusMetrics

SIZES = (1_000, 10_000, 100_000)
GUARD_NAMES = 100_000
_REPEATS = {1_000: 30, 10_000: 9, 100_000: 3}


def _record(metrics: PrometheusMetrics, model: str) -> None:
    metrics.record_completed_request(
        "POST",
        "/v1/messages",
        model,
        200,
        "proxy_service",
        duration_seconds=1.5,
        ttft_seconds=0.4,
        input_tokens=1200,
        output_tokens=350,
        cache_read_tokens=8000,
        cache_write_tokens=400,
        cost_input_usd=0.0036,
        cost_output_usd=0.00525,
        cost_cache_usd=0.0039,
        cost_total_usd=0.01275,
    )


def fill(metrics: PrometheusMetrics, models: int, prefix: str = "model") -> None:
    """Record one completed request for each of ``models`` distinct model names."""
    for i in range(models):
        _record(metrics, f"{prefix}-{i:06d}")


def series_count(metrics: PrometheusMetrics) -> int:
    """Sample lines in the text exposition (what Prometheus would store as series)."""
    from ccobs.metrics_endpoint import render_metrics
    from ccobs.renderer import ExpositionRenderer

    body, _ = render_metrics(metrics, None, ExpositionRenderer())
    return sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))


def _fresh(model_cap: int = 50) -> PrometheusMetrics:
    from prometheus_client import CollectorRegistry

    from ccobs.metrics import PrometheusMetrics
    from ccobs.settings import ObservabilitySettings

    return PrometheusMetrics(
        registry=CollectorRegistry(), settings=ObservabilitySettings(model_label_cap=model_cap)
    )


@cache
def _per_model() -> tuple[int, int]:
    """(series before any request, series each new model adds), measured."""
    one, two = _fresh(), _fresh()
    fill(one, 1)
    fill(two, 2)
    base = series_count(_fresh())
    per_model = series_count(two) - series_count(one)
    return base, per_model


def models_for(series: int) -> int:
    """Distinct models that bring a fresh registry to about ``series`` series."""
    base, per_model = _per_model()
    return max(1, round((series - base) / per_model))


def _quiet_logs() -> None:
    from ccobs.logging import configure_logging

    configure_logging("ERROR", "json", stream=open("/dev/null", "w"))  # noqa: SIM115


RENDERERS = ("prometheus_client_text", "ccobs_text", "prometheus_client_om", "ccobs_om")
"""What each size renders, taking turns: prometheus_client's encoders (what ccobs used
before its own renderer, the baseline) and :class:`ccobs.renderer.ExpositionRenderer`,
in the text format and in OpenMetrics (what Prometheus asks for when it scrapes)."""


PROMETHEUS_3_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
"""The Accept header of a Prometheus 3 scrape with its default scrape protocols."""


def _render_functions(metrics: PrometheusMetrics) -> dict[str, Any]:
    from prometheus_client.exposition import choose_encoder, generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as om_latest

    from ccobs.renderer import OPENMETRICS, TEXT, ExpositionRenderer, render_registry

    registry = metrics.exposition_registry()
    renderer = ExpositionRenderer()
    prometheus_3, _ = choose_encoder(PROMETHEUS_3_ACCEPT)
    return {
        "prometheus_client_text": lambda: generate_latest(registry),
        "ccobs_text": lambda: renderer.render(registry, TEXT),
        "prometheus_client_om": lambda: om_latest(registry),
        "ccobs_om": lambda: renderer.render(registry, OPENMETRICS),
        "prometheus_client_prometheus_3": lambda: prometheus_3(registry),
        "ccobs_prometheus_3": lambda: render_registry(registry, PROMETHEUS_3_ACCEPT, renderer)[0],
    }


def child_size(target: int) -> dict[str, Any]:
    _quiet_logs()
    models = models_for(target)
    metrics = _fresh(model_cap=models + 10)
    gc.collect()
    rss_before, series_before = rss_bytes(), series_count(metrics)
    started = time.perf_counter()
    fill(metrics, models)
    fill_seconds = time.perf_counter() - started
    gc.collect()
    rss_after = rss_bytes()
    functions = _render_functions(metrics)
    outputs = {name: render() for name, render in functions.items()}  # warm the caches
    if (
        outputs["ccobs_text"] != outputs["prometheus_client_text"]
        or outputs["ccobs_om"] != outputs["prometheus_client_om"]
        or outputs["ccobs_prometheus_3"] != outputs["prometheus_client_prometheus_3"]
    ):
        raise RuntimeError("ccobs's exposition differs from prometheus_client's")
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(_REPEATS.get(target, 3)):
        for name, render in functions.items():
            started = time.perf_counter()
            render()
            times[name].append(time.perf_counter() - started)
    series = series_count(metrics)
    size = len(outputs["ccobs_text"])
    return {
        "target": target,
        "models": models,
        "series": series,
        "render_ms": {name: median(t) * 1000 for name, t in times.items()},
        "render_min_ms": {name: min(t) * 1000 for name, t in times.items()},
        "renders": len(times["ccobs_text"]),
        "bytes": size,
        "bytes_per_series": size / series,
        "fill_seconds": fill_seconds,
        "rss_growth_bytes": rss_after - rss_before,
        "bytes_per_series_rss": (rss_after - rss_before) / max(1, series - series_before),
    }


def child_guard(names: int = GUARD_NAMES) -> dict[str, Any]:
    """Default cap; ``names`` distinct made-up models; series and RSS early and late."""
    _quiet_logs()
    metrics = _fresh()  # default settings: model_label_cap=50
    series_empty = series_count(metrics)
    early = 1_000
    fill(metrics, early, prefix="made-up")
    gc.collect()
    series_early, rss_early = series_count(metrics), rss_bytes()
    started = time.perf_counter()
    for i in range(early, names):
        _record(metrics, f"made-up-{i:06d}")
    seconds = time.perf_counter() - started
    gc.collect()
    series_late, rss_late = series_count(metrics), rss_bytes()
    return {
        "names": names,
        "model_label_cap": metrics.settings.model_label_cap,
        "series_empty": series_empty,
        "after_names_early": early,
        "series_early": series_early,
        "rss_early_bytes": rss_early,
        "series_late": series_late,
        "rss_late_bytes": rss_late,
        "rss_growth_bytes": rss_late - rss_early,
        "per_request_us_overflowing": seconds / (names - early) * 1e6,
    }


def run() -> dict[str, Any]:
    sizes = [run_json(["-m", "benchmarks.exposition", "--child", str(n)]) for n in SIZES]
    guard = run_json(["-m", "benchmarks.exposition", "--child-guard"])
    base, per_model = _per_model()
    return {"sizes": sizes, "guard": guard, "series_per_model": per_model, "series_base": base}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child_size(int(sys.argv[2]))))
    elif sys.argv[1:2] == ["--child-guard"]:
        print(json.dumps(child_guard()))
    else:
        print(json.dumps(run(), indent=1))
