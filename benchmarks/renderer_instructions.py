"""The renderer against a recorded commit's, in instructions per render, in one run.

``python -m benchmarks.renderer_instructions [commit]`` (``benchmarks.targets``
runs it for the renderer's no-regression target). The recorded commit's
``ccobs`` is unpacked with ``git archive <commit> ccobs`` into a temporary
directory; each tree's renderer (``ccobs.exposition.ExpositionRenderer``,
where both trees export it) runs in a child interpreter with only that tree
importable as ``ccobs``. Both render the same registry: about 10k series of
plain prometheus_client counters, histograms and a gauge, filled the same way
in each child (not through ``ccobs``, whose families differ between the two
trees), checked equal to prometheus_client's own exposition first.

Counted under callgrind with a fixed hash seed: the counts are zeroed after
the filling and a warm-up render of each format, then a few renders of one
format are counted and dumped, text then OpenMetrics, so start-up and filling
are left out. Instruction counts do not move with the machine's load, where
a speed-up over prometheus_client measured in milliseconds moved by a fifth
between runs of the same code. The same children also run without valgrind
for milliseconds per render, prometheus_client's beside them: orientation only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RECORDED_COMMIT = "526cc7b"
SERIES = 10_000
RENDERS = 4
"""Renders counted per format: the count per render is the same for any number (±0.1%)."""
TIMED_RENDERS = 9
FORMATS = ("text", "om")
_SUMMARY = re.compile(r"^summary: (\d+)$", re.MULTILINE)
_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)


# --- the child: one tree's renderer over the shared registry ---------------------------


def _registry(series: int) -> Any:
    """About ``series`` sample lines of plain prometheus_client collectors, shaped like a
    proxy's (requests, two latency histograms, tokens and cost by type, per model)."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    registry = CollectorRegistry()
    labels = ["method", "endpoint", "model", "status"]
    requests = Counter("ccproxy_requests", "Requests.", labels, registry=registry)
    duration = Histogram(
        "ccproxy_request_duration_seconds",
        "Duration.",
        ["endpoint", "model"],
        buckets=_BUCKETS,
        registry=registry,
    )
    ttft = Histogram(
        "ccproxy_ttft_seconds", "TTFT.", ["endpoint", "model"], buckets=_BUCKETS, registry=registry
    )
    tokens = Counter("ccproxy_tokens", "Tokens.", ["model", "type"], registry=registry)
    cost = Counter("ccproxy_cost_usd", "Cost.", ["model", "type"], registry=registry)
    Gauge("ccproxy_active_requests", "Active.", registry=registry).set(3)
    per_model = 2 + 2 * (len(_BUCKETS) + 4) + 2 * 4 * 2
    for number in range(max(1, series // per_model)):
        model = f"model-{number:06d}"
        requests.labels("POST", "/v1/messages", model, "200").inc()
        duration.labels("/v1/messages", model).observe(1.5 + number % 7)
        ttft.labels("/v1/messages", model).observe(0.4)
        for kind, amount in (("input", 1200), ("output", 350), ("cache_read", 8000), ("x", 4)):
            tokens.labels(model, kind).inc(amount)
            cost.labels(model, kind).inc(amount * 1e-6)
    return registry


def _renders(registry: Any) -> dict[str, Any]:
    from prometheus_client.exposition import generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as om_latest

    from ccobs.exposition import OPENMETRICS, TEXT, ExpositionRenderer

    renderer = ExpositionRenderer()
    return {
        "text": lambda: renderer.render(registry, TEXT),
        "om": lambda: renderer.render(registry, OPENMETRICS),
        "prometheus_client_text": lambda: generate_latest(registry),
        "prometheus_client_om": lambda: om_latest(registry),  # type: ignore[no-untyped-call]
    }


def _say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _wait_for(flag: Path) -> None:
    # Polling (not a blocking read) lets valgrind act on callgrind_control in between.
    while not flag.exists():
        time.sleep(0.02)


def child(series: int, renders: int, flags: Path | None) -> None:
    """Fill, check, warm up; then either count (``flags``: wait for the parent's flag before
    each format's renders) or time every renderer."""
    import ccobs

    registry = _registry(series)
    functions = _renders(registry)
    outputs = {name: render() for name, render in functions.items()}
    for fmt in FORMATS:
        if outputs[fmt] != outputs[f"prometheus_client_{fmt}"]:
            raise RuntimeError(f"{ccobs.__file__}: the {fmt} exposition differs")
    lines = sum(1 for line in outputs["text"].split(b"\n") if line and not line.startswith(b"#"))
    _say(ready=True, ccobs=ccobs.__file__, series=lines)
    if flags is not None:
        for fmt in FORMATS:
            _wait_for(flags / fmt)
            for _ in range(renders):
                functions[fmt]()
            _say(rendered=fmt)
        _wait_for(flags / "exit")
        return
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(renders):
        for name, render in functions.items():
            started = time.perf_counter()
            render()
            times[name].append(time.perf_counter() - started)
    _say(render_ms={name: sorted(t)[len(t) // 2] * 1000 for name, t in times.items()})


# --- the parent -----------------------------------------------------------------------


@contextmanager
def recorded_tree(commit: str) -> Iterator[Path]:
    """A directory holding ``commit``'s ``ccobs`` package (``git archive``), removed after."""
    with tempfile.TemporaryDirectory(prefix=f"ccobs-{commit}-") as directory:
        archive = subprocess.run(
            ["git", "archive", commit, "ccobs"], cwd=REPO, capture_output=True, check=True
        ).stdout
        with tempfile.TemporaryFile() as tar:
            tar.write(archive)
            tar.seek(0)
            with tarfile.open(fileobj=tar) as unpacked:
                unpacked.extractall(directory, filter="data")
        yield Path(directory)


def _child_command(series: int, renders: int, flags: Path | None) -> list[str]:
    # The script by path, not ``-m``: the current directory must not put this tree's ccobs first.
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(series), str(renders)]
    return command + ([str(flags)] if flags is not None else [])


def _env(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCOBS_", "PROMETHEUS_"))}
    env.update(PYTHONPATH=str(tree), PYTHONHASHSEED="0")
    return env


def _read(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"the renderer child ended early ({process.wait()})")
    result: dict[str, Any] = json.loads(line)
    return result


def _expect_tree(said: dict[str, Any], tree: Path) -> None:
    if not Path(said["ccobs"]).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"the child imported {said['ccobs']}, not the tree {tree}")


def count(tree: Path, series: int = SERIES, renders: int = RENDERS) -> dict[str, Any]:
    """Instructions per render of ``tree``'s renderer, each format, under callgrind."""
    valgrind, control = shutil.which("valgrind"), shutil.which("callgrind_control")
    if valgrind is None or control is None:
        raise RuntimeError("valgrind is not installed: apt-get install valgrind")
    with tempfile.TemporaryDirectory(prefix="ccobs-renderer-callgrind-") as directory:
        flags = Path(directory)
        out = flags / "callgrind.out"
        command = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}.%p"]
        process = subprocess.Popen(
            command + _child_command(series, renders, flags),
            env=_env(tree),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            ready = _read(process)
            _expect_tree(ready, tree)
            found: dict[str, Any] = {"series": ready["series"], "renders": renders}
            for dump_number, fmt in enumerate(FORMATS, start=1):
                pid = str(process.pid)
                subprocess.run([control, "--zero", pid], check=True, capture_output=True)
                (flags / fmt).touch()
                _read(process)
                subprocess.run([control, "--dump", pid], check=True, capture_output=True)
                found[fmt] = _summary(Path(f"{out}.{pid}.{dump_number}")) / renders
            (flags / "exit").touch()
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return found


def _summary(dump: Path) -> int:
    for _ in range(300):  # callgrind_control returns once the dump is asked for
        if dump.exists() and (found := _SUMMARY.search(dump.read_text())):
            return int(found.group(1))
        time.sleep(0.1)
    raise RuntimeError(f"no callgrind summary in {dump}")


def timing(tree: Path, series: int = SERIES, renders: int = TIMED_RENDERS) -> dict[str, Any]:
    """Milliseconds per render of ``tree``'s renderer and of prometheus_client's (orientation)."""
    done = subprocess.run(
        _child_command(series, renders, None),
        env=_env(tree),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the renderer child failed:\n{done.stderr[-3000:]}")
    ready, timed = (json.loads(line) for line in done.stdout.strip().splitlines()[-2:])
    _expect_tree(ready, tree)
    result: dict[str, Any] = timed["render_ms"]
    return result


def run(commit: str = RECORDED_COMMIT, series: int = SERIES) -> dict[str, Any]:
    """This tree's and ``commit``'s renderers: instructions per render (the two trees counted
    at once, one per core), then milliseconds per render, in one run."""
    from concurrent.futures import ThreadPoolExecutor

    with recorded_tree(commit) as recorded:
        trees = {"this_tree": REPO, "recorded": recorded}
        with ThreadPoolExecutor(max_workers=2) as pool:
            counts = pool.map(lambda tree: count(tree, series), trees.values())
            counted = dict(zip(trees, counts, strict=True))
        timed = {name: timing(tree, series) for name, tree in trees.items()}
    ratio = {fmt: counted["this_tree"][fmt] / counted["recorded"][fmt] for fmt in FORMATS}
    return {
        "commit": commit,
        "instructions_per_render": counted,
        "ratio_to_recorded": ratio,
        "render_ms": timed,
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]) if sys.argv[4:] else None)
    else:
        print(json.dumps(run(sys.argv[1] if sys.argv[1:] else RECORDED_COMMIT), indent=1))
