"""Benchmark 7: the proxy's own addition over a bare pass-through, in instructions per request.

``python -m benchmarks.proxy_instructions`` (``make bench-proxy-instructions``)
serves two apps in front of the same mock upstream (constant 1 ms, 16 output
tokens in four deltas: :func:`benchmarks.apps.upstream`), each on the server
stack ``ccobs proxy`` runs with ``ccobs[server]`` (uvicorn, uvloop,
httptools), each under valgrind's callgrind:

- ``bare`` (:func:`bare`): a minimal ASGI app that reads the body, sends it
  with the proxy's own upstream client (:class:`ccobs.proxy.upstream_client.UpstreamClient`,
  the proxy's pool limits) and relays the answer, whole or chunk by chunk,
  with nothing else: no framework, middleware, parsing, accounting or logs;
- ``proxy``: the ccobs proxy (``create_proxy_app``: instrumented, priced),
  its logging at WARNING, so the access-log line (measured on its own in the
  access-log section) is not part of the figure.

After a warm-up the counts are zeroed, ``requests`` POST /v1/messages are
sent from one keep-alive connection per mode (non-streamed, then streamed),
and the count is dumped: instructions per proxied request, which the machine's
load does not move (within ~0.5% run to run with a fixed hash seed).
``added`` is proxy minus bare: what ccobs and the proxy's accounting cost.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.apps import DELTA_GAP_ENV, STREAM_DELTAS_ENV, UPSTREAM_URL_ENV
from benchmarks.common import REPO, HttpProbe, python_server, uvicorn_code

MODES = ("non_streamed", "streamed")
PATH = "/v1/messages"
HEADERS = {
    "Content-Type": "application/json",
    "anthropic-version": "2023-06-01",
    "x-api-key": "sk-bench-not-a-key",
    "User-Agent": "bench/1.0",
}


def bare() -> Any:
    """The floor: a pass-through with the proxy's upstream client and nothing else."""
    import os

    from starlette.types import Receive, Scope, Send

    from ccobs.proxy.config import ProxyConfig
    from ccobs.proxy.upstream_client import Timeouts, UpstreamClient

    config = ProxyConfig()
    client = UpstreamClient(
        os.environ[UPSTREAM_URL_ENV],
        Timeouts(config.connect_timeout, config.read_timeout, config.write_timeout,
                 config.pool_timeout),
        max_connections=config.max_connections,
        max_keepalive_connections=config.max_keepalive_connections,
    )  # fmt: skip
    skip = {b"host", b"content-length", b"connection", b"transfer-encoding"}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            client.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/health":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k not in skip]
        upstream = await client.send("POST", scope["path"], headers, b"".join(chunks))
        out = [(k.lower(), v) for k, v in upstream.headers if k.lower() not in skip]
        try:
            await send({"type": "http.response.start", "status": upstream.status_code,
                        "headers": out})  # fmt: skip
            async for chunk in upstream.iter_bytes():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            upstream.close()

    return app


def body(stream: bool, size: int = 0) -> bytes:
    """The request; with ``size``, a conversation padded to about that many bytes (Claude
    Code's first request of a session is about 88 KB: system prompt, tools, history)."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Say hello."}]
    turn = 'the quick brown fox jumps over the lazy dog, "quoted", caf\u00e9. ' * 40
    while size and len(json.dumps(messages)) < size:
        role = "assistant" if messages[-1]["role"] == "user" else "user"
        messages.append({"role": role, "content": [{"type": "text", "text": turn}]})
    payload: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "messages": messages[::-1],  # ending with the user's turn
    }
    if stream:
        payload["stream"] = True
    return json.dumps(payload).encode()


_SUMMARY = re.compile(r"^summary: (\d+)$", re.MULTILINE)


def _count(
    factory: str,
    upstream: str,
    requests: int,
    warmup: int,
    tree: str | None = None,
    modes: tuple[str, ...] = MODES,
    body_bytes: int = 0,
) -> dict[str, float]:
    valgrind, control = shutil.which("valgrind"), shutil.which("callgrind_control")
    if valgrind is None or control is None:
        raise RuntimeError("valgrind is not installed: apt-get install valgrind")
    found: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ccobs-bench-proxy-cg-") as directory:
        out = Path(directory) / "callgrind.out"
        # Uninstrumented (several times faster) through start-up and the first warm-up.
        launcher = (
            valgrind, "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}.%p"
        )  # fmt: skip
        code = uvicorn_code(factory, loop="uvloop", http="httptools")
        env = {"PYTHONHASHSEED": "0", UPSTREAM_URL_ENV: upstream}
        if tree is not None:  # ccobs from another tree (a commit before a change)
            env["PYTHONPATH"] = f"{tree}:{REPO}"
        with python_server(
            "cg-" + factory.rsplit(":", 1)[1], code, launcher=launcher, env=env, timeout=900
        ) as server:
            pid = server.pid
            assert pid is not None
            instrumented = False
            for dump_index, mode in enumerate(modes, start=1):
                stream = mode == "streamed"
                probe = HttpProbe(server.url)
                raw = probe.request_bytes("POST", PATH, body(stream, body_bytes), HEADERS)
                try:
                    for _ in range(warmup):
                        probe.send(raw)
                    if not instrumented:  # and then a short warm-up under instrumentation
                        subprocess.run(
                            [control, "--instr=on", str(pid)], check=True, capture_output=True
                        )
                        instrumented = True
                        for _ in range(20):
                            probe.send(raw)
                    subprocess.run([control, "--zero", str(pid)], check=True, capture_output=True)
                    for _ in range(requests):
                        probe.send(raw)
                    subprocess.run([control, "--dump", str(pid)], check=True, capture_output=True)
                finally:
                    probe.close()
                dump = Path(f"{out}.{pid}.{dump_index}")
                summary = None
                for _ in range(200):
                    if dump.exists() and (summary := _SUMMARY.search(dump.read_text())):
                        break
                    time.sleep(0.1)
                if summary is None:
                    raise RuntimeError(f"no callgrind summary in {dump}")
                found[mode] = int(summary.group(1)) / requests
    return found


def run(
    requests: int = 500,
    warmup: int = 200,
    before: str | None = None,
    *,
    deltas: int = 4,
    gap: float = 0.0,
    modes: tuple[str, ...] = MODES,
    body_bytes: int = 0,
) -> dict[str, Any]:
    """Instructions per request for ``bare`` and ``proxy`` (and ``bare_before`` and
    ``proxy_before``: both with ccobs from the tree ``before``, e.g. ``git archive <commit>
    ccobs | tar -x -C DIR``), each mode; two servers at a time.

    ``deltas``: text deltas per streamed answer; two runs with different numbers give the
    cost of one relayed event (the difference over the difference in deltas). ``gap``:
    seconds between deltas, so that each event comes in a read of its own, as a real
    stream's do, instead of all of them at once."""
    from concurrent.futures import ThreadPoolExecutor

    variants: dict[str, tuple[str, str | None]] = {
        "bare": ("benchmarks.proxy_instructions:bare", None),
        "proxy": ("benchmarks.apps:proxy", None),
    }
    if before is not None:
        # Each tree's proxy against a bare pass-through on that tree's own upstream client,
        # so that a faster client (which both share) is not counted as the proxy's cut.
        variants["bare_before"] = ("benchmarks.proxy_instructions:bare", before)
        variants["proxy_before"] = ("benchmarks.apps:proxy", before)
    with (
        python_server(
            "upstream",
            uvicorn_code("benchmarks.apps:upstream"),
            env={STREAM_DELTAS_ENV: str(deltas), DELTA_GAP_ENV: str(gap)},
        ) as upstream,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        counts = pool.map(
            lambda v: _count(v[0], upstream.url, requests, warmup, v[1], modes, body_bytes),
            variants.values(),
        )
        counted = dict(zip(variants, counts, strict=True))
    result: dict[str, Any] = {
        "requests": requests,
        "warmup": warmup,
        "deltas": deltas,
        "body_bytes": len(body(False, body_bytes)),
        **counted,
    }
    for name, floor in (("proxy", "bare"), ("proxy_before", "bare_before")):
        if name in counted:
            result[f"{name}_added"] = {m: counted[name][m] - counted[floor][m] for m in modes}
    if before is not None:
        result["added_after_vs_before"] = {
            m: result["proxy_added"][m] / result["proxy_before_added"][m] for m in modes
        }
    return result


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="the proxy's addition, in instructions")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--before", help="a tree holding ccobs from before a change")
    parser.add_argument("--deltas", type=int, default=4, help="text deltas per streamed answer")
    parser.add_argument("--gap", type=float, default=0.0, help="seconds between the deltas")
    parser.add_argument("--mode", choices=MODES, help="only this mode (default: both)")
    parser.add_argument(
        "--body-bytes", type=int, default=0, help="a request body of about this size"
    )
    args = parser.parse_args()
    modes = (args.mode,) if args.mode else MODES
    result = run(
        args.requests,
        args.warmup,
        args.before,
        deltas=args.deltas,
        gap=args.gap,
        modes=modes,
        body_bytes=args.body_bytes,
    )
    print(json.dumps(result, indent=1))
    sys.exit(0)
