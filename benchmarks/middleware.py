"""Benchmark 2: middleware overhead on a trivial FastAPI endpoint, under load over loopback.

Every variant runs in its own uvicorn subprocess with the same settings; wrk
(one thread, keep-alive) loads each in turn, round by round, rotating the
order, so drift on this shared machine hits all variants alike.

Throughput on two cores shared by wrk and the server swings by tens of percent
from run to run with scheduling alone, far more than the few percent a
middleware costs; so the server's own CPU time per request (utime + stime from
``/proc/<pid>/stat`` over each run, divided by the requests it completed) is
measured too. It is the cost a CPU-bound server pays per request, and what
its throughput capacity follows. Each app is also called in-process through
ASGI, with no server and no sockets, variants taking turns in one interpreter:
the steadiest timing of what the instrumentation itself adds per request.
Finally each server is counted in instructions under callgrind while it
serves: what the instrumentation costs served, the server's share included
(an echoed header is checked and written by the server), with no noise.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CLOCK_TICKS,
    closed_loop_gets,
    cpu_ticks,
    median,
    python_server,
    uvicorn_code,
    wrk,
)

VARIANTS = ("plain", "ccobs", "instrumentator", "ccobs_access_log")
IN_PROCESS_VARIANTS = (*VARIANTS, "ccobs_access_log_chain")
"""In one process the access-log line is also timed through the ordinary logging chain,
its baseline (what every line cost before ``ccobs.access_line``), in the same run."""
ACCESS_LOG_VARIANTS = ("ccobs_access_log", "ccobs_access_log_chain")


def run(rounds: int = 11, seconds: float = 3.0, connections: int = 16) -> dict[str, Any]:
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
        cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for r in range(rounds):
            order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
            for name in order:
                pid = servers[name].pid
                assert pid is not None
                before = cpu_ticks(pid)
                load = wrk(servers[name].url + "/ping", connections=connections, seconds=seconds)
                samples[name].append(load)
                cpu[name].append((cpu_ticks(pid) - before) / CLOCK_TICKS / max(1, load.requests))
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
            "rps_per_round": [x.rps for x in runs],
            "cpu_us_per_request": median(cpu[name]) * 1e6,
            "cpu_vs_plain": median([x / p for x, p in zip(cpu[name], cpu["plain"], strict=True)]),
        }
    return result


def in_process(rounds: int = 40, requests: int = 500) -> dict[str, float]:
    """µs per ``GET /ping`` with each variant's app called directly through ASGI.

    Many short rounds, the variants taking turns within each (in a rotating
    order), so that drift on this shared machine, which moves all of them
    alike within a round, cancels out of each round's differences. ``plain``
    is its median µs per request; every other variant is ``plain`` plus the
    median of its per-round differences from ``plain``, so ``x - plain`` is
    the steady "added" cost (medians of each variant taken separately swung by
    ±5 µs from run to run for the same code).
    """
    from benchmarks import apps

    built = {name: getattr(apps, name)() for name in IN_PROCESS_VARIANTS}
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/ping",
        "raw_path": b"/ping",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    async def per_request(app: Any, count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            await app(dict(scope), receive, send)
        return (time.perf_counter() - started) / count

    def log_level(name: str) -> None:
        # One process, one logging set-up: each variant gets its own before it runs.
        level = "INFO" if name in ACCESS_LOG_VARIANTS else "WARNING"
        apps._logging(level, direct_line=name != "ccobs_access_log_chain")

    async def measure() -> dict[str, list[float]]:
        for name, app in built.items():  # warm up: routes, label children, caches
            log_level(name)
            await per_request(app, 300)
        names = IN_PROCESS_VARIANTS
        times: dict[str, list[float]] = {name: [] for name in names}
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                log_level(name)
                times[name].append(await per_request(built[name], requests))
        return times

    times = asyncio.run(measure())
    plain = median(times["plain"])
    result = {"plain": plain * 1e6}
    for name in IN_PROCESS_VARIANTS[1:]:
        added = median([t - p for t, p in zip(times[name], times["plain"], strict=True)])
        result[name] = (plain + added) * 1e6
    return result


SERVED_INSTRUCTION_VARIANTS = (
    "plain",
    "echo_request_id",
    "ccobs",
    "instrumentator",
    *ACCESS_LOG_VARIANTS,
)


def served_instructions(
    requests: int = 1000, warmup: int = 300, connections: int = 16
) -> dict[str, Any]:
    """Instructions each variant's server executes per ``GET /ping``, counted by callgrind.

    The served cost without the machine's noise: uvicorn runs under valgrind's
    callgrind, served over loopback sockets as in :func:`run`; its counts are
    zeroed after ``warmup`` requests and dumped after ``requests`` more, so
    start-up is left out. Instruction counts are the same on a busy or quiet
    machine (within ~0.5% from run to run, with a fixed hash seed), where the
    CPU time of :func:`run` swings by more than the middleware costs; they do
    not see cache misses or the kernel's part, so a served CPU ratio may
    exceed the instruction ratio. Two variants at a time, one per core.
    Returns each variant's count and the settings it was counted with.
    """
    from concurrent.futures import ThreadPoolExecutor

    def count(name: str) -> float:
        return _instructions_per_request(name, requests, warmup, connections)

    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = list(pool.map(count, SERVED_INSTRUCTION_VARIANTS))
    found = dict(zip(SERVED_INSTRUCTION_VARIANTS, counts, strict=True))
    return {"requests": requests, "warmup": warmup, "connections": connections, **found}


def _instructions_per_request(name: str, requests: int, warmup: int, connections: int) -> float:
    valgrind, control = shutil.which("valgrind"), shutil.which("callgrind_control")
    if valgrind is None or control is None:
        raise RuntimeError("valgrind is not installed: apt-get install valgrind")
    with tempfile.TemporaryDirectory(prefix="ccobs-bench-callgrind-") as directory:
        out = Path(directory) / "callgrind.out"
        launcher = (valgrind, "--tool=callgrind", f"--callgrind-out-file={out}.%p")
        code = uvicorn_code(f"benchmarks.apps:{name}")
        env = {"PYTHONHASHSEED": "0"}  # dict layouts, and so lookups, alike in every run
        with python_server(f"cg-{name}", code, launcher=launcher, env=env, timeout=300) as server:
            pid = server.pid
            assert pid is not None
            closed_loop_gets(server.url, "/ping", warmup, connections)
            subprocess.run([control, "--zero", str(pid)], check=True, capture_output=True)
            closed_loop_gets(server.url, "/ping", requests, connections)
            subprocess.run([control, "--dump", str(pid)], check=True, capture_output=True)
            dump = Path(f"{out}.{pid}.1")
            found = None
            for _ in range(100):  # callgrind_control returns once the dump is asked for
                if dump.exists() and (found := _SUMMARY.search(dump.read_text())):
                    break
                time.sleep(0.1)
            if found is None:
                raise RuntimeError(f"no callgrind summary in {dump}")
            return int(found.group(1)) / requests


_SUMMARY = re.compile(r"^summary: (\d+)$", re.MULTILINE)


def in_process_json() -> dict[str, float]:
    """:func:`in_process` in a fresh interpreter (the apps configure logging globally)."""
    from benchmarks.common import run_json

    return run_json(["-m", "benchmarks.middleware", "--in-process"])


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--in-process"]:
        print(json.dumps(in_process()))
    elif sys.argv[1:2] == ["--instructions"]:
        print(json.dumps(served_instructions(), indent=2))
    else:
        print(json.dumps(run(rounds=2, seconds=2), indent=2))
