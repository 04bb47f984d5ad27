"""Benchmark 2: middleware overhead on a trivial FastAPI endpoint, under load over loopback.

Every variant runs in its own uvicorn subprocess with the same settings; wrk
(one thread, keep-alive) loads each in turn, round by round, rotating the
order, so drift on this shared machine hits all variants alike.
"""

from __future__ import annotations

import json
from typing import Any

from benchmarks.common import median, python_server, uvicorn_code, wrk

VARIANTS = ("plain", "ccobs", "instrumentator", "ccobs_access_log")


def run(rounds: int = 5, seconds: float = 3.0, connections: int = 16) -> dict[str, Any]:
    servers = {}
    stack = []
    try:
        for name in VARIANTS:
            cm = python_server(f"mw-{name}", uvicorn_code(f"benchmarks.apps:{name}"))
            servers[name] = cm.__enter__()
            stack.append(cm)
        for server in servers.values():  # warm up
            wrk(server.url + "/ping", connections=connections, seconds=1)
        samples: dict[str, list[Any]] = {name: [] for name in VARIANTS}
        for r in range(rounds):
            order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
            for name in order:
                samples[name].append(
                    wrk(servers[name].url + "/ping", connections=connections, seconds=seconds)
                )
    finally:
        for cm in reversed(stack):
            cm.__exit__(None, None, None)
    result: dict[str, Any] = {"rounds": rounds, "seconds": seconds, "connections": connections}
    for name in VARIANTS:
        runs = samples[name]
        result[name] = {
            "rps": median([x.rps for x in runs]),
            "p50_ms": median([x.p50_ms for x in runs]),
            "p99_ms": median([x.p99_ms for x in runs]),
            "errors": sum(x.errors for x in runs),
            "throughput_vs_plain": median(
                [x.rps / p.rps for x, p in zip(runs, samples["plain"], strict=True)]
            ),
        }
    return result


if __name__ == "__main__":
    print(json.dumps(run(rounds=2, seconds=2), indent=2))
