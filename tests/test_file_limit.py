"""The open-file limit ``ccobs proxy`` raises at start: two sockets per stream need it.

Many systems start processes with a soft limit of 1024 open files; a proxy
left there stops accepting connections near 500 concurrent streams.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from ccobs.stack.processes import LOOPBACK, start_server

LOW_SOFT_LIMIT = 256


def _hard_limit() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    needs = f"this test needs a finite hard open-file limit above {LOW_SOFT_LIMIT} (ulimit -Hn)"
    assert hard != resource.RLIM_INFINITY, needs
    assert hard > LOW_SOFT_LIMIT, needs
    return hard


def _with_low_soft_limit(code: str) -> str:
    return (
        "import resource\n"
        "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({LOW_SOFT_LIMIT}, hard))\n" + code
    )


def test_raise_open_file_limit_lifts_the_soft_limit_to_the_hard_one() -> None:
    hard = _hard_limit()
    code = _with_low_soft_limit(
        "import json\n"
        "from ccobs.proxy.file_limit import raise_open_file_limit\n"
        "print(json.dumps([raise_open_file_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    returned, now = json.loads(out)
    assert returned == [LOW_SOFT_LIMIT, hard]
    assert now == [hard, hard]


def _soft_open_files(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError(f"no 'Max open files' in /proc/{pid}/limits")


def test_ccobs_proxy_serves_with_its_soft_open_file_limit_raised_to_the_hard_one() -> None:
    hard = _hard_limit()
    with tempfile.TemporaryDirectory(prefix="ccobs-test-file-limit-") as directory:
        code = _with_low_soft_limit(
            "import sys\nfrom ccobs.cli import main\nsys.exit(main(sys.argv[1:]))\n"
        )
        server = start_server(
            sys.executable,
            lambda _dir, port: [
                "-c", code, "proxy", "--host", LOOPBACK, "--port", str(port),
                "--upstream", "http://127.0.0.1:9",
            ],
            workdir=Path(directory),
            ready_path="/health",
            name="proxy-file-limit",
            timeout=60,
        )  # fmt: skip
        try:
            assert server.pid is not None
            assert _soft_open_files(server.pid) == hard
        finally:
            server.stop()
