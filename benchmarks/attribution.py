"""Attribution's cost through the proxy: instructions per request, identity file loaded or not.

The proxy (:func:`benchmarks.apps.proxy`, as ``ccobs proxy`` builds it) always
derives the caller's fingerprint, client app and session from the headers; with
an identity file (:func:`benchmarks.apps.proxy_identified`, 200 keys named) it
also resolves the fingerprint to a team and an alias, and the attribution
families get the named caller's labels. Both are served under callgrind in front
of the mock upstream and sent the same non-streaming ``POST /v1/messages``
requests, each carrying one of the file's keys in ``x-api-key`` (10 keys in
turn, over the connections) and a Claude Code user agent. What callgrind counts
is the proxy process's instructions per request: its relay, accounting,
identity resolution and metrics, as the middleware benchmark counts them.

Target (issue 17): the identity file adds at most 5 %.

Run: ``python -m benchmarks.attribution``.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.apps import IDENTITIES_ENV, UPSTREAM_URL_ENV
from benchmarks.common import HttpProbe, python_server, uvicorn_code
from ccobs.identity import fingerprint

NAMED_KEYS = 200
SENDING_KEYS = 10
TARGET_RATIO = 0.05
VARIANTS = ("proxy", "proxy_identified")
_SUMMARY = re.compile(r"^summary: (\d+)$", re.MULTILINE)
BODY = json.dumps(
    {
        "model": "claude-sonnet-4-6",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    }
).encode()


def key(i: int) -> str:
    """The i-th benchmark key (made up; only its fingerprint is in the file)."""
    return f"sk-ant-api03-bench-{i:04d}-" + "k" * 60


def identity_file(path: Path) -> Path:
    """200 keys named across 4 teams."""
    lines = ["keys:"]
    for i in range(NAMED_KEYS):
        lines += [
            f"  - fingerprint: {fingerprint(key(i))}",
            f"    alias: user-{i:03d}",
            f"    team: team-{i % 4}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def closed_loop_posts(url: str, total: int, connections: int) -> None:
    """``total`` keep-alive POSTs, ``connections`` at a time; connection n sends key n % 10."""
    taken = itertools.count()

    def connection(n: int) -> None:
        probe = HttpProbe(url)
        headers = {
            "content-type": "application/json",
            "x-api-key": key(n % SENDING_KEYS),
            "user-agent": "claude-cli/2.0.14 (external, cli)",
            "anthropic-version": "2023-06-01",
        }
        try:
            raw = probe.request_bytes("POST", "/v1/messages", BODY, headers)
            while next(taken) < total:
                probe.send(raw)
        finally:
            probe.close()

    with ThreadPoolExecutor(max_workers=connections) as pool:
        for running in [pool.submit(connection, n) for n in range(connections)]:
            running.result()


def instructions_per_request(
    name: str, env: dict[str, str], requests: int, warmup: int, connections: int
) -> float:
    """The proxy app ``name`` under callgrind: instructions per request after ``warmup``."""
    valgrind, control = shutil.which("valgrind"), shutil.which("callgrind_control")
    if valgrind is None or control is None:
        raise RuntimeError("valgrind is not installed: apt-get install valgrind")
    with tempfile.TemporaryDirectory(prefix="ccobs-bench-attribution-") as directory:
        out = Path(directory) / "callgrind.out"
        launcher = (valgrind, "--tool=callgrind", f"--callgrind-out-file={out}.%p")
        code = uvicorn_code(f"benchmarks.apps:{name}")
        env = {**env, "PYTHONHASHSEED": "0"}
        with python_server(f"cg-{name}", code, launcher=launcher, env=env, timeout=300) as server:
            pid = server.pid
            assert pid is not None
            closed_loop_posts(server.url, warmup, connections)
            subprocess.run([control, "--zero", str(pid)], check=True, capture_output=True)
            closed_loop_posts(server.url, requests, connections)
            subprocess.run([control, "--dump", str(pid)], check=True, capture_output=True)
            dump = Path(f"{out}.{pid}.1")
            found = None
            for _ in range(100):
                if dump.exists() and (found := _SUMMARY.search(dump.read_text())):
                    break
                time.sleep(0.1)
            if found is None:
                raise RuntimeError(f"no callgrind summary in {dump}")
            return int(found.group(1)) / requests


def run(requests: int = 1000, warmup: int = 300, connections: int = 10) -> dict[str, Any]:
    """Instructions per proxied request without and with the identity file, and the added share."""
    with tempfile.TemporaryDirectory(prefix="ccobs-bench-identities-") as directory:
        identities = identity_file(Path(directory) / "identities.yaml")
        with python_server("upstream", uvicorn_code("benchmarks.apps:upstream")) as upstream:
            env = {UPSTREAM_URL_ENV: upstream.url, IDENTITIES_ENV: str(identities)}

            def count(name: str) -> float:
                return instructions_per_request(name, env, requests, warmup, connections)

            with ThreadPoolExecutor(max_workers=2) as pool:
                without, with_file = pool.map(count, VARIANTS)
    added = with_file / without - 1
    return {
        "requests": requests,
        "warmup": warmup,
        "named_keys": NAMED_KEYS,
        "without_identities": without,
        "with_identities": with_file,
        "added_ratio": added,
        "target_ratio": TARGET_RATIO,
        "met": added <= TARGET_RATIO,
    }


def section(result: dict[str, Any]) -> list[str]:
    """The RESULTS.md section of :func:`run`'s result."""
    met = "met" if result["met"] else "missed"
    return [
        "## Attribution through the proxy: the identity file's cost"
        " (`python -m benchmarks.attribution`)",
        "",
        "The proxy (`create_proxy_app`, uvicorn on asyncio + h11, one worker) under callgrind in",
        "front of the mock upstream, sent non-streaming `POST /v1/messages` requests carrying",
        f"one of the identity file's keys in `x-api-key` ({SENDING_KEYS} keys in turn) and a",
        "Claude Code user agent; instructions of the proxy process per request over",
        f"{result['requests']:,} requests after {result['warmup']:,} of warm-up. Without an",
        "identity file the proxy still derives the fingerprint, client app and session; with",
        f"one ({result['named_keys']} keys named) it also resolves team and alias.",
        "",
        "| identity file | instructions per request |",
        "|---|---:|",
        f"| none | {result['without_identities']:,.0f} |",
        f"| {result['named_keys']} keys | {result['with_identities']:,.0f} |",
        "",
        f"Added: {result['added_ratio']:+.1%}. Target: at most {TARGET_RATIO:.0%}: {met}.",
        "",
    ]


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
