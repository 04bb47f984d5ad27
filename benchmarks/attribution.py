"""Attribution's cost: instructions per request with and without a caller's identity.

Two instrumented apps whose ``/ping`` handler fills the request's record as the
proxy does (model, usage, cost): ``record_anonymous`` leaves team, key alias and
client app unset; ``record_identified`` sets them, rotating over three callers,
so the attribution families are recorded too (see :mod:`benchmarks.apps`). Each
is served under callgrind and counted as the middleware benchmark counts (see
:func:`benchmarks.middleware.served_instructions`).

This stands in for the proxy with and without an identity file until the proxy
resolves identities itself: the identity lookup (a hash of the key and a dict
read) is not counted here, only the recording.

Run: ``python -m benchmarks.attribution``.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.middleware import _instructions_per_request

VARIANTS = ("record_anonymous", "record_identified")


def run(requests: int = 1000, warmup: int = 300, connections: int = 16) -> dict[str, Any]:
    """Instructions per request of each variant, and the identified one's added share."""

    def count(name: str) -> float:
        return _instructions_per_request(name, requests, warmup, connections)

    with ThreadPoolExecutor(max_workers=2) as pool:
        anonymous, identified = pool.map(count, VARIANTS)
    return {
        "requests": requests,
        "warmup": warmup,
        "record_anonymous": anonymous,
        "record_identified": identified,
        "added_ratio": identified / anonymous - 1,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
