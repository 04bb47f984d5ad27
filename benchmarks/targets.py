"""The targets noise cannot move, judged in one run: ``python -m benchmarks.targets``.

Writes its own section of ``benchmarks/RESULTS.md`` (between the
``ccobs-targets`` markers; ``make bench`` runs it after ``benchmarks.run``),
every figure beside its baseline from the same run:

- the access-log line, in µs per request in-process (``ccobs + access log at
  INFO`` less ``ccobs`` at WARNING), beside the same line through the ordinary
  logging chain (its cost before ``ccobs.access_line``), and counted in
  instructions per request served;
- the middleware, in instructions per request served (callgrind): at most
  twice what echoing ``x-request-id`` alone adds on the same server;
- the per-request recording, at most 1.0x raw prometheus_client;
- the renderer, no regression: at most 1.02x the instructions per render of
  the recorded commit's renderer (``targets_before.json``), both counted in
  this run over the same 10k series (``benchmarks.renderer_instructions``),
  milliseconds and prometheus_client's figure beside them.

CPU time and requests per second on this shared machine swing by tens of
percent between minutes, so timings stay as orientation; instruction counts
and same-run ratios decide.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import middleware, record, renderer_instructions
from benchmarks.common import replace_marked_section

RESULTS = Path(__file__).with_name("RESULTS.md")
BEFORE = Path(__file__).with_name("targets_before.json")
BEGIN, END = "<!-- ccobs-targets:begin -->", "<!-- ccobs-targets:end -->"
LINE_TARGET_US = 25.0
ECHO_FACTOR = 2.0
RECORD_TARGET = 1.0
RENDERER_FACTOR = 1.02


def measure(quick: bool = False) -> dict[str, Any]:
    """Every figure the targets need; ``quick`` (``--quick``) counts fewer requests and
    rounds, for a loaded machine: instruction counts per request do not depend on it."""
    started = time.monotonic()
    served = {"requests": 400, "warmup": 150} if quick else {}
    rounds = {"rounds": 7, "number": 10_000} if quick else {}
    data: dict[str, Any] = {
        "in_process_us": middleware.in_process_json(),
        "instructions": middleware.served_instructions(**served),
        "record": record.run(**rounds),
        "renderer": renderer_instructions.run(json.loads(BEFORE.read_text())["commit"]),
    }
    data["seconds"] = time.monotonic() - started
    data["load_average_after"] = os.getloadavg()
    return data


def _load(data: dict[str, Any]) -> str:
    load = data.get("load_average_after")
    return f", load average {load[0]:.1f} at the end" if load else ""


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def section(data: dict[str, Any]) -> list[str]:
    us, ins = data["in_process_us"], data["instructions"]
    line = us["ccobs_access_log"] - us["ccobs"]
    chain = us["ccobs_access_log_chain"] - us["ccobs"]
    served_line = ins["ccobs_access_log"] - ins["ccobs"]
    served_chain = ins["ccobs_access_log_chain"] - ins["ccobs"]
    echo = ins["echo_request_id"] - ins["plain"]
    ccobs = ins["ccobs"] - ins["plain"]
    rec = data["record"]
    lines = [
        BEGIN,
        "## Targets (`python -m benchmarks.targets`)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {data['seconds']:.0f} s"
        f"{_load(data)}; every figure beside its baseline from this run. Timings swing with"
        " this shared machine's load; instruction counts (callgrind, fixed hash seed) do not.",
        "",
        "| target | figure | baseline (same run) | result |",
        "|---|---|---|---|",
        f"| access-log line <= {LINE_TARGET_US:.0f} µs per request in-process"
        f" | {line:+.1f} µs | {chain:+.1f} µs through the logging chain"
        f" (uninstrumented request: {us['plain']:.1f} µs) | {_met(line <= LINE_TARGET_US)} |",
        f"| access-log line, instructions per request served (orientation)"
        f" | {served_line:+,.0f} | {served_chain:+,.0f} through the logging chain | |",
        f"| middleware <= {ECHO_FACTOR:.0f}x echoing `x-request-id` alone, instructions added"
        f" per request served | {ccobs:+,.0f} ({ccobs / echo:.2f}x) | {echo:+,.0f} echo only"
        f" (uninstrumented: {ins['plain']:,.0f}) | {_met(ccobs <= ECHO_FACTOR * echo)} |",
    ]
    for mode in ("single", "multiprocess"):
        ratios, ns = rec[mode]["ratio_to_raw"], rec[mode]["median_ns"]
        best = min(ratios["ccobs"], ratios.get("ccobs_bundle", ratios["ccobs"]))
        lines.append(
            f"| recording a request <= {RECORD_TARGET:.1f}x raw prometheus_client ({mode})"
            f" | {ratios['ccobs']:.2f}x per update, {ratios.get('ccobs_bundle', 0):.2f}x"
            f" in one call | raw {ns['raw'] / 1000:.2f} µs |"
            f" {_met(best <= RECORD_TARGET)} |"
        )
    lines += _renderer_rows(data["renderer"])
    lines += [
        "",
        "The access-log line is written straight to ccobs's JSON handler while it is the"
        " line's only destination (`ccobs/access_line.py`): no `LogRecord`, no handler"
        " dispatch, one pass over the fields with the chain's own redaction and renderer;"
        " the baseline column is the same line through structlog and the standard"
        " library, as every line went before. The recording's `per update` figure is one"
        " `record_*` call per update, `in one call` is `record_completed_request`; the"
        " renderer's baseline is the renderer of the commit in `targets_before.json`,"
        " unpacked with `git archive` and counted beside this tree's in the same run"
        " (`benchmarks/renderer_instructions.py`: callgrind, counts zeroed after filling"
        f" and a warm-up render). Served counts: {ins['requests']} requests from"
        f" {ins['connections']} keep-alive connections after {ins['warmup']} to warm up;"
        f" recording: {rec['single']['rounds']} rounds of {rec['single']['number']:,} in one"
        f" process, {rec['multiprocess']['rounds']} of {rec['multiprocess']['number']:,}"
        " under multiprocess mode.",
        "",
        "<details><summary>raw data</summary>",
        "",
        "```json",
        json.dumps(data, indent=1),
        "```",
        "",
        "</details>",
        END,
    ]
    return lines


def _renderer_rows(renderer: dict[str, Any]) -> list[str]:
    """The renderer's no-regression rows: instructions per render against the recorded
    commit's renderer, same registry, same run; milliseconds for orientation."""
    counted, ms = renderer["instructions_per_render"], renderer["render_ms"]
    this, recorded = counted["this_tree"], counted["recorded"]
    rows = []
    for fmt, label in (("text", "text"), ("om", "OpenMetrics")):
        ratio = renderer["ratio_to_recorded"][fmt]
        client = ms["this_tree"][f"prometheus_client_{fmt}"]
        rows.append(
            f"| renderer, no regression: {this['series']:,} series, {label}, <="
            f" {RENDERER_FACTOR:.2f}x the instructions per render of commit"
            f" {renderer['commit']}'s renderer | {this[fmt]:,.0f} ({ratio:.3f}x);"
            f" {ms['this_tree'][fmt]:.1f} ms, prometheus_client {client:.0f} ms"
            f" ({client / ms['this_tree'][fmt]:.1f}x) | {recorded[fmt]:,.0f};"
            f" {ms['recorded'][fmt]:.1f} ms | {_met(ratio <= RENDERER_FACTOR)} |"
        )
    return rows


def write(lines: list[str]) -> None:
    replace_marked_section(RESULTS, BEGIN, END, lines)


def main() -> int:
    data = measure(quick="--quick" in sys.argv[1:])
    write(section(data))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
