"""Benchmark 3: what the demo proxy adds between a client and the (mock) upstream.

uvicorn subprocesses: the mock upstream with constant 1 ms delays (see
:func:`benchmarks.apps.upstream`) and, in front of it, the instrumented demo
proxy and the pass-through proxies it is compared with (see ``ROUTES``). The
same upstream answers direct and proxied requests, so the difference is the
proxy's.

Latency: one keep-alive connection per route and mode (non-streaming and
streaming) take turns, one request at a time, round after round, from a
minimal socket client (:class:`benchmarks.common.HttpProbe`). Added latency
is the proxied percentile minus the direct one over all rounds; the spread of
the per-round p50 differences is shown as the noise. Time to first token is
the time to the first ``content_block_delta`` event's bytes.

Throughput: wrk, closed loop, at a few connection counts, each variant in
turn; the highest rate with no errors is the sustained rate. The proxy's CPU
per request is its utime + stime delta (``/proc/<pid>/stat``) over its wrk
runs, divided by the requests they completed.
"""

from __future__ import annotations

import json
from typing import Any

from benchmarks.apps import UPSTREAM_URL_ENV
from benchmarks.common import (
    CLOCK_TICKS,
    HttpProbe,
    cpu_ticks,
    median,
    percentile,
    python_server,
    uvicorn_code,
    wrk,
)
from ccobs.stack.processes import ServerProcess

PATH = "/v1/messages"
HEADERS = {"Content-Type": "application/json", "anthropic-version": "2023-06-01"}
MARK = b"content_block_delta"
ROUTES = ("direct", "httpx", "bare", "proxy", "pure")
"""``direct`` to the upstream; ``bare`` through the uninstrumented pass-through
proxy (:func:`benchmarks.apps.bare_proxy`); ``httpx`` through the same with httpx
as its client (:func:`benchmarks.apps.httpx_proxy`, the demo proxy's client before);
``proxy`` through the ccobs demo proxy. These three are served as ``ccobs proxy``
serves with ``ccobs[server]`` installed: uvicorn on uvloop and httptools. ``pure``
is the demo proxy again on uvicorn's pure-Python asyncio and h11, as ``ccobs proxy``
serves without them; the upstream runs on those too."""

SERVER = {"loop": "uvloop", "http": "httptools"}
"""How the proxies are served: what uvicorn picks in ``ccobs proxy`` when ``ccobs[server]``
is installed."""


def body(stream: bool) -> bytes:
    payload: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Say hello."}],
    }
    if stream:
        payload["stream"] = True
    return json.dumps(payload).encode()


def _latency(
    urls: dict[str, str], rounds: int, per_round: int, warmup: int = 100
) -> dict[str, Any]:
    variants = [(route, stream) for stream in (False, True) for route in ROUTES]
    probes = {v: HttpProbe(urls[v[0]]) for v in variants}
    raws = {v: probes[v].request_bytes("POST", PATH, body(v[1]), HEADERS) for v in variants}
    totals: dict[tuple[str, bool], list[list[float]]] = {v: [] for v in variants}
    firsts: dict[tuple[str, bool], list[list[float]]] = {v: [] for v in variants}
    try:
        for v in variants:
            for _ in range(warmup):
                probes[v].send(raws[v], MARK if v[1] else b"")
        for r in range(rounds):
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            round_totals: dict[tuple[str, bool], list[float]] = {v: [] for v in variants}
            round_firsts: dict[tuple[str, bool], list[float]] = {v: [] for v in variants}
            for _ in range(per_round):
                for v in order:
                    first, total = probes[v].send(raws[v], MARK if v[1] else b"")
                    round_totals[v].append(total)
                    round_firsts[v].append(first)
            for v in variants:
                totals[v].append(round_totals[v])
                firsts[v].append(round_firsts[v])
    finally:
        for probe in probes.values():
            probe.close()

    def ms(values: list[float], q: float) -> float:
        return percentile(values, q) * 1000

    result: dict[str, Any] = {"rounds": rounds, "per_round": per_round}
    for stream in (False, True):
        mode = "streaming" if stream else "non_streaming"
        entry: dict[str, Any] = {}
        for metric, data in (("total", totals), ("first_token", firsts)):
            if metric == "first_token" and not stream:
                continue
            pooled = {route: [x for rnd in data[(route, stream)] for x in rnd] for route in ROUTES}
            stats: dict[str, Any] = {}
            for route in ROUTES:
                stats[f"{route}_p50_ms"] = ms(pooled[route], 50)
                stats[f"{route}_p99_ms"] = ms(pooled[route], 99)
            for route, base in (
                ("proxy", "direct"),
                ("bare", "direct"),
                ("httpx", "direct"),
                ("pure", "direct"),
                ("proxy", "bare"),
            ):
                name = f"{route}_minus_{base}"
                stats[f"{name}_p50_ms"] = stats[f"{route}_p50_ms"] - stats[f"{base}_p50_ms"]
                stats[f"{name}_p99_ms"] = stats[f"{route}_p99_ms"] - stats[f"{base}_p99_ms"]
                stats[f"{name}_p50_per_round_ms"] = [
                    ms(p, 50) - ms(d, 50)
                    for p, d in zip(data[(route, stream)], data[(base, stream)], strict=True)
                ]
            entry[metric] = stats
        result[mode] = entry
    return result


def _throughput(
    urls: dict[str, str],
    pids: dict[str, int],
    rounds: int,
    seconds: float,
    connections: tuple[int, ...],
) -> dict[str, Any]:
    variants = [(route, stream) for stream in (False, True) for route in ROUTES]
    runs: dict[str, list[dict[str, float]]] = {}
    cpu: dict[tuple[str, bool], list[tuple[int, int]]] = {v: [] for v in variants}
    for v in variants:  # warm up
        wrk(urls[v[0]] + PATH, connections=8, seconds=1, body=body(v[1]), headers=HEADERS)
    for r in range(rounds):
        for conns in connections:
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            for route, stream in order:
                pid = pids[route]
                before = cpu_ticks(pid)
                load = wrk(
                    urls[route] + PATH,
                    connections=conns,
                    seconds=seconds,
                    body=body(stream),
                    headers=HEADERS,
                )
                cpu[(route, stream)].append((cpu_ticks(pid) - before, load.requests))
                key = f"{route}_{'streaming' if stream else 'non_streaming'}_c{conns}"
                runs.setdefault(key, []).append(
                    {"rps": load.rps, "p50_ms": load.p50_ms, "p99_ms": load.p99_ms,
                     "errors": load.errors}
                )  # fmt: skip
    table = {
        key: {
            "rps": median([x["rps"] for x in values]),
            "p50_ms": median([x["p50_ms"] for x in values]),
            "p99_ms": median([x["p99_ms"] for x in values]),
            "errors": sum(int(x["errors"]) for x in values),
        }
        for key, values in runs.items()
    }
    best: dict[str, Any] = {}
    for route, stream in variants:
        mode = "streaming" if stream else "non_streaming"
        candidates = [
            (table[f"{route}_{mode}_c{c}"]["rps"], c)
            for c in connections
            if table[f"{route}_{mode}_c{c}"]["errors"] == 0
        ]
        rps, conns = max(candidates) if candidates else (0.0, 0)
        best[f"{route}_{mode}"] = {"rps": rps, "connections": conns}
    # CPU of the process serving the route: the upstream for ``direct``, the proxy otherwise.
    cpu_ms = {
        f"{route}_{'streaming' if stream else 'non_streaming'}": 1000
        * sum(t for t, _ in samples)
        / CLOCK_TICKS
        / max(1, sum(n for _, n in samples))
        for (route, stream), samples in cpu.items()
    }
    return {
        "rounds": rounds,
        "seconds": seconds,
        "connections": list(connections),
        "runs": table,
        "best": best,
        "cpu_ms_per_request": cpu_ms,
    }


def _pid(server: ServerProcess) -> int:
    if server.pid is None:
        raise RuntimeError(f"{server!r} has no pid")
    return server.pid


def run(
    rounds: int = 5,
    per_round: int = 200,
    load_rounds: int = 2,
    seconds: float = 2.0,
    connections: tuple[int, ...] = (8, 32),
) -> dict[str, Any]:
    with python_server("upstream", uvicorn_code("benchmarks.apps:upstream")) as upstream:
        env = {UPSTREAM_URL_ENV: upstream.url}
        with (
            python_server(
                "httpx", uvicorn_code("benchmarks.apps:httpx_proxy", **SERVER), env=env
            ) as hx,
            python_server(
                "bare", uvicorn_code("benchmarks.apps:bare_proxy", **SERVER), env=env
            ) as bare,
            python_server(
                "proxy", uvicorn_code("benchmarks.apps:proxy", **SERVER), env=env
            ) as proxy,
            python_server("pure", uvicorn_code("benchmarks.apps:proxy"), env=env) as pure,
        ):
            servers = {"direct": upstream, "httpx": hx, "bare": bare, "proxy": proxy, "pure": pure}
            urls = {route: server.url for route, server in servers.items()}
            pids = {route: _pid(server) for route, server in servers.items()}
            latency = _latency(urls, rounds, per_round)
            throughput = _throughput(urls, pids, load_rounds, seconds, connections)
    return {"latency": latency, "throughput": throughput}


if __name__ == "__main__":
    print(json.dumps(run(rounds=2, per_round=100, load_rounds=1, seconds=1), indent=1))
