"""Benchmark 5: pushing to the real Pushgateway and VictoriaMetrics.

The Debian binaries run on free loopback ports (``ccobs.stack.processes``),
in temp dirs, stopped when the benchmark ends, even on failure.

Push duration: a registry holding about 1k or 10k series (filled as in
benchmark 4) is pushed with :class:`ccobs.pushgateway.PushgatewayClient`
(``push``, i.e. replace, to the Pushgateway; ``/api/v1/import/prometheus`` to
VictoriaMetrics), the two targets taking turns; median over repeats. The
render alone (the text exposition both protocols send) is timed too, so the
share the network and the server take is visible. Runs in a fresh child
interpreter.

Latency while pushing: three copies of a trivial instrumented app, each
holding about 10k series: ``pushing`` runs the background pusher (interval
0.2 s) against the real Pushgateway, ``quiet`` and ``quiet_control`` do not.
One request at a time goes to each in turn on a keep-alive connection
(:class:`benchmarks.common.HttpProbe`), round after round. ``pushing minus
quiet`` is the pusher's effect; ``quiet_control minus quiet`` — two identical
apps — is the noise it must be read against.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from benchmarks.apps import PUSH_INTERVAL_ENV, PUSH_URL_ENV, SERIES_ENV
from benchmarks.common import (
    HttpProbe,
    median,
    percentile,
    python_server,
    run_json,
    uvicorn_code,
)
from ccobs.stack.processes import LOOPBACK, ServerProcess, find_binary, start_server

SIZES = (1_000, 10_000)
_REPEATS = {1_000: 15, 10_000: 5}
INTERVAL = 0.2
APP_SERIES = 10_000
APPS = ("quiet", "pushing", "quiet_control")


@contextmanager
def _binary(name: str, args: Any, ready_path: str) -> Iterator[ServerProcess]:
    workdir = Path(tempfile.mkdtemp(prefix=f"ccobs-bench-{name}-"))
    try:
        server = start_server(
            find_binary(name), args, workdir=workdir, ready_path=ready_path, name=name
        )
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def pushgateway() -> Any:
    return _binary(
        "prometheus-pushgateway",
        lambda _dir, port: [f"--web.listen-address={LOOPBACK}:{port}", "--persistence.file="],
        "/-/ready",
    )


def victoria_metrics() -> Any:
    return _binary(
        "victoria-metrics",
        lambda workdir, port: [
            f"-httpListenAddr={LOOPBACK}:{port}",
            f"-storageDataPath={workdir / 'data'}",
            "-retentionPeriod=1d",
        ],
        "/health",
    )


def child_push(pushgateway_url: str, vm_url: str) -> dict[str, Any]:
    from benchmarks.exposition import _fresh, _quiet_logs, fill, models_for, series_count
    from ccobs.pushgateway import PushgatewayClient
    from ccobs.renderer import ExpositionRenderer
    from ccobs.settings import ObservabilitySettings

    _quiet_logs()
    targets = {"pushgateway": pushgateway_url, "victoriametrics": vm_url}
    result: dict[str, Any] = {}
    for size in SIZES:
        models = models_for(size)
        metrics = _fresh(model_cap=models + 10)
        fill(metrics, models)
        registry = metrics.exposition_registry()
        clients = {
            protocol: PushgatewayClient(
                ObservabilitySettings(
                    pushgateway_url=url,
                    pushgateway_protocol=protocol,
                    pushgateway_instance="bench",
                    pushgateway_timeout_seconds=30.0,
                )
            )
            for protocol, url in targets.items()
        }
        renderer = ExpositionRenderer()  # as each client keeps one between pushes
        times: dict[str, list[float]] = {"render": [], **{p: [] for p in targets}}
        failures = 0
        try:
            for client in clients.values():  # warm up: connections, first ingestion
                failures += not client.push_metrics(registry)
            for _ in range(_REPEATS[size]):
                started = time.perf_counter()
                renderer.render(registry)
                times["render"].append(time.perf_counter() - started)
                for protocol, client in clients.items():
                    started = time.perf_counter()
                    ok = client.push_metrics(registry)
                    times[protocol].append(time.perf_counter() - started)
                    failures += not ok
        finally:
            for client in clients.values():
                client.close()
        result[str(size)] = {
            "series": series_count(metrics),
            "repeats": _REPEATS[size],
            "failures": failures,
            **{f"{name}_ms": median(values) * 1000 for name, values in times.items()},
            **{f"{name}_min_ms": min(values) * 1000 for name, values in times.items()},
        }
    return result


def _pushes(server: ServerProcess) -> dict[str, float]:
    """The app's own ``pushes_total`` by outcome, read from its ``/metrics``."""
    probe = HttpProbe(server.url)
    try:
        probe.send(probe.request_bytes("GET", "/metrics"))
        raw = probe.request_bytes("GET", "/metrics", headers={"Connection": "close"})
        probe._sock.sendall(raw)
        chunks = []
        while data := probe._sock.recv(1 << 20):
            chunks.append(data)
    finally:
        probe.close()
    counts: dict[str, float] = {}
    for line in b"".join(chunks).decode().splitlines():
        if line.startswith(("ccproxy_pushes_total{", "ccproxy_metric_pushes_total{")):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            counts[outcome] = counts.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def _latency_while_pushing(
    pushgateway_url: str, rounds: int, per_round: int, warmup: int = 200
) -> dict[str, Any]:
    env = {PUSH_URL_ENV: pushgateway_url, SERIES_ENV: str(APP_SERIES), PUSH_INTERVAL_ENV: "0.2"}
    factory = {"quiet": "quiet", "pushing": "pushing", "quiet_control": "quiet"}
    with ExitStack() as stack:
        servers = {
            name: stack.enter_context(
                python_server(
                    f"push-{name}", uvicorn_code(f"benchmarks.apps:{factory[name]}"), env=env
                )
            )
            for name in APPS
        }
        probes = {name: HttpProbe(server.url) for name, server in servers.items()}
        raw = {name: probe.request_bytes("GET", "/ping") for name, probe in probes.items()}
        samples: dict[str, list[list[float]]] = {name: [] for name in APPS}
        started = time.monotonic()
        try:
            for name in APPS:
                for _ in range(warmup):
                    probes[name].send(raw[name])
            pushes_before = _pushes(servers["pushing"])
            for r in range(rounds):
                order = APPS[r % len(APPS) :] + APPS[: r % len(APPS)]
                this_round: dict[str, list[float]] = {name: [] for name in APPS}
                for _ in range(per_round):
                    for name in order:
                        this_round[name].append(probes[name].send(raw[name])[1])
                for name in APPS:
                    samples[name].append(this_round[name])
            seconds = time.monotonic() - started
            pushes_after = _pushes(servers["pushing"])
        finally:
            for probe in probes.values():
                probe.close()

    def ms(values: list[float], q: float) -> float:
        return percentile(values, q) * 1000

    result: dict[str, Any] = {
        "rounds": rounds,
        "per_round": per_round,
        "series": APP_SERIES,
        "interval_seconds": INTERVAL,
        "seconds": seconds,
        "pushes_during": {
            k: pushes_after.get(k, 0.0) - pushes_before.get(k, 0.0) for k in pushes_after
        },
    }
    for name in APPS:
        pooled = [x for rnd in samples[name] for x in rnd]
        result[name] = {"p50_ms": ms(pooled, 50), "p99_ms": ms(pooled, 99)}
    for name in ("pushing", "quiet_control"):
        key = f"{name}_minus_quiet"
        result[key] = {
            "p50_ms": result[name]["p50_ms"] - result["quiet"]["p50_ms"],
            "p99_ms": result[name]["p99_ms"] - result["quiet"]["p99_ms"],
            "p50_per_round_ms": [
                ms(a, 50) - ms(b, 50) for a, b in zip(samples[name], samples["quiet"], strict=True)
            ],
            "p99_per_round_ms": [
                ms(a, 99) - ms(b, 99) for a, b in zip(samples[name], samples["quiet"], strict=True)
            ],
        }
    return result


def run(rounds: int = 5, per_round: int = 300) -> dict[str, Any]:
    with pushgateway() as gateway, victoria_metrics() as vm:
        durations = run_json(["-m", "benchmarks.push", "--child", gateway.url, vm.url])
        latency = _latency_while_pushing(gateway.url, rounds, per_round)
    return {"durations": durations, "latency": latency}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child_push(sys.argv[2], sys.argv[3])))
    else:
        print(json.dumps(run(rounds=2, per_round=200), indent=1))
