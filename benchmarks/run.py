"""Run every benchmark and write ``benchmarks/RESULTS.md``: ``python -m benchmarks.run``.

Only the part between the ``ccobs-bench`` markers is rewritten; sections
others append to RESULTS.md (the access-log benchmark's) are kept.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmarks import middleware, record
from benchmarks.common import REPO

RESULTS = Path(__file__).with_name("RESULTS.md")
BEGIN, END = "<!-- ccobs-bench:begin -->", "<!-- ccobs-bench:end -->"
PACKAGES = (
    "ccobs",
    "prometheus_client",
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "structlog",
    "prometheus-fastapi-instrumentator",
)


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def machine() -> list[str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    return [
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {commit} (plus working tree)",
        f"- machine: {cpu}, {len(os.sched_getaffinity(0))} CPUs, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()} ({sys.executable})",
        "- packages: " + ", ".join(f"{p} {_version(p)}" for p in PACKAGES),
        f"- load client: {wrk.splitlines()[0] if wrk else 'wrk'}",
    ]


def _ns(value: float) -> str:
    return f"{value / 1000:.2f} µs"


def record_section(data: dict[str, Any], before: dict[str, Any]) -> list[str]:
    lines = [
        "## 1. Per-request instrumentation cost",
        "",
        "The updates for one completed, streamed, priced request (request counter, duration",
        "and TTFT histograms, four token counters, four cost counters, active gauge up and",
        "down), timed in one process, variants interleaved; median time per request and the",
        "median of the per-round ratios to raw prometheus_client on pre-resolved children.",
        "",
        "| mode | variant | per request | ratio to raw | target |",
        "|---|---|---|---|---|",
    ]
    labels = {
        "raw": "raw prometheus_client, pre-resolved children",
        "naive": "prometheus_client, `.labels()` on every update",
        "ccobs": "ccobs, one `record_*` call per update",
        "ccobs_bundle": "ccobs `record_completed_request` (one call)",
    }
    for mode in ("single", "multiprocess"):
        result = data[mode]
        for name, label in labels.items():
            if name not in result["median_ns"]:
                continue
            ratio = result["ratio_to_raw"][name]
            target = ""
            if name.startswith("ccobs"):
                target = "met (<= 1.25x)" if ratio <= 1.25 else "**missed** (<= 1.25x)"
            lines.append(
                f"| {mode} | {label} | {_ns(result['median_ns'][name])} | {ratio:.2f}x | {target} |"
            )
    b = before["result"]
    lines += [
        "",
        f"Before the change (commit {before['commit']}, recorded in `record_before.json`, same",
        f"machine): ccobs {b['single']['ratio_to_raw']['ccobs']:.2f}x raw in one process,",
        f"{b['multiprocess']['ratio_to_raw']['ccobs']:.2f}x under multiprocess mode "
        f"(naive `.labels()`: {b['single']['ratio_to_raw']['naive']:.2f}x / "
        f"{b['multiprocess']['ratio_to_raw']['naive']:.2f}x). The change: each `record_*` call",
        "looks its arguments up in one dict and calls the child's storage operation directly",
        "(guards and prometheus_client's argument checks run only on the first call per",
        "argument set; histograms find their bucket by binary search);",
        "`record_completed_request` records the whole request under one lookup.",
        "",
    ]
    return lines


def middleware_section(data: dict[str, Any]) -> list[str]:
    lines = [
        "## 2. Middleware overhead",
        "",
        "`GET /ping` (FastAPI, one uvicorn worker, asyncio + h11, access log off) loaded by",
        f"wrk: one thread, {data['connections']} keep-alive connections, {data['seconds']:.0f} s"
        f" per run, {data['rounds']} rounds interleaved; medians. Logging is JSON at WARNING",
        "for every variant; `ccobs + access log` logs ccobs's per-request line at INFO to",
        "/dev/null.",
        "",
        "| variant | req/s | vs uninstrumented | p50 | p99 | errors |",
        "|---|---|---|---|---|---|",
    ]
    names = {
        "plain": "uninstrumented",
        "ccobs": "ccobs `instrument(app)`",
        "instrumentator": "prometheus-fastapi-instrumentator",
        "ccobs_access_log": "ccobs + access log at INFO",
    }
    for key, label in names.items():
        r = data[key]
        lines.append(
            f"| {label} | {r['rps']:.0f} | {r['throughput_vs_plain'] * 100:.1f}% | "
            f"{r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['errors']} |"
        )
    cost = (1 - data["ccobs"]["throughput_vs_plain"]) * 100
    vs = data["ccobs"]["rps"] / data["instrumentator"]["rps"]
    lines += [
        "",
        f"Target: ccobs costs <= 5% of throughput: **{'met' if cost <= 5 else 'missed'}** "
        f"({cost:.1f}%). Never slower than the instrumentator: "
        f"**{'met' if vs >= 1 else 'missed'}** (ccobs {vs:.2f}x its throughput).",
        "",
    ]
    return lines


def main() -> int:
    started = time.monotonic()
    before = json.loads(Path(__file__).with_name("record_before.json").read_text())
    print("1/2 per-request instrumentation cost ...", flush=True)
    rec = record.run()
    print("2/2 middleware overhead ...", flush=True)
    mw = middleware.run()
    body = [
        BEGIN,
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m benchmarks.run`); every figure and its baseline",
        "come from the same run. Timings on this shared machine are noisy: compare ratios.",
        "",
        *machine(),
        f"- whole run: {time.monotonic() - started:.0f} s",
        "",
        *record_section(rec, before),
        *middleware_section(mw),
        "## Not yet measured",
        "",
        "Proxy overhead (3), exposition at scale (4) and pushing (5) have no benchmark yet.",
        "",
        "<details><summary>raw data</summary>",
        "",
        "```json",
        json.dumps({"record": rec, "middleware": mw}, indent=1),
        "```",
        "",
        "</details>",
        END,
    ]
    text = "\n".join(body) + "\n"
    if RESULTS.exists():
        old = RESULTS.read_text()
        if BEGIN in old and END in old:
            head, rest = old.split(BEGIN, 1)
            text = head + text.rstrip("\n") + rest.split(END, 1)[1]
        else:  # sections written by others before the first run are kept after ours
            text = text + "\n" + old
    RESULTS.write_text(text)
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
